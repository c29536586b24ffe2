package remotewrite

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/badger"
	"github.com/luminate-io/luminate/tenancy"
)

// v2Request builds a remote write 2.0 request, symbolizing labels as a
// sender does.
type v2Request struct {
	syms writev2.SymbolsTable
	req  writev2.Request
}

func newV2Request() *v2Request { return &v2Request{syms: writev2.NewSymbolTable()} }

// add appends a series with labels kv and returns it for the caller to
// fill.
func (b *v2Request) add(kv ...string) *writev2.TimeSeries {
	var refs []uint32
	for _, s := range kv {
		refs = append(refs, b.syms.Symbolize(s))
	}
	b.req.Timeseries = append(b.req.Timeseries, writev2.TimeSeries{LabelsRefs: refs})
	return &b.req.Timeseries[len(b.req.Timeseries)-1]
}

func (b *v2Request) encode(t testing.TB) []byte {
	t.Helper()
	b.req.Symbols = b.syms.Symbols()
	data, err := b.req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, data)
}

func samplesV2At(start time.Time, vs ...float64) []writev2.Sample {
	var out []writev2.Sample
	for i, v := range vs {
		out = append(out, writev2.Sample{Value: v, Timestamp: start.Add(time.Duration(i) * 15 * time.Second).UnixMilli()})
	}
	return out
}

// v2Headers are the headers of a remote write 2.0 request.
var v2Headers = map[string]string{
	"Content-Type":                      "application/x-protobuf;proto=io.prometheus.write.v2.Request",
	"X-Prometheus-Remote-Write-Version": "2.0.0",
}

// postV2 sends body to h as a remote write 2.0 request, hdr overriding
// the headers ("" deletes one).
func postV2(h http.Handler, p *tenancy.Principal, body []byte, hdr map[string]string) *httptest.ResponseRecorder {
	all := map[string]string{}
	for k, v := range v2Headers {
		all[k] = v
	}
	for k, v := range hdr {
		all[k] = v
	}
	return post(h, p, body, all)
}

// written returns the X-Prometheus-Remote-Write-*-Written headers of w,
// -1 for a missing one.
func writtenHeaders(t testing.TB, w *httptest.ResponseRecorder) (samples, histograms, exemplars int) {
	t.Helper()
	get := func(name string) int {
		v := w.Header().Get(name)
		if v == "" {
			return -1
		}
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "%s: %q", name, v)
		return n
	}
	return get("X-Prometheus-Remote-Write-Samples-Written"),
		get("X-Prometheus-Remote-Write-Histograms-Written"),
		get("X-Prometheus-Remote-Write-Exemplars-Written")
}

func requireWritten(t testing.TB, w *httptest.ResponseRecorder, samples int) {
	t.Helper()
	s, h, e := writtenHeaders(t, w)
	require.Equal(t, [3]int{samples, 0, 0}, [3]int{s, h, e}, "samples, histograms, exemplars written")
}

func TestWriteV2Success(t *testing.T) {
	store := openStore(t, nil)
	reg := prometheus.NewRegistry()
	h := newWrite(testConfig(t), store, nil, nil, reg)
	now := time.Now().Truncate(time.Millisecond)

	b := newV2Request()
	ts := b.add("__name__", "http_requests_total", "path", "/", "code", "200")
	ts.Samples = samplesV2At(now, 1, 2, 3)
	ts.Samples[0].StartTimestamp = now.Add(-time.Hour).UnixMilli()
	ts.Exemplars = []writev2.Exemplar{{LabelsRefs: []uint32{b.syms.Symbolize("trace_id"), b.syms.Symbolize("abc")}, Value: 1, Timestamp: now.UnixMilli()}}
	ts.Metadata = writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: b.syms.Symbolize("Requests served.")}
	// Unsorted, with an empty value to drop, a UTF-8 name and an Inf.
	b.add("zone", "eu", "__name__", "temperature.celsius", "empty", "", "région", "ü").Samples = samplesV2At(now, math.Inf(1))

	w := postV2(h, &writer, b.encode(t), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	s, hs, e := writtenHeaders(t, w)
	require.Equal(t, [3]int{4, 0, 1}, [3]int{s, hs, e}, "samples, histograms, exemplars written")

	require.Equal(t, map[string][]tsample{
		`{__name__="http_requests_total", code="200", path="/"}`:    {{now.UnixMilli(), 1}, {now.Add(15 * time.Second).UnixMilli(), 2}, {now.Add(30 * time.Second).UnixMilli(), 3}},
		`{__name__="temperature.celsius", "région"="ü", zone="eu"}`: {{now.UnixMilli(), math.Inf(1)}},
	}, readBack(t, store, writer.Tenant))
	require.Empty(t, readBack(t, store, "other-tenant"), "only the token's tenant gets the data")

	require.Equal(t, 4.0, counter(t, reg, "luminate_ingest_samples_received_total", "tenant", "acme"))
	require.Equal(t, 4.0, counter(t, reg, "luminate_ingest_samples_accepted_total", "tenant", "acme"))
	require.Equal(t, 1.0, counter(t, reg, "luminate_ingest_requests_total", "tenant", "acme", "code", "204"))

	t.Run("without a version header", func(t *testing.T) {
		b := newV2Request()
		b.add("__name__", "no_version").Samples = samplesV2At(now, 1)
		w := postV2(h, &writer, b.encode(t), map[string]string{"X-Prometheus-Remote-Write-Version": ""})
		require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
		requireWritten(t, w, 1)
	})
	t.Run("empty request", func(t *testing.T) {
		w := postV2(h, &writer, newV2Request().encode(t), nil)
		require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
		requireWritten(t, w, 0)
	})
}

func TestWriteV2Partial(t *testing.T) {
	store := openStore(t, nil)
	reg := prometheus.NewRegistry()
	cfg := testConfig(t)
	cfg.MaxLabelsPerSeries = 5
	h := newWrite(cfg, store, nil, nil, reg)
	now := time.Now().Truncate(time.Millisecond)

	b := newV2Request()
	b.add("__name__", "good", "job", "a").Samples = samplesV2At(now, 1, 2)
	b.add("job", "nameless").Samples = samplesV2At(now, 1, 2, 3)
	b.add("__name__", "stolen", tenancy.Label, "other-tenant").Samples = samplesV2At(now, 9)
	b.add("__name__", "dup", "a", "1", "a", "2").Samples = samplesV2At(now, 1)
	b.add("__name__", "wide", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5").Samples = samplesV2At(now, 1)
	b.add("__name__", "bad\xffutf8").Samples = samplesV2At(now, 1)
	// One sample too old, one too far in the future, one fine.
	b.add("__name__", "mixed").Samples = []writev2.Sample{
		{Value: 1, Timestamp: now.Add(-31 * 24 * time.Hour).UnixMilli()},
		{Value: 2, Timestamp: now.Add(time.Hour).UnixMilli()},
		{Value: 3, Timestamp: now.UnixMilli()},
	}
	w := postV2(h, &writer, b.encode(t), nil)
	require.Equal(t, http.StatusBadRequest, w.Code)
	body := w.Body.String()
	require.Contains(t, body, "6 of 7 series rejected (9 samples rejected, 3 stored)")
	require.Contains(t, body, `series {job="nameless"}: no metric name`, "the first rejected series is named")
	requireWritten(t, w, 3)

	requirePartialOutcome(t, store, reg, now, map[Reason]float64{
		ReasonMissingMetricName: 3, ReasonTenantLabel: 1, ReasonDuplicateLabel: 1, ReasonTooManyLabels: 1,
		ReasonInvalidMetricName: 1, ReasonTooOld: 1, ReasonTooFarInFuture: 1,
	})
}

func TestWriteV2TenantLabel(t *testing.T) {
	store := openStore(t, nil)
	h := newWrite(testConfig(t), store, nil, nil, prometheus.NewRegistry())
	now := time.Now()
	for _, value := range []string{"other-tenant", string(writer.Tenant)} {
		t.Run(value, func(t *testing.T) {
			b := newV2Request()
			b.add("__name__", "up", tenancy.Label, value).Samples = samplesV2At(now, 1)
			w := postV2(h, &writer, b.encode(t), nil)
			require.Equal(t, http.StatusBadRequest, w.Code)
			require.Contains(t, w.Body.String(), "_tenant_id is reserved")
			requireWritten(t, w, 0)
		})
	}
	require.Empty(t, readBack(t, store, writer.Tenant))
	require.Empty(t, readBack(t, store, "other-tenant"))
}

func TestWriteV2Histograms(t *testing.T) {
	store := openStore(t, nil)
	reg := prometheus.NewRegistry()
	h := newWrite(testConfig(t), store, nil, nil, reg)
	now := time.Now().Truncate(time.Millisecond)
	hist := writev2.FromIntHistogram(0, now.UnixMilli(), &histogram.Histogram{
		Count: 3, Sum: 4.5, Schema: 0, ZeroThreshold: 0.001,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{1, 1},
	})

	b := newV2Request()
	// As the spec wants it: floats and histograms in separate series...
	b.add("__name__", "latency_seconds", "job", "api").Samples = samplesV2At(now, 1, 2)
	b.add("__name__", "latency_seconds", "job", "api").Histograms = []writev2.Histogram{hist, hist}
	// ...and as a lax sender may mix them.
	mixed := b.add("__name__", "mixed", "job", "api")
	mixed.Samples = samplesV2At(now, 7)
	mixed.Histograms = []writev2.Histogram{hist}

	w := postV2(h, &writer, b.encode(t), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	s, hs, e := writtenHeaders(t, w)
	require.Equal(t, [3]int{3, 3, 0}, [3]int{s, hs, e}, "samples, histograms, exemplars written")
	require.Equal(t, 6.0, counter(t, reg, "luminate_ingest_samples_received_total", "tenant", "acme"))
	require.Equal(t, 6.0, counter(t, reg, "luminate_ingest_samples_accepted_total", "tenant", "acme"))
}

func TestWriteV2Refused(t *testing.T) {
	store := openStore(t, nil)
	cfg := testConfig(t)
	cfg.MaxDecompressedBytes = 16 << 10
	reg := prometheus.NewRegistry()
	h := newWrite(cfg, store, nil, nil, reg)
	now := time.Now()
	small := newV2Request()
	small.add("__name__", "up").Samples = samplesV2At(now, 1)

	big := newV2Request()
	for i := range 500 {
		big.add("__name__", "up", "instance", fmt.Sprintf("host-%d.example.org:9100", i)).Samples = samplesV2At(now, 1)
	}
	// Well-formed protobuf whose label references do not resolve.
	oddRefs := newV2Request()
	oddRefs.add("__name__", "up", "job").Samples = samplesV2At(now, 1)
	outOfRange := newV2Request()
	outOfRange.add("__name__", "up").Samples = samplesV2At(now, 1)
	outOfRange.req.Timeseries[0].LabelsRefs[1] = 99
	badFirstSymbol, err := (&writev2.Request{
		Symbols:    []string{"__name__", "up"},
		Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{0, 1}, Samples: samplesV2At(now, 1)}},
	}).Marshal()
	require.NoError(t, err)

	for _, tc := range []struct {
		name    string
		body    []byte
		hdr     map[string]string
		status  int
		message string
		written bool // the Written headers are expected
	}{
		{name: "odd number of label references", body: oddRefs.encode(t), status: http.StatusBadRequest, message: "odd number", written: true},
		{name: "label reference out of range", body: outOfRange.encode(t), status: http.StatusBadRequest, message: "references symbol 99", written: true},
		{name: "first symbol not empty", body: snappy.Encode(nil, badFirstSymbol), status: http.StatusBadRequest, message: "not the empty string", written: true},
		{name: "truncated protobuf", body: snappy.Encode(nil, []byte{0x2a, 0x10, 1}), status: http.StatusBadRequest, message: "decode remote write 2.0 request", written: true},
		{name: "decompressed too large", body: big.encode(t), status: http.StatusRequestEntityTooLarge, message: "--ingest.max-decompressed-bytes", written: true},
		{name: "version 0.1.0", body: small.encode(t), hdr: map[string]string{"X-Prometheus-Remote-Write-Version": "0.1.0"}, status: http.StatusUnsupportedMediaType, message: "2.0.0"},
		{name: "version 3.0.0", body: small.encode(t), hdr: map[string]string{"X-Prometheus-Remote-Write-Version": "3.0.0"}, status: http.StatusUnsupportedMediaType, message: "2.0.0"},
		{name: "zstd encoding", body: small.encode(t), hdr: map[string]string{"Content-Encoding": "zstd"}, status: http.StatusUnsupportedMediaType, message: "snappy"},
		{name: "unknown proto", body: small.encode(t), hdr: map[string]string{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v3.Request"}, status: http.StatusUnsupportedMediaType, message: "io.prometheus.write.v2.Request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := postV2(h, &writer, tc.body, tc.hdr)
			require.Equal(t, tc.status, w.Code, w.Body.String())
			require.Contains(t, w.Body.String(), tc.message)
			if tc.written {
				requireWritten(t, w, 0)
			} else {
				require.Empty(t, w.Header().Get("X-Prometheus-Remote-Write-Samples-Written"), "not negotiated as 2.0")
			}
		})
	}
	require.Empty(t, readBack(t, store, writer.Tenant))
}

func TestWriteV2RateLimited(t *testing.T) {
	store := openStore(t, nil)
	limits, err := tenancy.NewLimits(tenancy.LimitsConfig{TenantLimits: tenancy.TenantLimits{
		IngestionRate: 10, IngestionBurst: 5,
	}}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	h := newWrite(testConfig(t), store, limits, nil, reg)
	now := time.Now()

	// Rate counted in samples, histograms included: 2 floats + 1 histogram.
	b := newV2Request()
	b.add("__name__", "up").Samples = samplesV2At(now, 1, 2)
	b.add("__name__", "h").Histograms = []writev2.Histogram{writev2.FromIntHistogram(0, now.UnixMilli(), &histogram.Histogram{Count: 1})}
	w := postV2(h, &writer, b.encode(t), nil)
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	requireWritten(t, w, 2)

	// Over the rate: the bucket has 2 samples left.
	w = postV2(h, &writer, b.encode(t), nil)
	require.Equal(t, http.StatusTooManyRequests, w.Code, w.Body.String())
	require.NotEmpty(t, w.Header().Get("Retry-After"))
	requireWritten(t, w, 0)
	require.Equal(t, 3.0, counter(t, reg, "luminate_ingest_samples_rejected_total", "reason", string(ReasonRateLimited)))
	require.Len(t, readBack(t, store, writer.Tenant)[`{__name__="up"}`], 2, "the refused write stored nothing")
}

func TestWriteV2SeriesLimit(t *testing.T) {
	store := openStore(t, func(c *badger.Config) { c.SeriesLimits = func(tenancy.ID) int { return 2 } })
	h := newWrite(testConfig(t), store, nil, nil, prometheus.NewRegistry())
	now := time.Now()
	b := newV2Request()
	b.add("__name__", "a").Samples = samplesV2At(now, 1)
	b.add("__name__", "b").Samples = samplesV2At(now, 1)
	b.add("__name__", "c").Samples = samplesV2At(now, 1, 2, 3)
	w := postV2(h, &writer, b.encode(t), nil)
	require.Equal(t, http.StatusBadRequest, w.Code)
	require.Contains(t, w.Body.String(), "1 of 3 series rejected (3 samples rejected, 2 stored)")
	require.Contains(t, w.Body.String(), "active series limit")
	requireWritten(t, w, 2)
	require.Len(t, readBack(t, store, writer.Tenant), 2)
}

func TestWriteV2StoreUnavailable(t *testing.T) {
	store, err := badger.New(badger.Config{Path: t.TempDir()}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	h := newWrite(testConfig(t), store, nil, nil, prometheus.NewRegistry())
	b := newV2Request()
	b.add("__name__", "up").Samples = samplesV2At(time.Now(), 1)
	require.NoError(t, store.Close())
	w := postV2(h, &writer, b.encode(t), nil)
	require.Equal(t, http.StatusServiceUnavailable, w.Code, w.Body.String())
	require.NotEmpty(t, w.Header().Get("Retry-After"))
	requireWritten(t, w, 0)
}

// TestWriteV1AndV2 sends both protocols to one endpoint, for the same
// series.
func TestWriteV1AndV2(t *testing.T) {
	store := openStore(t, nil)
	reg := prometheus.NewRegistry()
	h := newWrite(testConfig(t), store, nil, nil, reg)
	now := time.Now().Truncate(time.Millisecond)

	v1 := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("__name__", "up", "job", "x"), Samples: samplesAt(now, 1)}}}
	w := post(h, &writer, encode(t, v1), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	s, hi, e := writtenHeaders(t, w)
	require.Equal(t, [3]int{-1, -1, -1}, [3]int{s, hi, e}, "1.0 responses are as before")

	b := newV2Request()
	b.add("job", "x", "__name__", "up").Samples = samplesV2At(now.Add(15*time.Second), 2)
	w = postV2(h, &writer, b.encode(t), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	requireWritten(t, w, 1)

	// A 2.0 body labelled as 1.0 is not taken for 2.0; nor is it taken
	// for an empty 1.0 request (its fields 4 and 5 are unknown to 1.0),
	// which would answer 204 and lose it: it is a 400 saying why.
	w = post(h, &writer, b.encode(t), nil)
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), "proto=io.prometheus.write.v2.Request")
	s, _, _ = writtenHeaders(t, w)
	require.Equal(t, -1, s)

	// And the reverse: a 1.0 body labelled as 2.0 (its fields 1 and 3
	// are reserved in 2.0) is a 400, not an empty 2.0 request.
	v1 = &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("__name__", "lost", "job", "x"), Samples: samplesAt(now, 1)}}}
	w = postV2(h, &writer, encode(t, v1), nil)
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), "proto=prometheus.WriteRequest")
	requireWritten(t, w, 0)

	require.Equal(t, map[string][]tsample{
		`{__name__="up", job="x"}`: {{now.UnixMilli(), 1}, {now.Add(15 * time.Second).UnixMilli(), 2}},
	}, readBack(t, store, writer.Tenant))
	require.Equal(t, 2.0, counter(t, reg, "luminate_ingest_samples_accepted_total", "tenant", "acme"))
	require.Equal(t, 2.0, counter(t, reg, "luminate_ingest_requests_total", "tenant", "acme", "code", "204"))
	require.Equal(t, 2.0, counter(t, reg, "luminate_ingest_requests_total", "tenant", "acme", "code", "400"))
}

// startRecorder is a Badger store whose 2.0 appenders note the start
// timestamps they are given: Badger stores samples, not start
// timestamps, so the store cannot show them.
type startRecorder struct {
	*badger.Store
	starts *[]int64
}

func (s startRecorder) ForTenant(id tenancy.ID) storage.TenantStore {
	return startTenant{s.Store.ForTenant(id), s.starts}
}

type startTenant struct {
	storage.TenantStore
	starts *[]int64
}

func (t startTenant) AppenderV2(ctx context.Context) promstorage.AppenderV2 {
	return startAppender{t.TenantStore.AppenderV2(ctx), t.starts}
}

type startAppender struct {
	promstorage.AppenderV2
	starts *[]int64
}

func (a startAppender) Append(ref promstorage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AppendV2Options) (promstorage.SeriesRef, error) {
	*a.starts = append(*a.starts, st)
	return a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
}

func TestWriteV2StartTimestamps(t *testing.T) {
	var starts []int64
	store := startRecorder{openStore(t, nil), &starts}
	h := newWrite(testConfig(t), store, nil, nil, prometheus.NewRegistry())
	now := time.Now().Truncate(time.Millisecond)

	b := newV2Request()
	ts := b.add("__name__", "requests_total")
	ts.Samples = samplesV2At(now, 1, 2)
	ts.Samples[1].StartTimestamp = now.Add(-time.Minute).UnixMilli()
	b.add("__name__", "no_start").Samples = samplesV2At(now, 1)
	body := b.encode(t)
	// A sender older than 2.0-rc.4 sends the series' created_timestamp
	// (field 6) instead.
	data, err := snappy.Decode(nil, body)
	require.NoError(t, err)
	legacy := pb{}.tag(6, wireVarint).varint(uint64(now.Add(-time.Hour).UnixMilli()))
	data = append(data, pb{}.bytes(5, slices.Concat(pb{}.bytes(1, pb{}.varint(1).varint(2)), legacy, pb{}.bytes(2, pb{}.tag(2, wireVarint).varint(uint64(now.Add(time.Minute).UnixMilli())))))...)

	w := postV2(h, &writer, snappy.Encode(nil, data), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	requireWritten(t, w, 4)
	require.Equal(t, []int64{0, now.Add(-time.Minute).UnixMilli(), 0, now.Add(-time.Hour).UnixMilli()}, starts)
	require.Len(t, readBack(t, store, writer.Tenant)[`{__name__="requests_total"}`], 3)
}

// BenchmarkWriteV2 is BenchmarkWrite with remote write 2.0 requests.
func BenchmarkWriteV2(b *testing.B) {
	store := openStore(b, nil)
	cfg := testConfig(b)
	cfg.MaxFutureSkew = 0
	h := newWrite(cfg, store, nil, nil, prometheus.NewRegistry())
	const nSeries, nSamples = 200, 10
	req := newV2Request()
	for i := range nSeries {
		ts := req.add("__name__", "http_requests_total", "code", "200", "handler", fmt.Sprintf("/api/%d", i%50),
			"instance", fmt.Sprintf("10.0.0.%d:9090", i), "job", "prometheus", "method", "GET",
			"pod", fmt.Sprintf("prometheus-%d", i), "region", "eu-west-1")
		ts.Samples = make([]writev2.Sample, nSamples)
	}
	base := time.Now().Add(-24 * time.Hour).UnixMilli()
	next := 0
	body := func() []byte {
		for i := range req.req.Timeseries {
			for j := range req.req.Timeseries[i].Samples {
				req.req.Timeseries[i].Samples[j] = writev2.Sample{Value: float64(next + j), Timestamp: base + int64(next+j)}
			}
		}
		next += nSamples
		return req.encode(b)
	}
	benchmarkWrites(b, nSeries*nSamples, body, func(data []byte) *httptest.ResponseRecorder { return postV2(h, &writer, data, nil) })
}
