package otlp_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/luminate-io/luminate/api"
	"github.com/luminate-io/luminate/otlp"
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

// ingestConfig is the --ingest.* flag defaults, as cmd/luminate gets them.
func ingestConfig(t testing.TB) remotewrite.Config {
	var cfg remotewrite.Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	cfg.Retention = 30 * 24 * time.Hour
	require.NoError(t, cfg.Validate())
	return cfg
}

// env is a receiver on a router over a Badger store, as cmd/luminate
// mounts it.
type env struct {
	store  *badger.Store
	reg    *prometheus.Registry
	router http.Handler
}

type envOptions struct {
	ingest       func(*remotewrite.Config)
	otlp         func(*otlp.Config)
	translations otlp.Translations
	limiter      remotewrite.Limiter
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	cfg := ingestConfig(t)
	if o.ingest != nil {
		o.ingest(&cfg)
	}
	ocfg := otlp.DefaultConfig()
	if o.otlp != nil {
		o.otlp(&ocfg)
	}
	e := &env{store: openStore(t), reg: prometheus.NewRegistry()}
	g := remotewrite.NewIngester(cfg, o.limiter, nil, e.reg)
	h := otlp.NewHandler(g, ocfg, o.translations, nil)
	var routes []api.Route
	for _, p := range otlp.Paths() {
		routes = append(routes, api.Route{Path: p, Methods: []string{http.MethodPost}, Scope: tenancy.ScopeWrite, FormatOf: otlp.FormatOf, Serve: h.Serve})
	}
	r, err := api.NewRouter(api.Options{Auth: contextAuth{}, Storage: e.store, Tenants: e.store, Gatherer: prometheus.NewRegistry(), Routes: routes},
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	e.router = r
	return e
}

// contextAuth authenticates a request as the principal of its context.
type contextAuth struct{}

func (contextAuth) Authenticate(r *http.Request) (tenancy.Principal, error) {
	return tenancy.FromContext(r.Context())
}

type post struct {
	path            string
	principal       *tenancy.Principal
	contentType     string
	contentEncoding string
}

func (e *env) post(body []byte, p post) *httptest.ResponseRecorder {
	if p.path == "" {
		p.path = "/otlp/v1/metrics"
	}
	if p.principal == nil {
		p.principal = &writer
	}
	if p.contentType == "" {
		p.contentType = "application/x-protobuf"
	}
	r := httptest.NewRequest(http.MethodPost, p.path, bytes.NewReader(body))
	r.Header.Set("Content-Type", p.contentType)
	if p.contentEncoding != "" {
		r.Header.Set("Content-Encoding", p.contentEncoding)
	}
	if p.principal.Tenant != "" {
		r = r.WithContext(tenancy.NewContext(r.Context(), *p.principal))
	}
	w := httptest.NewRecorder()
	e.router.ServeHTTP(w, r)
	return w
}

func protoBody(t testing.TB, md pmetric.Metrics) []byte {
	t.Helper()
	b, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	require.NoError(t, err)
	return b
}

func jsonBody(t testing.TB, md pmetric.Metrics) []byte {
	t.Helper()
	b, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalJSON()
	require.NoError(t, err)
	return b
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// exportResponse decodes a 200's ExportMetricsServiceResponse.
func exportResponse(t testing.TB, w *httptest.ResponseRecorder) pmetricotlp.ExportResponse {
	t.Helper()
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	resp := pmetricotlp.NewExportResponse()
	switch ct := w.Header().Get("Content-Type"); ct {
	case "application/x-protobuf":
		require.NoError(t, resp.UnmarshalProto(w.Body.Bytes()))
	case "application/json":
		require.NoError(t, resp.UnmarshalJSON(w.Body.Bytes()))
	default:
		t.Fatalf("Content-Type %q", ct)
	}
	return resp
}

// rpcStatus decodes an error's google.rpc.Status, in the encoding of its
// Content-Type.
func rpcStatus(t testing.TB, w *httptest.ResponseRecorder) *rpcstatus.Status {
	t.Helper()
	var st rpcstatus.Status
	switch ct := w.Header().Get("Content-Type"); ct {
	case "application/x-protobuf":
		require.NoError(t, proto.Unmarshal(w.Body.Bytes(), &st))
	case "application/json":
		var js struct {
			Code    int32  `json:"code"`
			Message string `json:"message"`
		}
		dec := json.NewDecoder(w.Body)
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&js))
		st.Code, st.Message = js.Code, js.Message
	default:
		t.Fatalf("Content-Type %q: %s", ct, w.Body.String())
	}
	return &st
}

// point is one sample read back: a float, or a histogram (H or FH).
type point struct {
	T  int64
	V  float64
	H  *histogram.Histogram
	FH *histogram.FloatHistogram
}

// readPoints returns every sample of tenant id's series, by series.
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

// counter is the sum of the counter name's series whose labels include lv.
func counter(t testing.TB, reg *prometheus.Registry, name string, lv ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	total := 0.0
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
			for i := 0; i+1 < len(lv); i += 2 {
				if have[lv[i]] != lv[i+1] {
					continue metric
				}
			}
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

// The times of the test exports: a start, and two points after it.
var (
	start = time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	t1    = start.Add(time.Minute)
	t2    = start.Add(2 * time.Minute)
)

func ts(t time.Time) pcommon.Timestamp { return pcommon.NewTimestampFromTime(t) }

// newResource adds a resource of service ns/svc, instance i1, on host h1.
func newResource(md pmetric.Metrics) pmetric.ScopeMetrics {
	rm := md.ResourceMetrics().AppendEmpty()
	a := rm.Resource().Attributes()
	a.PutStr("service.name", "svc")
	a.PutStr("service.namespace", "ns")
	a.PutStr("service.instance.id", "i1")
	a.PutStr("host.name", "h1")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("lib")
	sm.Scope().SetVersion("1.2")
	return sm
}

func addSum(sm pmetric.ScopeMetrics, name, unit string, monotonic bool, temporality pmetric.AggregationTemporality, values ...float64) pmetric.Metric {
	m := sm.Metrics().AppendEmpty()
	m.SetName(name)
	m.SetUnit(unit)
	m.SetDescription("help of " + name)
	s := m.SetEmptySum()
	s.SetIsMonotonic(monotonic)
	s.SetAggregationTemporality(temporality)
	for i, v := range values {
		dp := s.DataPoints().AppendEmpty()
		dp.SetStartTimestamp(ts(start))
		dp.SetTimestamp(ts(start.Add(time.Duration(i+1) * time.Minute)))
		dp.SetDoubleValue(v)
		dp.Attributes().PutStr("path", "/")
	}
	return m
}

func TestEveryPointKind(t *testing.T) {
	e := newEnv(t, envOptions{})
	md := pmetric.NewMetrics()
	sm := newResource(md)

	requests := addSum(sm, "http.requests", "1", true, pmetric.AggregationTemporalityCumulative, 3, 5)
	ex := requests.Sum().DataPoints().At(1).Exemplars().AppendEmpty()
	ex.SetTimestamp(ts(t2))
	ex.SetDoubleValue(1)
	ex.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	ex.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
	addSum(sm, "queue.size", "{item}", false, pmetric.AggregationTemporalityCumulative, 7)

	g := sm.Metrics().AppendEmpty()
	g.SetName("temperature")
	g.SetUnit("Cel")
	gp := g.SetEmptyGauge().DataPoints().AppendEmpty()
	gp.SetTimestamp(ts(t1))
	gp.SetIntValue(21)

	hm := sm.Metrics().AppendEmpty()
	hm.SetName("request.duration")
	hm.SetUnit("s")
	hs := hm.SetEmptyHistogram()
	hs.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hp := hs.DataPoints().AppendEmpty()
	hp.SetStartTimestamp(ts(start))
	hp.SetTimestamp(ts(t1))
	hp.ExplicitBounds().FromRaw([]float64{0.1, 1})
	hp.BucketCounts().FromRaw([]uint64{2, 3, 1})
	hp.SetCount(6)
	hp.SetSum(4.5)

	em := sm.Metrics().AppendEmpty()
	em.SetName("latency")
	em.SetUnit("ms")
	es := em.SetEmptyExponentialHistogram()
	es.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	ep := es.DataPoints().AppendEmpty()
	ep.SetStartTimestamp(ts(start))
	ep.SetTimestamp(ts(t1))
	ep.SetScale(10) // above 8: the converter scales it down
	ep.SetCount(5)
	ep.SetSum(12)
	ep.SetZeroCount(1)
	ep.Positive().SetOffset(0)
	ep.Positive().BucketCounts().FromRaw([]uint64{1, 1, 1, 1})

	sum := sm.Metrics().AppendEmpty()
	sum.SetName("rpc.time")
	sum.SetUnit("s")
	sp := sum.SetEmptySummary().DataPoints().AppendEmpty()
	sp.SetStartTimestamp(ts(start))
	sp.SetTimestamp(ts(t1))
	sp.SetCount(4)
	sp.SetSum(2)
	q := sp.QuantileValues().AppendEmpty()
	q.SetQuantile(0.5)
	q.SetValue(0.4)

	resp := exportResponse(t, e.post(protoBody(t, md), post{}))
	require.Zero(t, resp.PartialSuccess().RejectedDataPoints(), resp.PartialSuccess().ErrorMessage())

	got := readPoints(t, e.store, "acme")
	ms1, ms2 := t1.UnixMilli(), t2.UnixMilli()
	floats := func(name, extra string, ps ...point) {
		t.Helper()
		for k, v := range got {
			if strings.HasPrefix(k, `{__name__="`+name+`"`) && (extra == "" || strings.Contains(k, extra)) {
				require.Equal(t, ps, v, k)
				return
			}
		}
		t.Fatalf("no series %s{%s} in %v", name, extra, keys(got))
	}
	floats("http_requests_total", "", point{T: ms1, V: 3}, point{T: ms2, V: 5})
	floats("queue_size", "", point{T: ms1, V: 7})
	floats("temperature_celsius", "", point{T: ms1, V: 21})
	floats("request_duration_seconds_bucket", `le="0.1"`, point{T: ms1, V: 2})
	floats("request_duration_seconds_bucket", `le="1"`, point{T: ms1, V: 5})
	floats("request_duration_seconds_bucket", `le="+Inf"`, point{T: ms1, V: 6})
	floats("request_duration_seconds_sum", "", point{T: ms1, V: 4.5})
	floats("request_duration_seconds_count", "", point{T: ms1, V: 6})
	floats("rpc_time_seconds", `quantile="0.5"`, point{T: ms1, V: 0.4})
	floats("rpc_time_seconds_sum", "", point{T: ms1, V: 2})
	floats("rpc_time_seconds_count", "", point{T: ms1, V: 4})

	// Labels: job and instance from the service, the point's attributes,
	// no scope labels by default.
	require.Contains(t, got, `{__name__="http_requests_total", instance="i1", job="ns/svc", path="/"}`)
	// target_info carries the other resource attributes.
	var info []point
	for k, v := range got {
		if strings.HasPrefix(k, `{__name__="target_info"`) {
			require.Equal(t, `{__name__="target_info", host_name="h1", instance="i1", job="ns/svc"}`, k)
			info = v
		}
	}
	require.NotEmpty(t, info)

	// The exponential histogram: a native histogram, scaled down to 8.
	var nh *histogram.Histogram
	for k, v := range got {
		if strings.HasPrefix(k, `{__name__="latency_milliseconds"`) {
			require.Len(t, v, 1)
			nh = v[0].H
		}
	}
	require.NotNil(t, nh, "no latency_milliseconds in %v", keys(got))
	require.EqualValues(t, 8, nh.Schema)
	require.EqualValues(t, 5, nh.Count)
	require.EqualValues(t, 12, nh.Sum)
	require.EqualValues(t, 1, nh.ZeroCount)

	// Exemplars, with the trace and span IDs as labels.
	exs := readExemplars(t, e.store, "acme")
	found := false
	for k, v := range exs {
		if strings.HasPrefix(k, `{__name__="http_requests_total"`) {
			require.Len(t, v, 1)
			require.Equal(t, "0102030405060708090a0b0c0d0e0f10", v[0].Labels.Get("trace_id"))
			require.Equal(t, "0102030405060708", v[0].Labels.Get("span_id"))
			require.Equal(t, ms2, v[0].Ts)
			found = true
		}
	}
	require.True(t, found, "exemplars %v", exs)

	// Metadata: type, unit, help.
	meta := readMetadata(t, e.store, "acme")
	require.Equal(t, metadata.Metadata{Type: "counter", Unit: "", Help: "help of http.requests"}, meta["http_requests_total"])
	require.Equal(t, "gauge", string(meta["queue_size"].Type))
	require.Equal(t, "celsius", meta["temperature_celsius"].Unit)
	require.Equal(t, "histogram", string(meta["request_duration_seconds"].Type))
	require.Equal(t, "seconds", meta["request_duration_seconds"].Unit)
	require.Equal(t, "summary", string(meta["rpc_time_seconds"].Type))

	require.EqualValues(t, 7, counter(t, e.reg, "luminate_ingest_samples_received_total", "tenant", "acme"))
	require.Zero(t, counter(t, e.reg, "luminate_ingest_samples_rejected_total", "tenant", "acme"))
	require.EqualValues(t, 1, counter(t, e.reg, "luminate_ingest_requests_total", "tenant", "acme", "code", "200"))
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
