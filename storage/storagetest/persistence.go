package storagetest

import (
	"math"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// testPersistence writes, reopens the store and requires everything
// committed to be there, index included (label names, values, matchers,
// series listing); then writes after the reopen (newer, older and
// overwriting samples, new series) and reopens again.
func testPersistence(t *testing.T, b Backend) {
	st := b.Open(t)
	written := map[tenancy.ID][][]series{}
	commit := func(id tenancy.ID, ss ...series) {
		write(t, v2, st.ForTenant(id), ss...)
		written[id] = append(written[id], ss)
	}

	// Before the first reopen: label data, two tenants with identical
	// series, special floats, a long series, out-of-order writes.
	commit(tenantA, labelData()...)
	commit(tenantA, tenantData(tenantA, 100)...)
	commit(tenantB, tenantData(tenantB, 200)...)
	var special []sample
	for i, f := range specialFloats {
		special = append(special, sample{baseTime + int64(i)*step, f.v})
	}
	commit(tenantA, series{ls("__name__", "special"), special})
	long := series{ls("__name__", "long", "job", "api"), steps(baseTime, step, 1000, linear(0, 0.25))}
	commit(tenantA, long)
	commit(tenantA, series{long.lset, []sample{{baseTime - hour, -1}, {baseTime + 10*step, 99}}})

	check := func(t *testing.T, st storage.MetricsStore) {
		for _, id := range []tenancy.ID{tenantA, tenantB} {
			t.Run(string(id), func(t *testing.T) {
				ts := st.ForTenant(id)
				want := merge(written[id]...)
				got := selectSeries(t, ts, math.MinInt64, math.MaxInt64, re("__name__", ".+"))
				requireSameSeries(t, want, got, "everything committed")
				requireStaleNaNBits(t, want, got)
				for _, sel := range [][]*labels.Matcher{
					ms(eq("__name__", "new_metric"), neq("instance", "i1")),
					ms(re("job", "api|web"), nre("__name__", "shared.*")),
					ms(eq("__name__", "long"), eq("job", "api")),
					ms(re("instance", ".+"), eq("zone", "")),
				} {
					requireSelect(t, ts, filter(want, 0, math.MaxInt64, sel...), 0, math.MaxInt64, sel...)
				}
				requireSelect(t, ts, filter(want, baseTime+100*step, baseTime+300*step, eq("__name__", "long")), baseTime+100*step, baseTime+300*step, eq("__name__", "long"))

				wantNames, wantJobs := map[string]bool{}, map[string]bool{}
				for _, s := range want {
					s.lset.Range(func(l labels.Label) { wantNames[l.Name] = true })
					if j := s.lset.Get("job"); j != "" {
						wantJobs[j] = true
					}
				}
				require.Equal(t, sortedKeys(wantNames), labelNames(t, ts, 0, math.MaxInt64, nil), "LabelNames")
				require.Equal(t, sortedKeys(wantJobs), labelValues(t, ts, 0, math.MaxInt64, "job", nil), "LabelValues(job)")
				require.Equal(t, lsetStrings(lsets(filter(want, 0, math.MaxInt64, eq("job", "api")))),
					lsetStrings(listSeries(t, ts, 0, math.MaxInt64, 0, eq("job", "api"))), "series listing {job=\"api\"}")
				card, err := ts.Cardinality(t.Context(), 10)
				require.NoError(t, err)
				require.Equal(t, uint64(len(want)), card.NumSeries, "Cardinality.NumSeries")
			})
		}
	}

	t.Run("before reopen", func(t *testing.T) { check(t, st) })
	st = b.Reopen(t, st)
	t.Run("after reopen", func(t *testing.T) { check(t, st) })

	// Writes after the reopen: continue the long series, go back before
	// it, overwrite a persisted sample, add a series to both tenants.
	commit(tenantA, series{long.lset, steps(baseTime+1000*step, step, 200, constant(3))})
	t.Run("newer samples after reopen", func(t *testing.T) { check(t, st) })
	commit(tenantA, series{long.lset, []sample{{baseTime - 2*hour, -2}, {baseTime + 500*step, 1e9}, {baseTime + 10*step, 100}}})
	t.Run("older and overwriting samples after reopen", func(t *testing.T) { check(t, st) })
	newSeries := series{ls("__name__", "after_reopen", "job", "web"), steps(baseTime, step, 10, linear(1, 1))}
	commit(tenantA, newSeries)
	commit(tenantB, series{newSeries.lset, steps(baseTime, step, 10, linear(-1, -1))})
	t.Run("new series after reopen", func(t *testing.T) { check(t, st) })

	st = b.Reopen(t, st)
	t.Run("after second reopen", func(t *testing.T) { check(t, st) })
	st = b.Reopen(t, st)
	t.Run("after a reopen without writes", func(t *testing.T) { check(t, st) })
}

func sortedKeys(m map[string]bool) []string {
	out := keys(m)
	slices.Sort(out)
	return out
}
