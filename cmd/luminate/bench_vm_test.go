package main

// The VictoriaMetrics part of `make bench` (issue 15): the same
// remote-write payloads into Luminate (Badger), VictoriaMetrics
// single-node, Prometheus 3.x's remote-write receiver and Prometheus 2.42,
// one server at a time on the same machine: steady ingest and series
// creation (samples/s, server CPU per sample, peak RSS), with the
// random-walk value model (every sample changes) next to the integer one.
// The long-range query comparison (a week of data) is in
// bench_longrange_test.go, bytes per sample in bench_disk_test.go.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/internal/proctest"
)

// Environment of the four-way comparison.
const (
	// envVictoriaMetrics is the VictoriaMetrics single-node binary, as
	// scripts/victoriametrics.sh prints it (make bench sets it).
	envVictoriaMetrics = "LUMINATE_VICTORIAMETRICS"
	// envBenchServers picks the servers of the ingest comparison, comma
	// separated (all four: luminate,victoriametrics,prometheus3,prometheus).
	envBenchServers = "BENCH_SERVERS"
	// envBenchCases picks the ingest cases, MODE/VALUES comma separated
	// (steady/random-walk,steady/integer,create/random-walk).
	envBenchCases = "BENCH_CASES"
)

// victoriaMetricsVersion is the version scripts/victoriametrics.sh builds
// by default.
const victoriaMetricsVersion = "1.151.0"

// Names of the servers of the comparison, in the order of the table.
const (
	srvLuminate = "luminate"
	srvVM       = "victoriametrics"
	srvProm3    = "prometheus3"
	srvProm2    = "prometheus"
)

var serverTitles = map[string]string{
	srvLuminate: "luminate (badger)",
	srvVM:       "victoriametrics",
	srvProm3:    "prometheus 3.x",
	srvProm2:    "prometheus 2.42",
}

var serverShort = map[string]string{srvVM: "VM", srvProm3: "P3", srvProm2: "P2.42"}

// victoriaMetrics returns the path of the VictoriaMetrics binary:
// $LUMINATE_VICTORIAMETRICS, else where scripts/victoriametrics.sh caches
// it. Without one the test is skipped.
func victoriaMetrics(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(envVictoriaMetrics); p != "" {
		if !proctest.FileExists(p) {
			t.Fatalf("%s=%s: no such file (run scripts/victoriametrics.sh)", envVictoriaMetrics, p)
		}
		return p
	}
	cache := os.Getenv("LUMINATE_CACHE_DIR")
	if cache == "" {
		if d, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(d, "luminate")
		}
	}
	if p := filepath.Join(cache, "victoriametrics-"+victoriaMetricsVersion, "victoria-metrics"); cache != "" && proctest.FileExists(p) {
		return p
	}
	t.Skipf("VictoriaMetrics not found: set %s=$(scripts/victoriametrics.sh) (it builds it once, a minute or two) or run make bench", envVictoriaMetrics)
	return ""
}

// vmProc is a VictoriaMetrics single-node server of the test.
type vmProc struct {
	*proctest.Proc
	addr string
	dir  string // -storageDataPath
}

func (v *vmProc) url(path string) string { return "http://" + v.addr + path }

// startBenchVM starts VictoriaMetrics single-node on an empty data
// directory, stopped at the end of t. Its limits are lifted so that the
// comparison's queries run (a week of 2,000 series, a count over a million
// series), and its rollup result cache is off so that repeated queries are
// computed, not served from the cache: every server computes every answer.
// Its data becomes searchable at once (-search.latencyOffset=0s).
func startBenchVM(t *testing.T) (benchTarget, *vmProc) {
	t.Helper()
	dir := t.TempDir()
	addr := proctest.FreeAddr(t)
	args := []string{
		"-storageDataPath=" + filepath.Join(dir, "data"),
		"-httpListenAddr=" + addr,
		"-retentionPeriod=100y",
		"-search.disableCache",
		"-search.latencyOffset=0s",
		"-search.maxUniqueTimeseries=100000000",
		"-search.maxSamplesPerQuery=10000000000",
		"-search.maxQueryDuration=10m",
		"-search.maxPointsPerTimeseries=100000",
		"-loggerLevel=WARN",
	}
	p := proctest.Start(t, "victoria-metrics ("+addr+")", exec.Command(victoriaMetrics(t), args...))
	p.Grace = 30 * time.Second
	v := &vmProc{Proc: p, addr: addr, dir: filepath.Join(dir, "data")}
	p.WaitReady(t, v.url("/health"), waitTimeout)
	return benchTarget{name: srvVM, base: v.url(""), pid: p.Cmd.Process.Pid}, v
}

// flush makes everything VictoriaMetrics took searchable and written:
// its in-memory buffers go to parts on disk.
func (v *vmProc) flush(t *testing.T) {
	t.Helper()
	status, body := apiGet(t, v.url(""), "/internal/force_flush", "")
	require.Equal(t, http.StatusOK, status, string(body))
}

// startBenchPrometheus3 starts Prometheus 3.x with the remote-write
// receiver (remote write 1.0, its default) on an empty TSDB, scraping
// nothing, stopped at the end of t.
func startBenchPrometheus3(t *testing.T, flags ...string) (benchTarget, *promProc) {
	t.Helper()
	args := append([]string{"--web.enable-remote-write-receiver", "--storage.tsdb.retention.time=100y"}, flags...)
	p := startPrometheusBin(t, prometheus3(t), "bench3", proctest.FreeAddr(t), "global:\n  scrape_interval: 1m\n", args...)
	p.waitReady()
	return benchTarget{name: srvProm3, base: p.url(""), pid: p.Cmd.Process.Pid}, p
}

// startBenchServer starts server name of the comparison on an empty store
// and returns it and, for luminate, its token file.
func startBenchServer(t *testing.T, name string) (benchTarget, string) {
	t.Helper()
	switch name {
	case srvLuminate:
		return startBenchLuminate(t)
	case srvVM:
		target, _ := startBenchVM(t)
		return target, ""
	case srvProm3:
		target, _ := startBenchPrometheus3(t)
		return target, ""
	case srvProm2:
		target, _ := startBenchPrometheus(t)
		return target, ""
	}
	t.Fatalf("unknown server %q", name)
	return benchTarget{}, ""
}

// benchServers are the servers of the ingest comparison: BENCH_SERVERS or
// all four. Luminate is always one of them (the ratios are its).
func benchServers(t *testing.T) []string {
	all := []string{srvLuminate, srvVM, srvProm3, srvProm2}
	s := os.Getenv(envBenchServers)
	if s == "" {
		return all
	}
	picked := []string{srvLuminate}
	for name := range strings.SplitSeq(s, ",") {
		name = strings.TrimSpace(name)
		require.Contains(t, all, name, "%s=%q: want some of %v", envBenchServers, s, all)
		if !slices.Contains(picked, name) {
			picked = append(picked, name)
		}
	}
	return picked
}

// loadAverage is /proc/loadavg's first three fields.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// warmupWatch is luminate-bench's stderr: it keeps it and calls at once,
// when the line reporting the end of the warm-up round arrives.
type warmupWatch struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	at   func()
	seen bool
}

func (w *warmupWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.seen && bytes.Contains(w.buf.Bytes(), []byte("warm-up round")) {
		w.seen = true
		w.at()
	}
	return len(p), nil
}

func (w *warmupWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// readProcessCPU is processCPU for another goroutine than the test's: it
// returns the error instead of failing the test.
func readProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(b[i+2:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	utime, err := strconv.ParseInt(fields[11], 10, 64)
	if err != nil {
		return 0, err
	}
	stime, err := strconv.ParseInt(fields[12], 10, 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// ingestRun is what one luminate-bench run against one server measured.
type ingestRun struct {
	rate   float64 // samples/s acknowledged
	cpuUs  float64 // server CPU microseconds per sample
	rssMiB float64 // server peak RSS
	p99    float64 // request latency, ms
	// countMs is the median time of count({__name__=~"bench_metric_.*"})
	// over the last 150 s at a 15 s step, after a steady run (NaN after a
	// create run): the regex over every series of the run.
	countMs float64
}

// runIngest starts server on an empty store, sends it one luminate-bench
// run and measures it.
func runIngest(t *testing.T, bench, server, mode, values string, series, rounds int) ingestRun {
	t.Helper()
	target, tokenFile := startBenchServer(t, server)
	args := []string{"--url=" + target.base + "/api/v1/write", "--output=json", "--mode=" + mode, "--values=" + values,
		"--series=" + strconv.Itoa(series), "--rounds=" + strconv.Itoa(rounds), "--workers=" + strconv.Itoa(benchWorkers()), "--batch=2000"}
	if tokenFile != "" {
		args = append(args, "--token-file="+tokenFile)
	}
	cmd := exec.Command(bench, args...)
	// The CPU of a steady run is counted from the end of its warm-up round
	// (which creates the series; luminate-bench reports it on stderr), so
	// that it is the cost of appending to existing series: a server slow
	// at creating series does not pay for it twice.
	cpu0 := processCPU(t, target.pid)
	var warmCPU atomic.Int64 // the server's CPU time (ns) at the end of the warm-up round, -1 before
	warmCPU.Store(-1)
	warm := &warmupWatch{at: func() {
		if d, err := readProcessCPU(target.pid); err == nil {
			warmCPU.Store(int64(d))
		}
	}}
	cmd.Stderr = warm
	profiled := profileIngest(t, target, fmt.Sprintf("%s-%s-%d", mode, values, time.Now().UnixNano()))
	out, err := cmd.Output()
	// Two idle seconds after the run count whatever work the server does
	// after acknowledging (VictoriaMetrics and Prometheus flush and index
	// in the background too).
	time.Sleep(2 * time.Second)
	cpuEnd := processCPU(t, target.pid)
	<-profiled
	require.NoError(t, err, "luminate-bench %s\n%s%s", strings.Join(args, " "), out, warm.String())
	var r benchReport
	require.NoError(t, json.Unmarshal(out, &r), string(out))
	require.Zero(t, r.Failed)
	sent := float64(r.Samples)
	cpu := cpuEnd - cpu0
	if mode == "steady" {
		w := warmCPU.Load()
		require.GreaterOrEqual(t, w, int64(0), "luminate-bench reported no warm-up round: %s", warm.String())
		t.Logf("%s: CPU %.2f us/sample with the warm-up round (series creation) counted", server, cpu.Seconds()/(sent+float64(series))*1e6)
		cpu = cpuEnd - time.Duration(w)
	}
	run := ingestRun{rate: r.SamplesPerSecond, cpuUs: cpu.Seconds() / sent * 1e6, rssMiB: peakRSS(t, target.pid), p99: r.LatencyMs["p99"], countMs: math.NaN()}
	if mode == "steady" {
		if server == srvVM {
			// New series reach VictoriaMetrics' index searchable within
			// seconds (its in-memory parts flush every 5 s); flushing now
			// makes them all searchable before the first query, which
			// would otherwise miss them (and cache that it did).
			status, body := apiGet(t, target.base, "/internal/force_flush", "")
			require.Equal(t, http.StatusOK, status, string(body))
		}
		now := time.Now()
		path := "/api/v1/query_range?" + url.Values{"query": {`count({__name__=~"bench_metric_.*"})`},
			"start": {strconv.FormatInt(now.Add(-150*time.Second).Unix(), 10)}, "end": {strconv.FormatInt(now.Unix(), 10)}, "step": {"15"}}.Encode()
		_, body := timedGet(t, target, path) // warms caches
		var lat []float64
		for range 3 {
			d, _ := timedGet(t, target, path)
			lat = append(lat, float64(d.Microseconds())/1000)
		}
		run.countMs = median(lat)
		t.Logf("%s: count over the last 150 s: %v ms, answer %s", server, lat, strings.TrimSpace(string(body[:min(len(body), 200)])))
	}
	t.Logf("%s %s %s: %.0f samples/s over %.2fs, p50 %.1fms p99 %.1fms, server CPU %.2f us/sample, peak RSS %.0f MiB, load %s",
		mode, values, server, run.rate, r.DurationSeconds, r.LatencyMs["p50"], run.p99, run.cpuUs, run.rssMiB, loadAverage())
	return run
}

// benchIngest4 runs luminate-bench against a fresh server of each kind,
// one at a time, rotating the order, BENCH_REPEAT times per case, and
// writes the medians and Luminate's advantage over each peer to tw.
func benchIngest4(t *testing.T, tw *tabwriter.Writer) {
	bench := buildBench(t)
	series := envInt(t, envBenchSeries, 100_000)
	repeat := envInt(t, envBenchRepeat, 3)
	servers := benchServers(t)
	if slices.Contains(servers, srvVM) {
		victoriaMetrics(t)
	}
	if slices.Contains(servers, srvProm3) {
		prometheus3(t)
	}
	cases := os.Getenv(envBenchCases)
	if cases == "" {
		cases = "steady/random-walk,steady/integer,create/random-walk"
	}
	peers := servers[1:]
	header := func(title string) {
		fmt.Fprintf(tw, "%s", title)
		for _, s := range servers {
			fmt.Fprintf(tw, "\t%s", serverTitles[s])
		}
		for _, p := range peers {
			fmt.Fprintf(tw, "\tvs %s", serverShort[p])
		}
		fmt.Fprintf(tw, "\truns\tload avg\t\n")
	}
	header(fmt.Sprintf("ingest, %d series (vs X: Luminate's advantage, >1 better)", series))
	for c := range strings.SplitSeq(cases, ",") {
		mode, values, ok := strings.Cut(strings.TrimSpace(c), "/")
		require.True(t, ok && (mode == "steady" || mode == "create"), "%s: %q is not MODE/VALUES", envBenchCases, c)
		// Steady: three million measured samples per run at 100k series,
		// three rounds at a million. Create: half a million new series per
		// run at 100k (5 rounds of 100k new targets), one round at a million.
		rounds := max(3, 3_000_000/series)
		if mode == "create" {
			rounds = max(1, 500_000/series)
		}
		runs := map[string][]ingestRun{}
		load0 := loadAverage()
		for i := range repeat {
			order := slices.Clone(servers)
			// Rotate, so that no server always runs first or after another.
			for range i % len(order) {
				order = append(order[1:], order[0])
			}
			for _, server := range order {
				t.Run(fmt.Sprintf("%s/%s/%s/%d", mode, values, server, i+1), func(t *testing.T) {
					runs[server] = append(runs[server], runIngest(t, bench, server, mode, values, series, rounds))
				})
			}
		}
		load := load0 + " .. " + loadAverage()
		figure := func(name, format string, get func(ingestRun) float64, higherBetter bool) {
			med := map[string]float64{}
			fmt.Fprintf(tw, "%s %s: %s", mode, values, name)
			for _, s := range servers {
				xs := make([]float64, 0, len(runs[s]))
				for _, r := range runs[s] {
					xs = append(xs, get(r))
				}
				med[s] = median(xs)
				fmt.Fprintf(tw, "\t"+format, med[s])
			}
			for _, p := range peers {
				fmt.Fprintf(tw, "\t%s", advantage(med[srvLuminate], med[p], higherBetter))
			}
			fmt.Fprintf(tw, "\t%d\t%s\t\n", len(runs[srvLuminate]), load)
			load = ""
		}
		figure("samples/s", "%.0f", func(r ingestRun) float64 { return r.rate }, true)
		figure("server CPU us/sample", "%.2f", func(r ingestRun) float64 { return r.cpuUs }, false)
		figure("peak RSS MiB", "%.0f", func(r ingestRun) float64 { return r.rssMiB }, false)
		figure("p99 latency ms", "%.1f", func(r ingestRun) float64 { return r.p99 }, false)
		if mode == "steady" {
			figure(`count({__name__=~"bench_metric_.*"}) over 150 s, ms`, "%.1f", func(r ingestRun) float64 { return r.countMs }, false)
		}
	}
}

// advantage is Luminate's figure l against a peer's p as a factor where
// more than 1 means Luminate is better: l/p when higher is better, p/l
// when lower is.
func advantage(l, p float64, higherBetter bool) string {
	if math.IsNaN(l) || math.IsNaN(p) || l == 0 || p == 0 {
		return "-"
	}
	if higherBetter {
		return fmt.Sprintf("%.2fx", l/p)
	}
	return fmt.Sprintf("%.2fx", p/l)
}
