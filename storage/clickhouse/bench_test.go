package clickhouse

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// benchSeries is the number of series the benchmarks write
// (LUMINATE_BENCH_SERIES overrides it).
func benchSeries() int {
	if v, err := strconv.Atoi(os.Getenv("LUMINATE_BENCH_SERIES")); err == nil && v > 0 {
		return v
	}
	return 10_000
}

// benchLabels returns n series of 8 labels each, node-exporter style.
func benchLabels(n int) []labels.Labels {
	out := make([]labels.Labels, n)
	for i := range out {
		out[i] = labels.FromStrings(
			"__name__", fmt.Sprintf("node_metric_%d", i%50),
			"instance", fmt.Sprintf("host-%d.example.org:9100", i/50%1000),
			"job", "node",
			"cluster", fmt.Sprintf("c%d", i%3),
			"region", "eu-west-1",
			"env", "prod",
			"cpu", strconv.Itoa(i%8),
			"id", strconv.Itoa(i),
		)
	}
	return out
}

// valueModel gives sample j of series i.
type valueModel func(i, j int, prev float64, rnd *rand.Rand) float64

var valueModels = []struct {
	name string
	f    valueModel
}{
	// Counters with small integer steps and mostly constant gauges.
	{"node", func(i, j int, prev float64, rnd *rand.Rand) float64 {
		if i%2 == 0 {
			return prev + float64(rnd.IntN(5))
		}
		if rnd.IntN(20) == 0 {
			return float64(rnd.IntN(100))
		}
		return prev
	}},
	// Gauges doing a random walk with two decimals.
	{"randomwalk", func(i, j int, prev float64, rnd *rand.Rand) float64 {
		return math.Round((prev+rnd.Float64()*2-1)*100) / 100
	}},
}

// BenchmarkIngest appends benchSeries() series x 120 samples (15 s
// interval) from 16 concurrent appenders (as remote-write
// requests arrive) committing 2,000 samples each, then
// merges the table and reports samples/s and the compressed bytes per
// sample ClickHouse keeps (system.parts).
func BenchmarkIngest(b *testing.B) {
	const (
		points    = 120
		batch     = 2000
		appenders = 16
		step      = 15_000
	)
	nSeries := benchSeries()
	lsets := benchLabels(nSeries)
	for _, model := range valueModels {
		b.Run(model.name, func(b *testing.B) {
			// Values precomputed: the benchmark measures the store.
			vals := make([][]float64, nSeries)
			rnd := rand.New(rand.NewPCG(1, 2))
			for i := range vals {
				vals[i] = make([]float64, points)
				prev := float64(rnd.IntN(1000))
				for j := range vals[i] {
					prev = model.f(i, j, prev, rnd)
					vals[i][j] = prev
				}
			}
			var elapsed time.Duration
			var bytesPerSample, rows float64
			for range b.N {
				cfg := testConfig(b)
				cfg.FlushInterval = DefaultConfig().FlushInterval
				s := openStore(b, cfg)
				ts := s.ForTenant("bench")
				start0 := time.Now().Add(-time.Hour).UnixMilli() / step * step
				begin := time.Now()
				var wg sync.WaitGroup
				errs := make(chan error, appenders)
				per := (nSeries + appenders - 1) / appenders
				for w := range appenders {
					wg.Add(1)
					go func() {
						defer wg.Done()
						lo, hi := w*per, min((w+1)*per, nSeries)
						refs := make([]promstorage.SeriesRef, hi-lo)
						for j := range points {
							t := start0 + int64(j)*step
							app := ts.AppenderV2(context.Background())
							n := 0
							for i := lo; i < hi; i++ {
								ref, err := app.Append(refs[i-lo], lsets[i], 0, t, vals[i][j], nil, nil, promstorage.AOptions{})
								if err != nil {
									errs <- err
									return
								}
								refs[i-lo] = ref
								if n++; n == batch {
									if err := app.Commit(); err != nil {
										errs <- err
										return
									}
									app, n = ts.AppenderV2(context.Background()), 0
								}
							}
							if err := app.Commit(); err != nil {
								errs <- err
								return
							}
						}
					}()
				}
				wg.Wait()
				elapsed += time.Since(begin)
				close(errs)
				for err := range errs {
					require.NoError(b, err)
				}
				b.StopTimer()
				mergeFully(b, s)
				var compressed, n uint64
				require.NoError(b, s.conn.QueryRow(context.Background(),
					"SELECT sum(data_compressed_bytes), sum(rows) FROM system.parts WHERE active AND database = "+quote(s.schema.db)+" AND table = "+quote(samplesTable)).Scan(&compressed, &n))
				require.Equal(b, uint64(nSeries*points), n)
				bytesPerSample, rows = float64(compressed)/float64(n), float64(n)
				if b.N == 1 {
					logColumns(b, s)
				}
				b.StartTimer()
			}
			b.ReportMetric(rows*float64(b.N)/elapsed.Seconds(), "samples/s")
			b.ReportMetric(bytesPerSample, "bytes/sample")
		})
	}
}

func logColumns(b *testing.B, s *Store) {
	rows, err := s.conn.Query(context.Background(), "SELECT name, data_compressed_bytes, data_uncompressed_bytes FROM system.columns WHERE database = "+quote(s.schema.db)+" AND table = "+quote(samplesTable))
	require.NoError(b, err)
	defer rows.Close()
	for rows.Next() {
		var name string
		var c, u uint64
		require.NoError(b, rows.Scan(&name, &c, &u))
		b.Logf("column %-12s compressed %10d uncompressed %10d", name, c, u)
	}
}

// mergeFully merges the samples table down to one part per partition
// (OPTIMIZE returns without merging while another merge runs).
func mergeFully(tb testing.TB, s *Store) {
	for range 50 {
		require.NoError(tb, s.conn.Exec(context.Background(), "OPTIMIZE TABLE "+s.schema.table(samplesTable)+" FINAL"))
		var parts, partitions uint64
		require.NoError(tb, s.conn.QueryRow(context.Background(),
			"SELECT count(), uniqExact(partition) FROM system.parts WHERE active AND database = "+quote(s.schema.db)+" AND table = "+quote(samplesTable)).Scan(&parts, &partitions))
		if parts == partitions {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	tb.Fatal("samples table did not merge to one part per partition")
}
