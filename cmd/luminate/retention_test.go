package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
	"github.com/luminate-io/luminate/tenancy"
)

// TestServeRetentionPerTenant: through HTTP, on both backends, each
// tenant's queries stop at its retention override (the default
// --storage.retention for the others), and an overrides file reload
// (SIGHUP) moves that horizon at once.
func TestServeRetentionPerTenant(t *testing.T) {
	t.Run("badger", func(t *testing.T) {
		testServeRetention(t, "--storage.badger.path="+filepath.Join(t.TempDir(), "data"))
	})
	t.Run("clickhouse", func(t *testing.T) {
		testServeRetention(t, "--storage.backend=clickhouse", "--storage.clickhouse.dsn="+chtest.Start(t), "--storage.clickhouse.database=e2e")
	})
}

func testServeRetention(t *testing.T, storageFlags ...string) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "hmac.secret")
	_, err := tenancy.EnsureDevSecret(secret)
	require.NoError(t, err)
	overrides := writeFile(t, dir, "overrides.yml", "overrides:\n  short:\n    retention: 1h\n")
	args := append([]string{"serve", "--log.format=json", "--http.listen-address=127.0.0.1:0", "--storage.retention=30d",
		"--auth.jwt.hmac-secret-file=" + secret, "--limits.overrides-file=" + overrides}, storageFlags...)
	p := start(t, args...)
	require.NotEmpty(t, p.addr, p.stderr())
	now := time.Now().UnixMilli()
	tokens := map[tenancy.ID]string{}
	// write sends one sample of e2e_ret at ts for tenant id and returns
	// the status and body.
	write := func(id tenancy.ID, ts int64) (int, string) {
		t.Helper()
		resp, err := http.DefaultClient.Do(newRemoteWrite(t, p.url("/api/v1/write"), tokens[id], bytes.NewReader(remoteWriteBody(t, "e2e_ret", ts, 1))))
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(body)
	}
	old := now - 3*3600_000
	for _, id := range []tenancy.ID{"short", "long"} {
		tokens[id] = e2eToken(t, secret, id, "metrics:read,metrics:write")
		code, body := write(id, now)
		require.Equal(t, http.StatusNoContent, code, body)
	}
	code, body := write("long", old)
	require.Equal(t, http.StatusNoContent, code, body)
	// Writes follow the tenant's own retention too.
	code, body = write("short", old)
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, "older than the storage retention of 1h0m0s")
	// count returns how many samples of e2e_ret tenant id reads in the
	// last 5 hours.
	count := func(id tenancy.ID) string {
		t.Helper()
		q := url.Values{"query": {"count_over_time(e2e_ret[5h])"}, "time": {fmt.Sprintf("%.3f", float64(now)/1000)}}
		req, err := http.NewRequest(http.MethodGet, p.url("/api/v1/query?"+q.Encode()), nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tokens[id])
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		body, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		require.NoError(t, json.Unmarshal(body, &out), string(body))
		if len(out.Data.Result) == 0 {
			return "none"
		}
		return fmt.Sprint(out.Data.Result[0].Value[1])
	}
	require.Equal(t, "1", count("short"), "retention 1h: only the new sample")
	require.Equal(t, "2", count("long"), "the default 30d")

	reload := func(content string) {
		t.Helper()
		tmp := overrides + ".new"
		require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
		require.NoError(t, os.Rename(tmp, overrides))
		before := strings.Count(p.Out.String(), "per-tenant limits overrides loaded")
		require.NoError(t, p.Cmd.Process.Signal(syscall.SIGHUP))
		deadline := time.Now().Add(waitTimeout)
		for strings.Count(p.Out.String(), "per-tenant limits overrides loaded") == before {
			require.True(t, time.Now().Before(deadline), "no reload logged: %s", p.stderr())
			time.Sleep(10 * time.Millisecond)
		}
	}
	reload("overrides:\n  short:\n    retention: 5h\n  long:\n    retention: 1h\n")
	require.Equal(t, "1", count("long"), "lowered to 1h: at once")
	code, body = write("short", old)
	require.Equal(t, http.StatusNoContent, code, "raised to 5h: a sample of 3h ago is accepted: %s", body)
	require.Equal(t, "2", count("short"), "raised to 5h")
	reload("overrides:\n  long:\n    retention: 0s\n")
	require.Equal(t, "2", count("long"), "0s keeps forever")
}
