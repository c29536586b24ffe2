package otlp_test

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/luminate-io/luminate/otlp"
	"github.com/luminate-io/luminate/remotewrite"
	"github.com/luminate-io/luminate/tenancy"
)

func TestPathsAndEncodings(t *testing.T) {
	e := newEnv(t, envOptions{})
	for i, p := range otlp.Paths() {
		md := pmetric.NewMetrics()
		addSum(newResource(md), "c"+string(rune('a'+i)), "", true, pmetric.AggregationTemporalityCumulative, 1)
		var w = e.post(protoBody(t, md), post{path: p})
		switch i % 3 {
		case 1:
			w = e.post(jsonBody(t, md), post{path: p, contentType: "application/json; charset=utf-8"})
			require.Equal(t, "application/json", w.Header().Get("Content-Type"))
		case 2:
			w = e.post(gzipped(t, jsonBody(t, md)), post{path: p, contentType: "application/json", contentEncoding: "gzip"})
			require.Equal(t, "application/json", w.Header().Get("Content-Type"))
		default:
			w = e.post(gzipped(t, protoBody(t, md)), post{path: p, contentEncoding: "gzip"})
			require.Equal(t, "application/x-protobuf", w.Header().Get("Content-Type"))
		}
		resp := exportResponse(t, w)
		require.Zero(t, resp.PartialSuccess().RejectedDataPoints())
	}
	got := readPoints(t, e.store, "acme")
	for i := range otlp.Paths() {
		require.Contains(t, got, `{__name__="c`+string(rune('a'+i))+`_total", instance="i1", job="ns/svc", path="/"}`)
	}
}

func TestDeltaRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	md := pmetric.NewMetrics()
	sm := newResource(md)
	addSum(sm, "cumulative", "", true, pmetric.AggregationTemporalityCumulative, 1, 2)
	addSum(sm, "delta", "", true, pmetric.AggregationTemporalityDelta, 1, 1, 1)
	hm := sm.Metrics().AppendEmpty()
	hm.SetName("delta.hist")
	hs := hm.SetEmptyHistogram()
	hs.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	hp := hs.DataPoints().AppendEmpty()
	hp.SetTimestamp(ts(t1))
	hp.SetCount(1)
	hp.BucketCounts().FromRaw([]uint64{1})
	for _, body := range []struct {
		b  []byte
		ct string
	}{{protoBody(t, md), ""}, {jsonBody(t, md), "application/json"}} {
		resp := exportResponse(t, e.post(body.b, post{contentType: body.ct}))
		ps := resp.PartialSuccess()
		require.EqualValues(t, 4, ps.RejectedDataPoints())
		require.Contains(t, ps.ErrorMessage(), `metric "delta" has delta temporality`)
		require.Contains(t, ps.ErrorMessage(), "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=cumulative")
		require.Contains(t, ps.ErrorMessage(), "deltatocumulative")
	}
	got := readPoints(t, e.store, "acme")
	require.Len(t, got[`{__name__="cumulative_total", instance="i1", job="ns/svc", path="/"}`], 2)
	for k := range got {
		require.NotContains(t, k, "delta")
	}
}

func TestPartialSuccess(t *testing.T) {
	// Without underscore sanitization, which would rename _tenant_id.
	tr := tenancy.DefaultOTLPTranslation()
	tr.LabelNameUnderscoreSanitization = false
	e := newEnv(t, envOptions{ingest: func(c *remotewrite.Config) { c.MaxLabelsPerSeries = 5 }, translations: fixed(tr)})
	md := pmetric.NewMetrics()
	sm := newResource(md)
	m := addSum(sm, "requests", "", true, pmetric.AggregationTemporalityCumulative, 1, 2, 3)
	// The tenant label: refused, whatever its value.
	m.Sum().DataPoints().At(0).Attributes().PutStr(tenancy.Label, "other")
	// Too many labels.
	for _, k := range []string{"a", "b", "c", "d"} {
		m.Sum().DataPoints().At(1).Attributes().PutStr(k, "v")
	}
	// A classic histogram point with too many labels: one point, though
	// it is four series.
	hm := sm.Metrics().AppendEmpty()
	hm.SetName("h")
	hs := hm.SetEmptyHistogram()
	hs.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	for i := range 2 {
		hp := hs.DataPoints().AppendEmpty()
		hp.SetTimestamp(ts(t1))
		hp.ExplicitBounds().FromRaw([]float64{1})
		hp.BucketCounts().FromRaw([]uint64{1, 1})
		hp.SetCount(2)
		hp.SetSum(3)
		hp.Attributes().PutStr("x", "1")
		if i == 0 {
			for _, k := range []string{"a", "b", "c"} {
				hp.Attributes().PutStr(k, "v")
			}
		}
	}
	resp := exportResponse(t, e.post(protoBody(t, md), post{}))
	ps := resp.PartialSuccess()
	require.EqualValues(t, 3, ps.RejectedDataPoints(), ps.ErrorMessage())
	require.Contains(t, ps.ErrorMessage(), "label _tenant_id is reserved")
	got := readPoints(t, e.store, "acme")
	require.Len(t, got[`{__name__="requests_total", instance="i1", job="ns/svc", path="/"}`], 1)
	require.Len(t, got[`{__name__="h_bucket", instance="i1", job="ns/svc", le="1", x="1"}`], 1)
	require.Len(t, got, 6) // requests_total, h's four, target_info
	require.EqualValues(t, 1, counter(t, e.reg, "luminate_ingest_samples_rejected_total", "tenant", "acme", "reason", "tenant_label"))
	require.EqualValues(t, 2, counter(t, e.reg, "luminate_ingest_samples_rejected_total", "tenant", "acme", "reason", "too_many_labels"))
	require.EqualValues(t, 1+4+2, counter(t, e.reg, "luminate_ingest_samples_accepted_total", "tenant", "acme")) // with target_info at the first and last times
}

func TestOutOfWindow(t *testing.T) {
	e := newEnv(t, envOptions{})
	md := pmetric.NewMetrics()
	m := addSum(newResource(md), "old", "", true, pmetric.AggregationTemporalityCumulative, 1, 2)
	m.Sum().DataPoints().At(0).SetTimestamp(ts(t1.AddDate(-1, 0, 0)))
	resp := exportResponse(t, e.post(protoBody(t, md), post{}))
	require.EqualValues(t, 1, resp.PartialSuccess().RejectedDataPoints())
	require.Contains(t, resp.PartialSuccess().ErrorMessage(), "older than the storage retention")
}

// translated exports one counter, histogram and resource under
// translation tr, and returns the series stored.
func translated(t *testing.T, tr tenancy.OTLPTranslation) map[string][]point {
	t.Helper()
	e := newEnv(t, envOptions{translations: fixed(tr)})
	md := pmetric.NewMetrics()
	sm := newResource(md)
	md.ResourceMetrics().At(0).Resource().Attributes().PutStr("deployment.environment", "prod")
	sm.Scope().Attributes().PutStr("lib.attr", "x")
	addSum(sm, "http.server.requests", "By", true, pmetric.AggregationTemporalityCumulative, 1)
	hm := sm.Metrics().AppendEmpty()
	hm.SetName("rpc.duration")
	hm.SetUnit("s")
	hs := hm.SetEmptyHistogram()
	hs.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hp := hs.DataPoints().AppendEmpty()
	hp.SetTimestamp(ts(t1))
	hp.ExplicitBounds().FromRaw([]float64{0.5, 1})
	hp.BucketCounts().FromRaw([]uint64{1, 2, 3})
	hp.SetCount(6)
	hp.SetSum(7)
	hp.Attributes().PutStr("_private", "p")
	exportResponse(t, e.post(protoBody(t, md), post{}))
	return readPoints(t, e.store, "acme")
}

type fixed tenancy.OTLPTranslation

func (f fixed) OTLP(tenancy.ID) tenancy.OTLPTranslation { return tenancy.OTLPTranslation(f) }

func TestTranslations(t *testing.T) {
	d := tenancy.DefaultOTLPTranslation()
	t.Run("default", func(t *testing.T) {
		got := translated(t, d)
		require.Contains(t, got, `{__name__="http_server_requests_bytes_total", instance="i1", job="ns/svc", path="/"}`)
		require.Contains(t, got, `{__name__="rpc_duration_seconds_bucket", instance="i1", job="ns/svc", key_private="p", le="0.5"}`)
		require.Contains(t, got, `{__name__="target_info", deployment_environment="prod", host_name="h1", instance="i1", job="ns/svc"}`)
	})
	t.Run("NoTranslation", func(t *testing.T) {
		tr := d
		tr.TranslationStrategy = "NoTranslation"
		got := translated(t, tr)
		require.Contains(t, got, `{__name__="http.server.requests", instance="i1", job="ns/svc", path="/"}`)
		require.Contains(t, got, `{__name__="rpc.duration_bucket", _private="p", instance="i1", job="ns/svc", le="0.5"}`)
		require.Contains(t, got, `{__name__="target_info", "deployment.environment"="prod", "host.name"="h1", instance="i1", job="ns/svc"}`)
	})
	t.Run("NoUTF8EscapingWithSuffixes", func(t *testing.T) {
		tr := d
		tr.TranslationStrategy = "NoUTF8EscapingWithSuffixes"
		got := translated(t, tr)
		require.Contains(t, got, `{__name__="http.server.requests_bytes_total", instance="i1", job="ns/svc", path="/"}`)
	})
	t.Run("UnderscoreEscapingWithoutSuffixes", func(t *testing.T) {
		tr := d
		tr.TranslationStrategy = "UnderscoreEscapingWithoutSuffixes"
		got := translated(t, tr)
		require.Contains(t, got, `{__name__="http_server_requests", instance="i1", job="ns/svc", path="/"}`)
	})
	t.Run("promote, keep identifying, scope", func(t *testing.T) {
		tr := d
		tr.PromoteResourceAttributes = tenancy.CSV{"deployment.environment"}
		tr.KeepIdentifyingResourceAttributes = true
		tr.PromoteScopeMetadata = true
		got := translated(t, tr)
		require.Contains(t, got, `{__name__="http_server_requests_bytes_total", deployment_environment="prod", instance="i1", job="ns/svc", `+
			`otel_scope_lib_attr="x", otel_scope_name="lib", otel_scope_version="1.2", path="/"}`)
		require.Contains(t, got, `{__name__="target_info", deployment_environment="prod", host_name="h1", instance="i1", job="ns/svc", `+
			`service_instance_id="i1", service_name="svc", service_namespace="ns"}`)
	})
	t.Run("promote all but", func(t *testing.T) {
		tr := d
		tr.PromoteAllResourceAttributes = true
		tr.IgnoreResourceAttributes = tenancy.CSV{"host.name"}
		got := translated(t, tr)
		require.Contains(t, got, `{__name__="http_server_requests_bytes_total", deployment_environment="prod", instance="i1", job="ns/svc", path="/", `+
			`service_instance_id="i1", service_name="svc", service_namespace="ns"}`)
	})
	t.Run("no underscore sanitization", func(t *testing.T) {
		tr := d
		tr.LabelNameUnderscoreSanitization = false
		got := translated(t, tr)
		require.Contains(t, got, `{__name__="rpc_duration_seconds_bucket", _private="p", instance="i1", job="ns/svc", le="0.5"}`)
	})
	t.Run("NHCB", func(t *testing.T) {
		tr := d
		tr.ConvertHistogramsToNHCB = true
		got := translated(t, tr)
		ps := got[`{__name__="rpc_duration_seconds", instance="i1", job="ns/svc", key_private="p"}`]
		require.Len(t, ps, 1, "%v", keys(got))
		require.NotNil(t, ps[0].H)
		require.EqualValues(t, histogram.CustomBucketsSchema, ps[0].H.Schema)
		require.Equal(t, []float64{0.5, 1}, ps[0].H.CustomValues)
		require.EqualValues(t, 6, ps[0].H.Count)
		for k := range got {
			require.False(t, strings.Contains(k, "_bucket"), k)
		}
	})
}

func TestStartTimeZeroIngestion(t *testing.T) {
	e := newEnv(t, envOptions{ingest: func(c *remotewrite.Config) { c.StartZeroIngestion = true }})
	md := pmetric.NewMetrics()
	addSum(newResource(md), "c", "", true, pmetric.AggregationTemporalityCumulative, 4, 6)
	exportResponse(t, e.post(protoBody(t, md), post{}))
	got := readPoints(t, e.store, "acme")[`{__name__="c_total", instance="i1", job="ns/svc", path="/"}`]
	require.Equal(t, []point{{T: start.UnixMilli(), V: 0}, {T: t1.UnixMilli(), V: 4}, {T: t2.UnixMilli(), V: 6}}, got)
}

func TestTranslationOverrides(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/limits.yaml"
	require.NoError(t, writeFile(path, "overrides:\n  acme:\n    otel_translation_strategy: NoTranslation\n    promote_otel_resource_attributes: host.name, deployment.environment\n"))
	cfg := tenancy.DefaultLimitsConfig()
	cfg.OverridesFile = path
	limits, err := tenancy.NewLimits(cfg, nil, nil)
	require.NoError(t, err)
	e := newEnv(t, envOptions{translations: limits})
	md := pmetric.NewMetrics()
	addSum(newResource(md), "a.b", "", true, pmetric.AggregationTemporalityCumulative, 1)
	exportResponse(t, e.post(protoBody(t, md), post{}))
	require.Contains(t, readPoints(t, e.store, "acme"), `{__name__="a.b", "host.name"="h1", instance="i1", job="ns/svc", path="/"}`)
	require.Equal(t, tenancy.CSV{"host.name", "deployment.environment"}, limits.OTLP("acme").PromoteResourceAttributes)
	require.Equal(t, "UnderscoreEscapingWithSuffixes", limits.OTLP("other").TranslationStrategy)
	_ = http.StatusOK
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// Each stage's first refusal is in the message: delta, then the series
// validation's.
func TestPartialSuccessMessages(t *testing.T) {
	e := newEnv(t, envOptions{})
	md := pmetric.NewMetrics()
	sm := newResource(md)
	m := addSum(sm, "long", "", true, pmetric.AggregationTemporalityCumulative, 1)
	m.Sum().DataPoints().At(0).Attributes().PutStr("v", strings.Repeat("x", 5000))
	addSum(sm, "delta", "", true, pmetric.AggregationTemporalityDelta, 1)
	ps := exportResponse(t, e.post(protoBody(t, md), post{})).PartialSuccess()
	require.EqualValues(t, 2, ps.RejectedDataPoints())
	require.Contains(t, ps.ErrorMessage(), `metric "delta" has delta temporality`)
	require.Contains(t, ps.ErrorMessage(), `value of label "v" is 5000 bytes long`)
	require.Less(t, len(ps.ErrorMessage()), 2*1024+10)
}
