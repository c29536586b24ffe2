package promql_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/promql"
	"github.com/luminate-io/luminate/tenancy"
)

// TestCardinalityAPI checks Mimir's cardinality endpoints and the
// VictoriaMetrics parameters of status/tsdb byte for byte on the fixture,
// under both prefixes and both methods, and that neither tenant sees the
// other's names or counts.
func TestCardinalityAPI(t *testing.T) {
	e := newEnv(t, promql.DefaultConfig(), nil)
	loadFixture(e)
	// Active means a sample within the active-series window, by its
	// timestamp (storage.ActiveSince): the fixture's samples are of 2023.
	// Tenant fresh has acme's series written with samples of the last
	// minutes, and one series of 2023.
	const fresh = tenancy.ID("fresh")
	now := time.Now().UnixMilli() - 300_000
	one := func(int) float64 { return 1 }
	e.load(fresh, series(`up{job="api",instance="a"}`, now, 15_000, 21, one)...)
	e.load(fresh, series(`up{job="api",instance="b"}`, now, 15_000, 21, one)...)
	e.load(fresh, series(`http_requests_total{job="api",code="200"}`, now, 15_000, 21, one)...)
	e.load(fresh, sample{`weird{label="<tag>&"}`, now, 1.5e-7})
	e.load(fresh, series(`old{job="api",instance="c"}`, t0, 15_000, 21, one)...)
	cases := []struct {
		name   string
		id     tenancy.ID
		path   string
		params url.Values
		want   string
	}{
		{"label_names", acme, "/api/v1/cardinality/label_names", nil,
			`{"label_values_count_total":8,"label_names_count":5,"cardinality":[{"label_name":"__name__","label_values_count":3},` +
				`{"label_name":"instance","label_values_count":2},{"label_name":"code","label_values_count":1},{"label_name":"job","label_values_count":1},{"label_name":"label","label_values_count":1}]}`},
		{"label_names other tenant", other, "/api/v1/cardinality/label_names", nil,
			`{"label_values_count_total":4,"label_names_count":3,"cardinality":[{"label_name":"__name__","label_values_count":2},` +
				`{"label_name":"instance","label_values_count":1},{"label_name":"job","label_values_count":1}]}`},
		{"label_names selector limit", acme, "/api/v1/cardinality/label_names", vals("selector", `{job="api"}`, "limit", "1"),
			`{"label_values_count_total":6,"label_names_count":4,"cardinality":[{"label_name":"__name__","label_values_count":2}]}`},
		{"label_names active", fresh, "/api/v1/cardinality/label_names", vals("count_method", "active", "limit", "2"),
			`{"label_values_count_total":8,"label_names_count":5,"cardinality":[{"label_name":"__name__","label_values_count":3},{"label_name":"instance","label_values_count":2}]}`},
		{"label_values", acme, "/api/v1/cardinality/label_values", vals("label_names[]", "instance", "label_names[]", "job"),
			`{"series_count_total":4,"labels":[{"label_name":"job","label_values_count":1,"series_count":3,"cardinality":[{"label_value":"api","series_count":3}]},` +
				`{"label_name":"instance","label_values_count":2,"series_count":2,"cardinality":[{"label_value":"a","series_count":1},{"label_value":"b","series_count":1}]}]}`},
		{"label_values selector limit", acme, "/api/v1/cardinality/label_values", vals("label_names[]", "instance", "selector", `up`, "limit", "1"),
			`{"series_count_total":2,"labels":[{"label_name":"instance","label_values_count":2,"series_count":2,"cardinality":[{"label_value":"a","series_count":1}]}]}`},
		{"label_values other tenant", other, "/api/v1/cardinality/label_values", vals("label_names[]", "job", "label_names[]", "code"),
			`{"series_count_total":2,"labels":[{"label_name":"job","label_values_count":1,"series_count":2,"cardinality":[{"label_value":"secret","series_count":2}]},` +
				`{"label_name":"code","label_values_count":0,"series_count":0,"cardinality":[]}]}`},
		{"label_names active, old samples only", acme, "/api/v1/cardinality/label_names", vals("count_method", "active", "limit", "2"),
			`{"label_values_count_total":0,"label_names_count":0,"cardinality":[]}`},
		{"active_series", fresh, "/api/v1/cardinality/active_series", vals("selector", `{job="api"}`),
			`{"data":[{"__name__":"up","instance":"a","job":"api"},{"__name__":"up","instance":"b","job":"api"},{"__name__":"http_requests_total","code":"200","job":"api"}]}`},
		{"active_series, old samples only", acme, "/api/v1/cardinality/active_series", vals("selector", `up`),
			`{"data":[]}`},
		{"active_series other tenant", other, "/api/v1/cardinality/active_series", vals("selector", `{job=~".+"}`, "limit", "1"),
			`{"data":[]}`},
		{"active_series foreign metric", other, "/api/v1/cardinality/active_series", vals("selector", `http_requests_total`),
			`{"data":[]}`},
		{"tsdb match focusLabel topN", acme, "/api/v1/status/tsdb", vals("match[]", "up", "focusLabel", "instance", "topN", "1"),
			`{"status":"success","data":{"headStats":{"numSeries":2,"numLabelPairs":4,"chunkCount":0,"minTime":1700000000000,"maxTime":1700000300000},` +
				`"seriesCountByMetricName":[{"name":"up","value":2}],"labelValueCountByLabelName":[{"name":"instance","value":2}],"memoryInBytesByLabelName":[{"name":"job","value":6}],` +
				`"seriesCountByLabelValuePair":[{"name":"__name__=up","value":2}],"totalSeries":2,"totalLabelValuePairs":6,"seriesCountByLabelName":[{"name":"__name__","value":2}],` +
				`"seriesCountByFocusLabelValue":[{"name":"a","value":1}]}}`},
		{"tsdb date without samples", acme, "/api/v1/status/tsdb", vals("date", "2023-11-15"),
			`{"status":"success","data":{"headStats":{"numSeries":0,"numLabelPairs":0,"chunkCount":0,"minTime":0,"maxTime":0},"seriesCountByMetricName":[],` +
				`"labelValueCountByLabelName":[],"memoryInBytesByLabelName":[],"seriesCountByLabelValuePair":[],"totalSeries":0,"totalLabelValuePairs":0,"seriesCountByLabelName":[],"seriesCountByFocusLabelValue":[]}}`},
	}
	for _, c := range cases {
		for _, prefix := range []string{"", "/prometheus"} {
			t.Run(c.name+prefix, func(t *testing.T) {
				for _, r := range []response{e.get(c.id, prefix+c.path, c.params), e.post(c.id, prefix+c.path, c.params)} {
					if r.status == http.StatusMethodNotAllowed && c.path == "/api/v1/status/tsdb" {
						continue // GET only, as in Prometheus
					}
					require.Equal(t, http.StatusOK, r.status, r.body)
					require.Equal(t, "application/json", r.header.Get("Content-Type"))
					require.JSONEq(t, c.want, r.body)
					require.NotContains(t, r.body, tenancy.Label)
				}
			})
		}
	}

	// The days of the fixture: the whole day counts every series.
	r := e.get(acme, "/api/v1/status/tsdb", vals("date", "2023-11-14"))
	require.Contains(t, r.body, `"totalSeries":4,`)
	r = e.get(acme, "/api/v1/status/tsdb", vals("start", "1700000000", "end", "1700000300", "match[]", `{job="api"}`))
	require.Contains(t, r.body, `"totalSeries":3,`)

	// Isolation: no name, value or count of the other tenant.
	for _, path := range []string{"/api/v1/cardinality/label_names", "/api/v1/cardinality/label_values?label_names[]=job&label_names[]=__name__",
		"/api/v1/cardinality/active_series?selector=" + url.QueryEscape(`{__name__=~".+"}`)} {
		for id, foreign := range map[tenancy.ID][]string{acme: {"secret", "only_other", `"x"`, "old"}, fresh: {"secret", "only_other", `"x"`}, other: {"http_requests_total", "weird", "code", `"api"`, "old"}} {
			r := e.get(id, path, nil)
			require.Equal(t, http.StatusOK, r.status, r.body)
			for _, f := range foreign {
				require.NotContains(t, r.body, f, "%s %s", id, path)
			}
		}
	}
	var series struct{ Data []map[string]string }
	require.NoError(t, json.Unmarshal([]byte(e.get(fresh, "/api/v1/cardinality/active_series", vals("selector", `{__name__=~".+"}`)).body), &series))
	require.Len(t, series.Data, 4, "fresh's four active series: not its old one, none of other's or acme's")

	// Bad requests.
	for _, c := range []struct{ path, params string }{
		{"/api/v1/cardinality/label_values", ""},
		{"/api/v1/cardinality/active_series", ""},
		{"/api/v1/cardinality/label_names", "limit=501"},
		{"/api/v1/cardinality/label_names", "limit=0"},
		{"/api/v1/cardinality/label_names", "count_method=bogus"},
		{"/api/v1/cardinality/label_names", "selector=" + url.QueryEscape("{")},
		{"/api/v1/status/tsdb", "date=2023-13-01"},
		{"/api/v1/status/tsdb", "date=2023-11-14&start=1"},
		{"/api/v1/status/tsdb", "topN=0"},
		{"/api/v1/status/tsdb", "start=10&end=5"},
	} {
		q, err := url.ParseQuery(c.params)
		require.NoError(t, err)
		r := e.get(acme, c.path, q)
		require.Equal(t, http.StatusBadRequest, r.status, "%s?%s: %s", c.path, c.params, r.body)
	}
}
