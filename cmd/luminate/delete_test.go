package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
	"github.com/luminate-io/luminate/tenancy"
)

// TestServeDeleteSeries runs delete_series and clean_tombstones against
// luminate: only an admin token of the tenant may delete, the other
// tenant's identical series stay, a call matching more series than
// --limits.max-delete-series is refused (413) and deletes nothing, and
// deletions (a whole series and part of one) survive SIGKILL. On Badger no
// checkpoint ran but the whole deletion's own; on ClickHouse a second
// luminate on the same database (another pod) sees the deletions at once.
func TestServeDeleteSeries(t *testing.T) {
	t.Run("badger", func(t *testing.T) {
		testServeDeleteSeries(t, false, "--storage.badger.path="+filepath.Join(t.TempDir(), "data"), "--storage.badger.checkpoint-interval=1h")
	})
	t.Run("clickhouse", func(t *testing.T) {
		dsn := chtest.Start(t)
		testServeDeleteSeries(t, true, "--storage.backend=clickhouse", "--storage.clickhouse.dsn="+dsn, "--storage.clickhouse.database=e2e_delete")
	})
}

func testServeDeleteSeries(t *testing.T, twoPods bool, storageArgs ...string) {
	secret := filepath.Join(t.TempDir(), "hmac.secret")
	_, err := tenancy.EnsureDevSecret(secret)
	require.NoError(t, err)
	args := append([]string{"serve", "--log.format=json", "--http.listen-address=127.0.0.1:0",
		"--auth.jwt.hmac-secret-file=" + secret, "--limits.max-delete-series=2"}, storageArgs...)
	p := start(t, args...)
	require.NotEmpty(t, p.addr, p.stderr())
	reader := p // where the reads after a deletion go
	if twoPods {
		reader = start(t, args...)
		require.NotEmpty(t, reader.addr, reader.stderr())
	}
	rw := map[tenancy.ID]string{
		"acme":  e2eToken(t, secret, "acme", "metrics:read,metrics:write"),
		"bravo": e2eToken(t, secret, "bravo", "metrics:read,metrics:write"),
	}
	code, out, errOut := runCLI("token", "--auth.jwt.hmac-secret-file="+secret, "--tenant=acme", "--scopes=admin", "--subject=ops@example.com")
	require.Equal(t, 0, code, errOut)
	admin := strings.TrimSpace(out)

	base := (time.Now().UnixMilli() - 10*60_000) / 1000 * 1000
	for _, id := range []tenancy.ID{"acme", "bravo"} {
		req := &prompb.WriteRequest{}
		for _, name := range []string{"del_me", "keep_me", "part_me", "burst_a", "burst_b", "burst_c"} {
			ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: name}, {Name: "job", Value: "e2e"}}}
			for i := range int64(3) {
				ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: base + i*15_000, Value: float64(i)})
			}
			req.Timeseries = append(req.Timeseries, ts)
		}
		raw, err := req.Marshal()
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(newRemoteWrite(t, p.url("/api/v1/write"), rw[id], bytes.NewReader(snappy.Encode(nil, raw))))
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusNoContent, resp.StatusCode, string(b))
	}

	post := func(p *proc, path, token string, form url.Values) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, p.url(path), strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// count is the number of samples of name in the last 20 minutes, by
	// PromQL; seriesOf the series listing.
	count := func(p *proc, id tenancy.ID, name string) string {
		t.Helper()
		q := url.Values{"query": {fmt.Sprintf("count_over_time(%s[20m])", name)}, "time": {fmt.Sprint(float64(base+60_000) / 1000)}}
		resp, err := http.DefaultClient.Do(authGet(t, p.url("/api/v1/query?"+q.Encode()), rw[id]))
		require.NoError(t, err)
		defer resp.Body.Close()
		var out struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		if len(out.Data.Result) == 0 {
			return "none"
		}
		return fmt.Sprint(out.Data.Result[0].Value[1])
	}
	seriesOf := func(p *proc, id tenancy.ID, match string) string {
		t.Helper()
		resp, err := http.DefaultClient.Do(authGet(t, p.url("/api/v1/series?"+url.Values{"match[]": {match}}.Encode()), rw[id]))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	requireState := func(p *proc, deleted bool) {
		t.Helper()
		want := map[string]string{"del_me": "3", "keep_me": "3", "part_me": "3", "burst_a": "3"}
		if deleted {
			want["del_me"], want["part_me"] = "none", "2"
		}
		for name, n := range want {
			require.Equal(t, n, count(p, "acme", name), "acme's %s", name)
			require.Equal(t, "3", count(p, "bravo", name), "bravo's %s: another tenant's deletion", name)
		}
		require.Equal(t, !deleted, strings.Contains(seriesOf(p, "acme", "del_me"), "del_me"), "acme's series listing")
		require.Contains(t, seriesOf(p, "bravo", "del_me"), "del_me", "bravo's series listing")
	}
	requireState(p, false)

	code, body := post(p, "/api/v1/admin/tsdb/delete_series", rw["acme"], url.Values{"match[]": {"del_me"}})
	require.Equal(t, http.StatusForbidden, code, body)
	require.Contains(t, body, `"errorType":"forbidden"`)
	code, body = post(p, "/api/v1/admin/tsdb/delete_series", admin, nil)
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, "no match[] parameter provided")
	code, body = post(p, "/api/v1/admin/tsdb/delete_series", admin, url.Values{"match[]": {`{__name__=~"burst_.*"}`}})
	require.Equal(t, http.StatusRequestEntityTooLarge, code, body)
	require.Contains(t, body, "--limits.max-delete-series")
	require.Contains(t, body, "max_delete_series")
	requireState(p, false)

	code, body = post(p, "/api/v1/admin/tsdb/delete_series", admin, url.Values{"match[]": {"del_me"}})
	require.Equal(t, http.StatusNoContent, code, body)
	window := url.Values{"match[]": {"part_me"}, "start": {fmt.Sprint(float64(base+10_000) / 1000)}, "end": {fmt.Sprint(float64(base+20_000) / 1000)}}
	code, body = post(p, "/prometheus/api/v1/admin/tsdb/delete_series", admin, window)
	require.Equal(t, http.StatusNoContent, code, body)
	requireState(reader, true)
	audit := p.waitLog(`"msg":"tsdb admin"`)
	for _, want := range []string{`"tenant":"acme"`, `"subject":"ops@example.com"`, `"endpoint":"delete_series"`, `"request_id"`, `"match"`} {
		require.Contains(t, audit, want)
	}

	// SIGKILL: nothing was checkpointed but the whole deletion's own.
	require.NoError(t, p.Cmd.Process.Signal(syscall.SIGKILL))
	p.wait()
	p = start(t, args...)
	require.NotEmpty(t, p.addr, p.stderr())
	requireState(p, true)
	if twoPods {
		requireState(reader, true)
	}

	code, body = post(p, "/api/v1/admin/tsdb/clean_tombstones", admin, nil)
	require.Equal(t, http.StatusNoContent, code, body)
	requireState(p, true)
	code, body = post(p, "/api/v1/admin/tsdb/clean_tombstones", rw["acme"], nil)
	require.Equal(t, http.StatusForbidden, code, body)
}

func authGet(t *testing.T, u, token string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}
