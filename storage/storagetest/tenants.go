package storagetest

import (
	"errors"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// tenantData is what tenant id writes in the isolation cases: the same
// three series for every tenant, valued by the tenant (base), plus one
// series only that tenant has.
func tenantData(id tenancy.ID, base float64) []series {
	return []series{
		{ls("__name__", "shared_total", "job", "api", "instance", "i1"), steps(1000, 1000, 5, linear(base, 1))},
		{ls("__name__", "shared_total", "job", "api", "instance", "i2"), steps(1000, 1000, 5, linear(base+0.5, 1))},
		{ls("__name__", "shared_gauge", "job", "web"), steps(1000, 1000, 5, constant(base))},
		{ls("__name__", "only_"+string(id), "owner", string(id)), steps(3000, 1000, 2, constant(-base))},
	}
}

// testTenantIsolation writes identical series into two tenants (one ID a
// prefix of the other) and requires each to see only its own: values,
// label names, label values, series, and never the tenant label, whatever
// matcher on it a caller sends.
func testTenantIsolation(t *testing.T, b Backend) {
	pairs := [][2]tenancy.ID{{tenantA, tenantB}, {tenantA, tenantA1}}
	for _, pair := range pairs {
		t.Run(string(pair[0])+" and "+string(pair[1]), func(t *testing.T) {
			st := b.Open(t)
			base := map[tenancy.ID]float64{pair[0]: 100, pair[1]: 200}
			own := map[tenancy.ID][]series{}
			for _, id := range pair {
				own[id] = merge(tenantData(id, base[id]))
			}
			// Interleave the tenants' writes, identical series first.
			for i := range 4 {
				for _, id := range pair {
					write(t, st.ForTenant(id), tenantData(id, base[id])[i])
				}
			}
			for _, id := range pair {
				t.Run("viewed by "+string(id), func(t *testing.T) {
					requireTenantSees(t, st.ForTenant(id), id, own[id])
				})
			}
			t.Run("viewed by a tenant that wrote nothing", func(t *testing.T) {
				requireTenantSees(t, st.ForTenant(tenantC), tenantC, nil)
			})
		})
	}
}

// requireTenantSees requires ts (tenant id's view) to hold exactly own.
func requireTenantSees(t *testing.T, ts storage.TenantStore, id tenancy.ID, own []series) {
	const mint, maxt = 0, 10000
	anyName := re("__name__", ".+")

	t.Run("samples", func(t *testing.T) {
		requireSelect(t, ts, own, mint, maxt, anyName)
		requireSelect(t, ts, filter(own, mint, maxt, eq("__name__", "shared_total")), mint, maxt, eq("__name__", "shared_total"))
		requireSelect(t, ts, filter(own, mint, maxt, eq("job", "web")), mint, maxt, eq("job", "web"))
	})
	t.Run("label names", func(t *testing.T) {
		want := map[string]bool{}
		for _, s := range own {
			s.lset.Range(func(l labels.Label) { want[l.Name] = true })
		}
		got := labelNames(t, ts, mint, maxt, nil)
		require.ElementsMatch(t, keys(want), got)
		require.NotContains(t, got, tenancy.Label)
	})
	t.Run("label values", func(t *testing.T) {
		for _, name := range []string{"__name__", "owner", "job", "instance"} {
			want := map[string]bool{}
			for _, s := range own {
				if v := s.lset.Get(name); v != "" {
					want[v] = true
				}
			}
			require.ElementsMatch(t, keys(want), labelValues(t, ts, mint, maxt, name, nil), "LabelValues(%q)", name)
		}
		require.Empty(t, labelValues(t, ts, mint, maxt, tenancy.Label, nil), "LabelValues(%q)", tenancy.Label)
		require.Empty(t, labelValues(t, ts, mint, maxt, "instance", nil, eq(tenancy.Label, "x"), eq("job", "api")), "LabelValues with a tenant matcher")
	})
	t.Run("series", func(t *testing.T) {
		require.Equal(t, lsetStrings(lsets(own)), lsetStrings(listSeries(t, ts, mint, maxt, 0, anyName)))
	})
	t.Run("matchers on the tenant label", func(t *testing.T) {
		others := []string{string(tenantA), string(tenantA1), string(tenantB), string(tenantC)}
		for _, other := range others {
			if other == string(id) {
				continue
			}
			for _, m := range []*labels.Matcher{eq(tenancy.Label, other), re(tenancy.Label, other), re(tenancy.Label, other+".*")} {
				if m.Matches(string(id)) {
					continue // may select the caller's own data; checked below
				}
				require.Empty(t, selectSeries(t, ts, mint, maxt, anyName, m), "Select with %s reached another tenant", m)
				require.Empty(t, listSeries(t, ts, mint, maxt, 0, anyName, m), "series listing with %s reached another tenant", m)
				require.Empty(t, labelNames(t, ts, mint, maxt, nil, anyName, m), "LabelNames with %s reached another tenant", m)
			}
		}
		// Whatever else a tenant matcher selects, it is the caller's own
		// data, without the tenant label.
		for _, m := range []*labels.Matcher{
			eq(tenancy.Label, string(id)), neq(tenancy.Label, string(id)), re(tenancy.Label, ".*"), re(tenancy.Label, string(tenantA)+".*"),
			re(tenancy.Label, ".+"), nre(tenancy.Label, string(id)), neq(tenancy.Label, ""), eq(tenancy.Label, ""),
		} {
			got := selectSeries(t, ts, mint, maxt, anyName, m)
			requireSubsetSeries(t, own, got, "Select with "+m.String())
		}
	})
}

// requireSubsetSeries requires every series of got to be one of want's,
// with want's samples.
func requireSubsetSeries(t testing.TB, want, got []series, what string) {
	t.Helper()
	byLabels := map[string]series{}
	for _, s := range want {
		byLabels[s.lset.String()] = s
	}
	var expected []series
	for _, s := range got {
		w, ok := byLabels[s.lset.String()]
		if !ok {
			w = series{lset: s.lset} // renders as an absent series in the diff
		}
		expected = append(expected, w)
	}
	requireSameSeries(t, expected, got, what+": every series returned must be the caller's own")
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// testTenantLabelRefused appends series carrying _tenant_id themselves:
// each Append is refused with storage.ErrTenantLabel and nothing of them is
// stored in any tenant, while the valid samples of the same transaction
// are committed.
func testTenantLabelRefused(t *testing.T, b Backend) {
	st := b.Open(t)
	a, other := st.ForTenant(tenantA), st.ForTenant(tenantB)
	valid := series{ls("__name__", "ok_metric", "job", "api"), []sample{{1000, 1}, {2000, 2}}}
	forged := []labels.Labels{
		ls("__name__", "forged_metric", tenancy.Label, string(tenantB)),
		ls("__name__", "forged_metric", tenancy.Label, string(tenantA)),
		ls("__name__", "ok_metric", "job", "api", tenancy.Label, string(tenantB)),
		ls("__name__", "ok_metric", "job", "api", tenancy.Label, string(tenantA)),
		ls(tenancy.Label, string(tenantB)),
	}
	tx := begin(t.Context(), a)
	_, err := tx.add(0, valid.lset, 1000, 1)
	require.NoError(t, err)
	for _, l := range forged {
		_, err := tx.add(0, l, 1000, 666)
		require.Error(t, err, "Append(%s) must be refused", l)
		require.True(t, errors.Is(err, storage.ErrTenantLabel), "Append(%s) error %q must wrap storage.ErrTenantLabel", l, err)
		_, err = tx.add(0, l, 1500, 667)
		require.ErrorIs(t, err, storage.ErrTenantLabel, "second Append(%s) in the same transaction", l)
	}
	_, err = tx.add(0, valid.lset, 2000, 2)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(), "Commit after refused Appends")

	requireSelect(t, a, []series{valid}, 0, 10000, re("__name__", ".+"))
	requireSelect(t, other, nil, 0, 10000, re("__name__", ".+"))
	require.Equal(t, []string{"ok_metric"}, labelValues(t, a, 0, 10000, "__name__", nil))
	require.Equal(t, []string{"__name__", "job"}, labelNames(t, a, 0, 10000, nil))
	require.Empty(t, labelNames(t, other, 0, 10000, nil))
	require.Empty(t, labelValues(t, a, 0, 10000, tenancy.Label, nil))
	require.Empty(t, labelValues(t, other, 0, 10000, tenancy.Label, nil))
}
