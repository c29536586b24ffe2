package native_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

// TestOpenAPI serves the document, checks that it is a valid OpenAPI 3
// document, and validates real exchanges with a router over a real store
// against it: every native write, query and health response, successes
// and errors, with its status code, headers and body.
func TestOpenAPI(t *testing.T) {
	e := newQueryEnv(t, tenancy.DefaultTenantLimits())
	ctx := context.Background()

	resp, doc := e.send(t, http.MethodGet, "/api/v1/openapi.yaml", "", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/yaml", resp.Header.Get("Content-Type"))
	file, err := os.ReadFile("../api/openapi.yaml")
	require.NoError(t, err)
	require.Equal(t, string(file), string(doc), "the served document is api/openapi.yaml")

	loader := openapi3.NewLoader()
	spec, err := loader.LoadFromData(doc)
	require.NoError(t, err)
	require.NoError(t, spec.Validate(ctx, openapi3.EnableExamplesValidation()))
	spec.Servers = openapi3.Servers{{URL: e.srv.URL}}
	router, err := gorillamux.NewRouter(spec)
	require.NoError(t, err)

	acmeW := e.token("acme", tenancy.ScopeWrite)
	acmeR := e.token("acme", tenancy.ScopeRead)
	ms := func(d time.Duration) int64 { return e.ms(d) }
	point := func(name, dims string, at time.Duration, v string) string {
		return fmt.Sprintf(`{"name":%q,"dimensions":%s,"value":%s,"timestamp":%d}`, name, dims, v, ms(at))
	}
	const form = "application/x-www-form-urlencoded"
	var items []string
	for i, d := range []string{`{"host":"a","region":"eu"}`, `{"host":"b","region":"eu"}`} {
		for s := 0; s < 4; s++ {
			items = append(items, point("cpu", d, time.Duration(s)*15*time.Second, fmt.Sprint(i*10+s)))
		}
	}
	items = append(items, point("cpu", `{"host":"c"}`, 0, `"NaN"`), point("cpu", `{"host":"d"}`, 0, `"+Inf"`))
	span := fmt.Sprintf(`"start":%d,"end":"%s"`, ms(0), e.base.Add(time.Minute).Format(time.RFC3339))
	// Native histograms, integer and float, and metadata, written directly.
	lat := labels.FromStrings("__name__", "lat", "host", "a")
	e.appendV2("acme", lat, 0, 0, &histogram.Histogram{
		Schema: 1, Count: 5, Sum: 2.5, ZeroThreshold: 0.01, ZeroCount: 1,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{1, 1},
		NegativeSpans: []histogram.Span{{Offset: 1, Length: 1}}, NegativeBuckets: []int64{1},
	}, nil, promstorage.AppendV2Options{Metadata: metadata.Metadata{Type: model.MetricTypeHistogram, Help: "Latency.", Unit: "seconds"}})
	e.appendV2("acme", lat, 15*time.Second, 0, nil, &histogram.FloatHistogram{
		Schema: histogram.CustomBucketsSchema, Count: 1.5, Sum: math.NaN(), CounterResetHint: histogram.GaugeType,
		PositiveSpans: []histogram.Span{{Offset: 1, Length: 1}}, PositiveBuckets: []float64{1.5}, CustomValues: []float64{0.5, 1},
	}, promstorage.AppendV2Options{})
	e.appendV2("acme", labels.FromStrings("__name__", "cpu_seconds"), 0, 1, nil, nil, promstorage.AppendV2Options{Metadata: metadata.Metadata{Type: model.MetricTypeGauge}})

	type exchange struct {
		name        string
		method      string
		path        string
		token       string
		contentType string
		body        string
		status      int
		// badRequest marks a request the document itself forbids: it is
		// sent to check that the response is documented, not validated.
		badRequest bool
	}
	exchanges := []exchange{
		{"write", "POST", "/api/v1/metrics", acmeW, "application/json", `{"metrics":[` + strings.Join(items, ",") + `]}`, 200, false},
		{"write partial", "POST", "/api/v1/metrics", acmeW, "application/json", `{"metrics":[` +
			point("mem", `{"host":"a"}`, 0, "1") + `,` + point("mem", `{"_tenant_id":"x"}`, 0, "1") + `]}`, 400, false},
		{"write all rejected", "POST", "/api/v1/metrics", acmeW, "application/json", `{"metrics":[{"name":"","value":1}]}`, 400, false},
		{"write histogram", "POST", "/api/v1/metrics", acmeW, "application/json", fmt.Sprintf(`{"metrics":[{"name":"latency_seconds","timestamp":%d,`+
			`"type":"histogram","help":"Latency.","unit":"seconds","exemplars":[{"labels":{"trace_id":"abc"},"value":0.2}],`+
			`"histogram":{"schema":-53,"count":3,"sum":"NaN","positive_spans":[{"offset":0,"length":2}],"positive_counts":[1,2],"custom_values":[0.1,1]}},`+
			`{"name":"queue","histogram":{"float":true,"schema":0,"count":1.5,"sum":2,"zero_threshold":0.001,"zero_count":1.5,"counter_reset_hint":"gauge"}}]}`, ms(0)), 200, false},
		{"write histogram and value", "POST", "/api/v1/metrics", acmeW, "application/json", `{"metrics":[{"name":"x","value":1,"histogram":{"schema":0,"count":0,"sum":0}}]}`, 400, true},
		{"write malformed", "POST", "/api/v1/metrics", acmeW, "application/json", `{"metrics":[}`, 400, true},
		{"write wrong type", "POST", "/api/v1/metrics", acmeW, "text/plain", `x`, 415, true},
		{"write unauthenticated", "POST", "/api/v1/metrics", "", "application/json", `{"metrics":[]}`, 401, false},
		{"write without scope", "POST", "/api/v1/metrics", acmeR, "application/json", `{"metrics":[]}`, 403, false},

		{"raw", "POST", "/api/v1/query", acmeR, "application/json", `{"queryType":"raw","metric":"cpu",` + span + `}`, 200, false},
		{"raw histograms", "POST", "/api/v1/query", acmeR, "application/json", `{"queryType":"raw","metric":"lat",` + span + `}`, 200, false},
		{"latest histogram", "POST", "/api/v1/query", acmeR, "application/json", fmt.Sprintf(`{"queryType":"latest","metric":"lat","time":%d}`, ms(time.Minute)), 200, false},
		{"raw limited", "POST", "/api/v1/query", acmeR, "application/json", `{"queryType":"raw","metric":"cpu","limit":1,` + span + `}`, 200, false},
		{"aggregate", "POST", "/api/v1/query", acmeR, "application/json", `{"queryType":"aggregate","metric":"cpu","interval":"30s","aggregation":"avg","groupBy":["region"],` + span + `}`, 200, false},
		{"aggregate p95", "POST", "/api/v1/query", acmeR, "application/json", `{"queryType":"aggregate","metric":"cpu","interval":30000,"aggregation":"p95",` +
			`"filters":[{"key":"host","op":"=~","value":"a|b"},{"key":"region","value":"eu"}],` + span + `}`, 200, false},
		{"latest", "POST", "/api/v1/query", acmeR, "application/json", fmt.Sprintf(`{"queryType":"latest","metric":"cpu","time":%d,"lookback":"2m"}`, ms(time.Minute)), 200, false},
		{"metrics", "POST", "/api/v1/query", acmeR, "application/json", `{"queryType":"metrics","prefix":"c"}`, 200, false},
		{"dimensions", "POST", "/api/v1/query", acmeR, "application/json", `{"queryType":"dimensions","metric":"cpu"}`, 200, false},
		{"dimension_values", "POST", "/api/v1/query", acmeR, "application/json", `{"queryType":"dimension_values","key":"host","dimensions":{"region":"eu"}}`, 200, false},
		{"promql vector", "POST", "/api/v1/query", acmeR, "application/json", fmt.Sprintf(`{"queryType":"promql","query":"rate(cpu[1m])","time":%d}`, ms(time.Minute)), 200, false},
		{"promql matrix", "POST", "/api/v1/query", acmeR, "application/json", `{"queryType":"promql","query":"sum(cpu)","step":"15s",` + span + `}`, 200, false},
		{"promql scalar", "POST", "/api/v1/query", acmeR, "application/json", `{"queryType":"promql","query":"scalar(sum(cpu{host=\"a\"}))","time":"2026-11-26T10:00:00Z"}`, 200, false},
		{"promql string", "POST", "/api/v1/query", acmeR, "application/json", `{"queryType":"promql","query":"\"x\""}`, 200, false},
		{"unknown field", "POST", "/api/v1/query", acmeR, "application/json", `{"queryType":"metrics","foo":1}`, 400, true},
		{"unknown queryType", "POST", "/api/v1/query", acmeR, "application/json", `{"queryType":"sql"}`, 400, true},
		{"tenant filter", "POST", "/api/v1/query", acmeR, "application/json", `{"queryType":"raw","metric":"cpu","dimensions":{"_tenant_id":"x"},` + span + `}`, 400, false},
		{"execution error", "POST", "/api/v1/query", acmeR, "application/json", `{"queryType":"promql","query":"label_replace(vector(1), \"a\", \"b\", \"c\", \"(\")"}`, 422, false},
		{"body too large", "POST", "/api/v1/query", acmeR, "application/json", `{"queryType":"metrics","prefix":"` + strings.Repeat("x", 65<<10) + `"}`, 413, false},
		{"query sent as a form", "POST", "/api/v1/query", acmeR, "application/x-www-form-urlencoded", `{"queryType":"metrics"}`, 415, true},
		{"query unauthenticated", "POST", "/api/v1/query", "", "application/json", `{"queryType":"metrics"}`, 401, false},
		{"query without scope", "POST", "/api/v1/query", acmeW, "application/json", `{"queryType":"metrics"}`, 403, false},

		{"healthy", "GET", "/-/healthy", "", "", "", 200, false},
		{"healthz", "GET", "/healthz", "", "", "", 200, false},
		{"ready", "GET", "/-/ready", "", "", "", 200, false},
		{"readyz", "GET", "/readyz", "", "", "", 200, false},
		{"health", "GET", "/api/v1/status/health", "", "", "", 200, false},
		{"health for the operator", "GET", "/api/v1/status/health", e.token("ops", tenancy.ScopeOperator), "", "", 200, false},
		{"health with a bad token", "GET", "/api/v1/status/health", "not-a-token", "", "", 401, false},
		{"openapi", "GET", "/api/v1/openapi.yaml", "", "", "", 200, false},

		{"delete_series", "POST", "/api/v1/admin/tsdb/delete_series", e.token("acme", tenancy.ScopeAdmin), form, "match%5B%5D=cpu&start=0", 204, false},
		{"delete_series PUT", "PUT", "/api/v1/admin/tsdb/delete_series", e.token("acme", tenancy.ScopeAdmin), form, "match%5B%5D=cpu", 204, false},
		{"delete_series without admin", "POST", "/api/v1/admin/tsdb/delete_series", acmeR, form, "match%5B%5D=cpu", 403, false},
		{"delete_series without match", "POST", "/api/v1/admin/tsdb/delete_series", e.token("acme", tenancy.ScopeAdmin), form, "start=0", 400, true},
		{"clean_tombstones", "POST", "/api/v1/admin/tsdb/clean_tombstones", e.token("acme", tenancy.ScopeAdmin), "", "", 204, false},
		{"clean_tombstones PUT", "PUT", "/api/v1/admin/tsdb/clean_tombstones", e.token("acme", tenancy.ScopeAdmin), "", "", 204, false},
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc, // the router checks tokens
		IncludeResponseStatus: true,                                  // every status must be documented
		MultiError:            true,
	}
	covered := map[string]bool{}
	for _, x := range exchanges {
		t.Run(x.name, func(t *testing.T) {
			resp, body := e.send(t, x.method, x.path, x.token, x.contentType, []byte(x.body))
			require.Equal(t, x.status, resp.StatusCode, string(body))

			req, err := http.NewRequest(x.method, e.srv.URL+x.path, strings.NewReader(x.body))
			require.NoError(t, err)
			if x.contentType != "" {
				req.Header.Set("Content-Type", x.contentType)
			}
			if x.token != "" {
				req.Header.Set("Authorization", "Bearer "+x.token)
			}
			route, params, err := router.FindRoute(req)
			require.NoError(t, err, "%s %s is not in the document", x.method, x.path)
			covered[route.Operation.OperationID] = true
			in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
			if err := openapi3filter.ValidateRequest(ctx, in); x.badRequest {
				require.Error(t, err, "the document should forbid this request")
			} else {
				require.NoError(t, err)
			}
			err = openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
				RequestValidationInput: in,
				Status:                 resp.StatusCode,
				Header:                 resp.Header,
				Body:                   io.NopCloser(bytes.NewReader(body)),
				Options:                opts,
			})
			require.NoError(t, err, "response %d %.2000s", resp.StatusCode, body)
		})
	}
	var ops []string
	for _, item := range spec.Paths.Map() {
		for _, op := range item.Operations() {
			ops = append(ops, op.OperationID)
		}
	}
	slices.Sort(ops)
	for _, op := range ops {
		require.True(t, covered[op], "operation %s has no exchange in this test", op)
	}
}
