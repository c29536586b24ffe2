package promql_test

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/promql"
	"github.com/luminate-io/luminate/tenancy"
)

const (
	acme  tenancy.ID = "acme"
	other tenancy.ID = "other"

	t0 = int64(1_700_000_000_000) // ms; 2023-11-14T22:13:20Z
)

// loadFixture loads the small data set the shape tests check by hand:
// tenant acme has up{a}=1 and up{b}=0 and a counter every 15s for 5
// minutes, and one sample of a series with HTML-special characters and a
// tiny value; tenant other has a series with the same name and a secret
// job, and a metric of its own.
func loadFixture(e *env) {
	e.load(acme, series(`up{job="api",instance="a"}`, t0, 15_000, 21, func(int) float64 { return 1 })...)
	e.load(acme, series(`up{job="api",instance="b"}`, t0, 15_000, 21, func(int) float64 { return 0 })...)
	e.load(acme, series(`http_requests_total{job="api",code="200"}`, t0, 15_000, 21, func(i int) float64 { return float64(10 * i) })...)
	e.load(acme, sample{`weird{label="<tag>&"}`, t0, 1.5e-7})
	e.load(other, series(`up{job="secret",instance="x"}`, t0, 15_000, 21, func(int) float64 { return 1 })...)
	e.load(other, series(`only_other{job="secret"}`, t0, 15_000, 21, func(int) float64 { return 42 })...)
}

// TestShapes compares every endpoint's response, byte for byte, with what
// Prometheus returns for the same data (worked out by hand from
// web/api/v1 of Prometheus v0.316.0).
func TestShapes(t *testing.T) {
	e := newEnv(t, promql.DefaultConfig(), nil)
	loadFixture(e)

	cases := []struct {
		name   string
		method string
		path   string
		params url.Values
		want   string
	}{
		{
			"instant vector", http.MethodGet, "/api/v1/query", vals("query", "up", "time", "1700000300"),
			`{"status":"success","data":{"resultType":"vector","result":[` +
				`{"metric":{"__name__":"up","instance":"a","job":"api"},"value":[1700000300,"1"]},` +
				`{"metric":{"__name__":"up","instance":"b","job":"api"},"value":[1700000300,"0"]}]}}`,
		},
		{
			"instant scalar, fractional time", http.MethodGet, "/api/v1/query", vals("query", "1+1", "time", "1700000000.5"),
			`{"status":"success","data":{"resultType":"scalar","result":[1700000000.5,"2"]}}`,
		},
		{
			"instant string, RFC 3339 time", http.MethodGet, "/api/v1/query", vals("query", `"hello"`, "time", "2023-11-14T22:13:20Z"),
			`{"status":"success","data":{"resultType":"string","result":[1700000000,"hello"]}}`,
		},
		{
			"special floats", http.MethodGet, "/api/v1/query", vals("query", "up / 0", "time", "1700000300"),
			`{"status":"success","data":{"resultType":"vector","result":[` +
				`{"metric":{"instance":"a","job":"api"},"value":[1700000300,"+Inf"]},` +
				`{"metric":{"instance":"b","job":"api"},"value":[1700000300,"NaN"]}]}}`,
		},
		{
			"labels unescaped, tiny value in exponent form", http.MethodGet, "/api/v1/query", vals("query", "weird", "time", "1700000000.001"),
			`{"status":"success","data":{"resultType":"vector","result":[` +
				`{"metric":{"__name__":"weird","label":"<tag>&"},"value":[1700000000.001,"1.5e-07"]}]}}`,
		},
		{
			"range matrix", http.MethodGet, "/api/v1/query_range",
			vals("query", `up{instance="a"}`, "start", "1700000000", "end", "1700000120", "step", "60"),
			`{"status":"success","data":{"resultType":"matrix","result":[` +
				`{"metric":{"__name__":"up","instance":"a","job":"api"},"values":[[1700000000,"1"],[1700000060,"1"],[1700000120,"1"]]}]}}`,
		},
		{
			"range POST form, float step, duration step", http.MethodPost, "/api/v1/query_range",
			vals("query", `rate(http_requests_total[1m])`, "start", "1700000060", "end", "1700000150", "step", "45.0"),
			`{"status":"success","data":{"resultType":"matrix","result":[` +
				`{"metric":{"code":"200","job":"api"},"values":[[1700000060,"0.6666666666666666"],[1700000105,"0.6666666666666666"],[1700000150,"0.6666666666666666"]]}]}}`,
		},
		{
			"truncation warning", http.MethodGet, "/api/v1/query", vals("query", "up", "time", "1700000300", "limit", "1"),
			`{"status":"success","data":{"resultType":"vector","result":[` +
				`{"metric":{"__name__":"up","instance":"a","job":"api"},"value":[1700000300,"1"]}]},` +
				`"warnings":["results truncated due to limit"]}`,
		},
		{
			"info annotation with position", http.MethodGet, "/api/v1/query", vals("query", `rate(up{instance="a"}[1m])`, "time", "1700000300"),
			`{"status":"success","data":{"resultType":"vector","result":[` +
				`{"metric":{"instance":"a","job":"api"},"value":[1700000300,"0"]}]},` +
				`"infos":["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"up\" (1:6)"]}`,
		},
		{
			"series", http.MethodGet, "/api/v1/series", vals("match[]", "up"),
			`{"status":"success","data":[{"__name__":"up","instance":"a","job":"api"},{"__name__":"up","instance":"b","job":"api"}]}`,
		},
		{
			"series POST, two selectors, range", http.MethodPost, "/api/v1/series",
			vals("match[]", `up{instance="b"}`, "match[]", `{__name__="weird"}`, "start", "1700000000", "end", "1700000300"),
			`{"status":"success","data":[{"__name__":"up","instance":"b","job":"api"},{"__name__":"weird","label":"<tag>&"}]}`,
		},
		{
			"series limit", http.MethodGet, "/api/v1/series", vals("match[]", "up", "limit", "1"),
			`{"status":"success","data":[{"__name__":"up","instance":"a","job":"api"}],"warnings":["results truncated due to limit"]}`,
		},
		{
			"labels", http.MethodGet, "/api/v1/labels", nil,
			`{"status":"success","data":["__name__","code","instance","job","label"]}`,
		},
		{
			"labels POST with match[]", http.MethodPost, "/api/v1/labels", vals("match[]", "http_requests_total"),
			`{"status":"success","data":["__name__","code","job"]}`,
		},
		{
			"label values of __name__", http.MethodGet, "/api/v1/label/__name__/values", nil,
			`{"status":"success","data":["http_requests_total","up","weird"]}`,
		},
		{
			"label values with match[]", http.MethodGet, "/api/v1/label/instance/values", vals("match[]", `up{job="api"}`),
			`{"status":"success","data":["a","b"]}`,
		},
		{
			"label values HTML-escaped as Prometheus does", http.MethodGet, "/api/v1/label/label/values", nil,
			`{"status":"success","data":["\u003ctag\u003e\u0026"]}`,
		},
		{
			"label values, U__ escaped name", http.MethodGet, "/api/v1/label/U__job/values", nil,
			`{"status":"success","data":["api"]}`,
		},
		{
			"label values of an unknown label", http.MethodGet, "/api/v1/label/nope/values", nil,
			`{"status":"success","data":[]}`,
		},
		{
			"label values limit", http.MethodGet, "/api/v1/label/__name__/values", vals("limit", "2"),
			`{"status":"success","data":["http_requests_total","up"],"warnings":["results truncated due to limit"]}`,
		},
		{
			"metadata", http.MethodGet, "/api/v1/metadata", nil,
			`{"status":"success","data":{}}`,
		},
		{
			"query_exemplars", http.MethodGet, "/api/v1/query_exemplars", vals("query", "up", "start", "1700000000", "end", "1700000300"),
			`{"status":"success","data":[]}`,
		},
		{
			"format_query", http.MethodGet, "/api/v1/format_query", vals("query", "sum(rate(x[5m]))by(job)"),
			`{"status":"success","data":"sum by (job) (rate(x[5m]))"}`,
		},
		{
			"parse_query", http.MethodPost, "/api/v1/parse_query", vals("query", "up"),
			`{"status":"success","data":{"anchored":false,"matchers":[{"name":"__name__","type":"=","value":"up"}],` +
				`"name":"up","offset":0,"offsetExpr":null,"smoothed":false,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"}}`,
		},
		{
			"status/tsdb", http.MethodGet, "/api/v1/status/tsdb", nil,
			`{"status":"success","data":{"headStats":{"numSeries":4,"numLabelPairs":8,"chunkCount":0,"minTime":1700000000000,"maxTime":1700000300000},` +
				`"seriesCountByMetricName":[{"name":"up","value":2},{"name":"http_requests_total","value":1},{"name":"weird","value":1}],` +
				`"labelValueCountByLabelName":[{"name":"__name__","value":3},{"name":"instance","value":2},{"name":"code","value":1},{"name":"job","value":1},{"name":"label","value":1}],` +
				`"memoryInBytesByLabelName":[{"name":"__name__","value":28},{"name":"job","value":9},{"name":"label","value":6},{"name":"code","value":3},{"name":"instance","value":2}],` +
				`"seriesCountByLabelValuePair":[{"name":"job=api","value":3},{"name":"__name__=up","value":2},{"name":"__name__=http_requests_total","value":1},{"name":"__name__=weird","value":1},` +
				`{"name":"code=200","value":1},{"name":"instance=a","value":1},{"name":"instance=b","value":1},{"name":"label=\u003ctag\u003e\u0026","value":1}],` +
				// VictoriaMetrics' fields after Prometheus' ones.
				`"totalSeries":4,"totalLabelValuePairs":11,"seriesCountByLabelName":[{"name":"__name__","value":4},{"name":"job","value":3},{"name":"instance","value":2},{"name":"code","value":1},{"name":"label","value":1}],` +
				`"seriesCountByFocusLabelValue":[]}}`,
		},
		{
			"status/tsdb limit", http.MethodGet, "/api/v1/status/tsdb", vals("limit", "1"),
			`{"status":"success","data":{"headStats":{"numSeries":4,"numLabelPairs":8,"chunkCount":0,"minTime":1700000000000,"maxTime":1700000300000},` +
				`"seriesCountByMetricName":[{"name":"up","value":2}],"labelValueCountByLabelName":[{"name":"__name__","value":3}],` +
				`"memoryInBytesByLabelName":[{"name":"__name__","value":28}],"seriesCountByLabelValuePair":[{"name":"job=api","value":3}],` +
				`"totalSeries":4,"totalLabelValuePairs":11,"seriesCountByLabelName":[{"name":"__name__","value":4}],"seriesCountByFocusLabelValue":[]}}`,
		},
	}
	for _, c := range cases {
		for _, prefix := range []string{"", "/prometheus"} {
			t.Run(c.name+prefix, func(t *testing.T) {
				var r response
				if c.method == http.MethodPost {
					r = e.post(acme, prefix+c.path, c.params)
				} else {
					r = e.get(acme, prefix+c.path, c.params)
				}
				require.Equal(t, http.StatusOK, r.status, r.body)
				require.Equal(t, "application/json", r.header.Get("Content-Type"))
				require.Equal(t, c.want, r.body)
			})
		}
	}
}

// TestStats checks the stats parameter: stats=all adds per-step samples,
// any other non-empty value adds the totals, and values other than "true"
// and "all" draw Prometheus' deprecation warning.
func TestStats(t *testing.T) {
	e := newEnv(t, promql.DefaultConfig(), nil)
	loadFixture(e)
	type stats struct {
		Timings map[string]float64 `json:"timings"`
		Samples map[string]any     `json:"samples"`
	}
	for _, c := range []struct {
		param   string
		perStep bool
		warning string
	}{
		{"all", true, ""},
		{"true", false, ""},
		{"1", false, `value "1" for parameter "stats" is deprecated and will be rejected in the next major release, use "true" or "all"`},
	} {
		t.Run(c.param, func(t *testing.T) {
			r := e.get(acme, "/api/v1/query_range", vals("query", "up", "start", "1700000000", "end", "1700000120", "step", "60", "stats", c.param))
			require.Equal(t, http.StatusOK, r.status, r.body)
			env := r.envelope(t)
			var data struct {
				Stats *stats `json:"stats"`
			}
			require.NoError(t, json.Unmarshal(env.Data, &data))
			require.NotNil(t, data.Stats)
			require.ElementsMatch(t, []string{"evalTotalTime", "resultSortTime", "queryPreparationTime", "innerEvalTime", "execQueueTime", "execTotalTime"}, keys(data.Stats.Timings))
			require.Equal(t, float64(6), data.Stats.Samples["totalQueryableSamples"]) // 2 series x 3 steps
			perStep, ok := data.Stats.Samples["totalQueryableSamplesPerStep"]
			require.Equal(t, c.perStep, ok)
			if c.perStep {
				require.Equal(t, []any{[]any{1700000000.0, 2.0}, []any{1700000060.0, 2.0}, []any{1700000120.0, 2.0}}, perStep)
			}
			if c.warning == "" {
				require.Empty(t, env.Warnings)
			} else {
				require.Equal(t, []string{c.warning}, env.Warnings)
			}
		})
	}
	r := e.get(acme, "/api/v1/query", vals("query", "up"))
	require.NotContains(t, r.body, `"stats"`)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestTransport checks gzip compression, CORS and the methods served.
func TestTransport(t *testing.T) {
	e := newEnv(t, promql.DefaultConfig(), nil)
	loadFixture(e)
	plain := e.get(acme, "/api/v1/query_range", vals("query", "up", "start", "1700000000", "end", "1700000300", "step", "5"))
	require.Greater(t, len(plain.body), 1024)

	req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/api/v1/query_range?"+
		vals("query", "up", "start", "1700000000", "end", "1700000300", "step", "5").Encode(), nil)
	require.NoError(t, err)
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("Origin", "https://grafana.example")
	req.Header.Set(tenantHeader, string(acme))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "gzip", resp.Header.Get("Content-Encoding"))
	require.Equal(t, "https://grafana.example", resp.Header.Get("Access-Control-Allow-Origin"))
	zr, err := gzip.NewReader(resp.Body)
	require.NoError(t, err)
	body, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.Equal(t, plain.body, string(body))

	// Small bodies are not worth compressing.
	req.URL.RawQuery = vals("query", "1+1").Encode()
	resp2, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp2.Body.Close()
	require.Empty(t, resp2.Header.Get("Content-Encoding"))

	// The router's own refusals carry the CORS headers too.
	req.Header.Del(tenantHeader)
	resp3, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp3.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp3.StatusCode)
	require.Equal(t, "https://grafana.example", resp3.Header.Get("Access-Control-Allow-Origin"))

	require.Equal(t, http.StatusMethodNotAllowed, e.post(acme, "/api/v1/label/job/values", nil).status)
	require.Equal(t, http.StatusNotFound, e.get(acme, "/api/v1/nope", nil).status)
}
