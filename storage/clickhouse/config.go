package clickhouse

import (
	"errors"
	"flag"
	"fmt"
	"regexp"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// Config configures the ClickHouse store.
type Config struct {
	// DSN is the native-protocol address of the server (or of the cluster
	// node Luminate talks to), e.g. clickhouse://127.0.0.1:9000/default.
	DSN string
	// Database holds Luminate's tables; it is created when missing.
	Database string
	// Cluster, when set, is the name of a cluster in the server's
	// remote_servers: tables become local tables on every node plus
	// Distributed tables over them, sharded by series fingerprint.
	Cluster string
	// ClusterDDL says how cluster tables are created: "on-cluster" runs
	// each statement once with ON CLUSTER (needs ZooKeeper or Keeper),
	// "each-node" runs it on every node of the cluster definition in turn,
	// "auto" picks on-cluster when the server has ZooKeeper.
	ClusterDDL string
	// Replicated makes the local tables ReplicatedReplacingMergeTree (needs
	// ZooKeeper or Keeper and the {shard} and {replica} macros).
	Replicated bool
	// BatchSize is the number of sample rows at which a group commit is
	// inserted without waiting for FlushInterval.
	BatchSize int
	// FlushInterval is the longest a commit waits for other commits to
	// share its insert.
	FlushInterval time.Duration
	// InsertConcurrency is the number of inserts in flight at once.
	InsertConcurrency int
	// Timeout bounds every statement Luminate sends.
	Timeout time.Duration
	// Retention is how long samples are kept; 0 keeps them forever. Whole
	// daily partitions are dropped, so data lives up to a day longer.
	Retention time.Duration
	// RetentionPolicy, when set, gives each tenant its own retention in
	// place of Retention (retention.go). RetentionCleanupInterval is how
	// often the rows of tenants whose retention is shorter than the
	// longest are deleted (a mutation per table; reads hide them at once);
	// 0 takes the default, a day.
	RetentionPolicy          storage.RetentionPolicy `yaml:"-"`
	RetentionCleanupInterval time.Duration
	// SeriesLimits, when set, caps each tenant's active series
	// (storage.ActiveSince), counted tenant-wide across the pods on this
	// ClickHouse (active.go).
	SeriesLimits storage.SeriesLimits `yaml:"-"`
	// ActiveSeriesWindow is how long after its last sample a series stays
	// active (storage.ActiveSince; 0 is the default, 1h).
	ActiveSeriesWindow time.Duration `yaml:"-"`
	// MaxSeriesPerQuery, when set, is the most series one query of a
	// tenant may load (its max_series_per_query; 0 means unlimited). A
	// select reads at most one series row more from ClickHouse, so the
	// query fails at the limit without the store holding every series.
	MaxSeriesPerQuery func(id tenancy.ID) int `yaml:"-"`
	// MaxSamplesPerQuery, when set, is the most samples one query of a
	// tenant may load (its max_samples_per_query; 0 means unlimited): a
	// select stops reading samples one batch past it.
	MaxSamplesPerQuery func(id tenancy.ID) int `yaml:"-"`
	// ExemplarLimits, when set, is the most exemplars each tenant keeps
	// (its max_exemplars; 0 means unlimited): the newest are kept, the
	// oldest are no longer returned and are deleted (exemplars.go).
	ExemplarLimits storage.TenantLimit `yaml:"-"`
	// MetadataLimits, when set, is the most metric families each tenant
	// keeps metadata of (its max_metadata; 0 means unlimited): the
	// metadata of new families beyond it is dropped, their samples kept.
	MetadataLimits storage.TenantLimit `yaml:"-"`
}

// DefaultConfig returns the defaults the flags use.
func DefaultConfig() Config {
	return Config{
		DSN:               "clickhouse://127.0.0.1:9000/default",
		Database:          "luminate",
		ClusterDDL:        "auto",
		BatchSize:         100_000,
		FlushInterval:     20 * time.Millisecond,
		InsertConcurrency: 2,
		Timeout:           60 * time.Second,
		Retention:         90 * 24 * time.Hour,
	}
}

// RegisterFlags registers the ClickHouse flags on fs. Retention is shared by
// all backends and registered by the caller.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	fs.StringVar(&c.DSN, "storage.clickhouse.dsn", d.DSN, "ClickHouse native-protocol DSN, e.g. clickhouse://user:password@127.0.0.1:9000/default.")
	fs.StringVar(&c.Database, "storage.clickhouse.database", d.Database, "ClickHouse database holding Luminate's tables (created when missing).")
	fs.StringVar(&c.Cluster, "storage.clickhouse.cluster", d.Cluster, "ClickHouse cluster name (remote_servers): Distributed tables sharded by series fingerprint over local tables on every node. Empty for a single server.")
	fs.StringVar(&c.ClusterDDL, "storage.clickhouse.cluster-ddl", d.ClusterDDL, "How cluster tables are created: on-cluster (needs ZooKeeper or Keeper), each-node, or auto.")
	fs.BoolVar(&c.Replicated, "storage.clickhouse.replicated", d.Replicated, "Use ReplicatedReplacingMergeTree local tables (cluster mode; needs ZooKeeper or Keeper and {shard}/{replica} macros).")
	fs.IntVar(&c.BatchSize, "storage.clickhouse.batch-size", d.BatchSize, "Sample rows at which a group commit is inserted at once.")
	fs.DurationVar(&c.FlushInterval, "storage.clickhouse.flush-interval", d.FlushInterval, "Longest time a commit waits for other commits to share its insert.")
	fs.IntVar(&c.InsertConcurrency, "storage.clickhouse.insert-concurrency", d.InsertConcurrency, "Inserts in flight at once.")
	fs.DurationVar(&c.Timeout, "storage.clickhouse.timeout", d.Timeout, "Timeout of every ClickHouse statement.")
	c.Retention = d.Retention
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.DSN == "" {
		errs = append(errs, errors.New("storage.clickhouse.dsn must be set"))
	} else if opts, err := ch.ParseDSN(c.DSN); err != nil {
		errs = append(errs, fmt.Errorf("storage.clickhouse.dsn: %w", err))
	} else if opts.Protocol == ch.HTTP {
		errs = append(errs, errors.New("storage.clickhouse.dsn: use the native protocol (clickhouse://host:9000), not HTTP"))
	}
	if !identRE.MatchString(c.Database) {
		errs = append(errs, fmt.Errorf("storage.clickhouse.database %q must match %s", c.Database, identRE))
	}
	if c.Cluster != "" && !identRE.MatchString(c.Cluster) {
		errs = append(errs, fmt.Errorf("storage.clickhouse.cluster %q must match %s", c.Cluster, identRE))
	}
	switch c.ClusterDDL {
	case "", "auto", "on-cluster", "each-node":
	default:
		errs = append(errs, fmt.Errorf("storage.clickhouse.cluster-ddl %q is not one of auto, on-cluster, each-node", c.ClusterDDL))
	}
	if c.Replicated && c.Cluster == "" {
		errs = append(errs, errors.New("storage.clickhouse.replicated needs storage.clickhouse.cluster"))
	}
	if c.BatchSize < 1 || c.BatchSize > 10_000_000 {
		errs = append(errs, fmt.Errorf("storage.clickhouse.batch-size %d not in 1..10000000", c.BatchSize))
	}
	if c.FlushInterval < 0 {
		errs = append(errs, fmt.Errorf("storage.clickhouse.flush-interval %s is negative", c.FlushInterval))
	}
	if c.InsertConcurrency < 1 || c.InsertConcurrency > 64 {
		errs = append(errs, fmt.Errorf("storage.clickhouse.insert-concurrency %d not in 1..64", c.InsertConcurrency))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("storage.clickhouse.timeout must be positive"))
	}
	if c.Retention < 0 {
		errs = append(errs, fmt.Errorf("storage.retention %s is negative", c.Retention))
	}
	if c.RetentionCleanupInterval < 0 {
		errs = append(errs, fmt.Errorf("storage.clickhouse.retention-cleanup-interval %s is negative", c.RetentionCleanupInterval))
	}
	return errors.Join(errs...)
}
