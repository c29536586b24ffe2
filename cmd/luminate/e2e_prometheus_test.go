package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/internal/proctest"
	"github.com/luminate-io/luminate/tenancy"
)

// e2eTokenFile mints a token with tenancy.Mint, issued at issued and valid
// for ttl, writes it to dir/name and returns the token and the file.
func e2eTokenFile(t *testing.T, secretFile, dir, name string, tenant tenancy.ID, issued time.Time, ttl time.Duration, scopes ...tenancy.Scope) (token, file string) {
	t.Helper()
	key, err := tenancy.LoadHMACSecret(secretFile)
	require.NoError(t, err)
	token, err = tenancy.Mint(key, "", tenant, scopes, ttl, "", "", issued)
	require.NoError(t, err)
	return token, writeFile(t, dir, name, token+"\n")
}

// startAuthLuminate starts luminate on Badger in a temporary directory with
// HMAC auth, and returns it and its secret file.
func startAuthLuminate(t *testing.T, flags ...string) (*proc, string) {
	t.Helper()
	dir := t.TempDir()
	secret := filepath.Join(dir, "hmac.secret")
	_, err := tenancy.EnsureDevSecret(secret)
	require.NoError(t, err)
	args := append([]string{"serve", "--log.format=json", "--http.listen-address=127.0.0.1:0",
		"--storage.badger.path=" + filepath.Join(dir, "data"), "--auth.jwt.hmac-secret-file=" + secret}, flags...)
	p := start(t, args...)
	require.NotEmpty(t, p.addr, p.stderr())
	return p, secret
}

// writerConfig is the configuration of a Prometheus that scrapes itself
// every second and remote-writes to url with the token in tokenFile.
func writerConfig(self, url, tokenFile string) string {
	return fmt.Sprintf(`
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: [%q]
remote_write:
  - url: %q
    authorization:
      credentials_file: %q
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
`, self, url, tokenFile)
}

// TestPrometheusEndToEnd runs Debian's Prometheus 2.42 against a luminate
// process: a Prometheus remote-writes into it, one with an expired token is
// refused without disturbing the first, another tenant sees none of it, a
// Prometheus reads data only Luminate holds through remote_read, and
// promtool queries Luminate.
func TestPrometheusEndToEnd(t *testing.T) {
	proctest.Tool(t, "prometheus", proctest.InstallPrometheus)
	promtool := proctest.Tool(t, "promtool", proctest.InstallPrometheus)
	lum, secret := startAuthLuminate(t)
	dir := t.TempDir()
	now := time.Now()
	token, tokenFile := e2eTokenFile(t, secret, dir, "acme.token", "acme", now, time.Hour, tenancy.ScopeWrite, tenancy.ScopeRead)
	_, expiredFile := e2eTokenFile(t, secret, dir, "expired.token", "acme", now.Add(-2*time.Hour), time.Hour, tenancy.ScopeWrite)
	readToken, readFile := e2eTokenFile(t, secret, dir, "read.token", "acme", now, time.Hour, tenancy.ScopeRead)
	otherToken, _ := e2eTokenFile(t, secret, dir, "other.token", "other", now, time.Hour, tenancy.ScopeRead)
	// /metrics is the operator's; the token goes as the password of basic
	// auth, which Luminate accepts for clients that can send only that.
	operatorToken, _ := e2eTokenFile(t, secret, dir, "operator.token", "ops", now, time.Hour, tenancy.ScopeOperator)
	lumMetrics := "http://ops:" + operatorToken + "@" + lum.addr + "/metrics"

	// The three Prometheus servers start together; each takes a while.
	writerAddr, expiredAddr, readerAddr := proctest.FreeAddr(t), proctest.FreeAddr(t), proctest.FreeAddr(t)
	writer := startPrometheus(t, "writer", writerAddr, writerConfig(writerAddr, lum.url("/api/v1/write"), tokenFile))
	expired := startPrometheus(t, "expired", expiredAddr, writerConfig(expiredAddr, lum.url("/api/v1/write"), expiredFile))
	reader := startPrometheus(t, "reader", readerAddr, fmt.Sprintf(`
remote_read:
  - url: %q
    read_recent: true
    authorization:
      credentials_file: %q
`, lum.url("/api/v1/read"), readFile))
	for _, p := range []*promProc{writer, expired, reader} {
		p.waitReady()
	}

	t.Run("luminate holds the writer's own series", func(t *testing.T) {
		proctest.Eventually(t, 30*time.Second, func() (bool, string) {
			up := instantQuery(t, lum.url(""), token, `up{job="prometheus"}`)
			info := instantQuery(t, lum.url(""), token, `prometheus_build_info{job="prometheus"}`)
			return len(up) == 1 && len(info) == 1, fmt.Sprintf("up: %v, build info: %v", up, info)
		}, "Prometheus' series in Luminate")
		up := instantQuery(t, lum.url(""), token, `up{job="prometheus"}`)
		require.Equal(t, model.LabelValue(writerAddr), up[0].Metric["instance"], "only the writer's data, never the expired one's")
		require.Equal(t, model.SampleValue(1), up[0].Value)
		info := instantQuery(t, lum.url(""), token, `prometheus_build_info{job="prometheus"}`)
		require.True(t, strings.HasPrefix(string(info[0].Metric["version"]), "2."), "%v", info[0].Metric)

		// Every series the writer holds reaches Luminate: a snapshot of the
		// writer's own series is eventually all in Luminate.
		want := seriesOf(t, writer.url(""), "", `{job="prometheus"}`)
		require.Greater(t, len(want), 100, "Prometheus exposes hundreds of its own series")
		proctest.Eventually(t, 30*time.Second, func() (bool, string) {
			got := map[string]bool{}
			for _, m := range seriesOf(t, lum.url(""), token, `{job="prometheus"}`) {
				require.NotContains(t, m, model.LabelName(tenancy.Label))
				got[m.String()] = true
			}
			missing := 0
			example := ""
			for _, m := range want {
				if !got[m.String()] {
					missing++
					example = m.String()
				}
			}
			return missing == 0, fmt.Sprintf("%d of %d series missing, e.g. %s", missing, len(want), example)
		}, "the writer's series in Luminate")
	})

	t.Run("an expired token is refused while the writer keeps flowing", func(t *testing.T) {
		before := latestTimestamp(t, lum.url(""), token, fmt.Sprintf(`up{instance=%q}`, writerAddr))
		proctest.Eventually(t, 30*time.Second, func() (bool, string) {
			expiredFailures, _ := metricValue(t, lumMetrics, "luminate_auth_failures_total", map[string]string{"reason": "expired"})
			failed, _ := metricValue(t, expired.url("/metrics"), "prometheus_remote_storage_samples_failed_total", nil)
			return expiredFailures > 0 && failed > 0, fmt.Sprintf("luminate expired-token failures %v, samples the expired-token prometheus failed to send %v", expiredFailures, failed)
		}, "the expired token refused")
		require.Contains(t, expired.Out.String(), "401", "Prometheus logs the refusal")
		proctest.Eventually(t, 30*time.Second, func() (bool, string) {
			after := latestTimestamp(t, lum.url(""), token, fmt.Sprintf(`up{instance=%q}`, writerAddr))
			return after > before, fmt.Sprintf("latest sample at %v, before %v", after, before)
		}, "new samples from the writer")
		failed, _ := metricValue(t, writer.url("/metrics"), "prometheus_remote_storage_samples_failed_total", nil)
		require.Zero(t, failed, "the writer never failed a sample")
		require.Empty(t, seriesOf(t, lum.url(""), token, fmt.Sprintf(`{instance=%q}`, expiredAddr)))
	})

	t.Run("another tenant sees none of it", func(t *testing.T) {
		require.Empty(t, instantQuery(t, lum.url(""), otherToken, `up`))
		require.Empty(t, seriesOf(t, lum.url(""), otherToken, `{job="prometheus"}`))
		status, body := apiGet(t, lum.url(""), "/api/v1/label/__name__/values", otherToken)
		require.Equal(t, http.StatusOK, status, string(body))
		require.JSONEq(t, `{"status":"success","data":[]}`, string(body))
	})

	// Samples only Luminate holds, under a name no Prometheus scraped.
	const onlyInLuminate = "e2e_luminate_only"
	ts := []int64{now.Add(-40 * time.Second).UnixMilli(), now.Add(-20 * time.Second).UnixMilli(), now.UnixMilli()}
	var items []string
	for i, ms := range ts {
		items = append(items, fmt.Sprintf(`{"name":%q,"dimensions":{"job":"native","source":"e2e"},"value":%d.5,"timestamp":%d}`, onlyInLuminate, 40+i, ms))
	}
	req, err := http.NewRequest(http.MethodPost, lum.url("/api/v1/metrics"), strings.NewReader(`{"metrics":[`+strings.Join(items, ",")+`]}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	require.Contains(t, string(b), `"accepted":3`)
	at := strconv.FormatFloat(float64(ts[2])/1000, 'f', 3, 64)
	start := strconv.FormatFloat(float64(ts[0])/1000, 'f', 3, 64)

	t.Run("prometheus reads through remote_read what only luminate holds", func(t *testing.T) {
		// The reader has no scrape configuration: what it answers comes from Luminate.
		v := instantQuery(t, reader.url(""), "", onlyInLuminate)
		require.Len(t, v, 1, "%v", v)
		require.Equal(t, model.Metric{"__name__": onlyInLuminate, "job": "native", "source": "e2e"}, v[0].Metric)
		require.Equal(t, model.SampleValue(42.5), v[0].Value)

		status, body := apiGet(t, reader.url(""), "/api/v1/query_range?"+url.Values{
			"query": {onlyInLuminate}, "start": {start}, "end": {at}, "step": {"20s"},
		}.Encode(), "")
		require.Equal(t, http.StatusOK, status, string(body))
		require.Equal(t, []point{{ts[0], "40.5"}, {ts[1], "41.5"}, {ts[2], "42.5"}}, matrixPoints(t, body), string(body))

		// The reader's own TSDB holds none of it.
		local, _ := metricValue(t, reader.url("/metrics"), "prometheus_tsdb_head_series", nil)
		require.Zero(t, local)
	})

	t.Run("promtool query range", func(t *testing.T) {
		out := runTool(t, promtool, "query", "range", "-o", "json", "--header=Authorization=Bearer "+readToken,
			"--start="+start, "--end="+at, "--step=20s", lum.url("/"), onlyInLuminate)
		var m model.Matrix
		require.NoError(t, json.Unmarshal([]byte(out), &m), out)
		require.Len(t, m, 1, out)
		require.Equal(t, model.LabelValue("e2e"), m[0].Metric["source"])
		var got []float64
		for _, p := range m[0].Values {
			got = append(got, float64(p.Value))
		}
		require.Equal(t, []float64{40.5, 41.5, 42.5}, got)
	})

	t.Run("promtool query instant", func(t *testing.T) {
		// promtool 2.42's query instant has neither --header nor
		// --http.config.file (both came in later releases); it sends the
		// token as the basic-auth password of the server URL, which
		// Luminate accepts like a bearer token.
		target, err := url.Parse(lum.url("/"))
		require.NoError(t, err)
		target.User = url.UserPassword("e2e", readToken)

		out := runTool(t, promtool, "query", "instant", "-o", "json", "--time="+at, target.String(), onlyInLuminate)
		var v model.Vector
		require.NoError(t, json.Unmarshal([]byte(out), &v), out)
		require.Len(t, v, 1, out)
		require.Equal(t, model.SampleValue(42.5), v[0].Value)
		require.Equal(t, model.LabelValue("native"), v[0].Metric["job"])

		// Without the token Luminate refuses promtool.
		cmd := exec.Command(promtool, "query", "instant", lum.url("/"), onlyInLuminate)
		b, err := cmd.CombinedOutput()
		require.Error(t, err)
		require.Contains(t, string(b), "401", string(b))
	})
}

// latestTimestamp is the newest sample timestamp (ms) of the series of
// expr in the last minute, 0 when there is none.
func latestTimestamp(t *testing.T, base, token, expr string) int64 {
	t.Helper()
	v := instantQuery(t, base, token, "timestamp("+expr+")")
	var latest int64
	for _, s := range v {
		latest = max(latest, int64(float64(s.Value)*1000))
	}
	return latest
}

// point is a sample of a range query answer: milliseconds and the value
// as rendered.
type point struct {
	ms    int64
	value string
}

// matrixPoints returns the points of the single series of a range query
// answer.
func matrixPoints(t *testing.T, body []byte) []point {
	t.Helper()
	var r struct {
		Data struct {
			Result []struct {
				Values [][2]any `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &r))
	require.Len(t, r.Data.Result, 1)
	var out []point
	for _, p := range r.Data.Result[0].Values {
		sec, ok1 := p[0].(float64)
		v, ok2 := p[1].(string)
		require.True(t, ok1 && ok2, "%v", p)
		out = append(out, point{int64(math.Round(sec * 1000)), v})
	}
	return out
}

// buildBench builds cmd/luminate-bench into a temporary directory. go test
// puts the go command of its toolchain first on PATH.
func buildBench(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build luminate-bench with: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "luminate-bench")
	out, err := exec.Command(goBin, "build", "-o", bin, "github.com/luminate-io/luminate/cmd/luminate-bench").CombinedOutput()
	require.NoError(t, err, string(out))
	return bin
}

// TestLuminateBench runs the load generator against a luminate process
// and checks that what it reports is what Luminate stored.
func TestLuminateBench(t *testing.T) {
	bench := buildBench(t)
	lum, secret := startAuthLuminate(t)
	dir := t.TempDir()
	token, tokenFile := e2eTokenFile(t, secret, dir, "bench.token", "bench", time.Now(), time.Hour, tenancy.ScopeWrite, tenancy.ScopeRead)

	type report struct {
		Mode             string         `json:"mode"`
		Requests         int            `json:"requests"`
		Failed           int            `json:"failed"`
		Samples          int64          `json:"samples"`
		SamplesPerSecond float64        `json:"samplesPerSecond"`
		LatencyMs        map[string]any `json:"latencyMs"`
		Errors           map[string]int `json:"errors"`
	}
	runBench := func(t *testing.T, wantCode int, args ...string) report {
		t.Helper()
		cmd := exec.Command(bench, append([]string{"--url=" + lum.url("/api/v1/write"), "--output=json", "--series=2000", "--batch=500", "--workers=2"}, args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.Equal(t, wantCode, cmd.ProcessState.ExitCode(), "%v\nstdout: %s\nstderr: %s", err, out, stderr.String())
		var r report
		require.NoError(t, json.Unmarshal(out, &r), string(out))
		return r
	}
	count := func(t *testing.T, expr string) float64 {
		t.Helper()
		v := instantQuery(t, lum.url(""), token, expr)
		if len(v) == 0 {
			return 0
		}
		require.Len(t, v, 1)
		return float64(v[0].Value)
	}

	t.Run("steady", func(t *testing.T) {
		r := runBench(t, 0, "--token-file="+tokenFile, "--mode=steady", "--rounds=2", "--seed=1")
		require.Equal(t, report{Mode: "steady", Requests: 8, Samples: 4000}, report{Mode: r.Mode, Requests: r.Requests, Failed: r.Failed, Samples: r.Samples})
		require.Positive(t, r.SamplesPerSecond)
		require.Contains(t, r.LatencyMs, "p99")
		// The warm-up round and the two measured rounds: 2,000 series with
		// three samples each, half of them counters.
		require.Equal(t, 2000.0, count(t, `count({__name__=~"bench_metric_.+"})`))
		require.Equal(t, 1000.0, count(t, `count({__name__=~"bench_metric_.+_total"})`))
		require.Equal(t, 6000.0, count(t, `sum(count_over_time({__name__=~"bench_metric_.+"}[5m]))`))
		require.Equal(t, 20.0, count(t, `count(count by (job) ({__name__=~"bench_metric_.+"}))`))
	})
	t.Run("create", func(t *testing.T) {
		r := runBench(t, 0, "--token-file="+tokenFile, "--mode=create", "--rounds=2", "--seed=2")
		require.Equal(t, 4000, int(r.Samples))
		require.Equal(t, 6000.0, count(t, `count({__name__=~"bench_metric_.+"})`), "2,000 series before and 2,000 new in each round")
	})
	t.Run("native histograms, remote write 1.0 and 2.0", func(t *testing.T) {
		for i, proto := range []string{"1.0", "2.0"} {
			r := runBench(t, 0, "--token-file="+tokenFile, "--kind=histogram", "--protocol="+proto, "--series=200", "--rounds=2", fmt.Sprintf("--seed=%d", 4+i))
			require.Equal(t, 400, int(r.Samples), proto)
		}
		// 2 series of each of the 100 names per run, 3 histograms each (the
		// warm-up round and 2 measured).
		require.Equal(t, 400.0, count(t, `count({__name__=~"bench_histogram_.+"})`))
		require.Equal(t, 12.0, count(t, `sum(count_over_time(bench_histogram_042_seconds[5m]))`))
		require.Equal(t, 4.0, count(t, `count(histogram_count(bench_histogram_042_seconds) > 0)`))
	})
	t.Run("refusals are reported", func(t *testing.T) {
		r := runBench(t, 1, "--mode=create", "--rounds=1", "--seed=3") // no token
		require.Equal(t, 4, r.Requests)
		require.Equal(t, 4, r.Failed)
		require.Zero(t, r.Samples)
		require.Equal(t, map[string]int{"HTTP 401": 4}, r.Errors)

		// In steady mode a failed warm-up ends the run before measuring.
		out, err := exec.Command(bench, "--url="+lum.url("/api/v1/write"), "--series=10", "--rounds=1").CombinedOutput()
		require.Error(t, err)
		require.Contains(t, string(out), "warm-up: 1 of 1 requests failed; first: HTTP 401")
	})
}
