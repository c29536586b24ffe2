package clickhouse

import (
	"fmt"
	"strings"
)

// Schema pieces of migration 6 (tombstones of deleted series).

// tombstonesTable holds one row per series and deleted range of a
// delete_series call: every pod reads it (through a cache checked on each
// read, delete.go), so a deletion on one pod is invisible on all of them
// at once. In cluster mode it is a Distributed table sharded by
// fingerprint, as the series table is, so that a series' tombstones lie on
// its shard and an IN subquery over the local table is exact.
const tombstonesTable = "tombstones"

// tombstonesDDL creates the tombstones table (the local one in cluster
// mode). seq orders the calls (unix nanoseconds of the call); cleaning
// drops the rows up to the seq it reclaimed.
func (s schema) tombstonesDDL() string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s%s (\n", s.table(s.storageTable(tombstonesTable)), s.onClusterClause())
	b.WriteString("  tenant String,\n")
	b.WriteString("  fingerprint UInt64,\n")
	b.WriteString("  mint Int64,\n")
	b.WriteString("  maxt Int64,\n")
	b.WriteString("  whole UInt8,\n") // the range covered all of the series' data
	b.WriteString("  seq UInt64\n")
	fmt.Fprintf(&b, ") ENGINE = %s\n", s.engine(tombstonesTable))
	b.WriteString("ORDER BY (tenant, fingerprint, mint, maxt, seq)\n")
	b.WriteString("SETTINGS index_granularity = 8192")
	return b.String()
}

// tombstonesMigration is migration 6's statements.
func (s schema) tombstonesMigration() []string {
	stmts := []string{s.tombstonesDDL()}
	if s.cluster != "" {
		stmts = append(stmts, s.distributedDDL(tombstonesTable))
	}
	return stmts
}
