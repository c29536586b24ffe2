package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/internal/proctest"
	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
	"github.com/luminate-io/luminate/tenancy"
)

// The HA fail-over of the end-to-end test: short, so that the test is.
const (
	haFailover = 3 * time.Second
	haUpdate   = time.Second
	haScrape   = time.Second
	// Each scrape sent at once: the standby's first samples after the
	// fail-over are then those of the scrape before the request that
	// won, and the gap at most the fail-over timeout, one scrape interval
	// and this (docs/operations.md, "HA pairs").
	haSendDeadline  = 100 * time.Millisecond
	haWatchAfterWin = 6 * time.Second // each phase: replica elected, then fail-over
)

// TestHAPairEndToEnd runs an HA pair: two real Prometheus servers scrape
// the same target every second with the external labels cluster=c1 and
// __replica__=r1 or r2 and remote-write it to Luminate, whose tenant
// accepts HA samples. The elected one is killed. Luminate must hold one
// series for the target (no __replica__), every sample of it from the
// replica elected at its time (zero duplicates), and no gap longer than
// the fail-over timeout plus one scrape interval.
//
// On Badger one Luminate takes both; on ClickHouse each Prometheus writes
// to its own Luminate pod, the two sharing one database, and so the
// election.
func TestHAPairEndToEnd(t *testing.T) {
	proctest.Tool(t, "prometheus", proctest.InstallPrometheus)
	haFlags := []string{"--limits.accept-ha-samples", "--ha.failover-timeout=" + haFailover.String(), "--ha.update-timeout=" + haUpdate.String()}

	t.Run("badger", func(t *testing.T) {
		lum, secret := startAuthLuminate(t, haFlags...)
		runHAPair(t, secret, lum, lum)
	})
	t.Run("clickhouse two pods", func(t *testing.T) {
		dsn := chtest.Start(t)
		dir := t.TempDir()
		secret := filepath.Join(dir, "hmac.secret")
		_, err := tenancy.EnsureDevSecret(secret)
		require.NoError(t, err)
		pod := func() *proc {
			p := start(t, append([]string{"serve", "--log.format=json", "--http.listen-address=127.0.0.1:0",
				"--storage.backend=clickhouse", "--storage.clickhouse.dsn=" + dsn, "--storage.clickhouse.database=ha_e2e",
				"--storage.clickhouse.flush-interval=200ms", "--auth.jwt.hmac-secret-file=" + secret}, haFlags...)...)
			require.NotEmpty(t, p.addr, p.stderr())
			p.WaitReady(t, p.url("/-/ready"), waitTimeout)
			return p
		}
		a := pod()
		runHAPair(t, secret, a, pod())
	})
}

// runHAPair runs the HA pair r1 writing to lumA, r2 to lumB (the same
// process on Badger), kills the elected one and checks what Luminate
// holds.
func runHAPair(t *testing.T, secret string, lumA, lumB *proc) {
	dir := t.TempDir()
	token, tokenFile := e2eTokenFile(t, secret, dir, "acme.token", "acme", time.Now(), time.Hour, tenancy.ScopeWrite, tenancy.ScopeRead)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintln(w, "# TYPE ha_e2e_gauge gauge\nha_e2e_gauge 1")
	}))
	t.Cleanup(target.Close)
	targetAddr := strings.TrimPrefix(target.URL, "http://")

	proms := map[string]*promProc{}
	for replica, lum := range map[string]*proc{"r1": lumA, "r2": lumB} {
		addr := proctest.FreeAddr(t)
		proms[replica] = startPrometheus(t, replica, addr, fmt.Sprintf(`
global:
  scrape_interval: %s
  scrape_timeout: %s
  external_labels:
    cluster: c1
    __replica__: %s
scrape_configs:
  - job_name: ha
    static_configs:
      - targets: [%q]
remote_write:
  - url: %q
    authorization:
      credentials_file: %q
    queue_config:
      batch_send_deadline: %s
      min_backoff: 100ms
      max_backoff: 1s
`, haScrape, haScrape, replica, targetAddr, lum.url("/api/v1/write"), tokenFile, haSendDeadline))
	}
	for _, p := range proms {
		p.waitReady()
	}

	// The first replica to write is elected.
	line := lumA.waitLog(`"msg":"HA replica elected"`)
	if lumB != lumA {
		if l := lumB.waitLog(`"msg":"HA replica elected"`); l < line { // both pods log it; take either
			line = l
		}
	}
	var elected struct{ Replica string }
	require.NoError(t, json.Unmarshal([]byte(line), &elected), line)
	survivor := map[string]string{"r1": "r2", "r2": "r1"}[elected.Replica]
	require.NotEmpty(t, survivor, line)
	t.Logf("elected %s; %s is the standby", elected.Replica, survivor)
	proctest.Eventually(t, 30*time.Second, func() (bool, string) {
		v := instantQuery(t, lumA.url(""), token, `ha_e2e_gauge`)
		return len(v) == 1, fmt.Sprintf("%v", v)
	}, "the target's series in Luminate")
	time.Sleep(haWatchAfterWin)

	// Kill the elected one, with what its local TSDB holds (every sample
	// it scraped) read just before.
	killedLocal := promTimestamps(t, proms[elected.Replica].url(""), "")
	killedAt := time.Now()
	proms[elected.Replica].Kill()
	t.Logf("killed %s at %s", elected.Replica, killedAt.Format(time.RFC3339Nano))

	failover := lumA
	if survivor == "r2" {
		failover = lumB
	}
	line = failover.waitLog(`"msg":"HA fail-over"`)
	t.Logf("fail-over: %s (%s after the kill)", line, time.Since(killedAt).Round(time.Millisecond))
	time.Sleep(haWatchAfterWin)
	survivorLocal := promTimestamps(t, proms[survivor].url(""), "")

	// What Luminate holds: one series, no replica label.
	var got map[string][]int64
	proctest.Eventually(t, 30*time.Second, func() (bool, string) {
		got = promSamples(t, lumA.url(""), token)
		last := int64(0)
		for _, ts := range got {
			last = max(last, ts[len(ts)-1])
		}
		return last >= survivorLocal[len(survivorLocal)-1]-2000, fmt.Sprintf("%d series, last sample at %d", len(got), last)
	}, "the survivor's samples in Luminate")
	require.Len(t, got, 1, "one series for the target: %v", got)
	for lset := range got {
		require.NotContains(t, lset, "__replica__")
		require.Contains(t, lset, `cluster="c1"`)
	}
	var stored []int64
	for _, ts := range got {
		stored = ts
	}

	// Every stored sample is one of a replica's; none of the standby's
	// while the killed one was elected, none of the killed one's after.
	fromKilled, fromSurvivor := set(killedLocal), set(survivorLocal)
	var lastKilled, firstSurvivor int64 = math.MinInt64, math.MaxInt64
	foreign, doubled := 0, 0
	for i, ts := range stored {
		if i > 0 && ts == stored[i-1] {
			doubled++
		}
		switch {
		case fromKilled[ts] && fromSurvivor[ts]: // both scraped at the same millisecond: either
		case fromKilled[ts]:
			lastKilled = max(lastKilled, ts)
		case fromSurvivor[ts]:
			firstSurvivor = min(firstSurvivor, ts)
		default:
			foreign++
		}
	}
	duplicates := 0
	for _, ts := range stored {
		if fromSurvivor[ts] && !fromKilled[ts] && ts < lastKilled || fromKilled[ts] && !fromSurvivor[ts] && ts > firstSurvivor {
			duplicates++
		}
	}
	gap, gapAt := int64(0), int64(0)
	for i := 1; i < len(stored); i++ {
		if d := stored[i] - stored[i-1]; d > gap {
			gap, gapAt = d, stored[i-1]
		}
	}
	t.Logf("TARGET: %d samples stored from %d to %d; duplicates %d (doubled timestamps %d, samples of no replica %d); longest gap %s after %s (fail-over timeout %s + scrape interval %s = %s)",
		len(stored), stored[0], stored[len(stored)-1], duplicates, doubled, foreign,
		time.Duration(gap)*time.Millisecond, time.UnixMilli(gapAt).Format(time.RFC3339Nano), haFailover, haScrape, haFailover+haScrape)
	require.Zero(t, foreign, "samples stored that neither replica scraped")
	require.Zero(t, doubled)
	require.Zero(t, duplicates, "samples of the replica not elected at their time")
	require.NotEqual(t, int64(math.MinInt64), lastKilled, "no sample of the killed replica")
	require.NotEqual(t, int64(math.MaxInt64), firstSurvivor, "no sample of the survivor")
	require.LessOrEqual(t, time.Duration(gap)*time.Millisecond, haFailover+haScrape+haSendDeadline, "longest gap")

	// The standby never failed a sample: 202 is a success to it.
	failed, _ := metricValue(t, proms[survivor].url("/metrics"), "prometheus_remote_storage_samples_failed_total", nil)
	require.Zero(t, failed)
}

func set(ts []int64) map[int64]bool {
	m := make(map[int64]bool, len(ts))
	for _, t := range ts {
		m[t] = true
	}
	return m
}

// promSamples returns the raw sample timestamps of ha_e2e_gauge in the
// last 10 minutes on the Prometheus API at base, by series.
func promSamples(t *testing.T, base, token string) map[string][]int64 {
	t.Helper()
	status, body := apiGet(t, base, "/api/v1/query?"+url.Values{"query": {"ha_e2e_gauge[10m]"}}.Encode(), token)
	require.Equal(t, http.StatusOK, status, string(body))
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &r), string(body))
	out := map[string][]int64{}
	for _, s := range r.Data.Result {
		var names []string
		for k, v := range s.Metric {
			names = append(names, k+"="+strconv.Quote(v))
		}
		slices.Sort(names)
		var ts []int64
		for _, p := range s.Values {
			sec, ok := p[0].(float64)
			require.True(t, ok, "%v", p)
			ts = append(ts, int64(math.Round(sec*1000)))
		}
		out["{"+strings.Join(names, ", ")+"}"] = ts
	}
	return out
}

// promTimestamps returns the timestamps of the single ha_e2e_gauge
// series on the Prometheus API at base.
func promTimestamps(t *testing.T, base, token string) []int64 {
	t.Helper()
	got := promSamples(t, base, token)
	require.Len(t, got, 1, "%v", got)
	for _, ts := range got {
		return ts
	}
	return nil
}
