package clickhouse

import (
	"context"
	"fmt"
	"strings"
)

// Schema pieces of migration 3 (native histograms), and the statements a
// replicated cluster's Distributed tables need run on every node.

// eachNodeTag starts a statement that a cluster migrated ON CLUSTER runs
// on every node in turn instead (a comment: the statement stays valid
// SQL). A replicated cluster refuses ALTER ... ON CLUSTER on a table that
// is not replicated (code 371), such as the Distributed ones.
const eachNodeTag = "/* on every node */ "

// distributedAlter renders stmt (an ALTER of a Distributed table, made by
// f from a schema) for s: tagged and without ON CLUSTER on a replicated
// cluster migrated ON CLUSTER.
func (s schema) distributedAlter(f func(schema) string) string {
	if s.onCluster && s.replicated {
		s.onCluster = false
		return eachNodeTag + f(s)
	}
	return f(s)
}

// histColumnDDL adds the hist column (histcodec.go) to table: a histogram
// sample is a row of the samples table like a float, so that one key
// (tenant, fingerprint, ts) holds one sample whatever its kind and
// ReplacingMergeTree's last-write-wins covers a float overwriting a
// histogram and the reverse. Float rows leave it empty (a float insert
// does not send it), which costs them nothing measurable. Codecs only on a
// MergeTree table; 18.x compresses it with the server's default (LZ4) and
// has no ADD COLUMN IF NOT EXISTS (migrate tolerates the column existing).
func (s schema) histColumnDDL(table string, codecs bool) string {
	codec := ""
	if codecs {
		// ZSTD(3): measured on ClickHouse 26.5 (1000 series x 2 h of
		// 20-bucket histograms, TestModernHistogramBytesPerSample), the
		// column takes 27.6 bytes per sample, against 28.3 with ZSTD(1),
		// 26.9 with ZSTD(9) (slower to compress, in every insert and merge) and
		// 33.5 with LZ4.
		codec = s.codec("ZSTD(3)")
	}
	return fmt.Sprintf("ALTER TABLE %s%s ADD COLUMN %s%s String DEFAULT ''%s",
		s.table(table), s.onClusterClause(), s.ifNotExists(), histColumn, codec)
}

// ifNotExists is "IF NOT EXISTS " where ALTER TABLE ADD COLUMN takes it
// (not on 18.x).
func (s schema) ifNotExists() string {
	if s.info.Codecs {
		return "IF NOT EXISTS "
	}
	return ""
}

// histColumn is the samples table's column holding encoded histograms.
const histColumn = "hist"

// hasHistColumn reports whether the samples table (the Distributed one in
// cluster mode) has the hist column.
func (s schema) hasHistColumn(ctx context.Context, conn sqlRunner) (bool, error) {
	n, err := conn.queryString(ctx, fmt.Sprintf("SELECT toString(count()) FROM system.columns WHERE database = %s AND table = %s AND name = %s",
		quote(s.db), quote(samplesTable), quote(histColumn)))
	if err != nil {
		return false, fmt.Errorf("read samples table columns: %w", err)
	}
	return n == "1", nil
}

// columnExists reports whether err is a server's refusal to add a column
// that exists: an ADD COLUMN without IF NOT EXISTS run again.
func columnExists(stmt string, err error) bool {
	return strings.Contains(stmt, " ADD COLUMN ") && !strings.Contains(stmt, " IF NOT EXISTS ") &&
		strings.Contains(err.Error(), "column with this name already exists")
}
