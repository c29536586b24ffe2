package remotewrite

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// point is one sample read back: a float, or a histogram (H or FH).
type point struct {
	T  int64
	V  float64
	H  *histogram.Histogram
	FH *histogram.FloatHistogram
}

// readPoints returns every sample of tenant id's series, floats and
// histograms, by series.
func readPoints(t testing.TB, s storage.MetricsStore, id tenancy.ID) map[string][]point {
	t.Helper()
	q, err := s.ForTenant(id).Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer func() { require.NoError(t, q.Close()) }()
	set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	out := map[string][]point{}
	var it chunkenc.Iterator
	for set.Next() {
		it = set.At().Iterator(it)
		var got []point
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				got = append(got, point{T: ts, V: v})
			case chunkenc.ValHistogram:
				ts, h := it.AtHistogram(nil)
				got = append(got, point{T: ts, H: h})
			case chunkenc.ValFloatHistogram:
				ts, fh := it.AtFloatHistogram(nil)
				got = append(got, point{T: ts, FH: fh})
			}
		}
		require.NoError(t, it.Err())
		out[set.At().Labels().String()] = got
	}
	require.NoError(t, set.Err())
	return out
}

func readExemplars(t testing.TB, s storage.MetricsStore, id tenancy.ID) map[string][]exemplar.Exemplar {
	t.Helper()
	q, err := s.ForTenant(id).ExemplarQuerier(context.Background())
	require.NoError(t, err)
	res, err := q.Select(math.MinInt64, math.MaxInt64, []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")})
	require.NoError(t, err)
	out := map[string][]exemplar.Exemplar{}
	for _, r := range res {
		out[r.SeriesLabels.String()] = r.Exemplars
	}
	return out
}

func readMetadata(t testing.TB, s storage.MetricsStore, id tenancy.ID) map[string]metadata.Metadata {
	t.Helper()
	m, err := s.ForTenant(id).Metadata(context.Background(), "", 0)
	require.NoError(t, err)
	return m
}

// The histograms of the tests: integer and float, exponential with both
// sides and a zero bucket, custom buckets, a stale marker.
func testHistograms() (exp *histogram.Histogram, fexp *histogram.FloatHistogram, custom *histogram.Histogram, stale *histogram.Histogram) {
	exp = &histogram.Histogram{
		CounterResetHint: histogram.NotCounterReset,
		Schema:           3, Count: 12, Sum: 34.5, ZeroThreshold: 0.001, ZeroCount: 2,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}, {Offset: 3, Length: 1}}, PositiveBuckets: []int64{1, 3, -1}, // 1, 4, 3
		NegativeSpans: []histogram.Span{{Offset: -2, Length: 1}}, NegativeBuckets: []int64{2},
	}
	fexp = &histogram.FloatHistogram{
		CounterResetHint: histogram.GaugeType,
		Schema:           -2, Count: 3.5, Sum: -7, ZeroThreshold: 1e-9, ZeroCount: 0.5,
		PositiveSpans: []histogram.Span{{Offset: 1, Length: 2}}, PositiveBuckets: []float64{1.25, 1.75},
	}
	custom = &histogram.Histogram{
		Schema: histogram.CustomBucketsSchema, Count: 6, Sum: 2.5,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 3}}, PositiveBuckets: []int64{1, 2, -1}, // 1, 3, 2
		CustomValues: []float64{0.1, 0.5, 1},
	}
	stale = &histogram.Histogram{Sum: math.Float64frombits(value.StaleNaN)}
	return exp, fexp, custom, stale
}

func requireSameHistogram(t *testing.T, want *histogram.Histogram, got point) {
	t.Helper()
	require.NotNil(t, got.H, "an integer histogram")
	if value.IsStaleNaN(want.Sum) {
		require.True(t, value.IsStaleNaN(got.H.Sum), "a stale marker")
		return
	}
	require.True(t, want.Equals(got.H), "want %v, got %v", want, got.H)
}

// Remote write 1.0 with every kind of sample: histograms of each shape
// are stored bit for bit, beside floats; an invalid one rejects that
// sample only (400, the rest stored); exemplars are stored; the metadata
// sent by family reaches the store under the family name, a classic
// histogram's foo for its foo_bucket, foo_sum and foo_count.
func TestWriteV1HistogramsExemplarsMetadata(t *testing.T) {
	store := openStore(t, nil)
	reg := prometheus.NewRegistry()
	h := newWrite(testConfig(t), store, nil, nil, reg)
	now := time.Now().Truncate(time.Millisecond)
	ms := now.UnixMilli()
	exp, fexp, custom, stale := testHistograms()

	invalid := prompb.FromIntHistogram(ms+3000, &histogram.Histogram{Schema: 9, Count: 1, PositiveSpans: []histogram.Span{{Length: 1}}, PositiveBuckets: []int64{1}})
	req := &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{
			{Labels: series("__name__", "latency_seconds", "job", "api"), Histograms: []prompb.Histogram{
				prompb.FromIntHistogram(ms, exp), prompb.FromIntHistogram(ms+1000, custom), invalid, prompb.FromIntHistogram(ms+2000, stale),
			}},
			{Labels: series("__name__", "queue_depth"), Histograms: []prompb.Histogram{prompb.FromFloatHistogram(ms, fexp)}},
			{
				Labels: series("__name__", "foo_bucket", "le", "+Inf"), Samples: samplesAt(now, 3),
				Exemplars: []prompb.Exemplar{
					{Labels: []prompb.Label{{Name: "trace_id", Value: "b"}}, Value: 0.2, Timestamp: ms + 1},
					{Labels: []prompb.Label{{Name: "trace_id", Value: "a"}}, Value: 0.1, Timestamp: ms}, // unsorted: sorted for the store
				},
			},
			{Labels: series("__name__", "foo_sum"), Samples: samplesAt(now, 1.5)},
			{Labels: series("__name__", "foo_count"), Samples: samplesAt(now, 3)},
			{Labels: series("__name__", "requests_total"), Samples: samplesAt(now, 10)},
		},
		Metadata: []prompb.MetricMetadata{
			{Type: prompb.MetricMetadata_HISTOGRAM, MetricFamilyName: "foo", Help: "Foo latency.", Unit: "seconds"},
			{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "requests_total", Help: "Requests."},
			{Type: prompb.MetricMetadata_HISTOGRAM, MetricFamilyName: "latency_seconds", Help: "Latency."},
		},
	}
	w := post(h, &writer, encode(t, req), nil)
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), "1 of 6 series rejected (1 samples rejected, 8 stored)")
	require.Contains(t, w.Body.String(), "invalid schema")

	got := readPoints(t, store, writer.Tenant)
	lat := got[`{__name__="latency_seconds", job="api"}`]
	require.Len(t, lat, 3, "the invalid histogram alone is rejected")
	requireSameHistogram(t, exp, lat[0])
	requireSameHistogram(t, custom, lat[1])
	requireSameHistogram(t, stale, lat[2])
	q := got[`{__name__="queue_depth"}`]
	require.Len(t, q, 1)
	require.NotNil(t, q[0].FH, "a float histogram")
	require.True(t, fexp.Equals(q[0].FH), "want %v, got %v", fexp, q[0].FH)
	require.Equal(t, []point{{T: ms, V: 3}}, got[`{__name__="foo_bucket", le="+Inf"}`])

	ex := readExemplars(t, store, writer.Tenant)[`{__name__="foo_bucket", le="+Inf"}`]
	require.Len(t, ex, 2)
	require.Equal(t, "a", ex[0].Labels.Get("trace_id"))
	require.Equal(t, ms+1, ex[1].Ts)

	require.Equal(t, map[string]metadata.Metadata{
		"foo":             {Type: model.MetricTypeHistogram, Help: "Foo latency.", Unit: "seconds"},
		"requests_total":  {Type: model.MetricTypeCounter, Help: "Requests."},
		"latency_seconds": {Type: model.MetricTypeHistogram, Help: "Latency."},
	}, readMetadata(t, store, writer.Tenant))
	require.Equal(t, 1.0, counter(t, reg, "luminate_ingest_samples_rejected_total", "tenant", "acme", "reason", string(ReasonInvalidHistogram)))
	require.Equal(t, 8.0, counter(t, reg, "luminate_ingest_samples_accepted_total", "tenant", "acme"))
	require.Equal(t, 2.0, counter(t, reg, "luminate_ingest_exemplars_accepted_total", "tenant", "acme"))
}

// Prometheus sends remote write 1.0 metadata in requests of its own: it
// waits for the first request carrying a series of its family.
func TestWriteV1MetadataApart(t *testing.T) {
	store := openStore(t, nil)
	h := newWrite(testConfig(t), store, nil, nil, prometheus.NewRegistry())
	now := time.Now().Truncate(time.Millisecond)
	meta := &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{
		{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests", Help: "Requests served."}, // OpenMetrics: the family has no _total
		{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "never_sent", Help: "No series."},
	}}
	w := post(h, &writer, encode(t, meta), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Empty(t, readMetadata(t, store, writer.Tenant), "no series yet")

	other := tenancy.Principal{Tenant: "other", Scopes: writer.Scopes}
	samples := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("__name__", "http_requests_total"), Samples: samplesAt(now, 1)}}}
	w = post(h, &other, encode(t, samples), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Empty(t, readMetadata(t, store, other.Tenant), "another tenant's metadata is not its own")

	w = post(h, &writer, encode(t, samples), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Equal(t, map[string]metadata.Metadata{
		"http_requests": {Type: model.MetricTypeCounter, Help: "Requests served."},
	}, readMetadata(t, store, writer.Tenant))

	// The family without series still waits; a new sending replaces it.
	meta.Metadata[1].Help = "Still no series."
	w = post(h, &writer, encode(t, meta), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	later := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("__name__", "never_sent"), Samples: samplesAt(now, 2)}}}
	w = post(h, &writer, encode(t, later), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Equal(t, metadata.Metadata{Type: model.MetricTypeGauge, Help: "Still no series."}, readMetadata(t, store, writer.Tenant)["never_sent"])
}

// The pending metadata is bounded: families beyond
// --ingest.max-pending-metadata wait for their next sending.
func TestPendingMetadataBounded(t *testing.T) {
	p := newPendingMetadata(2, nil)
	p.put("a", map[string]metadata.Metadata{"x": {Help: "1"}, "y": {Help: "2"}, "z": {Help: "3"}}, true)
	require.Len(t, p.take("a"), 2)
	require.False(t, p.has("a"))
	p.put("a", map[string]metadata.Metadata{"x": {Help: "1"}}, true)
	p.put("b", map[string]metadata.Metadata{"x": {Help: "1"}, "y": {Help: "2"}}, true)
	require.Len(t, p.take("b"), 1, "the bound is for all tenants")
	p.put("a", map[string]metadata.Metadata{"x": {Help: "newer"}}, true)
	p.put("a", map[string]metadata.Metadata{"x": {Help: "older"}}, false)
	require.Equal(t, map[string]metadata.Metadata{"x": {Help: "newer"}}, p.take("a"))
}

// No tenant's pending metadata crowds out another's: each holds at most
// its max_metadata, the most families it may keep anyway.
func TestPendingMetadataPerTenant(t *testing.T) {
	p := newPendingMetadata(10, func(id tenancy.ID) int { return map[tenancy.ID]int{"noisy": 3}[id] })
	noisy := map[string]metadata.Metadata{}
	for i := range 8 {
		noisy[fmt.Sprint("f", i)] = metadata.Metadata{Help: "x"}
	}
	p.put("noisy", noisy, true)
	p.put("noisy", map[string]metadata.Metadata{"g": {Help: "y"}}, true)
	p.put("quiet", map[string]metadata.Metadata{"a": {Help: "1"}, "b": {Help: "2"}}, true)
	require.Len(t, p.take("noisy"), 3)
	require.Len(t, p.take("quiet"), 2, "the noisy tenant left room")
}

func TestFamilyName(t *testing.T) {
	for _, tc := range []struct {
		name   string
		typ    model.MetricType
		native bool
		want   string
	}{
		{"foo_bucket", model.MetricTypeHistogram, false, "foo"},
		{"foo_sum", model.MetricTypeHistogram, false, "foo"},
		{"foo_count", model.MetricTypeSummary, false, "foo"},
		{"foo", model.MetricTypeSummary, false, "foo"},
		{"foo_gcount", model.MetricTypeGaugeHistogram, false, "foo"},
		{"request_count", model.MetricTypeHistogram, true, "request_count"}, // a native histogram is its family
		{"requests_total", model.MetricTypeCounter, false, "requests_total"},
		{"_sum", model.MetricTypeSummary, false, "_sum"},
	} {
		require.Equal(t, tc.want, familyName(tc.name, tc.typ, tc.native), tc.name)
	}
}

// Remote write 2.0 with histograms, exemplars and metadata: the written
// headers count what the store kept. An exemplar the store refuses (older
// than the series' newest) is not counted, and fails nothing; an invalid
// histogram is a 400, the rest of the request kept.
func TestWriteV2HistogramsExemplarsMetadata(t *testing.T) {
	store := openStore(t, nil)
	reg := prometheus.NewRegistry()
	h := newWrite(testConfig(t), store, nil, nil, reg)
	now := time.Now().Truncate(time.Millisecond)
	ms := now.UnixMilli()
	exp, fexp, custom, _ := testHistograms()

	b := newV2Request()
	hs := b.add("__name__", "latency_seconds")
	hs.Histograms = []writev2.Histogram{writev2.FromIntHistogram(0, ms, exp), writev2.FromIntHistogram(0, ms+1000, custom)}
	hs.Exemplars = []writev2.Exemplar{{LabelsRefs: b.refs("trace_id", "h1"), Value: 0.3, Timestamp: ms}}
	hs.Metadata = writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_HISTOGRAM, HelpRef: b.syms.Symbolize("Latency."), UnitRef: b.syms.Symbolize("seconds")}
	b.add("__name__", "queue_depth").Histograms = []writev2.Histogram{writev2.FromFloatHistogram(0, ms, fexp)}
	bucket := b.add("__name__", "foo_bucket", "le", "1")
	bucket.Samples = samplesV2At(now, 4)
	bucket.Exemplars = []writev2.Exemplar{{LabelsRefs: b.refs("trace_id", "f1"), Value: 0.5, Timestamp: ms}}
	bucket.Metadata = writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_HISTOGRAM, HelpRef: b.syms.Symbolize("Foo.")}
	w := postV2(h, &writer, b.encode(t), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	s, hw, e := writtenHeaders(t, w)
	require.Equal(t, [3]int{1, 3, 2}, [3]int{s, hw, e}, "samples, histograms, exemplars written")
	got := readPoints(t, store, writer.Tenant)
	requireSameHistogram(t, exp, got[`{__name__="latency_seconds"}`][0])
	requireSameHistogram(t, custom, got[`{__name__="latency_seconds"}`][1])
	require.True(t, fexp.Equals(got[`{__name__="queue_depth"}`][0].FH))
	require.Equal(t, map[string]metadata.Metadata{
		"latency_seconds": {Type: model.MetricTypeHistogram, Help: "Latency.", Unit: "seconds"},
		"foo":             {Type: model.MetricTypeHistogram, Help: "Foo."},
	}, readMetadata(t, store, writer.Tenant), "filed under the family, as /api/v1/metadata shows it")

	// An older exemplar for foo_bucket (refused by the store), a new one
	// for latency_seconds, beside an invalid histogram.
	b = newV2Request()
	bucket = b.add("__name__", "foo_bucket", "le", "1")
	bucket.Samples = samplesV2At(now.Add(time.Minute), 5)
	bucket.Exemplars = []writev2.Exemplar{{LabelsRefs: b.refs("trace_id", "old"), Value: 0.5, Timestamp: ms - 1000}}
	hs = b.add("__name__", "latency_seconds")
	bad := *exp
	bad.Count = 99
	hs.Histograms = []writev2.Histogram{writev2.FromIntHistogram(0, ms+2000, &bad), writev2.FromIntHistogram(0, ms+3000, exp)}
	hs.Exemplars = []writev2.Exemplar{{LabelsRefs: b.refs("trace_id", "h2"), Value: 0.4, Timestamp: ms + 3000}}
	w = postV2(h, &writer, b.encode(t), nil)
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), "observation count")
	s, hw, e = writtenHeaders(t, w)
	require.Equal(t, [3]int{1, 1, 1}, [3]int{s, hw, e}, "the refused exemplar and the invalid histogram are not written")
	require.Len(t, readPoints(t, store, writer.Tenant)[`{__name__="latency_seconds"}`], 3)
	ex := readExemplars(t, store, writer.Tenant)
	require.Len(t, ex[`{__name__="foo_bucket", le="1"}`], 1, "the older exemplar is refused")
	require.Len(t, ex[`{__name__="latency_seconds"}`], 2)
	require.Equal(t, 1.0, counter(t, reg, "luminate_ingest_exemplars_refused_total", "tenant", "acme"))

	// An exemplar refused alone fails nothing.
	b = newV2Request()
	bucket = b.add("__name__", "foo_bucket", "le", "1")
	bucket.Samples = samplesV2At(now.Add(2*time.Minute), 6)
	bucket.Exemplars = []writev2.Exemplar{{LabelsRefs: b.refs("trace_id", "older"), Value: 0.5, Timestamp: ms - 2000}}
	w = postV2(h, &writer, b.encode(t), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	s, hw, e = writtenHeaders(t, w)
	require.Equal(t, [3]int{1, 0, 0}, [3]int{s, hw, e})
}

// With --ingest.created-timestamp-zero-ingestion, a sample's start
// timestamp becomes a zero sample before it, once: the next samples of
// the same start timestamp inject nothing more.
func TestWriteV2StartZero(t *testing.T) {
	store := openStore(t, nil)
	cfg := testConfig(t)
	cfg.StartZeroIngestion = true
	g := NewIngester(cfg, nil, nil, prometheus.NewRegistry())
	h := route(NewHandler(g), store)
	now := time.Now().Truncate(time.Millisecond)
	ms := now.UnixMilli()
	exp, _, _, _ := testHistograms()
	for i := range 3 {
		b := newV2Request()
		c := b.add("__name__", "requests_total")
		c.Samples = []writev2.Sample{{Value: float64(10 + i), Timestamp: ms + int64(i)*1000, StartTimestamp: ms - 5000}}
		hist := writev2.FromIntHistogram(ms-4000, ms+int64(i)*1000, exp)
		b.add("__name__", "latency_seconds").Histograms = []writev2.Histogram{hist}
		w := postV2(h, &writer, b.encode(t), nil)
		require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
		s, hw, _ := writtenHeaders(t, w)
		require.Equal(t, [2]int{1, 1}, [2]int{s, hw}, "the zero samples are not the sender's")
	}
	got := readPoints(t, store, writer.Tenant)
	require.Equal(t, []point{{T: ms - 5000}, {T: ms, V: 10}, {T: ms + 1000, V: 11}, {T: ms + 2000, V: 12}}, got[`{__name__="requests_total"}`])
	lat := got[`{__name__="latency_seconds"}`]
	require.Len(t, lat, 4)
	require.Equal(t, ms-4000, lat[0].T)
	require.NotNil(t, lat[0].H)
	require.Equal(t, uint64(0), lat[0].H.Count)
	require.Equal(t, exp.Schema, lat[0].H.Schema)
	require.Equal(t, 2, g.startZero.Len())

	// Off (the default), the start timestamp stores nothing.
	store = openStore(t, nil)
	h = newWrite(testConfig(t), store, nil, nil, prometheus.NewRegistry())
	b := newV2Request()
	b.add("__name__", "requests_total").Samples = []writev2.Sample{{Value: 1, Timestamp: ms, StartTimestamp: ms - 5000}}
	require.Equal(t, http.StatusNoContent, postV2(h, &writer, b.encode(t), nil).Code)
	require.Equal(t, []point{{T: ms, V: 1}}, readPoints(t, store, writer.Tenant)[`{__name__="requests_total"}`])
}

// A request whose histograms decode to more than the per-request counts
// let it reserve holds what it took from the in-flight budget, or, when
// other tenants hold the rest, is refused with 503 before it is stored.
func TestInflightGrowsForHistograms(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxSeriesPerRequest, cfg.MaxLabelsPerRequest, cfg.MaxSamplesPerRequest = 10, 100, 10
	const buckets = 20_000
	deltas := make([]int64, buckets)
	deltas[0] = 1
	big := &histogram.Histogram{Count: buckets, Sum: 1, PositiveSpans: []histogram.Span{{Length: buckets}}, PositiveBuckets: deltas}
	now := time.Now().Truncate(time.Millisecond)
	body := encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels: series("__name__", "wide"), Histograms: []prompb.Histogram{prompb.FromIntHistogram(now.UnixMilli(), big)},
	}}})
	n, err := snappy.DecodedLen(body)
	require.NoError(t, err)

	held := heldStore{Store: openStore(t, nil), waiting: new(atomic.Int64), release: make(chan struct{})}
	g := NewIngester(cfg, nil, nil, prometheus.NewRegistry())
	hd := route(NewHandler(g), held)
	estimate := int64(len(body)+n) + g.decodedBound(rw1, n)
	require.Less(t, estimate, int64(buckets*8), "the counts bound far less than the buckets take")
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- post(hd, &writer, body, nil) }()
	require.Eventually(t, func() bool { return held.waiting.Load() == 1 }, 10*time.Second, time.Millisecond)
	require.Greater(t, g.inflight.inUse(), int64(buckets*8), "held while stored: what it decoded to")
	close(held.release)
	w := <-done
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Zero(t, g.inflight.inUse())

	// Others hold most of the budget: it fits its estimate, not what it took.
	cfg.MaxInflightBytes = 4 * estimate
	g = NewIngester(cfg, nil, nil, prometheus.NewRegistry())
	hd = route(NewHandler(g), openStore(t, nil))
	other, err := g.inflight.acquire("other", 2*estimate)
	require.NoError(t, err)
	w = post(hd, &writer, body, nil)
	require.Equal(t, http.StatusServiceUnavailable, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), "--ingest.max-inflight-bytes")
	g.inflight.release(other)
	require.Zero(t, g.inflight.inUse())
}

// Prometheus sends a series' exemplars in an entry of their own, after
// its samples': they reach the store through AppendExemplars. Those of a
// series the store does not hold are refused, and fail nothing.
func TestWriteExemplarsApart(t *testing.T) {
	for _, startZero := range []bool{false, true} {
		t.Run(fmt.Sprint("start zero ", startZero), func(t *testing.T) {
			store := openStore(t, nil)
			reg := prometheus.NewRegistry()
			cfg := testConfig(t)
			cfg.StartZeroIngestion = startZero
			h := newWrite(cfg, store, nil, nil, reg)
			now := time.Now().Truncate(time.Millisecond)
			ms := now.UnixMilli()
			req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
				{Labels: series("__name__", "requests_total", "job", "a"), Samples: samplesAt(now, 1)},
				{Labels: series("__name__", "requests_total", "job", "a"), Exemplars: []prompb.Exemplar{
					{Labels: []prompb.Label{{Name: "trace_id", Value: "t1"}}, Value: 1, Timestamp: ms},
				}},
				{Labels: series("__name__", "unknown_total"), Exemplars: []prompb.Exemplar{
					{Labels: []prompb.Label{{Name: "trace_id", Value: "t2"}}, Value: 1, Timestamp: ms},
				}},
			}}
			w := post(h, &writer, encode(t, req), nil)
			require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
			ex := readExemplars(t, store, writer.Tenant)
			require.Len(t, ex[`{__name__="requests_total", job="a"}`], 1)
			require.Empty(t, ex[`{__name__="unknown_total"}`])
			require.Equal(t, 1.0, counter(t, reg, "luminate_ingest_exemplars_accepted_total", "tenant", "acme"))
			require.Equal(t, 1.0, counter(t, reg, "luminate_ingest_exemplars_refused_total", "tenant", "acme"))

			b := newV2Request()
			b.add("__name__", "requests_total", "job", "a").Exemplars = []writev2.Exemplar{{LabelsRefs: b.refs("trace_id", "t3"), Value: 2, Timestamp: ms + 1}}
			w = postV2(h, &writer, b.encode(t), nil)
			require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
			s, hw, e := writtenHeaders(t, w)
			require.Equal(t, [3]int{0, 0, 1}, [3]int{s, hw, e})
			require.Len(t, readExemplars(t, store, writer.Tenant)[`{__name__="requests_total", job="a"}`], 2)
		})
	}
}
