//go:build linux

package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/api"
	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/native"
	"github.com/luminate-io/luminate/promql"
	"github.com/luminate-io/luminate/remotewrite"
	"github.com/luminate-io/luminate/storage/badger"
	"github.com/luminate-io/luminate/tenancy"
)

// TestDegradedModeHTTP fills the disk of a running Badger store (a tmpfs,
// for real) and checks what clients see: writes answered 503 with
// Retry-After, reads answered from what was written before, /-/ready
// still 200, the health report degraded with the write path down; and,
// once space is freed, writes accepted again without a restart.
func TestDegradedModeHTTP(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "tmpfs")
	require.NoError(t, os.Mkdir(data, 0o700))
	if err := syscall.Mount("tmpfs", data, "tmpfs", 0, "size=48m,mode=0700"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount tmpfs: %v: this test fills a tmpfs and needs root; CI runs as root and must run it", err)
		}
		t.Skipf("mount tmpfs: %v (needs root; with CI=true this fails)", err)
	}
	t.Cleanup(func() { require.NoError(t, syscall.Unmount(data, 0)) })

	reg := prometheus.NewRegistry()
	logger := slog.New(slog.DiscardHandler)
	cfg := badger.DefaultConfig()
	cfg.Path = filepath.Join(data, "luminate")
	cfg.Retention = 0
	cfg.MinFreeBytes = 8 << 20
	store, err := badger.New(cfg, logger, reg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })

	secretFile := filepath.Join(dir, "hmac.secret")
	_, err = tenancy.EnsureDevSecret(secretFile)
	require.NoError(t, err)
	secret, err := tenancy.LoadHMACSecret(secretFile)
	require.NoError(t, err)
	verifier, err := tenancy.NewVerifier(tenancy.AuthConfig{HMACSecretFile: secretFile}, logger, reg)
	require.NoError(t, err)
	limits, err := tenancy.NewLimits(tenancy.DefaultLimitsConfig(), logger, reg)
	require.NoError(t, err)
	engine, err := promql.New(promql.DefaultConfig(), store, limits, logger, reg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, engine.Close()) })
	h, err := api.NewRouter(api.Options{
		Auth: verifier, Limits: limits, Queries: limits, Tenants: store, Storage: store, Keys: verifier, LimitsFile: limits, Gatherer: reg,
		Routes: []api.Route{
			{Path: "/api/v1/metrics", Methods: []string{http.MethodPost}, Scope: tenancy.ScopeWrite, Format: apierror.Native,
				Serve: native.NewWrite(remotewrite.NewIngester(remotewrite.DefaultConfig(), limits, logger, reg), logger).Serve},
			{Path: "/api/v1/query", Methods: []string{http.MethodGet}, Scope: tenancy.ScopeRead, Format: apierror.Prometheus, Query: true, Serve: engine.Routes()[0].Serve},
		},
	}, logger, reg)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	tok, err := tenancy.Mint(secret, "HS256", "acme", []tenancy.Scope{tenancy.ScopeWrite, tenancy.ScopeRead}, time.Hour, "", "", time.Now())
	require.NoError(t, err)

	operator, err := tenancy.Mint(secret, "HS256", "ops", []tenancy.Scope{tenancy.ScopeOperator}, time.Hour, "", "", time.Now())
	require.NoError(t, err)
	do := func(method, path, body string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, bytes.NewBufferString(body))
		require.NoError(t, err)
		if path == "/api/v1/status/health" {
			req.Header.Set("Authorization", "Bearer "+operator)
		} else {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(b)
	}
	now := time.Now().Truncate(time.Second)
	write := func(at time.Time, v int) (*http.Response, string) {
		return do(http.MethodPost, "/api/v1/metrics", fmt.Sprintf(`{"metrics":[{"name":"up","dimensions":{"job":"a"},"value":%d,"timestamp":%d}]}`, v, at.UnixMilli()))
	}
	// read returns the value of up at t, through the Prometheus API.
	read := func(at time.Time) string {
		t.Helper()
		resp, body := do(http.MethodGet, "/api/v1/query?"+url.Values{"query": {"up"}, "time": {fmt.Sprint(at.Unix())}}.Encode(), "")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		var qr struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &qr), body)
		require.Len(t, qr.Data.Result, 1, body)
		return fmt.Sprint(qr.Data.Result[0].Value[1])
	}
	health := func() (int, healthReport) {
		t.Helper()
		resp, body := do(http.MethodGet, "/api/v1/status/health", "")
		var rep healthReport
		require.NoError(t, json.Unmarshal([]byte(body), &rep), body)
		return resp.StatusCode, rep
	}

	resp, body := write(now.Add(-time.Minute), 1)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)

	// Fill the tmpfs to 4 MiB free, below the 8 MiB reserve.
	filler, err := os.Create(filepath.Join(data, "filler"))
	require.NoError(t, err)
	var st syscall.Statfs_t
	for {
		require.NoError(t, syscall.Statfs(data, &st))
		free := st.Bavail * uint64(st.Bsize)
		if free <= 4<<20 {
			break
		}
		_, err := filler.Write(make([]byte, min(1<<20, free-4<<20)))
		require.NoError(t, err)
	}
	require.NoError(t, filler.Close())

	resp, body = write(now, 2)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
	require.Contains(t, body, `"code":"unavailable"`)
	require.Contains(t, body, "--storage.badger.min-free-bytes")
	require.Equal(t, "1", read(now), "reads answer what was written before")
	resp, _ = do(http.MethodGet, "/-/ready", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "the instance stays in its Service: it serves reads")
	code, rep := health()
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "degraded", rep.Status)
	require.Equal(t, map[string]string{"storage_read": "ok", "storage_write": "down", "auth_keys": "ok", "limits_file": "ok"}, rep.statuses())
	require.Contains(t, rep.Components["storage_write"].Message, "disk almost full")

	require.NoError(t, os.Remove(filepath.Join(data, "filler")))
	resp, body = write(now, 2)
	require.Equal(t, http.StatusOK, resp.StatusCode, "the retry succeeds without a restart: %s", body)
	require.Equal(t, "2", read(now))
	code, rep = health()
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok", rep.Status, rep.Components)
}
