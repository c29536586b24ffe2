package remotewrite

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/api"
	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/badger"
	"github.com/luminate-io/luminate/tenancy"
)

func openStore(t testing.TB, mod func(*badger.Config)) *badger.Store {
	t.Helper()
	cfg := badger.Config{Path: t.TempDir()}
	if mod != nil {
		mod(&cfg)
	}
	s, err := badger.New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// testConfig is the flag defaults, as cmd/luminate gets them.
func testConfig(t testing.TB) Config {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	cfg.Retention = 30 * 24 * time.Hour
	require.NoError(t, cfg.Validate())
	return cfg
}

var writer = tenancy.Principal{Tenant: "acme", Scopes: []tenancy.Scope{tenancy.ScopeWrite}}

// newWrite returns the remote write receiver of a new Ingester writing to
// store, mounted on a router as cmd/luminate mounts it (on every path).
func newWrite(cfg Config, store storage.MetricsStore, limiter Limiter, logger *slog.Logger, reg prometheus.Registerer) http.Handler {
	return route(NewHandler(NewIngester(cfg, limiter, logger, reg)), store)
}

// route mounts h on a router over store, as cmd/luminate mounts it (the
// tenants' views counting their usage), that takes the principal of a
// request from its context (none: 401).
func route(h *Handler, store storage.MetricsStore) http.Handler {
	return routeUsage(h, store, tenancy.NewUsage())
}

// routeUsage is route counting the tenants' usage in u.
func routeUsage(h *Handler, store storage.MetricsStore, u *tenancy.Usage) http.Handler {
	r, err := api.NewRouter(api.Options{
		Auth:     contextAuth{},
		Storage:  store,
		Tenants:  api.CountingTenants(store, u),
		Gatherer: prometheus.NewRegistry(),
		Routes: []api.Route{{Path: "/", Prefix: true, Methods: []string{http.MethodPost},
			Scope: tenancy.ScopeWrite, Format: apierror.Text, Serve: h.Serve}},
	}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		panic(err)
	}
	return r
}

// contextAuth authenticates a request as the principal of its context.
type contextAuth struct{}

func (contextAuth) Authenticate(r *http.Request) (tenancy.Principal, error) {
	return tenancy.FromContext(r.Context())
}

func encode(t testing.TB, req *prompb.WriteRequest) []byte {
	t.Helper()
	data, err := req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, data)
}

// post sends body to h as principal p (none when p is nil), with the
// remote write 1.0 headers unless hdr overrides them ("" deletes one).
func post(h http.Handler, p *tenancy.Principal, body []byte, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/x-protobuf")
	r.Header.Set("Content-Encoding", "snappy")
	r.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	for k, v := range hdr {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	if p != nil {
		r = r.WithContext(tenancy.NewContext(r.Context(), *p))
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func series(kv ...string) []prompb.Label {
	var ls []prompb.Label
	for i := 0; i < len(kv); i += 2 {
		ls = append(ls, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return ls
}

func samplesAt(start time.Time, vs ...float64) []prompb.Sample {
	var out []prompb.Sample
	for i, v := range vs {
		out = append(out, prompb.Sample{Value: v, Timestamp: start.Add(time.Duration(i) * 15 * time.Second).UnixMilli()})
	}
	return out
}

type tsample struct {
	T int64
	V float64
}

// readBack returns every series of tenant id in the store, by its labels.
func readBack(t testing.TB, s storage.MetricsStore, id tenancy.ID) map[string][]tsample {
	t.Helper()
	q, err := s.ForTenant(id).Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer func() { require.NoError(t, q.Close()) }()
	set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	out := map[string][]tsample{}
	var it chunkenc.Iterator
	for set.Next() {
		it = set.At().Iterator(it)
		var got []tsample
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			got = append(got, tsample{ts, v})
		}
		require.NoError(t, it.Err())
		out[set.At().Labels().String()] = got
	}
	require.NoError(t, set.Err())
	return out
}

func counter(t testing.TB, reg *prometheus.Registry, name string, lv ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i < len(lv); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == lv[i] && lp.GetValue() == lv[i+1] {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestWriteSuccess(t *testing.T) {
	store := openStore(t, nil)
	reg := prometheus.NewRegistry()
	h := newWrite(testConfig(t), store, nil, nil, reg)
	now := time.Now().Truncate(time.Millisecond)

	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: series("__name__", "http_requests_total", "path", "/", "code", "200"), Samples: samplesAt(now, 1, 2, 3)},
		// Unsorted, with an empty value to drop, a UTF-8 name and a NaN.
		{Labels: series("zone", "eu", "__name__", "temperature.celsius", "empty", "", "région", "ü"), Samples: samplesAt(now, math.Inf(1))},
	}}
	w := post(h, &writer, encode(t, req), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())

	got := readBack(t, store, writer.Tenant)
	require.Equal(t, map[string][]tsample{
		`{__name__="http_requests_total", code="200", path="/"}`:    {{now.UnixMilli(), 1}, {now.Add(15 * time.Second).UnixMilli(), 2}, {now.Add(30 * time.Second).UnixMilli(), 3}},
		`{__name__="temperature.celsius", "région"="ü", zone="eu"}`: {{now.UnixMilli(), math.Inf(1)}},
	}, got)

	require.Equal(t, 4.0, counter(t, reg, "luminate_ingest_samples_received_total", "tenant", "acme"))
	require.Equal(t, 4.0, counter(t, reg, "luminate_ingest_samples_accepted_total", "tenant", "acme"))
	require.Equal(t, 1.0, counter(t, reg, "luminate_ingest_requests_total", "tenant", "acme", "code", "204"))

	t.Run("headers Prometheus may omit", func(t *testing.T) {
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("__name__", "old_sender"), Samples: samplesAt(now, 1)}}}
		w := post(h, &writer, encode(t, req), map[string]string{"Content-Type": "", "Content-Encoding": "", "X-Prometheus-Remote-Write-Version": ""})
		require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
		w = post(h, &writer, encode(t, req), map[string]string{"Content-Type": "application/x-protobuf;proto=prometheus.WriteRequest"})
		require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	})
	t.Run("empty request", func(t *testing.T) {
		w := post(h, &writer, encode(t, &prompb.WriteRequest{}), nil)
		require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	})
}

func TestWritePartial(t *testing.T) {
	store := openStore(t, nil)
	reg := prometheus.NewRegistry()
	cfg := testConfig(t)
	cfg.MaxLabelsPerSeries = 5
	h := newWrite(cfg, store, nil, nil, reg)
	now := time.Now().Truncate(time.Millisecond)

	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: series("__name__", "good", "job", "a"), Samples: samplesAt(now, 1, 2)},
		{Labels: series("job", "nameless"), Samples: samplesAt(now, 1, 2, 3)},
		{Labels: series("__name__", "stolen", tenancy.Label, "other-tenant"), Samples: samplesAt(now, 9)},
		{Labels: series("__name__", "dup", "a", "1", "a", "2"), Samples: samplesAt(now, 1)},
		{Labels: series("__name__", "wide", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5"), Samples: samplesAt(now, 1)},
		// One sample too old, one too far in the future, one fine.
		{Labels: series("__name__", "mixed"), Samples: []prompb.Sample{
			{Value: 1, Timestamp: now.Add(-31 * 24 * time.Hour).UnixMilli()},
			{Value: 2, Timestamp: now.Add(time.Hour).UnixMilli()},
			{Value: 3, Timestamp: now.UnixMilli()},
		}},
		// A histogram whose count is not that of its buckets, as
		// Prometheus' histogram.Validate refuses it.
		{Labels: series("__name__", "hist"), Histograms: []prompb.Histogram{{
			Count: &prompb.Histogram_CountInt{CountInt: 5}, Timestamp: now.UnixMilli(),
			PositiveSpans: []prompb.BucketSpan{{Offset: 0, Length: 1}}, PositiveDeltas: []int64{1},
		}}},
	}}
	w := post(h, &writer, encode(t, req), nil)
	require.Equal(t, http.StatusBadRequest, w.Code)
	body := w.Body.String()
	require.Contains(t, body, "6 of 7 series rejected (9 samples rejected, 3 stored)")
	require.Contains(t, body, `series {job="nameless"}: no metric name`, "the first rejected series is named")

	requirePartialOutcome(t, store, reg, now, map[Reason]float64{
		ReasonMissingMetricName: 3, ReasonTenantLabel: 1, ReasonDuplicateLabel: 1, ReasonTooManyLabels: 1,
		ReasonTooOld: 1, ReasonTooFarInFuture: 1, ReasonInvalidHistogram: 1,
	})
}

// requirePartialOutcome checks what the partially valid request of
// TestWritePartial (and its 2.0 twin) leaves: the valid series and samples
// are stored; the rest, and anything of the series that carried
// _tenant_id, are not; the metrics count 12 samples received, 3 accepted
// and the rejected ones by reason.
func requirePartialOutcome(t *testing.T, store storage.MetricsStore, reg *prometheus.Registry, now time.Time, rejected map[Reason]float64) {
	t.Helper()
	require.Equal(t, map[string][]tsample{
		`{__name__="good", job="a"}`: {{now.UnixMilli(), 1}, {now.Add(15 * time.Second).UnixMilli(), 2}},
		`{__name__="mixed"}`:         {{now.UnixMilli(), 3}},
	}, readBack(t, store, writer.Tenant))
	require.Empty(t, readBack(t, store, "other-tenant"))
	for reason, n := range rejected {
		require.Equal(t, n, counter(t, reg, "luminate_ingest_samples_rejected_total", "tenant", "acme", "reason", string(reason)), reason)
	}
	require.Equal(t, 12.0, counter(t, reg, "luminate_ingest_samples_received_total", "tenant", "acme"))
	require.Equal(t, 3.0, counter(t, reg, "luminate_ingest_samples_accepted_total", "tenant", "acme"))
	require.Equal(t, 1.0, counter(t, reg, "luminate_ingest_requests_total", "tenant", "acme", "code", "400"))
}

func TestWriteTenantLabel(t *testing.T) {
	store := openStore(t, nil)
	h := newWrite(testConfig(t), store, nil, nil, prometheus.NewRegistry())
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: series("__name__", "up", tenancy.Label, "acme"), Samples: samplesAt(time.Now(), 1)},
	}}
	w := post(h, &writer, encode(t, req), nil)
	require.Equal(t, http.StatusBadRequest, w.Code)
	require.Contains(t, w.Body.String(), "_tenant_id is reserved")
	require.Empty(t, readBack(t, store, writer.Tenant))
}

func TestWriteSeriesLimit(t *testing.T) {
	store := openStore(t, func(c *badger.Config) { c.SeriesLimits = func(tenancy.ID) int { return 2 } })
	reg := prometheus.NewRegistry()
	h := newWrite(testConfig(t), store, nil, nil, reg)
	now := time.Now()
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: series("__name__", "a"), Samples: samplesAt(now, 1)},
		{Labels: series("__name__", "b"), Samples: samplesAt(now, 1)},
		{Labels: series("__name__", "c"), Samples: samplesAt(now, 1, 2, 3)},
	}}
	w := post(h, &writer, encode(t, req), nil)
	require.Equal(t, http.StatusBadRequest, w.Code)
	require.Contains(t, w.Body.String(), "1 of 3 series rejected (3 samples rejected, 2 stored)")
	require.Contains(t, w.Body.String(), "active series limit")
	require.Len(t, readBack(t, store, writer.Tenant), 2)
	require.Equal(t, 3.0, counter(t, reg, "luminate_ingest_samples_rejected_total", "reason", string(ReasonSeriesLimit)))

	// Existing series keep flowing at the limit.
	req.Timeseries = req.Timeseries[:2]
	req.Timeseries[0].Samples = samplesAt(now.Add(time.Minute), 5)
	w = post(h, &writer, encode(t, req), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
}

func TestWriteTenantIsolation(t *testing.T) {
	store := openStore(t, nil)
	h := newWrite(testConfig(t), store, nil, nil, prometheus.NewRegistry())
	a := tenancy.Principal{Tenant: "tenant-a", Scopes: []tenancy.Scope{tenancy.ScopeWrite}}
	b := tenancy.Principal{Tenant: "tenant-b", Scopes: []tenancy.Scope{tenancy.ScopeAdmin}}
	now := time.Now().Truncate(time.Millisecond)
	write := func(p tenancy.Principal, v float64) {
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("__name__", "up", "job", "x"), Samples: samplesAt(now, v)}}}
		w := post(h, &p, encode(t, req), nil)
		require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	}
	write(a, 1)
	require.Empty(t, readBack(t, store, b.Tenant))
	write(b, 2)
	require.Equal(t, map[string][]tsample{`{__name__="up", job="x"}`: {{now.UnixMilli(), 1}}}, readBack(t, store, a.Tenant))
	require.Equal(t, map[string][]tsample{`{__name__="up", job="x"}`: {{now.UnixMilli(), 2}}}, readBack(t, store, b.Tenant))
}

func TestWriteRefused(t *testing.T) {
	store := openStore(t, nil)
	cfg := testConfig(t)
	cfg.MaxCompressedBytes = 4 << 10
	cfg.MaxDecompressedBytes = 16 << 10
	reg := prometheus.NewRegistry()
	h := newWrite(cfg, store, nil, nil, reg)
	now := time.Now()
	small := encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("__name__", "up"), Samples: samplesAt(now, 1)}}})

	// Compresses well below 4 KiB but decompresses above 16 KiB.
	big := &prompb.WriteRequest{}
	for i := range 500 {
		big.Timeseries = append(big.Timeseries, prompb.TimeSeries{Labels: series("__name__", "up", "i", fmt.Sprint(i%2)), Samples: samplesAt(now, 1)})
	}
	compressible := encode(t, big)
	require.Less(t, len(compressible), 4<<10)
	// Does not compress: above 4 KiB as sent.
	random := make([]byte, 8<<10)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	incompressible := snappy.Encode(nil, random)
	require.Greater(t, len(incompressible), 4<<10)

	readOnly := tenancy.Principal{Tenant: "acme", Scopes: []tenancy.Scope{tenancy.ScopeRead}}
	for _, tc := range []struct {
		name    string
		p       *tenancy.Principal
		body    []byte
		hdr     map[string]string
		chunked bool
		status  int
		message string
	}{
		{name: "no principal", body: small, status: http.StatusUnauthorized},
		{name: "no write scope", p: &readOnly, body: small, status: http.StatusForbidden, message: `lacks scope "metrics:write"`},
		{name: "body too large", p: &writer, body: incompressible, status: http.StatusRequestEntityTooLarge, message: "--ingest.max-request-bytes"},
		{name: "body too large without Content-Length", p: &writer, body: incompressible, chunked: true, status: http.StatusRequestEntityTooLarge, message: "--ingest.max-request-bytes"},
		{name: "decompressed too large", p: &writer, body: compressible, status: http.StatusRequestEntityTooLarge, message: "--ingest.max-decompressed-bytes"},
		{name: "JSON content type", p: &writer, body: small, hdr: map[string]string{"Content-Type": "application/json"}, status: http.StatusUnsupportedMediaType, message: "application/x-protobuf"},
		{name: "remote write 2.0 message with version 0.1.0", p: &writer, body: small, hdr: map[string]string{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request", "X-Prometheus-Remote-Write-Version": "0.1.0"}, status: http.StatusUnsupportedMediaType, message: "2.0.0"},
		{name: "unknown proto", p: &writer, body: small, hdr: map[string]string{"Content-Type": "application/x-protobuf;proto=foo.Bar"}, status: http.StatusUnsupportedMediaType},
		{name: "gzip encoding", p: &writer, body: small, hdr: map[string]string{"Content-Encoding": "gzip"}, status: http.StatusUnsupportedMediaType, message: "snappy"},
		{name: "version 2.0.0", p: &writer, body: small, hdr: map[string]string{"X-Prometheus-Remote-Write-Version": "2.0.0"}, status: http.StatusUnsupportedMediaType, message: "0.1.0"},
		{name: "not snappy", p: &writer, body: []byte("plain text, not snappy"), status: http.StatusBadRequest, message: "snappy"},
		{name: "not protobuf", p: &writer, body: snappy.Encode(nil, []byte{0x0a, 0x10, 1}), status: http.StatusBadRequest, message: "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(tc.body))
			r.Header.Set("Content-Type", "application/x-protobuf")
			r.Header.Set("Content-Encoding", "snappy")
			for k, v := range tc.hdr {
				r.Header.Set(k, v)
			}
			if tc.chunked {
				r.ContentLength = -1
				r.Body = io.NopCloser(bytes.NewReader(tc.body))
			}
			if tc.p != nil {
				r = r.WithContext(tenancy.NewContext(r.Context(), *tc.p))
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			require.Equal(t, tc.status, w.Code, w.Body.String())
			require.Contains(t, w.Body.String(), tc.message)
			if tc.status == http.StatusUnauthorized {
				require.Contains(t, w.Header().Get("WWW-Authenticate"), "Bearer")
			}
			// The router's refusals too are plain text, as senders expect.
			require.Equal(t, "text/plain; charset=utf-8", w.Header().Get("Content-Type"))
		})
	}
	require.Empty(t, readBack(t, store, writer.Tenant))
	require.Zero(t, counter(t, reg, "luminate_ingest_requests_total", "code", "401"), "the router refuses before the receiver")
	require.Equal(t, 2.0, counter(t, reg, "luminate_ingest_requests_total", "tenant", "acme", "code", "400"))
}

func TestWriteRateLimited(t *testing.T) {
	store := openStore(t, nil)
	limits, err := tenancy.NewLimits(tenancy.LimitsConfig{TenantLimits: tenancy.TenantLimits{
		IngestionRate: 10, IngestionBurst: 5,
	}}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	h := newWrite(testConfig(t), store, limits, nil, reg)
	now := time.Now()

	ok := encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("__name__", "up"), Samples: samplesAt(now, 1, 2, 3)}}})
	w := post(h, &writer, ok, nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())

	// Over the rate: the bucket has 2 samples left.
	w = post(h, &writer, ok, nil)
	require.Equal(t, http.StatusTooManyRequests, w.Code, w.Body.String())
	require.NotEmpty(t, w.Header().Get("Retry-After"))
	require.Equal(t, 3.0, counter(t, reg, "luminate_ingest_samples_rejected_total", "reason", string(ReasonRateLimited)))

	// Over the burst: never fits, so it is a 413 naming the setting,
	// without Retry-After; Prometheus retries a 429 for ever and would
	// wedge its shard on it.
	big := encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("__name__", "big"), Samples: samplesAt(now, 1, 2, 3, 4, 5, 6)}}})
	w = post(h, &writer, big, nil)
	require.Equal(t, http.StatusRequestEntityTooLarge, w.Code, w.Body.String())
	require.Empty(t, w.Header().Get("Retry-After"))
	require.Contains(t, w.Body.String(), "--limits.ingestion-burst")
	require.Contains(t, w.Body.String(), "ingestion_burst")

	require.Len(t, readBack(t, store, writer.Tenant)[`{__name__="up"}`], 3, "refused writes store nothing")
	require.NotContains(t, readBack(t, store, writer.Tenant), `{__name__="big"}`)
}

func TestWriteStoreUnavailable(t *testing.T) {
	cfg := badger.Config{Path: t.TempDir()}
	store, err := badger.New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	h := newWrite(testConfig(t), store, nil, nil, reg)
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("__name__", "up"), Samples: samplesAt(time.Now(), 1)}}}
	w := post(h, &writer, encode(t, req), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())

	require.NoError(t, store.Close())
	w = post(h, &writer, encode(t, req), nil)
	require.Equal(t, http.StatusServiceUnavailable, w.Code, w.Body.String())
	require.NotEmpty(t, w.Header().Get("Retry-After"))
	require.Equal(t, 1.0, counter(t, reg, "luminate_ingest_samples_accepted_total", "tenant", "acme"), "the failed commit is not counted as accepted")

	t.Run("a tenant new to the closed store", func(t *testing.T) {
		p := tenancy.Principal{Tenant: "newcomer", Scopes: []tenancy.Scope{tenancy.ScopeWrite}}
		w := post(h, &p, encode(t, req), nil)
		require.Equal(t, http.StatusServiceUnavailable, w.Code, w.Body.String())
	})

	// Reopened, the store holds what was acknowledged, and only that.
	store, err = badger.New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	defer func() { require.NoError(t, store.Close()) }()
	require.Len(t, readBack(t, store, writer.Tenant)[`{__name__="up"}`], 1)
}

// Two Ingesters on one registry share its counters.
func TestSharedRegistry(t *testing.T) {
	store := openStore(t, nil)
	reg := prometheus.NewRegistry()
	a := newWrite(testConfig(t), store, nil, nil, reg)
	b := newWrite(testConfig(t), store, nil, nil, reg)
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("__name__", "up"), Samples: samplesAt(time.Now(), 1)}}}
	require.Equal(t, http.StatusNoContent, post(a, &writer, encode(t, req), nil).Code)
	req.Timeseries[0].Samples = samplesAt(time.Now().Add(time.Second), 2)
	require.Equal(t, http.StatusNoContent, post(b, &writer, encode(t, req), nil).Code)
	require.Equal(t, 2.0, counter(t, reg, "luminate_ingest_samples_accepted_total", "tenant", "acme"))
	require.Equal(t, 1, testutil.CollectAndCount(reg, "luminate_ingest_samples_accepted_total"))
}

func TestConfigValidate(t *testing.T) {
	cfg := testConfig(t)
	require.NoError(t, cfg.Validate())
	cfg.MaxCompressedBytes = 0
	cfg.MaxLabelsPerSeries = -1
	cfg.MaxNativeMetrics = 0
	err := cfg.Validate()
	require.Error(t, err)
	for _, flag := range []string{"--ingest.max-request-bytes", "--ingest.max-labels-per-series", "--ingest.max-native-metrics"} {
		require.True(t, strings.Contains(err.Error(), flag), "%v does not name %s", err, flag)
	}
}

// BenchmarkWrite measures the whole receiver on a real Badger store:
// 2,000-sample requests (200 series x 10 samples, 8 labels each) to
// existing series, as a scraping Prometheus sends them.
func BenchmarkWrite(b *testing.B) {
	store := openStore(b, nil)
	cfg := testConfig(b)
	cfg.MaxFutureSkew = 0
	h := newWrite(cfg, store, nil, nil, prometheus.NewRegistry())
	const nSeries, nSamples = 200, 10
	req := &prompb.WriteRequest{}
	for i := range nSeries {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels: series("__name__", "http_requests_total", "code", "200", "handler", fmt.Sprintf("/api/%d", i%50),
				"instance", fmt.Sprintf("10.0.0.%d:9090", i), "job", "prometheus", "method", "GET",
				"pod", fmt.Sprintf("prometheus-%d", i), "region", "eu-west-1"),
			Samples: make([]prompb.Sample, nSamples),
		})
	}
	base := time.Now().Add(-24 * time.Hour).UnixMilli()
	next := 0
	body := func() []byte {
		for i := range req.Timeseries {
			for j := range req.Timeseries[i].Samples {
				req.Timeseries[i].Samples[j] = prompb.Sample{Value: float64(next + j), Timestamp: base + int64(next+j)}
			}
		}
		next += nSamples
		return encode(b, req)
	}
	benchmarkWrites(b, nSeries*nSamples, body, func(data []byte) *httptest.ResponseRecorder { return post(h, &writer, data, nil) })
}

// benchmarkWrites sends one request of body() to create the series, then
// b.N more (built outside the timer), each of samples samples, and reports
// the time per sample.
func benchmarkWrites(b *testing.B, samples int, body func() []byte, send func([]byte) *httptest.ResponseRecorder) {
	if w := send(body()); w.Code != http.StatusNoContent {
		b.Fatal(w.Code, w.Body.String())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		data := body()
		b.StartTimer()
		if w := send(data); w.Code != http.StatusNoContent {
			b.Fatal(w.Code, w.Body.String())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*samples), "ns/sample")
}
