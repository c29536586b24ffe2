package otlp_test

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/luminate-io/luminate/remotewrite"
	"github.com/luminate-io/luminate/tenancy"
)

// nestedProto is a request whose one resource attribute is an AnyValue
// nested depth times (kvlist in kvlist ...).
func nestedProto(depth int) []byte {
	// AnyValue{kvlist_value(6): KeyValueList{values(1): KeyValue{key(1) "k", value(2): AnyValue}}},
	// all prefixes: built from the inside out by sizes, written outside in.
	uv := func(n int) []byte { return binary.AppendUvarint(nil, uint64(n)) }
	core := []byte{0x0a, 0x01, 'x'} // AnyValue{string_value: "x"}
	prefixes := make([][]byte, depth)
	size := len(core)
	for i := depth - 1; i >= 0; i-- {
		kv := append([]byte{0x0a, 0x01, 'k', 0x12}, uv(size)...)
		kvLen := len(kv) + size
		kvl := append([]byte{0x0a}, uv(kvLen)...)
		kvlLen := len(kvl) + kvLen
		av := append([]byte{0x32}, uv(kvlLen)...)
		p := append(append(av, kvl...), kv...)
		prefixes[i] = p
		size += len(p)
	}
	kv := append([]byte{0x0a, 0x01, 'a', 0x12}, uv(size)...)
	size += len(kv)
	res := append([]byte{0x0a}, uv(size)...)
	size += len(res)
	rm := append([]byte{0x0a}, uv(size)...)
	size += len(rm)
	req := append([]byte{0x0a}, uv(size)...)
	out := append(append(append(req, rm...), res...), kv...)
	for _, p := range prefixes {
		out = append(out, p...)
	}
	return append(out, core...)
}

// nestedJSON is the JSON of nestedProto.
func nestedJSON(depth int) []byte {
	v := strings.Repeat(`{"kvlistValue":{"values":[{"key":"k","value":`, depth) + `{"stringValue":"x"}` + strings.Repeat(`}]}}`, depth)
	return []byte(`{"resourceMetrics":[{"resource":{"attributes":[{"key":"a","value":` + v + `}]}}]}`)
}

// gauges is a request of n gauge points, of one series each.
func gauges(n int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	sm := newResource(md)
	m := sm.Metrics().AppendEmpty()
	m.SetName("g")
	dps := m.SetEmptyGauge().DataPoints()
	dps.EnsureCapacity(n)
	for i := range n {
		dp := dps.AppendEmpty()
		dp.SetTimestamp(ts(t1))
		dp.SetDoubleValue(float64(i))
	}
	return md
}

func TestMalformed(t *testing.T) {
	e := newEnv(t, envOptions{ingest: func(c *remotewrite.Config) { c.MaxCompressedBytes = 64 << 20 }})
	good := protoBody(t, gauges(3))
	bomb := gzipped(t, make([]byte, 80<<20)) // 80 MiB of zeros, about 80 KB gzipped
	for _, tc := range []struct {
		name     string
		body     []byte
		p        post
		status   int
		code     int32
		contains string
	}{
		{"truncated protobuf", good[:len(good)-3], post{}, 400, 3, "decode OTLP metrics"},
		{"garbage protobuf", []byte{0xff, 0xff, 0xff}, post{}, 400, 3, "decode OTLP metrics"},
		{"bad JSON", []byte(`{"resourceMetrics":[{`), post{contentType: "application/json"}, 400, 3, "decode OTLP metrics"},
		{"JSON of the wrong shape", []byte(`{"resourceMetrics":"x"}`), post{contentType: "application/json"}, 400, 3, "decode OTLP metrics"},
		{"not gzip", good, post{contentEncoding: "gzip"}, 400, 3, "gzip"},
		{"truncated gzip", gzipped(t, good)[:20], post{contentEncoding: "gzip"}, 400, 3, "gzip"},
		{"gzip bomb", bomb, post{contentEncoding: "gzip"}, 413, 3, "--otlp.max-decompressed-bytes"},
		{"deep protobuf", nestedProto(100_000), post{}, 400, 3, "nested more than 32 deep"},
		{"deep protobuf gzipped", gzipped(t, nestedProto(1_000_000)), post{contentEncoding: "gzip"}, 400, 3, "nested more than 32 deep"},
		{"deep JSON", nestedJSON(100_000), post{contentType: "application/json"}, 400, 3, "nested more than 32 deep"},
		{"text body", good, post{contentType: "text/plain"}, 415, 3, "Content-Type"},
		{"no content type", good, post{contentType: " "}, 415, 3, "Content-Type"},
		{"brotli", good, post{contentEncoding: "br"}, 415, 3, "Content-Encoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := e.post(tc.body, tc.p)
			require.Equal(t, tc.status, w.Code, w.Body.String())
			st := rpcStatus(t, w)
			require.Equal(t, tc.code, st.Code)
			require.Contains(t, st.Message, tc.contains)
		})
	}
	// Nesting within the bound decodes: a 3-deep value is a target_info label.
	md := gauges(1)
	v := md.ResourceMetrics().At(0).Resource().Attributes().PutEmptyMap("nested")
	v.PutEmptyMap("a").PutEmptyMap("b").PutStr("c", "d")
	exportResponse(t, e.post(protoBody(t, md), post{}))
	require.Contains(t, keys(readPoints(t, e.store, "acme")), `{__name__="target_info", host_name="h1", instance="i1", job="ns/svc", nested="{\"a\":{\"b\":{\"c\":\"d\"}}}"}`)
}

func TestTooManyPoints(t *testing.T) {
	e := newEnv(t, envOptions{ingest: func(c *remotewrite.Config) { c.MaxCompressedBytes = 64 << 20 }})
	// One million and one points: counted before converting, refused whole.
	body := protoBody(t, gauges(1_000_001))
	w := e.post(gzipped(t, body), post{contentEncoding: "gzip"})
	require.Equal(t, http.StatusRequestEntityTooLarge, w.Code, w.Body.String())
	st := rpcStatus(t, w)
	require.Contains(t, st.Message, "1000001 data points")
	require.Contains(t, st.Message, "--ingest.max-samples-per-request")
	require.Empty(t, readPoints(t, e.store, "acme"))
}

// allocatedBy is what f allocates in all (runtime TotalAlloc).
func allocatedBy(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// A request of too many points is refused before it is decoded or read
// whole, on both paths: the body of 1,000,001 points is 20 MB inflated,
// and decoding it took 944 MiB (the fast path's slices growing, then
// pdata's objects).
func TestTooManyPointsNotDecoded(t *testing.T) {
	e := newEnv(t, envOptions{ingest: func(c *remotewrite.Config) { c.MaxCompressedBytes = 64 << 20 }})
	md := gauges(1_000_001)
	js, err := (&pmetric.JSONMarshaler{}).MarshalMetrics(md)
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		body []byte
		p    post
	}{
		{"protobuf", gzipped(t, protoBody(t, md)), post{contentEncoding: "gzip"}},
		{"json", gzipped(t, js), post{contentEncoding: "gzip", contentType: "application/json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w *httptest.ResponseRecorder
			took := allocatedBy(func() { w = e.post(tc.body, tc.p) })
			require.Equal(t, http.StatusRequestEntityTooLarge, w.Code, w.Body.String())
			msg := rpcStatus(t, w).Message
			require.Contains(t, msg, "1000001 data points")
			require.Contains(t, msg, "--ingest.max-samples-per-request")
			t.Logf("%s: %d bytes gzipped, %d MiB allocated", tc.name, len(tc.body), took>>20)
			require.Less(t, took, uint64(len(js))*3+(16<<20))
		})
	}
}

// A body of tiny messages (here empty exemplars, 2 bytes each, some 400
// bytes each once pdata decodes them) is counted before it is decoded:
// refused when it would take more than the in-flight budget, and counted
// in the budget as what it takes, not as its size.
func TestDecodedSizeCounted(t *testing.T) {
	point := func(exemplars int) []byte {
		ex := bytes.Repeat([]byte{0x2a, 0}, exemplars) // field 5, empty
		p := append([]byte{0x19}, binary.LittleEndian.AppendUint64(nil, uint64(t1.UnixNano()))...)
		p = append(p, 0x21, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f) // as_double 1
		return append(p, ex...)
	}
	field := func(num protowire.Number, b []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), b)
	}
	// Request{ResourceMetrics{ScopeMetrics{Metric{name "g", Gauge{point}}}}}
	body := func(exemplars int) []byte {
		metric := append(field(1, []byte("g")), field(5, field(1, point(exemplars)))...)
		return field(1, field(2, field(2, metric)))
	}
	e := newEnv(t, envOptions{ingest: func(c *remotewrite.Config) { c.MaxCompressedBytes = 64 << 20; c.MaxInflightBytes = 256 << 20 }})
	// 3 million exemplars: 6 MB, and 1.2 GB once decoded.
	bomb := body(3_000_000)
	var w *httptest.ResponseRecorder
	took := allocatedBy(func() { w = e.post(gzipped(t, bomb), post{contentEncoding: "gzip"}) })
	require.Equal(t, http.StatusRequestEntityTooLarge, w.Code, w.Body.String())
	st := rpcStatus(t, w)
	require.Contains(t, st.Message, "--ingest.max-inflight-bytes")
	require.Contains(t, st.Message, "decodes to about")
	require.Less(t, took, uint64(64<<20), "allocated %d MiB", took>>20)

	// 100,000 exemplars: 200 KB, about 45 MB counted; over a budget of
	// 32 MB, within one of 64 MB.
	small := body(100_000)
	e = newEnv(t, envOptions{ingest: func(c *remotewrite.Config) { c.MaxInflightBytes = 32 << 20 }})
	w = e.post(small, post{})
	require.Equal(t, http.StatusRequestEntityTooLarge, w.Code, w.Body.String())
	require.Contains(t, rpcStatus(t, w).Message, "--ingest.max-inflight-bytes")
	e = newEnv(t, envOptions{ingest: func(c *remotewrite.Config) { c.MaxInflightBytes = 64 << 20 }})
	exportResponse(t, e.post(small, post{}))
}

func TestHugeAttributeValue(t *testing.T) {
	e := newEnv(t, envOptions{ingest: func(c *remotewrite.Config) { c.MaxCompressedBytes = 64 << 20 }})
	md := gauges(2)
	dp := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints().At(0)
	dp.Attributes().PutStr("big", strings.Repeat("x", 10<<20))
	resp := exportResponse(t, e.post(gzipped(t, protoBody(t, md)), post{contentEncoding: "gzip"}))
	ps := resp.PartialSuccess()
	require.EqualValues(t, 1, ps.RejectedDataPoints())
	require.Contains(t, ps.ErrorMessage(), "value of label \"big\" is 10485760 bytes long, more than the limit of 2048")
	require.Contains(t, ps.ErrorMessage(), "--ingest.max-label-value-length")
	require.Less(t, len(ps.ErrorMessage()), 1000) // the value is not echoed
	got := readPoints(t, e.store, "acme")
	require.Contains(t, got, `{__name__="g", instance="i1", job="ns/svc"}`)
	require.EqualValues(t, 1, counter(t, e.reg, "luminate_ingest_samples_rejected_total", "tenant", "acme", "reason", "label_value_too_long"))
}

func TestRefusals(t *testing.T) {
	limits, err := tenancy.NewLimits(tenancy.LimitsConfig{TenantLimits: tenancy.TenantLimits{IngestionRate: 1, IngestionBurst: 5}}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	e := newEnv(t, envOptions{limiter: limits})
	body := protoBody(t, gauges(3))
	t.Run("no token", func(t *testing.T) {
		w := e.post(body, post{principal: &tenancy.Principal{}})
		require.Equal(t, http.StatusUnauthorized, w.Code)
		require.EqualValues(t, 16, rpcStatus(t, w).Code)
	})
	t.Run("read scope", func(t *testing.T) {
		w := e.post(body, post{principal: &tenancy.Principal{Tenant: "acme", Scopes: []tenancy.Scope{tenancy.ScopeRead}}, contentType: "application/json"})
		require.Equal(t, http.StatusForbidden, w.Code)
		require.Equal(t, "application/json", w.Header().Get("Content-Type"))
		require.EqualValues(t, 7, rpcStatus(t, w).Code)
	})
	t.Run("rate limited", func(t *testing.T) {
		exportResponse(t, e.post(body, post{}))
		w := e.post(body, post{})
		require.Equal(t, http.StatusTooManyRequests, w.Code, w.Body.String())
		require.NotEmpty(t, w.Header().Get("Retry-After"))
		st := rpcStatus(t, w)
		require.EqualValues(t, 8, st.Code)
		require.Contains(t, st.Message, "ingestion_rate")
	})
}

// The protobuf google.rpc.Status is exactly the two fields.
func TestStatusWire(t *testing.T) {
	e := newEnv(t, envOptions{})
	w := e.post([]byte{0xff}, post{})
	require.Equal(t, 400, w.Code)
	msg := rpcStatus(t, w).Message
	want := append([]byte{0x08, 3, 0x12}, binary.AppendUvarint(nil, uint64(len(msg)))...)
	require.True(t, bytes.Equal(append(want, msg...), w.Body.Bytes()))
}

// Points of 1970 and of today in one resource: Prometheus' converter
// would write a target_info sample every 2.5 minutes between them, 11
// million; here a handful.
func TestTargetInfoSpan(t *testing.T) {
	e := newEnv(t, envOptions{ingest: func(c *remotewrite.Config) { c.Retention = 0 }})
	md := gauges(2)
	md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints().At(0).SetTimestamp(1)
	start := time.Now()
	resp := exportResponse(t, e.post(protoBody(t, md), post{}))
	require.Zero(t, resp.PartialSuccess().RejectedDataPoints())
	require.Less(t, time.Since(start), 5*time.Second)
	info := readPoints(t, e.store, "acme")[`{__name__="target_info", host_name="h1", instance="i1", job="ns/svc"}`]
	require.NotEmpty(t, info)
	require.LessOrEqual(t, len(info), 6)
}

// One point of many buckets is many samples: bounded as remote write's.
func TestTooManySamples(t *testing.T) {
	e := newEnv(t, envOptions{ingest: func(c *remotewrite.Config) { c.MaxSamplesPerRequest = 1000 }})
	md := gauges(1)
	m := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().AppendEmpty()
	m.SetName("h")
	hs := m.SetEmptyHistogram()
	hs.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hp := hs.DataPoints().AppendEmpty()
	hp.SetTimestamp(ts(t1))
	bounds := make([]float64, 2000)
	for i := range bounds {
		bounds[i] = float64(i)
	}
	hp.ExplicitBounds().FromRaw(bounds)
	hp.BucketCounts().FromRaw(make([]uint64, 2001))
	w := e.post(protoBody(t, md), post{})
	require.Equal(t, http.StatusRequestEntityTooLarge, w.Code, w.Body.String())
	require.Contains(t, rpcStatus(t, w).Message, "--ingest.max-samples-per-request")
	require.Empty(t, readPoints(t, e.store, "acme"))
}
