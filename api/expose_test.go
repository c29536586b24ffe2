package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/api"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// secretTenant is a tenant whose name nobody but an operator may learn.
const secretTenant = "secret-tenant-7f3a"

// newExposeEnv is newEnvWith whose tenants may make one request, so that
// seed can make the per-tenant metrics name secretTenant.
func newExposeEnv(t *testing.T, mutate func(*api.Options)) *env {
	t.Helper()
	return newEnvWith(t, func(o *api.Options) {
		cfg := tenancy.DefaultLimitsConfig()
		cfg.RequestRate, cfg.RequestBurst = 0.001, 1
		limits, err := tenancy.NewLimits(cfg, nil, o.Gatherer.(*prometheus.Registry))
		require.NoError(t, err)
		o.Limits = limits
		if mutate != nil {
			mutate(o)
		}
	}, api.Route{Path: "/api/v1/echo", Handler: principalEcho})
}

// seed has secretTenant go over its request rate, so that /metrics names
// it (luminate_rate_limited_total{tenant=...}), as it names every tenant
// that writes (samples received, active series, ...).
func (e *env) seed() {
	e.t.Helper()
	tok := e.token(secretTenant, time.Hour, tenancy.ScopeRead)
	resp, body := e.do(e.t, http.MethodGet, "/api/v1/echo", tok, nil)
	require.Equal(e.t, http.StatusOK, resp.StatusCode, body)
	resp, body = e.do(e.t, http.MethodGet, "/api/v1/echo", tok, nil)
	require.Equal(e.t, http.StatusTooManyRequests, resp.StatusCode, body)
}

// secretSeries is what /metrics says of secretTenant after seed.
const secretSeries = `luminate_rate_limited_total{limit="request_rate",tenant="` + secretTenant + `"} 1`

// TestMetricsNeedOperator: /metrics names every tenant (their series and
// samples), so it is the operator's: 401 without a token, 403 for any
// tenant's token, its admin's included, 200 with the operator scope.
func TestMetricsNeedOperator(t *testing.T) {
	e := newExposeEnv(t, nil)
	e.seed()
	operator := e.token("ops", time.Hour, tenancy.ScopeOperator)

	resp, body := e.do(t, http.MethodGet, "/metrics", "", nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "unauthenticated /metrics: %.300s", body)
	require.NotContains(t, body, secretTenant)
	require.True(t, strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer"))

	for _, scopes := range [][]tenancy.Scope{
		{tenancy.ScopeAdmin},
		{tenancy.ScopeRead, tenancy.ScopeWrite},
	} {
		resp, body = e.do(t, http.MethodGet, "/metrics", e.token("acme", time.Hour, scopes...), nil)
		require.Equal(t, http.StatusForbidden, resp.StatusCode, "%v: %.300s", scopes, body)
		require.NotContains(t, body, secretTenant)
		require.Contains(t, body, "operator", "the refusal names the scope it takes")
	}

	resp, body = e.do(t, http.MethodGet, "/metrics", operator, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Contains(t, body, secretSeries)
}

// TestPprofNeedsOperator: the runtime's profiles are the whole process's;
// a tenant's admin token does not reach them.
func TestPprofNeedsOperator(t *testing.T) {
	e := newEnvWith(t, func(o *api.Options) { o.Pprof = true })
	for _, tc := range []struct {
		token string
		want  int
	}{
		{"", http.StatusUnauthorized},
		{e.token("acme", time.Hour, tenancy.ScopeAdmin), http.StatusForbidden},
		{e.token("ops", time.Hour, tenancy.ScopeOperator), http.StatusOK},
	} {
		resp, body := e.do(t, http.MethodGet, "/debug/pprof/goroutine?debug=1", tc.token, nil)
		require.Equal(t, tc.want, resp.StatusCode, "%.300s", body)
		if tc.want == http.StatusOK {
			require.Contains(t, body, "goroutine profile:")
		}
	}

	off := newEnv(t)
	resp, _ := off.do(t, http.MethodGet, "/debug/pprof/", off.token("ops", time.Hour, tenancy.ScopeOperator), nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "off unless asked for")
}

// TestHealthSummaryForStrangers: without credentials the health endpoints
// say ok, degraded or down and nothing more: no data path, no free bytes,
// no key or limits file, no store error, no tenant. A tenant's token gets
// the same summary; an operator's the components.
func TestHealthSummaryForStrangers(t *testing.T) {
	e := newExposeEnv(t, func(o *api.Options) { o.Keys = o.Auth.(*tenancy.Verifier) })
	e.seed()
	dataDir := e.dir
	leaks := func(t *testing.T, body string) {
		t.Helper()
		for _, s := range []string{dataDir, "bytes free", "verification key", "HS256", secretTenant, "store closed", "components"} {
			require.NotContains(t, body, s)
		}
	}

	resp, body := e.do(t, http.MethodGet, "/api/v1/status/health", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.JSONEq(t, `{"status":"ok"}`, body)
	leaks(t, body)

	resp, body = e.do(t, http.MethodGet, "/api/v1/status/health", e.token("acme", time.Hour, tenancy.ScopeAdmin), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.JSONEq(t, `{"status":"ok"}`, body)

	resp, body = e.do(t, http.MethodGet, "/api/v1/status/health", "not-a-token", nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "bad credentials are refused, not ignored: %s", body)
	leaks(t, body)

	operator := e.token("ops", time.Hour, tenancy.ScopeOperator)
	resp, body = e.do(t, http.MethodGet, "/api/v1/status/health", operator, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	var rep healthReport
	require.NoError(t, json.Unmarshal([]byte(body), &rep))
	require.Contains(t, rep.Components["storage_write"].Message, "bytes free")

	require.NoError(t, e.store.Close())
	for _, path := range []string{"/api/v1/status/health", "/-/ready", "/readyz", "/-/healthy", "/healthz"} {
		resp, body = e.do(t, http.MethodGet, path, "", nil)
		leaks(t, body)
		if path == "/api/v1/status/health" {
			require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
			require.JSONEq(t, `{"status":"down"}`, body)
		}
	}
}

// TestInternalRouter: the internal listener serves /metrics, the detailed
// health report and the profiles without a token, and nothing else; its
// requests count in the same HTTP metrics as the public router's.
func TestInternalRouter(t *testing.T) {
	var internal *httptest.Server
	e := newExposeEnv(t, func(o *api.Options) {
		o.Pprof = true
		o.Keys = o.Auth.(*tenancy.Verifier)
		// Registered before the public router: either order shares.
		h, err := api.NewInternalRouter(*o, logDiscard(), o.Gatherer.(*prometheus.Registry))
		require.NoError(t, err)
		internal = httptest.NewServer(h)
		t.Cleanup(internal.Close)
	})
	e.seed()

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := internal.Client().Get(internal.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	code, body := get("/metrics")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, secretSeries)
	code, body = get("/api/v1/status/health")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"auth_keys"`)
	require.Contains(t, body, "bytes free")
	code, body = get("/debug/pprof/goroutine?debug=1")
	require.Equal(t, http.StatusOK, code, body)
	code, _ = get("/-/ready")
	require.Equal(t, http.StatusOK, code)
	code, _ = get("/api/v1/echo")
	require.Equal(t, http.StatusNotFound, code, "no data route on the internal listener")

	n, _ := e.counter("/metrics", "200")
	require.Equal(t, 1.0, n, "the internal scrape is counted")
	resp, _ := e.do(t, http.MethodGet, "/metrics", "", nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the public router still wants the operator")
}

func logDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestReadyShowsStartupProgress: while the store opens in the background,
// /-/ready tells anyone how far it got (no paths, no tenants), and the
// detailed report stays the operator's.
func TestReadyShowsStartupProgress(t *testing.T) {
	release := make(chan struct{})
	var opening *storage.Opening
	e := newEnvWith(t, func(o *api.Options) {
		store := o.Storage.(storage.MetricsStore)
		opening = storage.OpenInBackground(func(context.Context) (storage.MetricsStore, error) {
			<-release
			return store, nil
		}, func() string { return "replaying WAL: 42% (segment 3/7, 1200 samples)" })
		o.Storage = opening
	})
	for _, path := range []string{"/-/ready", "/readyz"} {
		resp, body := e.do(t, http.MethodGet, path, "", nil)
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
		require.Equal(t, "Luminate is starting: replaying WAL: 42% (segment 3/7, 1200 samples)\n", body)
	}
	resp, body := e.do(t, http.MethodGet, "/api/v1/status/health", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
	require.JSONEq(t, `{"status":"down"}`, body)

	close(release)
	<-opening.Done()
	resp, body = e.do(t, http.MethodGet, "/-/ready", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
}
