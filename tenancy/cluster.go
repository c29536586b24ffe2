package tenancy

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Limits across pods (docs/operations.md, "Limits across pods").
//
// Several Luminate pods in front of one ClickHouse each enforce a tenant's
// limits in their own memory. Without sharing, N pods would let a tenant
// have N times its limits. With a ClusterState every pod publishes, about
// once a second, how much of each limit each tenant asked of it (its
// demand: samples, requests and queries offered, refused ones included,
// and the peak of its running queries), and reads what the other live
// pods published. From that each pod takes a share of each of the
// tenant's rate limits (ingestion, request and query rate) and of its
// max_concurrent_queries:
//
//   - a small reserve (reserveFraction of the limit) is split evenly over
//     the live pods, so a pod that starts receiving a tenant's traffic can
//     admit some of it before the next heartbeat makes its demand known;
//   - the rest goes by demand: when the pods together ask for less than it,
//     each gets what it asked for plus an even part of what is left over;
//     when they ask for more, it is split max-min fairly (water-filling):
//     pods asking for less than an even part get what they ask, the others
//     share the remainder equally.
//
// A pod that used less than usedShare of its share asks for headroom
// times what it used, so that senders that cannot send faster do not hold
// a share the others could use. The shares of all pods add up to the
// tenant's limit, whatever way the load balancer spreads the tenant's
// requests. Bursts are divided as the rates, never below an even split;
// a write within the tenant's burst but above the pod's part of it is
// refused for now (429), not as too large.
//
// A pod that cannot reach the shared state keeps the shares it computed
// last; a tenant it has no share for gets an even split over the pods it
// saw last (over FallbackPods before it ever saw any). Never unlimited,
// never zero.

// reserveFraction of each limit is split evenly over the live pods before
// the rest is split by demand.
const reserveFraction = 0.05

// A pod that took less than usedShare of its share over a heartbeat
// demands headroom times what it took.
const (
	usedShare = 0.95
	headroom  = 1.1
)

// TenantDemand is what one pod was asked of one tenant's limits over its
// last heartbeat interval.
type TenantDemand struct {
	Tenant ID
	// Ingest, Requests and Queries are the samples, requests and queries
	// per second offered to the pod, refused ones included.
	Ingest, Requests, Queries float64
	// Concurrent is the most queries the tenant ran at once on the pod
	// over the interval, plus the ones refused for concurrency.
	Concurrent float64
}

// PodReport is one pod's heartbeat: who it is and its tenants' demand.
type PodReport struct {
	Pod     string
	Tenants []TenantDemand
}

// ClusterState is the state pods share to divide tenants' limits. The
// ClickHouse implementation is storage/clickhouse.Pods; SinglePod is the
// in-process default of a lone pod.
type ClusterState interface {
	// Exchange publishes self and returns the latest report of every pod
	// that published within maxAge, self's own included or not.
	Exchange(ctx context.Context, self PodReport, maxAge time.Duration) ([]PodReport, error)
}

// SinglePod is the ClusterState of a pod alone: no other pod exists, so
// every share is the whole limit.
type SinglePod struct{}

// Exchange returns self.
func (SinglePod) Exchange(_ context.Context, self PodReport, _ time.Duration) ([]PodReport, error) {
	return []PodReport{self}, nil
}

// ClusterConfig configures how a pod shares tenants' limits with the others.
type ClusterConfig struct {
	// Enabled shares the limits through the backend's shared state (on
	// ClickHouse; Badger is always a single node).
	Enabled bool
	// PodID names this pod in the shared state; default host name and a
	// random suffix, unique per process.
	PodID string
	// Heartbeat is how often the pod publishes its demand and recomputes
	// its shares.
	Heartbeat time.Duration
	// PodTimeout is how long after its last heartbeat a pod still counts
	// as live.
	PodTimeout time.Duration
	// FallbackPods is the number of pods assumed before this pod has ever
	// seen the shared state.
	FallbackPods int
}

// DefaultClusterConfig returns the defaults of the --limits.cluster.* flags.
func DefaultClusterConfig() ClusterConfig {
	return ClusterConfig{Enabled: true, Heartbeat: time.Second, PodTimeout: 5 * time.Second, FallbackPods: 3}
}

// RegisterFlags registers the --limits.cluster.* flags on f.
func (c *ClusterConfig) RegisterFlags(f *flag.FlagSet) {
	d := DefaultClusterConfig()
	f.BoolVar(&c.Enabled, "limits.cluster.enabled", d.Enabled, "On --storage.backend=clickhouse, make each tenant's rate and concurrency limits hold for all the pods on the same ClickHouse together: pods publish their demand in ClickHouse every --limits.cluster.heartbeat and each takes its share (docs/operations.md, Limits across pods). When false each pod enforces the whole limits alone.")
	f.StringVar(&c.PodID, "limits.cluster.pod-id", "", "Name of this pod in the shared limits state; default the host name and a random suffix, unique per process.")
	f.DurationVar(&c.Heartbeat, "limits.cluster.heartbeat", d.Heartbeat, "How often a pod publishes its tenants' demand and recomputes its shares of their limits.")
	f.DurationVar(&c.PodTimeout, "limits.cluster.pod-timeout", d.PodTimeout, "How long after its last heartbeat a pod still counts as live (and keeps its share).")
	f.IntVar(&c.FallbackPods, "limits.cluster.fallback-pods", d.FallbackPods, "Pods assumed by a pod that has not yet seen the shared state (ClickHouse unreachable since it started): each limit is divided by it.")
}

// Validate checks the configuration.
func (c ClusterConfig) Validate() error {
	var errs []error
	if c.Heartbeat < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("--limits.cluster.heartbeat=%s: must be at least 10ms", c.Heartbeat))
	}
	if c.PodTimeout < 2*c.Heartbeat {
		errs = append(errs, fmt.Errorf("--limits.cluster.pod-timeout=%s: must be at least twice --limits.cluster.heartbeat (%s)", c.PodTimeout, c.Heartbeat))
	}
	if c.FallbackPods < 1 || c.FallbackPods > 10_000 {
		errs = append(errs, fmt.Errorf("--limits.cluster.fallback-pods=%d: not in 1..10000", c.FallbackPods))
	}
	return errors.Join(errs...)
}

// Kinds of shared limit, indexes of the demand counters and share fractions.
const (
	shareIngest = iota
	shareRequest
	shareQuery
	shareConcurrent
	numShares
)

// podShare is this pod's part of one tenant's limits, as fractions.
type podShare struct {
	frac [numShares]float64
	pods int
}

// clusterShares is a Limits' sharing state.
type clusterShares struct {
	cfg    ClusterConfig
	state  ClusterState
	logger *slog.Logger

	// shares of the tenants this pod has state for; replaced whole at
	// every heartbeat, read without a lock.
	shares atomic.Pointer[map[ID]podShare]
	// pods is the number of live pods seen last (FallbackPods before any).
	pods atomic.Int64

	mu       sync.Mutex                 // the heartbeat loop's state
	smoothed map[ID]*[numShares]float64 // demand, exponentially smoothed
	lastTick time.Time
	failing  bool // the last exchange failed

	podsGauge prometheus.Gauge
	failures  prometheus.Counter
	lastOK    prometheus.Gauge
}

// demandCounters are one tenant's offered amounts since the last heartbeat.
type demandCounters struct {
	offered [numShares - 1]atomic.Int64 // samples, requests, queries
	taken   [numShares - 1]atomic.Int64 // of them admitted
	refused atomic.Int64                // queries refused for concurrency
	peak    atomic.Int64                // most queries running at once
}

// ShareAcrossPods makes l enforce, for every tenant, this pod's share of
// its rate and concurrency limits, computed from state; call it before l
// is used, then run the returned PodShares. reg, when set, gets its
// metrics.
func (l *Limits) ShareAcrossPods(state ClusterState, cfg ClusterConfig, reg prometheus.Registerer) (*PodShares, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.PodID == "" {
		cfg.PodID = defaultPodID()
	}
	c := &clusterShares{
		cfg: cfg, state: state, logger: l.logger,
		smoothed: map[ID]*[numShares]float64{},
		podsGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "luminate_limits_cluster_pods",
			Help: "Live pods this pod divides tenants' limits with (itself included), as of its last heartbeat.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "luminate_limits_cluster_heartbeat_failures_total",
			Help: "Heartbeats that could not publish or read the shared limits state; the last shares stay in force.",
		}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "luminate_limits_cluster_last_heartbeat_timestamp_seconds",
			Help: "When this pod last exchanged its demand with the other pods.",
		}),
	}
	c.pods.Store(int64(cfg.FallbackPods))
	c.podsGauge.Set(float64(cfg.FallbackPods))
	empty := map[ID]podShare{}
	c.shares.Store(&empty)
	if reg != nil {
		for _, m := range []prometheus.Collector{c.podsGauge, c.failures, c.lastOK} {
			if err := reg.Register(m); err != nil {
				return nil, fmt.Errorf("register cluster limits metrics: %w", err)
			}
		}
	}
	l.mu.Lock()
	l.cluster = c
	l.mu.Unlock()
	return &PodShares{l: l, c: c}, nil
}

func defaultPodID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "pod"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// PodShares runs the heartbeat of a pod sharing its tenants' limits.
type PodShares struct {
	l *Limits
	c *clusterShares
}

// PodID is the name this pod publishes under.
func (p *PodShares) PodID() string { return p.c.cfg.PodID }

// Run exchanges demand and recomputes shares every heartbeat until ctx
// is done; it returns nil then.
func (p *PodShares) Run(ctx context.Context) error {
	tick := time.NewTicker(p.c.cfg.Heartbeat)
	defer tick.Stop()
	for {
		p.Heartbeat(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Heartbeat runs one exchange: it publishes this pod's demand since the
// last one, reads the others' and updates the shares and limiters.
func (p *PodShares) Heartbeat(ctx context.Context) {
	l, c := p.l, p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	now := l.now()
	elapsed := now.Sub(c.lastTick).Seconds()
	if c.lastTick.IsZero() || elapsed <= 0 {
		elapsed = c.cfg.Heartbeat.Seconds()
	}
	c.lastTick = now

	// This pod's demand: the counters since the last heartbeat, as rates,
	// smoothed over about two heartbeats.
	l.mu.RLock()
	ids := make([]ID, 0, len(l.tenants))
	for id, st := range l.tenants {
		ids = append(ids, id)
		var cur [numShares]float64
		for k, lim := range []float64{float64(st.ingest.Limit()), float64(st.request.Limit()), float64(st.query.Limit())} {
			offered := float64(st.demand.offered[k].Swap(0)) / elapsed
			taken := float64(st.demand.taken[k].Swap(0)) / elapsed
			// A pod that used its share asks for all it was offered; one
			// that left a good part of it unused (its senders could not
			// send faster, refusals were retries of writes that waited
			// for tokens) asks for what it took, with headroom, so that
			// the others get the rest.
			cur[k] = offered
			if taken < usedShare*lim {
				cur[k] = min(offered, headroom*taken)
			}
		}
		cur[shareConcurrent] = float64(st.demand.peak.Swap(st.inflight.Load()) + st.demand.refused.Swap(0))
		sm := c.smoothed[id]
		if sm == nil {
			sm = &cur
			c.smoothed[id] = sm
			continue
		}
		for k := range sm {
			sm[k] = 0.5*sm[k] + 0.5*cur[k]
		}
	}
	l.mu.RUnlock()
	for id := range c.smoothed {
		if !slices.Contains(ids, id) {
			delete(c.smoothed, id) // evicted idle
		}
	}
	self := PodReport{Pod: c.cfg.PodID}
	for _, id := range ids {
		sm := c.smoothed[id]
		self.Tenants = append(self.Tenants, TenantDemand{Tenant: id, Ingest: sm[shareIngest], Requests: sm[shareRequest], Queries: sm[shareQuery], Concurrent: sm[shareConcurrent]})
	}
	slices.SortFunc(self.Tenants, func(a, b TenantDemand) int { return cmp.Compare(a.Tenant, b.Tenant) })

	xctx, cancel := context.WithTimeout(ctx, max(c.cfg.PodTimeout-c.cfg.Heartbeat, c.cfg.Heartbeat))
	reports, err := c.state.Exchange(xctx, self, c.cfg.PodTimeout)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			c.failures.Inc()
			if !c.failing { // logged once per outage, not every heartbeat
				c.logger.Warn("limits heartbeat failed: this pod keeps its last shares of its tenants' limits until it sees the other pods again",
					"pod", c.cfg.PodID, "pods_seen_last", c.pods.Load(), "err", err)
			}
			c.failing = true
		}
		return
	}
	if c.failing {
		c.logger.Info("limits heartbeat works again", "pod", c.cfg.PodID)
	}
	c.failing = false
	c.lastOK.Set(float64(now.UnixNano()) / 1e9)
	// Self as published, not as read back.
	reports = slices.DeleteFunc(slices.Clone(reports), func(r PodReport) bool { return r.Pod == self.Pod })
	reports = append(reports, self)
	for i := range reports {
		slices.SortFunc(reports[i].Tenants, func(a, b TenantDemand) int { return cmp.Compare(a.Tenant, b.Tenant) })
	}
	c.pods.Store(int64(len(reports)))
	c.podsGauge.Set(float64(len(reports)))

	shares := make(map[ID]podShare, len(ids))
	demand := make([][numShares]float64, len(reports))
	for _, id := range ids {
		for i, r := range reports {
			demand[i] = [numShares]float64{}
			if j, ok := slices.BinarySearchFunc(r.Tenants, id, func(d TenantDemand, id ID) int { return cmp.Compare(d.Tenant, id) }); ok {
				d := r.Tenants[j]
				demand[i] = [numShares]float64{d.Ingest, d.Requests, d.Queries, d.Concurrent}
			}
		}
		sh := podShare{pods: len(reports)}
		col := make([]float64, len(reports))
		for k := range numShares {
			for i := range demand {
				col[i] = demand[i][k]
			}
			sh.frac[k] = shareOf(1, col, len(reports)-1)
		}
		shares[id] = sh
	}
	c.shares.Store(&shares)
	l.applyShares()
}

// shareOf is pod self's part of limit, given the demand of every live pod
// (self's at index self): the reserve split evenly, the rest by demand,
// max-min fairly when the pods ask for more than it. The parts of all pods
// add up to limit.
func shareOf(limit float64, demand []float64, self int) float64 {
	n := float64(len(demand))
	reserve := limit * reserveFraction / n
	rest := limit - reserve*n
	total := 0.0
	for _, d := range demand {
		total += max(d, 0)
	}
	if total <= rest {
		return reserve + max(demand[self], 0) + (rest-total)/n
	}
	sorted := slices.Clone(demand)
	slices.Sort(sorted)
	level, left := rest, rest
	for i, d := range sorted {
		if k := n - float64(i); max(d, 0)*k >= left {
			level = left / k
			break
		}
		left -= max(d, 0)
	}
	return reserve + min(max(demand[self], 0), level)
}

// share is this pod's share of tenant id's limits; without a computed one,
// an even split over the pods seen last.
func (c *clusterShares) share(id ID) podShare {
	if sh, ok := (*c.shares.Load())[id]; ok {
		return sh
	}
	n := int(c.pods.Load())
	sh := podShare{pods: n}
	for k := range sh.frac {
		sh.frac[k] = 1 / float64(n)
	}
	return sh
}

// podLimits returns tl, tenant id's limits, with its rate and concurrency
// limits cut to this pod's share of them.
func (l *Limits) podLimits(id ID, tl TenantLimits) TenantLimits {
	c := l.cluster
	if c == nil {
		return tl
	}
	sh := c.share(id)
	// Bursts are divided as the rates, but never below an even split,
	// so that a write of up to burst/pods samples fits on any pod.
	burst := func(b int, frac float64) int {
		return max(1, int(math.Ceil(float64(b)*frac)), int(math.Ceil(float64(b)/float64(sh.pods))))
	}
	tl.IngestionRate *= sh.frac[shareIngest]
	tl.IngestionBurst = burst(tl.IngestionBurst, sh.frac[shareIngest])
	tl.RequestRate *= sh.frac[shareRequest]
	tl.RequestBurst = burst(tl.RequestBurst, sh.frac[shareRequest])
	tl.QueryRate *= sh.frac[shareQuery]
	tl.QueryBurst = burst(tl.QueryBurst, sh.frac[shareQuery])
	if tl.MaxConcurrentQueries > 0 {
		tl.MaxConcurrentQueries = max(1, int(math.Round(float64(tl.MaxConcurrentQueries)*sh.frac[shareConcurrent])))
	}
	return tl
}

// applyShares gives the limiters of every tenant its new share.
func (l *Limits) applyShares() {
	now := l.now()
	snap := l.snap.Load()
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, st := range l.tenants {
		tl := l.podLimits(id, snap.get(id))
		st.ingest = updateLimiter(st.ingest, now, tl.IngestionRate, tl.IngestionBurst)
		st.request = updateLimiter(st.request, now, tl.RequestRate, tl.RequestBurst)
		st.query = updateLimiter(st.query, now, tl.QueryRate, tl.QueryBurst)
	}
}

// observe counts n of spec's tokens asked of tenant state st (and taken,
// when *err is nil), for the demand this pod publishes.
func (l *Limits) observe(st *tenantState, spec limitSpec, n int, err *error) {
	if l.cluster == nil {
		return
	}
	k := shareQuery
	switch spec {
	case ingestionRateSpec:
		k = shareIngest
	case requestRateSpec:
		k = shareRequest
	}
	st.demand.offered[k].Add(int64(n))
	if *err == nil {
		st.demand.taken[k].Add(int64(n))
	}
}

// observeRunning records that st runs running queries (refused: one more
// was refused for concurrency).
func (l *Limits) observeRunning(st *tenantState, running int64, refused bool) {
	if l.cluster == nil {
		return
	}
	if refused {
		st.demand.refused.Add(1)
	}
	for {
		p := st.demand.peak.Load()
		if running <= p || st.demand.peak.CompareAndSwap(p, running) {
			return
		}
	}
}

// shareNote is what a limit message adds on a pod that shares limits:
// the tenant's limit and this pod's part of it.
func (l *Limits) shareNote(id ID, spec limitSpec, tenantLimit float64) string {
	c := l.cluster
	if c == nil {
		return ""
	}
	sh := c.share(id)
	k := shareConcurrent
	switch spec {
	case ingestionRateSpec:
		k = shareIngest
	case requestRateSpec:
		k = shareRequest
	case queryRateSpec:
		k = shareQuery
	}
	return fmt.Sprintf(" (tenant-wide limit %s %s, this pod's share %.0f%% of it, %d pods)", formatRate(tenantLimit), spec.unit, 100*sh.frac[k], sh.pods)
}

// tenantRate is tl's rate limit of spec.
func tenantRate(tl TenantLimits, spec limitSpec) float64 {
	switch spec {
	case ingestionRateSpec:
		return tl.IngestionRate
	case requestRateSpec:
		return tl.RequestRate
	}
	return tl.QueryRate
}

// tenantBurst is tl's burst of spec.
func tenantBurst(tl TenantLimits, spec limitSpec) int {
	switch spec {
	case ingestionRateSpec:
		return tl.IngestionBurst
	case requestRateSpec:
		return tl.RequestBurst
	}
	return tl.QueryBurst
}
