package badger

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
)

// histModel is the state of one series of the histogram benchmarks: a
// latency histogram of schema 3 with 20 populated buckets in two spans and
// a zero bucket, observed a random number of times per scrape, so its
// counts grow as a real counter's do.
type histModel struct {
	counts []uint64 // absolute, per populated bucket
	zero   uint64
	count  uint64
	sum    float64
}

const histBuckets = 20

func newHistModels(n int) []histModel {
	out := make([]histModel, n)
	for i := range out {
		out[i].counts = make([]uint64, histBuckets)
	}
	return out
}

// next observes the scrape interval's observations and returns the
// histogram a scrape would expose.
func (m *histModel) next(r *rand.Rand) *histogram.Histogram {
	obs := r.IntN(40)
	for range obs {
		// Observations cluster around the middle buckets.
		b := min(histBuckets-1, max(0, int(r.NormFloat64()*3.5)+histBuckets/2))
		m.counts[b]++
		m.sum += 0.01 * float64(b+1) * (1 + r.Float64())
	}
	if r.IntN(10) == 0 {
		m.zero++
		obs++
	}
	m.count += uint64(obs)
	h := &histogram.Histogram{
		Schema: 3, ZeroThreshold: 1e-128, ZeroCount: m.zero, Count: m.count, Sum: m.sum,
		PositiveSpans:   []histogram.Span{{Offset: -30, Length: 12}, {Offset: 2, Length: histBuckets - 12}},
		PositiveBuckets: make([]int64, histBuckets),
	}
	var prev int64
	for i, c := range m.counts {
		h.PositiveBuckets[i] = int64(c) - prev
		prev = int64(c)
	}
	return h
}

// histBenchSize is the series and rounds of the histogram size benchmark:
// 1,000 series over one day at 15 s unless LUMINATE_BENCH_HIST_SERIES and
// LUMINATE_BENCH_HIST_ROUNDS say otherwise.
func histBenchSize() (n, rounds int) {
	n, rounds = 1000, 24*60*4
	if v, err := strconv.Atoi(os.Getenv("LUMINATE_BENCH_HIST_SERIES")); err == nil && v > 0 {
		n = v
	}
	if v, err := strconv.Atoi(os.Getenv("LUMINATE_BENCH_HIST_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	return n, rounds
}

// histBenchData writes the histogram size benchmark's data through write,
// one round of one histogram per series at a time; the same data for
// every store measured.
func histBenchData(write func(series []labels.Labels, hs []*histogram.Histogram, t int64)) (samples int) {
	n, rounds := histBenchSize()
	series := benchSeries(n)
	models := newHistModels(n)
	r := rand.New(rand.NewPCG(7, 8))
	hs := make([]*histogram.Histogram, n)
	for k := range rounds {
		for i := range models {
			hs[i] = models[i].next(r)
		}
		write(series, hs, int64(k)*15000)
	}
	return n * rounds
}

// appendHistRound appends one histogram per series at time t in batches,
// from workers goroutines, through AppenderV2.
func appendHistRound(tb testing.TB, ts storage.TenantStore, series []labels.Labels, hs []*histogram.Histogram, t int64, batch, workers int) {
	var wg sync.WaitGroup
	errs := make([]error, workers)
	per := (len(series) + workers - 1) / workers
	for w := range workers {
		lo, hi := w*per, min((w+1)*per, len(series))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := lo; start < hi; start += batch {
				app := ts.AppenderV2(context.Background())
				for i := start; i < min(start+batch, hi); i++ {
					if _, err := app.Append(0, series[i], 0, t, 0, hs[i], nil, promstorage.AOptions{}); err != nil {
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

// treeSize is what `du -sb` says of dir: the bytes of every file in it.
func treeSize(tb testing.TB, dir string) int64 {
	var size int64
	require.NoError(tb, filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			size += info.Size()
		}
		return err
	}))
	return size
}

// BenchmarkHistogramBytesPerSample reports the on-disk bytes per native
// histogram sample (20 populated buckets, 15 s interval, 1,000 series over
// a day: see histBenchSize) of the Badger store after sealing every head
// and compacting Badger's levels, and of the blocks the Prometheus TSDB
// library this module builds with (Prometheus 3.x's) makes of the same
// data. Run it once:
//
//	go test -run '^$' -bench BenchmarkHistogramBytesPerSample -benchtime 1x ./storage/badger/
func BenchmarkHistogramBytesPerSample(b *testing.B) {
	b.Run("luminate", func(b *testing.B) {
		for b.Loop() {
			dir := b.TempDir()
			s := openTest(b, dir, nil)
			ts := s.ForTenant("bench")
			n := histBenchData(func(series []labels.Labels, hs []*histogram.Histogram, t int64) {
				appendHistRound(b, ts, series, hs, t, 2000, 2)
			})
			s.sealIdle(timeFar)
			require.NoError(b, s.checkpoint())
			require.NoError(b, s.db.Flatten(2))
			require.NoError(b, s.Close())
			b.ReportMetric(float64(dirSize(b, filepath.Join(dir, "badger")))/float64(n), "bytes/sample")
			b.ReportMetric(float64(treeSize(b, filepath.Join(dir, "badger")))/float64(n), "du-bytes/sample")
			b.ReportMetric(float64(n), "samples")
		}
	})
	b.Run("prometheus-tsdb", func(b *testing.B) {
		for b.Loop() {
			dir := b.TempDir()
			db, err := tsdb.Open(dir, nil, nil, tsdb.DefaultOptions(), nil)
			require.NoError(b, err)
			n := histBenchData(func(series []labels.Labels, hs []*histogram.Histogram, t int64) {
				app := db.AppenderV2(context.Background())
				for i, l := range series {
					_, err := app.Append(0, l, 0, t, 0, hs[i], nil, promstorage.AOptions{})
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
			b.ReportMetric(float64(n), "samples")
		}
	})
}

// BenchmarkAppendHistograms appends native histograms (20 populated
// buckets) to LUMINATE_BENCH_SERIES/10 active series (10,000 by default)
// in batches of 2,000 samples at a 15 s interval from two goroutines, as
// BenchmarkAppend does floats.
func BenchmarkAppendHistograms(b *testing.B) {
	n := max(benchSeriesCount()/10, 1)
	series := benchSeries(n)
	models := newHistModels(n)
	r := rand.New(rand.NewPCG(1, 2))
	hs := make([]*histogram.Histogram, n)
	s := openTest(b, b.TempDir(), nil)
	defer s.Close()
	ts := s.ForTenant("bench")
	rounds := 0
	for b.Loop() {
		b.StopTimer()
		for i := range models {
			hs[i] = models[i].next(r)
		}
		b.StartTimer()
		appendHistRound(b, ts, series, hs, int64(rounds)*15000, 2000, 2)
		rounds++
	}
	b.ReportMetric(float64(rounds*n)/b.Elapsed().Seconds(), "histograms/s")
}
