package promql_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/promql"
	"github.com/luminate-io/luminate/tenancy"
)

func errBody(typ, msg string) string {
	return `{"status":"error","errorType":"` + typ + `","error":` + quote(msg) + `}`
}

func quote(s string) string {
	b := []byte{'"'}
	for _, c := range []byte(s) {
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		default:
			b = append(b, c)
		}
	}
	return string(append(b, '"'))
}

// TestErrors checks error responses against Prometheus': the same status
// code, errorType and message for bad parameters, syntax errors and
// execution errors.
func TestErrors(t *testing.T) {
	e := newEnv(t, promql.DefaultConfig(), nil)
	loadFixture(e)

	cases := []struct {
		name   string
		path   string
		params url.Values
		status int
		body   string
	}{
		{"bad time", "/api/v1/query", vals("query", "up", "time", "abc"), 400,
			errBody("bad_data", `invalid parameter "time": invalid time value for 'time': cannot parse "abc" to a valid timestamp`)},
		{"syntax error", "/api/v1/query", vals("query", "sum("), 400,
			errBody("bad_data", `invalid parameter "query": 1:5: parse error: unclosed left parenthesis`)},
		{"syntax error in range query", "/api/v1/query_range", vals("query", "up{", "start", "1", "end", "2", "step", "1"), 400,
			errBody("bad_data", `invalid parameter "query": 1:4: parse error: unexpected end of input inside braces`)},
		{"range query of a range vector", "/api/v1/query_range", vals("query", "up[5m]", "start", "1", "end", "2", "step", "1"), 400,
			errBody("bad_data", `invalid parameter "query": invalid expression type "range vector" for range query, must be Scalar or instant Vector`)},
		{"missing step", "/api/v1/query_range", vals("query", "up", "start", "1", "end", "2"), 400,
			errBody("bad_data", `invalid parameter "step": cannot parse "" to a valid duration`)},
		{"zero step", "/api/v1/query_range", vals("query", "up", "start", "1", "end", "2", "step", "0"), 400,
			errBody("bad_data", `invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer`)},
		{"missing start", "/api/v1/query_range", vals("query", "up", "end", "2", "step", "1"), 400,
			errBody("bad_data", `invalid parameter "start": cannot parse "" to a valid timestamp`)},
		{"end before start", "/api/v1/query_range", vals("query", "up", "start", "2", "end", "1", "step", "1"), 400,
			errBody("bad_data", `invalid parameter "end": end timestamp must not be before start time`)},
		{"too many points", "/api/v1/query_range", vals("query", "up", "start", "0", "end", "11001", "step", "1"), 400,
			errBody("bad_data", `exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)`)},
		{"negative limit", "/api/v1/query", vals("query", "up", "limit", "-1"), 400,
			errBody("bad_data", `invalid parameter "limit": limit must be non-negative`)},
		{"non-numeric limit", "/api/v1/labels", vals("limit", "x"), 400,
			errBody("bad_data", `invalid parameter "limit": strconv.Atoi: parsing "x": invalid syntax`)},
		{"bad timeout", "/api/v1/query", vals("query", "up", "timeout", "soon"), 400,
			errBody("bad_data", `invalid parameter "timeout": cannot parse "soon" to a valid duration`)},
		{"bad lookback delta", "/api/v1/query", vals("query", "up", "lookback_delta", "x"), 400,
			errBody("bad_data", `error parsing lookback delta duration: cannot parse "x" to a valid duration`)},
		{"series without match[]", "/api/v1/series", nil, 400,
			errBody("bad_data", `no match[] parameter provided`)},
		{"series with an empty matcher", "/api/v1/series", vals("match[]", `{job=""}`), 400,
			errBody("bad_data", `invalid parameter "match[]": match[] must contain at least one non-empty matcher`)},
		{"labels with a bad selector", "/api/v1/labels", vals("match[]", `up{`), 400,
			errBody("bad_data", `1:4: parse error: unexpected end of input inside braces`)},
		{"label values, invalid name", "/api/v1/label/%FF/values", nil, 400,
			errBody("bad_data", `invalid label name: "\xff"`)},
		{"bad start of label values", "/api/v1/label/job/values", vals("start", "yesterday"), 400,
			errBody("bad_data", `invalid parameter "start": invalid time value for 'start': cannot parse "yesterday" to a valid timestamp`)},
		{"exemplars end before start", "/api/v1/query_exemplars", vals("query", "up", "start", "2", "end", "1"), 400,
			errBody("bad_data", `end timestamp must not be before start timestamp`)},
		{"metadata limit", "/api/v1/metadata", vals("limit", "x"), 400,
			errBody("bad_data", `limit must be a number`)},
		{"tsdb limit zero", "/api/v1/status/tsdb", vals("limit", "0"), 400,
			errBody("bad_data", `limit must be a positive number`)},
		{"tsdb limit too large", "/api/v1/status/tsdb", vals("limit", "10001"), 400,
			errBody("bad_data", `limit must not exceed 10000`)},
		{"format_query syntax error", "/api/v1/format_query", vals("query", "x +"), 400,
			errBody("bad_data", `invalid parameter "query": 1:4: parse error: unexpected end of input`)},
		{"execution error", "/api/v1/query", vals("query", `up + on() up`, "time", "1700000300"), 422,
			errBody("execution", `found duplicate series for the match group {} on the right hand-side of the operation: [{__name__="up", instance="a", job="api"}, {__name__="up", instance="b", job="api"}];many-to-many matching not allowed: matching labels must be unique on one side`)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.get(acme, c.path, c.params)
			require.Equal(t, c.status, r.status, r.body)
			require.Equal(t, "application/json", r.header.Get("Content-Type"))
			require.Equal(t, c.body, r.body)
		})
	}
}

// TestQueryLimits checks each query limit: its status, errorType and a
// message naming the setting that raises it.
func TestQueryLimits(t *testing.T) {
	newLimits := func(t *testing.T, tl tenancy.TenantLimits) *tenancy.Limits {
		l, err := tenancy.NewLimits(tenancy.LimitsConfig{TenantLimits: tl}, nil, nil)
		require.NoError(t, err)
		return l
	}
	rangeUp := vals("query", "up", "start", "1700000000", "end", "1700000300", "step", "15")

	t.Run("max samples", func(t *testing.T) {
		cfg := promql.DefaultConfig()
		cfg.MaxSamples = 10
		e := newEnv(t, cfg, nil)
		loadFixture(e)
		r := e.get(acme, "/api/v1/query_range", rangeUp)
		require.Equal(t, 422, r.status)
		require.Equal(t, errBody("execution", "query processing would load too many samples into memory in query execution (raise --query.max-samples=10)"), r.body)
	})

	t.Run("per-tenant max samples", func(t *testing.T) {
		e := newEnv(t, promql.DefaultConfig(), newLimits(t, tenancy.TenantLimits{MaxSamplesPerQuery: 5}))
		loadFixture(e)
		r := e.get(acme, "/api/v1/query_range", rangeUp)
		require.Equal(t, 422, r.status)
		require.Equal(t, "execution", r.envelope(t).ErrorType)
		require.Contains(t, r.envelope(t).Error, "query processing would load too many samples into memory")
		require.Contains(t, r.envelope(t).Error, "--limits.max-samples-per-query")
		require.Contains(t, r.envelope(t).Error, "max_samples_per_query")
		// A query within the limit runs.
		r = e.get(acme, "/api/v1/query", vals("query", `up{instance="a"}`, "time", "1700000300"))
		require.Equal(t, 200, r.status, r.body)
	})

	t.Run("timeout", func(t *testing.T) {
		cfg := promql.DefaultConfig()
		cfg.Timeout = 1 // ns: the deadline has passed when execution starts
		e := newEnv(t, cfg, nil)
		loadFixture(e)
		r := e.get(acme, "/api/v1/query", vals("query", "up"))
		require.Equal(t, 503, r.status, r.body)
		require.Equal(t, errBody("timeout", "query timed out in query execution (raise --query.timeout=1ns)"), r.body)
	})

	for _, c := range []struct {
		name    string
		cfg     func(*promql.Config)
		limits  tenancy.TenantLimits
		setting string
	}{
		{"per-tenant max series", nil, tenancy.TenantLimits{MaxSeriesPerQuery: 1},
			"--limits.max-series-per-query or its per-tenant override max_series_per_query"},
		{"global max series", func(c *promql.Config) { c.MaxSeries = 1 }, tenancy.TenantLimits{MaxSeriesPerQuery: 5},
			"--query.max-series"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := promql.DefaultConfig()
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			e := newEnv(t, cfg, newLimits(t, c.limits))
			loadFixture(e)
			want := errBody("execution", "query would load more than 1 series (raise "+c.setting+")")
			for _, req := range []struct {
				path   string
				params url.Values
			}{
				{"/api/v1/query", vals("query", "up", "time", "1700000300")},
				{"/api/v1/query_range", rangeUp},
				{"/api/v1/query", vals("query", `count({__name__=~".+"})`, "time", "1700000300")},
				{"/api/v1/series", vals("match[]", "up")},
			} {
				r := e.get(acme, req.path, req.params)
				require.Equal(t, 422, r.status, "%s %v: %s", req.path, req.params, r.body)
				require.Equal(t, want, r.body)
			}
			// One series is within the limit.
			r := e.get(acme, "/api/v1/query", vals("query", `up{instance="a"}`, "time", "1700000300"))
			require.Equal(t, 200, r.status, r.body)
			// The series endpoint reads limit+1 series to report a
			// truncation, so limit=1 still exceeds a maximum of 1.
			r = e.get(acme, "/api/v1/series", vals("match[]", "up", "limit", "1"))
			require.Equal(t, 422, r.status, r.body)
		})
	}

	t.Run("query rate", func(t *testing.T) {
		e := newEnv(t, promql.DefaultConfig(), newLimits(t, tenancy.TenantLimits{QueryRate: 0.001, QueryBurst: 1}))
		loadFixture(e)
		r := e.get(acme, "/api/v1/query", vals("query", "up"))
		require.Equal(t, 200, r.status, r.body)
		r = e.post(acme, "/api/v1/query_range", rangeUp)
		require.Equal(t, 429, r.status, r.body)
		require.NotEmpty(t, r.header.Get("Retry-After"))
		env := r.envelope(t)
		require.Equal(t, "too_many_requests", env.ErrorType)
		require.Contains(t, env.Error, "--limits.query-rate")
		// Another tenant has its own budget; index endpoints are not queries.
		require.Equal(t, 200, e.get(other, "/api/v1/query", vals("query", "up")).status)
		require.Equal(t, 200, e.get(acme, "/api/v1/labels", nil).status)
	})

	t.Run("concurrent queries", func(t *testing.T) {
		limits := newLimits(t, tenancy.TenantLimits{MaxConcurrentQueries: 1})
		e := newEnv(t, promql.DefaultConfig(), limits)
		loadFixture(e)
		release, err := limits.AcquireQuery(context.Background(), acme)
		require.NoError(t, err)
		r := e.get(acme, "/api/v1/query", vals("query", "up"))
		require.Equal(t, 429, r.status, r.body)
		require.Equal(t, "1", r.header.Get("Retry-After"))
		require.Contains(t, r.envelope(t).Error, "--limits.max-concurrent-queries")
		release()
		require.Equal(t, 200, e.get(acme, "/api/v1/query", vals("query", "up")).status)
	})
}

// TestAuthorization checks that every endpoint needs a principal with
// scope metrics:read.
func TestAuthorization(t *testing.T) {
	e := newEnv(t, promql.DefaultConfig(), nil)
	eps := e.api.Routes()
	require.Len(t, eps, 28)
	for _, ep := range eps {
		path := strings.ReplaceAll(ep.Path, "{name}", "job")
		t.Run(path, func(t *testing.T) {
			r := e.get("", path, vals("query", "up", "match[]", "up"))
			require.Equal(t, http.StatusUnauthorized, r.status, r.body)
			require.Equal(t, errBody("unauthorized", "no tenant in request context"), r.body)

			req, err := http.NewRequest(http.MethodGet, e.srv.URL+path+"?query=up&match[]=up", nil)
			require.NoError(t, err)
			req.Header.Set(scopesHeader, string(tenancy.ScopeWrite))
			r = e.do(acme, req)
			require.Equal(t, http.StatusForbidden, r.status, r.body)
			require.Equal(t, "forbidden", r.envelope(t).ErrorType)
		})
	}
}
