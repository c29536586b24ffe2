package badger

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/promql"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// The long-range read benchmark of issue 15: series x 7 days at 60 s
// (2,000 series by default, LUMINATE_BENCH_WEEK_SERIES to change), 10
// metric names, every sample a changing value with 2 decimals (float
// counters on even names, random-walk gauges on odd ones), all of it in
// sealed chunks in Badger, queried over the whole week at a 10-minute step
// through the PromQL engine as /api/v1/query_range runs it.
const (
	weekT0       = int64(1_700_000_000_000) // ms; retention is off in this store
	weekInterval = int64(60_000)
	weekSamples  = 7 * 24 * 60 // per series
	weekNames    = 10
)

func weekSeriesCount() int {
	if v, err := strconv.Atoi(os.Getenv("LUMINATE_BENCH_WEEK_SERIES")); err == nil && v > 0 {
		return v
	}
	return 2000
}

func weekLabels(i int) labels.Labels {
	return labels.FromStrings(
		"__name__", "metric_"+strconv.Itoa(i%weekNames),
		"job", "bench",
		"instance", fmt.Sprintf("host-%05d:9100", i/weekNames),
		"region", []string{"eu-west-1", "us-east-1", "ap-south-1"}[i%3],
	)
}

// weekStore is the loaded store, shared by every benchmark and -count run
// of one process: loading 20 M samples takes longer than the queries.
type weekStore struct {
	once  sync.Once
	dir   string
	store *Store
	n     int
	err   error
}

var week weekStore

func (w *weekStore) load(b *testing.B) *Store {
	w.once.Do(func() {
		w.n = weekSeriesCount()
		w.dir, w.err = os.MkdirTemp("", "luminate-week-*")
		if w.err != nil {
			return
		}
		w.err = w.fill()
	})
	require.NoError(b, w.err)
	return w.store
}

// fill backfills the week through the appender, oldest first, seals every
// head into Badger, reopens the store and compacts its tables, so that the
// chunks are read from Badger's tables as after a week of ingest.
func (w *weekStore) fill() error {
	cfg := Config{Path: w.dir, MinFreeBytes: -1}
	s, err := New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		return err
	}
	ts := s.ForTenant("bench")
	series := make([]labels.Labels, w.n)
	values := make([]float64, w.n)
	for i := range series {
		series[i] = weekLabels(i)
		values[i] = float64(i % 1000)
	}
	r := rand.New(rand.NewPCG(15, 3))
	const perCommit = 30 // samples per series per commit
	for p0 := 0; p0 < weekSamples; p0 += perCommit {
		app := ts.AppenderV2(context.Background())
		for i := range series {
			for p := p0; p < min(p0+perCommit, weekSamples); p++ {
				step := float64(r.IntN(1000)) / 100
				if i%2 == 1 && r.IntN(2) == 0 {
					step = -step
				}
				values[i] = float64(int64(values[i]*100+step*100)) / 100
				if _, err := app.Append(0, series[i], 0, weekT0+int64(p)*weekInterval, values[i], nil, nil, promstorage.AOptions{}); err != nil {
					return err
				}
			}
		}
		if err := app.Commit(); err != nil {
			return err
		}
	}
	s.sealIdle(time.Now().Add(24 * time.Hour))
	if err := s.Close(); err != nil {
		return err
	}
	if w.store, err = New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry()); err != nil {
		return err
	}
	// A week of ingest has had its tables compacted: a backfill leaves
	// them in level 0, every table holding a slice of time of every series,
	// which a read would seek in each.
	return w.store.db.Flatten(2)
}

// BenchmarkWeekQueryRange runs the three long-range queries of issue 15
// over the week and reports ns (and CPU ns) per stored sample the query's
// selectors cover (series selected x samples per series).
func BenchmarkWeekQueryRange(b *testing.B) {
	s := week.load(b)
	cfg := promql.DefaultConfig()
	// LUMINATE_BENCH_RANGE_PARALLELISM=1 measures the queries unsplit.
	if v, err := strconv.Atoi(os.Getenv("LUMINATE_BENCH_RANGE_PARALLELISM")); err == nil {
		cfg.RangeParallelism = v
	}
	api, err := promql.New(cfg, s, nil, nil, prometheus.NewRegistry())
	require.NoError(b, err)
	defer api.Close()
	tenant := storage.Tenant{Principal: tenancy.Principal{Tenant: "bench"}, Store: s.ForTenant("bench")}
	n := week.n
	for _, c := range []struct {
		name, query string
		series      int
	}{
		{"sum_rate", `sum(rate(metric_1[5m]))`, n / weekNames},
		{"sum_by_instance_rate", `sum by (instance) (rate(metric_7[5m]))`, n / weekNames},
		{"count_regex", `count({__name__=~"metric_.*"})`, n},
	} {
		b.Run(fmt.Sprintf("series=%d/%s", n, c.name), func(b *testing.B) {
			req := promql.ExecRequest{
				Query: c.query,
				Start: time.UnixMilli(weekT0), End: time.UnixMilli(weekT0 + (weekSamples-1)*weekInterval),
				Step: 10 * time.Minute,
			}
			b.ReportAllocs()
			cpu := cpuTime(b)
			for b.Loop() {
				res, err := api.Exec(context.Background(), tenant, req)
				if err != nil {
					b.Fatal(err)
				}
				res.Close()
			}
			samples := float64(b.N) * float64(c.series*weekSamples)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/samples, "ns/sample")
			// The process' CPU time, which other work on the machine
			// inflates less than the wall time (and parallel decoding
			// does not hide).
			b.ReportMetric(float64((cpuTime(b)-cpu).Nanoseconds())/samples, "cpu-ns/sample")
		})
	}
}

// The regex count over every series of issue 15: N series (100,000 by
// default, LUMINATE_BENCH_COUNT_SERIES to change; the figure is
// at 1M) of 8 labels and 100 metric names, 150 s of samples every 15 s in
// their heads, as just after ingest, and count({__name__=~"metric_.*"})
// over those 150 s at a 15 s step.
func countSeriesCount() int {
	if v, err := strconv.Atoi(os.Getenv("LUMINATE_BENCH_COUNT_SERIES")); err == nil && v > 0 {
		return v
	}
	return 100_000
}

var manySeries weekStore

func (w *weekStore) loadMany(b *testing.B) *Store {
	w.once.Do(func() {
		w.n = countSeriesCount()
		w.dir, w.err = os.MkdirTemp("", "luminate-count-*")
		if w.err != nil {
			return
		}
		w.store, w.err = New(Config{Path: w.dir, MinFreeBytes: -1}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		if w.err != nil {
			return
		}
		series := make([]labels.Labels, w.n)
		for i := range series {
			series[i] = labels.FromStrings(
				"__name__", "metric_"+strconv.Itoa(i%100),
				"job", "bench", "instance", fmt.Sprintf("host-%06d:9100", i/100),
				"cpu", strconv.Itoa(i%8), "mode", []string{"user", "system", "idle", "iowait"}[i%4],
				"region", []string{"eu-west-1", "us-east-1", "ap-south-1"}[i%3], "env", "prod", "zone", strconv.Itoa(i%5),
			)
		}
		values := make([]float64, w.n)
		for p := range 11 {
			for i := range values {
				values[i] += float64(i%7) + 0.25
			}
			appendRound(b, w.store.ForTenant("bench"), series, values, weekT0+int64(p)*15_000, 2000, 2)
		}
	})
	require.NoError(b, w.err)
	return w.store
}

// BenchmarkCountAllSeries reports ns per series counted.
func BenchmarkCountAllSeries(b *testing.B) {
	s := manySeries.loadMany(b)
	api, err := promql.New(promql.DefaultConfig(), s, nil, nil, prometheus.NewRegistry())
	require.NoError(b, err)
	defer api.Close()
	tenant := storage.Tenant{Principal: tenancy.Principal{Tenant: "bench"}, Store: s.ForTenant("bench")}
	b.Run(fmt.Sprintf("series=%d", manySeries.n), func(b *testing.B) {
		req := promql.ExecRequest{
			Query: `count({__name__=~"metric_.*"})`,
			Start: time.UnixMilli(weekT0), End: time.UnixMilli(weekT0 + 150_000), Step: 15 * time.Second,
		}
		b.ReportAllocs()
		cpu := cpuTime(b)
		for b.Loop() {
			res, err := api.Exec(context.Background(), tenant, req)
			if err != nil {
				b.Fatal(err)
			}
			res.Close()
		}
		n := float64(b.N) * float64(manySeries.n)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/series")
		b.ReportMetric(float64((cpuTime(b)-cpu).Nanoseconds())/n, "cpu-ns/series")
	})
}

// TestMain removes the benchmarks' stores.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, w := range []*weekStore{&week, &manySeries} {
		if w.store != nil {
			w.store.Close()
		}
		if w.dir != "" {
			os.RemoveAll(w.dir)
		}
	}
	os.Exit(code)
}
