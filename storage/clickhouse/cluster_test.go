package clickhouse

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
)

// TestClusterTwoShards runs the store over two 18.16 servers behind
// Distributed tables (no ZooKeeper: tables created on each node). Series
// must spread over both shards and every read must merge them.
func TestClusterTwoShards(t *testing.T) {
	nodes := chtest.NewCluster(t, 2)
	cfg := testConfig(t)
	cfg.DSN = nodes[0].DSN()
	cfg.Cluster = chtest.ClusterName
	s := openStore(t, cfg)
	ts := s.ForTenant("c")

	const n = 200
	app := ts.AppenderV2(t.Context())
	for i := range n {
		lset := labels.FromStrings("__name__", "spread", "i", fmt.Sprint(i), "parity", fmt.Sprint(i%2))
		for j := range 3 {
			_, err := app.Append(0, lset, 0, int64(j)*1000, float64(i*10+j), nil, nil, promstorage.AOptions{})
			require.NoError(t, err)
		}
	}
	require.NoError(t, app.Commit())

	// Each shard holds part of the series, and between them all of them.
	var total uint64
	for k, node := range nodes {
		opts, err := ch.ParseDSN(node.DSN())
		require.NoError(t, err)
		conn, err := ch.Open(opts)
		require.NoError(t, err)
		var series, samples uint64
		require.NoError(t, conn.QueryRow(t.Context(), "SELECT uniqExact(fingerprint) FROM "+s.schema.table("series_local")).Scan(&series))
		require.NoError(t, conn.QueryRow(t.Context(), "SELECT count() FROM "+s.schema.table("samples_local")).Scan(&samples))
		conn.Close()
		t.Logf("shard %d: %d series, %d samples", k+1, series, samples)
		require.Greater(t, series, uint64(n/4), "shard %d holds too few series", k+1)
		require.Equal(t, 3*series, samples, "shard %d: samples live with their series", k+1)
		total += series
	}
	require.Equal(t, uint64(n), total)

	q, err := ts.Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	for _, sorted := range []bool{true, false} {
		set := q.Select(t.Context(), sorted, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "spread"))
		seen := 0
		for set.Next() {
			var i int
			_, err := fmt.Sscan(set.At().Labels().Get("i"), &i)
			require.NoError(t, err)
			it := set.At().Iterator(nil)
			for j := 0; j < 3; j++ {
				require.NotZero(t, it.Next())
				tt, v := it.At()
				require.Equal(t, int64(j)*1000, tt)
				require.Equal(t, float64(i*10+j), v)
			}
			require.Zero(t, it.Next())
			seen++
		}
		require.NoError(t, set.Err())
		require.Equal(t, n, seen, "sorted=%v", sorted)
	}

	vals, _, err := q.LabelValues(t.Context(), "parity", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"0", "1"}, vals)
	vals, _, err = q.LabelValues(t.Context(), "i", nil, labels.MustNewMatcher(labels.MatchRegexp, "i", "1[0-9]"))
	require.NoError(t, err)
	require.Len(t, vals, 10)

	// Exact time ranges use IN subqueries across both tables.
	q2, err := ts.Querier(500, 1500)
	require.NoError(t, err)
	names, _, err := q2.LabelNames(t.Context(), nil, labels.MustNewMatcher(labels.MatchEqual, "parity", "1"))
	require.NoError(t, err)
	require.Equal(t, []string{"__name__", "i", "parity"}, names)
	set := q2.Select(t.Context(), true, &promstorage.SelectHints{Start: 500, End: 1500, Func: "series"})
	listed := 0
	for set.Next() {
		listed++
	}
	require.NoError(t, set.Err())
	require.Equal(t, n, listed)
	q3, err := ts.Querier(1500, 1900)
	require.NoError(t, err)
	names, _, err = q3.LabelNames(t.Context(), nil)
	require.NoError(t, err)
	require.Empty(t, names, "no sample in (1000, 2000)")

	// Last write wins across the cluster.
	write(t, ts, labels.FromStrings("__name__", "spread", "i", "7", "parity", "1"), 1000, -1)
	got := readAll(t, ts, "spread")
	require.Len(t, got, 3*n)
	require.Contains(t, got, sample{1000, -1})
	require.NotContains(t, got, sample{1000, 71})

	// Histograms through the Distributed table, overwritten across kinds.
	hists := histogramCases(2 * msPerHour)
	for k := range 4 {
		appendSamples(t, ts, labels.FromStrings("__name__", "cluster_hist", "k", fmt.Sprint(k)), hists)
	}
	appendSamples(t, ts, labels.FromStrings("__name__", "cluster_hist", "k", "0"), []hsample{{t: hists[1].t, v: 5}})
	got2 := readSamples(t, ts, "cluster_hist")
	want := slices.Clone(hists)
	want[1] = hsample{t: hists[1].t, v: 5}
	requireSameSamples(t, append(want, slices.Repeat(hists, 3)...), got2)

	// Retention drops old partitions on both shards.
	write(t, ts, labels.FromStrings("__name__", "recent"), 40*msPerDay, 1)
	s.cfg.Retention = 24 * time.Hour
	require.NoError(t, s.applyRetention(t.Context(), time.UnixMilli(40*msPerDay)))
	s.cfg.Retention = 0 // reads clamp to the retention at the real now
	require.Empty(t, readAll(t, ts, "spread"), "day 0 dropped on every shard")
	require.Equal(t, []sample{{40 * msPerDay, 1}}, readAll(t, ts, "recent"))

	card, err := ts.Cardinality(t.Context(), storage.CardinalityRequest{Limit: 5})
	require.NoError(t, err)
	require.Equal(t, uint64(1), card.NumSeries)
	require.Equal(t, int64(40*msPerDay), card.MinTime)
}
