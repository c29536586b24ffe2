package clickhouse

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// hsample is one sample of any kind as a test writes or reads it.
type hsample struct {
	st int64 // start timestamp, 0 when unknown
	t  int64
	v  float64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

func (s hsample) kind() chunkenc.ValueType {
	switch {
	case s.h != nil:
		return chunkenc.ValHistogram
	case s.fh != nil:
		return chunkenc.ValFloatHistogram
	}
	return chunkenc.ValFloat
}

// histBits is a histogram with every float as its bits and empty slices
// as nil, so that require.Equal compares bit for bit.
type histBits struct {
	Float                      bool
	Hint                       histogram.CounterResetHint
	Schema                     int32
	ZeroThreshold, Sum         uint64
	Count, ZeroCount           uint64 // bits for a float histogram
	PositiveSpans, NegSpans    []histogram.Span
	PositiveBuckets, NegBucket []uint64 // int64 deltas or float bits
	CustomValues               []uint64
}

func floatBits(fs []float64) []uint64 {
	if len(fs) == 0 {
		return nil
	}
	out := make([]uint64, len(fs))
	for i, f := range fs {
		out[i] = math.Float64bits(f)
	}
	return out
}

func intBits(vs []int64) []uint64 {
	if len(vs) == 0 {
		return nil
	}
	out := make([]uint64, len(vs))
	for i, v := range vs {
		out[i] = uint64(v)
	}
	return out
}

func spans(s []histogram.Span) []histogram.Span {
	if len(s) == 0 {
		return nil
	}
	return s
}

func bitsOf(s hsample) any {
	switch {
	case s.h != nil:
		h := s.h
		return histBits{Hint: h.CounterResetHint, Schema: h.Schema, ZeroThreshold: math.Float64bits(h.ZeroThreshold), Sum: math.Float64bits(h.Sum),
			Count: h.Count, ZeroCount: h.ZeroCount, PositiveSpans: spans(h.PositiveSpans), NegSpans: spans(h.NegativeSpans),
			PositiveBuckets: intBits(h.PositiveBuckets), NegBucket: intBits(h.NegativeBuckets), CustomValues: floatBits(h.CustomValues)}
	case s.fh != nil:
		h := s.fh
		return histBits{Float: true, Hint: h.CounterResetHint, Schema: h.Schema, ZeroThreshold: math.Float64bits(h.ZeroThreshold), Sum: math.Float64bits(h.Sum),
			Count: math.Float64bits(h.Count), ZeroCount: math.Float64bits(h.ZeroCount), PositiveSpans: spans(h.PositiveSpans), NegSpans: spans(h.NegativeSpans),
			PositiveBuckets: floatBits(h.PositiveBuckets), NegBucket: floatBits(h.NegativeBuckets), CustomValues: floatBits(h.CustomValues)}
	}
	return math.Float64bits(s.v)
}

// testHistogram is a valid integer histogram of schema with zero and
// negative buckets (none for custom buckets), scaled by k.
func testHistogram(schema int32, hint histogram.CounterResetHint, k uint64) *histogram.Histogram {
	if schema == histogram.CustomBucketsSchema {
		return &histogram.Histogram{
			CounterResetHint: hint, Schema: schema, Count: 6 * k, Sum: 1.25 * float64(k),
			PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 1}},
			PositiveBuckets: []int64{int64(k), int64(k), int64(k)}, // 1k, 2k, 3k
			CustomValues:    []float64{0.1, 0.5, 1, 2.5},
		}
	}
	return &histogram.Histogram{
		CounterResetHint: hint, Schema: schema, ZeroThreshold: 0.001, ZeroCount: 2 * k, Count: 12 * k, Sum: -12.5 * float64(k),
		PositiveSpans:   []histogram.Span{{Offset: -2, Length: 2}, {Offset: 3, Length: 1}},
		PositiveBuckets: []int64{int64(k), 0, int64(2 * k)}, // 1k, 1k, 3k
		NegativeSpans:   []histogram.Span{{Offset: 0, Length: 2}},
		NegativeBuckets: []int64{int64(4 * k), -int64(3 * k)}, // 4k, 1k
	}
}

func testFloatHistogram(schema int32, hint histogram.CounterResetHint, k uint64) *histogram.FloatHistogram {
	fh := testHistogram(schema, hint, k).ToFloat(nil)
	fh.PositiveBuckets[0] += 0.25
	fh.Count += 0.25
	return fh
}

// histogramCases are samples of every kind, schema and hint, stale markers
// and odd float bits, one per second from t0, floats among them.
func histogramCases(t0 int64) []hsample {
	var out []hsample
	add := func(s hsample) {
		s.t = t0 + int64(len(out))*1000
		out = append(out, s)
	}
	hints := []histogram.CounterResetHint{histogram.UnknownCounterReset, histogram.CounterReset, histogram.NotCounterReset, histogram.GaugeType}
	stale := math.Float64frombits(value.StaleNaN)
	for _, schema := range []int32{-4, 0, 8, histogram.CustomBucketsSchema} {
		for k, hint := range hints {
			add(hsample{h: testHistogram(schema, hint, uint64(k+1))})
		}
		add(hsample{v: float64(schema)}) // the series switches kind
		for k, hint := range hints {
			add(hsample{fh: testFloatHistogram(schema, hint, uint64(k+1))})
		}
	}
	add(hsample{h: &histogram.Histogram{Sum: stale}})
	add(hsample{h: testHistogram(3, histogram.UnknownCounterReset, 1)})
	withStale := testHistogram(3, histogram.UnknownCounterReset, 1)
	withStale.Sum = stale
	add(hsample{h: withStale})
	add(hsample{fh: &histogram.FloatHistogram{Sum: stale}})
	add(hsample{v: stale})
	odd := testFloatHistogram(0, histogram.GaugeType, 2)
	odd.Sum = math.Float64frombits(0x7ff8_0000_dead_beef)
	odd.ZeroThreshold = math.SmallestNonzeroFloat64
	odd.NegativeBuckets[1] = math.Copysign(0, -1)
	add(hsample{fh: odd})
	empty := &histogram.Histogram{Schema: 2, Sum: math.Inf(-1)}
	add(hsample{h: empty})
	add(hsample{v: math.Float64frombits(histMarker)}) // a float with the marker's bits stays a float
	return out
}

func appendSamples(t testing.TB, ts storage.TenantStore, lset labels.Labels, samples []hsample) {
	t.Helper()
	app := ts.AppenderV2(t.Context())
	for _, s := range samples {
		_, err := app.Append(0, lset, s.st, s.t, s.v, s.h, s.fh, promstorage.AppendV2Options{})
		require.NoError(t, err, "sample at %d", s.t)
	}
	require.NoError(t, app.Commit())
}

// readSamples reads every sample of metric name with Select.
func readSamples(t testing.TB, ts storage.TenantStore, name string) []hsample {
	t.Helper()
	q, err := ts.Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(t.Context(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", name))
	var out []hsample
	for set.Next() {
		out = append(out, iterSamples(t, set.At().Iterator(nil))...)
	}
	require.NoError(t, set.Err())
	return out
}

func iterSamples(t testing.TB, it chunkenc.Iterator) []hsample {
	var out []hsample
	for typ := it.Next(); typ != chunkenc.ValNone; typ = it.Next() {
		s := hsample{st: it.AtST()}
		switch typ {
		case chunkenc.ValFloat:
			s.t, s.v = it.At()
		case chunkenc.ValHistogram:
			s.t, s.h = it.AtHistogram(nil)
		case chunkenc.ValFloatHistogram:
			s.t, s.fh = it.AtFloatHistogram(nil)
		}
		out = append(out, s)
	}
	require.NoError(t, it.Err())
	return out
}

func requireSameSamples(t testing.TB, want, got []hsample) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i].t, got[i].t, "sample %d", i)
		require.Equal(t, want[i].kind(), got[i].kind(), "sample %d at %d", i, want[i].t)
		require.Equal(t, bitsOf(want[i]), bitsOf(got[i]), "sample %d at %d", i, want[i].t)
		require.Equal(t, want[i].st, got[i].st, "start timestamp of sample %d at %d", i, want[i].t)
	}
}

// TestHistogramRoundTrip writes histograms of every kind, schema and hint,
// stale markers and floats into one series and reads them back bit for
// bit with Select, also as float histograms, and after a merge.
func TestHistogramRoundTrip(t *testing.T) {
	s := newTestStore(t)
	ts := s.ForTenant("h")
	want := histogramCases(1_700_000_000_000)
	lset := labels.FromStrings("__name__", "hist_rt", "job", "x")
	appendSamples(t, ts, lset, want)
	requireSameSamples(t, want, readSamples(t, ts, "hist_rt"))

	// One sample per commit too.
	lset1 := labels.FromStrings("__name__", "hist_commits")
	for _, sm := range want {
		appendSamples(t, ts, lset1, []hsample{sm})
	}
	requireSameSamples(t, want, readSamples(t, ts, "hist_commits"))

	require.NoError(t, s.conn.Exec(t.Context(), "OPTIMIZE TABLE "+s.schema.table(samplesTable)+" FINAL"))
	requireSameSamples(t, want, readSamples(t, ts, "hist_rt"))

	// AtFloatHistogram on an integer histogram gives its float form.
	q, err := ts.Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	set := q.Select(t.Context(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "hist_rt"))
	require.True(t, set.Next())
	it := set.At().Iterator(nil)
	require.Equal(t, chunkenc.ValHistogram, it.Next())
	_, fh := it.AtFloatHistogram(nil)
	require.Equal(t, bitsOf(hsample{fh: want[0].h.ToFloat(nil)}), bitsOf(hsample{fh: fh}))
	// Seek lands on the kind of the sample it finds.
	require.Equal(t, chunkenc.ValFloat, it.Seek(want[4].t))
	require.Equal(t, chunkenc.ValFloatHistogram, it.Seek(want[5].t))
	require.Equal(t, chunkenc.ValNone, it.Seek(math.MaxInt64))

	// Invalid histograms are refused as Prometheus refuses them.
	bad := testHistogram(0, histogram.UnknownCounterReset, 1)
	bad.Count = 1
	app := ts.AppenderV2(t.Context())
	_, err = app.Append(0, lset, 0, 5, 0, bad, nil, promstorage.AppendV2Options{})
	require.ErrorIs(t, err, histogram.ErrHistogramCountMismatch)
	require.NoError(t, app.Rollback())
}

// TestHistogramChunks reads the same series through the ChunkQuerier:
// float runs as XOR chunks, histograms as histogram and float histogram
// chunks never recoded, each sample as the chunk format gives it back.
func TestHistogramChunks(t *testing.T) {
	s := newTestStore(t)
	ts := s.ForTenant("h")
	want := histogramCases(1_700_000_000_000)
	// A long counter run shares chunks.
	for k := range 300 {
		want = append(want, hsample{t: 1_700_000_100_000 + int64(k)*15_000, h: testHistogram(3, histogram.NotCounterReset, uint64(k+1))})
	}
	appendSamples(t, ts, labels.FromStrings("__name__", "hist_chunks"), want)
	write(t, ts, labels.FromStrings("__name__", "floats_only"), 1000, 1)

	q, err := ts.ChunkQuerier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(t.Context(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", "hist_chunks|floats_only"))
	require.True(t, set.Next())
	require.Equal(t, "floats_only", set.At().Labels().Get("__name__"))
	require.True(t, set.Next())
	var got []hsample
	chunksOf := map[chunkenc.Encoding]int{}
	cit := set.At().Iterator(nil)
	for cit.Next() {
		meta := cit.At()
		chunksOf[meta.Chunk.Encoding()]++
		samples := iterSamples(t, meta.Chunk.Iterator(nil))
		require.NotEmpty(t, samples)
		require.Equal(t, meta.MinTime, samples[0].t)
		require.Equal(t, meta.MaxTime, samples[len(samples)-1].t)
		for i, sm := range samples {
			w := want[len(got)]
			require.Equal(t, w.kind(), sm.kind(), "sample at %d", w.t)
			switch {
			case w.h != nil:
				require.Equal(t, chunkenc.EncHistogram, meta.Chunk.Encoding())
				w.h = chunkNormal(w.h, i, meta.Chunk.(*chunkenc.HistogramChunk).GetCounterResetHeader())
			case w.fh != nil:
				require.Equal(t, chunkenc.EncFloatHistogram, meta.Chunk.Encoding())
				w.fh = chunkNormalFloat(w.fh, i, meta.Chunk.(*chunkenc.FloatHistogramChunk).GetCounterResetHeader())
			default:
				require.Equal(t, chunkenc.EncXOR, meta.Chunk.Encoding())
			}
			require.Equal(t, bitsOf(w), bitsOf(sm), "sample at %d", w.t)
			got = append(got, sm)
		}
	}
	require.NoError(t, cit.Err())
	require.Len(t, got, len(want))
	require.False(t, set.Next())
	require.NoError(t, set.Err())
	t.Logf("chunks by encoding: %v", chunksOf)
	require.Less(t, chunksOf[chunkenc.EncHistogram], 40, "a counter run shares chunks")
}

// chunkNormal is h as a histogram chunk gives it back at position i of a
// chunk with header crh: stale markers hold only their sum; hints are the
// chunk's (an explicit reset starts a chunk whose header says so).
func chunkNormal(h *histogram.Histogram, i int, crh chunkenc.CounterResetHeader) *histogram.Histogram {
	if value.IsStaleNaN(h.Sum) {
		return &histogram.Histogram{Sum: h.Sum}
	}
	c := h.Copy()
	c.CounterResetHint = chunkHint(h.CounterResetHint, i, crh)
	return c
}

func chunkNormalFloat(h *histogram.FloatHistogram, i int, crh chunkenc.CounterResetHeader) *histogram.FloatHistogram {
	if value.IsStaleNaN(h.Sum) {
		return &histogram.FloatHistogram{Sum: h.Sum}
	}
	c := h.Copy()
	c.CounterResetHint = chunkHint(h.CounterResetHint, i, crh)
	return c
}

func chunkHint(hint histogram.CounterResetHint, i int, crh chunkenc.CounterResetHeader) histogram.CounterResetHint {
	switch {
	case hint == histogram.GaugeType:
		return histogram.GaugeType
	case hint == histogram.CounterReset:
		if i != 0 || crh != chunkenc.CounterReset {
			return 99 // fails: a reset must start a chunk that says so
		}
		return histogram.UnknownCounterReset
	case i == 0:
		return histogram.UnknownCounterReset
	}
	return histogram.NotCounterReset
}

// TestHistogramLastWriteWins overwrites samples across kinds, within one
// commit and across commits, out of order, and after merges.
func TestHistogramLastWriteWins(t *testing.T) {
	s := newTestStore(t)
	ts := s.ForTenant("lww")
	lset := labels.FromStrings("__name__", "hist_lww")
	h1 := testHistogram(0, histogram.UnknownCounterReset, 1)
	h2 := testHistogram(1, histogram.UnknownCounterReset, 2)
	fh := testFloatHistogram(-53, histogram.GaugeType, 3)
	marker := math.Float64frombits(histMarker)
	steps := [][]hsample{
		{{t: 1000, v: 1}, {t: 2000, h: h1}, {t: 3000, fh: fh}, {t: 4000, v: marker}},
		{{t: 1000, h: h1}, {t: 2000, v: 2}},                    // each kind replaces the other
		{{t: 3000, v: 3}, {t: 3000, h: h2}},                    // in one commit the later append
		{{t: 4000, h: h1}},                                     // over a float with the marker's bits
		{{t: 500, fh: fh}, {t: 2000, fh: fh}, {t: 2000, v: 5}}, // out of order
	}
	for _, step := range steps {
		appendSamples(t, ts, lset, step)
	}
	want := []hsample{{t: 500, fh: fh}, {t: 1000, h: h1}, {t: 2000, v: 5}, {t: 3000, h: h2}, {t: 4000, h: h1}}
	requireSameSamples(t, want, readSamples(t, ts, "hist_lww"))
	// A float with the marker's bits over a histogram is a float.
	appendSamples(t, ts, lset, []hsample{{t: 4000, v: marker}})
	want[4] = hsample{t: 4000, v: marker}
	requireSameSamples(t, want, readSamples(t, ts, "hist_lww"))

	require.NoError(t, s.conn.Exec(t.Context(), "OPTIMIZE TABLE "+s.schema.table(samplesTable)+" FINAL"))
	requireSameSamples(t, want, readSamples(t, ts, "hist_lww"))
	appendSamples(t, ts, lset, []hsample{{t: 4000, fh: fh}, {t: 1000, v: 7}})
	want[1], want[4] = hsample{t: 1000, v: 7}, hsample{t: 4000, fh: fh}
	requireSameSamples(t, want, readSamples(t, ts, "hist_lww"))
}

// TestHistogramRetriedInsert inserts one batch of histograms and floats
// twice, as the committer's retry does: every sample is read once, and a
// merge keeps one row each.
func TestHistogramRetriedInsert(t *testing.T) {
	s := newTestStore(t)
	ts := s.ForTenant("retry").(*tenantStore)
	lset := labels.FromStrings("__name__", "hist_retry")
	want := histogramCases(1_700_000_000_000)
	a := ts.newAppender(t.Context())
	for _, sm := range want {
		_, err := a.appendAny(0, lset, sm.st, sm.t, sm.v, sm.h, sm.fh)
		require.NoError(t, err)
	}
	req := &commitReq{tenant: "retry", fps: a.cols.fps, tss: a.cols.tss, vals: a.cols.vals, digits: a.cols.digits, scales: a.cols.scales, hists: a.cols.hists, series: a.series}
	w := &insertWorker{s: s}
	require.NoError(t, w.insertOnce([]*commitReq{req}))
	require.NoError(t, w.insertOnce([]*commitReq{req}))
	requireSameSamples(t, want, readSamples(t, ts, "hist_retry"))
	require.NoError(t, s.conn.Exec(t.Context(), "OPTIMIZE TABLE "+s.schema.table(samplesTable)+" FINAL"))
	var n uint64
	require.NoError(t, s.conn.QueryRow(t.Context(), "SELECT count() FROM "+s.schema.table(samplesTable)+" WHERE tenant = 'retry'").Scan(&n))
	require.Equal(t, uint64(len(want)), n)
	requireSameSamples(t, want, readSamples(t, ts, "hist_retry"))
}

// TestHistogramMigration opens a store on a database holding the schema
// and float data of the release before histograms (migrations 1 and 2):
// the store adds the hist column, the floats read back as they were, and
// the series takes histograms.
func TestHistogramMigration(t *testing.T) {
	cfg := testConfig(t)
	conn := testConn(t)
	ctx := t.Context()
	info, err := detectServer(ctx, connRunner{conn})
	require.NoError(t, err)
	old := schema{db: cfg.Database, info: info}
	applied, err := old.migrateThrough(ctx, connRunner{conn}, migrations[:2])
	require.NoError(t, err)
	require.Equal(t, []int{1, 2}, applied)
	has, err := old.hasHistColumn(ctx, connRunner{conn})
	require.NoError(t, err)
	require.False(t, has)
	// Floats as that release's store wrote them: its insert column lists
	// (migrations are append-only, so migrations[:2] is its DDL).
	lset := labels.FromStrings("__name__", "migrated", "job", "j")
	fp, _ := fingerprint("m", lset, nil)
	require.NoError(t, conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s (%s) SELECT 'm', toUInt64(%d), toInt64(1000 * number + 1000), number + 0.5%s FROM system.numbers LIMIT 3",
		old.table(samplesTable), old.samplesColumns(), fp, map[bool]string{true: ", 0, -1"}[old.decimals])))
	require.NoError(t, conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s (tenant, hour, min_ts, fingerprint, metric_name, label_names, label_values) SELECT 'm', 0, 1000, toUInt64(%d), 'migrated', ['__name__', 'job'], ['migrated', 'j']",
		old.table(seriesTable), fp)))

	s := openStore(t, cfg)
	has, err = s.schema.hasHistColumn(ctx, connRunner{conn})
	require.NoError(t, err)
	require.True(t, has)
	var version uint32
	require.NoError(t, conn.QueryRow(ctx, "SELECT max(version) FROM "+s.schema.table(migrationsTable)).Scan(&version))
	require.Equal(t, uint32(migrations[len(migrations)-1].version), version)
	ts := s.ForTenant("m")
	h := testHistogram(2, histogram.UnknownCounterReset, 1)
	appendSamples(t, ts, lset, []hsample{{t: 2000, h: h}, {t: 4000, h: h}})
	requireSameSamples(t, []hsample{{t: 1000, v: 0.5}, {t: 2000, h: h}, {t: 3000, v: 2.5}, {t: 4000, h: h}}, readSamples(t, ts, "migrated"))
	// Migrating again is harmless, on 18.x too (no ADD COLUMN IF NOT EXISTS).
	require.NoError(t, conn.Exec(ctx, "TRUNCATE TABLE "+s.schema.table(migrationsTable)))
	_, err = s.schema.migrate(ctx, connRunner{conn})
	require.NoError(t, err)
}

// TestHistogramBatches reads many histogram series in batches small
// enough to be cut short, and with the sample budget: a histogram counts
// as one sample.
func TestHistogramBatches(t *testing.T) {
	s := newTestStore(t)
	ts := s.ForTenant("batch")
	app := ts.AppenderV2(t.Context())
	const series, points = 50, 20
	for i := range series {
		lset := labels.FromStrings("__name__", "hist_batch", "i", strconv.Itoa(i))
		for j := range points {
			var err error
			if (i+j)%3 == 0 {
				_, err = app.Append(0, lset, 0, int64(j)*15_000, float64(j), nil, nil, promstorage.AppendV2Options{})
			} else {
				_, err = app.Append(0, lset, 0, int64(j)*15_000, 0, testHistogram(int32(i%9), histogram.NotCounterReset, uint64(j+1)), nil, promstorage.AppendV2Options{})
			}
			require.NoError(t, err)
		}
	}
	require.NoError(t, app.Commit())
	q, err := ts.Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	set := q.Select(t.Context(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "hist_batch"))
	ss := set.(*sampleSet)
	ss.rowsMax = 3 * points // dense: read again in smaller batches
	n, hists, wantHists := 0, 0, 0
	for i := range series {
		for j := range points {
			if (i+j)%3 != 0 {
				wantHists++
			}
		}
	}
	for set.Next() {
		for _, sm := range iterSamples(t, set.At().Iterator(nil)) {
			n++
			if sm.h != nil {
				hists++
			}
		}
	}
	require.NoError(t, set.Err())
	require.Equal(t, series*points, n)
	require.Equal(t, wantHists, hists)

	// Histograms bulkier than a batch holds: read again, smaller.
	set = q.Select(t.Context(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "hist_batch"))
	set.(*sampleSet).histBytesMax = 200
	n = 0
	for set.Next() {
		n += len(iterSamples(t, set.At().Iterator(nil)))
	}
	require.NoError(t, set.Err())
	require.Equal(t, series*points, n)

	s.cfg.MaxSamplesPerQuery = func(tenancy.ID) int { return 3*points - 1 }
	set = q.Select(t.Context(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "hist_batch"))
	for set.Next() {
	}
	require.ErrorContains(t, set.Err(), "max-samples-per-query")
}

// genHistogramSeries generates n counter histogram series of points samples
// step ms apart from start, each with about 20 populated buckets, as a
// Prometheus client with default native histogram settings (schema 3)
// exposes for request latencies.
func genHistogramSeries(n, points int, start, step int64, seed uint64, each func(i, j int, t int64, h *histogram.Histogram)) {
	rnd := rand.New(rand.NewPCG(seed, 1))
	for i := range n {
		offset := int32(rnd.IntN(10)) - 20
		counts := make([]int64, 20)
		var zero uint64
		sum := 0.0
		rate := 1 + rnd.IntN(20)
		for j := range points {
			var count uint64
			for b := range counts {
				if rnd.IntN(20) < rate {
					counts[b] += int64(rnd.IntN(rate) + 1)
				}
				count += uint64(counts[b])
			}
			if rnd.IntN(4) == 0 {
				zero++
			}
			sum += float64(rnd.IntN(1000*rate)) / 997
			h := &histogram.Histogram{
				Schema: 3, ZeroThreshold: 2.938735877055719e-39, ZeroCount: zero, Count: count + zero, Sum: sum,
				PositiveSpans: []histogram.Span{{Offset: offset, Length: 12}, {Offset: 2, Length: 8}},
			}
			prev := int64(0)
			for _, c := range counts {
				h.PositiveBuckets = append(h.PositiveBuckets, c-prev)
				prev = c
			}
			each(i, j, start+int64(j)*step, h)
		}
	}
}

// promChunkBytes is the bytes per sample Prometheus' TSDB spends on the
// data of genHistogramSeries(n, points, _, step, 1): integer histogram
// chunks of 120 samples, each with its block's framing (length, encoding,
// CRC32: 7 bytes).
func promChunkBytes(n, points int, step int64) float64 {
	total := 0
	var (
		chk     *chunkenc.HistogramChunk
		app     chunkenc.Appender
		samples int
		series  = -1
	)
	flush := func() {
		if chk != nil {
			total += len(chk.Bytes()) + 7
		}
		chk = nil
	}
	genHistogramSeries(n, points, 0, step, 1, func(i, _ int, t int64, h *histogram.Histogram) {
		if i != series || samples == 120 {
			flush()
			series, samples = i, 0
		}
		if chk == nil {
			chk = chunkenc.NewHistogramChunk()
			app, _ = chk.Appender()
		}
		newChk, recoded, newApp, err := app.AppendHistogram(nil, 0, t, h, false)
		if err != nil {
			panic(err)
		}
		switch {
		case recoded:
			chk, app = newChk.(*chunkenc.HistogramChunk), newApp
		case newChk != nil:
			flush()
			chk, app, samples = newChk.(*chunkenc.HistogramChunk), newApp, 0
		}
		samples++
	})
	flush()
	return float64(total) / float64(n*points)
}

// FuzzDecodeHistogram feeds arbitrary bytes to the decoders: they fail or
// succeed, never panic, and what they accept encodes to bytes that decode
// to the same histogram (and, with minimal varints, to the bytes given).
func FuzzDecodeHistogram(f *testing.F) {
	for _, c := range histogramCases(0) {
		switch {
		case c.h != nil:
			f.Add(appendHistogram(nil, c.h))
		case c.fh != nil:
			f.Add(appendFloatHistogram(nil, c.fh))
		}
	}
	f.Add([]byte{0, 0x80})
	f.Add([]byte{1, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var h, h2 histogram.Histogram
		if decodeHistogram(string(b), &h) == nil {
			again := appendHistogram(nil, &h)
			require.NoError(t, decodeHistogram(string(again), &h2))
			require.Equal(t, bitsOf(hsample{h: &h}), bitsOf(hsample{h: &h2}))
			if len(again) == len(b) {
				require.Equal(t, b, again)
			}
		}
		var fh, fh2 histogram.FloatHistogram
		if decodeFloatHistogram(string(b), &fh) == nil {
			again := appendFloatHistogram(nil, &fh)
			require.NoError(t, decodeFloatHistogram(string(again), &fh2))
			require.Equal(t, bitsOf(hsample{fh: &fh}), bitsOf(hsample{fh: &fh2}))
			if len(again) == len(b) {
				require.Equal(t, b, again)
			}
		}
	})
}

// TestHistogramPromQL runs PromQL's histogram functions over the store.
func TestHistogramPromQL(t *testing.T) {
	s := newTestStore(t)
	ts := s.ForTenant("promql")
	var samples []hsample
	for j := range 40 {
		samples = append(samples, hsample{t: int64(j) * 15_000, h: testHistogram(0, histogram.NotCounterReset, uint64(j+1))})
	}
	samples = append(samples, hsample{t: 40 * 15_000, h: &histogram.Histogram{Sum: math.Float64frombits(value.StaleNaN)}})
	appendSamples(t, ts, labels.FromStrings("__name__", "req_latency", "job", "api"), samples)
	fsamples := make([]hsample, 0, 40)
	for j := range 40 {
		fsamples = append(fsamples, hsample{t: int64(j) * 15_000, fh: testFloatHistogram(0, histogram.GaugeType, uint64(j+1))})
	}
	appendSamples(t, ts, labels.FromStrings("__name__", "gauge_hist", "job", "api"), fsamples)

	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	at := time.UnixMilli(39 * 15_000)
	eval := func(expr string, at time.Time) promql.Vector {
		q, err := engine.NewInstantQuery(t.Context(), ts, nil, expr, at)
		require.NoError(t, err)
		defer q.Close()
		res := q.Exec(t.Context())
		require.NoError(t, res.Err, expr)
		v, err := res.Vector()
		require.NoError(t, err, expr)
		return v
	}
	v := eval(`histogram_count(req_latency)`, at)
	require.Len(t, v, 1)
	require.Equal(t, float64(12*40), v[0].F)
	v = eval(`histogram_count(rate(req_latency[1m]))`, at)
	require.Len(t, v, 1)
	require.InDelta(t, 12.0/15, v[0].F, 1e-9, "12 observations per 15 s")
	v = eval(`histogram_sum(gauge_hist)`, at)
	require.Len(t, v, 1)
	require.Equal(t, -12.5*40, v[0].F)
	v = eval(`histogram_quantile(0.5, req_latency)`, at)
	require.Len(t, v, 1)
	require.False(t, math.IsNaN(v[0].F))
	require.Empty(t, eval(`req_latency`, time.UnixMilli(41*15_000)), "the stale marker ends the series")
}

// TestHistogramContinuedHints: a counter histogram written with the
// unknown hint that continues the previous sample reads back
// NotCounterReset, as from Prometheus' chunks, through Select and the
// ChunkQuerier, also when that sample lies before the range; a reset, a
// layout change, a stale marker or a float before it keep it unknown.
func TestHistogramContinuedHints(t *testing.T) {
	s := newTestStore(t)
	ts := s.ForTenant("hints")
	const t0, step = 1_700_000_000_000, 15_000
	u := histogram.UnknownCounterReset
	var in []hsample
	for i := range 12 {
		k := uint64(i + 1)
		if i >= 6 {
			k = uint64(i - 5) // a reset at 6
		}
		h := testHistogram(0, u, k)
		if i == 9 {
			h = testHistogram(1, u, k+1) // a schema change
		}
		in = append(in, hsample{t: t0 + int64(i)*step, h: h})
	}
	in[3] = hsample{t: in[3].t, h: &histogram.Histogram{Sum: math.Float64frombits(value.StaleNaN)}}
	in = append(in, hsample{t: t0 + 12*step, v: 1}, hsample{t: t0 + 13*step, h: testHistogram(0, u, 50)}, hsample{t: t0 + 14*step, h: testHistogram(0, u, 51)})
	appendSamples(t, ts, labels.FromStrings("__name__", "hints"), in)
	//            0  1    2    3(stale) 4  5    6(reset) 7    8    9(schema) 10   11  12(float) 13  14
	continued := []bool{false, true, true, false, false, true, false, true, true, false, false, true, false, false, true}
	// 10 continues 9? schema 1 then 0: no (a layout change).
	for _, mint := range []int64{t0, t0 + 2*step, t0 + 5*step, t0 + 8*step, t0 + 14*step} {
		q, err := ts.Querier(mint, math.MaxInt64)
		require.NoError(t, err)
		set := q.Select(t.Context(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "hints"))
		require.True(t, set.Next())
		got := iterSamples(t, set.At().Iterator(nil))
		require.False(t, set.Next())
		require.NoError(t, set.Err())
		first := int((mint - t0) / step)
		require.Len(t, got, len(in)-first)
		cq, err := ts.ChunkQuerier(mint, math.MaxInt64)
		require.NoError(t, err)
		cset := cq.Select(t.Context(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "hints"))
		require.True(t, cset.Next())
		var chunked []hsample
		cit := cset.At().Iterator(nil)
		for cit.Next() {
			for _, sm := range iterSamples(t, cit.At().Chunk.Iterator(nil)) {
				if sm.t >= mint {
					chunked = append(chunked, sm)
				}
			}
		}
		require.NoError(t, cit.Err())
		require.Len(t, chunked, len(got))
		for j, sm := range got {
			i := first + j
			w := in[i]
			if w.h == nil || value.IsStaleNaN(w.h.Sum) {
				continue
			}
			want := u
			if continued[i] {
				want = histogram.NotCounterReset
			}
			require.Equal(t, want, sm.h.CounterResetHint, "Select over [%d, ...]: sample %d", mint, i)
			require.Equal(t, want, chunked[j].h.CounterResetHint, "ChunkQuerier over [%d, ...]: sample %d", mint, i)
			w.h = w.h.Copy()
			w.h.CounterResetHint = want
			require.Equal(t, bitsOf(w), bitsOf(sm))
		}
	}
}
