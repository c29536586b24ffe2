package tenancy

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HA-pair deduplication, as Mimir's HA tracker does it: a tenant that
// accepts HA samples labels the series of each Prometheus of an HA pair
// with the pair's cluster (ha_cluster_label, default "cluster") and the
// Prometheus' own replica (ha_replica_label, default "__replica__"). Per
// (tenant, cluster) one replica is elected; the writes of the others are
// accepted and not stored (202). When the elected replica has not been
// seen for --ha.failover-timeout, the next replica that writes is
// elected. The replica label is dropped before storage, so that both
// replicas write the same series.
//
// The election lives in an HAStore: NewMemoryHAStore for one process
// (Badger), storage/clickhouse's for pods sharing one ClickHouse.

// HALimits are a tenant's HA settings, in its limits (per-tenant override
// keys accept_ha_samples, ha_cluster_label, ha_replica_label,
// ha_max_clusters; the --limits.* flags of the same names set the
// defaults).
type HALimits struct {
	AcceptHASamples bool   `yaml:"accept_ha_samples,omitempty"`
	ClusterLabel    string `yaml:"ha_cluster_label,omitempty"`
	ReplicaLabel    string `yaml:"ha_replica_label,omitempty"`
	// MaxClusters is the most HA clusters tracked for the tenant (per pod);
	// writes of further clusters are refused with 400. 0 means unlimited.
	MaxClusters int `yaml:"ha_max_clusters,omitempty"`
}

// DefaultHALimits are Mimir's defaults: off, labels cluster and
// __replica__, at most 100 clusters.
func DefaultHALimits() HALimits {
	return HALimits{ClusterLabel: "cluster", ReplicaLabel: "__replica__", MaxClusters: 100}
}

func (h *HALimits) registerFlags(f *flag.FlagSet) {
	d := DefaultHALimits()
	const k = " Per-tenant override key: "
	f.BoolVar(&h.AcceptHASamples, "limits.accept-ha-samples", d.AcceptHASamples,
		"Deduplicate the writes of Prometheus HA pairs: of the series labelled with the same --limits.ha-cluster-label, store only those of one replica (--limits.ha-replica-label) at a time, answer the others 202, and fail over after --ha.failover-timeout."+k+"accept_ha_samples.")
	f.StringVar(&h.ClusterLabel, "limits.ha-cluster-label", d.ClusterLabel,
		"Label naming the HA cluster (the Prometheus pair) of a written series, kept in storage."+k+"ha_cluster_label.")
	f.StringVar(&h.ReplicaLabel, "limits.ha-replica-label", d.ReplicaLabel,
		"Label naming the replica (the Prometheus of the pair) of a written series, dropped before storage."+k+"ha_replica_label.")
	f.IntVar(&h.MaxClusters, "limits.ha-max-clusters", d.MaxClusters,
		"HA clusters tracked per tenant (per pod); writes of more are refused with 400. 0 means unlimited."+k+"ha_max_clusters.")
}

func (h HALimits) validate() error {
	var errs []error
	if h.AcceptHASamples && (h.ClusterLabel == "" || h.ReplicaLabel == "") {
		errs = append(errs, errors.New("accept_ha_samples needs ha_cluster_label and ha_replica_label"))
	}
	if h.AcceptHASamples && h.ClusterLabel == h.ReplicaLabel {
		errs = append(errs, fmt.Errorf("ha_cluster_label and ha_replica_label are both %q", h.ClusterLabel))
	}
	if h.MaxClusters < 0 {
		errs = append(errs, fmt.Errorf("ha_max_clusters %d is negative (0 means unlimited)", h.MaxClusters))
	}
	return errors.Join(errs...)
}

// haOverride is the HA part of a tenant's entry in the overrides file;
// nil fields keep the default.
type haOverride struct {
	AcceptHASamples *bool   `yaml:"accept_ha_samples,omitempty"`
	ClusterLabel    *string `yaml:"ha_cluster_label,omitempty"`
	ReplicaLabel    *string `yaml:"ha_replica_label,omitempty"`
	MaxClusters     *int    `yaml:"ha_max_clusters,omitempty"`
}

func (o haOverride) apply(h HALimits) HALimits {
	if o.AcceptHASamples != nil {
		h.AcceptHASamples = *o.AcceptHASamples
	}
	if o.ClusterLabel != nil {
		h.ClusterLabel = *o.ClusterLabel
	}
	if o.ReplicaLabel != nil {
		h.ReplicaLabel = *o.ReplicaLabel
	}
	if o.MaxClusters != nil {
		h.MaxClusters = *o.MaxClusters
	}
	return h
}

// HA returns the HA settings of tenant id.
func (l *Limits) HA(id ID) HALimits { return l.For(id).HA }

// HAConfig configures the HA tracker: how long the elected replica may be
// silent before another is elected, and how often a pod records in the
// store that it still sees it. The per-tenant settings are HALimits.
type HAConfig struct {
	FailoverTimeout time.Duration
	UpdateTimeout   time.Duration
}

// DefaultHAConfig returns Mimir's defaults: fail over after 30s, record
// every 15s.
func DefaultHAConfig() HAConfig {
	return HAConfig{FailoverTimeout: 30 * time.Second, UpdateTimeout: 15 * time.Second}
}

// RegisterFlags registers the --ha.* flags on f.
func (c *HAConfig) RegisterFlags(f *flag.FlagSet) {
	d := DefaultHAConfig()
	f.DurationVar(&c.FailoverTimeout, "ha.failover-timeout", d.FailoverTimeout,
		"With --limits.accept-ha-samples, how long the elected replica of an HA cluster may send nothing before the next replica that writes is elected; the longest gap a fail-over leaves is about this plus one scrape interval. At least --ha.update-timeout plus 1s.")
	f.DurationVar(&c.UpdateTimeout, "ha.update-timeout", d.UpdateTimeout,
		"How often a Luminate records in the election store (ClickHouse with several pods) that it still receives the elected replica, and re-reads the election.")
}

// Validate checks c as Mimir checks its HA tracker: the failover timeout
// must leave the update timeout and a second of slack, or a live replica
// whose last recorded write is one update timeout old would lose.
func (c HAConfig) Validate() error {
	if c.UpdateTimeout <= 0 {
		return fmt.Errorf("--ha.update-timeout=%s: must be positive", c.UpdateTimeout)
	}
	if c.FailoverTimeout < c.UpdateTimeout+time.Second {
		return fmt.Errorf("--ha.failover-timeout=%s must be at least --ha.update-timeout=%s plus 1s", c.FailoverTimeout, c.UpdateTimeout)
	}
	return nil
}

// HAElection is the state of one (tenant, cluster) in an HAStore: the
// replica elected in its latest election (Term, counted from 1), when it
// was elected and when a sample of it was last recorded.
type HAElection struct {
	Term       uint64
	Replica    string
	ElectedAt  time.Time
	ReceivedAt time.Time
}

// HAStore keeps the elections of HA clusters, shared by every process
// deduplicating the same tenants. Implementations must be safe for
// concurrent use; their errors fail the write (503 when they wrap
// storage.ErrUnavailable, else 500).
type HAStore interface {
	// Get returns the election in force for (id, cluster); ok is false
	// when the cluster was never elected.
	Get(ctx context.Context, id ID, cluster string) (e HAElection, ok bool, err error)
	// Elect proposes replica as the winner of election term (the term in
	// force plus one, 1 for a new cluster) at now, and returns the
	// election in force afterwards: this proposal's, or another's that
	// won the term (or a later one).
	Elect(ctx context.Context, id ID, cluster string, term uint64, replica string, now time.Time) (HAElection, error)
	// Seen records that e's replica was received at now.
	Seen(ctx context.Context, id ID, cluster string, e HAElection, now time.Time) error
}

// ErrHADuplicate is what Check returns for a write of a replica that is
// not the elected one: accept it and store nothing (202).
var ErrHADuplicate = errors.New("write of a replica that is not the elected one of its HA cluster")

// HADuplicateError is the ErrHADuplicate of one write.
type HADuplicateError struct {
	Cluster, Replica, Elected string
}

func (e *HADuplicateError) Error() string {
	return fmt.Sprintf("HA cluster %q: replica %q is not the elected replica %q; samples accepted, not stored", e.Cluster, e.Replica, e.Elected)
}

// Unwrap returns ErrHADuplicate.
func (e *HADuplicateError) Unwrap() error { return ErrHADuplicate }

// ErrHAClusters wraps the refusal of a write of one HA cluster more than
// the tenant's ha_max_clusters (a 400: retrying it cannot pass).
var ErrHAClusters = errors.New("too many HA clusters")

// haMaxClusters is the setting ErrHAClusters names.
var haMaxClusters = PerTenant("--limits.ha-max-clusters", "ha_max_clusters")

// HAClustersSetting is the setting that raises the ErrHAClusters limit.
func HAClustersSetting() Setting { return haMaxClusters }

// HATracker elects, per (tenant, cluster), the replica whose writes are
// stored. It decides from what it remembers of each cluster and asks its
// HAStore at most once per --ha.update-timeout per cluster while the
// elected replica writes, and when a fail-over is due. Safe for
// concurrent use.
type HATracker struct {
	cfg    HAConfig
	store  HAStore
	limits func(ID) HALimits
	logger *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	tenants map[ID]map[string]*haCluster // by tenant and cluster

	elections  *prometheus.CounterVec
	duplicates *prometheus.CounterVec
}

type haKey struct {
	tenant  ID
	cluster string
}

// haCluster is what a tracker knows of one (tenant, cluster).
type haCluster struct {
	sync.Mutex // held while asking the store

	elected  HAElection // as the store last said
	seen     time.Time  // the elected replica's last write to this process
	synced   time.Time  // when the store was last asked (or told)
	recorded time.Time  // when this process last recorded the elected replica in the store
	used     time.Time  // the last write of any replica, for eviction
}

// haIdle is how long a cluster without writes stays remembered when its
// tenant has no room for another one (Mimir deletes replicas after 30
// minutes).
const haIdle = 30 * time.Minute

// NewHATracker returns a tracker keeping its elections in store, with the
// per-tenant settings limits returns (Limits.HA), counting on reg (nil
// for nowhere).
func NewHATracker(cfg HAConfig, store HAStore, limits func(ID) HALimits, logger *slog.Logger, reg prometheus.Registerer) (*HATracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &HATracker{
		cfg: cfg, store: store, limits: limits, logger: logger, now: time.Now,
		tenants: map[ID]map[string]*haCluster{},
		elections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "luminate_ha_elections_total",
			Help: "Changes of the elected replica of an HA cluster seen by this process, by tenant.",
		}, []string{"tenant"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "luminate_ha_deduplicated_requests_total",
			Help: "Write requests of a replica not elected in its HA cluster, accepted (202) and not stored, by tenant.",
		}, []string{"tenant"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{t.elections, t.duplicates} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register HA metrics: %w", err)
			}
		}
	}
	return t, nil
}

// Labels returns the cluster and replica label names of tenant id, and
// false when the tenant does not accept HA samples.
func (t *HATracker) Labels(id ID) (cluster, replica string, ok bool) {
	h := t.limits(id)
	return h.ClusterLabel, h.ReplicaLabel, h.AcceptHASamples
}

// Check decides whether a write of replica of cluster, of tenant id, is
// stored: nil when it is (replica is elected, or has just been elected);
// a *HADuplicateError (ErrHADuplicate) when another replica is; an error
// wrapping ErrHAClusters when the tenant tracks its ha_max_clusters
// already; or the store's error. It keeps cluster and replica: they
// must not point into memory that is reused.
func (t *HATracker) Check(ctx context.Context, id ID, cluster, replica string) error {
	now := t.now()
	c, err := t.cluster(id, cluster, now)
	if err != nil {
		return err
	}
	c.Lock()
	defer c.Unlock()
	c.used = now
	if c.elected.Term == 0 { // new to this process: ask the store
		if err := t.sync(ctx, id, cluster, c, replica, now); err != nil {
			return err
		}
	} else if replica == c.elected.Replica {
		// Recorded on its own clock: the standby's reads (below) must not
		// put off recording the elected replica.
		if now.Sub(c.synced) >= t.cfg.UpdateTimeout || now.Sub(c.recorded) >= t.cfg.UpdateTimeout {
			if err := t.sync(ctx, id, cluster, c, replica, now); err != nil {
				return err
			}
		}
	} else if now.Sub(c.lastSeen()) >= t.cfg.FailoverTimeout || now.Sub(c.synced) >= t.cfg.UpdateTimeout {
		// The elected replica looks gone, or another process may have
		// elected another since the store was last asked.
		if err := t.sync(ctx, id, cluster, c, replica, now); err != nil {
			return err
		}
	}
	if replica != c.elected.Replica {
		t.duplicates.WithLabelValues(string(id)).Inc()
		return &HADuplicateError{Cluster: cluster, Replica: replica, Elected: c.elected.Replica}
	}
	c.seen = now
	return nil
}

// lastSeen is when the elected replica was last seen, by this process or
// (as the store records it) by any.
func (c *haCluster) lastSeen() time.Time {
	if c.seen.After(c.elected.ReceivedAt) {
		return c.seen
	}
	return c.elected.ReceivedAt
}

// sync asks the store for the election of c, a write of replica arriving
// at now: it records the elected replica as seen when it is replica and
// was not recorded for an update timeout, and elects replica when the
// elected one was seen by no process for the failover timeout. c is held.
func (t *HATracker) sync(ctx context.Context, id ID, cluster string, c *haCluster, replica string, now time.Time) error {
	e, ok, err := t.store.Get(ctx, id, cluster)
	if err != nil {
		return fmt.Errorf("read HA election of cluster %q: %w", cluster, err)
	}
	if ok && e.Replica == c.elected.Replica && e.Term == c.elected.Term && c.seen.After(e.ReceivedAt) {
		e.ReceivedAt = c.seen // what this process saw and has not recorded yet
	}
	switch {
	case !ok:
		if e, err = t.store.Elect(ctx, id, cluster, 1, replica, now); err != nil {
			return fmt.Errorf("elect replica %q of HA cluster %q: %w", replica, cluster, err)
		}
	case e.Replica == replica:
		if now.Sub(c.recorded) >= t.cfg.UpdateTimeout || c.elected.Term != e.Term {
			if err := t.store.Seen(ctx, id, cluster, e, now); err != nil {
				return fmt.Errorf("record replica %q of HA cluster %q: %w", replica, cluster, err)
			}
			c.recorded = now
		}
		e.ReceivedAt = now
	case now.Sub(e.ReceivedAt) >= t.cfg.FailoverTimeout:
		silent := now.Sub(e.ReceivedAt)
		if e, err = t.store.Elect(ctx, id, cluster, e.Term+1, replica, now); err != nil {
			return fmt.Errorf("elect replica %q of HA cluster %q: %w", replica, cluster, err)
		}
		t.logger.InfoContext(ctx, "HA fail-over", "tenant", id, "cluster", cluster, "replica", e.Replica, "term", e.Term, "elected_silent_for", silent)
	}
	if e.Replica != c.elected.Replica {
		if c.elected.Term != 0 {
			t.elections.WithLabelValues(string(id)).Inc()
		}
		t.logger.InfoContext(ctx, "HA replica elected", "tenant", id, "cluster", cluster, "replica", e.Replica, "term", e.Term, "previous", c.elected.Replica)
		c.seen = time.Time{}
		c.recorded = time.Time{}
		if e.Replica == replica {
			c.recorded = now
		}
	}
	c.elected, c.synced = e, now
	return nil
}

// cluster returns the state of (id, cluster), creating it when the
// tenant tracks fewer than its ha_max_clusters (forgetting its clusters
// idle for haIdle to make room).
func (t *HATracker) cluster(id ID, cluster string, now time.Time) (*haCluster, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	clusters := t.tenants[id]
	if c, ok := clusters[cluster]; ok {
		return c, nil
	}
	if limit := t.limits(id).MaxClusters; limit > 0 && len(clusters) >= limit {
		for name, c := range clusters {
			if c.TryLock() { // one in use is not idle
				idle := now.Sub(c.used) > haIdle
				c.Unlock()
				if idle {
					delete(clusters, name)
				}
			}
		}
		if len(clusters) >= limit {
			return nil, fmt.Errorf("%w: tenant %s already sends %d HA clusters, its limit; cluster %q refused",
				ErrHAClusters, id, limit, cluster)
		}
	}
	if clusters == nil {
		clusters = map[string]*haCluster{}
		t.tenants[id] = clusters
	}
	c := &haCluster{used: now}
	clusters[cluster] = c
	return c, nil
}

// MemoryHAStore is an HAStore in this process's memory: for a single
// Luminate (Badger), where it is the whole truth. Safe for concurrent use.
// Elections of clusters not received for haIdle are forgotten, so that
// clusters that come and go do not pile up.
type MemoryHAStore struct {
	mu        sync.Mutex
	elections map[haKey]HAElection
	pruneAt   int // prune when the map grows to this many
}

// NewMemoryHAStore returns an empty MemoryHAStore.
func NewMemoryHAStore() *MemoryHAStore {
	return &MemoryHAStore{elections: map[haKey]HAElection{}, pruneAt: 1024}
}

// Get returns the election of (id, cluster).
func (m *MemoryHAStore) Get(_ context.Context, id ID, cluster string) (HAElection, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.elections[haKey{id, cluster}]
	return e, ok, nil
}

// Elect makes replica the winner of term if the election in force is of
// the term before.
func (m *MemoryHAStore) Elect(_ context.Context, id ID, cluster string, term uint64, replica string, now time.Time) (HAElection, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := haKey{id, cluster}
	if e := m.elections[k]; e.Term+1 != term {
		return e, nil
	}
	e := HAElection{Term: term, Replica: replica, ElectedAt: now, ReceivedAt: now}
	m.elections[k] = e
	if len(m.elections) >= m.pruneAt { // amortized: at most once per doubling
		for k, e := range m.elections {
			if now.Sub(e.ReceivedAt) > haIdle {
				delete(m.elections, k)
			}
		}
		m.pruneAt = max(1024, 2*len(m.elections))
	}
	return e, nil
}

// Seen records e's replica as received at now, if e is in force.
func (m *MemoryHAStore) Seen(_ context.Context, id ID, cluster string, e HAElection, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := haKey{id, cluster}
	if cur := m.elections[k]; cur.Term == e.Term && cur.Replica == e.Replica && now.After(cur.ReceivedAt) {
		cur.ReceivedAt = now
		m.elections[k] = cur
	}
	return nil
}
