package storagetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// cardinalityData is six series of three metric names, identical for every
// tenant.
func cardinalityData() []series {
	smp := steps(1000, 1000, 5, constant(1)) // 1000..5000
	return []series{
		{ls("__name__", "m1", "job", "api", "instance", "i1"), smp},
		{ls("__name__", "m1", "job", "api", "instance", "i2"), smp},
		{ls("__name__", "m1", "job", "api", "instance", "i3"), smp},
		{ls("__name__", "m2", "job", "api", "instance", "i1"), smp},
		{ls("__name__", "m2", "job", "web", "instance", "i1"), smp},
		{ls("__name__", "m3", "job", "web"), smp},
	}
}

// testCardinality: a tenant's report counts its own series and metric
// names only, and never names the tenant label.
func testCardinality(t *testing.T, b Backend) {
	st := b.Open(t)
	a, other := st.ForTenant(tenantA), st.ForTenant(tenantB)
	write(t, a, cardinalityData()...)
	bData := cardinalityData()
	for i := range 10 {
		bData = append(bData, series{ls("__name__", "b_only", "secret", fmt.Sprint("s", i)), steps(500, 1000, 20, constant(2))})
	}
	write(t, other, bData...)

	t.Run("own series", func(t *testing.T) {
		card := cardinality(t, a, 10, "b_only", "secret")
		require.Equal(t, uint64(6), card.NumSeries, "NumSeries")
		require.Equal(t, []storage.Count{count("m1", 3), count("m2", 2), count("m3", 1)}, card.ByMetricName, "ByMetricName")
		require.ElementsMatch(t, []storage.Count{count("__name__", 3), count("instance", 3), count("job", 2)}, card.ByLabelName, "ByLabelName: distinct values per label name")
		require.Equal(t, 8, card.NumLabelPairs, "NumLabelPairs: distinct name=value pairs")
		require.LessOrEqual(t, card.MinTime, int64(1000), "MinTime must not be after the first sample")
		require.GreaterOrEqual(t, card.MaxTime, int64(5000), "MaxTime must not be before the last sample")
	})
	t.Run("limit", func(t *testing.T) {
		card := cardinality(t, a, 2, "b_only", "secret")
		require.Equal(t, uint64(6), card.NumSeries, "NumSeries is not limited")
		require.Equal(t, []storage.Count{count("m1", 3), count("m2", 2)}, card.ByMetricName, "ByMetricName with limit 2")
		for _, rows := range [][]storage.Count{card.ByLabelName, card.ByLabelPair, card.MemoryByLabel} {
			require.LessOrEqual(t, len(rows), 2, "rows with limit 2: %v", rows)
		}
	})
	t.Run("other tenant", func(t *testing.T) {
		card := cardinality(t, other, 10)
		require.Equal(t, uint64(16), card.NumSeries, "NumSeries")
		require.Equal(t, []storage.Count{count("b_only", 10), count("m1", 3), count("m2", 2), count("m3", 1)}, card.ByMetricName, "ByMetricName")
		require.Equal(t, 19, card.NumLabelPairs, "NumLabelPairs: distinct name=value pairs")
	})
	t.Run("matchers", func(t *testing.T) {
		card := cardinalityOf(t, a, storage.CardinalityRequest{Limit: 10, Matchers: [][]*labels.Matcher{{eq("job", "api")}}}, "b_only", "secret")
		require.Equal(t, uint64(4), card.NumSeries, "NumSeries {job=\"api\"}")
		require.Equal(t, []storage.Count{count("m1", 3), count("m2", 1)}, card.ByMetricName, "ByMetricName {job=\"api\"}")
		require.Equal(t, uint64(12), card.NumLabelRefs, "NumLabelRefs: pairs over the series")

		card = cardinalityOf(t, a, storage.CardinalityRequest{Limit: 10, Matchers: [][]*labels.Matcher{{re("__name__", "m1|m3")}}})
		require.Equal(t, uint64(4), card.NumSeries, "NumSeries {__name__=~\"m1|m3\"}")
		require.Equal(t, []storage.Count{count("__name__=m1", 3), count("job=api", 3), count("__name__=m3", 1)}, card.ByLabelPair[:3], "ByLabelPair: ties by name and value")
		require.Contains(t, card.ByLabelPair, count("job=web", 1))

		card = cardinalityOf(t, a, storage.CardinalityRequest{Limit: 10, Matchers: [][]*labels.Matcher{{eq("__name__", "m3")}, {eq("instance", "i2")}}})
		require.Equal(t, uint64(2), card.NumSeries, "NumSeries {__name__=\"m3\"} or {instance=\"i2\"}")
		require.Equal(t, []storage.Count{count("m1", 1), count("m3", 1)}, card.ByMetricName)

		card = cardinalityOf(t, a, storage.CardinalityRequest{Limit: 10, Matchers: [][]*labels.Matcher{{eq("__name__", "b_only")}}})
		require.Zero(t, card.NumSeries, "another tenant's metric selects nothing")
	})
	t.Run("focus label and label values", func(t *testing.T) {
		card := cardinalityOf(t, a, storage.CardinalityRequest{Limit: 2, FocusLabel: "instance", LabelNames: []string{"job", "instance", "absent"}})
		require.Equal(t, []storage.Count{count("i1", 3), count("i2", 1)}, card.ByFocusLabelValue, "ByFocusLabelValue(instance) top 2")
		require.Equal(t, []storage.LabelValues{
			{Name: "job", NumValues: 2, NumSeries: 6, Values: []storage.Count{count("api", 4), count("web", 2)}},
			{Name: "instance", NumValues: 3, NumSeries: 5, Values: []storage.Count{count("i1", 3), count("i2", 1)}},
			{Name: "absent", Values: []storage.Count{}},
		}, normLabelValues(card.LabelValues), "LabelValues")
		require.Equal(t, 3, card.NumLabelNames, "NumLabelNames")
		require.Equal(t, uint64(6+6+5), card.NumLabelRefs, "NumLabelRefs")
		require.Equal(t, []storage.Count{count("__name__", 6), count("job", 6)}, card.SeriesByLabel, "SeriesByLabel top 2")
	})
	t.Run("time range", func(t *testing.T) {
		// Series with samples on the third UTC day only, in tenant C's
		// store: days are the unit a backend may keep statistics by.
		const day = 86_400_000
		c := st.ForTenant(tenantA1)
		write(t, c, cardinalityData()...)
		write(t, c, series{ls("__name__", "late", "job", "api"), steps(2*day+1000, 1000, 5, constant(1))})
		all := cardinalityOf(t, c, storage.CardinalityRequest{Limit: 10})
		require.Equal(t, uint64(7), all.NumSeries, "all time")
		first := cardinalityOf(t, c, storage.CardinalityRequest{Limit: 10, Start: 0, End: day - 1})
		require.Equal(t, uint64(6), first.NumSeries, "first day")
		third := cardinalityOf(t, c, storage.CardinalityRequest{Limit: 10, Start: 2 * day, End: 3*day - 1})
		require.Equal(t, uint64(1), third.NumSeries, "third day")
		require.Equal(t, []storage.Count{count("late", 1)}, third.ByMetricName)
		none := cardinalityOf(t, c, storage.CardinalityRequest{Limit: 10, Start: 10 * day, End: 11 * day})
		require.Zero(t, none.NumSeries, "a day without samples")
		both := cardinalityOf(t, c, storage.CardinalityRequest{Limit: 10, Start: 0, End: 3*day - 1, Matchers: [][]*labels.Matcher{{eq("job", "api")}}})
		require.Equal(t, uint64(5), both.NumSeries, "time range and matchers")
	})
	t.Run("active and listing", func(t *testing.T) {
		// Active means a sample within the active-series window
		// (storage.ActiveSince), by its timestamp: tenant A's samples
		// are from 1970, written just now or not.
		card := cardinalityOf(t, a, storage.CardinalityRequest{Active: true, Limit: 10})
		require.Zero(t, card.NumSeries, "series with old samples only are not active")
		a := st.ForTenant("cardinality-active")
		now := time.Now().UnixMilli()
		fresh := cardinalityData()
		for i := range fresh {
			fresh[i].samples = steps(now-60_000, 10_000, 5, constant(1))
		}
		write(t, a, fresh...)
		write(t, a, series{ls("__name__", "old", "job", "api"), steps(1000, 1000, 5, constant(1))})
		card = cardinalityOf(t, a, storage.CardinalityRequest{Active: true, Limit: 10})
		require.Equal(t, uint64(6), card.NumSeries, "the six series with samples of the last minute are active, the old one not")
		require.Equal(t, uint64(7), cardinalityOf(t, a, storage.CardinalityRequest{Limit: 10}).NumSeries, "all series")
		card = cardinalityOf(t, a, storage.CardinalityRequest{Active: true, ListSeries: true, Limit: 10, Matchers: [][]*labels.Matcher{{eq("job", "api")}}})
		require.Len(t, card.Series, 4, "active series {job=\"api\"}: not the old one")
		card = cardinalityOf(t, a, storage.CardinalityRequest{Active: true, ListSeries: true, Limit: 10, Matchers: [][]*labels.Matcher{{eq("__name__", "m2")}}})
		require.ElementsMatch(t, []string{`{__name__="m2", instance="i1", job="api"}`, `{__name__="m2", instance="i1", job="web"}`}, lsetStrings(card.Series), "active series {__name__=\"m2\"}")
		card = cardinalityOf(t, a, storage.CardinalityRequest{Active: true, ListSeries: true, Limit: 1, Matchers: [][]*labels.Matcher{{eq("__name__", "m1")}}})
		require.Len(t, card.Series, 1, "listing is limited")
	})
	t.Run("tenant without data", func(t *testing.T) {
		card := cardinality(t, st.ForTenant(tenantC), 10)
		require.Zero(t, card.NumSeries, "NumSeries")
		require.Empty(t, card.ByMetricName, "ByMetricName")
		require.Empty(t, card.ByLabelPair, "ByLabelPair")
	})
}

// normLabelValues makes empty value lists comparable.
func normLabelValues(list []storage.LabelValues) []storage.LabelValues {
	for i := range list {
		if list[i].Values == nil {
			list[i].Values = []storage.Count{}
		}
	}
	return list
}

func count(name string, v uint64) storage.Count { return storage.Count{Name: name, Value: v} }

// cardinality returns ts's report, requiring no row to name the tenant
// label or any of foreign (what only other tenants have).
func cardinality(t *testing.T, ts storage.TenantStore, limit int, foreign ...string) storage.Cardinality {
	t.Helper()
	return cardinalityOf(t, ts, storage.CardinalityRequest{Limit: limit}, foreign...)
}

// cardinalityOf is cardinality for any request.
func cardinalityOf(t *testing.T, ts storage.TenantStore, req storage.CardinalityRequest, foreign ...string) storage.Cardinality {
	t.Helper()
	card, err := ts.Cardinality(t.Context(), req)
	require.NoError(t, err, "Cardinality(%+v)", req)
	rowSets := [][]storage.Count{card.ByMetricName, card.ByLabelName, card.ByLabelPair, card.MemoryByLabel, card.SeriesByLabel, card.ByFocusLabelValue}
	for _, lv := range card.LabelValues {
		rowSets = append(rowSets, lv.Values)
	}
	for _, l := range card.Series {
		for _, f := range append([]string{tenancy.Label}, foreign...) {
			require.False(t, strings.Contains(l.String(), f), "listed series %s names %q", l, f)
		}
	}
	for _, rows := range rowSets {
		for _, r := range rows {
			for _, f := range append([]string{tenancy.Label}, foreign...) {
				require.False(t, strings.Contains(r.Name, f), "cardinality row %v names %q", r, f)
			}
		}
	}
	return card
}

// CardinalityScaleSeries is the series i of MeasureCardinality's tenant
// (0 <= i < n): 100 metric names, each over n/100 instances of 10 jobs,
// node-exporter-like (every instance has every metric).
func CardinalityScaleSeries(i int) labels.Labels {
	inst := i / 100
	return labels.FromStrings("__name__", fmt.Sprintf("metric_%02d", i%100), "instance", fmt.Sprintf("host-%06d", inst), "job", fmt.Sprintf("job-%d", inst%10))
}

// CardinalityScaleRequest is one measured request of MeasureCardinality,
// named after the endpoint it serves.
type CardinalityScaleRequest struct {
	Name string
	Req  storage.CardinalityRequest
}

// CardinalityScaleRequests are the requests the endpoints send for a
// tenant written today: status/tsdb (plain, focusLabel, match[] on a
// metric and on a label, date), Mimir's label_names and label_values
// (inmemory and active).
func CardinalityScaleRequests(now time.Time) []CardinalityScaleRequest {
	day := now.UTC().Truncate(24 * time.Hour)
	return []CardinalityScaleRequest{
		{"status/tsdb", storage.CardinalityRequest{Limit: 10}},
		{"status/tsdb focusLabel=instance", storage.CardinalityRequest{Limit: 10, FocusLabel: "instance"}},
		{"status/tsdb date=today", storage.CardinalityRequest{Limit: 10, Start: day.UnixMilli(), End: day.Add(24*time.Hour).UnixMilli() - 1}},
		{"status/tsdb match[]={__name__=\"metric_07\"}", storage.CardinalityRequest{Limit: 10, Matchers: [][]*labels.Matcher{{eq("__name__", "metric_07")}}}},
		{"status/tsdb match[]={job=\"job-3\"}", storage.CardinalityRequest{Limit: 10, Matchers: [][]*labels.Matcher{{eq("job", "job-3")}}}},
		{"cardinality/label_names", storage.CardinalityRequest{Limit: 20}},
		{"cardinality/label_names count_method=active", storage.CardinalityRequest{Limit: 20, Active: true}},
		{"cardinality/label_values label_names[]=instance,job", storage.CardinalityRequest{Limit: 20, LabelNames: []string{"instance", "job"}}},
		{"cardinality/active_series selector={instance=\"host-000042\"}", storage.CardinalityRequest{Limit: 1000, Active: true, ListSeries: true, Matchers: [][]*labels.Matcher{{eq("instance", "host-000042")}}}},
	}
}

// MeasureCardinality runs each request of CardinalityScaleRequests runs
// times on ts (which holds n series of CardinalityScaleSeries), checks
// the series count of the plain request, and logs the median and worst
// durations.
func MeasureCardinality(t *testing.T, ts storage.TenantStore, n, runs int) map[string]time.Duration {
	t.Helper()
	out := map[string]time.Duration{}
	for _, r := range CardinalityScaleRequests(time.Now()) {
		var took []time.Duration
		var card storage.Cardinality
		for range runs {
			start := time.Now()
			var err error
			card, err = ts.Cardinality(t.Context(), r.Req)
			took = append(took, time.Since(start))
			require.NoError(t, err, r.Name)
		}
		slices.Sort(took)
		out[r.Name] = took[len(took)/2]
		t.Logf("%-62s median %8.1f ms  max %8.1f ms  series %d", r.Name, millis(took[len(took)/2]), millis(took[len(took)-1]), card.NumSeries)
		switch r.Name {
		case "status/tsdb", "status/tsdb date=today":
			require.InDelta(t, float64(n), float64(card.NumSeries), float64(n)/50, "%s: series", r.Name)
		case "cardinality/active_series selector={instance=\"host-000042\"}":
			require.Len(t, card.Series, 100, "%s: one instance's series", r.Name)
		}
	}
	return out
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
