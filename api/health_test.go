package api_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/api"
	"github.com/luminate-io/luminate/tenancy"
)

// healthReport mirrors the body of GET /api/v1/status/health.
type healthReport struct {
	Status     string `json:"status"`
	Components map[string]struct {
		Status  string `json:"status"`
		Message string `json:"message"`
	} `json:"components"`
}

func getHealth(t *testing.T, e *env) (int, healthReport) {
	t.Helper()
	resp, body := e.do(t, http.MethodGet, "/api/v1/status/health", e.token("ops", time.Hour, tenancy.ScopeOperator), nil)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	var rep healthReport
	require.NoError(t, json.Unmarshal([]byte(body), &rep), body)
	return resp.StatusCode, rep
}

// statuses returns the status of every component.
func (r healthReport) statuses() map[string]string {
	out := map[string]string{}
	for name, c := range r.Components {
		out[name] = c.Status
	}
	return out
}

func TestHealthReport(t *testing.T) {
	dir := t.TempDir()
	overrides := filepath.Join(dir, "overrides.yaml")
	require.NoError(t, os.WriteFile(overrides, []byte("overrides:\n  acme: {ingestion_rate: 10}\n"), 0o600))
	limitsCfg := tenancy.DefaultLimitsConfig()
	limitsCfg.OverridesFile = overrides
	limits, err := tenancy.NewLimits(limitsCfg, nil, nil)
	require.NoError(t, err)
	disabled, err := tenancy.NewVerifier(tenancy.AuthConfig{Disabled: true}, nil, nil)
	require.NoError(t, err)

	e := newEnvWith(t, func(o *api.Options) {
		o.Keys = o.Auth.(*tenancy.Verifier)
		o.LimitsFile = limits
	})

	t.Run("all ok", func(t *testing.T) {
		code, rep := getHealth(t, e)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "ok", rep.Status)
		require.Equal(t, map[string]string{"storage_read": "ok", "storage_write": "ok", "auth_keys": "ok", "limits_file": "ok"}, rep.statuses())
		require.Contains(t, rep.Components["auth_keys"].Message, "1 verification key(s) loaded; algorithms HS256")
		require.Contains(t, rep.Components["limits_file"].Message, "overrides for 1 tenant(s)")
		require.Contains(t, rep.Components["storage_write"].Message, "bytes free")
	})

	t.Run("limits file broken: degraded, old limits in force", func(t *testing.T) {
		require.NoError(t, os.WriteFile(overrides, []byte("overrides: [\n"), 0o600))
		require.Error(t, limits.Reload())
		code, rep := getHealth(t, e)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "degraded", rep.Status)
		require.Equal(t, "degraded", rep.Components["limits_file"].Status)
		require.Contains(t, rep.Components["limits_file"].Message, "stay in force")

		require.NoError(t, os.WriteFile(overrides, []byte("overrides: {}\n"), 0o600))
		require.NoError(t, limits.Reload())
		_, rep = getHealth(t, e)
		require.Equal(t, "ok", rep.Status)
	})

	t.Run("authentication disabled: degraded", func(t *testing.T) {
		e := newEnvWith(t, func(o *api.Options) { o.Auth, o.Keys = disabled, disabled })
		code, rep := getHealth(t, e)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "degraded", rep.Status)
		require.Equal(t, "degraded", rep.Components["auth_keys"].Status)
		require.NotContains(t, rep.Components, "limits_file", "not reported when not configured")
		// Development only: every request is an operator, tokenless ones too.
		resp, body := e.do(t, http.MethodGet, "/api/v1/status/health", "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, body, `"auth_keys"`)
	})

	t.Run("storage closed: down, 503", func(t *testing.T) {
		require.NoError(t, e.store.Close())
		code, rep := getHealth(t, e)
		require.Equal(t, http.StatusServiceUnavailable, code)
		require.Equal(t, "down", rep.Status)
		require.Equal(t, "down", rep.Components["storage_read"].Status)
		require.Equal(t, "store closed", rep.Components["storage_read"].Message)
	})
}
