package clickhouse

import (
	"fmt"
	"strings"
)

// The label index (migration 10, cardinality_index.go):
//
//	series_index     (tenant, day, label_name, label_value, fingerprint,
//	                  metric_name, label_names, label_values,
//	                  min_ts_state minState(min_ts), max_hour_state maxState(hour))
//	                 AggregatingMergeTree, PARTITION BY day,
//	                 ORDER BY (tenant, label_name, label_value, fingerprint)
//	series_index_mv  materialized view feeding it from every insert into
//	                 the series table
//
// One row per series, UTC day and label other than the metric name,
// holding the series' labels, its earliest sample of the day and newest
// hour: the series of a label pair other than the metric name are one
// contiguous range of the key, their labels beside them. The series table
// is ordered by metric name, so a matcher on another label reads every
// series row of the tenant in range (1,000,000 rows at 1,000,000 series,
// 0.7-4 s on a 2-core host); through the index it reads the matching
// series' rows only. Metric names are not indexed: the series table's key
// starts with them. The labels are stored as in the series table, once
// per day and label (not per hour): about a third of the series table's
// rows for series of three labels besides the name, each with the arrays.
//
// In cluster mode the view and table are _local on every node, read
// through a Distributed table; a series' rows are on one shard.
const (
	indexTable = "series_index"
	indexView  = "series_index_mv"
)

// indexSelect is the SELECT turning series rows of from into index rows.
// The arrays are grouped by, not aggregated: they are the same on every
// row of a fingerprint, and an aggregate of a column under its own name
// would be a cyclic alias.
func (s schema) indexSelect(from string) string {
	return "SELECT tenant, toInt32(intDiv(hour, 24)) AS day, label_name, label_value, fingerprint, metric_name, label_names, label_values, " +
		"minState(min_ts) AS min_ts_state, maxState(hour) AS max_hour_state " +
		"FROM " + from + " ARRAY JOIN label_names AS label_name, label_values AS label_value " +
		"WHERE label_name != '__name__' " +
		"GROUP BY tenant, day, label_name, label_value, fingerprint, metric_name, label_names, label_values"
}

// indexMigration creates the index table and view, then fills the index
// from the series rows already stored (rows the view sees while the
// backfill runs are merged with the backfill's: min and max are
// idempotent).
func (s schema) indexMigration() []string {
	local := s.table(s.storageTable(indexTable))
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s%s (\n", local, s.onClusterClause())
	fmt.Fprintf(&b, "  tenant %s,\n", s.lowCardinality("String"))
	b.WriteString("  day Int32,\n")
	b.WriteString("  label_name String,\n") // 18.16 does not convert a view's String to LowCardinality
	b.WriteString("  label_value String,\n")
	b.WriteString("  fingerprint UInt64,\n")
	fmt.Fprintf(&b, "  metric_name %s,\n", s.lowCardinality("String"))
	fmt.Fprintf(&b, "  label_names Array(String)%s,\n", s.codec("ZSTD(1)"))
	fmt.Fprintf(&b, "  label_values Array(String)%s,\n", s.codec("ZSTD(1)"))
	b.WriteString("  min_ts_state AggregateFunction(min, Int64),\n")
	b.WriteString("  max_hour_state AggregateFunction(max, Int32)\n")
	fmt.Fprintf(&b, ") ENGINE = %s\n", s.aggEngine(indexTable))
	b.WriteString("PARTITION BY day\n")
	b.WriteString("ORDER BY (tenant, label_name, label_value, fingerprint)\n")
	b.WriteString("SETTINGS index_granularity = 8192")
	stmts := []string{b.String()}

	stmts = append(stmts, fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s%s TO %s AS %s",
		s.table(s.storageTable(indexView)), s.onClusterClause(), local, s.indexSelect(s.table(s.storageTable(seriesTable)))))
	if s.cluster != "" {
		stmts = append(stmts, s.distributedDDL(indexTable))
	}
	backfill := fmt.Sprintf("INSERT INTO %s %s", local, s.indexSelect(s.table(s.storageTable(seriesTable))))
	if s.onCluster {
		backfill = eachNodeTag + backfill
	}
	return append(stmts, backfill)
}

// floorDay and ceilDay are the days holding and starting at or after
// millisecond t.
func floorDay(t int64) int64 {
	d := t / msPerDay
	if t%msPerDay < 0 {
		d--
	}
	return d
}

func ceilDay(t int64) int64 { return -floorDay(-t) }
