package storagetest

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
)

// hsample is one sample of any kind: a float (H and FH nil), an integer
// histogram (H) or a float histogram (FH).
type hsample struct {
	T  int64
	F  float64
	H  *histogram.Histogram
	FH *histogram.FloatHistogram
}

// hseries is a label set with samples of any kind.
type hseries struct {
	lset    labels.Labels
	samples []hsample
}

func fsmp(t int64, f float64) hsample                     { return hsample{T: t, F: f} }
func hsmp(t int64, h *histogram.Histogram) hsample        { return hsample{T: t, H: h} }
func fhsmp(t int64, fh *histogram.FloatHistogram) hsample { return hsample{T: t, FH: fh} }
func staleH(t int64) hsample {
	return hsmp(t, &histogram.Histogram{Sum: math.Float64frombits(value.StaleNaN)})
}
func staleFH(t int64) hsample {
	return fhsmp(t, &histogram.FloatHistogram{Sum: math.Float64frombits(value.StaleNaN)})
}
func (s hsample) kind() chunkenc.ValueType { return sampleKind(s.H, s.FH) }
func (s hsample) isHistogram() bool        { return s.H != nil || s.FH != nil }
func sampleKind(h *histogram.Histogram, fh *histogram.FloatHistogram) chunkenc.ValueType {
	switch {
	case h != nil:
		return chunkenc.ValHistogram
	case fh != nil:
		return chunkenc.ValFloatHistogram
	}
	return chunkenc.ValFloat
}

// sum returns the histogram's sum (or the float value).
func (s hsample) sum() float64 {
	switch {
	case s.H != nil:
		return s.H.Sum
	case s.FH != nil:
		return s.FH.Sum
	}
	return s.F
}

func (s hsample) hint() histogram.CounterResetHint {
	switch {
	case s.H != nil:
		return s.H.CounterResetHint
	case s.FH != nil:
		return s.FH.CounterResetHint
	}
	return histogram.UnknownCounterReset
}

// float returns a histogram sample as a float histogram (nil for floats).
func (s hsample) float() *histogram.FloatHistogram {
	switch {
	case s.H != nil:
		return s.H.ToFloat(nil)
	case s.FH != nil:
		return s.FH.Copy()
	}
	return nil
}

// describe renders s so that two samples render alike exactly when the
// suite considers them equal: the kind; for floats every bit (fmtValue);
// for histograms schema, zero threshold and count, count, sum (every bit,
// staleness marker apart from other NaNs), custom values and every
// populated bucket by index, whatever the span layout (Prometheus' chunk
// encoding adds empty buckets where a chunk's layout needs them), and
// whether it is a gauge histogram. A stale histogram is its kind and
// StaleNaN only: Prometheus' own iterators return nothing else of it. The
// counter reset hints of counter histograms are checked apart
// (requireHints).
func (s hsample) describe() string {
	switch {
	case s.H != nil:
		h := s.H
		if value.IsStaleNaN(h.Sum) {
			return "histogram StaleNaN"
		}
		return fmt.Sprintf("histogram{%s count=%d sum=%s %s pos=%s neg=%s}", hintClass(h.CounterResetHint), h.Count, fmtValue(h.Sum),
			layout(h.Schema, h.ZeroThreshold, strconv.FormatUint(h.ZeroCount, 10), h.CustomValues),
			buckets(h.PositiveBucketIterator(), fmtCount), negBuckets(h.Schema, h.NegativeBucketIterator(), fmtCount))
	case s.FH != nil:
		h := s.FH
		if value.IsStaleNaN(h.Sum) {
			return "float histogram StaleNaN"
		}
		return fmt.Sprintf("float histogram{%s count=%s sum=%s %s pos=%s neg=%s}", hintClass(h.CounterResetHint), fmtValue(h.Count), fmtValue(h.Sum),
			layout(h.Schema, h.ZeroThreshold, fmtValue(h.ZeroCount), h.CustomValues),
			buckets(h.PositiveBucketIterator(), fmtValue), negBuckets(h.Schema, h.NegativeBucketIterator(), fmtValue))
	}
	return "float " + fmtValue(s.F)
}

func fmtCount(c uint64) string { return strconv.FormatUint(c, 10) }

func hintClass(h histogram.CounterResetHint) string {
	if h == histogram.GaugeType {
		return "gauge"
	}
	return "counter"
}

func layout(schema int32, zt float64, zc string, cv []float64) string {
	if histogram.IsCustomBucketsSchema(schema) {
		vs := make([]string, len(cv))
		for i, v := range cv {
			vs[i] = fmtValue(v)
		}
		return fmt.Sprintf("schema=%d custom_values=[%s]", schema, strings.Join(vs, " "))
	}
	return fmt.Sprintf("schema=%d zero_threshold=%s zero_count=%s", schema, fmtValue(zt), zc)
}

// buckets renders the populated buckets of it as index:count.
func buckets[BC histogram.BucketCount](it histogram.BucketIterator[BC], format func(BC) string) string {
	var parts []string
	for it.Next() {
		b := it.At()
		if b.Count == 0 {
			// An empty bucket is the same as a missing one, except for
			// the sign of a float zero: keep -0 visible.
			if f, ok := any(b.Count).(float64); !ok || !math.Signbit(f) {
				continue
			}
		}
		parts = append(parts, strconv.FormatInt(int64(b.Index), 10)+":"+format(b.Count))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// negBuckets is buckets for negative buckets, which custom bucket
// histograms do not have.
func negBuckets[BC histogram.BucketCount](schema int32, it histogram.BucketIterator[BC], format func(BC) string) string {
	if histogram.IsCustomBucketsSchema(schema) {
		return "-"
	}
	return buckets(it, format)
}

func renderH(ss []hseries) []string {
	var out []string
	for _, s := range ss {
		if len(s.samples) == 0 {
			out = append(out, s.lset.String()+" (no samples)")
			continue
		}
		prefix := s.lset.String() + " @"
		for _, smp := range s.samples {
			out = append(out, prefix+strconv.FormatInt(smp.T, 10)+" "+smp.describe())
		}
	}
	return out
}

// requireSameHSeries is requireSameSeries for samples of any kind.
func requireSameHSeries(t testing.TB, want, got []hseries, what string) {
	t.Helper()
	w, g := renderH(want), renderH(got)
	if slices.Equal(w, g) {
		return
	}
	missing, extra := multisetDiff(w, g)
	var b strings.Builder
	fmt.Fprintf(&b, "%s: want %d series / %d lines, got %d series / %d lines", what, len(want), len(w), len(got), len(g))
	if len(missing) == 0 && len(extra) == 0 {
		i := 0
		for i < len(w) && w[i] == g[i] {
			i++
		}
		fmt.Fprintf(&b, "\nsame samples in another order; first difference at line %d:\n  want %s\n  got  %s", i, w[i], g[i])
	}
	writeLines(&b, "missing (want, not got)", "- ", missing)
	writeLines(&b, "unexpected (got, not want)", "+ ", extra)
	require.FailNow(t, "series differ", b.String())
}

// requireHints checks the counter reset hints got (read back) gives the
// counter histograms of want (written, whole series as merge returns
// them; requireSameHSeries has matched the shapes). Prometheus' own chunk
// encoding keeps a hint only as far as it is needed, so the rule is what
// it may return, not only the written hint:
//   - the written hint is always right;
//   - UnknownCounterReset is always right (PromQL detects resets then);
//   - NotCounterReset in place of UnknownCounterReset only where the
//     previous sample is a histogram the sample continues (no stale
//     marker, no float, no reset DetectReset sees);
//   - CounterReset in place of another hint only where DetectReset sees a
//     reset against a previous histogram.
//
// NotCounterReset in place of CounterReset is always wrong. Gauge
// histograms are checked by describe (the hint class).
func requireHints(t testing.TB, want, got []hseries, what string) {
	t.Helper()
	for i, s := range want {
		for j, w := range s.samples {
			if !w.isHistogram() || value.IsStaleNaN(w.sum()) || w.hint() == histogram.GaugeType {
				continue
			}
			r := got[i].samples[j].hint()
			if r == w.hint() || r == histogram.UnknownCounterReset {
				continue
			}
			var prev hsample
			if j > 0 {
				prev = s.samples[j-1]
			}
			continues := prev.isHistogram() && !value.IsStaleNaN(prev.sum())
			reset := continues && w.float().DetectReset(prev.float())
			var bad string
			switch r {
			case histogram.NotCounterReset:
				switch {
				case w.hint() == histogram.CounterReset:
					bad = "written with the CounterReset hint"
				case !continues:
					bad = "not continuing a histogram (first sample, or after a float or a stale marker)"
				case reset:
					bad = "a counter reset against the previous sample"
				}
			case histogram.CounterReset:
				if !reset {
					bad = "not a counter reset against the previous sample"
				}
			default:
				bad = "a counter histogram"
			}
			if bad != "" {
				require.Failf(t, "wrong counter reset hint", "%s: %s @%d (written with hint %s) read back with hint %s, but it is %s",
					what, s.lset, w.T, fmtHint(w.hint()), fmtHint(r), bad)
			}
		}
	}
}

func fmtHint(h histogram.CounterResetHint) string {
	switch h {
	case histogram.UnknownCounterReset:
		return "UnknownCounterReset"
	case histogram.CounterReset:
		return "CounterReset"
	case histogram.NotCounterReset:
		return "NotCounterReset"
	case histogram.GaugeType:
		return "GaugeType"
	}
	return fmt.Sprintf("hint(%d)", h)
}

// hmerge is merge for samples of any kind: last write wins at a timestamp,
// whatever the kinds.
func hmerge(batches ...[]hseries) []hseries {
	byKey := map[string]*hseries{}
	var order []*hseries
	for _, batch := range batches {
		for _, s := range batch {
			k := s.lset.String()
			m, ok := byKey[k]
			if !ok {
				m = &hseries{lset: s.lset}
				byKey[k] = m
				order = append(order, m)
			}
			m.samples = append(m.samples, s.samples...)
		}
	}
	out := make([]hseries, 0, len(order))
	for _, m := range order {
		smp := slices.Clone(m.samples)
		slices.SortStableFunc(smp, func(a, b hsample) int { return cmp.Compare(a.T, b.T) })
		var dedup []hsample
		for i, s := range smp {
			if i+1 < len(smp) && smp[i+1].T == s.T {
				continue
			}
			dedup = append(dedup, s)
		}
		out = append(out, hseries{lset: m.lset, samples: dedup})
	}
	slices.SortStableFunc(out, func(a, b hseries) int { return labels.Compare(a.lset, b.lset) })
	return out
}

// hfilter is filter for samples of any kind.
func hfilter(ss []hseries, mint, maxt int64, ms ...*labels.Matcher) []hseries {
	var out []hseries
	for _, s := range ss {
		if !matches(s.lset, ms) {
			continue
		}
		var in []hsample
		for _, smp := range s.samples {
			if smp.T >= mint && smp.T <= maxt {
				in = append(in, smp)
			}
		}
		if len(in) > 0 {
			out = append(out, hseries{lset: s.lset, samples: in})
		}
	}
	return out
}

// hwrite appends ss through AppenderV2 in one transaction, series after
// series, and commits it.
func hwrite(t testing.TB, ts storage.TenantStore, ss ...hseries) {
	t.Helper()
	app := ts.AppenderV2(t.Context())
	for _, s := range ss {
		for _, smp := range s.samples {
			// Appenders may keep what they are given: hand them copies.
			h, fh := smp.H, smp.FH
			if h != nil {
				h = h.Copy()
			}
			if fh != nil {
				fh = fh.Copy()
			}
			if _, err := app.Append(0, s.lset, 0, smp.T, smp.F, h, fh, promstorage.AOptions{}); err != nil {
				_ = app.Rollback()
				require.NoError(t, err, "AppenderV2.Append(%s, %d, %s)", s.lset, smp.T, smp.describe())
			}
		}
	}
	require.NoError(t, app.Commit(), "AppenderV2.Commit")
}

// hwriteByTime appends ss in transactions of at most n timestamps each, in
// time order, every series' samples of those timestamps in each (as
// successive remote write requests of a sender arrive).
func hwriteByTime(t testing.TB, ts storage.TenantStore, n int, ss ...hseries) {
	t.Helper()
	var times []int64
	for _, s := range ss {
		for _, smp := range s.samples {
			times = append(times, smp.T)
		}
	}
	slices.Sort(times)
	times = slices.Compact(times)
	for len(times) > 0 {
		k := min(n, len(times))
		lo, hi := times[0], times[k-1]
		times = times[k:]
		var batch []hseries
		for _, s := range ss {
			var in []hsample
			for _, smp := range s.samples {
				if smp.T >= lo && smp.T <= hi {
					in = append(in, smp)
				}
			}
			if len(in) > 0 {
				batch = append(batch, hseries{s.lset, in})
			}
		}
		hwrite(t, ts, batch...)
	}
}

// selectH is selectSeries for samples of any kind: Querier.Select sorted,
// unsorted with nil hints, and ChunkQuerier.Select must agree; sorted by
// labels; samples in strictly increasing time order inside [mint, maxt].
func selectH(t testing.TB, ts storage.TenantStore, mint, maxt int64, ms ...*labels.Matcher) (sorted, chunked []hseries) {
	t.Helper()
	what := fmt.Sprintf("Select(%s) over [%d, %d]", fmtMatchers(ms), mint, maxt)
	hints := &promstorage.SelectHints{Start: mint, End: maxt}

	q, err := ts.Querier(mint, maxt)
	require.NoError(t, err, "Querier(%d, %d)", mint, maxt)
	sorted = readHSeriesSet(t, q.Select(t.Context(), true, hints, ms...), what+" sorted")
	unsorted := readHSeriesSet(t, q.Select(t.Context(), false, nil, ms...), what+" unsorted, nil hints")
	require.NoError(t, q.Close(), "Querier.Close")
	for _, ss := range [][]hseries{sorted, unsorted} {
		for _, s := range ss {
			for j, smp := range s.samples {
				if smp.T < mint || smp.T > maxt {
					require.Failf(t, "sample outside the queried range", "%s: series %s returned a sample at %d outside [%d, %d]", what, s.lset, smp.T, mint, maxt)
				}
				if j > 0 && s.samples[j-1].T >= smp.T {
					require.Failf(t, "samples out of order or repeated", "%s: series %s returned timestamp %d after %d", what, s.lset, smp.T, s.samples[j-1].T)
				}
			}
		}
	}
	for i := 1; i < len(sorted); i++ {
		if c := labels.Compare(sorted[i-1].lset, sorted[i].lset); c >= 0 {
			require.Failf(t, "series not sorted or repeated", "%s sorted: %s returned before %s", what, sorted[i-1].lset, sorted[i].lset)
		}
	}
	sorted = dropEmptyH(sorted)
	unsorted = dropEmptyH(unsorted)
	slices.SortStableFunc(unsorted, func(a, b hseries) int { return labels.Compare(a.lset, b.lset) })
	requireSameHSeries(t, sorted, unsorted, what+": unsorted Select differs from sorted Select (want = sorted)")

	cq, err := ts.ChunkQuerier(mint, maxt)
	require.NoError(t, err, "ChunkQuerier(%d, %d)", mint, maxt)
	chunked = readHChunkSeriesSet(t, cq.Select(t.Context(), true, hints, ms...), mint, maxt, what+" ChunkQuerier")
	require.NoError(t, cq.Close(), "ChunkQuerier.Close")
	for i := 1; i < len(chunked); i++ {
		if c := labels.Compare(chunked[i-1].lset, chunked[i].lset); c >= 0 {
			require.Failf(t, "series not sorted or repeated", "%s ChunkQuerier: %s returned before %s", what, chunked[i-1].lset, chunked[i].lset)
		}
	}
	chunked = dropEmptyH(chunked)
	requireSameHSeries(t, sorted, chunked, what+": ChunkQuerier differs from Querier (want = Querier)")
	return sorted, chunked
}

// requireSelectH requires selectH over [mint, maxt] with ms to return
// exactly want, and when the range covers want's series whole (all is
// true), the hints of their counter histograms to follow requireHints.
func requireSelectH(t testing.TB, ts storage.TenantStore, want []hseries, all bool, mint, maxt int64, ms ...*labels.Matcher) {
	t.Helper()
	what := fmt.Sprintf("Select(%s) over [%d, %d]", fmtMatchers(ms), mint, maxt)
	got, chunked := selectH(t, ts, mint, maxt, ms...)
	requireSameHSeries(t, want, got, what)
	if all {
		requireHints(t, want, got, what)
		requireHints(t, want, chunked, what+" ChunkQuerier")
	}
	requireStaleBits(t, want, got, what)
	requireStaleBits(t, want, chunked, what+" ChunkQuerier")
}

// requireStaleBits requires every staleness marker of want, float or
// histogram sum, to come back with exactly value.StaleNaN's bits.
func requireStaleBits(t testing.TB, want, got []hseries, what string) {
	t.Helper()
	for i, s := range want {
		for j, smp := range s.samples {
			if !value.IsStaleNaN(smp.sum()) {
				continue
			}
			bits := math.Float64bits(got[i].samples[j].sum())
			require.Equal(t, value.StaleNaN, bits, "%s: %s @%d: the staleness marker (%s) must be stored bit-exact: want %#016x, got %#016x",
				what, s.lset, smp.T, smp.describe(), value.StaleNaN, bits)
		}
	}
}

func dropEmptyH(ss []hseries) []hseries {
	return slices.DeleteFunc(ss, func(s hseries) bool { return len(s.samples) == 0 })
}

// atSample reads the sample of kind vt at it's position, copied out of
// the iterator's memory.
func atSample(it chunkenc.Iterator, vt chunkenc.ValueType) hsample {
	switch vt {
	case chunkenc.ValHistogram:
		ts, h := it.AtHistogram(nil)
		return hsmp(ts, h.Copy())
	case chunkenc.ValFloatHistogram:
		ts, fh := it.AtFloatHistogram(nil)
		return fhsmp(ts, fh.Copy())
	}
	ts, f := it.At()
	return fsmp(ts, f)
}

func readHSeriesSet(t testing.TB, set promstorage.SeriesSet, what string) []hseries {
	t.Helper()
	var out []hseries
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		got := hseries{lset: s.Labels().Copy()}
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			smp := atSample(it, vt)
			require.Equal(t, smp.T, it.AtT(), "%s: %s: AtT differs from the sample's timestamp", what, got.lset)
			if vt == chunkenc.ValHistogram {
				// A histogram reads as a float histogram too, as PromQL does.
				_, fh := it.AtFloatHistogram(nil)
				require.Equal(t, hsample{T: smp.T, FH: smp.H.ToFloat(nil)}.describe(), hsample{T: smp.T, FH: fh}.describe(),
					"%s: %s @%d: AtFloatHistogram of an integer histogram differs from AtHistogram", what, got.lset, smp.T)
			}
			got.samples = append(got.samples, smp)
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

// chunkKinds is the value type each chunk encoding the contract allows
// holds.
var chunkKinds = map[chunkenc.Encoding]chunkenc.ValueType{
	chunkenc.EncXOR:            chunkenc.ValFloat,
	chunkenc.EncHistogram:      chunkenc.ValHistogram,
	chunkenc.EncFloatHistogram: chunkenc.ValFloatHistogram,
}

// readHChunkSeriesSet reads a ChunkSeriesSet of any kind of samples:
// chunks sorted by MinTime, each an XOR, histogram or float histogram chunk
// holding only its kind inside its [MinTime, MaxTime], no timestamp in two
// chunks. Samples outside [mint, maxt] are dropped.
func readHChunkSeriesSet(t testing.TB, set promstorage.ChunkSeriesSet, mint, maxt int64, what string) []hseries {
	t.Helper()
	var out []hseries
	for set.Next() {
		s := set.At()
		lset := s.Labels().Copy()
		var all []hsample
		it := s.Iterator(nil)
		prevMin := int64(math.MinInt64)
		for n := 0; it.Next(); n++ {
			meta := it.At()
			require.NotNil(t, meta.Chunk, "%s: series %s chunk %d has no data", what, lset, n)
			require.GreaterOrEqual(t, meta.MinTime, prevMin, "%s: series %s chunk %d is not sorted by MinTime", what, lset, n)
			prevMin = meta.MinTime
			enc := meta.Chunk.Encoding()
			kind, ok := chunkKinds[enc]
			require.True(t, ok, "%s: series %s chunk %d has encoding %s; the contract allows XOR, histogram and float histogram chunks", what, lset, n, enc)
			ci := meta.Chunk.Iterator(nil)
			for vt := ci.Next(); vt != chunkenc.ValNone; vt = ci.Next() {
				require.Equal(t, kind, vt, "%s: series %s chunk %d (%s) holds a %s sample", what, lset, n, enc, vt)
				smp := atSample(ci, vt)
				if smp.T < meta.MinTime || smp.T > meta.MaxTime {
					require.Failf(t, "sample outside its chunk's range", "%s: series %s chunk %d [%d, %d] holds a sample at %d", what, lset, n, meta.MinTime, meta.MaxTime, smp.T)
				}
				all = append(all, smp)
			}
			require.NoError(t, ci.Err(), "%s: series %s chunk %d", what, lset, n)
		}
		require.NoError(t, it.Err(), "%s: series %s", what, lset)
		slices.SortStableFunc(all, func(a, b hsample) int { return cmp.Compare(a.T, b.T) })
		got := hseries{lset: lset}
		for i, smp := range all {
			if i > 0 && all[i-1].T == smp.T {
				require.Failf(t, "timestamp in two chunks", "%s: series %s has two samples at %d: %s and %s", what, lset, smp.T, all[i-1].describe(), smp.describe())
			}
			if smp.T >= mint && smp.T <= maxt {
				got.samples = append(got.samples, smp)
			}
		}
		out = append(out, got)
	}
	require.NoError(t, set.Err(), what)
	return out
}
