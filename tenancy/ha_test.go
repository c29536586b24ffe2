package tenancy_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

// haClock is a settable clock for trackers; not safe for concurrent use.
type haClock struct{ now time.Time }

func (c *haClock) get() time.Time          { return c.now }
func (c *haClock) advance(d time.Duration) { c.now = c.now.Add(d) }

var haTestConfig = tenancy.HAConfig{FailoverTimeout: 30 * time.Second, UpdateTimeout: 15 * time.Second}

// newHATracker returns a tracker on store (a new memory store if nil)
// with clock, for which tenant "ha" accepts HA samples with the default
// labels and limit max clusters, and every other tenant does not.
func newHATracker(t *testing.T, store tenancy.HAStore, clock *haClock, max int) *tenancy.HATracker {
	t.Helper()
	if store == nil {
		store = tenancy.NewMemoryHAStore()
	}
	limits := func(id tenancy.ID) tenancy.HALimits {
		h := tenancy.DefaultHALimits()
		h.AcceptHASamples = id == "ha" || id == "ha2"
		h.MaxClusters = max
		return h
	}
	tr, err := tenancy.NewHATracker(haTestConfig, store, limits, nil, nil)
	require.NoError(t, err)
	tenancy.SetHAClock(tr, clock.get)
	return tr
}

// stored reports whether a write of replica of cluster c1 of tenant id
// is stored, failing t on any error but ErrHADuplicate.
func stored(t *testing.T, tr *tenancy.HATracker, id tenancy.ID, cluster, replica string) bool {
	t.Helper()
	err := tr.Check(context.Background(), id, cluster, replica)
	if errors.Is(err, tenancy.ErrHADuplicate) {
		var dup *tenancy.HADuplicateError
		require.ErrorAs(t, err, &dup)
		require.Equal(t, replica, dup.Replica)
		return false
	}
	require.NoError(t, err)
	return true
}

func TestHATrackerFailover(t *testing.T) {
	clock := &haClock{time.Unix(1_700_000_000, 0)}
	tr := newHATracker(t, nil, clock, 0)

	// The first replica to write is elected; the other's writes are not stored.
	require.True(t, stored(t, tr, "ha", "c1", "r1"))
	require.False(t, stored(t, tr, "ha", "c1", "r2"))

	// While r1 writes (every 10s, for ten failover timeouts), r2 never wins.
	for range 30 {
		clock.advance(10 * time.Second)
		require.True(t, stored(t, tr, "ha", "c1", "r1"))
		require.False(t, stored(t, tr, "ha", "c1", "r2"))
	}

	// r1 stops: r2 is refused until r1 has been silent for the failover
	// timeout, then elected at its next write; r1 coming back is refused.
	clock.advance(haTestConfig.FailoverTimeout - time.Millisecond)
	require.False(t, stored(t, tr, "ha", "c1", "r2"))
	clock.advance(time.Millisecond)
	require.True(t, stored(t, tr, "ha", "c1", "r2"))
	require.False(t, stored(t, tr, "ha", "c1", "r1"))
	clock.advance(5 * time.Second)
	require.True(t, stored(t, tr, "ha", "c1", "r2"))
	require.False(t, stored(t, tr, "ha", "c1", "r1"))

	// And back to r1 once r2 is silent for the timeout.
	clock.advance(haTestConfig.FailoverTimeout)
	require.True(t, stored(t, tr, "ha", "c1", "r1"))
	require.False(t, stored(t, tr, "ha", "c1", "r2"))
}

func TestHATrackerIsolation(t *testing.T) {
	clock := &haClock{time.Unix(1_700_000_000, 0)}
	tr := newHATracker(t, nil, clock, 0)

	require.True(t, stored(t, tr, "ha", "c1", "r1"))
	// Another cluster of the tenant, and the same cluster name of another
	// tenant, elect their own replicas.
	require.True(t, stored(t, tr, "ha", "c2", "r2"))
	require.True(t, stored(t, tr, "ha2", "c1", "r2"))
	require.False(t, stored(t, tr, "ha", "c1", "r2"))
	require.False(t, stored(t, tr, "ha", "c2", "r1"))
	require.False(t, stored(t, tr, "ha2", "c1", "r1"))

	// A tenant without accept_ha_samples is not deduplicated.
	cluster, replica, ok := tr.Labels("plain")
	require.False(t, ok)
	require.Equal(t, "cluster", cluster)
	require.Equal(t, "__replica__", replica)
	_, _, ok = tr.Labels("ha")
	require.True(t, ok)
}

func TestHATrackerMaxClusters(t *testing.T) {
	clock := &haClock{time.Unix(1_700_000_000, 0)}
	tr := newHATracker(t, nil, clock, 2)
	require.True(t, stored(t, tr, "ha", "c1", "r1"))
	require.True(t, stored(t, tr, "ha", "c2", "r1"))
	err := tr.Check(context.Background(), "ha", "c3", "r1")
	require.ErrorIs(t, err, tenancy.ErrHAClusters)
	// Another tenant has its own.
	require.True(t, stored(t, tr, "ha2", "c3", "r1"))
	// Clusters idle for half an hour make room.
	clock.advance(31 * time.Minute)
	require.True(t, stored(t, tr, "ha", "c3", "r1"))
}

// TestHATrackerPods runs two trackers on one store, as two pods on one
// ClickHouse: each writer goes to one pod, and the pods agree.
func TestHATrackerPods(t *testing.T) {
	clock := &haClock{time.Unix(1_700_000_000, 0)}
	store := tenancy.NewMemoryHAStore()
	a, b := newHATracker(t, store, clock, 0), newHATracker(t, store, clock, 0)

	require.True(t, stored(t, a, "ha", "c1", "r1"))
	require.False(t, stored(t, b, "ha", "c1", "r2"))
	// r1 keeps writing to a: a records it every update timeout, so b never
	// fails over although it never sees r1 itself.
	for range 20 {
		clock.advance(5 * time.Second)
		require.True(t, stored(t, a, "ha", "c1", "r1"))
		require.False(t, stored(t, b, "ha", "c1", "r2"))
	}
	// r1 stops. b fails over at most the failover timeout after r1's last
	// write (its last record may be an update timeout older: then sooner).
	var after time.Duration
	for stored(t, b, "ha", "c1", "r2") == false {
		clock.advance(time.Second)
		after += time.Second
		require.LessOrEqual(t, after, haTestConfig.FailoverTimeout)
	}
	require.GreaterOrEqual(t, after, haTestConfig.FailoverTimeout-haTestConfig.UpdateTimeout)
	// a learns of the new election at r1's next write, and refuses it.
	clock.advance(time.Second)
	require.False(t, stored(t, a, "ha", "c1", "r1"))
	// r2 writes to a too now: stored there as well.
	require.True(t, stored(t, a, "ha", "c1", "r2"))
}

func TestHAConfigValidate(t *testing.T) {
	require.NoError(t, tenancy.DefaultHAConfig().Validate())
	require.ErrorContains(t, tenancy.HAConfig{FailoverTimeout: 15 * time.Second, UpdateTimeout: 15 * time.Second}.Validate(), "--ha.failover-timeout")
	require.ErrorContains(t, tenancy.HAConfig{FailoverTimeout: 15 * time.Second}.Validate(), "--ha.update-timeout")
}

func TestHAOverrides(t *testing.T) {
	d := tenancy.DefaultTenantLimits()
	got, err := tenancy.ParseOverrides([]byte(`
overrides:
  acme:
    accept_ha_samples: true
    ha_cluster_label: prom_cluster
    ha_replica_label: prom_replica
    ha_max_clusters: 5
  other: {ingestion_rate: 5}
`), d)
	require.NoError(t, err)
	require.Equal(t, tenancy.HALimits{AcceptHASamples: true, ClusterLabel: "prom_cluster", ReplicaLabel: "prom_replica", MaxClusters: 5}, got["acme"].HA)
	require.Equal(t, tenancy.DefaultHALimits(), got["other"].HA)

	_, err = tenancy.ParseOverrides([]byte("overrides:\n  acme: {accept_ha_samples: true, ha_replica_label: cluster}\n"), d)
	require.ErrorContains(t, err, "both")
}

// TestHATrackerPodsSharedWriters: both replicas write to pod a (a load
// balancer in front), the standby also to pod b. The standby's reads of
// the store at a must not stop a from recording the elected replica, or
// b would fail over while r1 writes.
func TestHATrackerPodsSharedWriters(t *testing.T) {
	clock := &haClock{time.Unix(1_700_000_000, 0)}
	store := tenancy.NewMemoryHAStore()
	a, b := newHATracker(t, store, clock, 0), newHATracker(t, store, clock, 0)
	require.True(t, stored(t, a, "ha", "c1", "r1"))
	for range 60 {
		clock.advance(5 * time.Second)
		require.False(t, stored(t, a, "ha", "c1", "r2"))
		require.True(t, stored(t, a, "ha", "c1", "r1"))
		require.False(t, stored(t, b, "ha", "c1", "r2"), "b failed over while r1 wrote to a")
	}
}

// BenchmarkHATrackerCheck is the cost per write request of the elected
// replica (the store asked once per update timeout) and of the standby.
func BenchmarkHATrackerCheck(b *testing.B) {
	limits := func(tenancy.ID) tenancy.HALimits {
		h := tenancy.DefaultHALimits()
		h.AcceptHASamples = true
		return h
	}
	tr, err := tenancy.NewHATracker(tenancy.DefaultHAConfig(), tenancy.NewMemoryHAStore(), limits, nil, nil)
	require.NoError(b, err)
	ctx := context.Background()
	require.NoError(b, tr.Check(ctx, "ha", "c1", "r1"))
	b.Run("elected", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := tr.Check(ctx, "ha", "c1", "r1"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("standby", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := tr.Check(ctx, "ha", "c1", "r2"); !errors.Is(err, tenancy.ErrHADuplicate) {
				b.Fatal(err)
			}
		}
	})
}
