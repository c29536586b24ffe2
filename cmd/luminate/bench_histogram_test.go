package main

// The native-histogram part of `make bench` (issue 11): the same native
// histograms, with remote write 1.0 and 2.0, into a luminate and into
// Prometheus 3.x's remote-write receiver in the same run; histogram
// samples/s, server CPU, and bytes per histogram sample on disk after the
// same data.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/internal/proctest"
	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
	"github.com/luminate-io/luminate/tenancy"
)

const (
	envBenchHistSeries = "BENCH_HISTOGRAM_SERIES"    // histogram series (5000; 0 skips the histogram comparison)
	envBenchHistRounds = "BENCH_HISTOGRAM_ROUNDS"    // measured rounds, one sample per series each (120: one full chunk per series)
	envBenchHistProtos = "BENCH_HISTOGRAM_PROTOCOLS" // remote write versions, comma separated (1.0,2.0)
)

// histTarget is a server of the histogram comparison, with what is needed
// to measure its disk use once the data is in.
type histTarget struct {
	benchTarget
	tokenFile string
	// diskBytes stops or snapshots the server and returns the bytes its
	// data takes on disk, and what they are.
	diskBytes func(t *testing.T) (int64, string)
}

// startHistLuminate starts a luminate on an empty store (BENCH_BACKEND
// picks the backend, as for floats) whose disk use diskBytes measures
// after a graceful stop: the whole data directory (Badger's files and the
// WAL) or, on ClickHouse, the active parts of its database.
func startHistLuminate(t *testing.T) histTarget {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	args := []string{
		"--limits.ingestion-rate=0", "--limits.request-rate=0", "--limits.max-active-series=0",
		"--limits.max-samples-per-query=0", "--limits.max-series-per-query=0",
		"--storage.badger.path=" + data,
	}
	var ch *chtest.Server
	if os.Getenv("BENCH_BACKEND") == "clickhouse" {
		ch = chtest.New(t)
		args = append(args, "--storage.backend=clickhouse", "--storage.clickhouse.dsn="+ch.DSN(), "--storage.clickhouse.database=bench")
	}
	args = append(args, strings.Fields(os.Getenv(envBenchFlags))...)
	scopes := []tenancy.Scope{tenancy.ScopeWrite, tenancy.ScopeRead}
	if os.Getenv(envBenchPprof) != "" {
		args = append(args, "--debug.pprof")
		scopes = append(scopes, tenancy.ScopeAdmin, tenancy.ScopeOperator)
	}
	lum, secret := startAuthLuminate(t, args...)
	token, file := e2eTokenFile(t, secret, t.TempDir(), "bench.token", "bench", time.Now(), 24*time.Hour, scopes...)
	h := histTarget{
		benchTarget: benchTarget{name: "luminate", base: lum.url(""), token: token, pid: lum.Cmd.Process.Pid},
		tokenFile:   file,
	}
	if ch != nil {
		h.storePid = ch.Pid()
	}
	h.diskBytes = func(t *testing.T) (int64, string) {
		require.NoError(t, lum.Cmd.Process.Signal(syscall.SIGTERM))
		require.Equal(t, 0, lum.wait(), lum.stderr())
		if ch == nil {
			entries, err := os.ReadDir(data)
			require.NoError(t, err)
			var parts []string
			for _, e := range entries {
				parts = append(parts, fmt.Sprintf("%s %d", e.Name(), dirBytes(t, filepath.Join(data, e.Name()))))
			}
			t.Logf("luminate: data directory after the stop, bytes by entry: %s", strings.Join(parts, ", "))
			return dirBytes(t, data), "data directory after a graceful stop (Badger + WAL)"
		}
		query := func(q string) string {
			resp, err := http.Post(ch.HTTPURL(), "text/plain", strings.NewReader(q))
			require.NoError(t, err)
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", q, b)
			return strings.TrimSpace(string(b))
		}
		const parts = "SELECT table, sum(bytes_on_disk) FROM system.parts WHERE active AND database = 'bench' GROUP BY table ORDER BY table FORMAT TSV"
		total := func(byTable string) int64 {
			var n int64
			for line := range strings.SplitSeq(byTable, "\n") {
				_, v, _ := strings.Cut(line, "\t")
				b, err := strconv.ParseInt(v, 10, 64)
				require.NoError(t, err, byTable)
				n += b
			}
			return n
		}
		before := query(parts)
		// The parts as the last inserts left them, then merged, as
		// ClickHouse's background merges would in time.
		for table := range strings.SplitSeq(query("SELECT name FROM system.tables WHERE database = 'bench' AND engine LIKE '%MergeTree' FORMAT TSV"), "\n") {
			query("OPTIMIZE TABLE bench.`" + table + "` FINAL")
		}
		after := query(parts)
		t.Logf("luminate: ClickHouse active parts by table, bytes: before OPTIMIZE FINAL %d (%s), after %d (%s)",
			total(before), strings.ReplaceAll(before, "\n", ", "), total(after), strings.ReplaceAll(after, "\n", ", "))
		return total(after), "ClickHouse active parts of its database after OPTIMIZE FINAL (system.parts bytes_on_disk)"
	}
	return h
}

// startHistPrometheus starts Prometheus 3.x with the remote-write receiver
// taking 1.0 and 2.0, on an empty TSDB. diskBytes compacts its head into a
// block (the admin API's snapshot writes the head as a block) and returns
// the size of that block: chunks, index, meta.
func startHistPrometheus(t *testing.T, bin string) histTarget {
	t.Helper()
	p := startPrometheusBin(t, bin, "bench3", proctest.FreeAddr(t), "global:\n  scrape_interval: 1m\n",
		"--web.enable-remote-write-receiver", "--web.enable-admin-api",
		"--web.remote-write-receiver.accepted-protobuf-messages=prometheus.WriteRequest",
		"--web.remote-write-receiver.accepted-protobuf-messages=io.prometheus.write.v2.Request")
	p.waitReady()
	h := histTarget{benchTarget: benchTarget{name: "prometheus", base: p.url(""), pid: p.Cmd.Process.Pid}}
	h.diskBytes = func(t *testing.T) (int64, string) {
		head := dirBytes(t, filepath.Join(p.Dir, "data"))
		resp, err := http.Post(p.url("/api/v1/admin/tsdb/snapshot?skip_head=false"), "", nil)
		require.NoError(t, err)
		defer resp.Body.Close()
		var r struct {
			Data struct {
				Name string `json:"name"`
			} `json:"data"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		snap := filepath.Join(p.Dir, "data", "snapshots", r.Data.Name)
		blocks, err := os.ReadDir(snap)
		require.NoError(t, err)
		require.Len(t, blocks, 1, "the head as one block")
		t.Logf("prometheus: data directory before the snapshot (WAL, head chunks) %d bytes", head)
		return dirBytes(t, snap), "the head compacted into a block (admin snapshot: chunks + index + meta)"
	}
	return h
}

// dirBytes is the disk space the files under dir take: allocated blocks,
// so that preallocated sparse files count for what they hold.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += min(st.Blocks*512, info.Size()+4095)
		} else {
			n += info.Size()
		}
		return nil
	}))
	return n
}

// benchHistograms sends BENCH_HISTOGRAM_SERIES native histogram series for
// BENCH_HISTOGRAM_ROUNDS rounds (15 s apart) to a fresh luminate and a
// fresh Prometheus 3.x, alternating, BENCH_REPEAT times per protocol, and
// writes the medians to tw.
func benchHistograms(t *testing.T, tw *tabwriter.Writer, series int) {
	prom3 := prometheus3(t)
	bench := buildBench(t)
	rounds := envInt(t, envBenchHistRounds, 120)
	repeat := envInt(t, envBenchRepeat, 3)
	fmt.Fprintf(tw, "native histograms (%d series x %d rounds, 20 buckets)\tluminate histograms/s\tprometheus 3 histograms/s\tratio\tluminate CPU s/M\tprometheus CPU s/M\tluminate bytes/histogram\tprometheus bytes/histogram\truns\t\n", series, rounds)
	protos := []string{"1.0", "2.0"}
	if v := os.Getenv(envBenchHistProtos); v != "" {
		protos = strings.Split(v, ",")
	}
	for _, proto := range protos {
		rates := map[string][]float64{}
		cpus := map[string][]float64{}
		disk := map[string][]float64{}
		for i := range repeat {
			order := []string{"luminate", "prometheus"}
			if i%2 == 1 {
				slices.Reverse(order)
			}
			for _, server := range order {
				t.Run(fmt.Sprintf("histograms/%s/%s/%d", proto, server, i+1), func(t *testing.T) {
					var target histTarget
					if server == "luminate" {
						target = startHistLuminate(t)
					} else {
						target = startHistPrometheus(t, prom3)
					}
					args := []string{"--url=" + target.base + "/api/v1/write", "--output=json", "--mode=steady",
						"--kind=histogram", "--protocol=" + proto, "--seed=11",
						"--series=" + strconv.Itoa(series), "--rounds=" + strconv.Itoa(rounds),
						"--workers=" + strconv.Itoa(benchWorkers()), "--batch=2000"}
					if target.tokenFile != "" {
						args = append(args, "--token-file="+target.tokenFile)
					}
					cmd := exec.Command(bench, args...)
					var stderr bytes.Buffer
					cmd.Stderr = &stderr
					cpu0 := processCPU(t, target.pid)
					profiled := profileIngest(t, target.benchTarget, fmt.Sprintf("histograms-%s-%d", proto, time.Now().UnixNano()))
					out, err := cmd.Output()
					<-profiled
					time.Sleep(2 * time.Second)
					cpu := processCPU(t, target.pid) - cpu0
					require.NoError(t, err, "luminate-bench %s\n%s%s", strings.Join(args, " "), out, stderr.String())
					var r benchReport
					require.NoError(t, json.Unmarshal(out, &r), string(out))
					require.Zero(t, r.Failed)
					sent := float64(r.Samples + int64(series)) // and the warm-up round
					// Everything sent is there to be counted, name by name
					// (count_over_time drops the name, which alone tells the
					// series of different names apart).
					stored := 0.0
					for m := range 100 {
						v := instantQuery(t, target.base, target.token, fmt.Sprintf(`sum(count_over_time(bench_histogram_%03d_seconds[1d]))`, m))
						if len(v) == 1 {
							stored += float64(v[0].Value)
						}
					}
					require.Equal(t, sent, stored, "%s holds every histogram sample sent", server)
					bytes, what := target.diskBytes(t)
					perSample := float64(bytes) / sent
					t.Logf("histograms %s %s: %.0f histograms/s over %.2fs, p99 %.1fms, server CPU %.2fs/M, %d bytes on disk = %.2f bytes/histogram (%s)",
						proto, server, r.SamplesPerSecond, r.DurationSeconds, r.LatencyMs["p99"], cpu.Seconds()/sent*1e6, bytes, perSample, what)
					rates[server] = append(rates[server], r.SamplesPerSecond)
					cpus[server] = append(cpus[server], cpu.Seconds()/sent*1e6)
					disk[server] = append(disk[server], perSample)
				})
			}
		}
		l, p := median(rates["luminate"]), median(rates["prometheus"])
		fmt.Fprintf(tw, "remote write %s\t%.0f\t%.0f\t%.2fx\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t\n", proto, l, p, l/p,
			median(cpus["luminate"]), median(cpus["prometheus"]), median(disk["luminate"]), median(disk["prometheus"]), len(rates["luminate"]))
	}
}
