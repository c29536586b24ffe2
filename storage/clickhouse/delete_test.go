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
		Open: open,
		Reopen: func(t testing.TB, s storage.MetricsStore) storage.MetricsStore {
			old := s.(*Store)
			require.NoError(t, old.Close())
			return openStore(t, old.cfg)
		},
		Limited: func(t testing.TB, _, _ int) storage.MetricsStore { return open(t) },
	})
}
