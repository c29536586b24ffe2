package clickhouse

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/storagetest"
	"github.com/luminate-io/luminate/tenancy"
)

// backend opens each store on a database of its own on the shared server;
// Reopen closes the store and opens a new one over the same database.
func backend() storagetest.Backend {
	return storagetest.Backend{
		StatsMissRewritten: true,
		Open:               func(t testing.TB) storage.MetricsStore { return newTestStore(t) },
		Reopen: func(t testing.TB, s storage.MetricsStore) storage.MetricsStore {
			old := s.(*Store)
			require.NoError(t, old.Close())
			return openStore(t, old.cfg)
		},
		Limited: func(t testing.TB, maxExemplars, maxMetadata int) storage.MetricsStore {
			cfg := testConfig(t)
			cfg.ExemplarLimits = func(tenancy.ID) int { return maxExemplars }
			cfg.MetadataLimits = func(tenancy.ID) int { return maxMetadata }
			return openStore(t, cfg)
		},
		Retained: func(t testing.TB, p storage.RetentionPolicy) (storage.MetricsStore, func(testing.TB)) {
			cfg := testConfig(t)
			cfg.RetentionPolicy = p
			s := openStore(t, cfg)
			return s, func(t testing.TB) { require.NoError(t, s.retentionNow(t.Context()), "retention pass") }
		},
	}
}

func TestConformance(t *testing.T) { storagetest.Run(t, backend()) }

func TestPromQL(t *testing.T) { storagetest.RunPromQL(t, backend()) }
