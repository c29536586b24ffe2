package clickhouse

import (
	"fmt"
	"strings"
)

// The exemplar and metadata tables (migration 4):
//
//	exemplars (tenant, ts, fingerprint, value, exemplar_hash, has_ts,
//	           exemplar_names, exemplar_values, metric_name, label_names, label_values)
//	           ReplacingMergeTree, ORDER BY (tenant, ts, fingerprint, exemplar_hash, value)
//	metadata  (tenant, family, metric_type, unit, help, version)
//	           ReplacingMergeTree(version), ORDER BY (tenant, family)
//
// An exemplar row carries its series' labels: exemplars are few (at most
// the tenant's MaxExemplars are kept), and a query then reads one table,
// whatever hours the series table has rows for. The key is the exemplar's
// identity, so a retried insert folds into one row. Ordered by time after
// the tenant: reads (the newest of a tenant, a time range) and the bound's
// cutoff read a prefix range of the key. Not partitioned by time: the
// table is bounded by count, not age (see exemplars.go).
//
// In cluster mode these are Distributed tables over _local tables, the
// exemplars sharded by fingerprint (as the samples), the metadata by
// tenant and family (a family's rows on one shard, so argMax is exact).
const (
	exemplarsTable = "exemplars"
	metadataTable  = "metadata"
)

// auxEngine is the ReplacingMergeTree engine of aux table name, with a
// version column when version is not empty.
func (s schema) auxEngine(name, version string) string {
	if s.replicated {
		args := fmt.Sprintf("'/clickhouse/tables/{shard}/%s/%s', '{replica}'", s.db, s.storageTable(name))
		if version != "" {
			args += ", " + version
		}
		return "ReplicatedReplacingMergeTree(" + args + ")"
	}
	return "ReplacingMergeTree(" + version + ")"
}

// exemplarsDDL creates the exemplars table (the local one in cluster mode).
func (s schema) exemplarsDDL() string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s%s (\n", s.table(s.storageTable(exemplarsTable)), s.onClusterClause())
	fmt.Fprintf(&b, "  tenant %s,\n", s.lowCardinality("String"))
	fmt.Fprintf(&b, "  ts Int64%s,\n", s.codec("DoubleDelta, ZSTD(1)"))
	b.WriteString("  fingerprint UInt64,\n")
	b.WriteString("  value Float64,\n")
	b.WriteString("  exemplar_hash UInt64,\n") // labels.Labels.Hash of the exemplar's labels
	b.WriteString("  has_ts UInt8,\n")
	fmt.Fprintf(&b, "  exemplar_names Array(String)%s,\n", s.codec("ZSTD(1)"))
	fmt.Fprintf(&b, "  exemplar_values Array(String)%s,\n", s.codec("ZSTD(1)"))
	fmt.Fprintf(&b, "  metric_name %s,\n", s.lowCardinality("String"))
	fmt.Fprintf(&b, "  label_names Array(String)%s,\n", s.codec("ZSTD(1)"))
	fmt.Fprintf(&b, "  label_values Array(String)%s\n", s.codec("ZSTD(1)"))
	fmt.Fprintf(&b, ") ENGINE = %s\n", s.auxEngine(exemplarsTable, ""))
	b.WriteString("ORDER BY (tenant, ts, fingerprint, exemplar_hash, value)\n")
	b.WriteString("SETTINGS index_granularity = 8192")
	return b.String()
}

// metadataDDL creates the metadata table (the local one in cluster mode):
// one row per write of a family's metadata that changed it, the highest
// version the latest.
func (s schema) metadataDDL() string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s%s (\n", s.table(s.storageTable(metadataTable)), s.onClusterClause())
	fmt.Fprintf(&b, "  tenant %s,\n", s.lowCardinality("String"))
	b.WriteString("  family String,\n")
	fmt.Fprintf(&b, "  metric_type %s,\n", s.lowCardinality("String"))
	b.WriteString("  unit String,\n")
	fmt.Fprintf(&b, "  help String%s,\n", s.codec("ZSTD(1)"))
	b.WriteString("  version UInt64\n")
	fmt.Fprintf(&b, ") ENGINE = %s\n", s.auxEngine(metadataTable, "version"))
	b.WriteString("ORDER BY (tenant, family)\n")
	b.WriteString("SETTINGS index_granularity = 1024")
	return b.String()
}

// auxTablesDDL is migration 4: the exemplar and metadata tables.
func (s schema) auxTablesDDL() []string {
	stmts := []string{s.exemplarsDDL(), s.metadataDDL()}
	if s.cluster != "" {
		stmts = append(stmts, s.distributedDDL(exemplarsTable),
			fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s AS %s ENGINE = Distributed(%s, %s, %s, cityHash64(tenant, family))",
				s.table(metadataTable), s.onClusterClause(), s.table(s.storageTable(metadataTable)),
				quoteIdent(s.cluster), quoteIdent(s.db), quoteIdent(s.storageTable(metadataTable))))
	}
	return stmts
}
