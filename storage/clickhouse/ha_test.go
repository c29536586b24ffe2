package clickhouse

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
	"github.com/luminate-io/luminate/tenancy"
)

// TestHAStoreTwoPods runs the election table with two Stores on one
// database, as two pods on one ClickHouse: proposals of one term, in turn
// and at once, end with both reading the same winner; records move the
// winner's received_at; a merge changes nothing.
func TestHAStoreTwoPods(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	a, b := openStore(t, cfg).HAStore(), openStore(t, cfg).HAStore()
	t0 := time.UnixMilli(1_700_000_000_000)

	_, ok, err := a.Get(ctx, "acme", "c1")
	require.NoError(t, err)
	require.False(t, ok)

	// Term 1: a proposes r1, then b (not yet having read it) proposes r2
	// later: both read r1, the earliest proposal.
	e, err := a.Elect(ctx, "acme", "c1", 1, "r1", t0)
	require.NoError(t, err)
	require.Equal(t, tenancy.HAElection{Term: 1, Replica: "r1", ElectedAt: t0, ReceivedAt: t0}, e)
	e, err = b.Elect(ctx, "acme", "c1", 1, "r2", t0.Add(time.Millisecond))
	require.NoError(t, err)
	require.Equal(t, "r1", e.Replica)

	// b records r1: a reads the new received_at.
	require.NoError(t, b.Seen(ctx, "acme", "c1", e, t0.Add(10*time.Second)))
	e, ok, err = a.Get(ctx, "acme", "c1")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, tenancy.HAElection{Term: 1, Replica: "r1", ElectedAt: t0, ReceivedAt: t0.Add(10 * time.Second)}, e)

	// Other tenants and clusters are apart.
	_, ok, err = b.Get(ctx, "other", "c1")
	require.NoError(t, err)
	require.False(t, ok)
	_, ok, err = b.Get(ctx, "acme", "c2")
	require.NoError(t, err)
	require.False(t, ok)

	// Term 2, proposed by both pods at once for different replicas, 20
	// times over: whatever each read first, both then read one winner.
	for i := range 20 {
		term := uint64(2 + i)
		at := t0.Add(time.Duration(term) * time.Minute)
		var wg sync.WaitGroup
		var ea, eb tenancy.HAElection
		var erra, errb error
		wg.Add(2)
		go func() { defer wg.Done(); ea, erra = a.Elect(ctx, "acme", "c1", term, "r2", at) }()
		go func() {
			defer wg.Done()
			eb, errb = b.Elect(ctx, "acme", "c1", term, "r3", at.Add(time.Duration(i%3-1)*time.Millisecond))
		}()
		wg.Wait()
		require.NoError(t, errors.Join(erra, errb))
		require.Equal(t, term, ea.Term)
		require.Equal(t, term, eb.Term)
		ga, _, err := a.Get(ctx, "acme", "c1")
		require.NoError(t, err)
		gb, _, err := b.Get(ctx, "acme", "c1")
		require.NoError(t, err)
		require.Equal(t, ga, gb, "term %d", term)
		want := "r2" // the earlier proposal, or on a tie the first name
		if i%3 == 0 {
			want = "r3"
		}
		require.Equal(t, want, ga.Replica, "term %d", term)
	}

	// A merge (OPTIMIZE FINAL) keeps the outcome.
	before, _, err := a.Get(ctx, "acme", "c1")
	require.NoError(t, err)
	require.NoError(t, a.s.conn.Exec(ctx, "OPTIMIZE TABLE "+a.s.schema.table(haTable)+" FINAL"))
	after, _, err := b.Get(ctx, "acme", "c1")
	require.NoError(t, err)
	require.Equal(t, before, after)
}

// TestHATrackerTwoPodsClickHouse runs two HA trackers, one per Store, on
// one ClickHouse database with real time and short timeouts: r1 writes to
// pod a, r2 to pod b; b stores nothing of r2 while r1 writes, then fails
// over after r1 stops, within the failover timeout; a then refuses r1.
func TestHATrackerTwoPodsClickHouse(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	haCfg := tenancy.HAConfig{FailoverTimeout: 1500 * time.Millisecond, UpdateTimeout: 500 * time.Millisecond}
	limits := func(tenancy.ID) tenancy.HALimits {
		h := tenancy.DefaultHALimits()
		h.AcceptHASamples = true
		return h
	}
	a, err := tenancy.NewHATracker(haCfg, openStore(t, cfg).HAStore(), limits, nil, nil)
	require.NoError(t, err)
	b, err := tenancy.NewHATracker(haCfg, openStore(t, cfg).HAStore(), limits, nil, nil)
	require.NoError(t, err)

	check := func(tr *tenancy.HATracker, replica string) bool {
		err := tr.Check(ctx, "acme", "c1", replica)
		if errors.Is(err, tenancy.ErrHADuplicate) {
			return false
		}
		require.NoError(t, err)
		return true
	}
	require.True(t, check(a, "r1"))
	deadline := time.Now().Add(4 * time.Second) // over two failover timeouts
	for time.Now().Before(deadline) {
		require.True(t, check(a, "r1"))
		require.False(t, check(b, "r2"), "b failed over while r1 wrote to a")
		time.Sleep(100 * time.Millisecond)
	}
	stopped := time.Now()
	for !check(b, "r2") {
		require.Less(t, time.Since(stopped), haCfg.FailoverTimeout+200*time.Millisecond, "no fail-over")
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("fail-over %s after r1's last write", time.Since(stopped).Round(time.Millisecond))
	require.Eventually(t, func() bool { return !check(a, "r1") }, 2*haCfg.UpdateTimeout, 50*time.Millisecond)
	require.True(t, check(a, "r2"))
}

// TestHAStoreCluster runs the election table in cluster mode, two shards
// behind a Distributed table: a pod connected to each node, proposals
// read back at once (insert_distributed_sync), one winner for both.
func TestHAStoreCluster(t *testing.T) {
	ctx := context.Background()
	nodes := chtest.NewCluster(t, 2)
	cfg := testConfig(t)
	cfg.Cluster = chtest.ClusterName
	cfg.DSN = nodes[0].DSN()
	a := openStore(t, cfg).HAStore()
	cfg.DSN = nodes[1].DSN()
	b := openStore(t, cfg).HAStore()
	t0 := time.UnixMilli(1_700_000_000_000)
	for i, c := range []string{"c1", "c2", "c3", "c4"} { // spread over the shards
		e, err := a.Elect(ctx, "acme", c, 1, "r1", t0)
		require.NoError(t, err)
		require.Equal(t, "r1", e.Replica, c)
		e, err = b.Elect(ctx, "acme", c, 1, "r2", t0.Add(time.Millisecond))
		require.NoError(t, err)
		require.Equal(t, "r1", e.Replica, c)
		require.NoError(t, b.Seen(ctx, "acme", c, e, t0.Add(time.Duration(i+1)*time.Second)))
		got, ok, err := a.Get(ctx, "acme", c)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, tenancy.HAElection{Term: 1, Replica: "r1", ElectedAt: t0, ReceivedAt: t0.Add(time.Duration(i+1) * time.Second)}, got, c)
	}
}
