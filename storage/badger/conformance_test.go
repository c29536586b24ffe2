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
	"github.com/luminate-io/luminate/tenancy"
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
// (retention 0: keep everything, the suite writes samples from 1970), or
// with per-tenant exemplar and metadata bounds (Limited), kept across
// Reopen.
func conformanceBackend() storagetest.Backend {
	type opened struct {
		dir                       string
		maxExemplars, maxMetadata int
	}
	var mu sync.Mutex
	stores := map[storage.MetricsStore]opened{}
	open := func(t testing.TB, o opened) storage.MetricsStore {
		t.Helper()
		logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
		cfg := badger.Config{Path: o.dir}
		if o.maxExemplars > 0 {
			cfg.ExemplarLimits = func(tenancy.ID) int { return o.maxExemplars }
		}
		if o.maxMetadata > 0 {
			cfg.MetadataLimits = func(tenancy.ID) int { return o.maxMetadata }
		}
		s, err := badger.New(cfg, logger, prometheus.NewRegistry())
		require.NoError(t, err, "badger.New(%s)", o.dir)
		// Close is idempotent: the suite closes some stores itself.
		t.Cleanup(func() { require.NoError(t, s.Close(), "Close %s", o.dir) })
		mu.Lock()
		stores[s] = o
		mu.Unlock()
		return s
	}
	return storagetest.Backend{
		Open: func(t testing.TB) storage.MetricsStore { return open(t, opened{dir: t.TempDir()}) },
		Reopen: func(t testing.TB, s storage.MetricsStore) storage.MetricsStore {
			t.Helper()
			mu.Lock()
			o, ok := stores[s]
			delete(stores, s)
			mu.Unlock()
			require.True(t, ok, "Reopen of a store this backend did not open")
			require.NoError(t, s.Close(), "Close before reopen")
			return open(t, o)
		},
		Limited: func(t testing.TB, maxExemplars, maxMetadata int) storage.MetricsStore {
			return open(t, opened{dir: t.TempDir(), maxExemplars: maxExemplars, maxMetadata: maxMetadata})
		},
		Retained: func(t testing.TB, p storage.RetentionPolicy) (storage.MetricsStore, func(testing.TB)) {
			logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			s, err := badger.New(badger.Config{Path: t.TempDir(), RetentionPolicy: p}, logger, prometheus.NewRegistry())
			require.NoError(t, err, "badger.New")
			t.Cleanup(func() { require.NoError(t, s.Close(), "Close") })
			return s, func(t testing.TB) { require.NoError(t, s.ApplyRetention(), "ApplyRetention") }
		},
	}
}
