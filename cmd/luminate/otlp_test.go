package main

// OpenTelemetry end to end (issue 13): the OpenTelemetry Go SDK's own
// OTLP/HTTP exporter, configured from the README's environment variables,
// exports into a luminate on Badger, one on ClickHouse and a Prometheus
// 3.x OTLP receiver at once, and the three must answer PromQL alike.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/luminate-io/luminate/internal/proctest"
	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
	"github.com/luminate-io/luminate/tenancy"
)

// OTLP endpoints: Luminate's, its alias under /prometheus, and Prometheus
// 3's (which Luminate serves too).
const (
	otlpPath           = "/otlp/v1/metrics"
	otlpPrometheusPath = "/prometheus/otlp/v1/metrics"
	otlpAPIPath        = "/api/v1/otlp/v1/metrics"
)

// otlpSink is a server the test exports to and queries.
type otlpSink struct {
	name  string
	query string // base of its Prometheus HTTP API
	otlp  string // the URL the SDK exports to
	json  string // the URL the JSON request goes to
	write string // token with metrics:write ("" for Prometheus)
	read  string // token with metrics:read
	lum   *proc  // nil for Prometheus
	ref   int    // the index of the Prometheus whose answers it must give
}

// otlpTranslation is a translation configuration: a Prometheus with an
// otlp: block and luminates with the flags that say the same.
type otlpTranslation struct {
	name     string
	prom     string   // the otlp: block of the Prometheus configuration
	features string   // Prometheus' --enable-feature beside exemplar-storage
	flags    []string // the luminate flags
	backends []string // the luminates: badger, clickhouse
	queries  bool     // also the PromQL queries that name metrics (default names only)
}

var otlpTranslations = []otlpTranslation{
	{name: "default", backends: []string{"badger", "clickhouse"}, queries: true},
	{
		name: "utf8-promote",
		prom: `otlp:
  translation_strategy: NoUTF8EscapingWithSuffixes
  promote_resource_attributes: [k8s.pod.name, cloud.region]
  keep_identifying_resource_attributes: true
  promote_scope_metadata: true
  convert_histograms_to_nhcb: true
`,
		flags: []string{"--otlp.translation-strategy=NoUTF8EscapingWithSuffixes", "--otlp.promote-resource-attributes=k8s.pod.name,cloud.region",
			"--otlp.keep-identifying-resource-attributes", "--otlp.promote-scope-metadata", "--otlp.convert-histograms-to-nhcb"},
		backends: []string{"badger"},
	},
	{
		name: "no-translation-promote-all",
		prom: `otlp:
  translation_strategy: NoTranslation
  promote_all_resource_attributes: true
  ignore_resource_attributes: [telemetry.sdk.version, process.pid]
`,
		flags: []string{"--otlp.translation-strategy=NoTranslation", "--otlp.promote-all-resource-attributes",
			"--otlp.ignore-resource-attributes=telemetry.sdk.version,process.pid"},
		backends: []string{"badger"},
	},
	{
		// Start times as zero samples before the first point.
		name:     "start-time-zero",
		features: ",created-timestamp-zero-ingestion",
		flags:    []string{"--ingest.created-timestamp-zero-ingestion"},
		backends: []string{"badger", "clickhouse"},
		queries:  true,
	},
}

// TestOTLPEndToEnd exports counters (int and float, synchronous and
// observable), up-down counters, gauges, explicit-bucket and exponential
// histograms with exemplars and resource attributes through the SDK's
// otlpmetrichttp exporter (protobuf, gzip, a bearer token), then a
// hand-built JSON request with every point kind (summaries too), into
// luminates and Prometheus 3.x: with the default translation a luminate on
// Badger and one on ClickHouse, and with two other translation settings
// one on Badger, each beside a Prometheus configured alike. The whole
// answers of instant, raw-sample, series, label and exemplar queries must
// be the same. Then it checks the error paths and partial success.
func TestOTLPEndToEnd(t *testing.T) {
	begin := time.Now()
	bin := prometheus3(t)
	dsn := chtest.Start(t)

	var sinks []otlpSink
	var proms []*promProc
	for _, tr := range otlpTranslations {
		prom := startPrometheusBin(t, bin, "otlp-"+tr.name, proctest.FreeAddr(t), "global:\n  scrape_interval: 1m\n"+tr.prom,
			"--web.enable-otlp-receiver", "--enable-feature=exemplar-storage"+tr.features)
		proms = append(proms, prom)
		ref := len(sinks)
		sinks = append(sinks, otlpSink{name: tr.name + "/prometheus", query: prom.url(""), otlp: prom.url(otlpAPIPath), json: prom.url(otlpAPIPath), ref: ref})
		for _, backend := range tr.backends {
			flags := slices.Clone(tr.flags)
			json := otlpAPIPath // every alias is used by one
			if backend == "clickhouse" {
				flags = append(flags, "--storage.backend=clickhouse", "--storage.clickhouse.dsn="+dsn, "--storage.clickhouse.database=otlp_"+strings.ReplaceAll(tr.name, "-", "_"))
				json = otlpPrometheusPath
			}
			lum, secret := startAuthLuminate(t, flags...)
			key, err := tenancy.LoadHMACSecret(secret)
			require.NoError(t, err)
			mint := func(scopes ...tenancy.Scope) string {
				tok, err := tenancy.Mint(key, "", "otlp", scopes, time.Hour, "", "", time.Now())
				require.NoError(t, err)
				return tok
			}
			sinks = append(sinks, otlpSink{name: tr.name + "/" + backend, query: lum.url("/prometheus"), otlp: lum.url(otlpPath), json: lum.url(json),
				write: mint(tenancy.ScopeWrite), read: mint(tenancy.ScopeRead), lum: lum, ref: ref})
		}
	}
	for _, prom := range proms {
		prom.waitReady()
	}
	info := promData(t, proms[0].url(""), "/api/v1/status/buildinfo", "")
	require.True(t, strings.HasPrefix(fmt.Sprint(info.(map[string]any)["version"]), "3."), "Prometheus 3.x: %v", info)
	t.Logf("%d Prometheus %v and %d luminates up after %s", len(proms), info.(map[string]any)["version"], len(sinks)-len(proms), time.Since(begin).Round(100*time.Millisecond))

	ctx := context.Background()
	// Every error the SDK reports (a partial success among them) fails the
	// test.
	var handled errorsSeen
	otel.SetErrorHandler(&handled)
	t.Cleanup(func() { otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {})) })

	// One exporter per sink, each configured by the README's variables
	// alone, with that sink's address and token.
	env := readmeOTelEnv(t)
	exporters := make([]*otlpmetrichttp.Exporter, len(sinks))
	for i, s := range sinks {
		for name, value := range env {
			value = strings.ReplaceAll(value, readmeOTLPEndpoint, s.otlp)
			value = strings.ReplaceAll(value, readmeToken, s.write)
			t.Setenv(name, value)
		}
		exp, err := otlpmetrichttp.New(ctx)
		require.NoError(t, err)
		exporters[i] = exp
		t.Cleanup(func() { _ = exp.Shutdown(ctx) })
	}
	// The resource: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (set
	// just above from the README), the SDK's own attributes and a few more.
	res, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithAttributes(
		attribute.String("host.name", "node-7"),
		attribute.String("k8s.pod.name", "checkout-5d9f-abcde"),
		attribute.String("cloud.region", "eu-west-1"),
	))
	require.NoError(t, err)
	require.Equal(t, "checkout", attrOf(res, "service.name"), "OTEL_SERVICE_NAME is read: %v", res)
	require.Equal(t, "shop", attrOf(res, "service.namespace"), "OTEL_RESOURCE_ATTRIBUTES is read: %v", res)

	// A manual reader, so that every exporter sends the same collection;
	// its temporality is the exporter's, from the environment.
	reader := sdkmetric.NewManualReader(
		sdkmetric.WithTemporalitySelector(exporters[0].Temporality),
		sdkmetric.WithAggregationSelector(exporters[0].Aggregation))
	require.Equal(t, metricdata.CumulativeTemporality, exporters[0].Temporality(sdkmetric.InstrumentKindCounter),
		"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=cumulative is read")
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(res),
		sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: "rpc.server.duration"},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 160, MaxScale: 20}})))
	t.Cleanup(func() { _ = provider.Shutdown(ctx) })
	rec := newOTelRecorder(t, provider)

	export := func(round int) {
		rec.record(round)
		time.Sleep(5 * time.Millisecond)
		var rm metricdata.ResourceMetrics
		require.NoError(t, reader.Collect(ctx, &rm))
		for i, exp := range exporters {
			require.NoError(t, exp.Export(ctx, &rm), "export round %d to %s", round, sinks[i].name)
		}
		require.Empty(t, handled.list(), "errors the SDK reported (partial success counts)")
	}
	// The points' start times are some milliseconds before their times
	// (the JSON request has start times in the same millisecond).
	export(1)
	time.Sleep(20 * time.Millisecond)
	export(2)

	// Hand-built, every point kind (summaries too, which the SDK has not),
	// gzip: as JSON (which the SDK's exporter does not send) and as
	// protobuf, each from an instance of its own.
	now := time.Now()
	for _, enc := range []struct{ instance, contentType string }{{"json-1", "application/json"}, {"proto-1", "application/x-protobuf"}} {
		req := pmetricotlp.NewExportRequestFromMetrics(otlpJSONMetrics(now, enc.instance))
		var body []byte
		if enc.contentType == "application/json" {
			body, err = req.MarshalJSON()
		} else {
			body, err = req.MarshalProto()
		}
		require.NoError(t, err)
		for _, s := range sinks {
			status, hdr, resp := postOTLP(t, s.json, s.write, enc.contentType, body, true)
			require.Equal(t, http.StatusOK, status, "%s: %s export: %s", s.name, enc.contentType, resp)
			if s.lum == nil {
				continue
			}
			require.Equal(t, enc.contentType, mediaType(hdr), "%s answers in the request's encoding", s.name)
			r := pmetricotlp.NewExportResponse()
			if enc.contentType == "application/json" {
				require.NoError(t, r.UnmarshalJSON(resp), "%s: %q", s.name, resp)
			} else {
				require.NoError(t, r.UnmarshalProto(resp), "%s: %q", s.name, resp)
			}
			require.Zero(t, r.PartialSuccess().RejectedDataPoints(), "%s: %q", s.name, resp)
		}
	}
	at := time.Now()

	// The questions, asked of Prometheus first: its answers are what each
	// luminate must give.
	sec := func(tm time.Time) string { return strconv.FormatFloat(float64(tm.UnixMilli())/1000, 'f', 3, 64) }
	from := at.Add(-10 * time.Minute)
	all := `{__name__=~".+"}`
	q := func(path string, kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return path + "?" + v.Encode()
	}
	questions := []struct{ name, path string }{
		{"every series, latest", q("/api/v1/query", "query", all, "time", sec(at))},
		{"every sample", q("/api/v1/query", "query", all+"[10m]", "time", sec(at))},
		{"series", q("/api/v1/series", "match[]", all, "start", sec(from), "end", sec(at))},
		{"labels", q("/api/v1/labels", "start", sec(from), "end", sec(at))},
		{"metric names", q("/api/v1/label/__name__/values", "start", sec(from), "end", sec(at))},
		{"jobs", q("/api/v1/label/job/values", "start", sec(from), "end", sec(at))},
		{"exemplars", q("/api/v1/query_exemplars", "query", all, "start", sec(from), "end", sec(at))},
	}
	for _, expr := range []string{
		`target_info`,
		`sum by (job, instance) ({__name__=~".+_total"})`,
		`histogram_quantile(0.9, rpc_server_duration_seconds)`,
		`histogram_count(rpc_server_duration_seconds)`,
		`histogram_quantile(0.9, sum by (le) (http_server_request_duration_milliseconds_bucket))`,
		`histogram_sum(json_payload_size_bytes)`,
		`json_rpc_duration_milliseconds{quantile="0.99"}`,
	} {
		questions = append(questions, struct{ name, path string }{"query " + expr, q("/api/v1/query", "query", expr, "time", sec(at))})
	}
	// Prometheus' answers, by question, for each translation.
	wants := map[int]map[string]any{}
	for i, tr := range otlpTranslations {
		ref := sinks[slices.IndexFunc(sinks, func(s otlpSink) bool { return s.name == tr.name+"/prometheus" })]
		want := map[string]any{}
		for _, qn := range questions {
			if strings.HasPrefix(qn.name, "query ") && !tr.queries {
				continue
			}
			want[qn.name] = promData(t, ref.query, qn.path, "")
			require.NotEmpty(t, want[qn.name], "Prometheus (%s) has no answer to %s", tr.name, qn.name)
		}
		want["series"] = sortedSeries(want["series"])
		wants[ref.ref] = want
		t.Logf("%s: Prometheus holds %d series named %v", tr.name, len(want["series"].([]any)), want["metric names"])
		if i == 0 {
			names := fmt.Sprint(want["metric names"])
			for _, n := range []string{"target_info", "http_server_request_count_total", "rpc_server_duration_seconds", "json_rpc_duration_milliseconds"} {
				require.Contains(t, names, n, "Prometheus holds what the test is about")
			}
			require.Contains(t, fmt.Sprint(want["every series, latest"]), "histogram:", "exponential histograms are native histograms")
			t.Logf("Prometheus' target_info: %v", short(want["query target_info"]))
		}
	}
	t.Logf("exports done %s after the start", time.Since(begin).Round(100*time.Millisecond))

	for _, s := range sinks {
		if s.lum == nil {
			continue
		}
		want := wants[s.ref]
		wantSeries := len(want["series"].([]any))
		t.Run(s.name, func(t *testing.T) {
			// What was acknowledged is queryable at once on Badger; wait a
			// little for ClickHouse all the same.
			proctest.Eventually(t, 20*time.Second, func() (bool, string) {
				status, body := apiGet(t, s.query, questions[2].path, s.read)
				if status != http.StatusOK {
					return false, string(body)
				}
				n := strings.Count(string(body), `"__name__"`)
				return n >= wantSeries, fmt.Sprintf("%d series of %d", n, wantSeries)
			}, "%s holds the series", s.name)
			for _, qn := range questions {
				if _, ok := want[qn.name]; !ok {
					continue
				}
				got := promData(t, s.query, qn.path, s.read)
				if qn.name == "series" {
					// Prometheus lists series in label order; the API
					// promises no order.
					got = sortedSeries(got)
				}
				if d := diffAPI("", normalizeAPI(want[qn.name]), normalizeAPI(got)); d != "" {
					t.Errorf("%s: luminate differs from Prometheus: %s", qn.name, d)
				}
			}
			if strings.HasPrefix(s.name, "default/") {
				otlpMetadata(t, s)
			}
		})
	}
	prometheus, badger, clickhouse := sinks[0], sinks[1], sinks[2]
	require.Equal(t, "default/clickhouse", clickhouse.name)
	t.Run("errors", func(t *testing.T) { otlpErrors(t, badger, prometheus) })
	t.Run("partial success", func(t *testing.T) {
		for _, s := range []otlpSink{badger, clickhouse} {
			otlpPartialSuccess(t, s, prometheus)
		}
	})
	t.Run("delta temporality", func(t *testing.T) { otlpDelta(t, badger, prometheus, env) })
	t.Logf("whole test %s", time.Since(begin).Round(100*time.Millisecond))
}

// otlpDelta exports a delta counter and an up-down counter (which the SDK
// keeps cumulative under the delta preference) with the README's
// variables but OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta:
// s stores the up-down counter and refuses the counter in partial_success,
// naming the variable to set; Prometheus 3.16 (without its delta features)
// refuses the whole request with 500.
func otlpDelta(t *testing.T, s, prom otlpSink, env map[string]string) {
	ctx := context.Background()
	var handled errorsSeen
	otel.SetErrorHandler(&handled)
	for _, target := range []otlpSink{s, prom} {
		for name, value := range env {
			value = strings.ReplaceAll(value, readmeOTLPEndpoint, target.otlp)
			value = strings.ReplaceAll(value, readmeToken, target.write)
			t.Setenv(name, value)
		}
		t.Setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
		exp, err := otlpmetrichttp.New(ctx)
		require.NoError(t, err)
		require.Equal(t, metricdata.DeltaTemporality, exp.Temporality(sdkmetric.InstrumentKindCounter))
		reader := sdkmetric.NewManualReader(sdkmetric.WithTemporalitySelector(exp.Temporality))
		provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader),
			sdkmetric.WithResource(resource.NewSchemaless(attribute.String("service.name", "delta"))))
		m := provider.Meter("delta")
		c, err := m.Int64Counter("delta.requests")
		require.NoError(t, err)
		u, err := m.Int64UpDownCounter("delta.inflight")
		require.NoError(t, err)
		c.Add(ctx, 3)
		u.Add(ctx, 2)
		var rm metricdata.ResourceMetrics
		require.NoError(t, reader.Collect(ctx, &rm))
		err = exp.Export(ctx, &rm)
		require.NoError(t, provider.Shutdown(ctx))
		stored := promData(t, target.query, "/api/v1/query?query="+url.QueryEscape(`{__name__=~"delta_.+"}`), target.read)
		t.Logf("%s stores of a delta export: %s; the export returned %v", target.name, short(stored), err)
		require.NotContains(t, short(stored), `"delta_requests_total"`, "%s refuses the delta counter", target.name)
		if target.lum == nil {
			// Prometheus 3.16 (without its delta features) refuses the
			// whole request, 500, and keeps none of it.
			require.ErrorContains(t, err, "500")
			continue
		}
		require.Contains(t, short(stored), `"delta_inflight"`, "%s stores the up-down counter, cumulative", target.name)
		// The SDK returns the partial success as the export's error.
		require.ErrorContains(t, err, "OTLP partial success")
		require.ErrorContains(t, err, "(1 metric data points rejected)", "partial_success counts the delta point")
		require.ErrorContains(t, err, "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=cumulative", "and says what to set")
	}
	require.Empty(t, handled.list())
}

// The placeholders of the README's OpenTelemetry variables the test
// replaces with a sink's endpoint and token.
const (
	readmeOTLPEndpoint = "http://127.0.0.1:9201/otlp/v1/metrics"
	readmeToken        = "$(cat ./data/dev.token)"
)

// readmeOTelEnv returns the variables the README's OpenTelemetry section
// exports, unquoted: the test configures the SDK with exactly those.
func readmeOTelEnv(t *testing.T) map[string]string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "\n### OpenTelemetry\n")
	require.True(t, ok, "the README has an OpenTelemetry section")
	section, _, _ = strings.Cut(section, "\n### ")
	_, block, ok := strings.Cut(section, "```sh\n")
	require.True(t, ok, "the OpenTelemetry section shows the SDK's variables")
	block, _, _ = strings.Cut(block, "```")
	env := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^export (OTEL_[A-Z_]+)=(.*)$`).FindAllStringSubmatch(block, -1) {
		v := m[2]
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		}
		env[m[1]] = v
	}
	require.Equal(t, readmeOTLPEndpoint, env["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"])
	require.Equal(t, "Authorization=Bearer "+readmeToken, env["OTEL_EXPORTER_OTLP_METRICS_HEADERS"])
	require.Equal(t, "cumulative", env["OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"])
	require.Equal(t, "gzip", env["OTEL_EXPORTER_OTLP_METRICS_COMPRESSION"])
	require.Equal(t, "http/protobuf", env["OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"])
	require.NotEmpty(t, env["OTEL_SERVICE_NAME"])
	require.Contains(t, env["OTEL_RESOURCE_ATTRIBUTES"], "service.instance.id=")
	return env
}

func attrOf(r *resource.Resource, key string) string {
	v, _ := r.Set().Value(attribute.Key(key))
	return v.Emit()
}

// errorsSeen collects what the SDK reports to the global error handler.
type errorsSeen struct {
	mu   sync.Mutex
	errs []error
}

func (e *errorsSeen) Handle(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.errs = append(e.errs, err)
}

func (e *errorsSeen) list() []error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]error(nil), e.errs...)
}

// otelRecorder holds the instruments of the SDK export.
type otelRecorder struct {
	requests  metric.Int64Counter
	cpu       metric.Float64Counter
	queue     metric.Int64UpDownCounter
	memory    metric.Float64UpDownCounter
	util      metric.Float64Gauge
	temp      metric.Int64Gauge
	speed     metric.Float64Gauge
	duration  metric.Float64Histogram // explicit buckets
	rpc       metric.Float64Histogram // exponential (the View)
	size      metric.Int64Histogram   // the SDK's default buckets
	sampled   context.Context         // carries a sampled span: exemplars
	networkIO float64                 // what the observable counter reports
	mu        sync.Mutex
}

func newOTelRecorder(t *testing.T, provider *sdkmetric.MeterProvider) *otelRecorder {
	t.Helper()
	m := provider.Meter("shop/checkout", metric.WithInstrumentationVersion("1.4.0"),
		metric.WithInstrumentationAttributes(attribute.String("library.language", "go")))
	r := &otelRecorder{}
	var err error
	must := func(e error) {
		t.Helper()
		require.NoError(t, e)
	}
	r.requests, err = m.Int64Counter("http.server.request.count", metric.WithUnit("{request}"), metric.WithDescription("Requests served."))
	must(err)
	r.cpu, err = m.Float64Counter("process.cpu.time", metric.WithUnit("s"), metric.WithDescription("CPU time used."))
	must(err)
	r.queue, err = m.Int64UpDownCounter("queue.length", metric.WithUnit("{item}"), metric.WithDescription("Items waiting."))
	must(err)
	r.memory, err = m.Float64UpDownCounter("memory.usage", metric.WithUnit("By"), metric.WithDescription("Memory in use."))
	must(err)
	r.util, err = m.Float64Gauge("cpu.utilization", metric.WithUnit("1"), metric.WithDescription("CPU busy fraction."))
	must(err)
	r.temp, err = m.Int64Gauge("device.temperature", metric.WithUnit("Cel"), metric.WithDescription("Device temperature."))
	must(err)
	r.speed, err = m.Float64Gauge("vehicle.speed", metric.WithUnit("m/s"), metric.WithDescription("Speed."))
	must(err)
	r.duration, err = m.Float64Histogram("http.server.request.duration", metric.WithUnit("ms"), metric.WithDescription("Request latency."),
		metric.WithExplicitBucketBoundaries(5, 10, 25, 50, 100, 250))
	must(err)
	r.rpc, err = m.Float64Histogram("rpc.server.duration", metric.WithUnit("s"), metric.WithDescription("RPC latency."))
	must(err)
	r.size, err = m.Int64Histogram("http.server.request.body.size", metric.WithUnit("By"), metric.WithDescription("Request body sizes."))
	must(err)
	_, err = m.Float64ObservableCounter("network.io", metric.WithUnit("By"), metric.WithDescription("Bytes moved."),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			o.Observe(r.networkIO, metric.WithAttributes(attribute.String("network.io.direction", "receive")))
			o.Observe(r.networkIO/2, metric.WithAttributes(attribute.String("network.io.direction", "transmit")))
			return nil
		}))
	must(err)
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	r.sampled = trace.ContextWithSpanContext(context.Background(), sc)
	return r
}

// record makes the measurements of round (1, 2, ...): values that differ
// from one round to the next, some in a sampled span (exemplars).
func (r *otelRecorder) record(round int) {
	ctx := context.Background()
	n := float64(round)
	get := metric.WithAttributes(attribute.String("http.request.method", "GET"), attribute.Int("http.response.status_code", 200), attribute.String("http.route", "/cart/{id}"))
	post := metric.WithAttributes(attribute.String("http.request.method", "POST"), attribute.Int("http.response.status_code", 500), attribute.String("http.route", "/checkout"))
	r.requests.Add(r.sampled, int64(3*round), get)
	r.requests.Add(ctx, 1, post)
	r.cpu.Add(ctx, 0.25*n, metric.WithAttributes(attribute.String("cpu.mode", "user")))
	r.cpu.Add(ctx, 0.125, metric.WithAttributes(attribute.String("cpu.mode", "system")))
	r.queue.Add(ctx, int64(7-4*round), metric.WithAttributes(attribute.String("queue.name", "orders")))
	r.memory.Add(ctx, 1.5e6*n, metric.WithAttributes(attribute.String("memory.type", "heap")))
	r.util.Record(ctx, 0.1*n+0.05, metric.WithAttributes(attribute.Int("cpu.logical_number", 0)))
	r.util.Record(ctx, 0.7, metric.WithAttributes(attribute.Int("cpu.logical_number", 1)))
	r.temp.Record(ctx, int64(40+round))
	r.speed.Record(ctx, 13.9*n)
	for i, v := range []float64{3, 7, 12, 30, 30, 75, 140, 900} {
		c := ctx
		if i == 3 {
			c = r.sampled
		}
		r.duration.Record(c, v*n, get)
	}
	for i := range 40 {
		r.rpc.Record(ctx, 0.0005*float64(i*i+round), metric.WithAttributes(attribute.String("rpc.method", "GetCart"), attribute.String("rpc.system", "grpc")))
	}
	r.rpc.Record(r.sampled, 0.042, metric.WithAttributes(attribute.String("rpc.method", "GetCart"), attribute.String("rpc.system", "grpc")))
	r.rpc.Record(ctx, 0, metric.WithAttributes(attribute.String("rpc.method", "Ping"), attribute.String("rpc.system", "grpc")))
	for _, v := range []int64{0, 120, 4096, 65536} {
		r.size.Record(ctx, v*int64(round), post)
	}
	r.mu.Lock()
	r.networkIO += 2048 * n
	r.mu.Unlock()
}

// otlpJSONMetrics is the hand-built request: a resource of its own
// (service.instance.id instance), and every OTLP point kind.
func otlpJSONMetrics(now time.Time, instance string) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	ra := rm.Resource().Attributes()
	ra.PutStr("service.name", "json-exporter")
	ra.PutStr("service.namespace", "shop")
	ra.PutStr("service.instance.id", instance)
	ra.PutStr("deployment.environment.name", "test")
	ra.PutInt("process.pid", 4242)
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("json.scope")
	sm.Scope().SetVersion("0.1.0")
	start := pcommon.NewTimestampFromTime(now.Add(-time.Minute))
	ts := pcommon.NewTimestampFromTime(now.Add(-time.Second))

	g := sm.Metrics().AppendEmpty()
	g.SetName("json.queue.depth")
	g.SetUnit("{message}")
	g.SetDescription("Messages waiting.")
	gp := g.SetEmptyGauge().DataPoints()
	p := gp.AppendEmpty()
	p.SetStartTimestamp(start) // a gauge's start time is for nothing
	p.SetTimestamp(ts)
	p.SetDoubleValue(12.5)
	p.Attributes().PutStr("queue", "a")
	p = gp.AppendEmpty()
	p.SetTimestamp(ts)
	p.SetIntValue(7)
	p.Attributes().PutStr("queue", "b")

	c := sm.Metrics().AppendEmpty()
	c.SetName("json.requests")
	c.SetUnit("1")
	c.SetDescription("Requests.")
	sum := c.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	p = sum.DataPoints().AppendEmpty()
	p.SetStartTimestamp(start)
	p.SetTimestamp(ts)
	p.SetIntValue(1234)
	p.Attributes().PutStr("http.route", "/api/v2/items")
	ex := p.Exemplars().AppendEmpty()
	ex.SetTimestamp(ts)
	ex.SetIntValue(1)
	ex.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	ex.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
	ex.FilteredAttributes().PutStr("user", "alice")

	// Sums whose start time is their time, and in the same millisecond:
	// no zero sample for either, even with start times as zero samples.
	ms := now.Add(-time.Second).Truncate(time.Millisecond).Add(700 * time.Microsecond)
	for i, st := range []time.Time{ms, ms.Add(-500 * time.Microsecond)} {
		m := sm.Metrics().AppendEmpty()
		m.SetName(fmt.Sprintf("json.restarts.%d", i))
		sum := m.SetEmptySum()
		sum.SetIsMonotonic(true)
		sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		p := sum.DataPoints().AppendEmpty()
		p.SetStartTimestamp(pcommon.NewTimestampFromTime(st))
		p.SetTimestamp(pcommon.NewTimestampFromTime(ms))
		p.SetIntValue(5)
		if i == 1 {
			// The next point of the series, with the same start: its zero
			// sample would fall on the first point's millisecond.
			p = sum.DataPoints().AppendEmpty()
			p.SetStartTimestamp(pcommon.NewTimestampFromTime(st))
			p.SetTimestamp(pcommon.NewTimestampFromTime(ms.Add(10 * time.Millisecond)))
			p.SetIntValue(8)
		}
	}

	u := sm.Metrics().AppendEmpty()
	u.SetName("json.connections")
	u.SetDescription("Open connections.")
	us := u.SetEmptySum()
	us.SetIsMonotonic(false)
	us.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	p = us.DataPoints().AppendEmpty()
	p.SetStartTimestamp(start)
	p.SetTimestamp(ts)
	p.SetDoubleValue(-3)

	h := sm.Metrics().AppendEmpty()
	h.SetName("json.latency")
	h.SetUnit("s")
	h.SetDescription("Latency.")
	hh := h.SetEmptyHistogram()
	hh.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hp := hh.DataPoints().AppendEmpty()
	hp.SetStartTimestamp(start)
	hp.SetTimestamp(ts)
	hp.ExplicitBounds().FromRaw([]float64{0.1, 0.5, 1})
	hp.BucketCounts().FromRaw([]uint64{1, 2, 3, 4})
	hp.SetCount(10)
	hp.SetSum(7.5)
	hp.SetMin(0.01)
	hp.SetMax(4)
	hp.Attributes().PutStr("op", "read")

	e := sm.Metrics().AppendEmpty()
	e.SetName("json.payload.size")
	e.SetUnit("By")
	e.SetDescription("Payload sizes.")
	eh := e.SetEmptyExponentialHistogram()
	eh.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	ep := eh.DataPoints().AppendEmpty()
	ep.SetStartTimestamp(start)
	ep.SetTimestamp(ts)
	ep.SetScale(10) // above Prometheus' 8: scaled down
	ep.SetZeroCount(2)
	ep.Positive().SetOffset(9000)
	ep.Positive().BucketCounts().FromRaw([]uint64{1, 0, 3, 5, 0, 0, 2, 1, 4, 1, 0, 0, 0, 6})
	ep.Negative().SetOffset(-4)
	ep.Negative().BucketCounts().FromRaw([]uint64{2, 1})
	ep.SetCount(2 + 23 + 3)
	ep.SetSum(123456.5)

	s := sm.Metrics().AppendEmpty()
	s.SetName("json.rpc.duration")
	s.SetUnit("ms")
	s.SetDescription("RPC duration.")
	sp := s.SetEmptySummary().DataPoints().AppendEmpty()
	sp.SetStartTimestamp(start)
	sp.SetTimestamp(ts)
	sp.SetCount(100)
	sp.SetSum(2500)
	for _, qv := range [][2]float64{{0.5, 20}, {0.9, 45}, {0.99, 80}} {
		v := sp.QuantileValues().AppendEmpty()
		v.SetQuantile(qv[0])
		v.SetValue(qv[1])
	}
	return md
}

// postOTLP posts body to url with the token, gzip-compressed if asked, and
// returns the status, headers and body of the answer.
func postOTLP(t *testing.T, url, token, contentType string, body []byte, compress bool) (int, http.Header, []byte) {
	t.Helper()
	if !compress {
		return postRaw(t, url, token, contentType, "", body)
	}
	return postRaw(t, url, token, contentType, "gzip", gzipped(t, body))
}

// postRaw posts body as it is, with the given Content-Type and
// Content-Encoding (none when empty).
func postRaw(t *testing.T, url, token, contentType, encoding string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, b
}

// gzipped is b compressed with gzip.
func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// mediaType is the media type of a Content-Type header, without
// parameters.
func mediaType(h http.Header) string {
	mt, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	return strings.TrimSpace(mt)
}

// otlpStatus decodes an OTLP error body, a google.rpc.Status in the
// encoding of the request (OTLP/HTTP: "the response body MUST be the
// appropriate serialization of the Status message").
func otlpStatus(t *testing.T, hdr http.Header, body []byte, wantJSON bool) *spb.Status {
	t.Helper()
	st := &spb.Status{}
	if wantJSON {
		require.Equal(t, "application/json", mediaType(hdr), "a JSON request gets a JSON Status: %q", body)
		require.NoError(t, protojson.Unmarshal(body, st), "a google.rpc.Status in JSON: %q", body)
	} else {
		require.Equal(t, "application/x-protobuf", mediaType(hdr), "a protobuf request gets a protobuf Status: %q", body)
		require.NoError(t, proto.Unmarshal(body, st), "a google.rpc.Status: %q", body)
	}
	require.NotEmpty(t, st.GetMessage(), "the Status says what went wrong: %q", body)
	return st
}

// otlpErrors checks the refusals of s (a luminate): 401 without a token
// or with a bad one, 403 without metrics:write, 400 for a body that is not
// OTLP, 415 for another content type, each with a Status body. What
// Prometheus answers to the same is logged.
func otlpErrors(t *testing.T, s, prom otlpSink) {
	valid, err := pmetricotlp.NewExportRequestFromMetrics(otlpJSONMetrics(time.Now(), "json-1")).MarshalProto()
	require.NoError(t, err)
	validJSON, err := pmetricotlp.NewExportRequestFromMetrics(otlpJSONMetrics(time.Now(), "json-1")).MarshalJSON()
	require.NoError(t, err)
	for _, c := range []struct {
		name        string
		token       string
		contentType string
		body        []byte
		encoding    string // Content-Encoding, the body as it is sent
		want        int
	}{
		{"no token", "", "application/x-protobuf", valid, "", http.StatusUnauthorized},
		{"bad token", "not-a-token", "application/x-protobuf", valid, "", http.StatusUnauthorized},
		{"read-only token", s.read, "application/x-protobuf", valid, "", http.StatusForbidden},
		{"read-only token, JSON", s.read, "application/json", validJSON, "", http.StatusForbidden},
		{"malformed protobuf", s.write, "application/x-protobuf", []byte("\x0a\xff\xff\xff\xff\x0fnot OTLP"), "", http.StatusBadRequest},
		{"malformed protobuf, gzip", s.write, "application/x-protobuf", gzipped(t, []byte("\x0a\x05\x0a\x03\x0a\x01")), "gzip", http.StatusBadRequest},
		{"malformed JSON, gzip", s.write, "application/json", gzipped(t, []byte(`{"resourceMetrics": [{"scopeMetrics": 3`)), "gzip", http.StatusBadRequest},
		{"not gzip", s.write, "application/x-protobuf", []byte("\x1f\x8b\x08 truncated"), "gzip", http.StatusBadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, hdr, resp := postRaw(t, s.otlp, c.token, c.contentType, c.encoding, c.body)
			require.Equal(t, c.want, status, "%s: %s", c.name, resp)
			st := otlpStatus(t, hdr, resp, c.contentType == "application/json")
			// The gRPC code of the HTTP status (OTLP/HTTP's Status is
			// gRPC's): InvalidArgument, Unauthenticated, PermissionDenied.
			wantCode := map[int]int32{http.StatusBadRequest: 3, http.StatusUnauthorized: 16, http.StatusForbidden: 7}[c.want]
			require.Equal(t, wantCode, st.GetCode(), "%s: Status code", c.name)
			if c.want == http.StatusUnauthorized {
				require.NotEmpty(t, hdr.Get("WWW-Authenticate"), "401 says how to authenticate")
			}
			pstatus, _, pbody := postRaw(t, prom.otlp, "", c.contentType, c.encoding, c.body)
			t.Logf("%s: luminate %d %q; Prometheus %d %q", c.name, status, st.GetMessage(), pstatus, strings.TrimSpace(string(pbody)))
		})
	}
	t.Run("unsupported content type", func(t *testing.T) {
		status, hdr, resp := postOTLP(t, s.otlp, s.write, "text/plain", []byte("hello"), false)
		require.Equal(t, http.StatusUnsupportedMediaType, status, "%s", resp)
		otlpStatus(t, hdr, resp, false)
	})
	t.Run("every path", func(t *testing.T) {
		for _, path := range []string{otlpPath, otlpPrometheusPath, otlpAPIPath} {
			status, _, resp := postOTLP(t, s.lum.url(path), s.write, "application/x-protobuf", valid, false)
			require.Equal(t, http.StatusOK, status, "%s: %s", path, resp)
		}
	})
}

// otlpPartialSuccess sends s a request in which three points are invalid
// (a gauge from 1970, an exponential histogram whose count is less than its
// buckets hold, a gauge without a name) and one is valid: the answer is 200
// with partial_success counting the three, and the valid point is stored.
// Prometheus' answer to the same is logged.
func otlpPartialSuccess(t *testing.T, s, prom otlpSink) {
	now := time.Now()
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "partial")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	ok := ms.AppendEmpty()
	ok.SetName("partial.ok")
	p := ok.SetEmptyGauge().DataPoints().AppendEmpty()
	p.SetTimestamp(pcommon.NewTimestampFromTime(now))
	p.SetDoubleValue(42)
	old := ms.AppendEmpty()
	old.SetName("partial.too.old")
	op := old.SetEmptyGauge().DataPoints().AppendEmpty()
	op.SetTimestamp(pcommon.Timestamp(time.Second)) // 1970, before any retention
	op.SetDoubleValue(1)
	bad := ms.AppendEmpty()
	bad.SetName("partial.bad.histogram")
	bh := bad.SetEmptyExponentialHistogram()
	bh.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hp := bh.DataPoints().AppendEmpty()
	hp.SetTimestamp(pcommon.NewTimestampFromTime(now))
	hp.SetScale(2)
	hp.Positive().BucketCounts().FromRaw([]uint64{4, 6})
	hp.SetCount(1) // fewer than its buckets hold
	hp.SetSum(3)
	noName := ms.AppendEmpty()
	np := noName.SetEmptyGauge().DataPoints().AppendEmpty()
	np.SetTimestamp(pcommon.NewTimestampFromTime(now))
	np.SetDoubleValue(1)
	for _, asJSON := range []bool{false, true} {
		var body []byte
		var err error
		ct := "application/x-protobuf"
		if asJSON {
			ct = "application/json"
			body, err = pmetricotlp.NewExportRequestFromMetrics(md).MarshalJSON()
		} else {
			body, err = pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
		}
		require.NoError(t, err)
		status, hdr, resp := postOTLP(t, s.otlp, s.write, ct, body, true)
		require.Equal(t, http.StatusOK, status, "%s (%s): %q", s.name, ct, resp)
		r := pmetricotlp.NewExportResponse()
		if asJSON {
			require.Equal(t, "application/json", mediaType(hdr))
			require.NoError(t, r.UnmarshalJSON(resp), "%q", resp)
		} else {
			require.Equal(t, "application/x-protobuf", mediaType(hdr))
			require.NoError(t, r.UnmarshalProto(resp), "%q", resp)
		}
		require.EqualValues(t, 3, r.PartialSuccess().RejectedDataPoints(), "%s (%s): rejected_data_points (%q)", s.name, ct, r.PartialSuccess().ErrorMessage())
		require.NotEmpty(t, r.PartialSuccess().ErrorMessage(), "%s (%s): error_message", s.name, ct)
		t.Logf("%s (%s): partial_success %d rejected: %s", s.name, ct, r.PartialSuccess().RejectedDataPoints(), r.PartialSuccess().ErrorMessage())
		if !asJSON {
			pstatus, _, pbody := postOTLP(t, prom.otlp, "", ct, body, true)
			t.Logf("Prometheus answers the same request %d %q", pstatus, strings.TrimSpace(string(pbody)))
		}
	}
	v := instantQuery(t, s.query, s.read, `partial_ok`)
	require.Len(t, v, 1, "%s stored the valid point", s.name)
	require.EqualValues(t, 42, v[0].Value)
}

// otlpMetadata checks that s keeps the metadata of the SDK's instruments
// (type and help; Prometheus 3 keeps none from OTLP to compare with).
func otlpMetadata(t *testing.T, s otlpSink) {
	t.Helper()
	all, ok := promData(t, s.query, "/api/v1/metadata", s.read).(map[string]any)
	require.True(t, ok)
	for name, want := range map[string]string{
		"http_server_request_count_total":           "counter Requests served.",
		"queue_length":                              "gauge Items waiting.",
		"http_server_request_duration_milliseconds": "histogram Request latency.",
		"rpc_server_duration_seconds":               "histogram RPC latency.",
		"json_rpc_duration_milliseconds":            "summary RPC duration.",
	} {
		entries, ok := all[name].([]any)
		if !ok {
			// A counter's family may be named without _total.
			entries, ok = all[strings.TrimSuffix(name, "_total")].([]any)
		}
		if !assertTrue(t, ok && len(entries) > 0, "%s: metadata of %s (have %v)", s.name, name, keys(all)) {
			continue
		}
		m := entries[0].(map[string]any)
		require.Equal(t, want, fmt.Sprint(m["type"], " ", m["help"]), "%s: metadata of %s: %v", s.name, name, m)
	}
}

func assertTrue(t *testing.T, ok bool, format string, args ...any) bool {
	t.Helper()
	if !ok {
		t.Errorf(format, args...)
	}
	return ok
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// sortedSeries is a /api/v1/series answer with its label sets sorted by
// their JSON encoding (labels in name order).
func sortedSeries(v any) any {
	list, ok := v.([]any)
	if !ok {
		return v
	}
	key := func(x any) string {
		b, _ := json.Marshal(x) // maps encode with sorted keys
		return string(b)
	}
	out := slices.Clone(list)
	slices.SortFunc(out, func(a, b any) int { return strings.Compare(key(a), key(b)) })
	return out
}

// TestOTLPLuminateBench runs the load generator's OTLP kinds against a
// luminate and checks that every data point it reports sent is stored.
func TestOTLPLuminateBench(t *testing.T) {
	bench := buildBench(t)
	lum, secret := startAuthLuminate(t, "--limits.request-rate=0") // 100 queries per case
	const series, rounds = 300, 2
	for i, c := range otlpBenchCases {
		t.Run(c.name, func(t *testing.T) {
			// A tenant per case: cases of the same kind write the same names.
			token, tokenFile := e2eTokenFile(t, secret, t.TempDir(), "bench.token", tenancy.ID(fmt.Sprintf("bench-%d", i)), time.Now(), time.Hour, tenancy.ScopeWrite, tenancy.ScopeRead)
			args := append([]string{"--url=" + lum.url(otlpPath), "--token-file=" + tokenFile, "--output=json",
				"--series=" + strconv.Itoa(series), "--rounds=" + strconv.Itoa(rounds), "--batch=100", fmt.Sprintf("--seed=%d", 20+i)}, c.flags...)
			cmd := exec.Command(bench, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			require.NoError(t, err, "%s%s", out, stderr.String())
			var r benchReport
			require.NoError(t, json.Unmarshal(out, &r), string(out))
			require.Zero(t, r.Failed)
			require.EqualValues(t, series*rounds, r.Samples)
			stored := 0.0
			for m := range 100 {
				v := instantQuery(t, lum.url(""), token, fmt.Sprintf(`sum(count_over_time(%s[1d]))`, c.names(m)))
				if len(v) == 1 {
					stored += float64(v[0].Value)
				}
			}
			// The warm-up round included.
			require.Equal(t, float64(series*(rounds+1)), stored)
		})
	}
}
