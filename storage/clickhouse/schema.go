package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Table layout (see doc.go for the why):
//
//	samples  (tenant, fingerprint, ts, value[, digits, scale], hist, st)
//	         ReplacingMergeTree, PARTITION BY day of ts, ORDER BY (tenant, fingerprint, ts)
//	series   (tenant, hour, min_ts, fingerprint, metric_name, label_names, label_values)
//	         ReplacingMergeTree, PARTITION BY day of hour, ORDER BY (tenant, metric_name, fingerprint, hour, min_ts)
//
// In cluster mode these names are Distributed tables over samples_local and
// series_local on every node, sharded by fingerprint.
const (
	samplesTable    = "samples"
	seriesTable     = "series"
	migrationsTable = "schema_migrations"
	localSuffix     = "_local"

	msPerHour = 3_600_000
	msPerDay  = 86_400_000
)

// serverInfo is what Luminate needs to know about the ClickHouse it talks
// to: which DDL generation the server takes.
type serverInfo struct {
	Version string
	Major   int
	Minor   int
	// Codecs: column compression codecs (DoubleDelta, Gorilla, ZSTD).
	Codecs bool
	// TTL: table TTL expressions.
	TTL bool
	// TTLOnlyDropParts: the ttl_only_drop_parts MergeTree setting.
	TTLOnlyDropParts bool
	// LowCardinality: the LowCardinality type is usable (on 18.x only when
	// the server's profile allows the experimental type).
	LowCardinality bool
	// ZooKeeper: the server has ZooKeeper or Keeper configured.
	ZooKeeper bool
}

// sqlRunner is what schema setup needs from a server: run a statement,
// read one value as text. A connection is one (connRunner); so is the
// embedded modern engine the chdb-tagged check runs the same setup on.
type sqlRunner interface {
	exec(ctx context.Context, sql string) error
	// queryString returns the first column of the first row, "" for no row.
	queryString(ctx context.Context, sql string) (string, error)
}

// connRunner runs schema statements on a driver connection.
type connRunner struct{ conn driver.Conn }

func (r connRunner) exec(ctx context.Context, sql string) error { return r.conn.Exec(ctx, sql) }

func (r connRunner) queryString(ctx context.Context, sql string) (string, error) {
	rows, err := r.conn.Query(ctx, sql)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var v string
	if rows.Next() {
		if err := rows.Scan(&v); err != nil {
			return "", err
		}
	}
	return v, rows.Err()
}

// detectServer asks the server for its version and capabilities.
func detectServer(ctx context.Context, r sqlRunner) (serverInfo, error) {
	var info serverInfo
	var err error
	if info.Version, err = r.queryString(ctx, "SELECT version()"); err != nil {
		return info, fmt.Errorf("query server version: %w", err)
	}
	info.Major, info.Minor, err = parseVersion(info.Version)
	if err != nil {
		return info, err
	}
	// DoubleDelta and Gorilla exist from 19.10 and TTL from 19.6; 20.3 is
	// the first LTS release with both settled.
	modern := info.Major > 20 || info.Major == 20 && info.Minor >= 3
	info.Codecs, info.TTL = modern, modern
	if modern {
		info.LowCardinality = true
		n, err := r.queryString(ctx, "SELECT toString(count()) FROM system.merge_tree_settings WHERE name = 'ttl_only_drop_parts'")
		info.TTLOnlyDropParts = err == nil && n != "0"
	} else {
		v, err := r.queryString(ctx, "SELECT value FROM system.settings WHERE name = 'allow_experimental_low_cardinality_type'")
		info.LowCardinality = err == nil && v == "1"
	}
	// system.zookeeper exists only when ZooKeeper (or Keeper) is configured.
	zk, err := r.queryString(ctx, "SELECT toString(count()) FROM system.tables WHERE database = 'system' AND name = 'zookeeper'")
	info.ZooKeeper = err == nil && zk != "0"
	return info, nil
}

// parseVersion reads major and minor from a version string such as
// "18.16.1" or "24.8.4.13".
func parseVersion(v string) (major, minor int, err error) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 || !isNumber(parts[0]) || !isNumber(parts[1]) {
		return 0, 0, fmt.Errorf("parse server version %q: want MAJOR.MINOR[.PATCH...]", v)
	}
	major, _ = strconv.Atoi(parts[0])
	minor, _ = strconv.Atoi(parts[1])
	return major, minor, nil
}

// isNumber reports whether s is 1 to 9 decimal digits.
func isNumber(s string) bool {
	if len(s) == 0 || len(s) > 9 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// schema renders Luminate's DDL for one server generation and topology.
type schema struct {
	db         string // unquoted database name
	cluster    string // cluster name, "" for a single server
	onCluster  bool   // append ON CLUSTER to DDL
	replicated bool
	info       serverInfo
	retention  time.Duration
	// eachNode, when set (a replicated cluster migrated ON CLUSTER), runs
	// a statement on every node of the cluster in turn.
	eachNode func(ctx context.Context, stmt string) error
	// decimals: the samples table has the digits and scale columns (see
	// decimal.go). Read from the table after migrating, not implied by
	// the server version: a table created on an older server keeps its
	// columns when the server is upgraded.
	decimals bool
	// stBytes: the st column is a String (18.x, schema_st.go). Read from
	// the table after migrating, as decimals.
	stBytes bool
}

// table returns the quoted name of table in the schema's database.
func (s schema) table(name string) string { return quoteIdent(s.db) + "." + quoteIdent(name) }

// storageTable is the name of the MergeTree table behind logical table name.
func (s schema) storageTable(name string) string {
	if s.cluster != "" {
		return name + localSuffix
	}
	return name
}

func (s schema) onClusterClause() string {
	if s.onCluster {
		return " ON CLUSTER " + quoteIdent(s.cluster)
	}
	return ""
}

func (s schema) engine(name string) string {
	if s.replicated {
		return fmt.Sprintf("ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/%s/%s', '{replica}')", s.db, s.storageTable(name))
	}
	return "ReplacingMergeTree()"
}

func (s schema) lowCardinality(t string) string {
	if s.info.LowCardinality {
		return "LowCardinality(" + t + ")"
	}
	return t
}

func (s schema) codec(c string) string {
	if s.info.Codecs {
		return " CODEC(" + c + ")"
	}
	return ""
}

// ttlClause is the TTL of the samples table, "" when there is none.
func (s schema) ttlClause() string {
	if !s.info.TTL || s.retention <= 0 {
		return ""
	}
	return fmt.Sprintf("toDateTime(intDiv(ts, 1000)) + toIntervalSecond(%d)", int64(s.retention/time.Second))
}

// samplesDDL creates the samples table (the local one in cluster mode).
//
// No version column: ReplacingMergeTree without one keeps the row inserted
// last, which is exactly last-write-wins. Each insert holds a key once (the
// committer deduplicates a batch), so before a merge a read resolves
// duplicates by part order (_part_index), as FINAL would, for less.
func (s schema) samplesDDL() string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s%s (\n", s.table(s.storageTable(samplesTable)), s.onClusterClause())
	fmt.Fprintf(&b, "  tenant %s%s,\n", s.lowCardinality("String"), s.codec("ZSTD(1)"))
	fmt.Fprintf(&b, "  fingerprint UInt64%s,\n", s.codec("Delta, ZSTD(1)"))
	fmt.Fprintf(&b, "  ts Int64%s,\n", s.codec("DoubleDelta, ZSTD(1)"))
	// Delta on the float's bits then ZSTD(3), not Gorilla: measured on
	// ClickHouse 26.5 (TestModernBytesPerSample), 0.50 bytes/sample for
	// node-exporter-like values and 2.24 for random-walk gauges against
	// Gorilla+ZSTD's 0.63 and 5.13.
	fmt.Fprintf(&b, "  value Float64%s\n", s.codec("Delta, ZSTD(3)"))
	fmt.Fprintf(&b, ") ENGINE = %s\n", s.engine(samplesTable))
	fmt.Fprintf(&b, "PARTITION BY intDiv(ts, %d)\n", msPerDay)
	b.WriteString("ORDER BY (tenant, fingerprint, ts)\n")
	if ttl := s.ttlClause(); ttl != "" {
		fmt.Fprintf(&b, "TTL %s\n", ttl)
	}
	b.WriteString("SETTINGS index_granularity = 8192")
	if s.info.TTLOnlyDropParts {
		b.WriteString(", ttl_only_drop_parts = 1")
	}
	return b.String()
}

// seriesDDL creates the series table (the local one in cluster mode): one
// row per series and hour in which it has samples, holding its labels.
func (s schema) seriesDDL() string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s%s (\n", s.table(s.storageTable(seriesTable)), s.onClusterClause())
	fmt.Fprintf(&b, "  tenant %s,\n", s.lowCardinality("String"))
	b.WriteString("  hour Int32,\n")
	b.WriteString("  min_ts Int64,\n") // the earliest sample of the hour the row was written for
	b.WriteString("  fingerprint UInt64,\n")
	fmt.Fprintf(&b, "  metric_name %s,\n", s.lowCardinality("String"))
	fmt.Fprintf(&b, "  label_names Array(String)%s,\n", s.codec("ZSTD(1)"))
	fmt.Fprintf(&b, "  label_values Array(String)%s\n", s.codec("ZSTD(1)"))
	fmt.Fprintf(&b, ") ENGINE = %s\n", s.engine(seriesTable))
	b.WriteString("PARTITION BY intDiv(hour, 24)\n")
	// min_ts in the key: rows of one hour with different earliest samples
	// must all survive merges, the smallest is the one that counts.
	b.WriteString("ORDER BY (tenant, metric_name, fingerprint, hour, min_ts)\n")
	b.WriteString("SETTINGS index_granularity = 8192")
	return b.String()
}

// distributedDDL creates the Distributed table name over its local tables,
// sharded by fingerprint.
func (s schema) distributedDDL(name string) string {
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s AS %s ENGINE = Distributed(%s, %s, %s, fingerprint)",
		s.table(name), s.onClusterClause(), s.table(s.storageTable(name)),
		quoteIdent(s.cluster), quoteIdent(s.db), quoteIdent(s.storageTable(name)))
}

// migration is one versioned schema step. Its statements are idempotent, so
// a migration interrupted half way, or run by two Luminate processes at
// once, is simply run again.
type migration struct {
	version int
	name    string
	stmts   func(s schema) []string
}

// migrations are applied in order; applied ones are recorded in
// schema_migrations. Append only: never edit a released migration.
var migrations = []migration{
	{1, "samples and series tables", func(s schema) []string {
		stmts := []string{s.samplesDDL(), s.seriesDDL()}
		if s.cluster != "" {
			stmts = append(stmts, s.distributedDDL(samplesTable), s.distributedDDL(seriesTable))
		}
		return stmts
	}},
	{2, "exact decimals as integers", func(s schema) []string {
		// Only where codecs make them pay: without T64 and ZSTD the two
		// columns cost more than they save (18.x stays on value alone).
		if !s.info.Codecs {
			return nil
		}
		stmts := []string{s.decimalColumnsDDL(s.storageTable(samplesTable), true)}
		if s.cluster != "" {
			stmts = append(stmts, s.decimalColumnsDDL(samplesTable, false))
		}
		return stmts
	}},
	{3, "native histograms in the samples table", func(s schema) []string {
		stmts := []string{s.histColumnDDL(s.storageTable(samplesTable), true)}
		if s.cluster != "" {
			stmts = append(stmts, s.distributedAlter(func(s schema) string { return s.histColumnDDL(samplesTable, false) }))
		}
		return stmts
	}},
	{4, "exemplar and metadata tables", func(s schema) []string { return s.auxTablesDDL() }},
	{5, "start timestamps in the samples table", func(s schema) []string { return s.stMigration() }},
	{6, "tombstones of deleted series", func(s schema) []string { return s.tombstonesMigration() }},
	// 7 (provisional, issue 14): the cardinality statistics (schema_stats.go).
	{7, "cardinality statistics", func(s schema) []string { return s.statsMigration() }},
	{8, "HA election table", func(s schema) []string { return s.haDDL() }}, // provisional number (h14-ha)
	// 9 (provisional, h14-pods): the pods' heartbeats (pods.go).
	{9, "pods table", func(s schema) []string { return s.podsDDL() }},
	// 10 (h14-chcard): the label index for cardinality matchers (schema_index.go).
	{10, "label index", func(s schema) []string { return s.indexMigration() }},
}

// decimalColumnsDDL adds the digits and scale columns to table; codecs only on
// a MergeTree table, not on the Distributed table over it.
func (s schema) decimalColumnsDDL(table string, codecs bool) string {
	codec := func(c string) string {
		if codecs {
			return s.codec(c)
		}
		return ""
	}
	// DoubleDelta then ZSTD: measured on ClickHouse 26.5
	// (TestModernBytesPerSample), the digits of random-walk gauges with two
	// decimals take 1.36 bytes per value this way against 1.42 with T64,
	// ZSTD(3) and 1.70 with Delta, ZSTD(3) (their Float64 bits took 2.2);
	// node-exporter-like values 0.45, 0.62 and 0.39.
	return fmt.Sprintf("ALTER TABLE %s%s ADD COLUMN IF NOT EXISTS digits Int64 DEFAULT 0%s AFTER value, ADD COLUMN IF NOT EXISTS scale Int8 DEFAULT -1%s AFTER digits",
		s.table(table), s.onClusterClause(), codec("DoubleDelta, ZSTD(1)"), codec("ZSTD(1)"))
}

// hasDecimalColumns reports whether the samples table (the Distributed one
// in cluster mode) has the digits and scale columns.
func (s schema) hasDecimalColumns(ctx context.Context, conn sqlRunner) (bool, error) {
	n, err := conn.queryString(ctx, fmt.Sprintf("SELECT toString(count()) FROM system.columns WHERE database = %s AND table = %s AND name IN ('digits', 'scale')",
		quote(s.db), quote(samplesTable)))
	if err != nil {
		return false, fmt.Errorf("read samples table columns: %w", err)
	}
	return n == "2", nil
}

// valueExpr is the SQL expression of a sample's value on a samples row.
func (s schema) valueExpr() string {
	if s.decimals {
		return "if(scale < 0, value, digits / intExp10(scale))"
	}
	return "value"
}

// samplesColumns is the column list of a samples insert.
func (s schema) samplesColumns() string {
	if s.decimals {
		return "tenant, fingerprint, ts, value, digits, scale"
	}
	return "tenant, fingerprint, ts, value"
}

// migrate brings the schema of the node behind conn up to date.
func (s schema) migrate(ctx context.Context, conn sqlRunner) (applied []int, err error) {
	return s.migrateThrough(ctx, conn, migrations)
}

// migrateThrough applies the migrations of list not yet applied (tests
// pass a prefix of migrations to build an older release's schema).
func (s schema) migrateThrough(ctx context.Context, conn sqlRunner, list []migration) (applied []int, err error) {
	if err := conn.exec(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(s.db)+s.onClusterClause()); err != nil {
		return nil, fmt.Errorf("create database %s: %w", s.db, err)
	}
	ddl := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s (version UInt32, name String, applied_at DateTime) ENGINE = MergeTree() ORDER BY version",
		s.table(migrationsTable), s.onClusterClause())
	if err := conn.exec(ctx, ddl); err != nil {
		return nil, fmt.Errorf("create %s: %w", migrationsTable, err)
	}
	v, err := conn.queryString(ctx, "SELECT toString(max(version)) FROM "+s.table(migrationsTable))
	if err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	current, err := strconv.Atoi(v)
	if err != nil {
		return nil, fmt.Errorf("read schema version %q: %w", v, err)
	}
	for _, m := range list {
		if m.version <= current {
			continue
		}
		for _, stmt := range m.stmts(s) {
			run := conn.exec
			if strings.HasPrefix(stmt, eachNodeTag) && s.eachNode != nil {
				run = s.eachNode
			}
			if err := run(ctx, stmt); err != nil && !columnExists(stmt, err) {
				return applied, fmt.Errorf("migration %d (%s): %w\n%s", m.version, m.name, err, stmt)
			}
		}
		// INSERT ... SELECT: an INSERT with inline VALUES hangs on 18.x
		// over the native protocol (the server waits for data blocks).
		record := fmt.Sprintf("INSERT INTO %s (version, name, applied_at) SELECT %d, %s, now()", s.table(migrationsTable), m.version, quote(m.name))
		if err := conn.exec(ctx, record); err != nil {
			return applied, fmt.Errorf("record migration %d: %w", m.version, err)
		}
		applied = append(applied, m.version)
	}
	return applied, nil
}

// reconcileTTL makes the samples table's TTL match the configured retention
// on servers that have TTL (the table may predate a retention change).
func (s schema) reconcileTTL(ctx context.Context, conn sqlRunner) error {
	if !s.info.TTL {
		return nil
	}
	q := fmt.Sprintf("SELECT engine_full FROM system.tables WHERE database = %s AND name = %s", quote(s.db), quote(s.storageTable(samplesTable)))
	engineFull, err := conn.queryString(ctx, q)
	if err != nil {
		return fmt.Errorf("read samples table engine: %w", err)
	}
	want := s.ttlClause()
	has := strings.Contains(engineFull, " TTL ")
	switch {
	case want == "" && !has:
		return nil
	case want != "" && has && strings.Contains(engineFull, fmt.Sprintf("toIntervalSecond(%d)", int64(s.retention/time.Second))):
		return nil
	}
	alter := fmt.Sprintf("ALTER TABLE %s%s ", s.table(s.storageTable(samplesTable)), s.onClusterClause())
	if want == "" {
		alter += "REMOVE TTL"
	} else {
		alter += "MODIFY TTL " + want
	}
	if err := conn.exec(ctx, alter); err != nil {
		return fmt.Errorf("set samples TTL: %w", err)
	}
	return nil
}

// errNoNodes is returned when a cluster definition lists no node.
var errNoNodes = errors.New("cluster has no nodes in system.clusters")

// clusterNodes lists host:port of every node of cluster from the server's
// remote_servers definition, shard by shard.
func clusterNodes(ctx context.Context, conn driver.Conn, cluster string) ([]string, error) {
	rows, err := conn.Query(ctx, "SELECT host_address, toUInt32(port) FROM system.clusters WHERE cluster = "+quote(cluster)+" ORDER BY shard_num, replica_num")
	if err != nil {
		return nil, fmt.Errorf("list nodes of cluster %s: %w", cluster, err)
	}
	defer rows.Close()
	var nodes []string
	for rows.Next() {
		var host string
		var port uint32
		if err := rows.Scan(&host, &port); err != nil {
			return nil, err
		}
		nodes = append(nodes, host+":"+strconv.FormatUint(uint64(port), 10))
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%w: %s", errNoNodes, cluster)
	}
	return nodes, nil
}
