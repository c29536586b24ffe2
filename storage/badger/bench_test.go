package badger

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
)

// benchSeries builds n series with 8 labels each, like node-exporter
// targets behind a job.
func benchSeries(n int) []labels.Labels {
	out := make([]labels.Labels, n)
	for i := range out {
		out[i] = seriesLabels(i)
	}
	return out
}

func seriesLabels(i int) labels.Labels {
	return labels.FromStrings(
		"__name__", "node_metric_"+strconv.Itoa(i%200),
		"job", "node",
		"instance", fmt.Sprintf("host-%05d:9100", i/200),
		"cpu", strconv.Itoa(i%8),
		"mode", []string{"user", "system", "idle", "iowait"}[i%4],
		"region", []string{"eu-west-1", "us-east-1", "ap-south-1"}[i%3],
		"env", "prod",
	)
}

// valueModel returns the next value of series i.
type valueModel func(r *rand.Rand, i int, prev float64) float64

var valueModels = map[string]valueModel{
	// Counters with small integer steps (even series) and mostly constant
	// gauges (odd series), as node exporter exposes.
	"node": func(r *rand.Rand, i int, prev float64) float64 {
		if i%2 == 0 {
			return prev + float64(r.IntN(10))
		}
		if r.IntN(20) == 0 {
			return float64(r.IntN(100))
		}
		return prev
	},
	// Gauges doing a random walk with two decimals.
	"randomwalk": func(r *rand.Rand, _ int, prev float64) float64 {
		return float64(int64(prev*100)+int64(r.IntN(201)-100)) / 100
	},
}

// appendRound appends one sample per series at time t, in batches of batch
// samples, from workers goroutines.
func appendRound(tb testing.TB, ts storage.TenantStore, series []labels.Labels, values []float64, t int64, batch, workers int) {
	var wg sync.WaitGroup
	errs := make([]error, workers)
	per := (len(series) + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*per, min((w+1)*per, len(series))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := lo; start < hi; start += batch {
				app := ts.AppenderV2(context.Background())
				for i := start; i < min(start+batch, hi); i++ {
					if _, err := app.Append(0, series[i], 0, t, values[i], nil, nil, promstorage.AOptions{}); err != nil {
						errs[w] = err
						return
					}
				}
				if err := app.Commit(); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(tb, err)
	}
}

func benchSeriesCount() int {
	if v, err := strconv.Atoi(os.Getenv("LUMINATE_BENCH_SERIES")); err == nil && v > 0 {
		return v
	}
	return 100_000
}

// BenchmarkAppend appends to 100,000 active series x 8 labels (override
// with LUMINATE_BENCH_SERIES) in batches of 2,000 samples at a 15 s
// interval from two goroutines: the storage-layer write path, samples
// already decoded. It reports samples/s and heap bytes per active series.
func BenchmarkAppend(b *testing.B) {
	n := benchSeriesCount()
	series := benchSeries(n)
	values := make([]float64, n)
	s := openTest(b, b.TempDir(), nil)
	defer s.Close()
	ts := s.ForTenant("bench")
	appendRound(b, ts, series, values, 0, 2000, 2) // create the series
	r := rand.New(rand.NewPCG(1, 2))
	model := valueModels["node"]
	rounds := 0
	var cpu time.Duration
	b.ResetTimer()
	for b.Loop() {
		rounds++
		b.StopTimer()
		for i := range values {
			values[i] = model(r, i, values[i])
		}
		b.StartTimer()
		c := cpuTime(b)
		appendRound(b, ts, series, values, int64(rounds)*15000, 2000, 2)
		cpu += cpuTime(b) - c
	}
	b.ReportMetric(float64(rounds*n)/b.Elapsed().Seconds(), "samples/s")
	// The process' CPU time per sample, which a machine busy with other
	// work inflates far less than the wall time.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(rounds*n), "cpu-ns/sample")
	b.StopTimer()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/float64(n), "heap-bytes/series")
}

// bytesPerSampleData writes 2 h of 15 s samples for 10,000 series of one
// value model through write, the same data for every store measured.
func bytesPerSampleData(model valueModel, write func(series []labels.Labels, values []float64, t int64)) (samples int) {
	const n, rounds = 10_000, 480
	series := benchSeries(n)
	values := make([]float64, n)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range values {
		values[i] = float64(r.IntN(10000)) / 100
	}
	for k := 0; k < rounds; k++ {
		for i := range values {
			values[i] = model(r, i, values[i])
		}
		write(series, values, int64(k)*15000)
	}
	return n * rounds
}

// BenchmarkBytesPerSample reports the on-disk bytes per sample of the
// Badger store after sealing every head and compacting Badger's levels,
// and, in the same run, of Prometheus blocks holding the same data: built
// by Prometheus 2.42 itself (`promtool tsdb create-blocks-from
// openmetrics`, when promtool is installed) and by the Prometheus TSDB
// library this module builds with.
func BenchmarkBytesPerSample(b *testing.B) {
	for _, name := range []string{"node", "randomwalk"} {
		model := valueModels[name]
		b.Run(name+"/luminate", func(b *testing.B) {
			for b.Loop() {
				dir := b.TempDir()
				s := openTest(b, dir, nil)
				ts := s.ForTenant("bench")
				n := bytesPerSampleData(model, func(series []labels.Labels, values []float64, t int64) {
					appendRound(b, ts, series, values, t, 2000, 2)
				})
				s.sealIdle(timeFar)
				require.NoError(b, s.checkpoint())
				require.NoError(b, s.db.Flatten(2))
				require.NoError(b, s.Close())
				b.ReportMetric(float64(dirSize(b, filepath.Join(dir, "badger")))/float64(n), "bytes/sample")
			}
		})
		b.Run(name+"/prometheus-2.42", func(b *testing.B) {
			promtool, err := exec.LookPath("promtool")
			if err != nil {
				b.Skip("promtool not installed (scripts/test-deps.sh installs it)")
			}
			for b.Loop() {
				dir := b.TempDir()
				in := filepath.Join(dir, "samples.om")
				f, err := os.Create(in)
				require.NoError(b, err)
				w := bufio.NewWriterSize(f, 1<<20)
				n := bytesPerSampleData(model, func(series []labels.Labels, values []float64, t int64) {
					for i, l := range series {
						fmt.Fprintf(w, "%s{", l.Get("__name__"))
						first := true
						l.Range(func(lb labels.Label) {
							if lb.Name == "__name__" {
								return
							}
							if !first {
								w.WriteByte(',')
							}
							first = false
							fmt.Fprintf(w, "%s=%q", lb.Name, lb.Value)
						})
						fmt.Fprintf(w, "} %s %d.%03d\n", strconv.FormatFloat(values[i], 'g', -1, 64), t/1000, t%1000)
					}
				})
				_, err = w.WriteString("# EOF\n")
				require.NoError(b, err)
				require.NoError(b, w.Flush())
				require.NoError(b, f.Close())
				out := filepath.Join(dir, "blocks")
				cmd := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", in, out)
				msg, err := cmd.CombinedOutput()
				require.NoError(b, err, "%s", msg)
				var size int64
				require.NoError(b, filepath.Walk(out, func(p string, info os.FileInfo, err error) error {
					if err == nil && !info.IsDir() {
						size += info.Size()
					}
					return err
				}))
				b.ReportMetric(float64(size)/float64(n), "bytes/sample")
			}
		})
		b.Run(name+"/prometheus-tsdb", func(b *testing.B) {
			for b.Loop() {
				dir := b.TempDir()
				db, err := tsdb.Open(dir, nil, nil, tsdb.DefaultOptions(), nil)
				require.NoError(b, err)
				n := bytesPerSampleData(model, func(series []labels.Labels, values []float64, t int64) {
					app := db.AppenderV2(context.Background())
					for i, l := range series {
						_, err := app.Append(0, l, 0, t, values[i], nil, nil, promstorage.AOptions{})
						require.NoError(b, err)
					}
					require.NoError(b, app.Commit())
				})
				head := db.Head()
				require.NoError(b, db.CompactHead(tsdb.NewRangeHead(head, head.MinTime(), head.MaxTime())))
				var size int64
				for _, blk := range db.Blocks() {
					size += blk.Size()
				}
				require.NoError(b, db.Close())
				b.ReportMetric(float64(size)/float64(n), "bytes/sample")
			}
		})
	}
}

func dirSize(tb testing.TB, dir string) int64 {
	var total int64
	entries, err := os.ReadDir(dir)
	require.NoError(tb, err)
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".sst" && filepath.Ext(e.Name()) != ".vlog" {
			continue
		}
		info, err := e.Info()
		require.NoError(tb, err)
		total += info.Size()
	}
	return total
}

// BenchmarkQuery reads 1,000 series over 2 h (480 samples each at 15 s)
// through the Querier, as the PromQL engine does for a range selector.
func BenchmarkQuery(b *testing.B) {
	const n, rounds = 1000, 480
	s := openTest(b, b.TempDir(), nil)
	defer s.Close()
	ts := s.ForTenant("bench")
	series := benchSeries(n)
	values := make([]float64, n)
	r := rand.New(rand.NewPCG(5, 6))
	for k := 0; k < rounds; k++ {
		for i := range values {
			values[i] = valueModels["node"](r, i, values[i])
		}
		appendRound(b, ts, series, values, int64(k)*15000, 2000, 2)
	}
	matcher := labels.MustNewMatcher(labels.MatchRegexp, "__name__", "node_metric_.*")
	b.ResetTimer()
	total := 0
	for b.Loop() {
		q, err := ts.Querier(0, rounds*15000)
		require.NoError(b, err)
		set := q.Select(context.Background(), true, nil, matcher)
		var it chunkenc.Iterator
		for set.Next() {
			it = set.At().Iterator(it)
			for it.Next() != chunkenc.ValNone {
				total++
			}
		}
		require.NoError(b, set.Err())
		require.NoError(b, q.Close())
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "samples/s")
}

// rssBytes reads the process' resident set size.
func rssBytes(tb testing.TB) int64 {
	data, err := os.ReadFile("/proc/self/status")
	require.NoError(tb, err)
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			require.NoError(tb, err)
			return kb << 10
		}
	}
	tb.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// BenchmarkActiveSeriesMemory holds LUMINATE_BENCH_SERIES (default
// 100,000) active series, 8 labels each, with 60 samples in their heads,
// and reports the growth of resident memory and of the live heap per
// series. Label sets are built per batch and not kept by the benchmark.
func BenchmarkActiveSeriesMemory(b *testing.B) {
	n := benchSeriesCount()
	for b.Loop() {
		runtime.GC()
		rss0 := rssBytes(b)
		var ms0 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		s := openTest(b, b.TempDir(), nil)
		ts := s.ForTenant("bench")
		r := rand.New(rand.NewPCG(9, 9))
		values := make([]float64, 2000)
		for k := 0; k < 60; k++ {
			for start := 0; start < n; start += 2000 {
				batch := benchSeriesRange(start, min(start+2000, n))
				for i := range batch {
					values[i] = valueModels["node"](r, start+i, values[i])
				}
				appendRound(b, ts, batch, values[:len(batch)], int64(k)*15000, 2000, 1)
			}
		}
		runtime.GC()
		var ms1 runtime.MemStats
		runtime.ReadMemStats(&ms1)
		b.ReportMetric(float64(rssBytes(b)-rss0)/float64(n), "rss-bytes/series")
		b.ReportMetric(float64(ms1.HeapInuse-ms0.HeapInuse)/float64(n), "heap-bytes/series")
		require.NoError(b, s.Close())
	}
}

// benchSeriesRange builds the label sets of series [lo, hi).
func benchSeriesRange(lo, hi int) []labels.Labels {
	out := make([]labels.Labels, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, seriesLabels(i))
	}
	return out
}

// BenchmarkCreateSeries appends the first sample of new series, 2,000 per
// commit: the first scrape of new targets.
func BenchmarkCreateSeries(b *testing.B) {
	s := openTest(b, b.TempDir(), nil)
	defer s.Close()
	ts := s.ForTenant("bench")
	next := 0
	values := make([]float64, 2000)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		batch := benchSeriesRange(next, next+2000)
		next += 2000
		b.StartTimer()
		appendRound(b, ts, batch, values, 0, 2000, 1)
	}
	b.ReportMetric(float64(next)/b.Elapsed().Seconds(), "series/s")
}
