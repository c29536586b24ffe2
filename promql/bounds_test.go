package promql_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/promql"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// refusedFast is how long a refusal may take on a loaded test machine; the
// queries refused below crashed the process, or ran for minutes, before
// they were bounded.
const refusedFast = 5 * time.Second

// requireRefused checks that r is a 400 bad_data naming setting, answered
// within refusedFast of start.
func requireRefused(t *testing.T, r response, start time.Time, setting string) {
	t.Helper()
	require.Less(t, time.Since(start), refusedFast)
	require.Equal(t, http.StatusBadRequest, r.status, r.body)
	env := r.envelope(t)
	require.Equal(t, "error", env.Status)
	require.Equal(t, "bad_data", env.ErrorType)
	require.Contains(t, env.Error, setting)
}

func defaultLimits(t *testing.T, tl tenancy.TenantLimits) *tenancy.Limits {
	t.Helper()
	l, err := tenancy.NewLimits(tenancy.LimitsConfig{TenantLimits: tl}, nil, nil)
	require.NoError(t, err)
	return l
}

// TestQueryAttacks sends the queries of issue #10 that took the process
// down through the HTTP API on Badger, with the default flags and tenant
// limits: each gets a fast 400 naming the setting that refused it.
func TestQueryAttacks(t *testing.T) {
	e := newEnv(t, promql.DefaultConfig(), defaultLimits(t, tenancy.DefaultTenantLimits()))
	loadFixture(e)
	instant := func(q string) url.Values { return vals("query", q, "time", "1700000300") }
	ranged := func(q string) url.Values {
		return vals("query", q, "start", "1700000000", "end", "1700060000", "step", "60")
	}
	cases := []struct {
		name, path string
		params     url.Values
		setting    string
	}{
		// fatal error: runtime: out of memory, at once.
		{"subquery of a year at 1ms", "/api/v1/query", instant(`count_over_time(vector(1)[1y:1ms])`), "--query.max-subquery-steps"},
		// Grew until the kernel killed the process.
		{"subquery of 30 days at 1ms", "/api/v1/query", instant(`max_over_time(vector(1)[30d:1ms])`), "--query.max-subquery-steps"},
		// A short subquery over a long range query evaluates the whole range at its step.
		{"short subquery over a range query", "/api/v1/query_range", ranged(`count_over_time(vector(1)[5m:1ms])`), "--query.max-subquery-steps"},
		// Each within the per-subquery bound, 9e10 points together.
		{"nested subqueries", "/api/v1/query", instant(`count_over_time(count_over_time(vector(1)[5m:1ms])[5m:1ms])`), "--query.max-subquery-total-steps"},
		{"subquery step below a millisecond", "/api/v1/query", instant(`max_over_time(up[5m:0.0001])`), "shorter than 1ms"},
		{"subquery without a step", "/api/v1/query", instant(`count_over_time(vector(1)[10000d:])`), "--query.max-subquery-steps"},
		// fatal error: stack overflow (500 KB).
		{"deep calls", "/api/v1/query", instant(strings.Repeat("abs(", 100_000) + "vector(1)" + strings.Repeat(")", 100_000)), "--query.max-length"},
		// A core busy for minutes after the client had gone (1 MB).
		{"long unary chain", "/api/v1/query", instant(strings.Repeat("-", 1_000_000) + "up"), "--query.max-length"},
		// Under the length bound, refused by the depth bound.
		{"deep calls within the length", "/api/v1/query", instant(strings.Repeat("abs(", 20_000) + "vector(1)" + strings.Repeat(")", 20_000)), "--query.max-depth"},
		{"unary chain within the length", "/api/v1/query_range", ranged(strings.Repeat("-", 200_000) + "up"), "--query.max-depth"},
		{"binary chain within the length", "/api/v1/query", instant(strings.Repeat("up+", 20_000) + "up"), "--query.max-depth"},
		{"power chain within the length", "/api/v1/query", instant(strings.Repeat("up^", 20_000) + "up"), "--query.max-depth"},
		{"deep parentheses", "/api/v1/query", instant(strings.Repeat("(", 50_000) + "up" + strings.Repeat(")", 50_000)), "--query.max-depth"},
		{"too many terms", "/api/v1/query", instant(`label_join(up, "a", ","` + strings.Repeat(`, "b"`, 10_000) + ")"), "--query.max-terms"},
		{"format_query", "/api/v1/format_query", vals("query", strings.Repeat("abs(", 20_000)+"x"+strings.Repeat(")", 20_000)), "--query.max-depth"},
		{"parse_query", "/api/v1/parse_query", vals("query", strings.Repeat("-", 200_000)+"x"), "--query.max-depth"},
		{"query_exemplars", "/api/v1/query_exemplars", vals("query", strings.Repeat("-", 300_000)+"x"), "--query.max-length"},
		{"series with a long match[]", "/api/v1/series", vals("match[]", `{job=~"`+strings.Repeat("a|", 150_000)+`b"}`), "--query.max-length"},
		{"labels with too many match[]", "/api/v1/labels", url.Values{"match[]": strings.Split(strings.Repeat("up,", 1001), ",")[:1001]}, "--query.max-match-selectors"},
		{"label values with match[] too long together", "/api/v1/label/job/values", url.Values{"match[]": strings.Split(strings.Repeat(`{job=~"`+strings.Repeat("a", 1000)+`"},`, 300), ",")[:300]}, "--query.max-length"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			if !strings.HasPrefix(c.path, "/api/v1/label/") { // GET only, as in Prometheus
				requireRefused(t, e.post(acme, c.path, c.params), start, c.setting)
			}
			if len(c.params.Encode()) < 500_000 {
				start = time.Now()
				requireRefused(t, e.get(acme, c.path, c.params), start, c.setting)
			}
		})
	}
	// The process is still up, and answers.
	r := e.get(acme, "/api/v1/query", instant("up"))
	require.Equal(t, http.StatusOK, r.status, r.body)
}

// TestQueryAttacksExec sends the same queries through Exec, the entry of
// the native query API: the same bounds, in errors apierror classifies
// as 400.
func TestQueryAttacksExec(t *testing.T) {
	e := newEnv(t, promql.DefaultConfig(), defaultLimits(t, tenancy.DefaultTenantLimits()))
	loadFixture(e)
	at := time.Unix(1700000300, 0)
	tenant := storage.Tenant{Principal: tenancy.Principal{Tenant: acme}, Store: e.store.ForTenant(acme)}
	for q, setting := range map[string]string{
		`count_over_time(vector(1)[1y:1ms])`:                                         "--query.max-subquery-steps",
		`count_over_time(count_over_time(vector(1)[5m:1ms])[5m:1ms])`:                "--query.max-subquery-total-steps",
		strings.Repeat("abs(", 100_000) + "vector(1)" + strings.Repeat(")", 100_000): "--query.max-length",
		strings.Repeat("abs(", 20_000) + "vector(1)" + strings.Repeat(")", 20_000):   "--query.max-depth",
		strings.Repeat("-", 200_000) + "up":                                          "--query.max-depth",
	} {
		start := time.Now()
		res, err := e.api.Exec(context.Background(), tenant, promql.ExecRequest{Query: q, Start: at, End: at})
		res.Close()
		require.Less(t, time.Since(start), refusedFast)
		require.ErrorContains(t, err, setting)
		info := apierror.Classify(err)
		require.Equal(t, http.StatusBadRequest, info.Status, err.Error())
		require.Equal(t, "query", info.Field)
	}
	// A range query over a short subquery, and more steps than a range query may have.
	_, err := e.api.Exec(context.Background(), tenant, promql.ExecRequest{Query: `count_over_time(vector(1)[5m:1ms])`, Start: at, End: at.Add(time.Hour), Step: time.Minute})
	require.ErrorContains(t, err, "--query.max-subquery-steps")
	_, err = e.api.Exec(context.Background(), tenant, promql.ExecRequest{Query: `up`, Start: at, End: at.Add(time.Hour), Step: time.Millisecond})
	require.ErrorContains(t, err, "11,000 points")
	require.Equal(t, http.StatusBadRequest, apierror.Classify(err).Status)
}

// TestQueryBoundsPerTenant lowers each bound for the tenants: the errors
// name the tenant limit and its override key; within them queries run.
func TestQueryBoundsPerTenant(t *testing.T) {
	tl := tenancy.DefaultTenantLimits()
	tl.MaxQueryLength, tl.MaxSubquerySteps, tl.MaxSubqueryTotalSteps = 100, 100, 1000
	e := newEnv(t, promql.DefaultConfig(), defaultLimits(t, tl))
	loadFixture(e)
	instant := func(q string) url.Values { return vals("query", q, "time", "1700000300") }
	for _, c := range []struct {
		path    string
		params  url.Values
		setting string
	}{
		{"/api/v1/query", instant("up + " + strings.Repeat(" ", 100) + "up"), "--limits.max-query-length or its per-tenant override max_query_length"},
		{"/api/v1/format_query", vals("query", strings.Repeat("up+", 40)+"up"), "--limits.max-query-length or its per-tenant override max_query_length"},
		{"/api/v1/series", url.Values{"match[]": {strings.Repeat("u", 60), strings.Repeat("p", 60)}}, "--limits.max-query-length or its per-tenant override max_query_length"},
		{"/api/v1/query", instant(`max_over_time(up[101m:1m])`), "--limits.max-subquery-steps or its per-tenant override max_subquery_steps"},
		{"/api/v1/query_range", vals("query", `max_over_time(up[30m:1m])`, "start", "1700000000", "end", "1700003000", "step", "60"),
			"--limits.max-subquery-total-steps or its per-tenant override max_subquery_total_steps"},
	} {
		start := time.Now()
		requireRefused(t, e.post(acme, c.path, c.params), start, c.setting)
	}
	r := e.get(acme, "/api/v1/query", instant(`max_over_time(up[99m:1m])`))
	require.Equal(t, http.StatusOK, r.status, r.body)
	r = e.get(acme, "/api/v1/query_range", vals("query", `max_over_time(up[5m:1m])`, "start", "1700000000", "end", "1700003000", "step", "60"))
	require.Equal(t, http.StatusOK, r.status, r.body)
}

// TestLongLegalSelector runs the selector Grafana sends for a multi-value
// variable set to All, (v1|v2|...), as long as --query.max-length allows,
// and one of a million bytes (150,000 values) with the bound raised: both
// find their series on Badger, through query, series and labels.
func TestLongLegalSelector(t *testing.T) {
	alternation := func(n int) string {
		var b strings.Builder
		b.WriteString(`{__name__="m",i=~"(`)
		for i := range n {
			if i > 0 {
				b.WriteByte('|')
			}
			b.WriteString(strconv.Itoa(i))
		}
		b.WriteString(`)"}`)
		return b.String()
	}
	cfg := promql.DefaultConfig()
	n := 43_000 // 247 KB
	sel := alternation(n)
	require.Less(t, len(sel), cfg.MaxQueryLength)
	require.Greater(t, len(sel), cfg.MaxQueryLength*9/10)

	big := promql.DefaultConfig()
	big.MaxQueryLength = 1 << 20
	for _, c := range []struct {
		name string
		cfg  promql.Config
		sel  string
		n    int
	}{{"default bound", cfg, sel, n}, {"raised bound", big, alternation(150_000), 150_000}} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, c.cfg, defaultLimits(t, tenancy.DefaultTenantLimits()))
			for _, i := range []int{0, 7, c.n - 1, c.n, c.n + 1} {
				e.load(acme, sample{`m{i="` + strconv.Itoa(i) + `"}`, t0, 1})
			}
			r := e.post(acme, "/api/v1/query", vals("query", "count("+c.sel+")", "time", "1700000000"))
			require.Equal(t, http.StatusOK, r.status, r.body)
			require.Contains(t, r.body, `"value":[1700000000,"3"]`)
			r = e.post(acme, "/api/v1/series", vals("match[]", c.sel))
			require.Equal(t, http.StatusOK, r.status, r.body)
			require.Equal(t, 3, strings.Count(r.body, `"__name__":"m"`), r.body)
			r = e.post(acme, "/api/v1/labels", vals("match[]", c.sel))
			require.Equal(t, http.StatusOK, r.status, r.body)
			require.Contains(t, r.body, `"i"`)
		})
	}
}

// TestDashboardSubqueries runs subqueries as dashboards write them, over
// the ranges and steps Grafana sends: the default bounds let them all run.
func TestDashboardSubqueries(t *testing.T) {
	e := newEnv(t, promql.DefaultConfig(), defaultLimits(t, tenancy.DefaultTenantLimits()))
	loadFixture(e)
	const end = 1700000300
	ranged := func(q string, span, step time.Duration) url.Values {
		return vals("query", q, "start", strconv.FormatInt(end-int64(span.Seconds()), 10), "end", strconv.Itoa(end), "step", strconv.FormatInt(int64(step.Seconds()), 10))
	}
	const day = 24 * time.Hour
	for _, p := range []url.Values{
		vals("query", `max_over_time(up[30d:1m])`, "time", strconv.Itoa(end)),
		vals("query", `quantile_over_time(0.99, rate(http_requests_total[5m])[1d:])`, "time", strconv.Itoa(end)),
		ranged(`max_over_time(rate(http_requests_total[5m])[1d:1m])`, 30*day, time.Hour),
		ranged(`avg_over_time(up[1h:15s])`, 7*day, time.Minute),
		ranged(`max_over_time(max_over_time(up[1h:1m])[1d:5m])`, 7*day, 10*time.Minute),
		ranged(`deriv(sum(rate(http_requests_total[5m]))[30m:30s])`, 90*day, 6*time.Hour),
	} {
		r := e.get(acme, "/api/v1/query"+map[bool]string{true: "_range"}[p.Has("step")], p)
		require.Equal(t, http.StatusOK, r.status, "%s: %s", p.Get("query"), r.body)
	}
}
