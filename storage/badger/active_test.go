package badger

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

func appendOne(t *testing.T, s *Store, id tenancy.ID, lset labels.Labels, ts int64) error {
	t.Helper()
	app := s.ForTenant(id).AppenderV2(context.Background())
	if _, err := app.Append(0, lset, 0, ts, 1, nil, nil, promstorage.AOptions{}); err != nil {
		require.NoError(t, app.Rollback())
		return err
	}
	return app.Commit()
}

// TestActiveSeriesDefinition: a series is active when it has a sample at
// or after the start of the hour holding now - window (storage.ActiveSince),
// whatever its head; the series limit counts exactly those, and survives
// a restart.
func TestActiveSeriesDefinition(t *testing.T) {
	dir := t.TempDir()
	cfg := func(c *Config) {
		c.SeriesLimits = func(tenancy.ID) int { return 3 }
	}
	s := openTest(t, dir, cfg)
	now := time.Now()
	cutoff := storage.ActiveSince(now, 0)
	require.Equal(t, now.Add(-time.Hour).Truncate(time.Hour).UnixMilli(), cutoff)
	ctx := context.Background()

	// Backfilled series (samples before the window) are not active.
	for i := range 5 {
		require.NoError(t, appendOne(t, s, "a", labels.FromStrings("__name__", "old", "i", fmt.Sprint(i)), cutoff-1-int64(i)))
	}
	n, err := s.activeSeries(ctx, "a")
	require.NoError(t, err)
	require.EqualValues(t, 0, n, "samples before the window: not active")

	for i := range 3 {
		require.NoError(t, appendOne(t, s, "a", labels.FromStrings("__name__", "new", "i", fmt.Sprint(i)), cutoff+int64(i)))
	}
	n, err = s.activeSeries(ctx, "a")
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	err = appendOne(t, s, "a", labels.FromStrings("__name__", "new", "i", "3"), now.UnixMilli())
	require.ErrorIs(t, err, storage.ErrSeriesLimit, "the 4th active series")
	require.NoError(t, appendOne(t, s, "a", labels.FromStrings("__name__", "new", "i", "0"), now.UnixMilli()), "existing series flow")
	// An old series written again now becomes active: it is no new
	// series, so the limit does not refuse it.
	require.NoError(t, appendOne(t, s, "a", labels.FromStrings("__name__", "old", "i", "0"), now.UnixMilli()))
	n, err = s.activeSeries(ctx, "a")
	require.NoError(t, err)
	require.EqualValues(t, 4, n)

	// Sealing idle heads changes nothing: active is about samples, not heads.
	s.sealIdle(now.Add(time.Hour))
	n, err = s.activeSeries(ctx, "a")
	require.NoError(t, err)
	require.EqualValues(t, 4, n)

	require.NoError(t, s.Close())
	s = openTest(t, dir, cfg)
	defer s.Close()
	n, err = s.activeSeries(ctx, "a")
	require.NoError(t, err)
	require.EqualValues(t, 4, n, "after a restart")
	require.ErrorIs(t, appendOne(t, s, "a", labels.FromStrings("__name__", "new", "i", "9"), now.UnixMilli()), storage.ErrSeriesLimit)
}
