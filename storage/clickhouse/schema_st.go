package clickhouse

import (
	"context"
	"fmt"
)

// Schema pieces of migration 5 (start timestamps).

// stColumn is the samples table's column holding each sample's start
// timestamp (AppenderV2's st), 0 when unknown. It is a column of the
// sample's row, so that last-write-wins keeps the st of the winning
// write, floats and histograms alike.
const stColumn = "st"

// stColumnDDL adds the st column to table. An insert without start
// timestamps does not send it (it defaults to 0). Codecs only on a
// MergeTree table: Delta makes a column constant between counter resets
// (cumulative st) or advancing by the scrape interval (deltas, st the
// previous sample's time) runs of equal values that ZSTD all but removes.
// Measured on ClickHouse 26.5 (TestModernStartTimestamps, 1000 series x
// 480 samples at 15 s): a column of zeros takes 0.0001 bytes per sample
// whatever the codec; cumulative st 0.012 with Delta, ZSTD(1) against
// 0.035 with DoubleDelta, 0.24 with T64 and 0.054 with ZSTD alone; deltas'
// 0.011 against 0.021, 0.33 and 0.12. 18.x has neither codecs (its LZ4
// compresses a column of zeros about 250 times) nor ADD COLUMN IF NOT
// EXISTS (migrate tolerates the column existing).
func (s schema) stColumnDDL(table string, codecs bool) string {
	codec := ""
	if codecs {
		codec = s.codec("Delta, ZSTD(1)")
	}
	return fmt.Sprintf("ALTER TABLE %s%s ADD COLUMN %s%s Int64 DEFAULT 0%s",
		s.table(table), s.onClusterClause(), s.ifNotExists(), stColumn, codec)
}

// stMigration is migration 5's statements.
func (s schema) stMigration() []string {
	stmts := []string{s.stColumnDDL(s.storageTable(samplesTable), true)}
	if s.cluster != "" {
		stmts = append(stmts, s.distributedAlter(func(s schema) string { return s.stColumnDDL(samplesTable, false) }))
	}
	return stmts
}

// hasSTColumn reports whether the samples table (the Distributed one in
// cluster mode) has the st column.
func (s schema) hasSTColumn(ctx context.Context, conn sqlRunner) (bool, error) {
	n, err := conn.queryString(ctx, fmt.Sprintf("SELECT toString(count()) FROM system.columns WHERE database = %s AND table = %s AND name = %s",
		quote(s.db), quote(samplesTable), quote(stColumn)))
	if err != nil {
		return false, fmt.Errorf("read samples table columns: %w", err)
	}
	return n == "1", nil
}
