package promql_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	pql "github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage/badger"
)

// TestHistogramQueriesThroughHTTP runs native histogram queries through
// /api/v1/query and /api/v1/query_range over Badger and checks each answer
// against the upstream engine reading the same store directly: the same
// values and annotations, and the same bytes as Prometheus' JSON codec
// writes for the engine's result (httpEngine). The data mixes integer and
// float histograms, exponential and custom buckets, negative buckets, a
// counter reset, a gauge histogram and a stale marker.
func TestHistogramQueriesThroughHTTP(t *testing.T) {
	store, err := badger.New(badger.Config{Path: t.TempDir()}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	st := openSuiteStorage(t, store, store.Close)
	t.Cleanup(func() { require.NoError(t, st.Close()) })

	const step = int64(15_000)
	app := st.AppenderV2(context.Background())
	add := func(ls labels.Labels, i int, h *histogram.Histogram, fh *histogram.FloatHistogram) {
		_, err := app.Append(0, ls, 0, int64(i)*step, 0, h, fh, promstorage.AppendV2Options{})
		require.NoError(t, err)
	}
	for i := range 40 {
		n := int64(i)
		if i >= 25 { // a counter reset
			n = int64(i - 25)
		}
		add(labels.FromStrings("__name__", "rpc", "job", "a"), i, &histogram.Histogram{
			Schema: 1, Count: uint64(6 * n), Sum: 1.5 * float64(n), ZeroThreshold: 0.001, ZeroCount: uint64(n),
			PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 1}},
			PositiveBuckets: []int64{n, 0, n}, // n n 2n
			NegativeSpans:   []histogram.Span{{Offset: 1, Length: 1}},
			NegativeBuckets: []int64{n},
		}, nil)
		add(labels.FromStrings("__name__", "rpc", "job", "b"), i, nil, &histogram.FloatHistogram{
			Schema: 0, Count: 2.5 * float64(i), Sum: 10.25 * float64(i),
			PositiveSpans:   []histogram.Span{{Offset: -1, Length: 3}},
			PositiveBuckets: []float64{0.5 * float64(i), float64(i), float64(i)},
		})
		add(labels.FromStrings("__name__", "nhcb", "job", "a"), i, &histogram.Histogram{
			Schema: histogram.CustomBucketsSchema, Count: uint64(4 * i), Sum: 0.3 * float64(i),
			PositiveSpans:   []histogram.Span{{Offset: 0, Length: 4}},
			PositiveBuckets: []int64{int64(i), 0, 0, 0}, // i i i i
			CustomValues:    []float64{0.1, 0.5, 1},
		}, nil)
		add(labels.FromStrings("__name__", "temps", "room", "x"), i, nil, &histogram.FloatHistogram{
			Schema: 2, Count: 3, Sum: float64(20 + i%5), CounterResetHint: histogram.GaugeType,
			PositiveSpans:   []histogram.Span{{Offset: 17, Length: 2}},
			PositiveBuckets: []float64{1, 2},
		})
	}
	stale := &histogram.Histogram{Sum: math.Float64frombits(value.StaleNaN)}
	add(labels.FromStrings("__name__", "temps", "room", "x"), 40, stale, nil)
	require.NoError(t, app.Commit())

	direct := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
	eng := &httpEngine{direct: direct}
	at := time.UnixMilli(30 * step)
	for _, q := range []string{
		`rpc`, `nhcb`, `temps`, `rpc[1m]`,
		`histogram_quantile(0.9, rpc)`, `histogram_quantile(0.5, nhcb)`, `histogram_quantile(0.2, temps)`,
		`histogram_count(rpc)`, `histogram_sum(rpc)`, `histogram_avg(rpc)`,
		`histogram_fraction(0, 1, rpc)`, `histogram_fraction(-1, 0.5, nhcb)`,
		`histogram_stddev(rpc)`, `histogram_stdvar(nhcb)`,
		`rate(rpc[2m])`, `increase(rpc[5m])`, `increase(nhcb[5m])`, `delta(temps[2m])`, `rate(temps[2m])`,
		`sum by (job) (rpc)`, `sum(rate(rpc[2m]))`, `sum by (job) ({__name__=~"rpc|nhcb"})`,
		`histogram_quantile(0.99, sum by (job) (rate(rpc[2m])))`,
		`histogram_count(sum(increase(nhcb[5m])))`, `avg_over_time(temps[2m])`,
		`rpc * 2`, `rpc / on(job) group_left histogram_count(rpc)`,
	} {
		for _, instant := range []bool{true, false} {
			var qry pql.Query
			var err error
			if instant {
				qry, err = eng.NewInstantQuery(t.Context(), st, nil, q, at)
			} else {
				qry, err = eng.NewRangeQuery(t.Context(), st, nil, q, time.UnixMilli(0), time.UnixMilli(41*step), time.Duration(step)*time.Millisecond)
			}
			if err != nil && !instant && q == `rpc[1m]` {
				continue // a range query of a range vector is an error, the same through HTTP
			}
			require.NoError(t, err, "%s (instant %v)", q, instant)
			res := qry.Exec(t.Context())
			require.NoError(t, res.Err, q)
		}
	}
	require.Positive(t, eng.queries)

	// The values are the stored ones, not just equal through both paths.
	qry, err := eng.NewInstantQuery(t.Context(), st, nil, `histogram_count(rpc{job="a"}) + histogram_sum(nhcb)`, at)
	require.NoError(t, err)
	v := qry.Exec(t.Context()).Value.(pql.Vector)
	require.Len(t, v, 1)
	require.Equal(t, float64(6*(30-25))+0.3*30, v[0].F)
	qry, err = eng.NewInstantQuery(t.Context(), st, nil, `temps`, time.UnixMilli(40*step+1))
	require.NoError(t, err)
	require.Empty(t, qry.Exec(t.Context()).Value.(pql.Vector), "the stale marker ends the series")
}
