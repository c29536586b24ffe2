//go:build chdb

package clickhouse

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestModernStartTimestamps migrates the schema of the release before
// start timestamps (every migration before 5) with a float in it to the st
// one on the modern engine, then reads start timestamps back, last write
// winning, with the store's own samples query. It measures the st column's
// compressed bytes per sample for floats written without start timestamps
// (the column left to its default), cumulative counters' (constant between
// resets) and deltas' (the previous sample's time), with other codecs for
// comparison.
func TestModernStartTimestamps(t *testing.T) {
	modern := openChDB(t)
	ctx := t.Context()
	info, err := detectServer(ctx, modern)
	require.NoError(t, err)
	var before []migration
	for _, m := range migrations {
		if m.version < 5 {
			before = append(before, m)
		}
	}
	sc := schema{db: "st", info: info}
	_, err = sc.migrateThrough(ctx, modern, before)
	require.NoError(t, err)
	has, err := sc.hasSTColumn(ctx, modern)
	require.NoError(t, err)
	require.False(t, has)
	require.NoError(t, modern.exec(ctx, "INSERT INTO "+sc.table(samplesTable)+" (tenant, fingerprint, ts, value, digits, scale) VALUES ('t', 1, 500, 0, 15, 1)"))
	applied, err := sc.migrate(ctx, modern)
	require.NoError(t, err)
	require.Contains(t, applied, 5)
	has, err = sc.hasSTColumn(ctx, modern)
	require.NoError(t, err)
	require.True(t, has)
	applied, err = sc.migrate(ctx, modern)
	require.NoError(t, err)
	require.Empty(t, applied)
	create, err := modern.query("SHOW CREATE TABLE " + sc.table(samplesTable))
	require.NoError(t, err)
	require.Contains(t, create, "`st` Int64 DEFAULT 0 CODEC(Delta(8), ZSTD(1))")
	sc.decimals = true

	// Rows as the committer inserts them: with st when the batch has one,
	// without (st 0) when not; a later part overwrites.
	cols := sc.samplesColumns()
	require.NoError(t, modern.exec(ctx, fmt.Sprintf("INSERT INTO %s (%s, %s) VALUES ('t', 1, 1000, 0, 2, 0, 900), ('t', 1, 2000, 0, 3, 0, -7), ('t', 1, 3000, 0, 5, 0, 2500)", sc.table(samplesTable), cols, stColumn)))
	require.NoError(t, modern.exec(ctx, fmt.Sprintf("INSERT INTO %s (%s) VALUES ('t', 1, 1000, 0, 4, 0)", sc.table(samplesTable), cols)))
	require.NoError(t, modern.exec(ctx, fmt.Sprintf("INSERT INTO %s (%s, %s) VALUES ('t', 1, 3000, 0, 6, 0, 2999)", sc.table(samplesTable), cols, stColumn)))
	want := []string{"1\t1000\t4\t0", "1\t2000\t3\t-7", "1\t3000\t6\t2999", "1\t500\t1.5\t0"}
	sql := samplesSQL(sc.valueExpr(), sc.stExpr(), sc.table(samplesTable), "tenant = 't'", []uint64{1}, math.MinInt64, math.MaxInt64)
	for _, phase := range []string{"unmerged", "merged"} {
		out, err := modern.query(sql)
		require.NoError(t, err)
		require.Equal(t, want, newestOfEqual(t, out), phase)
		require.NoError(t, modern.exec(ctx, "OPTIMIZE TABLE "+sc.table(samplesTable)+" FINAL"))
	}

	// Bytes per sample: 1000 series x 480 samples at 15 s.
	const nSeries, points, step = 1000, 480, 15_000
	for k, c := range []struct{ name, st string }{
		{"no start timestamps", ""},
		{"cumulative, reset every 100 samples", fmt.Sprintf("1699999999999 - fingerprint + intDiv(intDiv(number, %d), 100) * 100 * %d", nSeries, step)},
		{"deltas", fmt.Sprintf("ts - %d", step)},
	} {
		t.Run(c.name, func(t *testing.T) {
			sc := schema{db: fmt.Sprintf("stbps%d", k), info: info, decimals: true}
			_, err := sc.migrate(ctx, modern)
			require.NoError(t, err)
			cols, sel := sc.samplesColumns(), fmt.Sprintf("'b', number %% %d AS fingerprint, 1700000000000 + intDiv(number, %d) * %d AS ts, 0, intDiv(number, %d), 0", nSeries, nSeries, step, nSeries)
			if c.st != "" {
				cols += ", " + stColumn
				sel += ", " + c.st
			}
			require.NoError(t, modern.exec(ctx, fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM numbers(%d)", sc.table(samplesTable), cols, sel, nSeries*points)))
			measure := func(codec string) float64 {
				require.NoError(t, modern.exec(ctx, "OPTIMIZE TABLE "+sc.table(samplesTable)+" FINAL"))
				out, err := modern.query(fmt.Sprintf("SELECT name, data_compressed_bytes / %d FROM system.columns WHERE database = %s AND table = 'samples'", nSeries*points, quote(sc.db)))
				require.NoError(t, err)
				var total, st float64
				for l := range strings.Lines(out) {
					var name string
					var v float64
					_, err := fmt.Sscan(l, &name, &v)
					require.NoError(t, err)
					total += v
					if name == stColumn {
						st = v
					}
				}
				t.Logf("%s, st CODEC(%s): st column %.4f bytes/sample, samples table %.4f (%s)", c.name, codec, st, total, info.Version)
				return st
			}
			st := measure("Delta, ZSTD(1)")
			if c.st == "" {
				require.Less(t, st, 0.01, "a column of zeros is all but free")
			}
			for _, codec := range []string{"DoubleDelta, ZSTD(1)", "T64, ZSTD(1)", "ZSTD(1)"} {
				require.NoError(t, modern.exec(ctx, fmt.Sprintf("ALTER TABLE %s MODIFY COLUMN st Int64 DEFAULT 0 CODEC(%s)", sc.table(samplesTable), codec)))
				measure(codec)
			}
		})
	}
}
