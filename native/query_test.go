package native_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/api"
	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/native"
	"github.com/luminate-io/luminate/promql"
	"github.com/luminate-io/luminate/remotewrite"
	"github.com/luminate-io/luminate/storage/badger"
	"github.com/luminate-io/luminate/tenancy"
)

// queryEnv is the router serving the native write, the native query (with
// the Prometheus API behind it) and the OpenAPI document, over a real
// Badger store and a real JWT verifier, as cmd/luminate mounts them.
type queryEnv struct {
	t      *testing.T
	store  *badger.Store
	secret []byte
	srv    *httptest.Server
	base   time.Time // the time the test data starts at, a whole minute
}

func newQueryEnv(t *testing.T, limits tenancy.TenantLimits) *queryEnv {
	t.Helper()
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.DiscardHandler)

	cfg := badger.DefaultConfig()
	cfg.Path = filepath.Join(dir, "data")
	store, err := badger.New(cfg, logger, reg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })

	secretFile := filepath.Join(dir, "hmac.secret")
	_, err = tenancy.EnsureDevSecret(secretFile)
	require.NoError(t, err)
	secret, err := tenancy.LoadHMACSecret(secretFile)
	require.NoError(t, err)
	verifier, err := tenancy.NewVerifier(tenancy.AuthConfig{HMACSecretFile: secretFile}, logger, reg)
	require.NoError(t, err)
	lim, err := tenancy.NewLimits(tenancy.LimitsConfig{TenantLimits: limits}, logger, reg)
	require.NoError(t, err)

	engine, err := promql.New(promql.DefaultConfig(), store, lim, logger, reg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, engine.Close()) })
	var prom promql.Endpoint // the Prometheus half of /api/v1/query
	for _, ep := range engine.Routes() {
		if ep.Path == "/api/v1/query" {
			prom = ep
		}
	}
	query := native.NewQuery(engine, prom.Serve)

	post, getPost := []string{http.MethodPost}, []string{http.MethodGet, http.MethodPost}
	var admin []api.Route // delete_series, clean_tombstones, in the OpenAPI document
	for _, ep := range engine.AdminRoutes(logger) {
		admin = append(admin, api.Route{Path: ep.Path, Methods: ep.Methods, Scope: tenancy.ScopeAdmin, Format: apierror.Prometheus, Serve: ep.Serve})
	}
	h, err := api.NewRouter(api.Options{
		Auth: verifier, Limits: lim, Queries: lim, Tenants: store, Storage: store, Gatherer: reg,
		Routes: append(admin, []api.Route{
			{Path: "/api/v1/metrics", Methods: post, Scope: tenancy.ScopeWrite, Format: apierror.Native,
				Serve: native.NewWrite(remotewrite.NewIngester(remotewrite.DefaultConfig(), lim, logger, reg), logger).Serve},
			{Path: "/api/v1/query", Methods: getPost, Scope: tenancy.ScopeRead, Query: true, FormatOf: query.FormatOf, Headers: prom.Headers, Serve: query.Serve},
			{Path: "/prometheus/api/v1/query", Methods: getPost, Scope: tenancy.ScopeRead, Query: true, FormatOf: query.FormatOf, Headers: prom.Headers, Serve: query.Serve},
			{Path: "/api/v1/openapi.yaml", Methods: []string{http.MethodGet}, Public: true, Handler: api.OpenAPIHandler()},
		}...),
	}, logger, reg)
	require.NoError(t, err)
	e := &queryEnv{t: t, store: store, secret: secret, srv: httptest.NewServer(h), base: time.Now().Add(-time.Hour).Truncate(time.Minute)}
	t.Cleanup(e.srv.Close)
	return e
}

func (e *queryEnv) token(tenant tenancy.ID, scopes ...tenancy.Scope) string {
	tok, err := tenancy.Mint(e.secret, "HS256", tenant, scopes, time.Hour, "", "", time.Now())
	require.NoError(e.t, err)
	return tok
}

// ms is the Unix millisecond timestamp base + offset.
func (e *queryEnv) ms(offset time.Duration) int64 { return e.base.Add(offset).UnixMilli() }

// send sends a request and returns the response with its body read.
func (e *queryEnv) send(t *testing.T, method, path, token, contentType string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

// query posts a native query.
func (e *queryEnv) query(t *testing.T, token, body string) (*http.Response, []byte) {
	t.Helper()
	return e.send(t, http.MethodPost, "/api/v1/query", token, "application/json", []byte(body))
}

// sample is one sample of the test data, at base + at.
type sample struct {
	name string
	dims map[string]string
	at   time.Duration
	v    float64
}

// write stores samples through the native write API.
func (e *queryEnv) write(t *testing.T, tenant tenancy.ID, samples []sample) {
	t.Helper()
	type metric struct {
		Name       string            `json:"name"`
		Dimensions map[string]string `json:"dimensions"`
		Value      float64           `json:"value"`
		Timestamp  int64             `json:"timestamp"`
	}
	var req struct {
		Metrics []metric `json:"metrics"`
	}
	for _, s := range samples {
		req.Metrics = append(req.Metrics, metric{Name: s.name, Dimensions: s.dims, Value: s.v, Timestamp: e.ms(s.at)})
	}
	body, err := json.Marshal(req)
	require.NoError(t, err)
	resp, b := e.send(t, http.MethodPost, "/api/v1/metrics", e.token(tenant, tenancy.ScopeWrite), "application/json", body)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
}

// The test data of tenant acme. Every value is small and hand-checkable.
func acmeData() []sample {
	a := map[string]string{"host": "a", "region": "eu"}
	b := map[string]string{"host": "b", "region": "eu"}
	c := map[string]string{"host": "c", "region": "us"}
	s := time.Second
	return []sample{
		{"cpu", a, 0, 1}, {"cpu", a, 10 * s, 2}, {"cpu", a, 20 * s, 3}, {"cpu", a, 30 * s, 4}, {"cpu", a, 60 * s, 10}, {"cpu", a, 70 * s, 20},
		{"cpu", b, 0, 5}, {"cpu", b, 30 * s, 7}, {"cpu", b, 60 * s, 9},
		{"cpu", c, 10 * s, 100},
		{"mem", map[string]string{"host": "a"}, 0, 42}, {"mem", map[string]string{"host": "a"}, 50 * s, 43},
		{"http_requests_total", map[string]string{"host": "a"}, 0, 0},
		{"http_requests_total", map[string]string{"host": "a"}, 15 * s, 30},
		{"http_requests_total", map[string]string{"host": "a"}, 30 * s, 60},
		{"http_requests_total", map[string]string{"host": "a"}, 45 * s, 90},
		{"http_requests_total", map[string]string{"host": "a"}, 60 * s, 120},
	}
}

// otherData is tenant other's: a cpu series acme must never see, and a
// metric only it has.
func otherData() []sample {
	return []sample{
		{"cpu", map[string]string{"host": "z", "region": "eu"}, 0, 999},
		{"secret_metric", map[string]string{"host": "z"}, 0, 1},
	}
}

// success is the success envelope, with data left to decode by type.
type success struct {
	Status    string            `json:"status"`
	QueryType string            `json:"queryType"`
	Data      json.RawMessage   `json:"data"`
	Stats     native.QueryStats `json:"stats"`
	Warnings  []string          `json:"warnings"`
}

func decodeSuccess(t *testing.T, resp *http.Response, body []byte, data any) success {
	t.Helper()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var s success
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&s), string(body))
	require.Equal(t, "success", s.Status)
	reflect.ValueOf(data).Elem().SetZero() // decoding into a used value would merge maps
	dec = json.NewDecoder(bytes.NewReader(s.Data))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(data), string(s.Data))
	require.GreaterOrEqual(t, s.Stats.DurationMs, 0.0)
	return s
}

// val is a pointer to the sample value v.
func val(v float64) *native.Float {
	sv := native.Float(v)
	return &sv
}

func pts(e *queryEnv, tv ...float64) []native.Point {
	var out []native.Point
	for i := 0; i < len(tv); i += 2 {
		v := native.Float(tv[i+1])
		out = append(out, native.Point{Timestamp: e.ms(time.Duration(tv[i]) * time.Second), Value: &v})
	}
	return out
}

func TestNativeQueryTypes(t *testing.T) {
	e := newQueryEnv(t, tenancy.DefaultTenantLimits())
	e.write(t, "acme", acmeData())
	e.write(t, "other", otherData())
	acme := e.token("acme", tenancy.ScopeRead)
	at := func(d time.Duration) string { return fmt.Sprint(e.ms(d)) }
	rfc := func(d time.Duration) string { return `"` + e.base.Add(d).Format(time.RFC3339Nano) + `"` }
	s := time.Second
	eu := map[string]string{"region": "eu"}
	us := map[string]string{"region": "us"}
	ha := map[string]string{"host": "a", "region": "eu"}
	hb := map[string]string{"host": "b", "region": "eu"}
	hc := map[string]string{"host": "c", "region": "us"}

	t.Run("raw: start and end inclusive, filters, series sorted", func(t *testing.T) {
		resp, body := e.query(t, acme, `{"queryType":"raw","metric":"cpu","filters":[{"key":"host","op":"=~","value":"a|b"}],`+
			`"start":`+rfc(10*s)+`,"end":`+at(60*s)+`}`)
		var data native.SeriesData
		env := decodeSuccess(t, resp, body, &data)
		require.Equal(t, "raw", env.QueryType)
		require.Equal(t, native.SeriesData{Series: []native.SeriesPoints{
			{Metric: "cpu", Dimensions: ha, Points: pts(e, 10, 2, 20, 3, 30, 4, 60, 10)},
			{Metric: "cpu", Dimensions: hb, Points: pts(e, 30, 7, 60, 9)},
		}}, data)
		require.Equal(t, int64(2), env.Stats.SeriesScanned)
		require.Equal(t, int64(6), env.Stats.SamplesScanned)
		require.Empty(t, env.Warnings)
	})
	t.Run("raw: equality dimensions and limit", func(t *testing.T) {
		resp, body := e.query(t, acme, `{"queryType":"raw","metric":"cpu","dimensions":{"region":"eu"},"start":`+at(0)+`,"end":`+at(10*s)+`,"limit":1}`)
		var data native.SeriesData
		env := decodeSuccess(t, resp, body, &data)
		require.Equal(t, native.SeriesData{Series: []native.SeriesPoints{{Metric: "cpu", Dimensions: ha, Points: pts(e, 0, 1, 10, 2)}}}, data)
		require.Equal(t, []string{"results truncated due to limit"}, env.Warnings)
	})
	t.Run("raw: nothing matches", func(t *testing.T) {
		resp, body := e.query(t, acme, `{"queryType":"raw","metric":"cpu","dimensions":{"host":"z"},"start":`+at(0)+`,"end":`+at(90*s)+`}`)
		var data native.SeriesData
		decodeSuccess(t, resp, body, &data)
		require.Equal(t, native.SeriesData{Series: []native.SeriesPoints{}}, data)
		require.Contains(t, string(body), `"series":[]`)
	})

	// Buckets of 30s from base: [0,30), [30,60), [60,90).
	aggregate := func(agg string, groupBy string) string {
		return `{"queryType":"aggregate","metric":"cpu","start":` + at(0) + `,"end":` + at(90*s) +
			`,"interval":"30s","aggregation":"` + agg + `","groupBy":[` + groupBy + `]}`
	}
	for _, tc := range []struct {
		agg     string
		groupBy string
		want    []native.SeriesPoints
	}{
		{"sum", `"region"`, []native.SeriesPoints{
			{Metric: "cpu", Dimensions: eu, Points: pts(e, 0, 1+2+3+5, 30, 4+7, 60, 10+20+9)},
			{Metric: "cpu", Dimensions: us, Points: pts(e, 0, 100)},
		}},
		{"count", `"region"`, []native.SeriesPoints{
			{Metric: "cpu", Dimensions: eu, Points: pts(e, 0, 4, 30, 2, 60, 3)},
			{Metric: "cpu", Dimensions: us, Points: pts(e, 0, 1)},
		}},
		{"avg", `"region"`, []native.SeriesPoints{ // every sample weighs the same
			{Metric: "cpu", Dimensions: eu, Points: pts(e, 0, 11.0/4, 30, 11.0/2, 60, 39.0/3)},
			{Metric: "cpu", Dimensions: us, Points: pts(e, 0, 100)},
		}},
		{"min", `"region"`, []native.SeriesPoints{
			{Metric: "cpu", Dimensions: eu, Points: pts(e, 0, 1, 30, 4, 60, 9)},
			{Metric: "cpu", Dimensions: us, Points: pts(e, 0, 100)},
		}},
		{"max", "", []native.SeriesPoints{
			{Metric: "cpu", Dimensions: map[string]string{}, Points: pts(e, 0, 100, 30, 7, 60, 20)},
		}},
		{"p50", `"region"`, []native.SeriesPoints{ // [1 2 3 5] -> 2.5; [4 7] -> 5.5; [9 10 20] -> 10
			{Metric: "cpu", Dimensions: eu, Points: pts(e, 0, 2.5, 30, 5.5, 60, 10)},
			{Metric: "cpu", Dimensions: us, Points: pts(e, 0, 100)},
		}},
		{"p90", `"region"`, []native.SeriesPoints{ // rank 2.7 of [1 2 3 5]: 3*.3+5*.7
			{Metric: "cpu", Dimensions: eu, Points: pts(e, 0, 3*0.3+5*0.7, 30, 4*0.1+7*0.9, 60, 10*0.2+20*0.8)},
			{Metric: "cpu", Dimensions: us, Points: pts(e, 0, 100)},
		}},
		{"p99", `"host","region"`, []native.SeriesPoints{
			{Metric: "cpu", Dimensions: ha, Points: pts(e, 0, 2*0.02+3*0.98, 30, 4, 60, 10*0.01+20*0.99)},
			{Metric: "cpu", Dimensions: hb, Points: pts(e, 0, 5, 30, 7, 60, 9)},
			{Metric: "cpu", Dimensions: hc, Points: pts(e, 0, 100)},
		}},
	} {
		t.Run("aggregate "+tc.agg, func(t *testing.T) {
			resp, body := e.query(t, acme, aggregate(tc.agg, tc.groupBy))
			var data native.SeriesData
			env := decodeSuccess(t, resp, body, &data)
			require.Equal(t, "aggregate", env.QueryType)
			require.Len(t, data.Series, len(tc.want))
			for i, want := range tc.want {
				got := data.Series[i]
				require.Equal(t, want.Metric, got.Metric)
				require.Equal(t, want.Dimensions, got.Dimensions)
				require.Len(t, got.Points, len(want.Points))
				for j, p := range want.Points {
					require.Equal(t, p.Timestamp, got.Points[j].Timestamp, "point %d of %v", j, want.Dimensions)
					require.InDelta(t, float64(*p.Value), float64(*got.Points[j].Value), 1e-9, "point %d of %v", j, want.Dimensions)
				}
			}
			require.Positive(t, env.Stats.SeriesScanned)
			require.Positive(t, env.Stats.SamplesScanned)
		})
	}
	t.Run("aggregate rate", func(t *testing.T) {
		// One bucket [0s,60s) holding the samples at 0, 15, 30 and 45s
		// (0, 30, 60, 90): PromQL's rate over the window (-1ms, 59.999s],
		// extrapolated to its end: 90 * (45+14.999)/45 / 60s.
		resp, body := e.query(t, acme, `{"queryType":"aggregate","metric":"http_requests_total","start":`+at(0)+
			`,"end":`+at(60*s)+`,"interval":60000,"aggregation":"rate"}`)
		var data native.SeriesData
		decodeSuccess(t, resp, body, &data)
		require.Len(t, data.Series, 1)
		require.Equal(t, "http_requests_total", data.Series[0].Metric)
		require.Len(t, data.Series[0].Points, 1)
		require.Equal(t, e.ms(0), data.Series[0].Points[0].Timestamp)
		require.InDelta(t, 90*(45+14.999)/45/60, float64(*data.Series[0].Points[0].Value), 1e-9)
	})
	t.Run("aggregate: a partial last bucket is whole", func(t *testing.T) {
		// end at 65s: buckets [0,60) and [60,120), which holds 70s too.
		resp, body := e.query(t, acme, `{"queryType":"aggregate","metric":"cpu","dimensions":{"host":"a"},"start":`+at(0)+
			`,"end":`+at(65*s)+`,"interval":"1m","aggregation":"sum"}`)
		var data native.SeriesData
		decodeSuccess(t, resp, body, &data)
		require.Equal(t, native.SeriesData{Series: []native.SeriesPoints{
			{Metric: "cpu", Dimensions: map[string]string{}, Points: pts(e, 0, 1+2+3+4, 60, 10+20)},
		}}, data)
	})

	t.Run("latest", func(t *testing.T) {
		resp, body := e.query(t, acme, `{"queryType":"latest","metric":"cpu","time":`+at(65*s)+`}`)
		var data native.LatestData
		env := decodeSuccess(t, resp, body, &data)
		require.Equal(t, "latest", env.QueryType)
		require.Equal(t, native.LatestData{Series: []native.SeriesValue{
			{Metric: "cpu", Dimensions: ha, Timestamp: e.ms(60 * s), Value: val(10)},
			{Metric: "cpu", Dimensions: hb, Timestamp: e.ms(60 * s), Value: val(9)},
			{Metric: "cpu", Dimensions: hc, Timestamp: e.ms(10 * s), Value: val(100)},
		}}, data)
	})
	t.Run("latest with a lookback", func(t *testing.T) {
		// (35s, 65s]: c's only sample, at 10s, is too old.
		resp, body := e.query(t, acme, `{"queryType":"latest","metric":"cpu","time":`+rfc(65*s)+`,"lookback":"30s","limit":5}`)
		var data native.LatestData
		decodeSuccess(t, resp, body, &data)
		require.Equal(t, native.LatestData{Series: []native.SeriesValue{
			{Metric: "cpu", Dimensions: ha, Timestamp: e.ms(60 * s), Value: val(10)},
			{Metric: "cpu", Dimensions: hb, Timestamp: e.ms(60 * s), Value: val(9)},
		}}, data)
	})
	t.Run("latest defaults to now", func(t *testing.T) {
		// The data is an hour old, beyond the default lookback of 5m.
		resp, body := e.query(t, acme, `{"queryType":"latest","metric":"cpu"}`)
		var data native.LatestData
		decodeSuccess(t, resp, body, &data)
		require.Empty(t, data.Series)
		resp, body = e.query(t, acme, `{"queryType":"latest","metric":"mem","lookback":"2h"}`)
		decodeSuccess(t, resp, body, &data)
		require.Equal(t, native.LatestData{Series: []native.SeriesValue{
			{Metric: "mem", Dimensions: map[string]string{"host": "a"}, Timestamp: e.ms(50 * s), Value: val(43)},
		}}, data)
	})

	t.Run("metrics", func(t *testing.T) {
		for _, tc := range []struct {
			body     string
			want     []string
			warnings []string
		}{
			{`{"queryType":"metrics"}`, []string{"cpu", "http_requests_total", "mem"}, nil},
			{`{"queryType":"metrics","prefix":"c"}`, []string{"cpu"}, nil},
			{`{"queryType":"metrics","prefix":"http_"}`, []string{"http_requests_total"}, nil},
			{`{"queryType":"metrics","prefix":".*"}`, []string{}, nil}, // a prefix, not a pattern
			{`{"queryType":"metrics","limit":2}`, []string{"cpu", "http_requests_total"}, []string{"results truncated due to limit"}},
			{`{"queryType":"metrics","start":` + at(time.Hour) + `}`, []string{}, nil},
		} {
			resp, body := e.query(t, acme, tc.body)
			var data native.MetricsData
			env := decodeSuccess(t, resp, body, &data)
			require.Equal(t, tc.want, data.Metrics, tc.body)
			require.Equal(t, tc.warnings, env.Warnings, tc.body)
		}
	})
	t.Run("dimensions", func(t *testing.T) {
		for _, tc := range []struct {
			body string
			want []string
		}{
			{`{"queryType":"dimensions","metric":"cpu"}`, []string{"host", "region"}},
			{`{"queryType":"dimensions","metric":"mem"}`, []string{"host"}},
			{`{"queryType":"dimensions","metric":"nope"}`, []string{}},
			{`{"queryType":"dimensions","metric":"cpu","limit":1}`, []string{"host"}},
		} {
			resp, body := e.query(t, acme, tc.body)
			var data native.DimensionsData
			decodeSuccess(t, resp, body, &data)
			require.Equal(t, tc.want, data.Dimensions, tc.body)
		}
	})
	t.Run("dimension_values", func(t *testing.T) {
		for _, tc := range []struct {
			body string
			want []string
		}{
			{`{"queryType":"dimension_values","key":"host"}`, []string{"a", "b", "c"}},
			{`{"queryType":"dimension_values","key":"host","metric":"cpu","dimensions":{"region":"eu"}}`, []string{"a", "b"}},
			{`{"queryType":"dimension_values","key":"host","filters":[{"key":"region","op":"!=","value":"eu"}]}`, []string{"a", "c"}}, // mem and http_requests_total have no region
			{`{"queryType":"dimension_values","key":"region","metric":"mem"}`, []string{}},
		} {
			resp, body := e.query(t, acme, tc.body)
			var data native.DimensionValuesData
			decodeSuccess(t, resp, body, &data)
			require.Equal(t, tc.want, data.Values, tc.body)
		}
	})

	t.Run("promql instant", func(t *testing.T) {
		resp, body := e.query(t, acme, `{"queryType":"promql","query":"sum by (region) (cpu)","time":`+at(60*s)+`}`)
		var data struct {
			ResultType string               `json:"resultType"`
			Result     []native.SeriesValue `json:"result"`
		}
		env := decodeSuccess(t, resp, body, &data)
		require.Equal(t, "promql", env.QueryType)
		require.Equal(t, "vector", data.ResultType)
		require.ElementsMatch(t, []native.SeriesValue{
			{Dimensions: eu, Timestamp: e.ms(60 * s), Value: val(19)},
			{Dimensions: us, Timestamp: e.ms(60 * s), Value: val(100)},
		}, data.Result)
		require.Equal(t, int64(3), env.Stats.SeriesScanned)
	})
	t.Run("promql range", func(t *testing.T) {
		resp, body := e.query(t, acme, `{"queryType":"promql","query":"sum by (region) (cpu)","start":`+at(0)+`,"end":`+rfc(60*s)+`,"step":"30s"}`)
		var data struct {
			ResultType string                `json:"resultType"`
			Result     []native.SeriesPoints `json:"result"`
		}
		decodeSuccess(t, resp, body, &data)
		require.Equal(t, "matrix", data.ResultType)
		require.Equal(t, []native.SeriesPoints{
			{Dimensions: eu, Points: pts(e, 0, 6, 30, 11, 60, 19)},
			{Dimensions: us, Points: pts(e, 30, 100, 60, 100)},
		}, data.Result)
	})
	t.Run("promql scalar, string and non-finite values", func(t *testing.T) {
		resp, body := e.query(t, acme, `{"queryType":"promql","query":"1 + 1","time":`+at(0)+`}`)
		var sc struct {
			ResultType string       `json:"resultType"`
			Result     native.Point `json:"result"`
		}
		decodeSuccess(t, resp, body, &sc)
		require.Equal(t, "scalar", sc.ResultType)
		two := native.Float(2)
		require.Equal(t, native.Point{Timestamp: e.ms(0), Value: &two}, sc.Result)

		resp, body = e.query(t, acme, `{"queryType":"promql","query":"\"hello\"","time":`+at(0)+`}`)
		var str struct {
			ResultType string             `json:"resultType"`
			Result     native.StringValue `json:"result"`
		}
		decodeSuccess(t, resp, body, &str)
		require.Equal(t, "string", str.ResultType)
		require.Equal(t, native.StringValue{Timestamp: e.ms(0), Value: "hello"}, str.Result)

		resp, body = e.query(t, acme, `{"queryType":"promql","query":"vector(1/0) or label_replace(vector(-1/0), \"s\", \"neg\", \"\", \"\")","time":`+at(0)+`}`)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		require.Contains(t, string(body), `"value":"+Inf"`)
		require.Contains(t, string(body), `"value":"-Inf"`)
	})
	t.Run("promql lookback", func(t *testing.T) {
		// c's only sample is 55s before 65s: inside the default 5m, outside 30s.
		q := `{"queryType":"promql","query":"cpu{host=\"c\"}","time":` + at(65*s)
		var data struct {
			ResultType string               `json:"resultType"`
			Result     []native.SeriesValue `json:"result"`
		}
		resp, body := e.query(t, acme, q+`}`)
		decodeSuccess(t, resp, body, &data)
		require.Equal(t, []native.SeriesValue{{Metric: "cpu", Dimensions: hc, Timestamp: e.ms(65 * s), Value: val(100)}}, data.Result)
		resp, body = e.query(t, acme, q+`,"lookback":"30s"}`)
		decodeSuccess(t, resp, body, &data)
		require.Empty(t, data.Result)
	})
	t.Run("names that need quoting in PromQL", func(t *testing.T) {
		dims := map[string]string{"k8s.pod": `we"ird\`, "zone": "a"}
		e.write(t, "utf8", []sample{{"cpu.total", dims, 0, 1}, {"cpu.total", dims, 10 * s, 2}})
		tok := e.token("utf8", tenancy.ScopeRead)
		span := `"start":` + at(0) + `,"end":` + at(20*s)
		resp, body := e.query(t, tok, `{"queryType":"raw","metric":"cpu.total","dimensions":{"k8s.pod":"we\"ird\\"},`+span+`}`)
		var data native.SeriesData
		decodeSuccess(t, resp, body, &data)
		require.Equal(t, native.SeriesData{Series: []native.SeriesPoints{{Metric: "cpu.total", Dimensions: dims, Points: pts(e, 0, 1, 10, 2)}}}, data)
		resp, body = e.query(t, tok, `{"queryType":"aggregate","metric":"cpu.total","interval":"20s","aggregation":"sum","groupBy":["k8s.pod"],`+
			`"filters":[{"key":"k8s.pod","op":"=~","value":"we.ird.*"}],`+span+`}`)
		decodeSuccess(t, resp, body, &data)
		require.Equal(t, native.SeriesData{Series: []native.SeriesPoints{
			{Metric: "cpu.total", Dimensions: map[string]string{"k8s.pod": `we"ird\`}, Points: pts(e, 0, 3)},
		}}, data)
		resp, body = e.query(t, tok, `{"queryType":"dimension_values","key":"k8s.pod","metric":"cpu.total"}`)
		var vals native.DimensionValuesData
		decodeSuccess(t, resp, body, &vals)
		require.Equal(t, native.DimensionValuesData{Key: "k8s.pod", Values: []string{`we"ird\`}}, vals)
	})
	t.Run("promql warnings", func(t *testing.T) {
		// rate over a gauge-named series: PromQL's info annotation.
		resp, body := e.query(t, acme, `{"queryType":"promql","query":"rate(cpu[1m])","time":`+at(60*s)+`}`)
		env := decodeSuccess(t, resp, body, &struct {
			ResultType string               `json:"resultType"`
			Result     []native.SeriesValue `json:"result"`
		}{})
		require.NotEmpty(t, env.Warnings)
		require.Contains(t, env.Warnings[0], "cpu")
	})
}

func TestNativeQueryErrors(t *testing.T) {
	e := newQueryEnv(t, tenancy.DefaultTenantLimits())
	acme := e.token("acme", tenancy.ScopeRead)
	raw := func(extra string) string {
		return `{"queryType":"raw","metric":"cpu","start":0,"end":1000` + extra + `}`
	}
	for _, tc := range []struct {
		name   string
		body   string
		status int
		field  string
		msg    string
	}{
		{"unknown field", raw(`,"foo":1`), 400, "foo", `unknown field "foo"`},
		{"field names are exact", `{"queryType":"raw","Metric":"cpu","start":0,"end":1}`, 400, "Metric", "unknown field"},
		{"field of another type", raw(`,"interval":"1m"`), 400, "interval", "not used by queryType raw"},
		{"unknown queryType", `{"queryType":"sql","query":"x"}`, 400, "queryType", `unknown queryType "sql"`},
		{"queryType not a string", `{"queryType":1}`, 400, "queryType", "must be a string"},
		{"missing queryType", `{"metric":"cpu"}`, 400, "queryType", "required"},
		{"missing metric", `{"queryType":"raw","start":0,"end":1}`, 400, "metric", "required"},
		{"empty metric", `{"queryType":"raw","metric":"","start":0,"end":1}`, 400, "metric", "must not be empty"},
		{"missing start", `{"queryType":"raw","metric":"cpu","end":1}`, 400, "start", "required"},
		{"bad time string", `{"queryType":"raw","metric":"cpu","start":"yesterday","end":1}`, 400, "start", "not RFC 3339"},
		{"fractional ms", `{"queryType":"raw","metric":"cpu","start":1.5,"end":2}`, 400, "start", "whole number"},
		{"time out of range", `{"queryType":"raw","metric":"cpu","start":0,"end":999999999999999999}`, 400, "end", "years 1 to 9999"},
		{"time of wrong type", `{"queryType":"raw","metric":"cpu","start":true,"end":1}`, 400, "start", ""},
		{"end before start", `{"queryType":"raw","metric":"cpu","start":1000,"end":0}`, 400, "end", "at or after start"},
		{"aggregate end equal start", `{"queryType":"aggregate","metric":"cpu","start":0,"end":0,"interval":"1m","aggregation":"sum"}`, 400, "end", "after start"},
		{"bad aggregation", `{"queryType":"aggregate","metric":"cpu","start":0,"end":60000,"interval":"1m","aggregation":"median"}`, 400, "aggregation", "is not one of sum, avg"},
		{"missing interval", `{"queryType":"aggregate","metric":"cpu","start":0,"end":60000,"aggregation":"sum"}`, 400, "interval", "required"},
		{"bad interval", `{"queryType":"aggregate","metric":"cpu","start":0,"end":60000,"interval":"1 minute","aggregation":"sum"}`, 400, "interval", "not a duration"},
		{"zero interval", `{"queryType":"aggregate","metric":"cpu","start":0,"end":60000,"interval":0,"aggregation":"sum"}`, 400, "interval", "positive"},
		{"too many buckets", `{"queryType":"aggregate","metric":"cpu","start":0,"end":86400000,"interval":"1s","aggregation":"sum"}`, 400, "interval", "86400 buckets"},
		{"bad groupBy", `{"queryType":"aggregate","metric":"cpu","start":0,"end":60000,"interval":"1m","aggregation":"sum","groupBy":"host"}`, 400, "groupBy", "array"},
		{"groupBy tenant", `{"queryType":"aggregate","metric":"cpu","start":0,"end":60000,"interval":"1m","aggregation":"sum","groupBy":["_tenant_id"]}`, 400, "groupBy[0]", "reserved"},
		{"tenant in dimensions", raw(`,"dimensions":{"_tenant_id":"other"}`), 400, "dimensions._tenant_id", "reserved"},
		{"tenant in filters", raw(`,"filters":[{"key":"_tenant_id","value":"other"}]`), 400, "filters[0].key", "reserved"},
		{"tenant as key", `{"queryType":"dimension_values","key":"_tenant_id"}`, 400, "key", "reserved"},
		{"metric name as a dimension", raw(`,"dimensions":{"__name__":"mem"}`), 400, "dimensions.__name__", "use the metric field"},
		{"dimension value not a string", raw(`,"dimensions":{"host":1}`), 400, "dimensions.host", "must be a string"},
		{"bad filter op", raw(`,"filters":[{"key":"host","op":"~","value":"a"}]`), 400, "filters[0].op", "unknown operator"},
		{"bad regexp", raw(`,"filters":[{"key":"host","op":"=~","value":"("}]`), 400, "filters[0].value", "regular expression"},
		{"unknown filter field", raw(`,"filters":[{"key":"host","value":"a","negate":true}]`), 400, "filters[0].negate", "unknown field"},
		{"filter without value", raw(`,"filters":[{"key":"host"}]`), 400, "filters[0].value", "needs a value"},
		{"filters not an array", raw(`,"filters":{"host":"a"}`), 400, "filters", "array"},
		{"negative limit", raw(`,"limit":-1`), 400, "limit", "whole number"},
		{"duplicate field", raw(`,"metric":"mem"`), 400, "metric", "given twice"},
		{"not an object", `["raw"]`, 400, "", "JSON object"},
		{"invalid JSON", `{"queryType":`, 400, "queryType", "truncated"},
		{"invalid JSON in a filter", raw(`,"filters":[{"key":"a",}]`), 400, "filters", "invalid JSON"},
		{"trailing data", raw(``) + `{}`, 400, "", "after the JSON object"},
		{"promql without query", `{"queryType":"promql","time":0}`, 400, "query", "required"},
		{"promql syntax error", `{"queryType":"promql","query":"sum(","time":0}`, 400, "query", "invalid parameter"},
		{"promql time and range", `{"queryType":"promql","query":"up","time":0,"start":0,"end":1,"step":"1s"}`, 400, "time", "not both"},
		{"promql range without step", `{"queryType":"promql","query":"up","start":0,"end":1}`, 400, "step", "required"},
		{"promql too many steps", `{"queryType":"promql","query":"up","start":0,"end":86400000,"step":1}`, 400, "step", "at most 11000"},
		{"promql execution error", `{"queryType":"promql","query":"label_replace(vector(1), \"a\", \"b\", \"c\", \"(\")","time":0}`, 422, "", "invalid regular expression"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.query(t, acme, tc.body)
			requireError(t, resp, body, tc.status, "invalid_argument", tc.field, tc.msg)
		})
	}

	t.Run("body too large", func(t *testing.T) {
		big := raw(`,"filters":[{"key":"host","value":"` + strings.Repeat("x", 70<<10) + `"}]`)
		resp, body := e.query(t, acme, big)
		requireError(t, resp, body, http.StatusRequestEntityTooLarge, "invalid_argument", "", "larger than 65536 bytes")
	})
	t.Run("compressed body", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/api/v1/query", strings.NewReader(raw("")))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Encoding", "gzip")
		req.Header.Set("Authorization", "Bearer "+acme)
		resp, err := e.srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		requireError(t, resp, body, http.StatusUnsupportedMediaType, "invalid_argument", "", "Content-Encoding")
	})
	t.Run("no token", func(t *testing.T) {
		resp, body := e.query(t, "", raw(""))
		requireError(t, resp, body, http.StatusUnauthorized, "unauthenticated", "", "")
	})
	t.Run("write-only token", func(t *testing.T) {
		resp, body := e.query(t, e.token("acme", tenancy.ScopeWrite), raw(""))
		requireError(t, resp, body, http.StatusForbidden, "permission_denied", "", "metrics:read")
	})
}

// requireError checks a native error envelope.
func requireError(t *testing.T, resp *http.Response, body []byte, status int, code, field, msg string) {
	t.Helper()
	require.Equal(t, status, resp.StatusCode, string(body))
	var env struct {
		Status string `json:"status"`
		Error  struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
			Limit   string `json:"limit"` // the limit's ID, checked by TestServeRoutes
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&env), string(body))
	require.Equal(t, "error", env.Status)
	require.Equal(t, code, env.Error.Code, string(body))
	require.Equal(t, field, env.Error.Field, string(body))
	require.Contains(t, env.Error.Message, msg)
}

func TestNativeQueryLimits(t *testing.T) {
	limits := tenancy.DefaultTenantLimits()
	limits.MaxSeriesPerQuery = 2
	limits.QueryRate, limits.QueryBurst = 0.001, 3
	e := newQueryEnv(t, limits)
	e.write(t, "acme", acmeData())
	acme := e.token("acme", tenancy.ScopeRead)
	body := fmt.Sprintf(`{"queryType":"raw","metric":"cpu","start":%d,"end":%d}`, e.ms(0), e.ms(time.Minute))

	resp, b := e.query(t, acme, body)
	requireError(t, resp, b, http.StatusUnprocessableEntity, "invalid_argument", "", "max_series_per_query")
	resp, b = e.query(t, acme, strings.Replace(body, `"cpu"`, `"mem"`, 1))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	// The router admits every request of the path once, index queries
	// too: the third is the last of the burst.
	resp, b = e.query(t, acme, `{"queryType":"metrics"}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	resp, b = e.query(t, acme, strings.Replace(body, `"cpu"`, `"mem"`, 1))
	requireError(t, resp, b, http.StatusTooManyRequests, "rate_limited", "", "query")
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
}

func TestNativeQueryTenantIsolation(t *testing.T) {
	e := newQueryEnv(t, tenancy.DefaultTenantLimits())
	e.write(t, "acme", acmeData())
	e.write(t, "other", otherData())
	s := time.Second
	other := e.token("other", tenancy.ScopeRead)
	acme := e.token("acme", tenancy.ScopeRead)
	span := fmt.Sprintf(`"start":%d,"end":%d`, e.ms(0), e.ms(90*s))

	resp, body := e.query(t, other, `{"queryType":"raw","metric":"cpu",`+span+`}`)
	var data native.SeriesData
	decodeSuccess(t, resp, body, &data)
	require.Equal(t, native.SeriesData{Series: []native.SeriesPoints{
		{Metric: "cpu", Dimensions: map[string]string{"host": "z", "region": "eu"}, Points: pts(e, 0, 999)},
	}}, data)

	for _, tc := range []struct {
		token string
		body  string
		want  string
		never string
	}{
		{acme, `{"queryType":"metrics"}`, `"metrics":["cpu","http_requests_total","mem"]`, "secret_metric"},
		{other, `{"queryType":"metrics"}`, `"metrics":["cpu","secret_metric"]`, "mem"},
		{acme, `{"queryType":"dimension_values","key":"host","metric":"cpu"}`, `"values":["a","b","c"]`, `"z"`},
		{acme, `{"queryType":"aggregate","metric":"cpu","interval":"90s","aggregation":"max",` + span + `}`, `"value":100`, "999"},
		{acme, `{"queryType":"promql","query":"sum(cpu) + count(secret_metric)","time":` + fmt.Sprint(e.ms(60*s)) + `}`, `"result":[]`, "999"},
		{acme, `{"queryType":"promql","query":"cpu{_tenant_id=\"other\"}","time":` + fmt.Sprint(e.ms(0)) + `}`, `"result":[]`, "999"},
		{acme, `{"queryType":"dimensions","metric":"cpu"}`, `"dimensions":["host","region"]`, "_tenant_id"},
		{acme, `{"queryType":"latest","metric":"cpu","lookback":"3h"}`, `"host":"a"`, "_tenant_id"},
	} {
		resp, body := e.query(t, tc.token, tc.body)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		require.Contains(t, string(body), tc.want, tc.body)
		require.NotContains(t, string(body), tc.never, tc.body)
		require.NotContains(t, string(body), "_tenant_id", tc.body)
	}
}

// TestMaxPointsRunOnTheEngine: the most buckets and steps native allows
// run on promql's engine, whose own bound is Prometheus'; one more is
// refused by native, naming the field.
func TestMaxPointsRunOnTheEngine(t *testing.T) {
	e := newQueryEnv(t, tenancy.DefaultTenantLimits())
	acme := e.token("acme", tenancy.ScopeRead)
	for _, q := range []string{
		`{"queryType":"aggregate","metric":"cpu","start":0,"end":%d,"interval":1000,"aggregation":"sum"}`,
		`{"queryType":"promql","query":"vector(1)","start":1000,"end":%d,"step":1000}`,
	} {
		resp, body := e.query(t, acme, fmt.Sprintf(q, 11000*1000))
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		resp, body = e.query(t, acme, fmt.Sprintf(q, 11001*1000))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, string(body))
		require.Contains(t, string(body), "at most 11000 are allowed", q)
	}
}

// TestQueryPathKeepsPromQL checks that a GET or a form POST on
// /api/v1/query is still the Prometheus API, in its own envelope.
func TestQueryPathKeepsPromQL(t *testing.T) {
	e := newQueryEnv(t, tenancy.DefaultTenantLimits())
	e.write(t, "acme", acmeData())
	acme := e.token("acme", tenancy.ScopeRead)
	form := url.Values{"query": {"sum(cpu)"}, "time": {fmt.Sprintf("%.3f", float64(e.ms(time.Minute))/1000)}}
	want := fmt.Sprintf(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[%.3f,"119"]}]}}`, float64(e.ms(time.Minute))/1000)

	resp, body := e.send(t, http.MethodGet, "/api/v1/query?"+form.Encode(), acme, "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.JSONEq(t, want, string(body))

	resp, body = e.send(t, http.MethodPost, "/api/v1/query", acme, "application/x-www-form-urlencoded", []byte(form.Encode()))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.JSONEq(t, want, string(body))

	// A Prometheus error stays in Prometheus' envelope.
	resp, body = e.send(t, http.MethodGet, "/api/v1/query?query=sum(", acme, "", nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, string(body))
	require.Contains(t, string(body), `"errorType":"bad_data"`)

	// The same query in JSON, with a charset parameter, is native.
	resp, body = e.send(t, http.MethodPost, "/api/v1/query", acme, "application/json; charset=utf-8",
		[]byte(`{"queryType":"promql","query":"sum(cpu)","time":`+fmt.Sprint(e.ms(time.Minute))+`}`))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Contains(t, string(body), `"queryType":"promql"`)
	require.Contains(t, string(body), `"value":119`)
}

// FuzzNativeQuery checks that the request decoder never panics, that it
// accepts only what it can describe, and that every rejection names a
// field known to the API (or none).
func FuzzNativeQuery(f *testing.F) {
	for _, seed := range []string{
		`{"queryType":"raw","metric":"cpu","start":0,"end":1000,"filters":[{"key":"host","op":"=~","value":"a.*"}]}`,
		`{"queryType":"aggregate","metric":"cpu","start":"2026-01-01T00:00:00Z","end":"2026-01-01T01:00:00Z","interval":"1m","aggregation":"p99","groupBy":["host"]}`,
		`{"queryType":"latest","metric":"cpu","dimensions":{"host":"a"},"lookback":300000,"limit":10}`,
		`{"queryType":"metrics","prefix":"http_","limit":5}`,
		`{"queryType":"dimensions","metric":"cpu","start":null}`,
		`{"queryType":"dimension_values","key":"host","metric":"cpu"}`,
		`{"queryType":"promql","query":"sum(rate(x[5m]))","start":0,"end":3600000,"step":"15s"}`,
		`{"queryType":"promql","query":"1","time":-62135596800000}`,
		`{"queryType":"raw","metric":"cpu","start":0,"end":1,"dimensions":{"_tenant_id":"x"}}`,
		`{}`, `[]`, `null`, `{"queryType":"raw","queryType":"raw"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		q, err := native.ParseQueryRequest(body)
		if err != nil {
			require.Nil(t, q)
			var ae *apierror.Error
			require.ErrorAs(t, err, &ae)
			require.Equal(t, apierror.InvalidArgument, ae.Kind, err.Error())
			return
		}
		require.Contains(t, []native.QueryType{native.QueryRaw, native.QueryAggregate, native.QueryLatest, native.QueryMetrics,
			native.QueryDimensions, native.QueryDimensionValues, native.QueryPromQL}, q.Type)
		for _, m := range q.Matchers {
			require.NotEqual(t, tenancy.Label, m.Name)
			require.NotEqual(t, "__name__", m.Name)
		}
		require.NotEqual(t, tenancy.Label, q.Key)
		if !q.Start.IsZero() && !q.End.IsZero() {
			require.False(t, q.End.Before(q.Start))
		}
		if q.Type == native.QueryAggregate {
			require.Positive(t, q.Interval)
			require.LessOrEqual(t, q.End.Sub(q.Start)/q.Interval, time.Duration(11000))
		}
		require.GreaterOrEqual(t, q.Limit, 0)
	})
}
