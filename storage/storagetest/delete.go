package storagetest

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// RunDelete runs the deletion cases (storage.Deleter) as subtests of t.
func RunDelete(t *testing.T, b Backend) {
	for _, c := range []struct {
		name string
		run  func(t *testing.T, b Backend)
	}{
		{"WholeSeries", testDeleteWhole},
		{"PartialRange", testDeletePartial},
		{"LimitDeletesNothing", testDeleteLimit},
		{"ManyMatcherSets", testDeleteManySets},
		{"PersistenceAndClean", testDeletePersistence},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, b) })
	}
}

// deleteData is what both tenants write in the deletion cases.
func deleteData() []series {
	return []series{
		{ls("__name__", "del_total", "job", "a", "i", "1"), steps(1000, 1000, 10, linear(1, 1))},
		{ls("__name__", "del_total", "job", "a", "i", "2"), steps(1000, 1000, 10, linear(2, 1))},
		{ls("__name__", "keep_total", "job", "b"), steps(1000, 1000, 10, linear(3, 1))},
		{ls("__name__", "part_total", "job", "p"), steps(1000, 1000, 10, linear(4, 1))},
	}
}

// deleteSetup writes deleteData into tenants A and B.
func deleteSetup(t *testing.T, b Backend) storage.MetricsStore {
	st := b.Open(t)
	for _, id := range []tenancy.ID{tenantA, tenantB} {
		write(t, st.ForTenant(id), deleteData()...)
	}
	return st
}

func deleteSeries(t testing.TB, ts storage.TenantStore, start, end int64, max int, ms ...[]*labels.Matcher) (storage.DeleteResult, error) {
	t.Helper()
	return ts.DeleteSeries(t.Context(), storage.DeleteRequest{Matchers: ms, Start: start, End: end, MaxSeries: max})
}

// requireSeesOnly requires ts to hold exactly want over [0, 20000] through
// every read: Select (sorted, unsorted, chunks), label names and values,
// series listing and cardinality.
func requireSeesOnly(t *testing.T, ts storage.TenantStore, want []series) {
	t.Helper()
	requireSeesOnlyBut(t, ts, want, 0)
}

// requireSeesOnlyBut is requireSeesOnly with Cardinality counting missing
// series fewer (Backend.StatsMissRewritten).
func requireSeesOnlyBut(t *testing.T, ts storage.TenantStore, want []series, missing int) {
	t.Helper()
	const mint, maxt = 0, 20000
	anyName := re("__name__", ".+")
	requireSelect(t, ts, want, mint, maxt, anyName)
	names, values := map[string]bool{}, map[string]bool{}
	for _, s := range want {
		s.lset.Range(func(l labels.Label) { names[l.Name] = true })
		values[s.lset.Get("__name__")] = true
	}
	require.ElementsMatch(t, keys(names), labelNames(t, ts, mint, maxt, nil), "LabelNames")
	require.ElementsMatch(t, keys(names), labelNames(t, ts, mint, maxt, nil, anyName), "LabelNames with a matcher")
	require.ElementsMatch(t, keys(values), labelValues(t, ts, mint, maxt, "__name__", nil), "LabelValues(__name__)")
	require.ElementsMatch(t, keys(values), labelValues(t, ts, mint, maxt, "__name__", nil, anyName), "LabelValues(__name__) with a matcher")
	require.Equal(t, lsetStrings(lsets(want)), lsetStrings(listSeries(t, ts, mint, maxt, 0, anyName)), "series listing")
	require.Equal(t, uint64(len(want)-missing), cardinality(t, ts, 10).NumSeries, "Cardinality().NumSeries")
}

// testDeleteWhole deletes two series over all their data: they are gone
// from every read of tenant A, and tenant B's identical series stay.
func testDeleteWhole(t *testing.T, b Backend) {
	st := deleteSetup(t, b)
	res, err := deleteSeries(t, st.ForTenant(tenantA), math.MinInt64, math.MaxInt64, 0, []*labels.Matcher{eq("__name__", "del_total")})
	require.NoError(t, err)
	require.Equal(t, 2, res.Series, "series deleted")
	require.Equal(t, 2, res.Whole, "series deleted over all their data")
	all := merge(deleteData())
	requireSeesOnly(t, st.ForTenant(tenantA), filter(all, 0, 20000, neq("__name__", "del_total")))
	require.Empty(t, labelValues(t, st.ForTenant(tenantA), 0, 20000, "i", nil), "LabelValues(i): only the deleted series had it")
	requireSeesOnly(t, st.ForTenant(tenantB), all)

	// Deleting again, or deleting nothing, is no error.
	res, err = deleteSeries(t, st.ForTenant(tenantA), math.MinInt64, math.MaxInt64, 0, []*labels.Matcher{eq("__name__", "del_total")})
	require.NoError(t, err)
	require.Zero(t, res.Series, "series deleted a second time")
	_, err = deleteSeries(t, st.ForTenant(tenantC), math.MinInt64, math.MaxInt64, 0, []*labels.Matcher{eq("__name__", "del_total")})
	require.NoError(t, err, "a tenant without data")
}

// testDeletePartial deletes [3000, 6000] of one series: its other samples
// stay, and a read of only that range does not see it.
func testDeletePartial(t *testing.T, b Backend) {
	st := deleteSetup(t, b)
	part := []*labels.Matcher{eq("__name__", "part_total")}
	res, err := deleteSeries(t, st.ForTenant(tenantA), 3000, 6000, 0, part)
	require.NoError(t, err)
	require.Equal(t, 1, res.Series)
	require.Zero(t, res.Whole)
	all := merge(deleteData())
	want := append(filter(all, 0, 20000, neq("__name__", "part_total")), series{lset: ls("__name__", "part_total", "job", "p")})
	for _, s := range filter(all, 0, 20000, part...)[0].samples {
		if s.T < 3000 || s.T > 6000 {
			want[len(want)-1].samples = append(want[len(want)-1].samples, s)
		}
	}
	want = merge(want)
	requireSeesOnly(t, st.ForTenant(tenantA), want)
	requireSelect(t, st.ForTenant(tenantA), nil, 3000, 6000, part...)
	requireSelect(t, st.ForTenant(tenantA), filter(want, 2000, 7000, part...), 2000, 7000, part...)
	requireSeesOnly(t, st.ForTenant(tenantB), all)
}

// testDeleteLimit matches more series than allowed: the call is refused
// with a DeleteLimitError and deletes nothing.
func testDeleteLimit(t *testing.T, b Backend) {
	st := deleteSetup(t, b)
	_, err := deleteSeries(t, st.ForTenant(tenantA), math.MinInt64, math.MaxInt64, 1, []*labels.Matcher{eq("job", "a")})
	require.ErrorIs(t, err, storage.ErrDeleteLimit)
	var le *storage.DeleteLimitError
	require.True(t, errors.As(err, &le), "want a *storage.DeleteLimitError, got %T", err)
	require.Greater(t, le.Matched, le.Limit, "Matched counts past the limit")
	require.Equal(t, 1, le.Limit)
	// Two matcher sets of one series each are two series too.
	_, err = deleteSeries(t, st.ForTenant(tenantA), math.MinInt64, math.MaxInt64, 1, []*labels.Matcher{eq("i", "1")}, []*labels.Matcher{eq("i", "2")})
	require.ErrorIs(t, err, storage.ErrDeleteLimit)
	requireSeesOnly(t, st.ForTenant(tenantA), merge(deleteData()))
	res, err := deleteSeries(t, st.ForTenant(tenantA), math.MinInt64, math.MaxInt64, 2, []*labels.Matcher{eq("job", "a")})
	require.NoError(t, err, "at the limit")
	require.Equal(t, 2, res.Series)
}

// testDeleteManySets deletes with 1,000 matcher sets of which few match
// (one twice, one through a regular expression, one through a matcher
// longer than a backend may push down): exactly the series matched by
// any set go, and the limit counts them once each.
func testDeleteManySets(t *testing.T, b Backend) {
	st := deleteSetup(t, b)
	long := make([]string, 3000)
	for i := range long {
		long[i] = "none-" + strconv.Itoa(i)
	}
	var sets [][]*labels.Matcher
	for i := range 1000 {
		switch i {
		case 10, 900:
			sets = append(sets, []*labels.Matcher{eq("__name__", "del_total"), eq("i", "1")})
		case 500:
			sets = append(sets, []*labels.Matcher{re("job", "p|x")})
		case 700:
			sets = append(sets, []*labels.Matcher{re("i", strings.Join(append(long, "2"), "|")), eq("job", "a")})
		default:
			sets = append(sets, []*labels.Matcher{eq("__name__", "del_total"), eq("i", "none-"+strconv.Itoa(i))})
		}
	}
	_, err := deleteSeries(t, st.ForTenant(tenantA), math.MinInt64, math.MaxInt64, 2, sets...)
	require.ErrorIs(t, err, storage.ErrDeleteLimit, "three series over a limit of two")
	requireSeesOnly(t, st.ForTenant(tenantA), merge(deleteData()))
	res, err := deleteSeries(t, st.ForTenant(tenantA), math.MinInt64, math.MaxInt64, 3, sets...)
	require.NoError(t, err)
	require.Equal(t, 3, res.Series, "series deleted")
	all := merge(deleteData())
	requireSeesOnly(t, st.ForTenant(tenantA), filter(all, 0, 20000, eq("__name__", "keep_total")))
	requireSeesOnly(t, st.ForTenant(tenantB), all)
}

// testDeletePersistence requires deletions to outlive a restart, and
// cleaning to keep reads as they were; after cleaning, a series written
// again holds only its new samples.
func testDeletePersistence(t *testing.T, b Backend) {
	st := deleteSetup(t, b)
	_, err := deleteSeries(t, st.ForTenant(tenantA), math.MinInt64, math.MaxInt64, 0, []*labels.Matcher{eq("__name__", "del_total")})
	require.NoError(t, err)
	_, err = deleteSeries(t, st.ForTenant(tenantA), 3000, 6000, 0, []*labels.Matcher{eq("__name__", "part_total")})
	require.NoError(t, err)
	all := merge(deleteData())
	var want []series
	for _, s := range filter(all, 0, 20000, neq("__name__", "del_total")) {
		if s.lset.Get("__name__") == "part_total" {
			s.samples = append(append([]sample{}, s.samples[:2]...), s.samples[6:]...)
		}
		want = append(want, s)
	}
	st = b.Reopen(t, st)
	t.Run("after restart", func(t *testing.T) { requireSeesOnly(t, st.ForTenant(tenantA), want) })
	require.NoError(t, st.ForTenant(tenantA).CleanTombstones(t.Context()))
	t.Run("after cleaning", func(t *testing.T) { requireSeesOnly(t, st.ForTenant(tenantA), want) })
	require.NoError(t, st.ForTenant(tenantB).CleanTombstones(t.Context()), "a tenant without deletions")
	st = b.Reopen(t, st)
	t.Run("after cleaning and restart", func(t *testing.T) { requireSeesOnly(t, st.ForTenant(tenantA), want) })
	t.Run("tenant B untouched", func(t *testing.T) { requireSeesOnly(t, st.ForTenant(tenantB), all) })

	again := series{lset: ls("__name__", "del_total", "job", "a", "i", "1"), samples: []sample{{15000, 42}}}
	write(t, st.ForTenant(tenantA), again)
	t.Run("written again", func(t *testing.T) {
		missing := 0
		if b.StatsMissRewritten {
			missing = 1
		}
		requireSeesOnlyBut(t, st.ForTenant(tenantA), merge(want, []series{again}), missing)
	})
}
