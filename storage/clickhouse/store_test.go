package clickhouse

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestDDLGolden pins the DDL of both server generations and both
// topologies: 18.x without codecs and TTL, 20.3+ with them.
func TestDDLGolden(t *testing.T) {
	legacy := serverInfo{Version: "18.16.1", Major: 18, Minor: 16, LowCardinality: true}
	modern := serverInfo{Version: "24.8.4.13", Major: 24, Minor: 8, Codecs: true, TTL: true, TTLOnlyDropParts: true, LowCardinality: true, ZooKeeper: true}
	cases := []struct {
		name string
		s    schema
	}{
		{"legacy", schema{db: "luminate", info: legacy, retention: 90 * 24 * time.Hour}},
		{"legacy_no_lowcardinality", schema{db: "luminate", info: serverInfo{Version: "18.16.1", Major: 18, Minor: 16}}},
		{"modern", schema{db: "luminate", info: modern, retention: 90 * 24 * time.Hour}},
		{"modern_forever", schema{db: "luminate", info: modern}},
		{"legacy_cluster_each_node", schema{db: "luminate", cluster: "metrics", info: legacy}},
		{"modern_cluster_replicated", schema{db: "luminate", cluster: "metrics", onCluster: true, replicated: true, info: modern, retention: 30 * 24 * time.Hour}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b strings.Builder
			for _, m := range migrations {
				fmt.Fprintf(&b, "-- migration %d: %s\n", m.version, m.name)
				for _, stmt := range m.stmts(c.s) {
					b.WriteString(stmt + ";\n\n")
				}

			}
			path := filepath.Join("testdata", "ddl_"+c.name+".sql")
			if *update {
				require.NoError(t, os.MkdirAll("testdata", 0o755))
				require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run go test -run TestDDLGolden -update")
			require.Equal(t, string(want), b.String())
		})
	}
}

// TestMigrationsIdempotent opens a store twice on one database, and once on
// a database whose migration record was lost: the schema is created once,
// recorded once, and re-running migrations is harmless.
func TestMigrationsIdempotent(t *testing.T) {
	cfg := testConfig(t)
	s1 := openStore(t, cfg)
	conn := testConn(t)
	count := func() uint64 {
		var n uint64
		require.NoError(t, conn.QueryRow(t.Context(), "SELECT count() FROM "+s1.schema.table(migrationsTable)).Scan(&n))
		return n
	}
	require.Equal(t, uint64(len(migrations)), count())
	write(t, s1.ForTenant("x"), labels.FromStrings("__name__", "m"), 1000, 1)
	require.NoError(t, s1.Close())

	s2 := openStore(t, cfg)
	require.Equal(t, uint64(len(migrations)), count(), "a second start applies nothing")
	require.NoError(t, s2.conn.Exec(t.Context(), "TRUNCATE TABLE "+s2.schema.table(migrationsTable)))
	require.NoError(t, s2.Close())
	s3 := openStore(t, cfg)
	require.Equal(t, uint64(len(migrations)), count(), "migrations re-run after a lost record")
	require.Equal(t, []sample{{1000, 1}}, readAll(t, s3.ForTenant("x"), "m"), "data survives re-running migrations")
}

type sample struct {
	T int64
	V float64
}

func write(t testing.TB, ts storage.TenantStore, lset labels.Labels, tt int64, v float64) {
	t.Helper()
	app := ts.AppenderV2(t.Context())
	_, err := app.Append(0, lset, 0, tt, v, nil, nil, promstorage.AOptions{})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
}

func readAll(t testing.TB, ts storage.TenantStore, name string) []sample {
	t.Helper()
	q, err := ts.Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(t.Context(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", name))
	var out []sample
	for set.Next() {
		it := set.At().Iterator(nil)
		for it.Next() != 0 {
			tt, v := it.At()
			out = append(out, sample{tt, v})
		}
	}
	require.NoError(t, set.Err())
	return out
}

// TestLastWriteWinsAcrossParts checks the rule on ClickHouse's side: the
// value inserted last wins whether the rows sit in separate parts (FINAL at
// read) or were merged (OPTIMIZE ... FINAL), across a store restart too.
func TestLastWriteWinsAcrossParts(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	ts := s.ForTenant("lww")
	lset := labels.FromStrings("__name__", "lww")
	for v := 1; v <= 5; v++ {
		write(t, ts, lset, 5000, float64(v))
	}
	require.Equal(t, []sample{{5000, 5}}, readAll(t, ts, "lww"))
	require.NoError(t, s.Close())

	s = openStore(t, cfg)
	ts = s.ForTenant("lww")
	write(t, ts, lset, 5000, 6)
	app := ts.AppenderV2(t.Context())
	for _, v := range []float64{7, 8, math.Float64frombits(value.StaleNaN)} {
		_, err := app.Append(0, lset, 0, 5000, v, nil, nil, promstorage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	got := readAll(t, ts, "lww")
	require.Len(t, got, 1)
	require.Equal(t, value.StaleNaN, math.Float64bits(got[0].V), "StaleNaN appended last in one commit wins, bit-exact")

	write(t, ts, lset, 5000, 9)
	require.NoError(t, s.conn.Exec(t.Context(), "OPTIMIZE TABLE "+s.schema.table(samplesTable)+" FINAL"))
	require.Equal(t, []sample{{5000, 9}}, readAll(t, ts, "lww"), "after merge")
	var rows uint64
	require.NoError(t, s.conn.QueryRow(t.Context(), "SELECT count() FROM "+s.schema.table(samplesTable)).Scan(&rows))
	require.Equal(t, uint64(1), rows, "merge keeps one row")
}

// TestRetentionDropsPartitions writes samples on three days and applies a
// retention that keeps only the newest day.
func TestRetentionDropsPartitions(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	ts := s.ForTenant("r")
	now := time.Date(2024, 5, 10, 12, 0, 0, 0, time.UTC)
	for d := range 3 {
		write(t, ts, labels.FromStrings("__name__", "r"), now.Add(-time.Duration(d)*24*time.Hour).UnixMilli(), float64(d))
	}
	require.Len(t, readAll(t, ts, "r"), 3)
	s.cfg.Retention = 30 * time.Hour // cutoff 2024-05-09 06:00: day 9 partly kept, day 8 wholly older
	require.NoError(t, s.applyRetention(t.Context(), now))
	s.cfg.Retention = 0 // reads clamp to the retention at the real now
	got := readAll(t, ts, "r")
	require.Equal(t, []sample{{now.Add(-24 * time.Hour).UnixMilli(), 1}, {now.UnixMilli(), 0}}, got)
	q, err := ts.Querier(0, now.Add(-36*time.Hour).UnixMilli())
	require.NoError(t, err)
	names, _, err := q.LabelValues(t.Context(), "__name__", nil)
	require.NoError(t, err)
	require.Empty(t, names, "no series left on the dropped day")
	var seriesDays uint64
	require.NoError(t, s.conn.QueryRow(t.Context(), "SELECT uniqExact(intDiv(hour, 24)) FROM "+s.schema.table(seriesTable)).Scan(&seriesDays))
	require.Equal(t, uint64(2), seriesDays, "series rows of the dropped day are gone too")
}

// TestSeriesLimit refuses the series beyond a tenant's limit, keeps
// existing series flowing, leaves other tenants alone, and remembers the
// active series across a restart.
func TestSeriesLimit(t *testing.T) {
	cfg := testConfig(t)
	cfg.SeriesLimits = func(id tenancy.ID) int {
		if id == "small" {
			return 3
		}
		return 0
	}
	s := openStore(t, cfg)
	now := time.Now().UnixMilli()
	small := s.ForTenant("small")
	for i := range 3 {
		write(t, small, labels.FromStrings("__name__", "s", "i", fmt.Sprint(i)), now, 1)
	}
	app := small.AppenderV2(t.Context())
	_, err := app.Append(0, labels.FromStrings("__name__", "s", "i", "3"), 0, now, 1, nil, nil, promstorage.AOptions{})
	require.ErrorIs(t, err, storage.ErrSeriesLimit)
	require.NoError(t, app.Rollback())
	write(t, small, labels.FromStrings("__name__", "s", "i", "0"), now+1000, 2) // existing series flow
	for i := range 10 {
		write(t, s.ForTenant("big"), labels.FromStrings("__name__", "s", "i", fmt.Sprint(i)), now, 1)
	}
	require.NoError(t, s.Close())

	s = openStore(t, cfg)
	small = s.ForTenant("small")
	app = small.AppenderV2(t.Context())
	_, err = app.Append(0, labels.FromStrings("__name__", "s", "i", "4"), 0, now, 1, nil, nil, promstorage.AOptions{})
	require.True(t, errors.Is(err, storage.ErrSeriesLimit), "after restart the 3 active series are remembered: %v", err)
	_, err = app.Append(0, labels.FromStrings("__name__", "s", "i", "1"), 0, now+1000, 2, nil, nil, promstorage.AOptions{})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
}
