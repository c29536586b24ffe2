package storagetest

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
)

// selectSeries reads the series ms select over [mint, maxt] three ways:
// Querier.Select sorted, Querier.Select unsorted without hints (callers
// such as rule evaluation pass nil) and ChunkQuerier.Select.
// It requires the three to return the same samples, the sorted one to be
// sorted by labels without repeats, every series' samples to be in strictly
// increasing time order and inside [mint, maxt], and returns the result.
//
// A series with no sample in [mint, maxt] is dropped from the result (the
// Prometheus TSDB may return one whose chunk overlaps the range).
func selectSeries(t testing.TB, ts storage.TenantStore, mint, maxt int64, ms ...*labels.Matcher) []series {
	t.Helper()
	what := fmt.Sprintf("Select(%s) over [%d, %d]", fmtMatchers(ms), mint, maxt)
	hints := &promstorage.SelectHints{Start: mint, End: maxt}

	q, err := ts.Querier(mint, maxt)
	require.NoError(t, err, "Querier(%d, %d)", mint, maxt)
	sorted := readSeriesSet(t, q.Select(t.Context(), true, hints, ms...), what+" sorted")
	requireSortedUnique(t, sorted, what+" sorted")
	unsorted := readSeriesSet(t, q.Select(t.Context(), false, nil, ms...), what+" unsorted, nil hints")
	require.NoError(t, q.Close(), "Querier.Close")
	for _, ss := range [][]series{sorted, unsorted} {
		for _, s := range ss {
			requireOrderedInRange(t, s, mint, maxt, what)
		}
	}
	sorted = dropEmpty(sorted)
	unsorted = dropEmpty(unsorted)
	sortSeries(unsorted)
	requireSameSeries(t, sorted, unsorted, what+": unsorted Select differs from sorted Select (want = sorted)")

	cq, err := ts.ChunkQuerier(mint, maxt)
	require.NoError(t, err, "ChunkQuerier(%d, %d)", mint, maxt)
	chunked := readChunkSeriesSet(t, cq.Select(t.Context(), true, hints, ms...), mint, maxt, what+" ChunkQuerier")
	require.NoError(t, cq.Close(), "ChunkQuerier.Close")
	requireSortedUnique(t, chunked, what+" ChunkQuerier")
	requireSameSeries(t, sorted, dropEmpty(chunked), what+": ChunkQuerier differs from Querier (want = Querier)")
	return sorted
}

// requireSelect requires selectSeries over [mint, maxt] with ms to return
// exactly want.
func requireSelect(t testing.TB, ts storage.TenantStore, want []series, mint, maxt int64, ms ...*labels.Matcher) {
	t.Helper()
	got := selectSeries(t, ts, mint, maxt, ms...)
	requireSameSeries(t, want, got, fmt.Sprintf("Select(%s) over [%d, %d]", fmtMatchers(ms), mint, maxt))
}

func readSeriesSet(t testing.TB, set promstorage.SeriesSet, what string) []series {
	t.Helper()
	var out []series
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		got := series{lset: s.Labels().Copy()}
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			if vt != chunkenc.ValFloat {
				require.Failf(t, "unexpected sample type", "%s: series %s holds a %s sample at %d; only floats were written", what, got.lset, vt, it.AtT())
			}
			ts, f := it.At()
			got.samples = append(got.samples, sample{ts, f})
		}
		require.NoError(t, it.Err(), "%s: iterating %s", what, got.lset)
		out = append(out, got)
	}
	require.NoError(t, set.Err(), what)
	if w := set.Warnings(); len(w) > 0 {
		t.Logf("%s: warnings: %v", what, w.AsErrors())
	}
	return out
}

// readChunkSeriesSet reads a ChunkSeriesSet. Chunks must come sorted by
// MinTime, hold only floats inside their [MinTime, MaxTime], and no
// timestamp may appear in two chunks (overlapping chunks are allowed by the
// interface, conflicting values are not). Samples outside [mint, maxt] are
// dropped: a chunk querier returns whole chunks.
func readChunkSeriesSet(t testing.TB, set promstorage.ChunkSeriesSet, mint, maxt int64, what string) []series {
	t.Helper()
	var out []series
	for set.Next() {
		s := set.At()
		lset := s.Labels().Copy()
		var all []sample
		it := s.Iterator(nil)
		prevMin := int64(math.MinInt64)
		for n := 0; it.Next(); n++ {
			meta := it.At()
			require.NotNil(t, meta.Chunk, "%s: series %s chunk %d has no data", what, lset, n)
			require.GreaterOrEqual(t, meta.MinTime, prevMin, "%s: series %s chunk %d is not sorted by MinTime", what, lset, n)
			prevMin = meta.MinTime
			ci := meta.Chunk.Iterator(nil)
			for vt := ci.Next(); vt != chunkenc.ValNone; vt = ci.Next() {
				if vt != chunkenc.ValFloat {
					require.Failf(t, "unexpected sample type", "%s: series %s chunk %d holds a %s sample", what, lset, n, vt)
				}
				ts, f := ci.At()
				if ts < meta.MinTime || ts > meta.MaxTime {
					require.Failf(t, "chunk sample outside its chunk's time range", "%s: series %s chunk %d has range [%d, %d] but holds a sample at %d", what, lset, n, meta.MinTime, meta.MaxTime, ts)
				}
				all = append(all, sample{ts, f})
			}
			require.NoError(t, ci.Err(), "%s: iterating chunk %d of %s", what, n, lset)
		}
		require.NoError(t, it.Err(), "%s: iterating chunks of %s", what, lset)
		slices.SortStableFunc(all, func(a, b sample) int { return cmp.Compare(a.T, b.T) })
		got := series{lset: lset}
		for i, smp := range all {
			if i > 0 && all[i-1].T == smp.T {
				require.Failf(t, "timestamp in two chunks", "%s: series %s holds timestamp %d twice, values %s and %s", what, lset, smp.T, fmtValue(all[i-1].F), fmtValue(smp.F))
			}
			if smp.T >= mint && smp.T <= maxt {
				got.samples = append(got.samples, smp)
			}
		}
		out = append(out, got)
	}
	require.NoError(t, set.Err(), what)
	if w := set.Warnings(); len(w) > 0 {
		t.Logf("%s: warnings: %v", what, w.AsErrors())
	}
	return out
}

// labelNames returns Querier(mint, maxt).LabelNames, requiring it sorted,
// without repeats and equal to what the ChunkQuerier returns.
func labelNames(t testing.TB, ts storage.TenantStore, mint, maxt int64, hints *promstorage.LabelHints, ms ...*labels.Matcher) []string {
	t.Helper()
	what := fmt.Sprintf("LabelNames(%s, %s) over [%d, %d]", fmtHints(hints), fmtMatchers(ms), mint, maxt)
	q, err := ts.Querier(mint, maxt)
	require.NoError(t, err)
	names, _, err := q.LabelNames(t.Context(), hints, ms...)
	require.NoError(t, err, what)
	names = cloneStrings(names)
	require.NoError(t, q.Close())
	requireSortedStrings(t, names, what)

	cq, err := ts.ChunkQuerier(mint, maxt)
	require.NoError(t, err)
	cnames, _, err := cq.LabelNames(t.Context(), hints, ms...)
	require.NoError(t, err, "ChunkQuerier "+what)
	cnames = cloneStrings(cnames)
	require.NoError(t, cq.Close())
	if hints == nil || hints.Limit <= 0 || hints.LimitSmallest {
		require.Equal(t, names, cnames, "ChunkQuerier %s differs from Querier (expected = Querier)", what)
	}
	return names
}

// labelValues returns Querier(mint, maxt).LabelValues(name), requiring it
// sorted, without repeats and equal to what the ChunkQuerier returns.
func labelValues(t testing.TB, ts storage.TenantStore, mint, maxt int64, name string, hints *promstorage.LabelHints, ms ...*labels.Matcher) []string {
	t.Helper()
	what := fmt.Sprintf("LabelValues(%q, %s, %s) over [%d, %d]", name, fmtHints(hints), fmtMatchers(ms), mint, maxt)
	q, err := ts.Querier(mint, maxt)
	require.NoError(t, err)
	values, _, err := q.LabelValues(t.Context(), name, hints, ms...)
	require.NoError(t, err, what)
	values = cloneStrings(values)
	require.NoError(t, q.Close())
	requireSortedStrings(t, values, what)

	cq, err := ts.ChunkQuerier(mint, maxt)
	require.NoError(t, err)
	cvalues, _, err := cq.LabelValues(t.Context(), name, hints, ms...)
	require.NoError(t, err, "ChunkQuerier "+what)
	cvalues = cloneStrings(cvalues)
	require.NoError(t, cq.Close())
	if hints == nil || hints.Limit <= 0 || hints.LimitSmallest {
		require.Equal(t, values, cvalues, "ChunkQuerier %s differs from Querier (expected = Querier)", what)
	}
	return values
}

// listSeries lists the label sets ms select over [mint, maxt] the way the
// series API does: Select with SelectHints{Func: "series"}, at most limit
// (0: no limit). It requires sorted and unsorted listings to agree.
func listSeries(t testing.TB, ts storage.TenantStore, mint, maxt int64, limit int, ms ...*labels.Matcher) []labels.Labels {
	t.Helper()
	what := fmt.Sprintf("Select(%s) over [%d, %d] with Func=series Limit=%d", fmtMatchers(ms), mint, maxt, limit)
	hints := &promstorage.SelectHints{Start: mint, End: maxt, Func: "series", Limit: limit}
	q, err := ts.Querier(mint, maxt)
	require.NoError(t, err)
	read := func(sortSeries bool) []labels.Labels {
		set := q.Select(t.Context(), sortSeries, hints, ms...)
		var out []labels.Labels
		for set.Next() {
			out = append(out, set.At().Labels().Copy())
		}
		require.NoError(t, set.Err(), what)
		return out
	}
	sorted := read(true)
	unsorted := read(false)
	require.NoError(t, q.Close())
	for i := 1; i < len(sorted); i++ {
		if labels.Compare(sorted[i-1], sorted[i]) >= 0 {
			require.Failf(t, "series listing not sorted", "%s: %s listed before %s", what, sorted[i-1], sorted[i])
		}
	}
	require.Len(t, unsorted, len(sorted), "%s: unsorted listing has another length than sorted", what)
	if limit == 0 {
		slices.SortFunc(unsorted, labels.Compare)
		require.Equal(t, lsetStrings(sorted), lsetStrings(unsorted), "%s: unsorted listing differs from sorted (expected = sorted)", what)
	}
	return sorted
}

// requireSortedUnique requires ss sorted by labels, no label set twice.
func requireSortedUnique(t testing.TB, ss []series, what string) {
	t.Helper()
	for i := 1; i < len(ss); i++ {
		if c := labels.Compare(ss[i-1].lset, ss[i].lset); c >= 0 {
			if c == 0 {
				require.Failf(t, "series returned twice", "%s: %s returned twice", what, ss[i].lset)
			}
			require.Failf(t, "series not sorted", "%s: %s returned before %s", what, ss[i-1].lset, ss[i].lset)
		}
	}
}

// requireOrderedInRange requires s's samples in strictly increasing time
// order and inside [mint, maxt].
func requireOrderedInRange(t testing.TB, s series, mint, maxt int64, what string) {
	t.Helper()
	for i, smp := range s.samples {
		if smp.T < mint || smp.T > maxt {
			require.Failf(t, "sample outside the queried range", "%s: series %s returned a sample at %d outside [%d, %d]", what, s.lset, smp.T, mint, maxt)
		}
		if i > 0 && s.samples[i-1].T >= smp.T {
			require.Failf(t, "samples out of order or repeated", "%s: series %s returned timestamp %d (value %s) after %d (value %s)", what, s.lset, smp.T, fmtValue(smp.F), s.samples[i-1].T, fmtValue(s.samples[i-1].F))
		}
	}
}

func requireSortedStrings(t testing.TB, ss []string, what string) {
	t.Helper()
	for i := 1; i < len(ss); i++ {
		if ss[i-1] >= ss[i] {
			require.Failf(t, "not sorted or repeated", "%s: %q returned before %q in %q", what, ss[i-1], ss[i], ss)
		}
	}
}

func dropEmpty(ss []series) []series {
	return slices.DeleteFunc(ss, func(s series) bool { return len(s.samples) == 0 })
}

func sortSeries(ss []series) {
	slices.SortStableFunc(ss, func(a, b series) int { return labels.Compare(a.lset, b.lset) })
}

// cloneStrings copies ss out of a querier's memory; nil becomes empty so
// that empty results compare equal.
func cloneStrings(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.Clone(s)
	}
	return out
}

func lsetStrings(ls []labels.Labels) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.String()
	}
	return out
}

func fmtMatchers(ms []*labels.Matcher) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.String()
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func fmtHints(h *promstorage.LabelHints) string {
	if h == nil {
		return "nil hints"
	}
	return fmt.Sprintf("Limit=%d LimitSmallest=%t", h.Limit, h.LimitSmallest)
}

// Matcher shorthands.
func eq(n, v string) *labels.Matcher  { return labels.MustNewMatcher(labels.MatchEqual, n, v) }
func neq(n, v string) *labels.Matcher { return labels.MustNewMatcher(labels.MatchNotEqual, n, v) }
func re(n, v string) *labels.Matcher  { return labels.MustNewMatcher(labels.MatchRegexp, n, v) }
func nre(n, v string) *labels.Matcher { return labels.MustNewMatcher(labels.MatchNotRegexp, n, v) }
