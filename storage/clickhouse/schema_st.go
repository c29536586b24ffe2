package clickhouse

import (
	"context"
	"encoding/binary"
	"fmt"
)

// Schema pieces of migration 5 (start timestamps).

// stColumn is the samples table's column holding each sample's start
// timestamp (AppenderV2's st), 0 when unknown. It is a column of the
// sample's row, so that last-write-wins keeps the st of the winning
// write, floats and histograms alike.
const stColumn = "st"

// stColumnDDL adds the st column to table. An insert without start
// timestamps does not send it (it defaults to 0, or the empty string).
//
// From 20.3 it is an Int64 with CODEC(Delta, ZSTD(1)): Delta makes a
// column constant between counter resets (cumulative st) or advancing by
// the scrape interval (deltas, st the previous sample's time) runs of
// equal values that ZSTD all but removes. Measured on ClickHouse 26.5
// (TestModernStartTimestamps, 1000 series x 480 samples at 15 s): a
// column of zeros takes 0.0001 bytes per sample whatever the codec;
// cumulative st 0.012 with Delta, ZSTD(1) against 0.035 with DoubleDelta,
// 0.24 with T64 and 0.054 with ZSTD alone; deltas' 0.011 against 0.021,
// 0.33 and 0.12.
//
// 18.x has no codecs: its LZ4 takes 0.036 bytes per sample for an Int64
// column of zeros (BenchmarkIngest on 18.16, 2% of the node model's
// 1.80), so there st is a String holding the st's 8 little-endian bytes
// without trailing zeros (empty for 0), read as reinterpretAsInt64(st): 1
// byte per row before compression, as the empty hist column. 18.x has no
// ADD COLUMN IF NOT EXISTS (migrate tolerates the column existing).
func (s schema) stColumnDDL(table string, codecs bool) string {
	if !s.info.Codecs {
		return fmt.Sprintf("ALTER TABLE %s%s ADD COLUMN %s String DEFAULT ''", s.table(table), s.onClusterClause(), stColumn)
	}
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

// stType returns the type of the samples table's (the Distributed one in
// cluster mode) st column, "" when it has none. Read from the table, not
// implied by the server version: a table created on 18.x keeps its String
// column when the server is upgraded.
func (s schema) stType(ctx context.Context, conn sqlRunner) (string, error) {
	typ, err := conn.queryString(ctx, fmt.Sprintf("SELECT type FROM system.columns WHERE database = %s AND table = %s AND name = %s",
		quote(s.db), quote(samplesTable), quote(stColumn)))
	if err != nil {
		return "", fmt.Errorf("read samples table columns: %w", err)
	}
	return typ, nil
}

// hasSTColumn reports whether the samples table has the st column.
func (s schema) hasSTColumn(ctx context.Context, conn sqlRunner) (bool, error) {
	typ, err := s.stType(ctx, conn)
	return typ != "", err
}

// stExpr is the SQL expression of a sample's start timestamp on a
// samples row.
func (s schema) stExpr() string {
	if s.stBytes {
		return "reinterpretAsInt64(" + stColumn + ")"
	}
	return stColumn
}

// stBytesOf is st as a String st column holds it: its little-endian bytes
// without trailing zeros.
func stBytesOf(st int64) string {
	b := binary.LittleEndian.AppendUint64(nil, uint64(st))
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return string(b)
}
