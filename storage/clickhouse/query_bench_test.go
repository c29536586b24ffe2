package clickhouse

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
)

// BenchmarkQuery reads benchSeries() series x 1 h at 15 s (written once)
// the way dashboards do, and reports mean and p95 latency per query.
func BenchmarkQuery(b *testing.B) {
	const (
		points = 240
		step   = 15_000
	)
	nSeries := benchSeries()
	cfg := testConfig(b)
	cfg.FlushInterval = DefaultConfig().FlushInterval
	s := openStore(b, cfg)
	ts := s.ForTenant("bench")
	end := time.Now().UnixMilli() / step * step
	start := end - (points-1)*step
	lsets := benchLabels(nSeries)
	var wg sync.WaitGroup
	const writers = 16
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 1))
			for i := w; i < nSeries; i += writers {
				app := ts.AppenderV2(context.Background())
				v := 0.0
				for j := range points {
					v += float64(rnd.IntN(10))
					if _, err := app.Append(0, lsets[i], 0, start+int64(j)*step, v, nil, nil, promstorage.AOptions{}); err != nil {
						errs <- err
						return
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
	close(errs)
	for err := range errs {
		require.NoError(b, err)
	}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 100_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	eq := func(n, v string) *labels.Matcher { return labels.MustNewMatcher(labels.MatchEqual, n, v) }
	re := func(n, v string) *labels.Matcher { return labels.MustNewMatcher(labels.MatchRegexp, n, v) }
	cases := []struct {
		name string
		run  func(ctx context.Context) error
	}{
		{"select_one_metric_1h", func(ctx context.Context) error {
			return selectAll(ctx, ts, start, end, eq("__name__", "node_metric_7"))
		}},
		{"select_metric_and_instances_1h", func(ctx context.Context) error {
			return selectAll(ctx, ts, start, end, eq("__name__", "node_metric_7"), re("instance", "host-1[0-9].*"))
		}},
		{"label_values_instance_of_metric", func(ctx context.Context) error {
			q, err := ts.Querier(start, end)
			if err != nil {
				return err
			}
			defer q.Close()
			_, _, err = q.LabelValues(ctx, "instance", nil, eq("__name__", "node_metric_7"))
			return err
		}},
		{"promql_sum_rate_by_cluster_1h", func(ctx context.Context) error {
			qry, err := engine.NewRangeQuery(ctx, ts, nil, `sum by (cluster) (rate(node_metric_7[5m]))`, time.UnixMilli(start+5*60_000), time.UnixMilli(end), time.Minute)
			if err != nil {
				return err
			}
			defer qry.Close()
			return qry.Exec(ctx).Err
		}},
		{"promql_instance_rate_1h", func(ctx context.Context) error {
			qry, err := engine.NewRangeQuery(ctx, ts, nil, `rate(node_metric_7{instance="host-3.example.org:9100"}[5m])`, time.UnixMilli(start+5*60_000), time.UnixMilli(end), 15*time.Second)
			if err != nil {
				return err
			}
			defer qry.Close()
			return qry.Exec(ctx).Err
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var lat []time.Duration
			for range b.N {
				t0 := time.Now()
				require.NoError(b, c.run(context.Background()))
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[(len(lat)*95+99)/100-1].Microseconds())/1000, "p95-ms")
		})
	}
	b.Logf("%d series x %d samples", nSeries, points)
}

func selectAll(ctx context.Context, ts storage.TenantStore, mint, maxt int64, ms ...*labels.Matcher) error {
	q, err := ts.Querier(mint, maxt)
	if err != nil {
		return err
	}
	defer q.Close()
	set := q.Select(ctx, false, &promstorage.SelectHints{Start: mint, End: maxt}, ms...)
	n := 0
	for set.Next() {
		it := set.At().Iterator(nil)
		for it.Next() != 0 {
			n++
		}
	}
	if n == 0 && set.Err() == nil {
		return fmt.Errorf("no samples")
	}
	return set.Err()
}
