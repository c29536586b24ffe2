package clickhouse

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/storagetest"
	"github.com/luminate-io/luminate/tenancy"
)

// TestCardinalityScale writes LUMINATE_CARDINALITY_SERIES series (20000
// by default; 1000000 for the figures in docs/operations.md) through the
// store and measures each cardinality request on the statistics.
func TestCardinalityScale(t *testing.T) {
	n := 20_000
	if v := os.Getenv("LUMINATE_CARDINALITY_SERIES"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err)
	}
	s := newTestStore(t)
	ts := s.ForTenant("scale")
	now := time.Now().UnixMilli()
	start := time.Now()
	for lo := 0; lo < n; lo += 50_000 {
		app := ts.AppenderV2(t.Context())
		for i := lo; i < min(lo+50_000, n); i++ {
			_, err := app.Append(0, storagetest.CardinalityScaleSeries(i), 0, now, 1, nil, nil, promstorage.AOptions{})
			require.NoError(t, err)
		}
		require.NoError(t, app.Commit())
	}
	t.Logf("wrote %d series in %s", n, time.Since(start).Round(time.Millisecond))
	storagetest.MeasureCardinality(t, ts, n, 5)
}

// TestForgetSeries: series forgotten (deleted for good) stop counting at
// once, in every day they had, for the tenant that deleted them only.
func TestForgetSeries(t *testing.T) {
	s := newTestStore(t)
	const day = msPerDay
	for _, id := range []string{"a", "b"} {
		app := s.ForTenant(tenancy.ID(id)).AppenderV2(t.Context())
		for i := range 10 {
			_, err := app.Append(0, storagetest.CardinalityScaleSeries(i), 0, day+1000, 1, nil, nil, promstorage.AOptions{})
			require.NoError(t, err)
			_, err = app.Append(0, storagetest.CardinalityScaleSeries(i), 0, 3*day+1000, 1, nil, nil, promstorage.AOptions{})
			require.NoError(t, err)
		}
		require.NoError(t, app.Commit())
	}
	card := func(id string, req storage.CardinalityRequest) storage.Cardinality {
		c, err := s.ForTenant(tenancy.ID(id)).Cardinality(t.Context(), req)
		require.NoError(t, err)
		return c
	}
	require.Equal(t, uint64(10), card("a", storage.CardinalityRequest{Limit: 5}).NumSeries)

	var gone []forgottenSeries
	for i := range 3 {
		lset := storagetest.CardinalityScaleSeries(i)
		fp, _ := fingerprint("a", lset, nil)
		gone = append(gone, forgottenSeries{fingerprint: fp, lset: lset})
	}
	require.NoError(t, s.forgetSeries(t.Context(), "a", gone))
	all := card("a", storage.CardinalityRequest{Limit: 100, LabelNames: []string{"__name__"}})
	require.Equal(t, uint64(7), all.NumSeries, "forgotten series stop counting at once")
	for _, c := range all.ByMetricName {
		require.NotContains(t, []string{"metric_00", "metric_01", "metric_02"}, c.Name)
	}
	require.Equal(t, uint64(7), card("a", storage.CardinalityRequest{Limit: 5, Start: day, End: 2*day - 1}).NumSeries, "on the first day")
	require.Equal(t, uint64(7), card("a", storage.CardinalityRequest{Limit: 5, Start: 3 * day, End: 4*day - 1}).NumSeries, "on the last day")
	require.Equal(t, uint64(7), card("a", storage.CardinalityRequest{Limit: 5, Matchers: [][]*labels.Matcher{{labels.MustNewMatcher(labels.MatchRegexp, "__name__", "metric_0.")}}}).NumSeries, "with a metric matcher")
	require.Equal(t, uint64(10), card("b", storage.CardinalityRequest{Limit: 5}).NumSeries, "another tenant's series with the same labels still count")
}

// TestStatsMigration opens a store on a database of the release before
// the statistics (migrations 1 to 5) holding series rows: migration 7
// fills the statistics from them, and the store counts them.
func TestStatsMigration(t *testing.T) {
	cfg := testConfig(t)
	conn := testConn(t)
	ctx := t.Context()
	info, err := detectServer(ctx, connRunner{conn})
	require.NoError(t, err)
	old := schema{db: cfg.Database, info: info}
	applied, err := old.migrateThrough(ctx, connRunner{conn}, migrations[:5])
	require.NoError(t, err)
	require.Equal(t, []int{1, 2, 3, 4, 5}, applied)
	for i := range 3 {
		lset := storagetest.CardinalityScaleSeries(i)
		fp, _ := fingerprint("m", lset, nil)
		require.NoError(t, conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s (tenant, hour, min_ts, fingerprint, metric_name, label_names, label_values) SELECT 'm', %d, 1000, toUInt64(%d), %s, ['__name__', 'instance', 'job'], [%s, %s, %s]",
			old.table(seriesTable), i, fp, quote(lset.Get("__name__")), quote(lset.Get("__name__")), quote(lset.Get("instance")), quote(lset.Get("job")))))
	}
	s := openStore(t, cfg)
	c, err := s.ForTenant("m").Cardinality(ctx, storage.CardinalityRequest{Limit: 10, LabelNames: []string{"job"}})
	require.NoError(t, err)
	require.Equal(t, uint64(3), c.NumSeries, "the backfill counts the series written before the migration")
	require.Equal(t, []storage.LabelValues{{Name: "job", NumValues: 1, NumSeries: 3, Values: []storage.Count{{Name: "job-0", Value: 3}}}}, c.LabelValues)
}

// TestUsageTotals: the usage request counts the tenant's active series
// and estimates its bytes from its rows.
func TestUsageTotals(t *testing.T) {
	s := newTestStore(t)
	for _, id := range []tenancy.ID{"big", "small"} {
		n := 1000
		if id == "small" {
			n = 10
		}
		app := s.ForTenant(id).AppenderV2(t.Context())
		for i := range n {
			for j := range 10 {
				_, err := app.Append(0, storagetest.CardinalityScaleSeries(i), 0, time.Now().UnixMilli()-int64(j)*1000, float64(j), nil, nil, promstorage.AOptions{})
				require.NoError(t, err)
			}
		}
		require.NoError(t, app.Commit())
	}
	big, err := s.ForTenant("big").Cardinality(t.Context(), storage.CardinalityRequest{TotalOnly: true, Active: true})
	require.NoError(t, err)
	small, err := s.ForTenant("small").Cardinality(t.Context(), storage.CardinalityRequest{TotalOnly: true, Active: true})
	require.NoError(t, err)
	require.Equal(t, uint64(1000), big.NumSeries)
	require.Equal(t, uint64(10), small.NumSeries)
	require.Positive(t, small.BytesStored)
	require.InDelta(t, 100, float64(big.BytesStored)/float64(small.BytesStored), 5, "bytes in proportion to rows: big %d, small %d", big.BytesStored, small.BytesStored)
}
