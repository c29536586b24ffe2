package clickhouse

import (
	"fmt"
	"math"
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

// TestCardinalityIndex: matchers on labels other than the metric name are
// answered from the label index (migration 10) exactly as from the series
// table, over several days, with several sets, regexes and negative
// matchers beside them, partial and whole deletions, and another tenant
// holding the same series.
func TestCardinalityIndex(t *testing.T) {
	s := newTestStore(t)
	const day = msPerDay
	for _, id := range []tenancy.ID{"a", "b"} {
		app := s.ForTenant(id).AppenderV2(t.Context())
		for i := range 300 {
			lset := storagetest.CardinalityScaleSeries(i)
			for _, d := range []int64{1, 2, 4} {
				if i%3 == 0 && d == 4 {
					continue // some series end early
				}
				_, err := app.Append(0, lset, 0, d*day+int64(i)*1000, 1, nil, nil, promstorage.AOptions{})
				require.NoError(t, err)
			}
		}
		require.NoError(t, app.Commit())
	}
	ts := s.ForTenant("a").(*tenantStore)
	m := labels.MustNewMatcher
	sets := map[string][][]*labels.Matcher{
		"job":             {{m(labels.MatchEqual, "job", "job-1")}},
		"job regex":       {{m(labels.MatchRegexp, "job", "job-[12]")}},
		"instance set":    {{m(labels.MatchRegexp, "instance", "host-00000[01]")}},
		"two sets":        {{m(labels.MatchEqual, "job", "job-1")}, {m(labels.MatchEqual, "instance", "host-000002"), m(labels.MatchNotEqual, "__name__", "metric_02")}},
		"with a negative": {{m(labels.MatchRegexp, "job", "job-.*"), m(labels.MatchNotRegexp, "__name__", "metric_0.")}},
		"none":            {{m(labels.MatchEqual, "job", "job-9")}},
	}
	ranges := [][2]int32{{math.MinInt32, math.MaxInt32}, {1, 1}, {2, 4}, {3, 3}, {4, 4}}
	check := func(when string) {
		t.Helper()
		for name, ms := range sets {
			drivers, ok := indexDrivers(ms)
			require.True(t, ok, name)
			for _, r := range ranges {
				req := storage.CardinalityRequest{Limit: 5, Matchers: ms, LabelNames: []string{"job", "instance"}, FocusLabel: "instance"}
				want, err := ts.seriesCardinality(t.Context(), req, r[0], r[1])
				require.NoError(t, err)
				got, err := ts.indexCardinality(t.Context(), req, drivers, r[0], r[1])
				require.NoError(t, err)
				require.Equal(t, want, got, "%s: %s, days %v", when, name, r)
			}
		}
	}
	check("written")
	require.False(t, func() bool {
		_, ok := indexDrivers([][]*labels.Matcher{{m(labels.MatchEqual, "__name__", "metric_01"), m(labels.MatchEqual, "job", "job-1")}})
		return ok
	}(), "a metric name equality stays on the series table")
	require.False(t, func() bool {
		_, ok := indexDrivers([][]*labels.Matcher{{m(labels.MatchNotEqual, "job", "job-1")}})
		return ok
	}(), "no matcher selects rows of the index")

	// Day 2 of job-1's series deleted, then all of instance host-000002.
	_, err := ts.DeleteSeries(t.Context(), storage.DeleteRequest{Matchers: [][]*labels.Matcher{{m(labels.MatchEqual, "job", "job-1")}}, Start: 2 * day, End: 3*day - 1})
	require.NoError(t, err)
	res, err := ts.DeleteSeries(t.Context(), storage.DeleteRequest{Matchers: [][]*labels.Matcher{{m(labels.MatchEqual, "instance", "host-000002")}}, Start: math.MinInt64, End: math.MaxInt64})
	require.NoError(t, err)
	require.Equal(t, 100, res.Whole)
	check("deleted")
	c, err := ts.Cardinality(t.Context(), storage.CardinalityRequest{Limit: 5, Matchers: sets["two sets"]})
	require.NoError(t, err)
	require.Equal(t, uint64(100), c.NumSeries, "job-1's 100 series; host-000002's are gone")
	c, err = ts.Cardinality(t.Context(), storage.CardinalityRequest{Limit: 5, Matchers: sets["job"], Start: 2 * day, End: 3*day - 1})
	require.NoError(t, err)
	require.Zero(t, c.NumSeries, "job-1 on its deleted day")
	cb, err := s.ForTenant("b").Cardinality(t.Context(), storage.CardinalityRequest{Limit: 5, Matchers: sets["two sets"]})
	require.NoError(t, err)
	require.Equal(t, uint64(100+99), cb.NumSeries, "tenant b keeps its series")

	require.NoError(t, ts.CleanTombstones(t.Context()))
	check("cleaned")

	// The active listing through the index.
	app := ts.AppenderV2(t.Context())
	now := time.Now().UnixMilli()
	for i := range 300 {
		_, err := app.Append(0, storagetest.CardinalityScaleSeries(i), 0, now, 1, nil, nil, promstorage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	sel := [][]*labels.Matcher{{m(labels.MatchEqual, "instance", "host-000001")}}
	list, err := ts.Cardinality(t.Context(), storage.CardinalityRequest{Limit: 1000, Active: true, ListSeries: true, Matchers: sel})
	require.NoError(t, err)
	want, err := ts.listSeries(t.Context(), storage.CardinalityRequest{Limit: 1000, Matchers: sel}, storage.ActiveSince(time.Now(), 0), math.MaxInt64)
	require.NoError(t, err)
	require.Len(t, list.Series, 100)
	require.Equal(t, want, list.Series, "the index lists what the querier does")
	list, err = ts.Cardinality(t.Context(), storage.CardinalityRequest{Limit: 7, Active: true, ListSeries: true, Matchers: sel})
	require.NoError(t, err)
	require.Equal(t, want[:7], list.Series, "the first 7 in label order")
}

// TestCardinalityAcrossPods: a snapshot answers this pod's new series at
// once, another pod's within the refresh interval, and a deletion by
// another pod at once.
func TestCardinalityAcrossPods(t *testing.T) {
	cfg := testConfig(t)
	a, b := openStore(t, cfg), openStore(t, cfg)
	const refresh = 300 * time.Millisecond
	a.stats.refresh.Store(int64(refresh))
	now := time.Now().UnixMilli()
	write := func(s *Store, from, to int, ts int64) {
		app := s.ForTenant("acme").AppenderV2(t.Context())
		for i := from; i < to; i++ {
			_, err := app.Append(0, storagetest.CardinalityScaleSeries(i), 0, ts, 1, nil, nil, promstorage.AOptions{})
			require.NoError(t, err)
		}
		require.NoError(t, app.Commit())
	}
	count := func() uint64 {
		c, err := a.ForTenant("acme").Cardinality(t.Context(), storage.CardinalityRequest{Limit: 5})
		require.NoError(t, err)
		return c.NumSeries
	}
	write(a, 0, 10, now)
	require.Equal(t, uint64(10), count())
	write(a, 10, 15, now)
	require.Equal(t, uint64(15), count(), "this pod's new series at once")
	write(a, 15, 17, now-48*msPerHour)
	require.Equal(t, uint64(17), count(), "this pod's new series of past days at once")
	write(b, 17, 20, now)
	start := time.Now()
	require.Eventually(t, func() bool { return count() == 20 }, 10*refresh, refresh/10, "another pod's new series within the refresh")
	t.Logf("another pod's series counted after %s (refresh %s)", time.Since(start).Round(time.Millisecond), refresh)
	_, err := b.ForTenant("acme").DeleteSeries(t.Context(), storage.DeleteRequest{Matchers: [][]*labels.Matcher{{labels.MustNewMatcher(labels.MatchEqual, "__name__", "metric_01")}}, Start: math.MinInt64, End: math.MaxInt64})
	require.NoError(t, err)
	require.Equal(t, uint64(19), count(), "another pod's deletion at once")
	c, err := a.ForTenant("other").Cardinality(t.Context(), storage.CardinalityRequest{Limit: 5})
	require.NoError(t, err)
	require.Zero(t, c.NumSeries, "another tenant")
}

// TestIndexMigration opens a store on a database of the release before
// the label index (migrations 1 to 9) holding series rows: migration 10
// fills the index from them.
func TestIndexMigration(t *testing.T) {
	cfg := testConfig(t)
	conn := testConn(t)
	ctx := t.Context()
	info, err := detectServer(ctx, connRunner{conn})
	require.NoError(t, err)
	old := schema{db: cfg.Database, info: info}
	applied, err := old.migrateThrough(ctx, connRunner{conn}, migrations[:9])
	require.NoError(t, err)
	require.Len(t, applied, 9)
	for i := range 3 {
		lset := storagetest.CardinalityScaleSeries(i * 100)
		fp, _ := fingerprint("m", lset, nil)
		require.NoError(t, conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s (tenant, hour, min_ts, fingerprint, metric_name, label_names, label_values) SELECT 'm', %d, 1000, toUInt64(%d), %s, ['__name__', 'instance', 'job'], [%s, %s, %s]",
			old.table(seriesTable), i, fp, quote(lset.Get("__name__")), quote(lset.Get("__name__")), quote(lset.Get("instance")), quote(lset.Get("job")))))
	}
	s := openStore(t, cfg)
	c, err := s.ForTenant("m").Cardinality(ctx, storage.CardinalityRequest{Limit: 10, Matchers: [][]*labels.Matcher{{labels.MustNewMatcher(labels.MatchRegexp, "job", "job-.*")}}, LabelNames: []string{"job"}})
	require.NoError(t, err)
	require.Equal(t, uint64(3), c.NumSeries, "the backfill indexes the series written before the migration")
	require.Equal(t, []storage.LabelValues{{Name: "job", NumValues: 3, NumSeries: 3, Values: []storage.Count{{Name: "job-0", Value: 1}, {Name: "job-1", Value: 1}, {Name: "job-2", Value: 1}}}}, c.LabelValues)
}
