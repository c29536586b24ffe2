package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// Store is the ClickHouse implementation of storage.MetricsStore. Safe for
// concurrent use.
type Store struct {
	cfg     Config
	logger  *slog.Logger
	metrics *metrics
	conn    driver.Conn
	opts    *ch.Options
	schema  schema

	committer *committer
	aux       *auxStore // exemplars and metadata (aux.go)
	// columnPool holds *sampleColumns for appenders.
	columnPool sync.Pool

	lastInsertMu  sync.Mutex
	lastInsertErr error // nil after a successful insert
	lastInsertAt  time.Time

	// queryLog, when set (by tests, before use), sees every read query.
	queryLog func(kind, sql string)

	tenantsMu sync.Mutex
	tenants   map[tenancy.ID]*tenantState

	deleted deletions  // tombstones cache (delete.go)
	stats   statsCache // cardinality snapshots (cardinality.go)

	cancel    context.CancelFunc
	bg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

var _ storage.MetricsStore = (*Store)(nil)

// New connects to ClickHouse, creates or migrates Luminate's schema and
// starts the group committer and the retention job. It fails, wrapping
// storage.ErrUnavailable, when the server cannot be reached.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RetentionCleanupInterval == 0 {
		cfg.RetentionCleanupInterval = 24 * time.Hour
	}
	opts, err := ch.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("parse storage.clickhouse.dsn: %w", err)
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.MaxOpenConns == 0 {
		opts.MaxOpenConns = cfg.InsertConcurrency + 16
		opts.MaxIdleConns = cfg.InsertConcurrency + 8
	}
	conn, err := ch.Open(opts)
	if err != nil {
		return nil, unavailable(fmt.Errorf("connect to clickhouse: %w", err))
	}
	s := &Store{
		cfg:     cfg,
		logger:  logger,
		metrics: newMetrics(reg),
		conn:    conn,
		opts:    opts,
		tenants: map[tenancy.ID]*tenantState{},
	}
	s.columnPool.New = func() any { return &sampleColumns{} }
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	if err := s.setupSchema(ctx); err != nil {
		conn.Close()
		return nil, unavailable(err)
	}
	s.committer = newCommitter(s)
	s.aux = newAuxStore(s)
	bgCtx, bgCancel := context.WithCancel(context.Background())
	s.cancel = bgCancel
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.background(bgCtx)
	}()
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.stats.run(bgCtx, s) // keeps the cardinality snapshots warm (cardinality_stats.go)
	}()
	return s, nil
}

// setupSchema detects the server generation and migrates the schema: on
// the server itself, or for a cluster once with ON CLUSTER or on every
// node of the cluster definition in turn.
func (s *Store) setupSchema(ctx context.Context) error {
	if err := s.migrateSchema(ctx); err != nil {
		return err
	}
	decimals, err := s.schema.hasDecimalColumns(ctx, connRunner{s.conn})
	if err != nil {
		return err
	}
	s.schema.decimals = decimals
	typ, err := s.schema.stType(ctx, connRunner{s.conn})
	if err != nil {
		return err
	}
	s.schema.stBytes = typ == "String"
	return nil
}

func (s *Store) migrateSchema(ctx context.Context) error {
	info, err := detectServer(ctx, connRunner{s.conn})
	if err != nil {
		return err
	}
	s.schema = schema{db: s.cfg.Database, cluster: s.cfg.Cluster, replicated: s.cfg.Replicated, info: info, retention: s.cfg.longestRetention()}
	s.logger.Info("clickhouse server", slog.String("version", info.Version), slog.Bool("codecs", info.Codecs), slog.Bool("ttl", info.TTL),
		slog.Bool("low_cardinality", info.LowCardinality), slog.Bool("zookeeper", info.ZooKeeper))
	if s.cfg.Cluster == "" {
		return s.migrateOn(ctx, connRunner{s.conn}, s.schema)
	}
	ddl := s.cfg.ClusterDDL
	if ddl == "" || ddl == "auto" {
		ddl = "each-node"
		if info.ZooKeeper {
			ddl = "on-cluster"
		}
	}
	if ddl == "on-cluster" {
		sc := s.schema
		sc.onCluster = true
		sc.eachNode = func(ctx context.Context, stmt string) error {
			return s.onEachNode(ctx, func(node driver.Conn) error { return node.Exec(ctx, stmt) })
		}
		return s.migrateOn(ctx, connRunner{s.conn}, sc)
	}
	return s.onEachNode(ctx, func(node driver.Conn) error { return s.migrateOn(ctx, connRunner{node}, s.schema) })
}

// onEachNode runs f with a connection to every node of the cluster
// definition in turn (to the server itself without a cluster).
func (s *Store) onEachNode(ctx context.Context, f func(driver.Conn) error) error {
	if s.cfg.Cluster == "" {
		return f(s.conn)
	}
	nodes, err := clusterNodes(ctx, s.conn, s.cfg.Cluster)
	if err != nil {
		return err
	}
	var errs []error
	for _, addr := range nodes {
		o := *s.opts
		o.Addr = []string{addr}
		o.MaxOpenConns, o.MaxIdleConns = 1, 1
		node, err := ch.Open(&o)
		if err != nil {
			errs = append(errs, fmt.Errorf("connect to cluster node %s: %w", addr, err))
			continue
		}
		if err := f(node); err != nil {
			errs = append(errs, fmt.Errorf("cluster node %s: %w", addr, err))
		}
		node.Close()
	}
	return errors.Join(errs...)
}

func (s *Store) migrateOn(ctx context.Context, conn sqlRunner, sc schema) error {
	applied, err := sc.migrate(ctx, conn)
	if err != nil {
		return err
	}
	if len(applied) > 0 {
		s.logger.Info("clickhouse schema migrated", slog.Any("applied", applied), slog.String("database", sc.db))
	}
	return sc.reconcileTTL(ctx, conn)
}

// Ready pings ClickHouse: it returns an error wrapping
// storage.ErrUnavailable when the server does not answer (then neither
// reads nor writes work). Readiness is public: the driver's error, which
// names the server's address, is logged, not returned.
func (s *Store) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.conn.Ping(ctx); err != nil {
		s.logger.Warn("clickhouse does not answer", slog.Any("err", err))
		return fmt.Errorf("%w: clickhouse does not answer", storage.ErrUnavailable)
	}
	return nil
}

// Health reports the read path (the server answers a ping) and the write
// path (the server answers, and the last insert did not fail). Health is
// public: the errors themselves are logged, not reported.
func (s *Store) Health(ctx context.Context) storage.Health {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.conn.Ping(ctx); err != nil {
		s.logger.Warn("clickhouse does not answer", slog.Any("err", err))
		down := storage.Check{Status: storage.StatusDown, Message: "clickhouse does not answer (the server log has the error)"}
		return storage.Health{Read: down, Write: down}
	}
	h := storage.Health{Read: storage.Check{Status: storage.StatusOK}, Write: storage.Check{Status: storage.StatusOK}}
	s.lastInsertMu.Lock()
	defer s.lastInsertMu.Unlock()
	if s.lastInsertErr != nil {
		h.Write = storage.Check{Status: storage.StatusDegraded,
			Message: fmt.Sprintf("last insert failed %s ago (the server log has the error)", time.Since(s.lastInsertAt).Round(time.Second))}
	}
	return h
}

// recordInsert remembers the outcome of the latest insert for Health.
func (s *Store) recordInsert(err error) {
	s.lastInsertMu.Lock()
	defer s.lastInsertMu.Unlock()
	s.lastInsertErr, s.lastInsertAt = err, time.Now()
}

// Close inserts every queued commit, stops the background job and closes
// the connections.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.committer.close()
		s.aux.close()
		s.cancel()
		s.bg.Wait()
		s.closeErr = s.conn.Close()
	})
	return s.closeErr
}

// background runs retention and prunes the series caches until ctx ends.
func (s *Store) background(ctx context.Context) {
	tick := time.NewTicker(retentionCheck)
	defer tick.Stop()
	var rs retentionState
	var lastPrune time.Time
	for {
		now := time.Now()
		s.retentionTick(ctx, &rs, now)
		if now.Sub(lastPrune) >= 10*time.Minute {
			s.pruneCaches(now)
			lastPrune = now
			s.cleanDeletions(ctx) // delete.go
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *Store) pruneCaches(now time.Time) {
	h := hourOf(now.UnixMilli())
	s.tenantsMu.Lock()
	states := make([]*tenantState, 0, len(s.tenants))
	for _, st := range s.tenants {
		states = append(states, st)
	}
	s.tenantsMu.Unlock()
	total := 0
	for _, st := range states {
		total += st.prune(h)
	}
	s.metrics.activeSeries.Set(float64(total))
}
