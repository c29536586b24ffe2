package clickhouse

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
)

// BenchmarkHistogramIngest appends 1000 series (LUMINATE_BENCH_HIST_SERIES)
// x 2 h at 15 s of counter histograms with 20 populated buckets from 16
// concurrent appenders, merges the table and reports histogram samples/s
// and the compressed bytes per sample ClickHouse keeps (system.parts), and
// per column; then, in a scratch table on the same server, the hist
// column's bytes with a one-sample chunkenc chunk per row instead, and
// Prometheus' own chunks of the same data.
func BenchmarkHistogramIngest(b *testing.B) {
	const (
		points    = 480
		appenders = 16
		step      = 15_000
	)
	nSeries := 1000
	if v, err := strconv.Atoi(os.Getenv("LUMINATE_BENCH_HIST_SERIES")); err == nil && v > 0 {
		nSeries = v
	}
	lsets := benchLabels(nSeries)
	hists := make([][]*histogram.Histogram, nSeries)
	for i := range hists {
		hists[i] = make([]*histogram.Histogram, points)
	}
	genHistogramSeries(nSeries, points, 0, step, 1, func(i, j int, _ int64, h *histogram.Histogram) { hists[i][j] = h })
	var elapsed time.Duration
	var bytesPerSample, rows float64
	var s *Store
	for range b.N {
		cfg := testConfig(b)
		cfg.FlushInterval = DefaultConfig().FlushInterval
		s = openStore(b, cfg)
		ts := s.ForTenant("bench")
		start0 := time.Now().Add(-3*time.Hour).UnixMilli() / step * step
		begin := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, appenders)
		per := (nSeries + appenders - 1) / appenders
		for w := range appenders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lo, hi := w*per, min((w+1)*per, nSeries)
				refs := make([]promstorage.SeriesRef, max(hi-lo, 0))
				for j := range points {
					t := start0 + int64(j)*step
					app := ts.AppenderV2(context.Background())
					for i := lo; i < hi; i++ {
						ref, err := app.Append(refs[i-lo], lsets[i], 0, t, 0, hists[i][j], nil, promstorage.AppendV2Options{})
						if err != nil {
							errs <- err
							return
						}
						refs[i-lo] = ref
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
		b.StartTimer()
	}
	b.StopTimer()
	logColumns(b, s)
	b.ReportMetric(rows*float64(b.N)/elapsed.Seconds(), "samples/s")
	b.ReportMetric(bytesPerSample, "bytes/sample")

	// The alternatives, hist column alone.
	ctx := context.Background()
	alt := s.schema.table("hist_alt")
	require.NoError(b, s.conn.Exec(ctx, "CREATE TABLE "+alt+" (fingerprint UInt64, ts Int64, varint String, chunk1 String) ENGINE = MergeTree() ORDER BY (fingerprint, ts)"))
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+alt+" (fingerprint, ts, varint, chunk1)")
	require.NoError(b, err)
	for i := range hists {
		for j, h := range hists[i] {
			c := chunkenc.NewHistogramChunk()
			app, err := c.Appender()
			require.NoError(b, err)
			_, _, _, err = app.AppendHistogram(nil, 0, int64(j)*step, h, true)
			require.NoError(b, err)
			require.NoError(b, batch.Append(uint64(i), int64(j)*step, string(appendHistogram(nil, h)), string(c.Bytes())))
		}
	}
	require.NoError(b, batch.Send())
	require.NoError(b, s.conn.Exec(ctx, "OPTIMIZE TABLE "+alt+" FINAL"))
	for _, col := range []string{"varint", "chunk1"} {
		var c, u uint64
		require.NoError(b, s.conn.QueryRow(ctx, "SELECT data_compressed_bytes, data_uncompressed_bytes FROM system.columns WHERE database = "+quote(s.schema.db)+" AND table = 'hist_alt' AND name = "+quote(col)).Scan(&c, &u))
		b.Logf("hist as %s: %.3f bytes/sample compressed, %.3f uncompressed", col, float64(c)/rows, float64(u)/rows)
	}
	b.Logf("Prometheus histogram chunks (120 samples) of the same data: %.3f bytes/sample", promChunkBytes(nSeries, points, step))
}
