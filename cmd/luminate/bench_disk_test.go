package main

// The bytes-per-sample part of `make bench` (issue 15): the same 2 hours
// and 24 hours of data (BENCH_DISK_SERIES series of the ingest shape, 8
// labels, 100 metric names, random-walk values: float counters and
// wandering gauges with 2 decimals, one sample every 30 s) backfilled into
// a luminate, a VictoriaMetrics and a Prometheus 3.x, then the bytes each
// keeps on disk once settled: Luminate's data directory after a graceful
// stop (Badger and WAL), VictoriaMetrics' parts after a forced flush and
// merge and a graceful stop (data and indexdb, not its caches), and
// Prometheus' blocks after its compactions settle (an admin snapshot: its
// blocks and the head written as one more).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

const (
	envBenchDiskSeries = "BENCH_DISK_SERIES" // series of the bytes-per-sample comparison (10000; 0 skips it)
	envBenchDiskHours  = "BENCH_DISK_HOURS"  // hours of data, comma separated (2,24)
)

const diskInterval = 30 * time.Second

// diskLabels are the labels of series id of the bytes-per-sample data,
// as luminate-bench's: target id/100 exposes 100 metrics, half counters.
func diskLabels(id int) []prompb.Label {
	m, tg := id%100, id/100
	name := fmt.Sprintf("bench_metric_%03d", m)
	if m%2 == 0 {
		name += "_total"
	}
	return []prompb.Label{
		{Name: "__name__", Value: name},
		{Name: "cluster", Value: fmt.Sprintf("cluster-%d", tg%3)},
		{Name: "container", Value: fmt.Sprintf("app-%d", tg%7)},
		{Name: "instance", Value: fmt.Sprintf("10.%d.%d.%d:9100", tg>>16&0xff, tg>>8&0xff, tg&0xff)},
		{Name: "job", Value: fmt.Sprintf("job-%d", tg%20)},
		{Name: "namespace", Value: fmt.Sprintf("namespace-%d", tg%50)},
		{Name: "pod", Value: fmt.Sprintf("app-%d-%08x", tg%7, hash64(uint64(tg))&0xffffffff)},
		{Name: "service", Value: fmt.Sprintf("service-%d", tg%100)},
	}
}

// walkValues are random-walk values with 2 decimals, in hundredths: the
// counters (even metric index) grow by 0.01-10.00 per sample, the gauges
// step by 0.01-1.00 up or down.
type walkValues struct{ cents []int64 }

func newWalkValues(series int) *walkValues {
	w := &walkValues{cents: make([]int64, series)}
	for id := range w.cents {
		w.cents[id] = int64(hash64(uint64(id)) % 100_000)
	}
	return w
}

func (w *walkValues) next(id, n int) float64 {
	if n > 0 {
		h := hash64(uint64(id)<<32 | uint64(n))
		if id%100%2 == 0 {
			w.cents[id] += 1 + int64(h%1000)
		} else if step := int64(h % 200); step < 100 {
			w.cents[id] -= 1 + step
		} else {
			w.cents[id] += step - 99
		}
	}
	return float64(w.cents[id]) / 100
}

// vmDiskBytes flushes VictoriaMetrics, merges its parts, waits for the
// merges, stops it gracefully and returns the bytes of its data directory
// but its caches.
func vmDiskBytes(t *testing.T, vm *vmProc) (int64, string) {
	t.Helper()
	vm.flush(t)
	status, body := apiGet(t, vm.url(""), "/internal/force_merge", "")
	require.Equal(t, http.StatusOK, status, string(body))
	time.Sleep(2 * time.Second)
	waitIdle(t, srvVM, vm.Cmd.Process.Pid, 20*time.Minute)
	require.True(t, vm.Stop(2*time.Minute), "VictoriaMetrics stops by itself on SIGTERM")
	entries, err := os.ReadDir(vm.dir)
	require.NoError(t, err)
	var n int64
	var parts []string
	for _, e := range entries {
		b := dirBytes(t, filepath.Join(vm.dir, e.Name()))
		if !e.IsDir() {
			info, err := e.Info()
			require.NoError(t, err)
			b = info.Size()
		}
		parts = append(parts, fmt.Sprintf("%s %d", e.Name(), b))
		if e.Name() != "cache" && e.Name() != "snapshots" {
			n += b
		}
	}
	t.Logf("victoriametrics: data directory after force_flush, force_merge and a graceful stop, bytes by entry: %s", strings.Join(parts, ", "))
	return n, "storageDataPath after force_flush + force_merge + graceful stop, without cache/"
}

// promDiskBytes waits for Prometheus' compactions, snapshots its TSDB
// (blocks, and the head written as a block) and returns the snapshot's
// bytes.
func promDiskBytes(t *testing.T, p *promProc) (int64, string) {
	t.Helper()
	waitPrometheusCompacted(t, p)
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
	var parts []string
	for _, b := range blocks {
		parts = append(parts, fmt.Sprintf("%s %d", b.Name(), dirBytes(t, filepath.Join(snap, b.Name()))))
	}
	t.Logf("prometheus3: %d blocks in the snapshot, bytes: %s; whole data directory (WAL, head chunks, blocks) %d",
		len(blocks), strings.Join(parts, ", "), dirBytes(t, filepath.Join(p.Dir, "data"))-dirBytes(t, snap))
	return dirBytes(t, snap), fmt.Sprintf("blocks after compaction + the head as a block (admin snapshot, %d blocks)", len(blocks))
}

// benchDisk backfills series series for each of BENCH_DISK_HOURS into a
// fresh luminate, VictoriaMetrics and Prometheus 3.x and writes their
// bytes per sample to tw.
func benchDisk(t *testing.T, tw *tabwriter.Writer, series int) {
	hours := os.Getenv(envBenchDiskHours)
	if hours == "" {
		hours = "2,24"
	}
	fmt.Fprintf(tw, "bytes per sample on disk, %d series at %s, random-walk values (vs X: Luminate's advantage)\tluminate (badger)\tvictoriametrics\tprometheus 3.x\tvs VM\tvs P3\tload avg\t\n", series, diskInterval)
	for h := range strings.SplitSeq(hours, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(h))
		require.NoError(t, err, "%s=%q", envBenchDiskHours, hours)
		span := time.Duration(n) * time.Hour
		t.Run(fmt.Sprintf("disk/%dh", n), func(t *testing.T) {
			lum := startHistLuminate(t)
			vmTarget, vm := startBenchVM(t)
			prom, promProc := startBenchPrometheus3(t, "--web.enable-admin-api")
			end := time.Now().Add(-time.Minute).Truncate(diskInterval)
			begin := end.Add(-span)
			samples := float64(series) * float64(span/diskInterval)
			t0 := time.Now()
			took := backfill(t, series, begin, end, diskInterval, diskLabels, newWalkValues(series).next, lum.benchTarget, vmTarget, prom)
			t.Logf("backfilled %d series x %s at %s (%.0f samples) in %s: %v", series, span, diskInterval, samples, time.Since(t0).Round(time.Second), took)
			// Every server holds what was sent: the samples of one metric
			// (a hundredth of the series), counted by the server.
			want := float64(series/100) * float64(span/diskInterval)
			if series%100 > 0 {
				want = float64(series/100+1) * float64(span/diskInterval)
			}
			vm.flush(t)
			for _, target := range []benchTarget{lum.benchTarget, vmTarget, prom} {
				expr := fmt.Sprintf("sum(count_over_time(bench_metric_000_total[%ds]))", int((span + time.Hour).Seconds()))
				status, body := apiGet(t, target.base, "/api/v1/query?"+url.Values{"query": {expr}, "time": {strconv.FormatInt(end.Unix(), 10)}}.Encode(), target.token)
				require.Equal(t, http.StatusOK, status, "%s: %s", target.name, body)
				var r struct {
					Data struct {
						Result []struct {
							Value [2]any `json:"value"`
						} `json:"result"`
					} `json:"data"`
				}
				require.NoError(t, json.Unmarshal(body, &r), string(body))
				require.Len(t, r.Data.Result, 1, "%s: %s", target.name, body)
				got, err := strconv.ParseFloat(fmt.Sprint(r.Data.Result[0].Value[1]), 64)
				require.NoError(t, err)
				require.Equal(t, want, got, "%s holds every sample of bench_metric_000_total", target.name)
			}
			load := loadAverage()
			bytes := map[string]float64{}
			for _, m := range []struct {
				name    string
				measure func(*testing.T) (int64, string)
			}{
				{srvLuminate, lum.diskBytes},
				{srvVM, func(t *testing.T) (int64, string) { return vmDiskBytes(t, vm) }},
				{srvProm3, func(t *testing.T) (int64, string) { return promDiskBytes(t, promProc) }},
			} {
				b, what := m.measure(t)
				bytes[m.name] = float64(b) / samples
				t.Logf("%s after %s: %d bytes = %.3f bytes/sample (%s)", m.name, span, b, bytes[m.name], what)
			}
			l := bytes[srvLuminate]
			fmt.Fprintf(tw, "after %s (%.1fM samples)\t%.3f\t%.3f\t%.3f\t%s\t%s\t%s\t\n", span, samples/1e6, l, bytes[srvVM], bytes[srvProm3],
				advantage(l, bytes[srvVM], false), advantage(l, bytes[srvProm3], false), load)
		})
	}
}
