package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The OTLP routes are mounted with the write scope and OTLP's error body.
func TestServeOTLPRoutes(t *testing.T) {
	lum, secret := startAuthLuminate(t)
	writer := e2eToken(t, secret, "acme", "metrics:write")
	reader := e2eToken(t, secret, "acme", "metrics:read")
	ns := time.Now().Add(-time.Minute).UnixNano()
	export := func(name string) []byte {
		return fmt.Appendf(nil, `{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},`+
			`"scopeMetrics":[{"metrics":[{"name":%q,"sum":{"aggregationTemporality":2,"isMonotonic":true,`+
			`"dataPoints":[{"timeUnixNano":"%d","asDouble":3}]}}]}]}]}`, name, ns)
	}
	post := func(path, token string, body []byte) (int, string, []byte) {
		req, err := http.NewRequest(http.MethodPost, lum.url(path), bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, resp.Header.Get("Content-Type"), raw
	}
	for i, path := range []string{"/otlp/v1/metrics", "/prometheus/otlp/v1/metrics", "/api/v1/otlp/v1/metrics", "/prometheus/api/v1/otlp/v1/metrics"} {
		status, ct, raw := post(path, writer, export(fmt.Sprintf("c%d", i)))
		require.Equal(t, http.StatusOK, status, string(raw))
		require.Equal(t, "application/json", ct)
		v := instantQuery(t, lum.url(""), reader, fmt.Sprintf("c%d_total", i))
		require.Len(t, v, 1)
		require.Equal(t, "svc", string(v[0].Metric["job"]))
		require.EqualValues(t, 3, v[0].Value)
	}
	status, ct, raw := post("/otlp/v1/metrics", "", export("x"))
	require.Equal(t, http.StatusUnauthorized, status)
	require.Equal(t, "application/json", ct)
	require.JSONEq(t, `{"code":16,"message":"`+jsonMessage(t, raw)+`"}`, string(raw))
	status, _, raw = post("/otlp/v1/metrics", reader, export("x"))
	require.Equal(t, http.StatusForbidden, status, string(raw))
}

func jsonMessage(t *testing.T, raw []byte) string {
	t.Helper()
	i := bytes.Index(raw, []byte(`"message":"`))
	require.GreaterOrEqual(t, i, 0, string(raw))
	rest := raw[i+len(`"message":"`):]
	return string(rest[:bytes.LastIndexByte(rest, '"')])
}
