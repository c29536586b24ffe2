package clickhouse

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// Deleting series (delete_series, clean_tombstones).
//
// A deletion inserts one row per series into the tombstones table
// (schema_delete.go) before DeleteSeries returns. Every read first checks
// the tenant's tombstones (one small query: their count and newest seq,
// against the pod's cache; the rows are read again only when that
// changed), so a deletion on one pod is invisible on every pod at once:
//   - series rows whose samples all lie in a deleted range are left out in
//     SQL (tombCond, appended to every series-table WHERE), so series, label
//     and cardinality reads no longer see a series deleted over all its
//     data, and selects never read its samples;
//   - the samples of partly deleted series are dropped as they are read
//     (storage.WithoutDeleted).
//
// Cleaning (CleanTombstones, and a background pass for tombstones older
// than cleanAfter) runs ALTER TABLE ... DELETE mutations on the samples
// and series tables, waits for them, then deletes the tombstones it
// applied; ClickHouse merges reclaim the disk.

// cleanAfter is the age at which the background pass cleans tombstones.
const cleanAfter = time.Hour

// deletions caches each tenant's tombstones on this pod.
type deletions struct {
	mu       sync.Mutex
	byTenant map[tenancy.ID]*tombs
	opMu     sync.Mutex // one deletion or cleaning at a time on this pod
}

// tombs are a tenant's tombstones as read at version. Never modified once
// published.
type tombs struct {
	fetched time.Time // when the read of this version began
	version string
	byFP    map[uint64]storage.Intervals
	ranges  []storage.Interval // the distinct deleted ranges, sorted
	maxSeq  uint64
}

// tombsOf returns the tenant's cached tombstones (nil: none), as the last
// refresh read them.
func (s *Store) tombsOf(id tenancy.ID) *tombs {
	s.deleted.mu.Lock()
	defer s.deleted.mu.Unlock()
	if tb := s.deleted.byTenant[id]; tb != nil && len(tb.ranges) > 0 {
		return tb
	}
	return nil
}

func (s *Store) tombTable(local bool) string {
	if local {
		return s.schema.table(s.schema.storageTable(tombstonesTable))
	}
	return s.schema.table(tombstonesTable)
}

// deleteVisibleWait is how long delete_series waits for its tombstones to
// replicate to the replicas reads take.
const deleteVisibleWait = 10 * time.Second

// tombSettings is the SETTINGS clause of the reads of the tombstones
// table. On a cluster they all take the first healthy replica of each
// shard (load_balancing = in_order): DeleteSeries answers once that
// replica has the deletion, so every read after it sees it.
func (s *Store) tombSettings() string {
	if s.schema.cluster == "" {
		return ""
	}
	return " SETTINGS load_balancing = 'in_order'"
}

// refreshTombs brings the cache of the tenant's tombstones up to date and
// returns them (nil: none).
func (s *Store) refreshTombs(ctx context.Context, id tenancy.ID) (*tombs, error) {
	tenant := quote(string(id))
	fetched := time.Now()
	v, err := s.queryStringsKind(ctx, "tombstones", fmt.Sprintf("SELECT concat(toString(count()), ':', toString(max(seq))) FROM %s WHERE tenant = %s%s", s.tombTable(false), tenant, s.tombSettings()))
	if err != nil {
		return nil, err
	}
	version := ""
	if len(v) > 0 {
		version = v[0]
	}
	cur := s.tombsOf(id)
	switch {
	case strings.HasPrefix(version, "0:"):
		s.setTombs(id, &tombs{fetched: fetched, version: version})
		return nil, nil
	case cur != nil && cur.version == version:
		return cur, nil
	}
	rows, err := s.query(ctx, "tombstones", fmt.Sprintf("SELECT fingerprint, mint, maxt, seq FROM %s WHERE tenant = %s%s", s.tombTable(false), tenant, s.tombSettings()))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	tb := &tombs{fetched: fetched, version: version, byFP: map[uint64]storage.Intervals{}}
	seen := map[storage.Interval]bool{}
	var fp, seq uint64
	var mint, maxt int64
	for rows.Next() {
		if err := rows.Scan(&fp, &mint, &maxt, &seq); err != nil {
			return nil, s.readFailed("tombstones", fmt.Errorf("read tombstones: %w", err))
		}
		iv := storage.Interval{Mint: mint, Maxt: maxt}
		tb.byFP[fp] = tb.byFP[fp].Add(iv)
		if !seen[iv] {
			seen[iv] = true
			tb.ranges = append(tb.ranges, iv)
		}
		tb.maxSeq = max(tb.maxSeq, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, s.readFailed("tombstones", fmt.Errorf("read tombstones: %w", err))
	}
	slices.SortFunc(tb.ranges, func(a, b storage.Interval) int {
		if a.Mint != b.Mint {
			return cmp.Compare(a.Mint, b.Mint)
		}
		return cmp.Compare(a.Maxt, b.Maxt)
	})
	s.setTombs(id, tb)
	return tb, nil
}

// setTombs caches tb unless a read that began later cached its own: a
// read that began before a deletion returned never hides it from one that
// began after.
func (s *Store) setTombs(id tenancy.ID, tb *tombs) {
	s.deleted.mu.Lock()
	defer s.deleted.mu.Unlock()
	if cur := s.deleted.byTenant[id]; cur != nil && cur.fetched.After(tb.fetched) {
		return
	}
	if s.deleted.byTenant == nil {
		s.deleted.byTenant = map[tenancy.ID]*tombs{}
	}
	s.deleted.byTenant[id] = tb
}

// lastHourWithin is the last hour whose every millisecond is at most maxt.
func lastHourWithin(maxt int64) int64 {
	h := (maxt - (msPerHour - 1)) / msPerHour
	if (maxt-(msPerHour-1))%msPerHour < 0 {
		h--
	}
	return h
}

// tombCond is the condition, appended to a WHERE clause over the series
// table (" AND ..."), that leaves out the series rows of tenant id whose
// samples all lie in one of its deleted ranges: a row holds samples from
// its min_ts to the end of its hour. "" when the tenant has no
// tombstones (as of the last refresh).
func (s *Store) tombCond(id tenancy.ID) string {
	tb := s.tombsOf(id)
	if tb == nil {
		return ""
	}
	var b strings.Builder
	for _, r := range tb.ranges {
		fmt.Fprintf(&b, " AND NOT (min_ts >= %d AND hour <= %d AND fingerprint IN (SELECT fingerprint FROM %s WHERE tenant = %s AND mint = %d AND maxt = %d))",
			r.Mint, lastHourWithin(r.Maxt), s.tombTable(s.schema.cluster != ""), quote(string(id)), r.Mint, r.Maxt)
	}
	return b.String()
}

// deletedOf returns the deleted ranges of a series of tenant id.
func deletedOf(id tenancy.ID, tb *tombs) storage.DeletedOf {
	var buf []byte
	return func(lset labels.Labels) storage.Intervals {
		var fp uint64
		fp, buf = fingerprint(id, lset, buf)
		return tb.byFP[fp]
	}
}

// Timestamps of a deletion are clamped to ±2^62 ms (146 million years),
// so that their SQL literals stay plain Int64.
const deleteBound = int64(1) << 62

// DeleteSeries deletes the samples in [req.Start, req.End] of the
// tenant's series matching any of req.Matchers.
func (ts *tenantStore) DeleteSeries(ctx context.Context, req storage.DeleteRequest) (storage.DeleteResult, error) {
	s := ts.s
	var res storage.DeleteResult
	start, end := max(req.Start, -deleteBound), min(req.End, deleteBound)
	if start > end {
		return res, nil
	}
	s.deleted.opMu.Lock()
	defer s.deleted.opMu.Unlock()
	if _, err := s.refreshTombs(ctx, ts.id); err != nil {
		return res, err
	}
	type found struct {
		lset  labels.Labels
		whole bool
	}
	matched := map[uint64]found{}
	h1, h2 := hourOf(start), hourOf(end)
	for _, g := range matcherGroups(req.Matchers) {
		sql := fmt.Sprintf("SELECT fingerprint, %s, min(min_ts), max(hour) FROM %s WHERE tenant = %s AND (%s)%s GROUP BY fingerprint HAVING countIf(hour >= %d AND hour <= %d AND min_ts <= %d) > 0",
			labelPairsExpr, s.schema.table(seriesTable), quote(string(ts.id)), g.where, s.tombCond(ts.id), h1, h2, end)
		if g.exact && req.MaxSeries > 0 {
			sql += " LIMIT " + strconv.Itoa(req.MaxSeries+1)
		}
		// Stopping early cancels the query: closing its rows would read them all.
		qctx, cancel := context.WithCancel(ctx)
		rows, err := s.query(qctx, "delete_series", sql)
		if err != nil {
			cancel()
			return res, err
		}
		var (
			fp      uint64
			pairs   string
			minTS   int64
			maxHour int32
			b       labels.ScratchBuilder
		)
		for rows.Next() {
			if err := rows.Scan(&fp, &pairs, &minTS, &maxHour); err != nil {
				cancel()
				rows.Close()
				return res, s.readFailed("delete_series", fmt.Errorf("read series: %w", err))
			}
			if err := decodeLabelPairs(pairs, &b); err != nil {
				cancel()
				rows.Close()
				return res, s.readFailed("delete_series", fmt.Errorf("read series %d: %w", fp, err))
			}
			lset := b.Labels()
			if !g.match(lset) {
				continue
			}
			matched[fp] = found{lset: lset, whole: start <= minTS && end >= hourEnd(maxHour)}
			if req.MaxSeries > 0 && len(matched) > req.MaxSeries {
				break // refused below: the rest need not be read
			}
		}
		err = rows.Err()
		cancel()
		rows.Close()
		if req.MaxSeries > 0 && len(matched) > req.MaxSeries {
			return res, &storage.DeleteLimitError{Matched: len(matched), Limit: req.MaxSeries}
		}
		if err != nil {
			return res, s.readFailed("delete_series", fmt.Errorf("read series: %w", err))
		}
	}
	if len(matched) == 0 {
		return res, nil
	}
	seq := uint64(time.Now().UnixNano())
	ictx := s.insertContext(ctx)
	batch, err := s.conn.PrepareBatch(ictx, "INSERT INTO "+s.tombTable(false)+" (tenant, fingerprint, mint, maxt, whole, seq)")
	if err != nil {
		return res, unavailable(fmt.Errorf("insert tombstones: %w", err))
	}
	var forgotten []forgottenSeries
	for fp, f := range matched {
		var whole uint8
		if f.whole {
			whole = 1
			forgotten = append(forgotten, forgottenSeries{fingerprint: fp, lset: f.lset})
		}
		if err := batch.Append(string(ts.id), fp, start, end, whole, seq); err != nil {
			_ = batch.Abort()
			return res, fmt.Errorf("insert tombstones: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return res, unavailable(fmt.Errorf("insert tombstones: %w", err))
	}
	// Answer once the reads see the deletion: on a replicated cluster the
	// insert may have gone to a replica other than the one reads take
	// (tombSettings), which has it after replication.
	for wait := time.Now().Add(deleteVisibleWait); ; {
		tb, err := s.refreshTombs(ctx, ts.id)
		if err == nil && tb != nil && tb.maxSeq >= seq {
			break
		}
		if time.Now().After(wait) || ctx.Err() != nil {
			s.logger.Warn("delete_series: the tombstones are not visible to reads yet", slog.Any("err", err), slog.Duration("waited", deleteVisibleWait))
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(forgotten) > 0 {
		if err := s.forgetSeries(ctx, ts.id, forgotten); err != nil {
			s.logger.Warn("forget deleted series in the cardinality statistics", slog.Any("err", err))
		}
	}
	res.Series, res.Whole = len(matched), len(forgotten)
	return res, nil
}

// CleanTombstones applies the tenant's tombstones to the samples and
// series tables, then deletes them.
func (ts *tenantStore) CleanTombstones(ctx context.Context) error {
	_, err := ts.s.cleanTenant(ctx, ts.id)
	return err
}

// cleanDeletions is the background pass: it cleans the tombstones of
// every tenant with tombstones older than cleanAfter.
func (s *Store) cleanDeletions(ctx context.Context) {
	before := uint64(time.Now().Add(-cleanAfter).UnixNano())
	tenants, err := s.queryStringsKind(ctx, "tombstones", fmt.Sprintf("SELECT DISTINCT tenant FROM %s WHERE seq < %d", s.tombTable(false), before))
	if err != nil {
		if ctx.Err() == nil {
			s.logger.Warn("list tombstones", slog.Any("err", err))
		}
		return
	}
	for _, t := range tenants {
		n, err := s.cleanTenant(ctx, tenancy.ID(t))
		if err != nil {
			if ctx.Err() == nil {
				s.logger.Warn("clean tombstones", slog.String("tenant", t), slog.Any("err", err))
			}
			continue
		}
		s.logger.Info("cleaned tombstones", slog.String("tenant", t), slog.Int("ranges", n))
	}
}

// cleanTenant runs, per deleted range of the tenant, a mutation deleting
// the range's samples of its series and one deleting their series rows
// that held only deleted samples; once they are done on every node, the
// tombstones applied are deleted. It returns how many ranges it applied.
func (s *Store) cleanTenant(ctx context.Context, id tenancy.ID) (int, error) {
	s.deleted.opMu.Lock()
	defer s.deleted.opMu.Unlock()
	tb, err := s.refreshTombs(ctx, id)
	if err != nil || tb == nil {
		return 0, err
	}
	stmts, drop := s.cleanStatements(id, tb)
	if err := s.mutate(ctx, stmts); err != nil {
		return 0, fmt.Errorf("clean tombstones: %w", err)
	}
	if err := s.mutate(ctx, []string{drop}); err != nil {
		return 0, fmt.Errorf("drop tombstones: %w", err)
	}
	if _, err := s.refreshTombs(ctx, id); err != nil {
		return len(tb.ranges), err
	}
	return len(tb.ranges), nil
}

// cleanStatements are the mutations applying tb, the tombstones of tenant
// id, to the local samples and series tables, and the one deleting them.
func (s *Store) cleanStatements(id tenancy.ID, tb *tombs) (apply []string, drop string) {
	tenant := quote(string(id))
	local := s.tombTable(true)
	for _, r := range tb.ranges {
		fps := fmt.Sprintf("SELECT fingerprint FROM %s WHERE tenant = %s AND mint = %d AND maxt = %d AND seq <= %d", local, tenant, r.Mint, r.Maxt, tb.maxSeq)
		apply = append(apply,
			fmt.Sprintf("ALTER TABLE %s DELETE WHERE tenant = %s AND ts >= %d AND ts <= %d AND fingerprint IN (%s)",
				s.schema.table(s.schema.storageTable(samplesTable)), tenant, r.Mint, r.Maxt, fps),
			fmt.Sprintf("ALTER TABLE %s DELETE WHERE tenant = %s AND min_ts >= %d AND hour <= %d AND fingerprint IN (%s)",
				s.schema.table(s.schema.storageTable(seriesTable)), tenant, r.Mint, lastHourWithin(r.Maxt), fps))
		if d1, d2 := ceilDay(r.Mint), floorDay(r.Maxt+1)-1; d1 <= d2 { // the label index's wholly deleted days (schema_index.go)
			apply = append(apply, fmt.Sprintf("ALTER TABLE %s DELETE WHERE tenant = %s AND day >= %d AND day <= %d AND fingerprint IN (%s)",
				s.schema.table(s.schema.storageTable(indexTable)), tenant, d1, d2, fps))
		}
	}
	return apply, fmt.Sprintf("ALTER TABLE %s DELETE WHERE tenant = %s AND seq <= %d", local, tenant, tb.maxSeq)
}

// mutate runs mutations on every node (on the local tables) and waits for
// them to finish there.
func (s *Store) mutate(ctx context.Context, stmts []string) error {
	return s.onEachNode(ctx, func(conn driver.Conn) error {
		for _, stmt := range stmts {
			if err := conn.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("%w\n%s", err, stmt)
			}
		}
		return s.waitNodeMutations(ctx, conn)
	})
}

// waitNodeMutations waits until the node has no unfinished mutation of
// Luminate's database left, or ctx ends.
func (s *Store) waitNodeMutations(ctx context.Context, conn driver.Conn) error {
	q := fmt.Sprintf("SELECT toString(count()) FROM system.mutations WHERE database = %s AND is_done = 0", quote(s.schema.db))
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		n, err := s.queryStrings(ctx, conn, q)
		if err != nil {
			return fmt.Errorf("read mutations: %w", err)
		}
		if len(n) == 0 || n[0] == "0" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// deletedQuerier is the querier of a tenant view: it refreshes the
// tenant's tombstones before each read and hides what they delete.
type deletedQuerier struct {
	q  *querier
	ts *tenantStore
}

func (d *deletedQuerier) Close() error { return d.q.Close() }

func (d *deletedQuerier) Select(ctx context.Context, sortSeries bool, hints *promstorage.SelectHints, ms ...*labels.Matcher) promstorage.SeriesSet {
	tb, err := d.ts.s.refreshTombs(ctx, d.ts.id)
	if err != nil {
		return promstorage.ErrSeriesSet(err)
	}
	if tb == nil {
		return d.q.Select(ctx, sortSeries, hints, ms...)
	}
	dq := storage.DeletedQuerier{Querier: d.q, Of: deletedOf(d.ts.id, tb), Mint: d.q.mint, Maxt: d.q.maxt}
	return dq.Select(ctx, sortSeries, hints, ms...)
}

func (d *deletedQuerier) LabelNames(ctx context.Context, hints *promstorage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if _, err := d.ts.s.refreshTombs(ctx, d.ts.id); err != nil {
		return nil, nil, err
	}
	return d.q.LabelNames(ctx, hints, ms...)
}

func (d *deletedQuerier) LabelValues(ctx context.Context, name string, hints *promstorage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if _, err := d.ts.s.refreshTombs(ctx, d.ts.id); err != nil {
		return nil, nil, err
	}
	return d.q.LabelValues(ctx, name, hints, ms...)
}

// deletedChunkQuerier is deletedQuerier for chunks (remote read).
type deletedChunkQuerier struct {
	q  *chunkQuerier
	ts *tenantStore
}

func (d *deletedChunkQuerier) Close() error { return d.q.Close() }

func (d *deletedChunkQuerier) Select(ctx context.Context, sortSeries bool, hints *promstorage.SelectHints, ms ...*labels.Matcher) promstorage.ChunkSeriesSet {
	tb, err := d.ts.s.refreshTombs(ctx, d.ts.id)
	if err != nil {
		return promstorage.ErrChunkSeriesSet(err)
	}
	if tb == nil {
		return d.q.Select(ctx, sortSeries, hints, ms...)
	}
	return storage.ChunksWithoutDeleted(d.q.Select(ctx, sortSeries, hints, ms...), deletedOf(d.ts.id, tb), d.q.mint, d.q.maxt)
}

func (d *deletedChunkQuerier) LabelNames(ctx context.Context, hints *promstorage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if _, err := d.ts.s.refreshTombs(ctx, d.ts.id); err != nil {
		return nil, nil, err
	}
	return d.q.LabelNames(ctx, hints, ms...)
}

func (d *deletedChunkQuerier) LabelValues(ctx context.Context, name string, hints *promstorage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if _, err := d.ts.s.refreshTombs(ctx, d.ts.id); err != nil {
		return nil, nil, err
	}
	return d.q.LabelValues(ctx, name, hints, ms...)
}
