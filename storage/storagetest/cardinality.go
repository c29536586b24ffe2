package storagetest

import (
	"fmt"
	"strings"
	"testing"

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
	t.Run("tenant without data", func(t *testing.T) {
		card := cardinality(t, st.ForTenant(tenantC), 10)
		require.Zero(t, card.NumSeries, "NumSeries")
		require.Empty(t, card.ByMetricName, "ByMetricName")
		require.Empty(t, card.ByLabelPair, "ByLabelPair")
	})
}

func count(name string, v uint64) storage.Count { return storage.Count{Name: name, Value: v} }

// cardinality returns ts's report, requiring no row to name the tenant
// label or any of foreign (what only other tenants have).
func cardinality(t *testing.T, ts storage.TenantStore, limit int, foreign ...string) storage.Cardinality {
	t.Helper()
	card, err := ts.Cardinality(t.Context(), limit)
	require.NoError(t, err, "Cardinality(%d)", limit)
	for _, rows := range [][]storage.Count{card.ByMetricName, card.ByLabelName, card.ByLabelPair, card.MemoryByLabel} {
		for _, r := range rows {
			for _, f := range append([]string{tenancy.Label}, foreign...) {
				require.False(t, strings.Contains(r.Name, f), "cardinality row %v names %q", r, f)
			}
		}
	}
	return card
}
