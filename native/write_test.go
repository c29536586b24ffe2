package native_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/api"
	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/native"
	"github.com/luminate-io/luminate/remotewrite"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/badger"
	"github.com/luminate-io/luminate/tenancy"
)

var writer = tenancy.Principal{Tenant: "acme", Scopes: []tenancy.Scope{tenancy.ScopeWrite}}

func openStore(t testing.TB) *badger.Store {
	t.Helper()
	s, err := badger.New(badger.Config{Path: t.TempDir()}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// testConfig is the flag defaults, as cmd/luminate gets them.
func testConfig(t testing.TB) remotewrite.Config {
	var cfg remotewrite.Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	cfg.Retention = 30 * 24 * time.Hour
	require.NoError(t, cfg.Validate())
	return cfg
}

// newWrite returns the native write of a new Ingester over store, on a
// router as cmd/luminate mounts it.
func newWrite(cfg remotewrite.Config, store storage.MetricsStore, limiter remotewrite.Limiter, reg prometheus.Registerer) http.Handler {
	return route(store, api.Route{Path: "/api/v1/metrics", Methods: []string{http.MethodPost}, Scope: tenancy.ScopeWrite,
		Format: apierror.Native, Serve: native.NewWrite(remotewrite.NewIngester(cfg, limiter, nil, reg), nil).Serve})
}

// route mounts routes on a router over store that takes the principal of
// a request from its context (none: 401).
func route(store storage.MetricsStore, routes ...api.Route) http.Handler {
	r, err := api.NewRouter(api.Options{Auth: contextAuth{}, Storage: store, Tenants: store, Gatherer: prometheus.NewRegistry(), Routes: routes},
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
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

func postNative(h http.Handler, p *tenancy.Principal, body string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/metrics", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	if p != nil {
		r = r.WithContext(tenancy.NewContext(r.Context(), *p))
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// nativeResponse decodes the WriteResponse of a decoded write, strictly.
func nativeResponse(t testing.TB, w *httptest.ResponseRecorder) native.WriteResponse {
	t.Helper()
	require.Equal(t, "application/json", w.Header().Get("Content-Type"))
	var resp native.WriteResponse
	dec := json.NewDecoder(w.Body)
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&resp))
	return resp
}

// nativeError decodes the error envelope of a write refused as a whole,
// strictly.
func nativeError(t testing.TB, w *httptest.ResponseRecorder) apierror.NativeError {
	t.Helper()
	require.Equal(t, "application/json", w.Header().Get("Content-Type"))
	var env apierror.NativeEnvelope
	dec := json.NewDecoder(w.Body)
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&env), w.Body.String())
	require.Equal(t, "error", env.Status)
	require.NotNil(t, env.Error)
	return *env.Error
}

type tsample struct {
	T int64
	V float64
}

// readBack returns the float samples of every series of tenant id.
func readBack(t testing.TB, s storage.MetricsStore, id tenancy.ID) map[string][]tsample {
	t.Helper()
	out := map[string][]tsample{}
	for k, ps := range readPoints(t, s, id) {
		var fs []tsample
		for _, p := range ps {
			if p.H == nil && p.FH == nil {
				fs = append(fs, tsample{p.T, p.V})
			}
		}
		out[k] = fs
	}
	return out
}

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

// counter is the value of the counter name whose labels include lv.
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
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i < len(lv); i += 2 {
				if have[lv[i]] != lv[i+1] {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestWrite(t *testing.T) {
	store := openStore(t)
	reg := prometheus.NewRegistry()
	h := newWrite(testConfig(t), store, nil, reg)
	now := time.Now().Truncate(time.Second).UTC()
	ms := now.UnixMilli()

	body := fmt.Sprintf(`{"metrics":[
		{"name":"http_requests_total","dimensions":{"path":"/","code":"200"},"value":1.5,"timestamp":%q},
		{"name":"http_requests_total","dimensions":{"path":"/","code":"200"},"value":2.5,"timestamp":%d},
		{"name":"temperature","value":"NaN","timestamp":%d},
		{"name":"temperature","dimensions":{"room":"a"},"value":"+Inf","timestamp":%d},
		{"name":"temperature","dimensions":{"room":"b"},"value":"-Inf","timestamp":%d},
		{"name":"no_timestamp","value":7}
	]}`, now.Format(time.RFC3339), ms+1000, ms, ms, ms)
	w := postNative(h, &writer, body, nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, native.WriteResponse{Status: "success", Accepted: 6, Errors: []native.WriteItemError{}}, nativeResponse(t, w))

	got := readBack(t, store, writer.Tenant)
	require.Equal(t, []tsample{{ms, 1.5}, {ms + 1000, 2.5}}, got[`{__name__="http_requests_total", code="200", path="/"}`])
	require.Len(t, got[`{__name__="temperature"}`], 1)
	require.True(t, math.IsNaN(got[`{__name__="temperature"}`][0].V))
	require.Equal(t, []tsample{{ms, math.Inf(1)}}, got[`{__name__="temperature", room="a"}`])
	require.Equal(t, []tsample{{ms, math.Inf(-1)}}, got[`{__name__="temperature", room="b"}`])
	noTS := got[`{__name__="no_timestamp"}`]
	require.Len(t, noTS, 1)
	require.InDelta(t, time.Now().UnixMilli(), noTS[0].T, float64(time.Minute.Milliseconds()), "defaults to the time of the request")
	require.Equal(t, 6.0, counter(t, reg, "luminate_ingest_samples_accepted_total", "tenant", "acme"))
	require.Equal(t, 1.0, counter(t, reg, "luminate_ingest_requests_total", "tenant", "acme", "code", "200"))
}

func TestWritePartial(t *testing.T) {
	store := openStore(t)
	reg := prometheus.NewRegistry()
	h := newWrite(testConfig(t), store, nil, reg)
	ms := time.Now().UnixMilli()
	body := fmt.Sprintf(`{"metrics":[
		{"name":"good","value":1,"timestamp":%[1]d},
		{"name":"","value":1,"timestamp":%[1]d},
		{"name":"stolen","dimensions":{"_tenant_id":"other"},"value":1,"timestamp":%[1]d},
		{"name":"bad_value","value":"lots","timestamp":%[1]d},
		{"name":"bad_value","value":true,"timestamp":%[1]d},
		{"name":"bad_value","value":null,"timestamp":%[1]d},
		{"name":"bad_time","value":1,"timestamp":"yesterday"},
		{"name":"bad_time","value":1,"timestamp":1.5},
		{"name":"future","value":1,"timestamp":%[2]d},
		{"name":"dup","dimensions":{"__name__":"other"},"value":1,"timestamp":%[1]d},
		{"name":"long","dimensions":{"x":"%[3]s"},"value":1,"timestamp":%[1]d},
		{"name":"good","dimensions":{"x":"y"},"value":2,"timestamp":%[1]d}
	]}`, ms, ms+int64(time.Hour/time.Millisecond), strings.Repeat("v", 2049))
	w := postNative(h, &writer, body, nil)
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	resp := nativeResponse(t, w)
	require.Equal(t, "partial", resp.Status)
	require.Equal(t, 2, resp.Accepted)
	require.Equal(t, 10, resp.Rejected)
	reasons := map[int]remotewrite.Reason{}
	for _, e := range resp.Errors {
		reasons[e.Index] = e.Reason
		require.NotEmpty(t, e.Message)
	}
	require.Equal(t, map[int]remotewrite.Reason{
		1: remotewrite.ReasonMissingMetricName, 2: remotewrite.ReasonTenantLabel, 3: remotewrite.ReasonInvalidValue, 4: remotewrite.ReasonInvalidValue,
		5: remotewrite.ReasonInvalidValue, 6: remotewrite.ReasonInvalidTimestamp, 7: remotewrite.ReasonInvalidTimestamp, 8: remotewrite.ReasonTooFarInFuture,
		9: remotewrite.ReasonDuplicateLabel, 10: remotewrite.ReasonLabelValueTooLong,
	}, reasons)
	require.Len(t, readBack(t, store, writer.Tenant), 2)
	require.Empty(t, readBack(t, store, "other"))

	t.Run("all rejected", func(t *testing.T) {
		w := postNative(h, &writer, `{"metrics":[{"name":"x","value":"y"}]}`, nil)
		require.Equal(t, http.StatusBadRequest, w.Code)
		resp := nativeResponse(t, w)
		require.Equal(t, "error", resp.Status)
		require.Equal(t, []native.WriteItemError{{Index: 0, Reason: remotewrite.ReasonInvalidValue,
			Message: `series {__name__="x"}: value "y" is neither a number nor "NaN", "+Inf" or "-Inf"`}}, resp.Errors)
	})
}

func TestWriteRefused(t *testing.T) {
	store := openStore(t)
	cfg := testConfig(t)
	cfg.MaxNativeMetrics = 3
	cfg.MaxCompressedBytes = 1 << 10
	h := newWrite(cfg, store, nil, prometheus.NewRegistry())
	readOnly := tenancy.Principal{Tenant: "acme", Scopes: []tenancy.Scope{tenancy.ScopeRead}}
	one := `{"metrics":[{"name":"up","value":1}]}`
	for _, tc := range []struct {
		name    string
		p       *tenancy.Principal
		body    string
		hdr     map[string]string
		status  int
		message string
		field   string
		limit   string
	}{
		{name: "no principal", body: one, status: http.StatusUnauthorized},
		{name: "no write scope", p: &readOnly, body: one, status: http.StatusForbidden},
		{name: "too many metrics", p: &writer, body: `{"metrics":[` + strings.Repeat(`{"name":"up","value":1},`, 3) + `{"name":"up","value":1}]}`,
			status: http.StatusRequestEntityTooLarge, message: "--ingest.max-native-metrics", field: "metrics", limit: "ingest.max-native-metrics"},
		{name: "body too large", p: &writer, body: `{"metrics":[{"name":"` + strings.Repeat("x", 2000) + `","value":1}]}`,
			status: http.StatusRequestEntityTooLarge, message: "--ingest.max-request-bytes", limit: "ingest.max-request-bytes"},
		{name: "wrong content type", p: &writer, body: one, hdr: map[string]string{"Content-Type": "text/plain"}, status: http.StatusUnsupportedMediaType},
		{name: "compressed", p: &writer, body: one, hdr: map[string]string{"Content-Encoding": "gzip"}, status: http.StatusUnsupportedMediaType},
		{name: "unknown top-level field", p: &writer, body: `{"metrics":[],"extra":1}`, status: http.StatusBadRequest, message: `unknown field "extra"`, field: "extra"},
		{name: "unknown item field", p: &writer, body: `{"metrics":[{"name":"up","value":1,"labels":{}}]}`, status: http.StatusBadRequest, message: `unknown field "labels"`, field: "metrics[0]"},
		{name: "dimensions not strings", p: &writer, body: `{"metrics":[{"name":"up","value":1,"dimensions":{"a":1}}]}`, status: http.StatusBadRequest, field: "metrics[0]"},
		{name: "metrics missing", p: &writer, body: `{}`, status: http.StatusBadRequest, message: "required", field: "metrics"},
		{name: "metrics not a list", p: &writer, body: `{"metrics":{}}`, status: http.StatusBadRequest, field: "metrics"},
		{name: "not an object", p: &writer, body: `[]`, status: http.StatusBadRequest},
		{name: "truncated", p: &writer, body: `{"metrics":[{"name":"up"`, status: http.StatusBadRequest, message: "truncated", field: "metrics[0]"},
		{name: "trailing data", p: &writer, body: one + `{}`, status: http.StatusBadRequest, message: "after"},
		{name: "metrics twice", p: &writer, body: `{"metrics":[],"metrics":[]}`, status: http.StatusBadRequest, message: "twice", field: "metrics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := postNative(h, tc.p, tc.body, tc.hdr)
			require.Equal(t, tc.status, w.Code, w.Body.String())
			e := nativeError(t, w)
			require.Contains(t, e.Message, tc.message)
			require.Equal(t, tc.field, e.Field)
			require.Equal(t, tc.limit, e.Limit)
		})
	}
	require.Empty(t, readBack(t, store, writer.Tenant))
}

func TestWriteRateLimited(t *testing.T) {
	store := openStore(t)
	limits, err := tenancy.NewLimits(tenancy.LimitsConfig{TenantLimits: tenancy.TenantLimits{
		IngestionRate: 1, IngestionBurst: 2,
	}}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	h := newWrite(testConfig(t), store, limits, prometheus.NewRegistry())
	// Over the burst: never fits, 413 without Retry-After.
	w := postNative(h, &writer, `{"metrics":[{"name":"a","value":1},{"name":"b","value":1},{"name":"c","value":1}]}`, nil)
	require.Equal(t, http.StatusRequestEntityTooLarge, w.Code, w.Body.String())
	require.Empty(t, w.Header().Get("Retry-After"))
	require.Contains(t, nativeError(t, w).Message, "ingestion_burst")
	require.Empty(t, readBack(t, store, writer.Tenant))

	// Over the rate: the burst of 2 is taken, the third sample must wait.
	w = postNative(h, &writer, `{"metrics":[{"name":"a","value":1},{"name":"b","value":1}]}`, nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	w = postNative(h, &writer, `{"metrics":[{"name":"c","value":1}]}`, nil)
	require.Equal(t, http.StatusTooManyRequests, w.Code, w.Body.String())
	require.NotEmpty(t, w.Header().Get("Retry-After"))
	require.Equal(t, "rate_limited", nativeError(t, w).Code)
	require.Len(t, readBack(t, store, writer.Tenant), 2)
}

func TestWriteStoreUnavailable(t *testing.T) {
	store := openStore(t)
	h := newWrite(testConfig(t), store, nil, prometheus.NewRegistry())
	require.NoError(t, store.Close())
	w := postNative(h, &writer, `{"metrics":[{"name":"a","value":1}]}`, nil)
	require.Equal(t, http.StatusServiceUnavailable, w.Code, w.Body.String())
	require.NotEmpty(t, w.Header().Get("Retry-After"))
	require.Equal(t, "unavailable", nativeError(t, w).Code)
}

// FuzzWrite drives arbitrary bodies through the native write handler and
// a real store: it must answer, never panic, with a well-formed response
// whose counts add up.
func FuzzWrite(f *testing.F) {
	ms := time.Now().UnixMilli()
	for _, s := range []string{
		`{"metrics":[{"name":"up","dimensions":{"job":"x"},"value":1.5,"timestamp":"2026-11-26T10:00:00Z"}]}`,
		fmt.Sprintf(`{"metrics":[{"name":"up","value":"NaN","timestamp":%d},{"name":"","value":1}]}`, ms),
		`{"metrics":[{"name":"a","value":"+Inf"},{"name":"b","value":"-Inf","timestamp":-1}]}`,
		`{"metrics":[{"name":"a","dimensions":{"_tenant_id":"x","__name__":"b"},"value":1e400}]}`,
		`{"metrics":[]}`, `{}`, `[`, `{"metrics":[{"name":"a","value":1,"extra":2}]}`,
		`{"metrics":[{"name":"h","type":"histogram","help":"x","histogram":{"schema":3,"count":3,"sum":"NaN","zero_count":1,` +
			`"positive_spans":[{"offset":-1,"length":2}],"positive_counts":[1,1]},"exemplars":[{"labels":{"trace_id":"a"},"value":1}]}]}`,
		`{"metrics":[{"name":"h","histogram":{"float":true,"schema":-53,"count":2.5,"sum":1,"positive_spans":[{"offset":0,"length":1}],` +
			`"positive_counts":[2.5],"custom_values":[1]}},{"name":"h","value":1,"histogram":{"schema":0,"count":0,"sum":0}}]}`,
	} {
		f.Add([]byte(s))
	}
	store := openStore(f)
	cfg := testConfig(f)
	cfg.MaxNativeMetrics = 50
	h := newWrite(cfg, store, nil, prometheus.NewRegistry())
	f.Fuzz(func(t *testing.T, body []byte) {
		w := postNative(h, &writer, string(body), nil)
		var resp struct {
			native.WriteResponse
			Error *apierror.NativeError `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatalf("response is not JSON: %v: %s", err, w.Body)
		}
		items, decodeErr := native.DecodeWrite(body, cfg.MaxNativeMetrics)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest:
			if decodeErr != nil {
				if w.Code != http.StatusBadRequest || resp.Error == nil || resp.Status != "error" {
					t.Fatalf("undecodable body answered %d: %s", w.Code, w.Body)
				}
				return
			}
			if resp.Accepted+resp.Rejected != len(items) || len(resp.Errors) != resp.Rejected {
				t.Fatalf("%d items, response %+v", len(items), resp)
			}
			for _, e := range resp.Errors {
				if e.Index < 0 || e.Index >= len(items) || e.Reason == "" {
					t.Fatalf("bad item error %+v", e)
				}
			}
		case http.StatusRequestEntityTooLarge:
			if decodeErr == nil {
				t.Fatalf("413 for a body that decodes")
			}
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	})
}

func TestWriteBounds(t *testing.T) {
	store := openStore(t)
	cfg := testConfig(t)
	cfg.MaxLabelsPerRequest = 5
	h := newWrite(cfg, store, nil, prometheus.NewRegistry())

	// Labels of all items together, each name counting as one.
	w := postNative(h, &writer, `{"metrics":[{"name":"a","dimensions":{"x":"1"},"value":1},{"name":"b","dimensions":{"x":"1","y":"2"},"value":1}]}`, nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	w = postNative(h, &writer, `{"metrics":[{"name":"a","dimensions":{"x":"1","y":"2"},"value":1},{"name":"b","dimensions":{"x":"1","y":"2"},"value":1}]}`, nil)
	require.Equal(t, http.StatusRequestEntityTooLarge, w.Code, w.Body.String())
	e := nativeError(t, w)
	require.Contains(t, e.Message, "--ingest.max-labels-per-request")
	require.Equal(t, "metrics[1].dimensions", e.Field)
	require.Equal(t, "ingest.max-labels-per-request", e.Limit)

	// Deep nesting is refused by the JSON decoder's depth bound, at once.
	deep := `{"metrics":[{"name":"a","value":` + strings.Repeat("[", 1<<20) + `]}]}`
	start := time.Now()
	w = postNative(h, &writer, deep, nil)
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	require.Less(t, time.Since(start), 2*time.Second)
}

// The native write and the remote write receiver share one Ingester, as
// cmd/luminate mounts them: its in-flight budget and its counters.
func TestWriteSharesIngester(t *testing.T) {
	store := openStore(t)
	cfg := testConfig(t)
	cfg.MaxInflightBytes = 64 << 20
	reg := prometheus.NewRegistry()
	g := remotewrite.NewIngester(cfg, nil, nil, reg)
	post := []string{http.MethodPost}
	h := route(store,
		api.Route{Path: "/api/v1/write", Methods: post, Scope: tenancy.ScopeWrite, Format: apierror.Text, Serve: remotewrite.NewHandler(g).Serve},
		api.Route{Path: "/api/v1/metrics", Methods: post, Scope: tenancy.ScopeWrite, Format: apierror.Native, Serve: native.NewWrite(g, nil).Serve})
	remoteWrite := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/write", strings.NewReader(string(snappy.Encode(nil, nil))))
		r.Header.Set("Content-Type", "application/x-protobuf")
		r.Header.Set("Content-Encoding", "snappy")
		r = r.WithContext(tenancy.NewContext(r.Context(), writer))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}

	release, err := g.Reserve(writer.Tenant, cfg.MaxInflightBytes)
	require.NoError(t, err)
	w := postNative(h, &writer, `{"metrics":[{"name":"a","value":1}]}`, nil)
	require.Equal(t, http.StatusServiceUnavailable, w.Code, w.Body.String())
	require.Equal(t, "1", w.Header().Get("Retry-After"))
	e := nativeError(t, w)
	require.Equal(t, "unavailable", e.Code)
	require.Equal(t, "ingest.max-inflight-bytes", e.Limit)
	w = remoteWrite()
	require.Equal(t, http.StatusServiceUnavailable, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), "--ingest.max-inflight-bytes")

	release()
	w = postNative(h, &writer, `{"metrics":[{"name":"a","value":1}]}`, nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, http.StatusNoContent, remoteWrite().Code)
	require.Equal(t, 1.0, counter(t, reg, "luminate_ingest_requests_total", "tenant", "acme", "code", "200"))
	require.Equal(t, 1.0, counter(t, reg, "luminate_ingest_requests_total", "tenant", "acme", "code", "204"))
	require.Equal(t, 2.0, counter(t, reg, "luminate_ingest_requests_total", "tenant", "acme", "code", "503"))
}
