package badger

import (
	"log/slog"
	"math"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/storagetest"
)

// scaleSeries is the series count of the scale tests:
// LUMINATE_CARDINALITY_SERIES (1000000 for the figures in
// docs/operations.md), 20000 by default.
func scaleSeries(t *testing.T) int {
	n := 20_000
	if v := os.Getenv("LUMINATE_CARDINALITY_SERIES"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err)
	}
	return n
}

// TestCardinalityScale writes scaleSeries series to a Badger store and
// measures each cardinality request.
func TestCardinalityScale(t *testing.T) {
	n := scaleSeries(t)
	s, err := New(Config{Path: t.TempDir()}, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})), prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	ts := s.ForTenant("scale")
	now := time.Now().UnixMilli()
	start := time.Now()
	for lo := 0; lo < n; lo += 10_000 {
		app := ts.AppenderV2(t.Context())
		for i := lo; i < min(lo+10_000, n); i++ {
			_, err := app.Append(0, storagetest.CardinalityScaleSeries(i), 0, now, 1, nil, nil, promstorage.AOptions{})
			require.NoError(t, err)
		}
		require.NoError(t, app.Commit())
	}
	t.Logf("wrote %d series in %s", n, time.Since(start).Round(time.Millisecond))
	storagetest.MeasureCardinality(t, ts, n, 5)
}

// TestCardinalityStatsAfterRemoval: after retention removes series, the
// maintained statistics equal a recount of the remaining series.
func TestCardinalityStatsAfterRemoval(t *testing.T) {
	s, err := New(Config{Path: t.TempDir()}, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})), prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	ts := s.ForTenant("r")
	app := ts.AppenderV2(t.Context())
	for i := range 1000 {
		// Half the series old (t=1000), half new (t=10^12).
		tm := int64(1000)
		if i%2 == 0 {
			tm = 1_000_000_000_000
		}
		_, err := app.Append(0, storagetest.CardinalityScaleSeries(i), 0, tm, 1, nil, nil, promstorage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	// Close the heads so retention may drop the old series.
	tn, err := s.tenantFor("r", false)
	require.NoError(t, err)
	s.sealIdle(time.Now().Add(time.Hour + s.cfg.IdleTimeout))
	require.NoError(t, s.deleteBefore(2000))

	req := storage.CardinalityRequest{Limit: 0, FocusLabel: "job", LabelNames: []string{"instance"}}
	stats := tn.statsCardinality(req)
	recount := tn.selectedCardinality(req, math.MinInt64)
	require.Equal(t, uint64(500), stats.NumSeries, "the old half is gone")
	stats.MinTime, recount.MinTime = 0, 0
	require.Equal(t, recount, stats, "maintained statistics equal a recount")
}
