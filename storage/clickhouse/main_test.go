package clickhouse

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
)

func TestMain(m *testing.M) { os.Exit(chtest.RunMain(m)) }

var dbSeq atomic.Int64

// testConfig is a configuration on the shared test server with a database
// of its own, committing without waiting for company.
func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.DSN = chtest.Shared(t).DSN()
	cfg.Database = fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	cfg.FlushInterval = 0
	cfg.Retention = 0
	return cfg
}

// openStore opens a store with cfg and closes it when t ends.
func openStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := New(cfg, nil, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newTestStore(t testing.TB) *Store { return openStore(t, testConfig(t)) }

var _ storage.MetricsStore = (*Store)(nil)
