package main

// The comparison `make bench` runs: the same load against luminate and
// against Debian's Prometheus 2.42 in the same run, on the same machine.
// It is a test only so that it can reuse the process harness; it asserts
// nothing about speed and is skipped unless LUMINATE_BENCH_COMPARE=1.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/internal/proctest"
	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
	"github.com/luminate-io/luminate/tenancy"
)

// Environment of the comparison.
const (
	envBenchCompare = "LUMINATE_BENCH_COMPARE" // "1" runs it
	envBenchSeries  = "BENCH_SERIES"           // active series of the ingest runs (100000)
	envBenchRepeat  = "BENCH_REPEAT"           // runs per mode and server (3)
	envBenchQueries = "BENCH_QUERY_SERIES"     // series of the query comparison (10000; 0 skips it)
	envBenchHours   = "BENCH_QUERY_HOURS"      // hours of data of the query comparison (24)
	envBenchIngest  = "BENCH_INGEST"           // "0" skips the ingest comparison
	envBenchPprof   = "BENCH_PPROF"            // a directory: CPU profiles of luminate's ingest runs go there
	envBenchFlags   = "BENCH_FLAGS"            // more luminate serve flags, space separated
)

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	require.NoError(t, err, "%s=%q", name, s)
	return n
}

// benchTarget is a server under test: where to write, where to query, and
// the token to send (none for Prometheus).
type benchTarget struct {
	name  string
	base  string // http://host:port
	token string
	pid   int // of the server process
	// storePid is the ClickHouse server's process behind a luminate on
	// that backend, else 0.
	storePid int
}

// startBenchLuminate starts a luminate on an empty Badger store (or, with
// BENCH_BACKEND=clickhouse, on a fresh ClickHouse server), stopped at the
// end of t, with a token file for tenant "bench"; extra are more serve
// flags.
func startBenchLuminate(t *testing.T, extra ...string) (benchTarget, string) {
	t.Helper()
	// Lift the per-tenant limits that would cap the load; everything else
	// is the default configuration.
	args := []string{
		"--limits.ingestion-rate=0", "--limits.request-rate=0", "--limits.max-active-series=0",
		"--limits.max-samples-per-query=0", "--limits.max-series-per-query=0",
	}
	storePid := 0
	if os.Getenv("BENCH_BACKEND") == "clickhouse" {
		// A ClickHouse server of its own on this machine, as in production
		// (Luminate stateless, ClickHouse holding the data).
		ch := chtest.New(t)
		storePid = ch.Pid()
		args = append(args, "--storage.backend=clickhouse", "--storage.clickhouse.dsn="+ch.DSN())
	}
	args = append(args, extra...)
	args = append(args, strings.Fields(os.Getenv(envBenchFlags))...)
	scopes := []tenancy.Scope{tenancy.ScopeWrite, tenancy.ScopeRead}
	if os.Getenv(envBenchPprof) != "" {
		args = append(args, "--debug.pprof")
		scopes = append(scopes, tenancy.ScopeAdmin, tenancy.ScopeOperator)
	}
	lum, secret := startAuthLuminate(t, args...)
	token, file := e2eTokenFile(t, secret, t.TempDir(), "bench.token", "bench", time.Now(), 24*time.Hour, scopes...)
	return benchTarget{name: "luminate", base: lum.url(""), token: token, pid: lum.Cmd.Process.Pid, storePid: storePid}, file
}

// startBenchPrometheus starts Prometheus 2.42 with the remote-write
// receiver on an empty TSDB, scraping nothing, stopped at the end of t.
func startBenchPrometheus(t *testing.T) (benchTarget, *promProc) {
	t.Helper()
	p := startPrometheus(t, "bench", proctest.FreeAddr(t), "global:\n  scrape_interval: 1m\n", "--web.enable-remote-write-receiver")
	p.waitReady()
	return benchTarget{name: "prometheus", base: p.url(""), pid: p.Cmd.Process.Pid}, p
}

// benchReport is what luminate-bench --output=json prints.
type benchReport struct {
	Requests         int                `json:"requests"`
	Failed           int                `json:"failed"`
	Samples          int64              `json:"samples"`
	DurationSeconds  float64            `json:"durationSeconds"`
	SamplesPerSecond float64            `json:"samplesPerSecond"`
	LatencyMs        map[string]float64 `json:"latencyMs"`
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func TestBenchCompare(t *testing.T) {
	if os.Getenv(envBenchCompare) != "1" {
		t.Skipf("the luminate vs Prometheus comparison runs with %s=1 (make bench)", envBenchCompare)
	}
	proctest.Tool(t, "prometheus", proctest.InstallPrometheus)
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 4, 2, ' ', 0)
	defer func() {
		require.NoError(t, tw.Flush())
		t.Logf("machine: %d CPUs (shared with whatever else runs), %s\n%s", runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339), table.String())
	}()
	ingest := os.Getenv(envBenchIngest) != "0"
	if ingest {
		benchIngest4(t, tw)
	}
	if n := envInt(t, envBenchLongSeries, 2000); n > 0 {
		fmt.Fprintf(tw, "\n")
		t.Run("longrange", func(t *testing.T) { benchLongRange(t, tw, n) })
	}
	if n := envInt(t, envBenchDiskSeries, 10_000); n > 0 {
		fmt.Fprintf(tw, "\n")
		benchDisk(t, tw, n)
	}
	if n := envInt(t, envBenchQueries, 10_000); n > 0 {
		fmt.Fprintf(tw, "\n")
		benchQueries(t, tw, n, time.Duration(envInt(t, envBenchHours, 24))*time.Hour)
	}
	if n := envInt(t, envBenchHistSeries, 5000); n > 0 {
		fmt.Fprintf(tw, "\n")
		benchHistograms(t, tw, n)
	}
	if n := envInt(t, envBenchOTLPSeries, 100_000); n > 0 {
		fmt.Fprintf(tw, "\n")
		benchOTLP(t, tw, n)
	}
}

// Shape of the query comparison data: a counter scraped every 30s (for
// BENCH_QUERY_HOURS), on instances spread over 10 jobs.
const (
	queryMetric   = "http_requests_total"
	queryInterval = 30 * time.Second
	queryWindow   = 30 * time.Minute // samples per series per request: 60
	queryJobs     = 10
)

// benchQueries loads the same data into a luminate and a Prometheus, then
// times dashboard queries on both, interleaved, and writes the medians.
func benchQueries(t *testing.T, tw *tabwriter.Writer, series int, span time.Duration) {
	lum, _ := startBenchLuminate(t)
	prom, promProc := startBenchPrometheus(t)
	end := time.Now().Truncate(queryInterval)
	begin := end.Add(-span)

	t0 := time.Now()
	loadQueryData(t, series, begin, end, lum, prom)
	t.Logf("loaded %d series x %s at %s into both in %s", series, span, queryInterval, time.Since(t0).Round(time.Second))

	// Prometheus compacts its head into blocks once it spans more than 3h;
	// wait for that so it does not run during the measurements.
	proctest.Eventually(t, 10*time.Minute, func() (bool, string) {
		lo, _ := metricValue(t, promProc.url("/metrics"), "prometheus_tsdb_head_min_time", nil)
		hi, _ := metricValue(t, promProc.url("/metrics"), "prometheus_tsdb_head_max_time", nil)
		return time.Duration(hi-lo)*time.Millisecond <= 3*time.Hour, fmt.Sprintf("head spans %s", time.Duration(hi-lo)*time.Millisecond)
	}, "Prometheus head compaction")
	proctest.Eventually(t, 10*time.Minute, func() (bool, string) {
		before, _ := metricValue(t, promProc.url("/metrics"), "prometheus_tsdb_compactions_total", nil)
		time.Sleep(5 * time.Second)
		after, _ := metricValue(t, promProc.url("/metrics"), "prometheus_tsdb_compactions_total", nil)
		return before == after, fmt.Sprintf("%v compactions, then %v", before, after)
	}, "Prometheus compactions settled")

	ts := func(tm time.Time) string { return strconv.FormatInt(tm.Unix(), 10) }
	repeat := envInt(t, envBenchRepeat, 3)*2 + 1
	fmt.Fprintf(tw, "query (%d series, %s of data)\tluminate median ms\tprometheus median ms\tratio\tresults\truns\t\n", series, span)
	for _, q := range []struct {
		name  string
		path  string
		needs time.Duration // of data: longer ranges than loaded are left out
	}{
		{"sum by (job) (rate[5m]) 1h step 30s", "/api/v1/query_range?" + url.Values{"query": {"sum by (job) (rate(" + queryMetric + "[5m]))"}, "start": {ts(end.Add(-time.Hour))}, "end": {ts(end)}, "step": {"30"}}.Encode(), time.Hour},
		{"sum by (job) (rate[5m]) 6h step 30s", "/api/v1/query_range?" + url.Values{"query": {"sum by (job) (rate(" + queryMetric + "[5m]))"}, "start": {ts(end.Add(-6 * time.Hour))}, "end": {ts(end)}, "step": {"30"}}.Encode(), 6 * time.Hour},
		{"sum by (job) (rate[5m]) 24h step 60s", "/api/v1/query_range?" + url.Values{"query": {"sum by (job) (rate(" + queryMetric + "[5m]))"}, "start": {ts(end.Add(-24 * time.Hour))}, "end": {ts(end)}, "step": {"60"}}.Encode(), 24 * time.Hour},
		{"label values instance, match[] one job, last 1h", "/api/v1/label/instance/values?" + url.Values{"match[]": {queryMetric + `{job="job-3"}`}, "start": {ts(end.Add(-time.Hour))}, "end": {ts(end)}}.Encode(), time.Hour},
		{"label values job, match[] metric, last 1h", "/api/v1/label/job/values?" + url.Values{"match[]": {queryMetric}, "start": {ts(end.Add(-time.Hour))}, "end": {ts(end)}}.Encode(), time.Hour},
		{`count({__name__=~"http_.*"})`, "/api/v1/query?" + url.Values{"query": {`count({__name__=~"http_.*"})`}, "time": {ts(end)}}.Encode(), 0},
	} {
		if q.needs > span {
			continue
		}
		// One untimed run each warms caches, as on a dashboard reloaded.
		bodies := map[string][]byte{}
		for _, target := range []benchTarget{lum, prom} {
			_, bodies[target.name] = timedGet(t, target, q.path)
		}
		same := sameResults(t, bodies["luminate"], bodies["prometheus"])
		lat := map[string][]float64{}
		for i := range repeat {
			order := []benchTarget{lum, prom}
			if i%2 == 1 {
				slices.Reverse(order)
			}
			for _, target := range order {
				d, _ := timedGet(t, target, q.path)
				lat[target.name] = append(lat[target.name], float64(d.Microseconds())/1000)
			}
		}
		l, p := median(lat["luminate"]), median(lat["prometheus"])
		t.Logf("%s: luminate %v ms, prometheus %v ms", q.name, lat["luminate"], lat["prometheus"])
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.2f\t%s\t%d\t\n", q.name, l, p, l/p, same, repeat)
	}
}

// timedGet sends GET path to target, requires a 200 and returns how long
// the whole answer took and its body.
func timedGet(t *testing.T, target benchTarget, path string) (time.Duration, []byte) {
	t.Helper()
	start := time.Now()
	status, body := apiGet(t, target.base, path, target.token)
	d := time.Since(start)
	require.Equal(t, http.StatusOK, status, "%s %s: %s", target.name, path, body)
	return d, body
}

// sameResults compares two answers of the Prometheus HTTP API: "same" when
// they hold the same series with the same values (floats within 1e-9
// relative), otherwise what differs.
func sameResults(t *testing.T, a, b []byte) string {
	t.Helper()
	norm := func(body []byte) map[string][][2]any {
		var r struct {
			Data json.RawMessage `json:"data"`
		}
		require.NoError(t, json.Unmarshal(body, &r))
		var qr struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		}
		out := map[string][][2]any{}
		if err := json.Unmarshal(r.Data, &qr); err != nil { // a label values answer
			var values []string
			require.NoError(t, json.Unmarshal(r.Data, &values))
			for _, v := range values {
				out[v] = nil
			}
			return out
		}
		for _, s := range qr.Result {
			key, _ := json.Marshal(s.Metric)
			if s.Values == nil {
				s.Values = [][2]any{s.Value}
			}
			out[string(key)] = s.Values
		}
		return out
	}
	x, y := norm(a), norm(b)
	if len(x) != len(y) {
		return fmt.Sprintf("%d vs %d series", len(x), len(y))
	}
	for k, xs := range x {
		ys, ok := y[k]
		if !ok {
			return "different series"
		}
		if len(xs) != len(ys) {
			return fmt.Sprintf("%s: %d vs %d points", k, len(xs), len(ys))
		}
		for i := range xs {
			if xs[i][0] != ys[i][0] {
				return fmt.Sprintf("%s: point %d at %v vs %v", k, i, xs[i][0], ys[i][0])
			}
			xv, _ := strconv.ParseFloat(fmt.Sprint(xs[i][1]), 64)
			yv, _ := strconv.ParseFloat(fmt.Sprint(ys[i][1]), 64)
			if math.Abs(xv-yv) > 1e-9*math.Max(math.Abs(xv), math.Abs(yv)) {
				return fmt.Sprintf("%s at %v: %v vs %v", k, xs[i][0], xs[i][1], ys[i][1])
			}
		}
	}
	return "same"
}

// loadQueryData remote-writes series counters, one sample per
// queryInterval from begin to end, into every target. It goes window by
// window, in time order, so that Prometheus, which refuses samples more
// than an hour older than its newest, takes them all.
func loadQueryData(t *testing.T, series int, begin, end time.Time, targets ...benchTarget) {
	t.Helper()
	const workers = 2
	perWindow := int(queryWindow / queryInterval)
	perRequest := max(1, 10_000/perWindow) // series per request: 10,000 samples
	client := &http.Client{Timeout: 5 * time.Minute}
	for w := begin; w.Before(end); w = w.Add(queryWindow) {
		var bodies [][]byte
		for lo := 0; lo < series; lo += perRequest {
			req := prompb.WriteRequest{}
			for id := lo; id < min(lo+perRequest, series); id++ {
				ts := prompb.TimeSeries{Labels: []prompb.Label{
					{Name: "__name__", Value: queryMetric},
					{Name: "code", Value: []string{"200", "201", "304", "404", "500"}[id%5]},
					{Name: "instance", Value: fmt.Sprintf("host-%05d:8080", id/5)},
					{Name: "job", Value: fmt.Sprintf("job-%d", id/5%queryJobs)},
				}}
				for k := range perWindow {
					tm := w.Add(time.Duration(k) * queryInterval)
					if !tm.Before(end) {
						break
					}
					n := tm.Sub(begin) / queryInterval
					ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: tm.UnixMilli(), Value: float64(int64(n) * int64(1+id%7))})
				}
				req.Timeseries = append(req.Timeseries, ts)
			}
			raw, err := req.Marshal()
			require.NoError(t, err)
			bodies = append(bodies, snappy.Encode(nil, raw))
		}
		for _, target := range targets {
			var wg sync.WaitGroup
			errs := make([]error, workers)
			for k := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := k; j < len(bodies); j += workers {
						if errs[k] = postWrite(client, target, bodies[j]); errs[k] != nil {
							return
						}
					}
				}()
			}
			wg.Wait()
			for _, err := range errs {
				require.NoError(t, err, "load %s, window %s", target.name, w)
			}
		}
	}
}

func postWrite(client *http.Client, target benchTarget, body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.base+"/api/v1/write", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	if target.token != "" {
		req.Header.Set("Authorization", "Bearer "+target.token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, b.String())
	}
	return nil
}

// processCPU is the user plus system CPU time process pid has used, from
// /proc (Linux), in clock ticks of 1/100 s.
// profileIngest, with BENCH_PPROF set and target a luminate, records a CPU
// profile of its first seconds of ingest into BENCH_PPROF/luminate-NAME.pprof
// (go tool pprof -top FILE). The returned channel closes when it is done.
func profileIngest(t *testing.T, target benchTarget, name string) <-chan struct{} {
	done := make(chan struct{})
	dir := os.Getenv(envBenchPprof)
	if dir == "" || target.name != "luminate" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		req, err := http.NewRequest(http.MethodGet, target.base+"/debug/pprof/profile?seconds=5", nil)
		if err != nil {
			t.Errorf("profile: %v", err)
			return
		}
		req.Header.Set("Authorization", "Bearer "+target.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("profile: %v", err)
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("profile: %d %v %s", resp.StatusCode, err, body)
			return
		}
		path := filepath.Join(dir, "luminate-"+name+".pprof")
		if err := os.WriteFile(path, body, 0o644); err != nil {
			t.Errorf("profile: %v", err)
			return
		}
		t.Logf("CPU profile: %s", path)
	}()
	return done
}

func processCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	d, err := readProcessCPU(pid)
	require.NoError(t, err)
	return d
}

// peakRSS is the peak resident memory of process pid (VmHWM), in MiB.
func peakRSS(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			require.NoError(t, err)
			return kb / 1024
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// benchWorkers is the number of concurrent senders: 2 (issue 3's load)
// unless BENCH_WORKERS says otherwise, e.g. for a backend whose group
// commit gathers concurrent requests.
func benchWorkers() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_WORKERS")); err == nil && n > 0 {
		return n
	}
	return 2
}
