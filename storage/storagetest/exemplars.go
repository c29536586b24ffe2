package storagetest

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// appendOne is one Append with its options.
type appendOne struct {
	lset labels.Labels
	smp  hsample
	opts promstorage.AOptions
}

// appendAll appends each of as through AppenderV2 in one transaction and
// commits it, returning each Append's error (a refused sample or a
// partial error; the transaction goes on either way, as the remote-write
// receiver's does).
func appendAll(t testing.TB, ts storage.TenantStore, as ...appendOne) []error {
	t.Helper()
	app := ts.AppenderV2(t.Context())
	errs := make([]error, len(as))
	for i, a := range as {
		h, fh := a.smp.H, a.smp.FH
		if h != nil {
			h = h.Copy()
		}
		if fh != nil {
			fh = fh.Copy()
		}
		opts := a.opts
		opts.Exemplars = slices.Clone(opts.Exemplars)
		_, errs[i] = app.Append(0, a.lset, 0, a.smp.T, a.smp.F, h, fh, opts)
	}
	require.NoError(t, app.Commit(), "AppenderV2.Commit")
	return errs
}

// appendOK is appendAll requiring every Append to succeed.
func appendOK(t testing.TB, ts storage.TenantStore, as ...appendOne) {
	t.Helper()
	for i, err := range appendAll(t, ts, as...) {
		require.NoError(t, err, "AppenderV2.Append(%s, %d) with %d exemplars", as[i].lset, as[i].smp.T, len(as[i].opts.Exemplars))
	}
}

// ex builds an exemplar with a timestamp from label name, value pairs.
func ex(ts int64, v float64, nv ...string) exemplar.Exemplar {
	return exemplar.Exemplar{Labels: labels.FromStrings(nv...), Value: v, Ts: ts, HasTs: true}
}

// withExemplars returns a float sample at t appended with es.
func withExemplars(lset labels.Labels, t int64, f float64, es ...exemplar.Exemplar) appendOne {
	return appendOne{lset: lset, smp: fsmp(t, f), opts: promstorage.AOptions{Exemplars: es}}
}

// exemplarResult is what the suite expects one series' exemplars to be.
type exemplarResult struct {
	series    labels.Labels
	exemplars []exemplar.Exemplar
}

// renderExemplars renders query results one exemplar a line, series by
// series in label order, exemplars by timestamp (the order of neither is
// part of the contract), comparing values bit for bit. HasTs is not
// compared: what a reader gets is the timestamp.
func renderExemplars(rs []exemplarResult) []string {
	rs = slices.Clone(rs)
	slices.SortStableFunc(rs, func(a, b exemplarResult) int { return labels.Compare(a.series, b.series) })
	var out []string
	for _, r := range rs {
		es := slices.Clone(r.exemplars)
		slices.SortStableFunc(es, func(a, b exemplar.Exemplar) int {
			return cmp.Or(cmp.Compare(a.Ts, b.Ts), labels.Compare(a.Labels, b.Labels))
		})
		if len(es) == 0 {
			out = append(out, r.series.String()+" (no exemplars)")
		}
		for _, e := range es {
			out = append(out, fmt.Sprintf("%s @%d %s %s", r.series, e.Ts, fmtValue(e.Value), e.Labels))
		}
	}
	return out
}

// selectExemplars runs ExemplarQuerier.Select(start, end, matchers...)
// and requires no series label set to carry the tenant label or come
// twice.
func selectExemplars(t testing.TB, ts storage.TenantStore, start, end int64, matchers ...[]*labels.Matcher) []exemplarResult {
	t.Helper()
	q, err := ts.ExemplarQuerier(t.Context())
	require.NoError(t, err, "ExemplarQuerier")
	res, err := q.Select(start, end, matchers...)
	require.NoError(t, err, "ExemplarQuerier.Select(%d, %d, %s)", start, end, fmtMatcherSets(matchers))
	var out []exemplarResult
	seen := map[string]bool{}
	for _, r := range res {
		require.False(t, r.SeriesLabels.Has(tenancy.Label), "exemplar series %s carries the tenant label", r.SeriesLabels)
		k := r.SeriesLabels.String()
		require.False(t, seen[k], "ExemplarQuerier.Select returned series %s twice", k)
		seen[k] = true
		es := make([]exemplar.Exemplar, len(r.Exemplars))
		for i, e := range r.Exemplars {
			es[i] = exemplar.Exemplar{Labels: e.Labels.Copy(), Value: e.Value, Ts: e.Ts, HasTs: e.HasTs}
		}
		out = append(out, exemplarResult{r.SeriesLabels.Copy(), es})
	}
	return out
}

// requireExemplars requires ExemplarQuerier.Select to return exactly want.
func requireExemplars(t testing.TB, ts storage.TenantStore, want []exemplarResult, start, end int64, matchers ...[]*labels.Matcher) {
	t.Helper()
	got := selectExemplars(t, ts, start, end, matchers...)
	w, g := renderExemplars(want), renderExemplars(got)
	if slices.Equal(w, g) {
		return
	}
	missing, extra := multisetDiff(w, g)
	var b strings.Builder
	fmt.Fprintf(&b, "ExemplarQuerier.Select(%d, %d, %s): want %d exemplars, got %d", start, end, fmtMatcherSets(matchers), len(w), len(g))
	writeLines(&b, "missing (want, not got)", "- ", missing)
	writeLines(&b, "unexpected (got, not want)", "+ ", extra)
	require.FailNow(t, "exemplars differ", b.String())
}

func fmtMatcherSets(sets [][]*labels.Matcher) string {
	parts := make([]string, len(sets))
	for i, ms := range sets {
		parts[i] = fmtMatchers(ms)
	}
	return strings.Join(parts, " or ")
}

// filterExemplars returns the part of rs a Select over [start, end] with
// matcher sets (a union) returns: series without exemplars left out.
func filterExemplars(rs []exemplarResult, start, end int64, sets ...[]*labels.Matcher) []exemplarResult {
	var out []exemplarResult
	for _, r := range rs {
		if !slices.ContainsFunc(sets, func(ms []*labels.Matcher) bool { return matches(r.series, ms) }) {
			continue
		}
		var in []exemplar.Exemplar
		for _, e := range r.exemplars {
			if e.Ts >= start && e.Ts <= end {
				in = append(in, e)
			}
		}
		if len(in) > 0 {
			out = append(out, exemplarResult{r.series, in})
		}
	}
	return out
}

// requirePartialError requires err to be a *promstorage.AppendPartialError
// refusing exactly the exemplars at indexes idx, each with an error
// wrapping want.
func requirePartialError(t testing.TB, err error, want error, idx ...int) {
	t.Helper()
	var pErr *promstorage.AppendPartialError
	require.Truef(t, errors.As(err, &pErr), "want a *storage.AppendPartialError refusing exemplars %v with %q (the sample appended), got %v", idx, want, err)
	var got []int
	for _, e := range pErr.ExemplarErrors {
		require.ErrorIs(t, e.Err, want, "refused exemplar %d", e.Index)
		got = append(got, e.Index)
	}
	require.Equal(t, idx, got, "indexes of the refused exemplars")
}

// testExemplars: exemplars of float and histogram samples are stored and
// read back by ExemplarQuerier with matchers and time ranges; a duplicate
// of the newest is ignored; an older one is refused as a partial error
// with the sample kept; so is one whose labels are too long.
func testExemplars(t *testing.T, b Backend) {
	s1 := ls("__name__", "ex_requests_total", "job", "api")
	s2 := ls("__name__", "ex_requests_total", "job", "web")
	s3 := ls("__name__", "ex_latency_seconds", "job", "api")
	s4 := ls("__name__", "ex_requests_total", "job", "none") // samples, no exemplars
	at := func(i int) int64 { return baseTime + int64(i)*step }

	t.Run("stored and read back", func(t *testing.T) {
		ts := b.Open(t).ForTenant(tenantA)
		var want []exemplarResult
		r1, r2, r3 := exemplarResult{series: s1}, exemplarResult{series: s2}, exemplarResult{series: s3}
		var samples []hseries
		for i := range 5 {
			e1 := ex(at(i), float64(i)+0.1, "trace_id", fmt.Sprintf("a%d", i))
			e2 := []exemplar.Exemplar{ex(at(i)-1000, -float64(i), "trace_id", fmt.Sprintf("b%d", i), "span_id", "x"), ex(at(i), math.Inf(1), "trace_id", fmt.Sprintf("c%d", i))}
			e3 := []exemplar.Exemplar{ex(at(i)-2000, 0.25, "trace_id", fmt.Sprintf("d%d", i)), ex(at(i)-1000, 7.5, "trace_id", fmt.Sprintf("e%d", i))}
			h := histogramAt(0, shapeCounter, i)
			appendOK(t, ts,
				withExemplars(s1, at(i), float64(i), e1),
				withExemplars(s2, at(i), float64(2*i), e2...),
				appendOne{lset: s3, smp: hsmp(at(i), h), opts: promstorage.AOptions{Exemplars: e3}},
				withExemplars(s4, at(i), 1),
			)
			r1.exemplars = append(r1.exemplars, e1)
			r2.exemplars = append(r2.exemplars, e2...)
			r3.exemplars = append(r3.exemplars, e3...)
			samples = append(samples, hseries{s1, []hsample{fsmp(at(i), float64(i))}}, hseries{s2, []hsample{fsmp(at(i), float64(2*i))}},
				hseries{s3, []hsample{hsmp(at(i), h)}}, hseries{s4, []hsample{fsmp(at(i), 1)}})
		}
		want = []exemplarResult{r1, r2, r3}
		anyName := ms(re("__name__", "ex_.*"))
		requireExemplars(t, ts, want, math.MinInt64, math.MaxInt64, anyName)
		requireExemplars(t, ts, want, apiMinTime, apiMaxTime, anyName)
		for _, sets := range [][][]*labels.Matcher{
			{ms(eq("job", "web"))},
			{ms(eq("__name__", "ex_requests_total"), neq("job", "web"))},
			{ms(eq("job", "web")), ms(eq("__name__", "ex_latency_seconds"))},
			{ms(eq("job", "web")), ms(re("job", "web|api"))},
			{ms(eq("job", "none"))},
			{ms(eq("__name__", "nothing"))},
		} {
			requireExemplars(t, ts, filterExemplars(want, math.MinInt64, math.MaxInt64, sets...), math.MinInt64, math.MaxInt64, sets...)
		}
		for _, r := range [][2]int64{{at(1), at(3)}, {at(1) - 1000, at(1) - 1000}, {at(1) + 1, at(2) - 2001}, {at(4) + 1, at(9)}, {0, at(0) - 2001}} {
			requireExemplars(t, ts, filterExemplars(want, r[0], r[1], anyName), r[0], r[1], anyName)
		}
		// The samples are stored as if there were no exemplars.
		requireSelectH(t, ts, hmerge(samples), true, math.MinInt64, math.MaxInt64, re("__name__", "ex_.*"))
	})

	t.Run("duplicates ignored", func(t *testing.T) {
		ts := b.Open(t).ForTenant(tenantA)
		e0, e1 := ex(at(0), 1, "trace_id", "t0"), ex(at(1), 2, "trace_id", "t1")
		appendOK(t, ts, withExemplars(s1, at(0), 1, e0))
		appendOK(t, ts, withExemplars(s1, at(1), 2, e1, e1)) // twice in one Append
		appendOK(t, ts, withExemplars(s1, at(1), 2, e1))     // a re-sent request
		appendOK(t, ts, withExemplars(s1, at(1), 2, e1), withExemplars(s1, at(1), 2, e1))
		requireExemplars(t, ts, []exemplarResult{{s1, []exemplar.Exemplar{e0, e1}}}, math.MinInt64, math.MaxInt64, ms(eq("job", "api")))
	})

	t.Run("out of order refused", func(t *testing.T) {
		ts := b.Open(t).ForTenant(tenantA)
		e5 := ex(at(5), 5, "trace_id", "t5")
		appendOK(t, ts, withExemplars(s1, at(5), 5, e5))
		older, newer := ex(at(2), 2, "trace_id", "t2"), ex(at(6), 6, "trace_id", "t6")
		errs := appendAll(t, ts,
			withExemplars(s1, at(6), 6, older, newer),
			withExemplars(s1, at(7), 7, ex(at(3), 3, "trace_id", "t3")),
			withExemplars(s2, at(7), 7, older), // another series: not out of order
		)
		requirePartialError(t, errs[0], promstorage.ErrOutOfOrderExemplar, 0)
		requirePartialError(t, errs[1], promstorage.ErrOutOfOrderExemplar, 0)
		require.NoError(t, errs[2], "an exemplar older than another series' newest is in order")
		requireExemplars(t, ts, []exemplarResult{{s1, []exemplar.Exemplar{e5, newer}}, {s2, []exemplar.Exemplar{older}}}, math.MinInt64, math.MaxInt64, ms(re("job", ".+")))
		// The samples of the refused exemplars are stored.
		requireSelectH(t, ts, []hseries{
			{s1, []hsample{fsmp(at(5), 5), fsmp(at(6), 6), fsmp(at(7), 7)}},
			{s2, []hsample{fsmp(at(7), 7)}},
		}, true, math.MinInt64, math.MaxInt64, re("job", ".+"))
	})

	t.Run("appended alone", func(t *testing.T) {
		// Remote write senders put a series' exemplars in an entry of its
		// own: AppendExemplars, after the series' samples, in the same
		// transaction or a later one; never for a series without samples.
		ts := b.Open(t).ForTenant(tenantA)
		e0, e1, e2 := ex(at(0), 1, "trace_id", "t0"), ex(at(1), 2, "trace_id", "t1"), ex(at(2), 3, "trace_id", "t2")
		app := ts.AppenderV2(t.Context())
		xa, ok := app.(promstorage.ExemplarAppenderV2)
		require.True(t, ok, "the tenant view's AppenderV2 (%T) is not a storage.ExemplarAppenderV2", app)
		_, err := app.Append(0, s1, 0, at(0), 1, nil, nil, promstorage.AOptions{})
		require.NoError(t, err)
		_, err = xa.AppendExemplars(0, s1, []exemplar.Exemplar{e0})
		require.NoError(t, err, "exemplars of a series appended in the same transaction")
		_, err = xa.AppendExemplars(0, s2, []exemplar.Exemplar{e0})
		require.ErrorIs(t, err, promstorage.ErrNotFound, "exemplars of a series without samples")
		require.NoError(t, app.Commit())

		app = ts.AppenderV2(t.Context())
		xa = app.(promstorage.ExemplarAppenderV2)
		_, err = xa.AppendExemplars(0, s1, []exemplar.Exemplar{e1, e2})
		require.NoError(t, err, "exemplars of a series with samples committed before")
		_, err = xa.AppendExemplars(0, s1, []exemplar.Exemplar{ex(at(1)-1, 9, "trace_id", "old")})
		requirePartialError(t, err, promstorage.ErrOutOfOrderExemplar, 0)
		require.NoError(t, app.Commit())
		requireExemplars(t, ts, []exemplarResult{{s1, []exemplar.Exemplar{e0, e1, e2}}}, math.MinInt64, math.MaxInt64, ms(re("job", ".+")))
		requireSelectH(t, ts, []hseries{{s1, []hsample{fsmp(at(0), 1)}}}, true, math.MinInt64, math.MaxInt64, re("job", ".+"))
	})

	t.Run("label length refused", func(t *testing.T) {
		ts := b.Open(t).ForTenant(tenantA)
		// 128 runes of names and values: the most allowed, in runes, not
		// bytes ("é" is two bytes).
		longest := ex(at(0), 1, "trace_id", strings.Repeat("é", 128-len("trace_id")))
		tooLong := ex(at(1), 2, "trace_id", strings.Repeat("é", 128-len("trace_id")+1))
		errs := appendAll(t, ts, withExemplars(s1, at(0), 1, longest), withExemplars(s1, at(1), 2, tooLong))
		require.NoError(t, errs[0], "an exemplar of %d runes of labels", exemplar.ExemplarMaxLabelSetLength)
		requirePartialError(t, errs[1], promstorage.ErrExemplarLabelLength, 0)
		requireExemplars(t, ts, []exemplarResult{{s1, []exemplar.Exemplar{longest}}}, math.MinInt64, math.MaxInt64, ms(eq("job", "api")))
		requireSelectH(t, ts, []hseries{{s1, []hsample{fsmp(at(0), 1), fsmp(at(1), 2)}}}, true, math.MinInt64, math.MaxInt64, eq("job", "api"))
	})
}

// testExemplarBound: a store opened with Limited(5, 0) keeps each
// tenant's newest 5 exemplars, the oldest dropped first, also across
// Reopen.
func testExemplarBound(t *testing.T, b Backend) {
	const bound = 5
	st := b.Limited(t, bound, 0)
	s1 := ls("__name__", "ex_bound", "job", "api")
	s2 := ls("__name__", "ex_bound", "job", "web")
	at := func(i int) int64 { return baseTime + int64(i)*step }
	written := map[tenancy.ID][]exemplarResult{}
	// write appends exemplar i of tenant id, alternating the series, one
	// transaction each (so that the oldest is the first written).
	write := func(id tenancy.ID, i int) {
		s := []labels.Labels{s1, s2}[i%2]
		e := ex(at(i), float64(i), "trace_id", fmt.Sprintf("%s-%d", id, i))
		appendOK(t, st.ForTenant(id), withExemplars(s, at(i), float64(i), e))
		written[id] = append(written[id], exemplarResult{s, []exemplar.Exemplar{e}})
	}
	newest := func(id tenancy.ID) []exemplarResult {
		rs := written[id]
		return rs[max(0, len(rs)-bound):]
	}
	check := func(t *testing.T) {
		for _, id := range []tenancy.ID{tenantA, tenantB} {
			requireExemplars(t, st.ForTenant(id), newest(id), math.MinInt64, math.MaxInt64, ms(eq("__name__", "ex_bound")))
		}
	}
	for i := range 3 {
		write(tenantA, i)
		write(tenantB, i)
	}
	t.Run("under the bound", check)
	for i := 3; i < 8; i++ {
		write(tenantA, i)
	}
	t.Run("over the bound", check)
	st = b.Reopen(t, st)
	t.Run("after reopen", check)
	for i := 8; i < 11; i++ {
		write(tenantA, i)
		write(tenantB, i)
	}
	t.Run("writes after reopen", check)
	// The samples are all stored.
	var samples []hseries
	for i := range 11 {
		samples = append(samples, hseries{[]labels.Labels{s1, s2}[i%2], []hsample{fsmp(at(i), float64(i))}})
	}
	requireSelectH(t, st.ForTenant(tenantA), hmerge(samples), true, math.MinInt64, math.MaxInt64, eq("__name__", "ex_bound"))
}

// testExemplarPersistence: exemplars survive Reopen, and the newest one
// of each series is still known: a re-sent one is ignored, an older one
// refused.
func testExemplarPersistence(t *testing.T, b Backend) {
	st := b.Open(t)
	s1 := ls("__name__", "ex_persist", "job", "api")
	s2 := ls("__name__", "ex_persist", "job", "web")
	at := func(i int) int64 { return baseTime + int64(i)*step }
	var want []exemplarResult
	for i := range 4 {
		e1, e2 := ex(at(i), float64(i), "trace_id", "a"+strconv.Itoa(i)), ex(at(i), -float64(i), "trace_id", "b"+strconv.Itoa(i))
		appendOK(t, st.ForTenant(tenantA), withExemplars(s1, at(i), 1, e1), withExemplars(s2, at(i), 2, e2))
		want = append(want, exemplarResult{s1, []exemplar.Exemplar{e1}}, exemplarResult{s2, []exemplar.Exemplar{e2}})
	}
	all := ms(eq("__name__", "ex_persist"))
	requireExemplars(t, st.ForTenant(tenantA), want, math.MinInt64, math.MaxInt64, all)
	st = b.Reopen(t, st)
	ts := st.ForTenant(tenantA)
	requireExemplars(t, ts, want, math.MinInt64, math.MaxInt64, all)

	errs := appendAll(t, ts,
		withExemplars(s1, at(3), 1, ex(at(3), 3, "trace_id", "a3")),   // re-sent
		withExemplars(s2, at(4), 2, ex(at(1), -9, "trace_id", "old")), // older than s2's newest
	)
	require.NoError(t, errs[0], "the newest exemplar re-sent after a reopen is a duplicate")
	requirePartialError(t, errs[1], promstorage.ErrOutOfOrderExemplar, 0)
	e := ex(at(5), 5, "trace_id", "a5")
	appendOK(t, ts, withExemplars(s1, at(5), 1, e))
	want = append(want, exemplarResult{s1, []exemplar.Exemplar{e}})
	requireExemplars(t, ts, want, math.MinInt64, math.MaxInt64, all)
	st = b.Reopen(t, st)
	requireExemplars(t, st.ForTenant(tenantA), want, math.MinInt64, math.MaxInt64, all)
}

// testExemplarTenantIsolation writes exemplars of the same series into
// tenants whose IDs share a prefix and another one: each sees only its
// own, whatever matcher on the tenant label it sends.
func testExemplarTenantIsolation(t *testing.T, b Backend) {
	st := b.Open(t)
	s := ls("__name__", "ex_tenant", "job", "api")
	own := map[tenancy.ID][]exemplarResult{}
	for n, id := range []tenancy.ID{tenantA, tenantA1, tenantB} {
		var es []exemplar.Exemplar
		for i := range 3 {
			es = append(es, ex(baseTime+int64(i*10+n)*step, float64(n), "trace_id", fmt.Sprintf("%s-%d", id, i)))
		}
		for _, e := range es {
			appendOK(t, st.ForTenant(id), withExemplars(s, e.Ts, 1, e))
		}
		only := ls("__name__", "ex_tenant_only", "owner", string(id))
		e := ex(baseTime, 1, "trace_id", "only-"+string(id))
		appendOK(t, st.ForTenant(id), withExemplars(only, baseTime, 1, e))
		own[id] = []exemplarResult{{s, es}, {only, []exemplar.Exemplar{e}}}
	}
	anyName := ms(re("__name__", "ex_tenant.*"))
	for _, id := range []tenancy.ID{tenantA, tenantA1, tenantB, tenantC} {
		t.Run("viewed by "+string(id), func(t *testing.T) {
			ts := st.ForTenant(id)
			requireExemplars(t, ts, own[id], math.MinInt64, math.MaxInt64, anyName)
			for _, other := range []tenancy.ID{tenantA, tenantA1, tenantB, tenantC} {
				if other == id {
					continue
				}
				requireExemplars(t, ts, nil, math.MinInt64, math.MaxInt64, ms(re("__name__", "ex_tenant.*"), eq(tenancy.Label, string(other))))
				requireExemplars(t, ts, nil, math.MinInt64, math.MaxInt64, ms(eq("owner", string(other))))
			}
		})
	}
}
