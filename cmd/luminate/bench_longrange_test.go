package main

// The long-range query part of `make bench` (issue 15): a week of data
// backfilled identically into Luminate (Badger), VictoriaMetrics
// single-node and Prometheus 3.x, then query_range over the whole week at
// a 10-minute step, medians of BENCH_LONG_REPEAT runs per server.
//
// The week goes in by remote write, window by window in time order (30
// minutes of every series, then the next 30 minutes), to every server the
// same requests. Prometheus 3 needs neither out-of-order ingestion nor
// promtool's backfill that way: its head never sees a sample more than
// half an hour older than its newest, and it cuts and compacts blocks as
// the week goes by, as it would have live.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
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
)

const (
	envBenchLongSeries = "BENCH_LONG_SERIES" // series of the week-long query comparison (2000; 20000 for 10x; 0 skips it)
	envBenchLongRepeat = "BENCH_LONG_REPEAT" // timed runs per query and server (5)
	envBenchLongDays   = "BENCH_LONG_DAYS"   // days of data (7)
)

// Shape of the week-long data: longMetrics names, every series a float
// counter sampled every longInterval.
const (
	longMetrics  = 10
	longInterval = 60 * time.Second
	longStep     = 10 * time.Minute
)

// longLabels are the 8 labels of series id of the long-range data, sorted
// by name: series id is metric_(id%10); the series of one metric are spread
// over instances of 10 series each.
func longLabels(id int) []prompb.Label {
	k := id / longMetrics // index among the series of its metric
	return []prompb.Label{
		{Name: "__name__", Value: fmt.Sprintf("metric_%d", id%longMetrics)},
		{Name: "cluster", Value: fmt.Sprintf("cluster-%d", k%3)},
		{Name: "cpu", Value: strconv.Itoa(k % 10)},
		{Name: "instance", Value: fmt.Sprintf("host-%04d:9100", k/10)},
		{Name: "job", Value: fmt.Sprintf("node-%d", k/10%4)},
		{Name: "mode", Value: []string{"user", "system", "idle", "iowait", "irq"}[k%5]},
		{Name: "namespace", Value: fmt.Sprintf("ns-%d", k/10%7)},
		{Name: "region", Value: fmt.Sprintf("region-%d", k/10%2)},
	}
}

// walkCounter is a random-walk float counter with 2 decimals, kept in
// hundredths: it grows by 0.01-10.00 per sample.
type walkCounter struct{ cents []int64 }

func newWalkCounter(series int) *walkCounter {
	w := &walkCounter{cents: make([]int64, series)}
	for id := range w.cents {
		w.cents[id] = int64(hash64(uint64(id)) % 100_000)
	}
	return w
}

// next advances series id to sample n and returns its value.
func (w *walkCounter) next(id, n int) float64 {
	if n > 0 {
		w.cents[id] += 1 + int64(hash64(uint64(id)<<32|uint64(n))%1000)
	}
	return float64(w.cents[id]) / 100
}

// hash64 is SplitMix64's finalizer (as luminate-bench's mix).
func hash64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// backfill remote-writes series series, one sample every interval in
// [begin, end), to every target: window by window in time order, each
// window's requests built once and sent to one target after another (2
// senders each). labels gives a series' labels, value its n-th sample
// (called in time order per series). It returns the time each target spent
// taking the data.
func backfill(t *testing.T, series int, begin, end time.Time, interval time.Duration,
	labels func(id int) []prompb.Label, value func(id, n int) float64, targets ...benchTarget) map[string]time.Duration {
	t.Helper()
	const (
		workers = 2
		window  = 30 * time.Minute
	)
	perWindow := int(window / interval)
	perRequest := max(1, 10_000/perWindow) // series per request: 10,000 samples
	client := &http.Client{Timeout: 5 * time.Minute}
	took := map[string]time.Duration{}
	ls := make([][]prompb.Label, series)
	for id := range ls {
		ls[id] = labels(id)
	}
	for w := begin; w.Before(end); w = w.Add(window) {
		var bodies [][]byte
		for lo := 0; lo < series; lo += perRequest {
			req := prompb.WriteRequest{}
			for id := lo; id < min(lo+perRequest, series); id++ {
				ts := prompb.TimeSeries{Labels: ls[id]}
				for k := range perWindow {
					tm := w.Add(time.Duration(k) * interval)
					if !tm.Before(end) {
						break
					}
					n := int(tm.Sub(begin) / interval)
					ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: tm.UnixMilli(), Value: value(id, n)})
				}
				req.Timeseries = append(req.Timeseries, ts)
			}
			raw, err := req.Marshal()
			require.NoError(t, err)
			bodies = append(bodies, snappy.Encode(nil, raw))
		}
		for _, target := range targets {
			t0 := time.Now()
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
			took[target.name] += time.Since(t0)
			for _, err := range errs {
				require.NoError(t, err, "backfill %s, window %s", target.name, w)
			}
		}
	}
	return took
}

// waitIdle waits until process pid uses less than a tenth of a CPU over 3
// seconds (background flushes, merges and compactions done), at most
// timeout.
func waitIdle(t *testing.T, name string, pid int, timeout time.Duration) {
	t.Helper()
	proctest.Eventually(t, timeout, func() (bool, string) {
		c0 := processCPU(t, pid)
		time.Sleep(3 * time.Second)
		d := processCPU(t, pid) - c0
		return d < 300*time.Millisecond, fmt.Sprintf("%s used %s of CPU in 3s", name, d)
	}, "%s idle", name)
}

// waitPrometheusCompacted waits until Prometheus has cut its head down to
// at most 3 hours and its compactions have settled.
func waitPrometheusCompacted(t *testing.T, p *promProc) {
	t.Helper()
	proctest.Eventually(t, 20*time.Minute, func() (bool, string) {
		lo, _ := metricValue(t, p.url("/metrics"), "prometheus_tsdb_head_min_time", nil)
		hi, _ := metricValue(t, p.url("/metrics"), "prometheus_tsdb_head_max_time", nil)
		return time.Duration(hi-lo)*time.Millisecond <= 3*time.Hour, fmt.Sprintf("head spans %s", time.Duration(hi-lo)*time.Millisecond)
	}, "Prometheus head compaction")
	proctest.Eventually(t, 20*time.Minute, func() (bool, string) {
		before, _ := metricValue(t, p.url("/metrics"), "prometheus_tsdb_compactions_total", nil)
		time.Sleep(5 * time.Second)
		after, _ := metricValue(t, p.url("/metrics"), "prometheus_tsdb_compactions_total", nil)
		return before == after, fmt.Sprintf("%v compactions, then %v", before, after)
	}, "Prometheus compactions settled")
}

// resultShape is "S series x P points" of a query_range answer.
func resultShape(t *testing.T, body []byte) string {
	t.Helper()
	var r struct {
		Data struct {
			Result []struct {
				Values [][2]any `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &r), string(body))
	points := 0
	for _, s := range r.Data.Result {
		points += len(s.Values)
	}
	return fmt.Sprintf("%d series x %d points", len(r.Data.Result), points)
}

// benchLongRange loads series series x BENCH_LONG_DAYS days at 60 s into a
// luminate, a VictoriaMetrics and a Prometheus 3.x, then times week-long
// range queries on each, interleaved, and writes the medians to tw.
func benchLongRange(t *testing.T, tw *tabwriter.Writer, series int) {
	days := envInt(t, envBenchLongDays, 7)
	repeat := envInt(t, envBenchLongRepeat, 5)
	span := time.Duration(days) * 24 * time.Hour
	lum, _ := startBenchLuminate(t, "--query.max-samples=1000000000", "--query.timeout=10m")
	vmTarget, vm := startBenchVM(t)
	prom, promProc := startBenchPrometheus3(t, "--query.max-samples=1000000000", "--query.timeout=10m")
	targets := []benchTarget{lum, vmTarget, prom}

	end := time.Now().Add(-time.Minute).Truncate(longStep)
	begin := end.Add(-span)
	perSeries := int(span / longInterval)
	walk := newWalkCounter(series)
	t0 := time.Now()
	took := backfill(t, series, begin, end, longInterval, longLabels, walk.next, targets...)
	var loaded []string
	for _, target := range targets {
		loaded = append(loaded, fmt.Sprintf("%s %s (%.0f samples/s)", target.name, took[target.name].Round(time.Second), float64(series*perSeries)/took[target.name].Seconds()))
	}
	t.Logf("backfilled %d series x %s at %s (%d samples) into each in %s: %s", series, span, longInterval, series*perSeries,
		time.Since(t0).Round(time.Second), strings.Join(loaded, ", "))

	vm.flush(t)
	waitPrometheusCompacted(t, promProc)
	for _, target := range targets {
		waitIdle(t, target.name, target.pid, 20*time.Minute)
	}

	ts := func(tm time.Time) string { return strconv.FormatInt(tm.Unix(), 10) }
	perMetric := series / longMetrics
	fmt.Fprintf(tw, "query_range over %s at a %s step, %d series x %s at %s (%.1fM samples), median ms of %d (vs X: Luminate's advantage)\tluminate (badger)\tvictoriametrics\tprometheus 3.x\tvs VM\tvs P3\tluminate ns/sample\tVM ns/sample\tluminate vs P3 results\tanswer\tload avg\t\n",
		span, longStep, series, span, longInterval, float64(series*perSeries)/1e6, repeat)
	for _, q := range []struct {
		expr   string
		series int // series read
	}{
		{"sum(rate(metric_1[5m]))", perMetric},
		{"sum by (instance) (rate(metric_7[5m]))", perMetric},
		{`count({__name__=~"metric_.*"})`, series},
	} {
		path := "/api/v1/query_range?" + url.Values{"query": {q.expr}, "start": {ts(begin)}, "end": {ts(end)}, "step": {strconv.Itoa(int(longStep.Seconds()))}}.Encode()
		// One untimed run each warms caches, as a dashboard reloaded would.
		bodies := map[string][]byte{}
		for _, target := range targets {
			_, bodies[target.name] = timedGet(t, target, path)
		}
		same := sameResults(t, bodies[srvLuminate], bodies[srvProm3])
		lat := map[string][]float64{}
		load := loadAverage()
		for i := range repeat {
			order := slices.Clone(targets)
			for range i % len(order) {
				order = append(order[1:], order[0])
			}
			for _, target := range order {
				d, _ := timedGet(t, target, path)
				lat[target.name] = append(lat[target.name], float64(d.Microseconds())/1000)
			}
		}
		l, v, p := median(lat[srvLuminate]), median(lat[srvVM]), median(lat[srvProm3])
		read := float64(q.series * perSeries)
		t.Logf("%s: luminate %v ms, victoriametrics %v ms, prometheus3 %v ms; answers: luminate %s, victoriametrics %s, prometheus3 %s",
			q.expr, lat[srvLuminate], lat[srvVM], lat[srvProm3],
			resultShape(t, bodies[srvLuminate]), resultShape(t, bodies[srvVM]), resultShape(t, bodies[srvProm3]))
		fmt.Fprintf(tw, "%s (%d series)\t%.1f\t%.1f\t%.1f\t%s\t%s\t%.1f\t%.1f\t%s\t%s\t%s\t\n", q.expr, q.series, l, v, p,
			advantage(l, v, false), advantage(l, p, false), l*1e6/read, v*1e6/read, same, resultShape(t, bodies[srvLuminate]), load)
	}
}
