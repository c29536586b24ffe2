package storagetest

import (
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// labelData is an early series (samples 1000..2000) and three late ones
// (8000..9000), so that time ranges select either.
func labelData() []series {
	return []series{
		{ls("__name__", "old_metric", "job", "batch", "old_label", "x"), steps(1000, 1000, 2, constant(1))},
		{ls("__name__", "new_metric", "job", "api", "instance", "i1"), steps(8000, 1000, 2, constant(2))},
		{ls("__name__", "new_metric", "job", "api", "instance", "i2"), steps(8000, 1000, 2, constant(3))},
		{ls("__name__", "new_metric", "job", "web", "instance", "i3", "zone", "z"), steps(8000, 1000, 2, constant(4))},
	}
}

func openLabelData(t *testing.T, b Backend) storage.TenantStore {
	st := b.Open(t)
	ts := st.ForTenant(tenantA)
	write(t, ts, labelData()...)
	// Another tenant's labels must never show up.
	write(t, st.ForTenant(tenantB),
		series{ls("__name__", "new_metric", "job", "api", "instance", "i1", "other_label", "b"), steps(8000, 1000, 2, constant(5))},
		series{ls("__name__", "other_metric", "job", "other"), steps(1000, 1000, 9, constant(6))})
	return ts
}

// timeRange is a query window.
type timeRange struct{ mint, maxt int64 }

var (
	allTime   = timeRange{0, 10000}
	earlyTime = timeRange{0, 3000}
	lateTime  = timeRange{5000, 10000}
)

func testLabelNames(t *testing.T, b Backend) {
	ts := openLabelData(t, b)
	cases := []struct {
		name string
		r    timeRange
		ms   []*labels.Matcher
		want []string
	}{
		{"all", allTime, nil, []string{"__name__", "instance", "job", "old_label", "zone"}},
		{"API bounds", timeRange{apiMinTime, apiMaxTime}, nil, []string{"__name__", "instance", "job", "old_label", "zone"}},
		{"late range excludes the early series", lateTime, nil, []string{"__name__", "instance", "job", "zone"}},
		{"early range excludes the late series", earlyTime, nil, []string{"__name__", "job", "old_label"}},
		{"range bounds are inclusive", timeRange{2000, 8000}, nil, []string{"__name__", "instance", "job", "old_label", "zone"}},
		{"range between the data", timeRange{2001, 7999}, nil, []string{}},
		{"matcher", allTime, ms(eq("job", "web")), []string{"__name__", "instance", "job", "zone"}},
		{"matcher and range", earlyTime, ms(eq("job", "web")), []string{}},
		{"two matchers", allTime, ms(eq("__name__", "new_metric"), re("instance", "i[12]")), []string{"__name__", "instance", "job"}},
		{"regex matcher", allTime, ms(re("job", "b.*")), []string{"__name__", "job", "old_label"}},
		{"matcher selecting nothing", allTime, ms(eq("job", "nope")), []string{}},
		{"matcher on another tenant's label", allTime, ms(eq("other_label", "b")), []string{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, labelNames(t, ts, c.r.mint, c.r.maxt, nil, c.ms...))
		})
	}

	t.Run("limit", func(t *testing.T) {
		all := labelNames(t, ts, allTime.mint, allTime.maxt, nil)
		for _, limit := range []int{1, 2, len(all), len(all) + 1} {
			got := labelNames(t, ts, allTime.mint, allTime.maxt, &promstorage.LabelHints{Limit: limit})
			requireLimited(t, all, got, limit, "LabelNames Limit")
			smallest := labelNames(t, ts, allTime.mint, allTime.maxt, &promstorage.LabelHints{Limit: limit, LimitSmallest: true})
			require.Equal(t, all[:min(limit, len(all))], smallest, "LabelNames Limit=%d LimitSmallest: the smallest names", limit)
		}
	})
}

func testLabelValues(t *testing.T, b Backend) {
	ts := openLabelData(t, b)
	cases := []struct {
		name  string
		label string
		r     timeRange
		ms    []*labels.Matcher
		want  []string
	}{
		{"all", "job", allTime, nil, []string{"api", "batch", "web"}},
		{"metric names", "__name__", allTime, nil, []string{"new_metric", "old_metric"}},
		{"API bounds", "job", timeRange{apiMinTime, apiMaxTime}, nil, []string{"api", "batch", "web"}},
		{"late range", "job", lateTime, nil, []string{"api", "web"}},
		{"early range", "job", earlyTime, nil, []string{"batch"}},
		{"range bounds are inclusive", "job", timeRange{2000, 8000}, nil, []string{"api", "batch", "web"}},
		{"range between the data", "job", timeRange{2001, 7999}, nil, []string{}},
		{"matcher", "instance", allTime, ms(eq("job", "api")), []string{"i1", "i2"}},
		{"regex matcher", "job", allTime, ms(eq("__name__", "new_metric"), re("instance", "i[12]")), []string{"api"}},
		{"negative matcher", "instance", allTime, ms(eq("__name__", "new_metric"), neq("job", "api")), []string{"i3"}},
		{"empty matcher selects series without the label", "job", allTime, ms(re("__name__", ".+"), eq("zone", "")), []string{"api", "batch"}},
		{"series lacking the label give no value", "instance", allTime, ms(eq("job", "batch")), []string{}},
		{"matcher and range", "instance", earlyTime, ms(eq("job", "api")), []string{}},
		{"label nobody has", "nonexistent", allTime, nil, []string{}},
		{"another tenant's label", "other_label", allTime, nil, []string{}},
		{"the tenant label", tenancy.Label, allTime, nil, []string{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, labelValues(t, ts, c.r.mint, c.r.maxt, c.label, nil, c.ms...))
		})
	}

	t.Run("limit", func(t *testing.T) {
		all := labelValues(t, ts, allTime.mint, allTime.maxt, "instance", nil)
		require.Equal(t, []string{"i1", "i2", "i3"}, all)
		for _, limit := range []int{1, 2, 3, 4} {
			got := labelValues(t, ts, allTime.mint, allTime.maxt, "instance", &promstorage.LabelHints{Limit: limit})
			requireLimited(t, all, got, limit, "LabelValues Limit")
			smallest := labelValues(t, ts, allTime.mint, allTime.maxt, "instance", &promstorage.LabelHints{Limit: limit, LimitSmallest: true})
			require.Equal(t, all[:min(limit, len(all))], smallest, "LabelValues Limit=%d LimitSmallest: the smallest values", limit)
		}
		withMatcher := labelValues(t, ts, allTime.mint, allTime.maxt, "instance", &promstorage.LabelHints{Limit: 1}, eq("job", "web"))
		require.Equal(t, []string{"i3"}, withMatcher, "LabelValues Limit=1 with a matcher selecting i3 only")
	})
}

// requireLimited requires got to be min(limit, len(all)) entries of all.
func requireLimited(t testing.TB, all, got []string, limit int, what string) {
	t.Helper()
	require.Len(t, got, min(limit, len(all)), "%s=%d over %q returned %q", what, limit, all, got)
	require.Subset(t, all, got, "%s=%d returned values outside the unlimited result", what, limit)
}

func testSeriesListing(t *testing.T, b Backend) {
	ts := openLabelData(t, b)
	data := merge(labelData())
	cases := []struct {
		name string
		r    timeRange
		ms   []*labels.Matcher
	}{
		{"all", allTime, ms(re("__name__", ".+"))},
		{"API bounds", timeRange{apiMinTime, apiMaxTime}, ms(re("__name__", ".+"))},
		{"late range", lateTime, ms(re("__name__", ".+"))},
		{"early range", earlyTime, ms(re("__name__", ".+"))},
		{"range between the data", timeRange{2001, 7999}, ms(re("__name__", ".+"))},
		{"matcher", allTime, ms(eq("job", "api"))},
		{"two matchers", allTime, ms(eq("__name__", "new_metric"), neq("instance", "i1"))},
		{"empty matcher", allTime, ms(re("job", ".+"), eq("zone", ""))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := lsetStrings(lsets(filter(data, c.r.mint, c.r.maxt, c.ms...)))
			require.Equal(t, want, lsetStrings(listSeries(t, ts, c.r.mint, c.r.maxt, 0, c.ms...)))
		})
	}
	t.Run("limit", func(t *testing.T) {
		sel := ms(re("__name__", ".+"))
		all := lsetStrings(listSeries(t, ts, allTime.mint, allTime.maxt, 0, sel...))
		require.Len(t, all, 4)
		for _, limit := range []int{1, 2, 4, 5} {
			got := lsetStrings(listSeries(t, ts, allTime.mint, allTime.maxt, limit, sel...))
			requireLimited(t, all, got, limit, fmt.Sprintf("Select(%s) Func=series Limit", fmtMatchers(sel)))
		}
	})
	t.Run("limit on a data select", func(t *testing.T) {
		q, err := ts.Querier(allTime.mint, allTime.maxt)
		require.NoError(t, err)
		defer q.Close()
		set := q.Select(t.Context(), true, &promstorage.SelectHints{Start: allTime.mint, End: allTime.maxt, Limit: 2}, re("__name__", ".+"))
		got := readSeriesSet(t, set, "Select Limit=2")
		require.Len(t, got, 2, "Select with SelectHints.Limit=2 over 4 series")
		for _, s := range got {
			require.Equal(t, render(filter(data, allTime.mint, allTime.maxt, labelsEqual(s.lset)...)), render([]series{s}), "a series of a limited Select")
		}
	})
}

// labelsEqual returns equality matchers for every label of l, so that they
// select exactly l (and supersets, which the data here has none of).
func labelsEqual(l labels.Labels) []*labels.Matcher {
	var out []*labels.Matcher
	l.Range(func(lb labels.Label) { out = append(out, eq(lb.Name, lb.Value)) })
	return out
}
