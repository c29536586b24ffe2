package tenancy_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

// sharedState is an in-process tenancy.ClusterState several Limits share,
// as pods share the ClickHouse table (storage/clickhouse.Pods, tested
// against a real server there and end to end in cmd/luminate).
type sharedState struct {
	mu      sync.Mutex
	clock   *fakeClock
	reports map[string]tenancy.PodReport
	at      map[string]time.Time
	down    map[string]bool // pods that cannot reach the state
}

func newSharedState(clock *fakeClock) *sharedState {
	return &sharedState{clock: clock, reports: map[string]tenancy.PodReport{}, at: map[string]time.Time{}, down: map[string]bool{}}
}

type podView struct {
	s   *sharedState
	pod string
}

func (v podView) Exchange(_ context.Context, self tenancy.PodReport, maxAge time.Duration) ([]tenancy.PodReport, error) {
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	if v.s.down[v.pod] {
		return nil, errors.New("connection refused")
	}
	now := v.s.clock.Now()
	v.s.reports[self.Pod], v.s.at[self.Pod] = self, now
	var out []tenancy.PodReport
	for pod, r := range v.s.reports {
		if now.Sub(v.s.at[pod]) <= maxAge {
			out = append(out, r)
		}
	}
	return out, nil
}

type pod struct {
	l      *tenancy.Limits
	shares *tenancy.PodShares
}

func newPods(t *testing.T, n int, tl tenancy.TenantLimits) ([]pod, *sharedState, *fakeClock) {
	t.Helper()
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	state := newSharedState(clock)
	var pods []pod
	for i := range n {
		cfg := tenancy.DefaultLimitsConfig()
		cfg.TenantLimits = tl
		l, err := tenancy.NewLimits(cfg, nil, prometheus.NewRegistry())
		require.NoError(t, err)
		tenancy.SetLimitsClock(l, clock.Now)
		cc := tenancy.DefaultClusterConfig()
		cc.PodID = string(rune('a' + i))
		sh, err := l.ShareAcrossPods(podView{state, cc.PodID}, cc, nil)
		require.NoError(t, err)
		pods = append(pods, pod{l, sh})
	}
	return pods, state, clock
}

// offer runs seconds of simulated time in 10ms steps: every step, pod i is
// offered weight[i] writes of batch samples (unlimited load: far more than
// the limit); heartbeats every second. It returns the samples accepted
// per pod.
func offer(pods []pod, clock *fakeClock, seconds int, batch int, weight []int) []int {
	accepted := make([]int, len(pods))
	for step := range seconds * 100 {
		clock.Advance(10 * time.Millisecond)
		for i, p := range pods {
			for range weight[i] {
				if p.l.AllowIngest("acme", batch) == nil {
					accepted[i] += batch
				}
			}
		}
		if step%100 == 99 {
			for _, p := range pods {
				p.shares.Heartbeat(context.Background())
			}
		}
	}
	return accepted
}

func sum(xs []int) int {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s
}

// TestShareAcrossPodsHoldsTheLimit: three pods sharing a tenant limited to
// 100,000 samples/s under unlimited load, spread evenly or unevenly,
// accept 100,000 samples/s together (within 10%), where alone each would
// accept the whole limit.
func TestShareAcrossPodsHoldsTheLimit(t *testing.T) {
	tl := tenancy.DefaultTenantLimits()
	tl.IngestionRate, tl.IngestionBurst = 100_000, 100_000
	for _, tc := range []struct {
		name   string
		weight []int
	}{
		{"even", []int{5, 5, 5}},
		{"uneven", []int{12, 2, 1}},
		{"one pod", []int{10, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pods, _, clock := newPods(t, 3, tl)
			offer(pods, clock, 5, 500, tc.weight) // warm up: shares settle, bursts spent
			got := offer(pods, clock, 20, 500, tc.weight)
			rate := float64(sum(got)) / 20
			t.Logf("accepted %.0f samples/s (per pod %v)", rate, got)
			require.InDelta(t, 100_000, rate, 10_000)
		})
	}
}

// TestShareAcrossPodsNeverUnlimitedNeverZero: a pod that has never seen the
// shared state divides by --limits.cluster.fallback-pods; one that loses
// sight of the others keeps its last share; the others, once it has timed
// out, share the limit without it.
func TestShareAcrossPodsNeverUnlimitedNeverZero(t *testing.T) {
	tl := tenancy.DefaultTenantLimits()
	tl.IngestionRate, tl.IngestionBurst = 90_000, 1_000
	pods, state, clock := newPods(t, 3, tl)
	state.down["a"], state.down["b"], state.down["c"] = true, true, true
	got := offer(pods, clock, 10, 100, []int{5, 5, 5})
	require.InDelta(t, 30_000, float64(got[0])/10, 3_000, "never seen: an even split over fallback-pods (3)")

	state.down["a"], state.down["b"], state.down["c"] = false, false, false
	got = offer(pods, clock, 10, 100, []int{5, 5, 5})
	require.InDelta(t, 90_000, float64(sum(got))/10, 9_000)

	state.down["c"] = true // c loses sight of the others
	got = offer(pods, clock, 20, 100, []int{5, 5, 5})
	require.InDelta(t, 30_000, float64(got[2])/20, 3_000, "c keeps its last share")
	got = offer(pods, clock, 20, 100, []int{5, 5, 5})
	require.InDelta(t, 45_000, float64(got[0])/20, 4_500, "a and b share the limit once c timed out")
	require.InDelta(t, 30_000, float64(got[2])/20, 3_000)
	require.Contains(t, pods[2].l.AllowIngest("acme", 500).Error(), "this pod's share")
}

// TestShareAcrossPodsConcurrency: max_concurrent_queries is divided too,
// at least one query per pod.
func TestShareAcrossPodsConcurrency(t *testing.T) {
	tl := tenancy.DefaultTenantLimits()
	tl.MaxConcurrentQueries = 6
	pods, _, clock := newPods(t, 3, tl)
	ctx := context.Background()
	for range 2 { // every pod has published once: each sees the others
		for _, p := range pods {
			p.shares.Heartbeat(ctx)
		}
	}
	run := func(p pod) (n int, release []func()) {
		for range 10 {
			r, err := p.l.AcquireQuery(ctx, "acme")
			if err != nil {
				return n, release
			}
			n++
			release = append(release, r)
		}
		return n, release
	}
	for round := range 6 {
		clock.Advance(time.Second)
		total := 0
		var all []func()
		for _, p := range pods {
			n, rel := run(p)
			total += n
			all = append(all, rel...)
		}
		for _, p := range pods {
			p.shares.Heartbeat(ctx)
		}
		for _, r := range all {
			r()
		}
		t.Logf("round %d: %d concurrent queries admitted across 3 pods", round, total)
		if round >= 3 { // the first heartbeats after the tenant's first queries see each other's demand late
			require.Equal(t, 6, total)
		}
	}
	total := 0
	for _, p := range pods {
		n, _ := run(p)
		total += n
	}
	require.Equal(t, 6, total)
}
