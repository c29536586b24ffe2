package storagetest

import (
	"fmt"
	"math"
	"math/rand/v2"
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
		write(t, st.ForTenant(id), ss...)
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
				card, err := ts.Cardinality(t.Context(), storage.CardinalityRequest{Limit: 10})
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

// testContinueAfterReopen writes series of 1 to 250 samples (every fill
// level of an open chunk up to 250 samples, and every bit alignment of its
// encoding), reopens, appends 150 samples to each and reads them back: a
// backend that restores an open chunk must be able to append to it.
func testContinueAfterReopen(t *testing.T, b Backend) {
	st := b.Open(t)
	r := rand.New(rand.NewPCG(5, 6))
	var before, after []series
	for n := 1; n <= 250; n++ {
		lset := ls("__name__", "continued", "fill", fmt.Sprintf("%03d", n))
		walk := func(count int, from int64) []sample {
			out := make([]sample, count)
			v := 0.0
			for i := range out {
				v = math.Round((v+float64(r.IntN(2001)-1000)/100)*100) / 100
				out[i] = sample{from + int64(i)*step, v}
			}
			return out
		}
		before = append(before, series{lset, walk(n, baseTime)})
		after = append(after, series{lset, walk(150, baseTime+int64(n)*step)})
	}
	write(t, st.ForTenant(tenantA), before...)
	st = b.Reopen(t, st)
	write(t, st.ForTenant(tenantA), after...)
	requireSelect(t, st.ForTenant(tenantA), merge(before, after), 0, math.MaxInt64, eq("__name__", "continued"))
	st = b.Reopen(t, st)
	requireSelect(t, st.ForTenant(tenantA), merge(before, after), 0, math.MaxInt64, eq("__name__", "continued"))
}

func sortedKeys(m map[string]bool) []string {
	out := keys(m)
	slices.Sort(out)
	return out
}
