package promql_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/api"
	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/promql"
	"github.com/luminate-io/luminate/storage/badger"
	"github.com/luminate-io/luminate/tenancy"
)

// newAdminEnv is newEnv with the admin endpoints mounted too (scope
// admin), for tenants whose max_delete_series is maxDelete.
func newAdminEnv(t *testing.T, maxDelete int) *env {
	t.Helper()
	store, err := badger.New(badger.Config{Path: t.TempDir()}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	tl := tenancy.DefaultTenantLimits()
	tl.MaxDeleteSeries = maxDelete
	limits, err := tenancy.NewLimits(tenancy.LimitsConfig{TenantLimits: tl}, nil, nil)
	require.NoError(t, err)
	a, err := promql.New(promql.DefaultConfig(), store, limits, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, a.Close()) })
	opts := api.Options{Auth: headerAuth{}, Tenants: store, Storage: store, Queries: limits, Gatherer: prometheus.NewRegistry()}
	for _, ep := range a.Routes() {
		opts.Routes = append(opts.Routes, api.Route{Path: ep.Path, Methods: ep.Methods, Name: ep.Name, Scope: tenancy.ScopeRead,
			Format: apierror.Prometheus, Query: ep.Query, Serve: ep.Serve})
	}
	for _, ep := range a.AdminRoutes(nil) {
		opts.Routes = append(opts.Routes, api.Route{Path: ep.Path, Methods: ep.Methods, Name: ep.Name, Scope: tenancy.ScopeAdmin,
			Format: apierror.Prometheus, Serve: ep.Serve})
	}
	h, err := api.NewRouter(opts, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{t: t, store: store, api: a, srv: srv}
}

// admin sends a form request to an admin endpoint as tenant id's admin.
func (e *env) admin(method, id, path, form string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(form))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(scopesHeader, string(tenancy.ScopeAdmin))
	return e.do(tenancy.ID(id), req)
}

// TestDeleteSeriesAPI checks delete_series' parameters and errors as
// Prometheus words them, the limit refusal naming its setting and
// deleting nothing, and what a deletion leaves.
func TestDeleteSeriesAPI(t *testing.T) {
	e := newAdminEnv(t, 2)
	one := func(int) float64 { return 1 }
	for _, id := range []tenancy.ID{"acme", "bravo"} {
		e.load(id, append(append(series(`a{job="x"}`, 1000, 1000, 10, one), series(`b{job="x"}`, 1000, 1000, 10, one)...), series(`c{job="x"}`, 1000, 1000, 10, one)...)...)
	}
	const path = "/api/v1/admin/tsdb/delete_series"
	for _, c := range []struct {
		name, method, form string
		status             int
		errorType, msg     string
	}{
		{"no match[]", http.MethodPost, "start=1", 400, "bad_data", "no match[] parameter provided"},
		{"bad selector", http.MethodPost, "match[]=a{", 400, "bad_data", ""},
		{"only empty matchers", http.MethodPost, `match[]={job=""}`, 400, "bad_data", "match[] must contain at least one non-empty matcher"},
		{"bad start", http.MethodPost, "match[]=a&start=yesterday", 400, "bad_data", "invalid time value for 'start'"},
		{"over the limit", http.MethodPost, `match[]={job="x"}`, 413, "bad_data", "delete_series matches more than 2 series, the most one call may delete; nothing was deleted"},
		{"over the limit in two selectors", http.MethodPut, "match[]=a&match[]={__name__=~\"b|c\"}", 413, "bad_data", "(raise --limits.max-delete-series or its per-tenant override max_delete_series)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.admin(c.method, "acme", path, c.form)
			require.Equal(t, c.status, r.status, r.body)
			env := r.envelope(t)
			require.Equal(t, "error", env.Status)
			require.Equal(t, c.errorType, env.ErrorType)
			require.Contains(t, env.Error, c.msg)
		})
	}
	require.Equal(t, http.StatusMethodNotAllowed, e.admin(http.MethodGet, "acme", path, "").status)
	seriesOf := func(id tenancy.ID) string {
		return string(e.get(id, "/api/v1/series", vals("match[]", `{job="x"}`, "start", "0", "end", "100")).envelope(t).Data)
	}
	require.Equal(t, `[{"__name__":"a","job":"x"},{"__name__":"b","job":"x"},{"__name__":"c","job":"x"}]`, seriesOf("acme"), "refused calls deleted nothing")

	r := e.admin(http.MethodPost, "acme", path, "match[]=a&match[]=b&start=0&end=100")
	require.Equal(t, http.StatusNoContent, r.status, r.body)
	require.Empty(t, r.body)
	require.Equal(t, `[{"__name__":"c","job":"x"}]`, seriesOf("acme"))
	require.Equal(t, `[{"__name__":"a","job":"x"},{"__name__":"b","job":"x"},{"__name__":"c","job":"x"}]`, seriesOf("bravo"), "another tenant's series")

	// Part of c: [3 s, 5 s] of its 10 samples at 1 s .. 10 s.
	r = e.admin(http.MethodPut, "acme", "/prometheus/api/v1/admin/tsdb/delete_series", "match[]=c&start=3&end=5")
	require.Equal(t, http.StatusNoContent, r.status, r.body)
	got := e.get("acme", "/api/v1/query", vals("query", "count_over_time(c[1m])", "time", "10")).envelope(t)
	require.Contains(t, string(got.Data), `"7"`)
	got = e.get("bravo", "/api/v1/query", vals("query", "count_over_time(c[1m])", "time", "10")).envelope(t)
	require.Contains(t, string(got.Data), `"10"`)

	r = e.admin(http.MethodPost, "acme", "/api/v1/admin/tsdb/clean_tombstones", "")
	require.Equal(t, http.StatusNoContent, r.status, r.body)
	got = e.get("acme", "/api/v1/query", vals("query", "count_over_time(c[1m])", "time", "10")).envelope(t)
	require.Contains(t, string(got.Data), `"7"`)

	// A metrics:read token may not delete.
	r = e.post("acme", path, vals("match[]", "c"))
	require.Equal(t, http.StatusForbidden, r.status, r.body)
	require.Equal(t, "forbidden", r.envelope(t).ErrorType)
}
