package clickhouse

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
	"github.com/luminate-io/luminate/storage/storagetest"
)

// TestDeleteConformance runs the deletion cases on ClickHouse.
func TestDeleteConformance(t *testing.T) { storagetest.RunDelete(t, backend()) }

// TestDeleteClusterTwoShards runs them over two 18.16 shards behind
// Distributed tables: tombstones live on their series' shard, reads merge
// them, cleaning mutates every node's local tables.
func TestDeleteClusterTwoShards(t *testing.T) {
	nodes := chtest.NewCluster(t, 2)
	open := func(t testing.TB) storage.MetricsStore {
		cfg := testConfig(t)
		cfg.DSN = nodes[0].DSN()
		cfg.Cluster = chtest.ClusterName
		return openStore(t, cfg)
	}
	storagetest.RunDelete(t, storagetest.Backend{
		StatsMissRewritten: true,
		Open:               open,
		Reopen: func(t testing.TB, s storage.MetricsStore) storage.MetricsStore {
			old := s.(*Store)
			require.NoError(t, old.Close())
			return openStore(t, old.cfg)
		},
		Limited: func(t testing.TB, _, _ int) storage.MetricsStore { return open(t) },
	})
}

// TestDeleteClusterReplicated runs them over two shards of two replicas
// each (ReplicatedReplacingMergeTree, ZooKeeper): a tombstone inserted
// through one replica is read through any, and the cleaning mutations
// replicate.
func TestDeleteClusterReplicated(t *testing.T) {
	zk := chtest.StartZooKeeper(t)
	nodes := chtest.NewReplicatedCluster(t, 2, 2, zk)
	open := func(t testing.TB) storage.MetricsStore {
		cfg := testConfig(t)
		cfg.DSN = nodes[0].DSN()
		cfg.Cluster = chtest.ClusterName
		cfg.Replicated = true
		return openStore(t, cfg)
	}
	storagetest.RunDelete(t, storagetest.Backend{
		StatsMissRewritten: true,
		Open:               open,
		Reopen: func(t testing.TB, s storage.MetricsStore) storage.MetricsStore {
			old := s.(*Store)
			require.NoError(t, old.Close())
			return openStore(t, old.cfg)
		},
		Limited: func(t testing.TB, _, _ int) storage.MetricsStore { return open(t) },
	})
}
