package badger

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/tenancy"
)

var testSchemas = []int32{-4, 0, 8, histogram.CustomBucketsSchema}

// testHistogram returns the i-th histogram of a counter of the given
// schema: populated positive, negative and zero buckets (custom buckets,
// schema -53, have positive buckets only), every count growing with i.
func testHistogram(schema int32, i int) *histogram.Histogram {
	n := uint64(i)
	h := &histogram.Histogram{Schema: schema, Sum: 3.25*float64(i) + 0.5}
	var pos, neg []uint64
	if schema == histogram.CustomBucketsSchema {
		h.CustomValues = []float64{0.1, 0.5, 1, 2.5, 10}
		h.PositiveSpans = []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 3}}
		pos = []uint64{1 + n, 2 + n, n, 3 + 2*n, 1}
	} else {
		h.ZeroThreshold, h.ZeroCount = 0.001, 2+n
		h.PositiveSpans = []histogram.Span{{Offset: -2, Length: 3}, {Offset: 2, Length: 2}}
		h.NegativeSpans = []histogram.Span{{Offset: 1, Length: 2}}
		pos = []uint64{1 + n, 4 + 2*n, 2, 7 + n, n}
		neg = []uint64{3 + n, 1}
	}
	h.Count = h.ZeroCount
	deltas := func(abs []uint64) []int64 {
		var out []int64
		var prev int64
		for _, c := range abs {
			h.Count += c
			out = append(out, int64(c)-prev)
			prev = int64(c)
		}
		return out
	}
	h.PositiveBuckets, h.NegativeBuckets = deltas(pos), deltas(neg)
	return h
}

func staleHistogram() *histogram.Histogram {
	return &histogram.Histogram{Sum: math.Float64frombits(value.StaleNaN)}
}

func histSample(t int64, h *histogram.Histogram, float bool) sample {
	if float {
		return sample{t: t, fh: h.ToFloat(nil)}
	}
	return sample{t: t, h: h}
}

// appendSamples writes samples of lset in one commit through AppenderV2.
func appendSamples(t testing.TB, s *Store, id tenancy.ID, lset labels.Labels, samples ...sample) {
	t.Helper()
	app := s.ForTenant(id).AppenderV2(context.Background())
	for _, smp := range samples {
		_, err := app.Append(0, lset, 0, smp.t, smp.v, smp.h, smp.fh, promstorage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
}

// readSamples reads every series of the tenant through Select, samples of
// every kind.
func readSamples(t testing.TB, s *Store, id tenancy.ID) map[string][]sample {
	t.Helper()
	q, err := s.ForTenant(id).Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	out := map[string][]sample{}
	var it chunkenc.Iterator
	for set.Next() {
		it = set.At().Iterator(it)
		out[set.At().Labels().String()] = iterSamples(t, it)
	}
	require.NoError(t, set.Err())
	return out
}

func iterSamples(t testing.TB, it chunkenc.Iterator) []sample {
	t.Helper()
	var got []sample
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		switch vt {
		case chunkenc.ValFloat:
			ts, v := it.At()
			got = append(got, sample{t: ts, v: v})
		case chunkenc.ValHistogram:
			ts, h := it.AtHistogram(nil)
			require.Equal(t, ts, it.AtT())
			got = append(got, sample{t: ts, h: h})
		case chunkenc.ValFloatHistogram:
			ts, fh := it.AtFloatHistogram(nil)
			got = append(got, sample{t: ts, fh: fh})
		}
	}
	require.NoError(t, it.Err())
	return got
}

// chunkInfo is one chunk ChunkQuerier returned.
type chunkInfo struct {
	enc     chunkenc.Encoding
	header  chunkenc.CounterResetHeader // of histogram chunks
	samples []sample
}

// readChunks reads every series of the tenant through ChunkQuerier.
func readChunks(t testing.TB, s *Store, id tenancy.ID) map[string][]chunkInfo {
	t.Helper()
	q, err := s.ForTenant(id).ChunkQuerier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	out := map[string][]chunkInfo{}
	for set.Next() {
		name := set.At().Labels().String()
		it := set.At().Iterator(nil)
		for it.Next() {
			m := it.At()
			ci := chunkInfo{enc: m.Chunk.Encoding(), samples: iterSamples(t, m.Chunk.Iterator(nil))}
			switch c := m.Chunk.(type) {
			case *chunkenc.HistogramChunk:
				ci.header = c.GetCounterResetHeader()
			case *chunkenc.FloatHistogramChunk:
				ci.header = c.GetCounterResetHeader()
			}
			require.NotEmpty(t, ci.samples)
			require.Equal(t, m.MinTime, ci.samples[0].t)
			require.Equal(t, m.MaxTime, ci.samples[len(ci.samples)-1].t)
			out[name] = append(out[name], ci)
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, set.Err())
	return out
}

// chunkSamples returns the samples of chunks, in order.
func chunkSamples(chks []chunkInfo) []sample {
	var out []sample
	for _, c := range chks {
		out = append(out, c.samples...)
	}
	return out
}

// chunkEncodings returns the encodings of chunks, in order.
func chunkEncodings(chks []chunkInfo) []chunkenc.Encoding {
	var out []chunkenc.Encoding
	for _, c := range chks {
		out = append(out, c.enc)
	}
	return out
}

// normalized returns a copy of h with empty slices nil, for comparison.
func normalized[S ~[]E, E any](s S) S {
	if len(s) == 0 {
		return nil
	}
	return s
}

// requireSamples checks that got holds want's samples bit for bit. With
// hints unset, the counter reset hints of histograms are only checked to be
// gauges where want's are; stale markers are checked to be stale markers
// (the chunk keeps their sum, the marker, and nothing else).
func requireSamples(t testing.TB, want, got []sample, hints bool, msgAndArgs ...any) {
	t.Helper()
	require.Len(t, got, len(want), msgAndArgs...)
	for i, w := range want {
		g := got[i]
		msg := fmt.Sprintf("%v: sample %d (t=%d)", msgAndArgs, i, w.t)
		require.Equal(t, w.t, g.t, msg)
		require.Equal(t, w.enc(), g.enc(), msg)
		switch {
		case w.h != nil:
			if value.IsStaleNaN(w.h.Sum) {
				require.Equal(t, math.Float64bits(w.h.Sum), math.Float64bits(g.h.Sum), msg)
				continue
			}
			wh, gh := *w.h, *g.h
			for _, h := range []*histogram.Histogram{&wh, &gh} {
				h.PositiveSpans, h.NegativeSpans = normalized(h.PositiveSpans), normalized(h.NegativeSpans)
				h.PositiveBuckets, h.NegativeBuckets = normalized(h.PositiveBuckets), normalized(h.NegativeBuckets)
				h.CustomValues = normalized(h.CustomValues)
			}
			if !hints && sameHint(wh.CounterResetHint, gh.CounterResetHint) {
				gh.CounterResetHint = wh.CounterResetHint
			}
			require.Equal(t, math.Float64bits(wh.Sum), math.Float64bits(gh.Sum), msg)
			wh.Sum, gh.Sum = 0, 0 // NaN is not equal to itself
			require.Equal(t, wh, gh, msg)
		case w.fh != nil:
			if value.IsStaleNaN(w.fh.Sum) {
				require.Equal(t, math.Float64bits(w.fh.Sum), math.Float64bits(g.fh.Sum), msg)
				continue
			}
			wh, gh := *w.fh, *g.fh
			for _, h := range []*histogram.FloatHistogram{&wh, &gh} {
				h.PositiveSpans, h.NegativeSpans = normalized(h.PositiveSpans), normalized(h.NegativeSpans)
				h.PositiveBuckets, h.NegativeBuckets = normalized(h.PositiveBuckets), normalized(h.NegativeBuckets)
				h.CustomValues = normalized(h.CustomValues)
			}
			if !hints && sameHint(wh.CounterResetHint, gh.CounterResetHint) {
				gh.CounterResetHint = wh.CounterResetHint
			}
			require.Equal(t, math.Float64bits(wh.Sum), math.Float64bits(gh.Sum), msg)
			wh.Sum, gh.Sum = 0, 0
			require.Equal(t, wh, gh, msg)
		default:
			require.Equal(t, math.Float64bits(w.v), math.Float64bits(g.v), msg)
		}
	}
}

func withHint(smp sample, hint histogram.CounterResetHint) sample {
	switch {
	case smp.h != nil:
		h := smp.h.Copy()
		h.CounterResetHint = hint
		smp.h = h
	case smp.fh != nil:
		fh := smp.fh.Copy()
		fh.CounterResetHint = hint
		smp.fh = fh
	}
	return smp
}

func histName(schema int32, float bool) string {
	return fmt.Sprintf("schema_%d_float_%v", max(schema, -schema), float)
}

// TestHistogramsRoundTrip writes integer and float histograms of every
// kind of schema, with zero, negative and custom buckets and a stale
// marker, through Close and reopen, a checkpoint and a crash, and reads
// them back bit-exact through Select and ChunkQuerier, in histogram
// chunks. The hints are what Prometheus' chunks give: unknown for the
// first sample of a chunk, not a reset for the others; and the chunks'
// counter reset headers say "no reset" where a chunk was cut for its size,
// as Prometheus' head does (the new chunk's first sample compared with the
// last one of the previous), and "unknown" at the start and after the
// stale marker.
func TestHistogramsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	cfg := func(c *Config) { c.ChunkSamples = 10; c.CheckpointInterval = time.Hour }
	s := openTest(t, dir, cfg)
	const n, stale = 53, 33
	input := map[string][]sample{}
	for _, schema := range testSchemas {
		for _, float := range []bool{false, true} {
			name := labels.FromStrings("__name__", histName(schema, float)).String()
			for i := range n {
				h := testHistogram(schema, i)
				if i == stale {
					h = staleHistogram()
				}
				input[name] = append(input[name], histSample(int64(i)*15000, h, float))
			}
		}
	}
	write := func(s *Store, from, to int) {
		for name, list := range input {
			lset, err := parseTestLabels(name)
			require.NoError(t, err)
			for _, smp := range list[from:to] {
				// Copies: the store must not keep what it is given.
				appendSamples(t, s, "a", lset, withHint(smp, histogram.UnknownCounterReset))
			}
		}
	}
	check := func(s *Store, what string, upto int) {
		t.Helper()
		got := readSamples(t, s, "a")
		chunks := readChunks(t, s, "a")
		require.Len(t, got, len(input))
		for name, in := range input {
			wantEnc := chunkenc.EncHistogram
			if in[0].fh != nil {
				wantEnc = chunkenc.EncFloatHistogram
			}
			var want []sample
			var headers []chunkenc.CounterResetHeader
			for k, c := range chunks[name] {
				require.Equal(t, wantEnc, c.enc, what, name)
				headers = append(headers, c.header)
				i := len(want)
				wantHeader := chunkenc.NotCounterReset
				if k == 0 || i == stale+1 {
					wantHeader = chunkenc.UnknownCounterReset
				}
				require.Equal(t, wantHeader, c.header, "%s %s: header of chunk %d from sample %d", what, name, k, i)
				for j := range c.samples {
					hint := histogram.NotCounterReset
					if j == 0 {
						hint = histogram.UnknownCounterReset
					}
					if i+j < len(in) {
						want = append(want, withHint(in[i+j], hint))
					}
				}
			}
			require.Greater(t, len(chunks[name]), upto/10, what, name)
			require.Len(t, want, upto, what, name)
			requireSamples(t, want, chunkSamples(chunks[name]), true, what, "chunks", name)
			requireSamples(t, want, got[name], true, what, name)
		}
	}

	write(s, 0, 25) // two sealed chunks and a head
	check(s, "written", 25)
	require.NoError(t, s.Close())
	s = openTest(t, dir, cfg)
	check(s, "after Close and reopen", 25)
	write(s, 25, 45) // on from the restored head, through the stale marker
	require.NoError(t, s.checkpoint())
	write(s, 45, n)
	check(s, "written after reopen", n)
	crash(t, s)
	s = openTest(t, dir, cfg)
	defer s.Close()
	check(s, "after a crash", n)
}

func parseTestLabels(s string) (labels.Labels, error) {
	name, ok := strings.CutPrefix(s, `{__name__="`)
	if !ok {
		return labels.EmptyLabels(), fmt.Errorf("labels %s", s)
	}
	return labels.FromStrings("__name__", strings.TrimSuffix(name, `"}`)), nil
}

// TestInvalidHistogramRefused: a histogram Prometheus would refuse is
// refused as invalid input (400), not stored.
func TestInvalidHistogramRefused(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	h := testHistogram(0, 1)
	h.PositiveBuckets = h.PositiveBuckets[1:] // fewer buckets than the spans say
	app := s.ForTenant("a").AppenderV2(context.Background())
	_, err := app.Append(0, labels.FromStrings("__name__", "bad"), 0, 1000, 0, h, nil, promstorage.AOptions{})
	require.ErrorIs(t, err, histogram.ErrHistogramSpansBucketsMismatch)
	require.Equal(t, apierror.InvalidArgument, apierror.Classify(err).Kind)
	require.NoError(t, app.Commit())
	require.Empty(t, readSamples(t, s, "a"))
}

// TestHistogramResetHints: every counter reset hint is kept as
// Prometheus' chunks keep them: an explicit reset and a detected one (a
// count going down) start a chunk whose header says so, gauges go to a
// gauge chunk and stay gauges, and the other samples are not resets. (The
// first sample of a counter chunk reads as "unknown", as in Prometheus.)
func TestHistogramResetHints(t *testing.T) {
	for _, float := range []bool{false, true} {
		t.Run(fmt.Sprintf("float=%v", float), func(t *testing.T) {
			s := openTest(t, t.TempDir(), nil)
			defer s.Close()
			mk := func(i int, hint histogram.CounterResetHint) sample {
				h := testHistogram(0, i)
				h.CounterResetHint = hint
				return histSample(0, h, float)
			}
			const (
				unknown  = histogram.UnknownCounterReset
				notReset = histogram.NotCounterReset
				reset    = histogram.CounterReset
				gauge    = histogram.GaugeType
			)
			steps := []struct {
				in   sample
				want histogram.CounterResetHint
			}{
				{mk(5, unknown), unknown}, // first
				{mk(6, unknown), notReset},
				{mk(7, notReset), notReset},
				{mk(1, unknown), unknown}, // detected: a new chunk
				{mk(2, unknown), notReset},
				{mk(3, reset), unknown}, // explicit: a new chunk
				{mk(4, unknown), notReset},
				{mk(9, gauge), gauge},
				{mk(2, gauge), gauge}, // a gauge going down
				{mk(8, gauge), gauge},
			}
			var want []sample
			lset := labels.FromStrings("__name__", "hints")
			for i, st := range steps {
				st.in.t = int64(i+1) * 15000
				appendSamples(t, s, "a", lset, st.in)
				want = append(want, withHint(st.in, st.want))
			}
			requireSamples(t, want, readSamples(t, s, "a")[lset.String()], true)
			chunks := readChunks(t, s, "a")[lset.String()]
			requireSamples(t, want, chunkSamples(chunks), true)
			var headers []chunkenc.CounterResetHeader
			for _, c := range chunks {
				headers = append(headers, c.header)
			}
			require.Equal(t, []chunkenc.CounterResetHeader{chunkenc.UnknownCounterReset, chunkenc.CounterReset, chunkenc.CounterReset, chunkenc.GaugeType}, headers)
		})
	}
}

// TestHistogramsOutOfOrderAndLastWriteWins: histograms older than the
// sealed chunks are merged into them, those inside the head re-encode it,
// and at equal timestamps the last write wins whatever the kinds, within
// a commit too; after a crash the WAL replay gives the same answer.
func TestHistogramsOutOfOrderAndLastWriteWins(t *testing.T) {
	dir := t.TempDir()
	cfg := func(c *Config) { c.ChunkSamples = 10; c.CheckpointInterval = time.Hour }
	s := openTest(t, dir, cfg)
	lset := labels.FromStrings("__name__", "ooo")
	at := func(i int) int64 { return int64(i) * 15000 }
	var in []sample
	for i := 100; i < 145; i++ { // four sealed chunks and a head
		in = append(in, histSample(at(i), testHistogram(0, i), i%2 == 0))
	}
	appendSamples(t, s, "a", lset, in...)
	want := map[int64]sample{}
	for _, smp := range in {
		want[smp.t] = smp
	}
	// Older than everything; replacing inside a sealed chunk (an integer
	// histogram by a float one, and by a float); inside the head; a
	// duplicate; and two writes of one timestamp in one commit, each way
	// round.
	writes := []sample{
		histSample(at(5), testHistogram(8, 5), false),
		histSample(at(112), testHistogram(8, 1), true),
		{t: at(113), v: 42},
		histSample(at(142)+1, testHistogram(-53, 3), false),
		in[len(in)-1],
		{t: at(120), v: 1}, histSample(at(120), testHistogram(0, 1), false), // the histogram wins
		histSample(at(143), testHistogram(0, 1), true), {t: at(143), v: -0.0}, // the float wins
	}
	appendSamples(t, s, "a", lset, writes...)
	for _, w := range writes {
		want[w.t] = w
	}
	// A float series overwritten by histograms, in its head and sealed.
	flt := labels.FromStrings("__name__", "flt")
	var floats []sample
	for i := range 15 {
		floats = append(floats, sample{t: at(i), v: float64(i)})
	}
	appendSamples(t, s, "a", flt, floats...)
	appendSamples(t, s, "a", flt, histSample(at(3), testHistogram(0, 3), false), histSample(at(13), testHistogram(0, 13), true))
	floats[3], floats[13] = histSample(at(3), testHistogram(0, 3), false), histSample(at(13), testHistogram(0, 13), true)

	var wantList []sample
	for _, smp := range want {
		wantList = append(wantList, smp)
	}
	slices.SortFunc(wantList, func(a, b sample) int { return cmp.Compare(a.t, b.t) })
	check := func(what string) {
		got := readSamples(t, s, "a")
		requireSamples(t, wantList, got[lset.String()], false, what)
		requireSamples(t, floats, got[flt.String()], false, what)
		chunks := readChunks(t, s, "a")
		requireSamples(t, wantList, chunkSamples(chunks[lset.String()]), false, what, "chunks")
		requireSamples(t, floats, chunkSamples(chunks[flt.String()]), false, what, "chunks")
	}
	check("written")
	crash(t, s)
	s = openTest(t, dir, cfg)
	defer s.Close()
	check("after a crash")
}

// TestSeriesSwitchesKind: a series going from floats to integer
// histograms to float histograms and back cuts a chunk at each change, as
// Prometheus' head does, and keeps every sample, across a restart.
func TestSeriesSwitchesKind(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	lset := labels.FromStrings("__name__", "switch")
	var want []sample
	for i := range 20 {
		smp := sample{t: int64(i) * 1000, v: float64(i)}
		switch i / 5 {
		case 1:
			smp = histSample(smp.t, testHistogram(2, i), false)
		case 2:
			smp = histSample(smp.t, testHistogram(2, i), true)
		}
		want = append(want, smp)
		appendSamples(t, s, "a", lset, smp)
	}
	check := func(what string) {
		requireSamples(t, want, readSamples(t, s, "a")[lset.String()], false, what)
		chunks := readChunks(t, s, "a")[lset.String()]
		require.Equal(t, []chunkenc.Encoding{chunkenc.EncXOR, chunkenc.EncHistogram, chunkenc.EncFloatHistogram, chunkenc.EncXOR}, chunkEncodings(chunks), what)
		requireSamples(t, want, chunkSamples(chunks), false, what, "chunks")
	}
	check("written")
	require.NoError(t, s.Close())
	s = openTest(t, dir, nil)
	defer s.Close()
	check("reopened")
}

// TestRetentionDeletesOldHistogramChunks: retention drops histogram chunks
// as it drops float ones.
func TestRetentionDeletesOldHistogramChunks(t *testing.T) {
	s := openTest(t, t.TempDir(), func(c *Config) { c.ChunkSamples = 5 })
	defer s.Close()
	old := labels.FromStrings("__name__", "old")
	recent := labels.FromStrings("__name__", "recent")
	mixed := labels.FromStrings("__name__", "mixed")
	var want, wantMixed []sample
	for i := range 10 {
		appendSamples(t, s, "a", old, histSample(int64(i), testHistogram(0, i), false))
		smp := histSample(1000+int64(i), testHistogram(-4, i), true)
		appendSamples(t, s, "a", recent, smp)
		want = append(want, smp)
		m := histSample(int64(i), testHistogram(0, i), false)
		if i >= 5 {
			m = histSample(1000+int64(i), testHistogram(0, i), false)
			wantMixed = append(wantMixed, m)
		}
		appendSamples(t, s, "a", mixed, m)
	}
	require.NoError(t, s.deleteBefore(500))
	got := readSamples(t, s, "a")
	require.NotContains(t, got, old.String())
	requireSamples(t, want, got[recent.String()], false)
	requireSamples(t, wantMixed, got[mixed.String()], false)
}

// TestCommitRecordHistograms: the WAL record keeps histograms bit for bit,
// NaN, -0 and stale sums included, in the order they were written among
// the floats; a record of floats only is what it was before histograms.
func TestCommitRecordHistograms(t *testing.T) {
	h := testHistogram(8, 3)
	h.Sum = math.Copysign(0, -1)
	h.CounterResetHint = histogram.GaugeType
	nan := testHistogram(-53, 2).ToFloat(nil)
	nan.Sum = math.NaN()
	samples := []walSample{
		{id: 1, sample: sample{t: 5, v: 1.5}},
		{id: 2, sample: sample{t: -7, h: h}},
		{id: 1, sample: sample{t: 6, v: math.Float64frombits(value.StaleNaN)}},
		{id: 3, sample: sample{t: 8, fh: nan}},
		{id: 3, sample: sample{t: 9, h: staleHistogram()}},
		{id: 4, sample: sample{t: 10, fh: testHistogram(-4, 1).ToFloat(nil)}},
		{id: 5, sample: sample{t: 11, v: math.Copysign(0, -1)}},
	}
	series := []walSeries{{id: 2, lset: labels.FromStrings("a", "b")}}
	rec := appendCommitRecord(nil, 7, series, pendingOf(samples))
	tn, gotSeries, got, err := decodeCommitRecord(rec)
	require.NoError(t, err)
	require.EqualValues(t, 7, tn)
	require.Equal(t, series, gotSeries)
	require.Equal(t, len(samples), len(got))
	for i := range samples {
		require.Equal(t, samples[i].id, got[i].id)
		require.Equal(t, math.Float64bits(samples[i].v), math.Float64bits(got[i].v))
		switch {
		case samples[i].h != nil:
			require.Equal(t, math.Float64bits(samples[i].h.Sum), math.Float64bits(got[i].h.Sum))
		case samples[i].fh != nil:
			require.Equal(t, math.Float64bits(samples[i].fh.Sum), math.Float64bits(got[i].fh.Sum))
		}
		requireSamples(t, []sample{samples[i].sample}, []sample{got[i].sample}, true, i)
	}
	require.Equal(t, h, got[1].h)

	// Floats only: the layout of the records before histograms.
	floats := []walSample{samples[0], samples[2], samples[6]}
	rec = appendCommitRecord(nil, 7, nil, pendingOf(floats))
	want := binary.BigEndian.AppendUint32(nil, 7)
	want = binary.AppendUvarint(want, 0)
	want = binary.AppendUvarint(want, uint64(len(floats)))
	for _, s := range floats {
		want = binary.AppendUvarint(want, s.id)
		want = binary.AppendVarint(want, s.t)
		want = binary.LittleEndian.AppendUint64(want, math.Float64bits(s.v))
	}
	require.Equal(t, want, rec)
	_, _, got, err = decodeCommitRecord(rec)
	require.NoError(t, err)
	require.Len(t, got, len(floats))
	for i := range floats {
		require.Equal(t, floats[i].id, got[i].id)
		requireSamples(t, []sample{floats[i].sample}, []sample{got[i].sample}, true, i)
	}

	// Truncated records are corrupt, never a panic.
	rec = appendCommitRecord(nil, 7, series, pendingOf(samples))
	for n := len(rec) - 1; n > 0; n-- {
		if _, _, _, err := decodeCommitRecord(rec[:n]); err == nil {
			// A cut at the end of the floats is a valid older record.
			_, _, got, _ := decodeCommitRecord(rec[:n])
			for _, s := range got {
				require.Nil(t, s.h)
				require.Nil(t, s.fh)
			}
		}
	}
}

// pendingOf returns the samples as an appender queues them.
func pendingOf(ws []walSample) []pendingSample {
	out := make([]pendingSample, len(ws))
	for i, w := range ws {
		out[i] = pendingSample{ser: &series{id: w.id}, sample: w.sample}
	}
	return out
}
