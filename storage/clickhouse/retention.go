package clickhouse

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// Per-tenant retention (issue 14). Partitions are by day across tenants,
// so one tenant's expired rows cannot be dropped with a partition:
//
//   - reads clamp their range to the tenant's cutoff (view.go), so its
//     expired samples, series and exemplars are invisible at once;
//   - whole daily partitions are dropped, and the samples TTL (servers
//     from 19.6) set, by the LONGEST retention in force, so that a tenant
//     whose retention is longer than the global one keeps its data;
//   - the rows of tenants whose retention is shorter are deleted by one
//     mutation per table (ALTER TABLE ... DELETE, 18.16 and later) whose
//     condition gives every tenant its own cutoff, sent at most once per
//     RetentionCleanupInterval (and soon after a policy change), only when
//     a count finds rows to delete, and never while the previous one is
//     still running.

// retentionCheck is how often the background loop looks at the policy;
// partitions and TTL follow a change within it.
const retentionCheck = time.Minute

// partitionDropInterval is how often whole partitions are dropped.
const partitionDropInterval = 10 * time.Minute

// policy is the retention policy in force: Config.RetentionPolicy, else
// Config.Retention for every tenant.
func (c Config) policy() storage.RetentionPolicy {
	return storage.PolicyOr(c.RetentionPolicy, c.Retention)
}

// longestRetention is the longest retention in force (0: forever).
func (c Config) longestRetention() time.Duration {
	l, _ := storage.LongestRetention(c.policy())
	return l
}

// retentionCutoff is the oldest timestamp (milliseconds) tenant id may
// still read and keep at now: math.MinInt64 when its data is kept forever.
// Reads clamp their time range to it; retention deletes what lies before.
func (s *Store) retentionCutoff(id tenancy.ID, now time.Time) int64 {
	return storage.RetentionCutoff(s.cfg.policy().Retention(id), now)
}

// retentionState is what the background loop remembers between passes.
type retentionState struct {
	lastDrop, lastCleanup time.Time
	defaults              time.Duration
	over                  map[tenancy.ID]time.Duration
	ttl                   time.Duration // the samples TTL set, when known
	ttlKnown              bool
}

// retentionTick runs what is due at now: the partition drop and TTL every
// partitionDropInterval, the per-tenant cleanup every
// RetentionCleanupInterval, both at once after a policy change.
func (s *Store) retentionTick(ctx context.Context, st *retentionState, now time.Time) {
	def, over := s.cfg.policy().Retentions()
	// A change seen by a running pod (a reload) forces a cleanup; a
	// start does not, or every pod start would rewrite the tables.
	changed := !st.lastDrop.IsZero() && !storage.SameRetentions(def, over, st.defaults, st.over)
	st.defaults, st.over = def, over
	if changed || now.Sub(st.lastDrop) >= partitionDropInterval {
		st.lastDrop = now
		// The TTL first: raised before a merge can apply the old one.
		err := errors.Join(s.reconcileRetentionTTL(ctx, st), s.applyRetention(ctx, now))
		if err != nil && ctx.Err() == nil {
			s.logger.Warn("retention", slog.Any("err", err))
		}
	}
	if changed || now.Sub(st.lastCleanup) >= s.cfg.RetentionCleanupInterval {
		st.lastCleanup = now
		// After a reload, only a retention mutation of the last few
		// minutes (another pod's, for the same reload) holds it back.
		within := s.cfg.RetentionCleanupInterval
		if changed {
			within = min(within, reloadCleanupWindow)
		}
		if _, err := s.cleanupRetention(ctx, now, within); err != nil && ctx.Err() == nil {
			s.logger.Warn("retention cleanup", slog.Any("err", err))
		}
	}
}

// applyRetention drops the daily partitions of both tables that lie wholly
// before now minus the longest retention in force, on every node in
// cluster mode.
func (s *Store) applyRetention(ctx context.Context, now time.Time) error {
	longest := s.cfg.longestRetention()
	if longest <= 0 {
		return nil
	}
	return s.dropPartitions(ctx, (now.Add(-longest).UnixMilli())/msPerDay)
}

// reconcileRetentionTTL sets the samples TTL (servers from 19.6) to the
// longest retention in force when it changed since st last set it.
func (s *Store) reconcileRetentionTTL(ctx context.Context, st *retentionState) error {
	longest := s.cfg.longestRetention()
	if !s.schema.info.TTL || st.ttlKnown && st.ttl == longest {
		return nil
	}
	sc := s.schema
	sc.onCluster, sc.retention = false, longest
	if err := s.onEachNode(ctx, func(conn driver.Conn) error { return sc.reconcileTTL(ctx, connRunner{conn}) }); err != nil {
		return err
	}
	st.ttl, st.ttlKnown = longest, true
	return nil
}

// dropPartitions drops the daily partitions of both tables before
// cutoffDay.
func (s *Store) dropPartitions(ctx context.Context, cutoffDay int64) error {
	return s.onEachNode(ctx, func(conn driver.Conn) error {
		var errs []error
		for _, table := range []string{samplesTable, seriesTable, statsTable, indexTable} { // statsTable, indexTable: partitioned by day too (schema_stats.go, schema_index.go)
			local := s.schema.storageTable(table)
			q := fmt.Sprintf("SELECT DISTINCT partition FROM system.parts WHERE database = %s AND table = %s AND active", quote(s.schema.db), quote(local))
			parts, err := s.queryStrings(ctx, conn, q)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, p := range parts {
				var day int64
				if _, err := fmt.Sscan(p, &day); err != nil || day >= cutoffDay {
					continue
				}
				alter := fmt.Sprintf("ALTER TABLE %s DROP PARTITION %d", s.schema.table(local), day)
				if err := conn.Exec(ctx, alter); err != nil {
					errs = append(errs, fmt.Errorf("drop partition %d of %s: %w", day, local, err))
					continue
				}
				s.logger.Info("retention dropped partition", slog.String("table", local), slog.Int64("day", day))
			}
		}
		return errors.Join(errs...)
	})
}

// cutoffSQL is the SQL expression of a row's cutoff (milliseconds) at
// now: its tenant's one, by tenant column; maxCut is the largest of them
// (math.MinInt64 when every tenant keeps its data forever). Tenants of
// one retention share one branch.
func cutoffSQL(def time.Duration, over map[tenancy.ID]time.Duration, now time.Time) (expr string, maxCut int64) {
	byRet := map[time.Duration][]string{}
	for id, r := range over {
		if r != def {
			byRet[r] = append(byRet[r], quote(string(id)))
		}
	}
	maxCut = storage.RetentionCutoff(def, now)
	if len(byRet) == 0 {
		return sqlCut(maxCut), maxCut
	}
	var b strings.Builder
	b.WriteString("multiIf(")
	for _, r := range slices.SortedFunc(maps.Keys(byRet), cmp.Compare) {
		ids := byRet[r]
		slices.Sort(ids)
		c := storage.RetentionCutoff(r, now)
		maxCut = max(maxCut, c)
		fmt.Fprintf(&b, "tenant IN (%s), %s, ", strings.Join(ids, ", "), sqlCut(c))
	}
	fmt.Fprintf(&b, "%s)", sqlCut(storage.RetentionCutoff(def, now)))
	return b.String(), maxCut
}

// sqlCut is cutoff c as an Int64 SQL literal; math.MinInt64 (forever)
// becomes one more, which no literal parsing turns into a UInt64.
func sqlCut(c int64) string { return fmt.Sprintf("toInt64(%d)", max(c, math.MinInt64+1)) }

// retentionMark is in the condition of every retention mutation, so that
// any pod finds the last one in system.mutations.
const retentionMark = "'luminate-retention' != ''"

// retentionDeletes are the conditions of the rows past their tenant's
// retention at now, by table; nil when no tenant's retention is shorter
// than the longest one (partitions do it all).
func (s *Store) retentionDeletes(now time.Time) map[string]string {
	longest, shorter := storage.LongestRetention(s.cfg.policy())
	if !shorter {
		return nil
	}
	def, over := s.cfg.policy().Retentions()
	expr, maxCut := cutoffSQL(def, over, now)
	if maxCut == math.MinInt64 {
		return nil
	}
	// ts < maxCut first: partition pruning skips every newer day. When
	// only some tenants keep less than the default (the usual case), the
	// primary key (tenant first) narrows the read to theirs.
	pre := ""
	if def == longest {
		var ids []string
		for id, r := range over {
			if r != def {
				ids = append(ids, quote(string(id)))
			}
		}
		slices.Sort(ids)
		pre = fmt.Sprintf("tenant IN (%s) AND ", strings.Join(ids, ", "))
	}
	return map[string]string{
		samplesTable: fmt.Sprintf("%sts < %d AND ts < %s", pre, maxCut, expr),
		// An hour row goes once its whole hour is before the cutoff.
		seriesTable: fmt.Sprintf("%shour < %d AND hour < intDiv(%s, %d)", pre, hourOf(maxCut), expr, msPerHour),
	}
}

// retentionCleanup is what one cleanup did.
type retentionCleanup struct {
	rows    map[string]uint64 // rows found past their retention, by table
	mutated []string          // tables a mutation was sent to
}

// reloadCleanupWindow: a cleanup after a reload is skipped when any pod
// sent a retention mutation this recently (all pods see the reload).
const reloadCleanupWindow = 10 * time.Minute

// cleanupRetention sends, for each table holding rows past their
// tenant's retention, one mutation deleting them, unless a mutation is
// still running on the table or any pod sent a retention mutation there
// within the last within (0: no such check): at most one mutation at a
// time per table, and one per interval across the pods.
func (s *Store) cleanupRetention(ctx context.Context, now time.Time, within time.Duration) (retentionCleanup, error) {
	res := retentionCleanup{rows: map[string]uint64{}}
	conds := s.retentionDeletes(now)
	if conds == nil {
		return res, nil
	}
	var errs []error
	for _, table := range []string{samplesTable, seriesTable} {
		cond := conds[table]
		n, err := s.countRows(ctx, table, cond)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		res.rows[table] = n
		if n == 0 {
			continue
		}
		local := s.schema.storageTable(table)
		skipped := false
		err = s.onEachNode(ctx, func(conn driver.Conn) error {
			// Any mutation running on the table (they all rewrite parts),
			// or a retention mutation sent recently by any pod.
			recent := "0"
			if within > 0 {
				recent = fmt.Sprintf("position(command, %s) > 0 AND create_time > now() - %d", quote("luminate-retention"), int64(within/time.Second))
			}
			busy, err := s.queryStrings(ctx, conn, fmt.Sprintf(
				"SELECT mutation_id FROM system.mutations WHERE database = %s AND table = %s AND (NOT is_done OR %s)",
				quote(s.schema.db), quote(local), recent))
			if err != nil {
				return fmt.Errorf("list mutations of %s: %w", local, err)
			}
			if len(busy) > 0 {
				s.logger.Info("retention cleanup waits: a mutation runs or ran recently", slog.String("table", local), slog.Any("mutations", busy))
				skipped = true
				return nil
			}
			if err := conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DELETE WHERE %s AND %s", s.schema.table(local), cond, retentionMark)); err != nil {
				return fmt.Errorf("delete expired rows of %s: %w", local, err)
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if skipped {
			continue
		}
		res.mutated = append(res.mutated, table)
		s.logger.Info("retention cleanup", slog.String("table", local), slog.Uint64("rows", n))
	}
	return res, errors.Join(errs...)
}

func (s *Store) countRows(ctx context.Context, table, cond string) (uint64, error) {
	rows, err := s.query(ctx, "retention_count", fmt.Sprintf("SELECT count() FROM %s WHERE %s", s.schema.table(table), cond))
	if err != nil {
		return 0, fmt.Errorf("count expired rows of %s: %w", table, err)
	}
	defer rows.Close()
	var n uint64
	if rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return 0, fmt.Errorf("count expired rows of %s: %w", table, err)
		}
	}
	return n, rows.Err()
}

// retentionNow runs the whole retention pass at once (partitions, rows,
// exemplars) and waits for its mutations to finish.
func (s *Store) retentionNow(ctx context.Context) error {
	now := time.Now()
	_, err := s.cleanupRetention(ctx, now, 0)
	err = errors.Join(s.applyRetention(ctx, now), err, s.aux.trimExemplars(ctx, now))
	if err != nil {
		return err
	}
	return s.waitMutations(ctx, 20*time.Millisecond)
}

// waitMutations waits until no mutation of Luminate's tables is running
// on any node, polling every interval, or ctx ends.
func (s *Store) waitMutations(ctx context.Context, interval time.Duration) error {
	for {
		var pending []string
		err := s.onEachNode(ctx, func(conn driver.Conn) error {
			p, err := s.queryStrings(ctx, conn, fmt.Sprintf("SELECT mutation_id FROM system.mutations WHERE database = %s AND NOT is_done", quote(s.schema.db)))
			pending = append(pending, p...)
			return err
		})
		if err != nil {
			return err
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("mutations %v still running: %w", pending, ctx.Err())
		case <-time.After(interval):
		}
	}
}

func (s *Store) queryStrings(ctx context.Context, conn driver.Conn, q string) ([]string, error) {
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
