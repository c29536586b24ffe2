package storagetest

import (
	"maps"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// retentionPolicy is a storage.RetentionPolicy the case changes while
// the store runs, as an overrides file reload does.
type retentionPolicy struct {
	mu   sync.Mutex
	def  time.Duration
	over map[tenancy.ID]time.Duration
}

func (p *retentionPolicy) Retention(id tenancy.ID) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.over[id]; ok {
		return r
	}
	return p.def
}

func (p *retentionPolicy) Retentions() (time.Duration, map[tenancy.ID]time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.def, maps.Clone(p.over)
}

func (p *retentionPolicy) set(id tenancy.ID, r time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.over[id] = r
}

// testRetentionPerTenant: each tenant reads nothing past its own
// retention at once (samples, series, label values, exemplars); the
// retention pass deletes it (a raised retention does not bring it back)
// and keeps the data of a tenant whose retention is longer than the
// default; a lowered retention applies to data already stored.
func testRetentionPerTenant(t *testing.T, b Backend) {
	if b.Retained == nil {
		t.Skip("backend has no Retained")
	}
	const h = int64(time.Hour / time.Millisecond)
	now := time.Now().UnixMilli()
	oldT, midT, newT := now-50*h, now-5*h, now-10*60*1000
	old := series{ls("__name__", "ret", "i", "old"), steps(oldT, 1000, 130, constant(1))}
	mid := series{ls("__name__", "ret", "i", "mid"), steps(midT, 1000, 10, constant(2))}
	recent := series{ls("__name__", "ret", "i", "new"), steps(newT, 1000, 10, constant(3))}
	spanning := series{ls("__name__", "ret", "i", "span"), append(append(steps(oldT, 1000, 3, constant(4)), steps(midT, 1000, 3, constant(4))...), steps(newT, 1000, 3, constant(4))...)}
	all := []series{old, mid, recent, spanning}
	since := func(s series, cut int64) series {
		out := series{lset: s.lset}
		for _, smp := range s.samples {
			if smp.T >= cut {
				out.samples = append(out.samples, smp)
			}
		}
		return out
	}

	// acme keeps 2h, bravo 72h (longer than the default), charlie the
	// default 24h.
	p := &retentionPolicy{def: 24 * time.Hour, over: map[tenancy.ID]time.Duration{tenantA: 2 * time.Hour, tenantB: 72 * time.Hour}}
	st, cleanup := b.Retained(t, p)
	oldEx := ex(oldT, 1, "trace_id", "old")
	newEx := ex(newT, 3, "trace_id", "new")
	exOld, exNew := ls("__name__", "ret_ex", "i", "old"), ls("__name__", "ret_ex", "i", "new")
	for _, id := range []tenancy.ID{tenantA, tenantB, tenantC} {
		ts := st.ForTenant(id)
		write(t, ts, all...)
		appendOK(t, ts, withExemplars(exOld, oldT, 1, oldEx), withExemplars(exNew, newT, 3, newEx))
	}
	retMatch := []*labels.Matcher{eq("__name__", "ret")}
	exMatch := []*labels.Matcher{eq("__name__", "ret_ex")}
	cut2h, cut24h := now-2*h, now-24*h
	// requireVisible requires tenant id to read exactly want, through
	// Querier, ChunkQuerier, label values, label names and exemplars.
	requireVisible := func(t *testing.T, id tenancy.ID, cut int64, want ...series) {
		t.Helper()
		ts := st.ForTenant(id)
		var expect []series
		var is []string
		for _, s := range want {
			if s = since(s, cut); len(s.samples) > 0 {
				expect = append(expect, s)
				is = append(is, s.lset.Get("i"))
			}
		}
		sortSeries(expect)
		requireSelect(t, ts, expect, math.MinInt64, math.MaxInt64, retMatch...)
		requireSelect(t, ts, expect, 0, now+h, retMatch...)
		got := labelValues(t, ts, math.MinInt64, math.MaxInt64, "i", nil, retMatch...)
		require.ElementsMatch(t, is, got, "label values of i for %s", id)
		wantEx := []exemplarResult{{exNew, []exemplar.Exemplar{newEx}}}
		if cut <= oldT {
			wantEx = append(wantEx, exemplarResult{exOld, []exemplar.Exemplar{oldEx}})
		}
		requireExemplars(t, ts, wantEx, math.MinInt64, math.MaxInt64, exMatch)
	}

	t.Run("invisible at once", func(t *testing.T) {
		requireVisible(t, tenantA, cut2h, all...)
		requireVisible(t, tenantB, math.MinInt64, all...)
		requireVisible(t, tenantC, cut24h, all...)
		// A range wholly past the retention reads nothing at all.
		requireSelect(t, st.ForTenant(tenantA), nil, oldT, midT+10_000, retMatch...)
		require.Empty(t, labelNames(t, st.ForTenant(tenantA), oldT, midT+10_000, nil), "label names of acme before its retention")
	})
	t.Run("after the retention pass", func(t *testing.T) {
		cleanup(t)
		requireVisible(t, tenantA, cut2h, all...)
		requireVisible(t, tenantB, math.MinInt64, all...) // longer than the default: kept
		requireVisible(t, tenantC, cut24h, all...)
	})
	t.Run("raised retention does not bring deleted data back", func(t *testing.T) {
		p.set(tenantA, 100*time.Hour)
		p.set(tenantC, 100*time.Hour)
		// The spanning series is left out: its chunk may straddle the
		// old cutoff, and a backend keeps a chunk that ends after it.
		requireSelect(t, st.ForTenant(tenantA), []series{recent}, math.MinInt64, math.MaxInt64, eq("__name__", "ret"), re("i", "old|mid|new"))
		requireSelect(t, st.ForTenant(tenantC), []series{mid, recent}, math.MinInt64, math.MaxInt64, eq("__name__", "ret"), re("i", "old|mid|new"))
		requireExemplars(t, st.ForTenant(tenantA), []exemplarResult{{exNew, []exemplar.Exemplar{newEx}}}, math.MinInt64, math.MaxInt64, exMatch)
	})
	t.Run("lowered retention applies to stored data", func(t *testing.T) {
		p.set(tenantB, time.Hour)
		requireVisible(t, tenantB, now-h, all...)
		cleanup(t)
		requireVisible(t, tenantB, now-h, all...)
		p.set(tenantB, 100*time.Hour)
		requireSelect(t, st.ForTenant(tenantB), []series{recent}, math.MinInt64, math.MaxInt64, eq("__name__", "ret"), re("i", "old|mid|new"))
		// Another tenant's longer retention is untouched by it.
		requireSelect(t, st.ForTenant(tenantC), []series{mid, recent}, math.MinInt64, math.MaxInt64, eq("__name__", "ret"), re("i", "old|mid|new"))
	})
}

var _ storage.RetentionPolicy = (*retentionPolicy)(nil)
