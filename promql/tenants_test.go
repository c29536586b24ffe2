package promql_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/promql"
	"github.com/luminate-io/luminate/tenancy"
)

// TestTenantIsolation runs every data endpoint as each of two tenants
// holding series of the same name: each sees its own data only, client
// matchers on _tenant_id cannot reach the other tenant, and _tenant_id
// never appears in a response.
func TestTenantIsolation(t *testing.T) {
	e := newEnv(t, promql.DefaultConfig(), nil)
	loadFixture(e)

	// exclusive are strings only a tenant's data contains; a tenant's
	// responses must contain one of its own (or a shared label name) and
	// none of the other's.
	exclusive := map[tenancy.ID][]string{
		acme:  {`"api"`, `"http_requests_total"`, `"weird"`, `"code"`, `"label"`},
		other: {`"secret"`, `"only_other"`, `"x"`},
	}
	own := map[tenancy.ID][]string{
		acme:  exclusive[acme],
		other: append([]string{`"instance"`}, exclusive[other]...),
	}
	foreign := map[tenancy.ID]tenancy.ID{acme: other, other: acme}

	rangeParams := func(kv ...string) url.Values {
		v := vals("start", "1700000000", "end", "1700000300", "step", "60")
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v
	}
	requests := []struct {
		path   string
		params url.Values
		// empty: the request must find nothing at all.
		empty bool
	}{
		{"/api/v1/query", vals("query", `{__name__=~".+"}`, "time", "1700000300"), false},
		{"/api/v1/query", vals("query", `count by (job) ({__name__=~".+"})`, "time", "1700000300"), false},
		{"/api/v1/query_range", rangeParams("query", "up"), false},
		{"/api/v1/query_range", rangeParams("query", `sum by (job, __name__) ({job=~".+"})`), false},
		{"/api/v1/series", vals("match[]", `{__name__=~".+"}`), false},
		{"/api/v1/labels", nil, false},
		{"/api/v1/label/__name__/values", nil, false},
		{"/api/v1/label/job/values", nil, false},
		{"/api/v1/label/job/values", vals("match[]", "up"), false},
		{"/api/v1/status/tsdb", nil, false},

		// Matchers on the tenant label find nothing, whatever they say.
		{"/api/v1/query", vals("query", `{_tenant_id="OTHER"}`, "time", "1700000300"), true},
		{"/api/v1/query", vals("query", `{__name__=~".+",_tenant_id=~".+"}`, "time", "1700000300"), true},
		{"/api/v1/query", vals("query", `up{_tenant_id="SELF"}`, "time", "1700000300"), true},
		{"/api/v1/query_range", rangeParams("query", `{_tenant_id="OTHER"}`), true},
		{"/api/v1/series", vals("match[]", `{_tenant_id="OTHER"}`), true},
		{"/api/v1/series", vals("match[]", `{_tenant_id=~"OTHER|SELF"}`), true},
		{"/api/v1/labels", vals("match[]", `{_tenant_id="OTHER"}`), true},
		{"/api/v1/label/job/values", vals("match[]", `{_tenant_id="OTHER"}`), true},
		{"/api/v1/label/_tenant_id/values", nil, true},
		{"/api/v1/label/_tenant_id/values", vals("match[]", `{__name__=~".+"}`), true},
	}
	for _, id := range []tenancy.ID{acme, other} {
		for _, req := range requests {
			params := url.Values{}
			for k, vs := range req.params {
				for _, v := range vs {
					v = strings.ReplaceAll(v, "OTHER", string(foreign[id]))
					params.Add(k, strings.ReplaceAll(v, "SELF", string(id)))
				}
			}
			t.Run(string(id)+" "+req.path+" "+params.Encode(), func(t *testing.T) {
				for _, r := range []response{e.get(id, req.path, params), e.post(id, req.path, params)} {
					if r.status == http.StatusMethodNotAllowed && (strings.HasPrefix(req.path, "/api/v1/label/") || req.path == "/api/v1/status/tsdb") {
						continue // GET only, as in Prometheus
					}
					require.Equal(t, http.StatusOK, r.status, r.body)
					require.NotContains(t, r.body, tenancy.Label)
					for _, s := range exclusive[foreign[id]] {
						require.NotContains(t, r.body, s)
					}
					data := string(r.envelope(t).Data)
					if req.empty {
						require.Contains(t, []string{`[]`, `{"resultType":"vector","result":[]}`, `{"resultType":"matrix","result":[]}`}, data)
						continue
					}
					found := false
					for _, s := range own[id] {
						found = found || strings.Contains(data, s)
					}
					require.True(t, found, "%s sees none of its own data: %s", id, data)
				}
			})
		}
	}

	// Cardinality counts the tenant's own series only.
	for id, n := range map[tenancy.ID]int{acme: 4, other: 2} {
		r := e.get(id, "/api/v1/status/tsdb", nil)
		require.Contains(t, r.body, `"numSeries":`+strconv.Itoa(n)+`,`)
	}
}

// TestGrafanaCalls replays the requests Grafana's Prometheus data source
// makes (health check, buildinfo, metric and label browsers, variables,
// exemplars, range queries) and checks that each one succeeds.
func TestGrafanaCalls(t *testing.T) {
	e := newEnv(t, promql.DefaultConfig(), nil)
	loadFixture(e)
	const start, end = "1700000000", "1700000300"
	startMs, endMs := start+"000", end+"000"

	cases := []struct {
		name   string
		method string
		path   string
		params url.Values
		want   string // a fragment of the data
	}{
		{"health check GET", http.MethodGet, "/api/v1/query", vals("query", "1+1", "time", "1700000300.123"), `"result":[1700000300.123,"2"]`},
		{"health check POST", http.MethodPost, "/api/v1/query", vals("query", "1+1", "time", "1700000300.123"), `"result":[1700000300.123,"2"]`},
		{"buildinfo", http.MethodGet, "/api/v1/status/buildinfo", nil, `"version":"` + promql.PrometheusVersion + `"`},
		{"labels", http.MethodGet, "/api/v1/labels", vals("start", start, "end", end, "limit", "40000"), `"job"`},
		{"metric names", http.MethodGet, "/api/v1/label/__name__/values", vals("start", start, "end", end, "limit", "40000"), `"http_requests_total","up"`},
		{"label values with match[]", http.MethodGet, "/api/v1/label/job/values", vals("match[]", `up{instance="a"}`, "start", start, "end", end), `["api"]`},
		{"series", http.MethodGet, "/api/v1/series", vals("match[]", `{__name__="up"}`, "start", start, "end", end, "limit", "40000"), `"instance":"b"`},
		{"metadata", http.MethodGet, "/api/v1/metadata", nil, `{}`},
		{"exemplars", http.MethodGet, "/api/v1/query_exemplars", vals("query", "test", "start", startMs, "end", endMs), `[]`},
		{"range query, float step", http.MethodPost, "/api/v1/query_range",
			vals("query", `sum by (job) (rate(http_requests_total[1m]))`, "start", start, "end", end, "step", "37.5"),
			`[1700000075,"0.6666666666666666"]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r response
			if c.method == http.MethodPost {
				r = e.post(acme, c.path, c.params)
			} else {
				r = e.get(acme, c.path, c.params)
			}
			require.Equal(t, http.StatusOK, r.status, r.body)
			env := r.envelope(t)
			require.Equal(t, "success", env.Status)
			require.Contains(t, string(env.Data), c.want)
		})
	}
}
