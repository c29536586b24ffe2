package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

// TestServeRestartAfterKill kills a luminate with a write-ahead log of
// some size (chunks sealed, no checkpoint) with SIGKILL and starts it
// again: it listens at once (/-/healthy 200) while it replays the log;
// until it is ready /-/ready says how far the replay got and writes and
// reads are answered 503 with Retry-After; then everything acknowledged
// before the kill is there.
func TestServeRestartAfterKill(t *testing.T) {
	const series, rounds, perRequest = 20_000, 30, 2_000
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	secret := filepath.Join(dir, "hmac.secret")
	_, err := tenancy.EnsureDevSecret(secret)
	require.NoError(t, err)
	args := []string{"serve", "--log.format=json", "--http.listen-address=127.0.0.1:0",
		"--storage.badger.path=" + data, "--auth.jwt.hmac-secret-file=" + secret,
		"--storage.badger.chunk-samples=10", "--storage.badger.checkpoint-interval=1h"}
	p := start(t, args...)
	require.NotEmpty(t, p.addr, p.stderr())
	token := e2eToken(t, secret, "acme", "metrics:read,metrics:write")

	value := func(i, r int) float64 { return float64(i*1000 + r) }
	base := time.Now().UnixMilli() - rounds*15000
	for r := range rounds {
		for lo := 0; lo < series; lo += perRequest {
			req := &prompb.WriteRequest{}
			for i := lo; i < min(lo+perRequest, series); i++ {
				req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
					Labels:  []prompb.Label{{Name: "__name__", Value: "e2e_restart"}, {Name: "i", Value: strconv.Itoa(i)}},
					Samples: []prompb.Sample{{Timestamp: base + int64(r)*15000, Value: value(i, r)}},
				})
			}
			raw, err := req.Marshal()
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(newRemoteWrite(t, p.url("/api/v1/write"), token, bytes.NewReader(snappy.Encode(nil, raw))))
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusNoContent, resp.StatusCode, string(b))
		}
	}
	require.NoError(t, p.Cmd.Process.Signal(syscall.SIGKILL))
	p.wait()

	started := time.Now()
	p = startListening(t, args...)
	require.NotEmpty(t, p.addr, p.stderr())
	get := func(path string) (int, string, http.Header) {
		req, err := http.NewRequest(http.MethodGet, p.url(path), nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b), resp.Header
	}
	code, _, _ := get("/-/healthy")
	require.Equal(t, http.StatusOK, code)
	healthy := time.Since(started)
	t.Logf("healthy %s after the start", healthy)
	require.Less(t, healthy, time.Second, "the port opens before Badger and the WAL are opened and replayed")

	// Until ready, every answer is a 503 with Retry-After (and /-/ready
	// says what the store does) or a success.
	var refused, progress int
	write := func(ts int64) {
		resp, err := http.DefaultClient.Do(newRemoteWrite(t, p.url("/api/v1/write"), token, bytes.NewReader(remoteWriteBody(t, "e2e_during", ts, 1))))
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			require.NotEmpty(t, resp.Header.Get("Retry-After"), "remote write: %s", b)
			refused++
		} else {
			require.Equal(t, http.StatusNoContent, resp.StatusCode, string(b))
		}
		native := fmt.Sprintf(`{"metrics":[{"name":"e2e_during_native","value":1,"timestamp":%d}]}`, ts)
		req, err := http.NewRequest(http.MethodPost, p.url("/api/v1/metrics"), strings.NewReader(native))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err = http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			require.NotEmpty(t, resp.Header.Get("Retry-After"), "native write: %s", b)
		} else {
			require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		}
	}
	var ready time.Duration
	for k := int64(0); ; k++ {
		require.Less(t, time.Since(started), waitTimeout, "not ready in time")
		code, body, _ := get("/-/ready")
		if code == http.StatusOK {
			ready = time.Since(started)
			break
		}
		require.Equal(t, http.StatusServiceUnavailable, code, body)
		require.Contains(t, body, "starting: ")
		if strings.Contains(body, "replaying WAL: ") {
			progress++
		}
		write(base + k)
		qcode, qbody, qh := get("/api/v1/query?query=count(e2e_restart)")
		if qcode == http.StatusServiceUnavailable {
			require.NotEmpty(t, qh.Get("Retry-After"), qbody)
		} else {
			require.Equal(t, http.StatusOK, qcode, qbody)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("ready %s after the start; %d writes refused meanwhile, %d readiness answers with replay progress", ready, refused, progress)
	require.Less(t, healthy, ready)
	code, body, _ := get("/api/v1/query?query=count(e2e_restart)")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, fmt.Sprintf(`"%d"]`, series))
	resp, err := http.DefaultClient.Do(newRemoteWrite(t, p.url("/api/v1/write"), token, bytes.NewReader(remoteWriteBody(t, "e2e_after", base, 1))))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)

	require.NoError(t, p.Cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.wait(), p.stderr())
	s := openTestStore(t, data)
	q, err := s.ForTenant("acme").Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "e2e_restart"))
	n := 0
	for set.Next() {
		i, err := strconv.Atoi(set.At().Labels().Get("i"))
		require.NoError(t, err)
		it := set.At().Iterator(nil)
		r := 0
		for it.Next() != 0 {
			ts, v := it.At()
			require.Equal(t, base+int64(r)*15000, ts, "series %d", i)
			require.Equal(t, value(i, r), v, "series %d", i)
			r++
		}
		require.NoError(t, it.Err())
		require.Equal(t, rounds, r, "series %d", i)
		n++
	}
	require.NoError(t, set.Err())
	require.Equal(t, series, n)
}
