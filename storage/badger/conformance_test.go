package badger_test

import (
	"log/slog"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/badger"
	"github.com/luminate-io/luminate/storage/storagetest"
)

// TestConformance runs the storage conformance suite on Badger stores in
// t.TempDir().
func TestConformance(t *testing.T) {
	storagetest.Run(t, conformanceBackend())
}

// TestConformancePromQL runs the upstream PromQL acceptance suite on Badger.
func TestConformancePromQL(t *testing.T) {
	storagetest.RunPromQL(t, conformanceBackend())
}

// conformanceBackend opens Badger stores with the default configuration
// (retention 0: keep everything, the suite writes samples from 1970).
func conformanceBackend() storagetest.Backend {
	var mu sync.Mutex
	dirs := map[storage.MetricsStore]string{}
	open := func(t testing.TB, dir string) storage.MetricsStore {
		t.Helper()
		logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
		s, err := badger.New(badger.Config{Path: dir}, logger, prometheus.NewRegistry())
		require.NoError(t, err, "badger.New(%s)", dir)
		// Close is idempotent: the suite closes some stores itself.
		t.Cleanup(func() { require.NoError(t, s.Close(), "Close %s", dir) })
		mu.Lock()
		dirs[s] = dir
		mu.Unlock()
		return s
	}
	return storagetest.Backend{
		Open: func(t testing.TB) storage.MetricsStore { return open(t, t.TempDir()) },
		Reopen: func(t testing.TB, s storage.MetricsStore) storage.MetricsStore {
			t.Helper()
			mu.Lock()
			dir, ok := dirs[s]
			delete(dirs, s)
			mu.Unlock()
			require.True(t, ok, "Reopen of a store this backend did not open")
			require.NoError(t, s.Close(), "Close before reopen")
			return open(t, dir)
		},
	}
}
