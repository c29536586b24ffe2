package clickhouse

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// fixedPolicy is a RetentionPolicy of a default and per-tenant overrides.
type fixedPolicy struct {
	def  time.Duration
	over map[tenancy.ID]time.Duration
}

func (p fixedPolicy) Retention(id tenancy.ID) time.Duration {
	if r, ok := p.over[id]; ok {
		return r
	}
	return p.def
}

func (p fixedPolicy) Retentions() (time.Duration, map[tenancy.ID]time.Duration) {
	return p.def, p.over
}

// TestRetentionCleanupCost measures the per-tenant retention cleanup on
// the server chtest runs (18.16 here): LUMINATE_RETENTION_ROWS sample rows
// (skipped when unset) over 10 tenants of 1,000 series each, 72 hours
// back from now; tenant t0's retention is 24h, the others keep the
// default 30d (with LUMINATE_RETENTION_LONGER=1 the other way round: the
// default is 24h, t0 keeps 30d, and nine tenants of ten lose rows to the
// mutation rather than to partitions). It reports the count, the mutation's wall time until done,
// the rows and bytes before and after, and how many parts the mutation
// rewrote.
//
//	LUMINATE_RETENTION_ROWS=20000000 go test -count=1 -run TestRetentionCleanupCost -v ./storage/clickhouse/
func TestRetentionCleanupCost(t *testing.T) {
	total, err := strconv.Atoi(os.Getenv("LUMINATE_RETENTION_ROWS"))
	if err != nil || total <= 0 {
		t.Skip("set LUMINATE_RETENTION_ROWS to measure")
	}
	const tenants, perTenant = 10, 1000
	nSeries := tenants * perTenant
	perSeries := max(total/nSeries, 1)
	cfg := testConfig(t)
	cfg.RetentionPolicy = fixedPolicy{def: 30 * 24 * time.Hour, over: map[tenancy.ID]time.Duration{"t0": 24 * time.Hour}}
	affected, kept := "tenant = 't0'", "tenant != 't0'" // rows the cleanup deletes before 24h, rows it keeps
	if os.Getenv("LUMINATE_RETENTION_LONGER") == "1" {
		cfg.RetentionPolicy = fixedPolicy{def: 24 * time.Hour, over: map[tenancy.ID]time.Duration{"t0": 30 * 24 * time.Hour}}
		affected, kept = kept, affected
	}
	s := openStore(t, cfg)
	ctx := t.Context()
	now := time.Now()
	start := now.Add(-72 * time.Hour).UnixMilli()
	step := int64(72*time.Hour/time.Millisecond) / int64(perSeries)
	samples, series := s.schema.table(samplesTable), s.schema.table(seriesTable)
	began := time.Now()
	require.NoError(t, s.conn.Exec(ctx, fmt.Sprintf(
		"INSERT INTO %s (tenant, fingerprint, ts, value) SELECT concat('t', toString(number %% %d)), number %% %d, %d + intDiv(number, %d) * %d, toFloat64(number) FROM system.numbers LIMIT %d",
		samples, tenants, nSeries, start, nSeries, step, perSeries*nSeries)))
	// One series row per series and hour.
	hours := int64(72)
	require.NoError(t, s.conn.Exec(ctx, fmt.Sprintf(
		"INSERT INTO %s (tenant, hour, min_ts, fingerprint, metric_name, label_names, label_values) SELECT concat('t', toString(number %% %d)), toInt32(%d + intDiv(number, %d)), (%d + intDiv(number, %d)) * %d, number %% %d, 'm', ['__name__'], ['m'] FROM system.numbers LIMIT %d",
		series, tenants, hourOf(start), nSeries, hourOf(start), nSeries, msPerHour, nSeries, hours*int64(nSeries))))
	t.Logf("inserted %d sample rows and %d series rows in %s", perSeries*nSeries, hours*int64(nSeries), time.Since(began).Round(time.Millisecond))
	time.Sleep(5 * time.Second) // let the first merges run

	stat := func(table string) (rows, bytes, parts uint64) {
		require.NoError(t, s.conn.QueryRow(ctx, fmt.Sprintf(
			"SELECT sum(rows), sum(bytes_on_disk), count() FROM system.parts WHERE database = %s AND table = %s AND active",
			quote(s.schema.db), quote(table))).Scan(&rows, &bytes, &parts))
		return
	}
	partNames := func(table string) map[string]bool {
		names, err := s.queryStrings(ctx, s.conn, fmt.Sprintf("SELECT name FROM system.parts WHERE database = %s AND table = %s AND active", quote(s.schema.db), quote(table)))
		require.NoError(t, err)
		m := map[string]bool{}
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	var ver string
	require.NoError(t, s.conn.QueryRow(ctx, "SELECT version()").Scan(&ver))
	type before struct{ rows, bytes, parts uint64 }
	b := map[string]before{}
	names := map[string]map[string]bool{}
	for _, tb := range []string{samplesTable, seriesTable} {
		r, by, p := stat(tb)
		b[tb] = before{r, by, p}
		names[tb] = partNames(tb)
	}
	cut := storage.RetentionCutoff(24*time.Hour, now)
	var expired uint64
	require.NoError(t, s.conn.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM %s WHERE %s AND ts < %d", samples, affected, cut)).Scan(&expired))
	var keptRows uint64
	require.NoError(t, s.conn.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM %s WHERE %s", samples, kept)).Scan(&keptRows))

	began = time.Now()
	res, err := s.cleanupRetention(ctx, now, s.cfg.RetentionCleanupInterval)
	require.NoError(t, err)
	sent := time.Since(began)
	require.NoError(t, s.waitMutations(ctx, 50*time.Millisecond))
	done := time.Since(began)
	t.Logf("server %s; cleanup: counted %v rows past retention and sent mutations to %v in %s; mutations done after %s",
		ver, res.rows, res.mutated, sent.Round(time.Millisecond), done.Round(time.Millisecond))
	cmds, err := s.queryStrings(ctx, s.conn, fmt.Sprintf("SELECT command FROM system.mutations WHERE database = %s", quote(s.schema.db)))
	require.NoError(t, err)
	t.Logf("mutations as the server stores them: %q", cmds)
	for _, tb := range []string{samplesTable, seriesTable} {
		r, by, p := stat(tb)
		after := partNames(tb)
		kept := 0
		for n := range names[tb] {
			if after[n] {
				kept++
			}
		}
		t.Logf("%s: rows %d -> %d, bytes on disk %d -> %d, parts %d -> %d (%d untouched, %d rewritten)",
			tb, b[tb].rows, r, b[tb].bytes, by, b[tb].parts, p, kept, len(names[tb])-kept)
	}
	var left uint64
	require.NoError(t, s.conn.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM %s WHERE %s AND ts < %d", samples, affected, cut)).Scan(&left))
	require.Zero(t, left, "the expired rows are gone")
	require.Equal(t, expired, res.rows[samplesTable])
	var others uint64
	require.NoError(t, s.conn.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM %s WHERE %s", samples, kept)).Scan(&others))
	require.Equal(t, keptRows, others, "the tenants of the longer retention keep every row")

	began = time.Now()
	res, err = s.cleanupRetention(ctx, now, s.cfg.RetentionCleanupInterval)
	require.NoError(t, err)
	t.Logf("second cleanup (nothing left to delete): counted %v, mutated %v, in %s", res.rows, res.mutated, time.Since(began).Round(time.Millisecond))
	require.Empty(t, res.mutated)

	// Rows expire again later: another pod's cleanup within the interval
	// waits for the next one.
	res, err = s.cleanupRetention(ctx, now.Add(6*time.Hour), s.cfg.RetentionCleanupInterval)
	require.NoError(t, err)
	require.NotZero(t, res.rows[samplesTable], "six hours more expired")
	require.Empty(t, res.mutated, "a retention mutation ran within the interval")
}
