//go:build chdb

package clickhouse

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
)

// TestModernDelete runs the deletion's SQL on chDB (ClickHouse 26.x): the
// tombstones table of migration 6, the condition that leaves deleted
// series rows out of reads, and the cleaning mutations (18.16 runs them in
// TestDeleteConformance):
//
//	CHDB_LIB_PATH=$(scripts/chdb-lib.sh) go test -tags chdb -run TestModernDelete -v ./storage/clickhouse/
func TestModernDelete(t *testing.T) {
	ctx := t.Context()
	modern := openChDB(t)
	info, err := detectServer(ctx, modern)
	require.NoError(t, err)
	sc := schema{db: "modern_delete", info: info}
	_, err = sc.migrate(ctx, modern)
	require.NoError(t, err)
	s := &Store{schema: sc}
	for _, stmt := range []string{
		"INSERT INTO " + sc.table(seriesTable) + " (tenant, hour, min_ts, fingerprint, metric_name, label_names, label_values) VALUES " +
			"('a', 0, 1000, 1, 'm', ['__name__'], ['m']), ('a', 1, 3601000, 1, 'm', ['__name__'], ['m']), ('a', 0, 2000, 2, 'n', ['__name__'], ['n']), ('b', 0, 1000, 1, 'm', ['__name__'], ['m'])",
		"INSERT INTO " + sc.table(samplesTable) + " (tenant, fingerprint, ts, value) VALUES ('a', 1, 1000, 1), ('a', 1, 3601000, 2), ('a', 2, 2000, 3), ('b', 1, 1000, 4)",
		// Hour 0 of tenant a's series 1.
		"INSERT INTO " + sc.table(tombstonesTable) + " (tenant, fingerprint, mint, maxt, whole, seq) VALUES ('a', 1, 0, 3599999, 0, 7)",
	} {
		require.NoError(t, modern.exec(ctx, stmt), stmt)
	}
	tb := &tombs{ranges: []storage.Interval{{Mint: 0, Maxt: 3599999}}, maxSeq: 7}
	s.setTombs("a", tb)
	query := func(sql string) string {
		t.Helper()
		out, err := modern.query(sql)
		require.NoError(t, err, sql)
		return out
	}
	require.Equal(t, "1\t1\n2\t0\n", query("SELECT fingerprint, hour FROM "+sc.table(seriesTable)+" WHERE tenant = 'a'"+s.tombCond("a")+" ORDER BY fingerprint, hour"),
		"series 1's row of hour 0 left out")
	require.Equal(t, "1\t0\n", query("SELECT fingerprint, hour FROM "+sc.table(seriesTable)+" WHERE tenant = 'b'"+s.tombCond("b")), "tenant b untouched")

	apply, drop := s.cleanStatements("a", tb)
	for _, stmt := range append(apply, drop) {
		require.NoError(t, modern.exec(ctx, stmt+" SETTINGS mutations_sync = 2"), stmt)
	}
	require.Equal(t, "a\t1\t3601000\na\t2\t2000\nb\t1\t1000\n", query("SELECT tenant, fingerprint, ts FROM "+sc.table(samplesTable)+" ORDER BY tenant, fingerprint, ts"))
	require.Equal(t, "a\t1\t1\na\t2\t0\nb\t1\t0\n", query("SELECT tenant, fingerprint, hour FROM "+sc.table(seriesTable)+" ORDER BY tenant, fingerprint, hour"))
	require.Equal(t, "0\n", query("SELECT count() FROM "+sc.table(tombstonesTable)))
}
