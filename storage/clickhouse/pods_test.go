package clickhouse

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

// TestPodsExchange: pods on one real ClickHouse see each other's latest
// heartbeat and demand through the pods table; a pod that stops is no
// longer seen once maxAge has passed.
func TestPodsExchange(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg) // migrates: the pods table
	_ = s
	open := func() *Pods {
		p, err := NewPods(cfg, nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close() })
		return p
	}
	a, b := open(), open()
	ctx := t.Context()
	_, err := a.Exchange(ctx, tenancy.PodReport{Pod: "a", Tenants: []tenancy.TenantDemand{{Tenant: "acme", Ingest: 1000, Concurrent: 2}}}, 5*time.Second)
	require.NoError(t, err)
	_, err = a.Exchange(ctx, tenancy.PodReport{Pod: "a", Tenants: []tenancy.TenantDemand{{Tenant: "acme", Ingest: 3000, Concurrent: 1}}}, 5*time.Second)
	require.NoError(t, err)
	got, err := b.Exchange(ctx, tenancy.PodReport{Pod: "b", Tenants: []tenancy.TenantDemand{{Tenant: "acme", Ingest: 10}, {Tenant: "beta", Queries: 5}}}, 5*time.Second)
	require.NoError(t, err)
	slices.SortFunc(got, func(x, y tenancy.PodReport) int { return compareStrings(x.Pod, y.Pod) })
	for i := range got {
		slices.SortFunc(got[i].Tenants, func(x, y tenancy.TenantDemand) int { return compareStrings(string(x.Tenant), string(y.Tenant)) })
	}
	require.Equal(t, []tenancy.PodReport{
		{Pod: "a", Tenants: []tenancy.TenantDemand{{Tenant: "acme", Ingest: 3000, Concurrent: 1}}},
		{Pod: "b", Tenants: []tenancy.TenantDemand{{Tenant: "acme", Ingest: 10}, {Tenant: "beta", Queries: 5}}},
	}, got, "the latest report of each pod")

	// a stops; after maxAge only b is live.
	time.Sleep(2100 * time.Millisecond)
	got, err = b.Exchange(ctx, tenancy.PodReport{Pod: "b"}, time.Second)
	require.NoError(t, err)
	require.Equal(t, []tenancy.PodReport{{Pod: "b"}}, got)
}

// TestPodsShareLimits: three Limits sharing a tenant's ingestion rate
// through the pods table of a real ClickHouse, heartbeating every 100ms,
// accept the tenant's limit together under load on all three. Then one
// loses sight of the table (its connection closed) but goes on admitting:
// it keeps its last share, and the two others, once it timed out, share
// the limit between them.
func TestPodsShareLimits(t *testing.T) {
	cfg := testConfig(t)
	openStore(t, cfg)
	var shares []*tenancy.PodShares
	var limits []*tenancy.Limits
	var states []*Pods
	for range 3 {
		lc := tenancy.DefaultLimitsConfig()
		lc.IngestionRate, lc.IngestionBurst = 30_000, 3_000
		l, err := tenancy.NewLimits(lc, nil, nil)
		require.NoError(t, err)
		p, err := NewPods(cfg, nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close() })
		cc := tenancy.DefaultClusterConfig()
		cc.Heartbeat, cc.PodTimeout = 100*time.Millisecond, time.Second
		sh, err := l.ShareAcrossPods(p, cc, prometheus.NewRegistry())
		require.NoError(t, err)
		shares, limits, states = append(shares, sh), append(limits, l), append(states, p)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for _, sh := range shares {
		go func() { _ = sh.Run(ctx) }()
	}
	load := func(d time.Duration) (total float64, per []float64) {
		accepted := make([]int, len(limits))
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Millisecond) {
			for i, l := range limits {
				if l.AllowIngest("acme", 100) == nil {
					accepted[i] += 100
				}
			}
		}
		for _, a := range accepted {
			per = append(per, float64(a)/d.Seconds())
			total += float64(a) / d.Seconds()
		}
		return total, per
	}
	load(2 * time.Second) // the pods see each other, bursts are spent
	rate, per := load(4 * time.Second)
	t.Logf("3 pods accepted %.0f samples/s of a 30000 samples/s limit, per pod %.0f", rate, per)
	require.InDelta(t, 30_000, rate, 3_000)

	require.NoError(t, states[2].Close()) // pod 2 cannot publish nor read any more
	load(2 * time.Second)                 // longer than the pod timeout
	rate, per = load(4 * time.Second)
	t.Logf("pod 2 cut off: accepted %.0f samples/s, per pod %.0f", rate, per)
	require.InDelta(t, 10_000, per[2], 1_500, "the cut-off pod keeps its last share: never unlimited, never zero")
	require.InDelta(t, 15_000, per[0], 1_500, "the others share the limit without it")
	require.InDelta(t, 40_000, rate, 4_000, "limit x (1 + 1/3) while the partition lasts")
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
