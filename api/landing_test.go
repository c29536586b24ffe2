package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/api"
	"github.com/luminate-io/luminate/tenancy"
)

// TestLandingPage: GET / is a small public HTML page (version, the mounted
// endpoints, how to mint a token, the documentation), the same with or
// without a token; HEAD / too; other methods 405 and unknown paths keep
// the JSON 404.
func TestLandingPage(t *testing.T) {
	noContent := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	e := newEnv(t,
		api.Route{Path: "/api/v1/write", Methods: []string{http.MethodPost}, Scope: tenancy.ScopeWrite, Handler: noContent},
		api.Route{Path: "/api/v1/read", Methods: []string{http.MethodPost}, Scope: tenancy.ScopeRead, Handler: noContent},
	)

	resp, page := e.do(t, http.MethodGet, "/", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	for _, want := range []string{
		"<title>Luminate</title>", "Version ",
		"POST /api/v1/write", "POST /api/v1/read", "GET /-/ready", "GET /metrics",
		"luminate token --auth.jwt.hmac-secret-file=", "Authorization: Bearer &lt;token&gt;",
		`docs/configuration.md">`, `docs/operations.md">`,
	} {
		require.Contains(t, page, want)
	}
	// Only what is mounted: this router has no native write.
	require.NotContains(t, page, "/api/v1/metrics")

	// No tenant data: a tenant's token sees the same page.
	resp, withToken := e.do(t, http.MethodGet, "/", e.token("acme-private", time.Hour, tenancy.ScopeAdmin), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, page, withToken)
	require.NotContains(t, withToken, "acme-private")

	resp, body := e.do(t, http.MethodHead, "/", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	require.Empty(t, body)

	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		resp, body = e.do(t, m, "/", "", nil)
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, m)
		require.Equal(t, "invalid_argument", decodeEnvelope(t, body).Error.Code, m)
	}

	resp, body = e.do(t, http.MethodGet, "/nope", "", nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json"), resp.Header.Get("Content-Type"))
	require.Equal(t, "not_found", decodeEnvelope(t, body).Error.Code)
}
