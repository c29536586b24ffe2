package clickhouse

import (
	"fmt"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
)

// TestClusterReplicated runs the store on 2 shards x 2 replicas of 18.16
// with ZooKeeper: tables created ON CLUSTER as ReplicatedReplacingMergeTree,
// rows replicated within each shard, and ingest and reads going on with one
// replica of each shard down. Skipped when ZooKeeper is not installed.
func TestClusterReplicated(t *testing.T) {
	zk := chtest.StartZooKeeper(t)
	nodes := chtest.NewReplicatedCluster(t, 2, 2, zk)
	cfg := testConfig(t)
	cfg.DSN = nodes[0].DSN()
	cfg.Cluster = chtest.ClusterName
	cfg.Replicated = true
	s := openStore(t, cfg)
	require.True(t, s.schema.info.ZooKeeper)
	ts := s.ForTenant("r")

	writeBatch := func(name string, n int) {
		app := ts.AppenderV2(t.Context())
		for i := range n {
			_, err := app.Append(0, labels.FromStrings("__name__", name, "i", fmt.Sprint(i)), 0, 1000, float64(i), nil, nil, promstorage.AOptions{})
			require.NoError(t, err)
		}
		require.NoError(t, app.Commit())
	}
	writeBatch("before", 100)
	hists := histogramCases(2 * msPerHour)
	appendSamples(t, ts, labels.FromStrings("__name__", "replicated_hist"), hists)
	requireSameSamples(t, hists, readSamples(t, ts, "replicated_hist"))

	conns := make([]driver.Conn, len(nodes))
	for i, n := range nodes {
		opts, err := ch.ParseDSN(n.DSN())
		require.NoError(t, err)
		opts.DialTimeout = time.Second
		conns[i], err = ch.Open(opts)
		require.NoError(t, err)
		defer conns[i].Close()
	}
	count := func(i int) uint64 {
		require.NoError(t, conns[i].Exec(t.Context(), "SYSTEM SYNC REPLICA "+s.schema.table("samples_local")))
		var n uint64
		require.NoError(t, conns[i].QueryRow(t.Context(), "SELECT count() FROM "+s.schema.table("samples_local")).Scan(&n))
		return n
	}
	shard1, shard2 := count(0), count(2)
	require.Equal(t, shard1, count(1), "replicas of shard 1 agree")
	require.Equal(t, shard2, count(3), "replicas of shard 2 agree")
	require.Equal(t, uint64(100+len(hists)), shard1+shard2)
	require.NotZero(t, shard1)
	require.NotZero(t, shard2)

	// One replica of each shard down: writes and reads go on.
	nodes[1].Kill()
	nodes[3].Kill()
	writeBatch("during", 100)
	require.Len(t, readAll(t, ts, "before"), 100)
	require.Len(t, readAll(t, ts, "during"), 100)

	// Back up, the replicas catch up.
	nodes[1].Start()
	nodes[3].Start()
	for i, n := range nodes {
		opts, _ := ch.ParseDSN(n.DSN())
		conn, err := ch.Open(opts)
		require.NoError(t, err)
		conns[i].Close()
		conns[i] = conn
	}
	require.Equal(t, count(0), count(1), "shard 1 replica caught up")
	require.Equal(t, count(2), count(3), "shard 2 replica caught up")
	require.Equal(t, uint64(200+len(hists)), count(1)+count(3))
	requireSameSamples(t, hists, readSamples(t, ts, "replicated_hist"))
}
