package clickhouse

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// TestActiveSeriesAcrossPods: two stores on one ClickHouse database (two
// pods) count a tenant's active series tenant-wide, by the definition
// Badger shares (storage.ActiveSince): history before the window is not
// active and not refused; the series limit holds for both pods together,
// within one recount of what the other pod created.
func TestActiveSeriesAcrossPods(t *testing.T) {
	cfg := testConfig(t)
	cfg.SeriesLimits = func(tenancy.ID) int { return 6 }
	a, b := openStore(t, cfg), openStore(t, cfg)
	ctx := t.Context()
	now := time.Now()
	cutoff := storage.ActiveSince(now, 0)
	appendOne := func(s *Store, name string, i int, ts int64) error {
		app := s.ForTenant("acme").AppenderV2(ctx)
		if _, err := app.Append(0, labels.FromStrings("__name__", name, "i", fmt.Sprint(i)), 0, ts, 1, nil, nil, promstorage.AOptions{}); err != nil {
			require.NoError(t, app.Rollback())
			return err
		}
		return app.Commit()
	}
	for i := range 10 { // history: not active, not refused
		require.NoError(t, appendOne(a, "old", i, cutoff-1-int64(i)))
	}
	for i := range 3 {
		require.NoError(t, appendOne(a, "new", i, now.UnixMilli()))
	}
	for i := 3; i < 5; i++ {
		require.NoError(t, appendOne(b, "new", i, now.UnixMilli()))
	}
	require.NoError(t, appendOne(b, "new", 0, now.UnixMilli()), "the same series through the other pod")
	// A recount (what happens every activeRecount) sees both pods' series.
	for _, s := range []*Store{a, b} {
		s.tenantState("acme").active.mu.Lock()
		s.tenantState("acme").active.at = time.Time{}
		s.tenantState("acme").active.mu.Unlock()
		n, err := s.activeSeries(ctx, "acme")
		require.NoError(t, err)
		require.EqualValues(t, 5, n, "tenant-wide, the series written through both pods once each")
	}
	require.NoError(t, appendOne(a, "new", 5, now.UnixMilli()), "the 6th")
	err := appendOne(a, "new", 6, now.UnixMilli())
	require.True(t, errors.Is(err, storage.ErrSeriesLimit), "the 7th on the pod that made the 6th: %v", err)
	require.NoError(t, appendOne(b, "new", 1, now.UnixMilli()), "existing series flow on either pod")

	// A third pod starting counts them all at once.
	c := openStore(t, cfg)
	err = appendOne(c, "new", 7, now.UnixMilli())
	require.True(t, errors.Is(err, storage.ErrSeriesLimit), "a new pod knows the tenant's 6 active series: %v", err)
	n, err := c.activeSeries(ctx, "acme")
	require.NoError(t, err)
	require.EqualValues(t, 6, n)
}

// TestActiveSeriesCountCost times the tenant-wide count at 1,000,000
// series with rows for the two hours of the window (and 22 older hours of
// the same day partition), as the series limit recounts it every 10s.
// LUMINATE_ACTIVE_COST=1 runs it.
func TestActiveSeriesCountCost(t *testing.T) {
	if os.Getenv("LUMINATE_ACTIVE_COST") != "1" {
		t.Skip("LUMINATE_ACTIVE_COST=1 runs it")
	}
	cfg := testConfig(t)
	s := openStore(t, cfg)
	now := hourOf(time.Now().UnixMilli())
	for h := now - 23; h <= now; h++ {
		require.NoError(t, s.conn.Exec(t.Context(), fmt.Sprintf(
			"INSERT INTO %s (tenant, hour, min_ts, fingerprint, metric_name, label_names, label_values) SELECT 'acme', toInt32(%d), toInt64(%d), number, concat('m', toString(number %% 1000)), ['__name__', 'i'], [concat('m', toString(number %% 1000)), toString(number)] FROM system.numbers LIMIT 1000000",
			s.schema.table(seriesTable), h, int64(h)*msPerHour)))
	}
	st := s.tenantState("acme")
	for range 3 {
		st.active.mu.Lock()
		st.active.at = time.Time{}
		st.active.mu.Unlock()
		start := time.Now()
		n, err := s.activeSeries(t.Context(), "acme")
		require.NoError(t, err)
		require.EqualValues(t, 1_000_000, n)
		t.Logf("counted %d active series in %s", n, time.Since(start))
	}
}
