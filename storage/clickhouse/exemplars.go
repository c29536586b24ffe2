package clickhouse

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// Exemplars are kept per tenant up to its bound (Config.ExemplarLimits),
// newest first by timestamp. The bound is applied at read time and the
// excess deleted later: reads take a tenant's newest max rows (a cutoff
// found by ORDER BY ts DESC LIMIT max-1, 1 on the tenant's prefix of the
// key), so the oldest beyond the bound are never returned; every
// auxCleanupInterval, tenants holding more than half again their bound
// have their rows before the cutoff deleted, in one ALTER TABLE DELETE for
// all of them. A mutation rewrites the parts it touches, which is why it
// is rare and batched, not run per insert; a TTL cannot express a count,
// and a lightweight DELETE does not exist on 18.16. Between cleanups the
// table holds at most about 1.5 times the bounds plus what arrived since.

// exemplarKey is what the duplicate and order checks need of an exemplar.
type exemplarKey struct {
	ts    int64
	value float64
	hash  uint64 // labels.Labels.Hash of its labels
}

// exemplarRow is one row of the exemplars table to insert.
type exemplarRow struct {
	fp             uint64
	key            exemplarKey
	hasTs          bool
	names, values  []string // the exemplar's labels
	metric         string
	snames, svalue []string // the series' labels
}

// exemplarCacheCap is the most series whose newest exemplar a tenant's
// cache holds: a tenant keeps at most limit exemplars, so at most limit
// series have one.
func exemplarCacheCap(limit int) int {
	if limit > 0 {
		return limit
	}
	return 1 << 20
}

// exemplarLimit is the tenant's exemplar bound, 0 for none.
func (s *Store) exemplarLimit(id tenancy.ID) int {
	if f := s.cfg.ExemplarLimits; f != nil {
		return max(f(id), 0)
	}
	return 0
}

// checkExemplar applies Prometheus' per-series rules (tsdb/exemplar.go,
// with no out-of-order window) against the series' newest exemplar.
func checkExemplar(newest exemplarKey, e exemplarKey) error {
	if e == newest {
		return promstorage.ErrDuplicateExemplar
	}
	if e.ts < newest.ts ||
		e.ts == newest.ts && e.value < newest.value ||
		e.ts == newest.ts && e.value == newest.value && e.hash < newest.hash {
		return promstorage.ErrOutOfOrderExemplar
	}
	return nil
}

// addExemplars checks es, the exemplars of series fp (labels ls), and adds
// those that pass to the transaction; it returns the refused ones.
func (t *auxTxn) addExemplars(tenant *auxTenant, fp uint64, ls labels.Labels, es []exemplar.Exemplar) []promstorage.ExemplarError {
	var errs []promstorage.ExemplarError
	newest, ok := t.newest[fp]
	if !ok {
		newest, ok = tenant.newestOf(fp)
	}
	var metric string
	var snames, svalues []string
	for i, e := range es {
		e.Labels = e.Labels.WithoutEmpty()
		if err := storage.ValidateExemplar(e); err != nil {
			errs = append(errs, promstorage.ExemplarError{Index: i, Err: err})
			continue
		}
		k := exemplarKey{ts: e.Ts, value: e.Value, hash: e.Labels.Hash()}
		if ok {
			if err := checkExemplar(newest, k); err != nil {
				if !errors.Is(err, promstorage.ErrDuplicateExemplar) {
					errs = append(errs, promstorage.ExemplarError{Index: i, Err: fmt.Errorf("%w: series %s, exemplar at %d older than the newest at %d", err, ls, e.Ts, newest.ts)})
				}
				continue
			}
		}
		if snames == nil {
			metric, snames, svalues = labelColumns(ls)
		}
		_, names, values := labelColumns(e.Labels)
		t.exemplars = append(t.exemplars, exemplarRow{fp: fp, key: k, hasTs: e.HasTs, names: names, values: values, metric: metric, snames: snames, svalue: svalues})
		newest, ok = k, true
	}
	if ok {
		if t.newest == nil {
			t.newest = map[uint64]exemplarKey{}
		}
		t.newest[fp] = newest
	}
	return errs
}

// labelColumns copies ls into name and value columns (without empty
// values), with the metric name.
func labelColumns(ls labels.Labels) (metric string, names, values []string) {
	names, values = make([]string, 0, ls.Len()), make([]string, 0, ls.Len())
	ls.Range(func(l labels.Label) {
		if l.Value == "" {
			return
		}
		n, v := strings.Clone(l.Name), strings.Clone(l.Value)
		if n == labels.MetricName {
			metric = v
		}
		names, values = append(names, n), append(values, v)
	})
	return metric, names, values
}

func (t *auxTenant) newestOf(fp uint64) (exemplarKey, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	k, ok := t.newest[fp]
	return k, ok
}

// storedExemplars records the newest exemplars of a committed transaction,
// keeping at most capacity series (an arbitrary one is forgotten to make
// room: forgetting only makes the order check accept more).
func (t *auxTenant) storedExemplars(newest map[uint64]exemplarKey, capacity int) {
	if len(newest) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.newest == nil {
		t.newest = map[uint64]exemplarKey{}
	}
	for fp, k := range newest {
		if cur, ok := t.newest[fp]; ok && checkExemplar(cur, k) != nil {
			continue // a concurrent commit stored a newer one
		}
		if _, ok := t.newest[fp]; !ok && len(t.newest) >= capacity {
			for old := range t.newest {
				delete(t.newest, old)
				break
			}
		}
		t.newest[fp] = k
	}
}

// loadExemplars fills the newest-exemplar cache from the table once, so
// that after a restart a re-sent exemplar is still a duplicate and an
// older one still refused.
func (t *auxTenant) loadExemplars(ctx context.Context, s *Store, capacity int) error {
	if t.exLoaded.Load() {
		return nil
	}
	// The series with the newest exemplars when there are more than fit.
	t.exLoadMu.Lock()
	defer t.exLoadMu.Unlock()
	if t.exLoaded.Load() {
		return nil
	}
	q := fmt.Sprintf("SELECT fingerprint, max(ts), argMax(value, ts), argMax(exemplar_hash, ts) FROM %s WHERE tenant = %s GROUP BY fingerprint ORDER BY max(ts) DESC, fingerprint LIMIT %d",
		s.schema.table(exemplarsTable), quote(string(t.id)), capacity)
	rows, err := s.query(ctx, "load_exemplars", q)
	if err != nil {
		return err
	}
	defer rows.Close()
	loaded := map[uint64]exemplarKey{}
	for rows.Next() {
		var fp uint64
		var k exemplarKey
		if err := rows.Scan(&fp, &k.ts, &k.value, &k.hash); err != nil {
			return s.readFailed("load_exemplars", fmt.Errorf("load exemplars of tenant %s: %w", t.id, err))
		}
		loaded[fp] = k
	}
	if err := rows.Err(); err != nil {
		return s.readFailed("load_exemplars", fmt.Errorf("load exemplars of tenant %s: %w", t.id, err))
	}
	t.mu.Lock()
	for fp, k := range t.newest { // committed while loading
		if cur, ok := loaded[fp]; !ok || checkExemplar(cur, k) == nil {
			loaded[fp] = k
		}
	}
	t.newest = loaded
	t.mu.Unlock()
	t.exLoaded.Store(true)
	return nil
}

// insertExemplars inserts the batch's exemplar rows.
func (x *auxStore) insertExemplars(ctx context.Context, batch []*auxReq) error {
	n := 0
	for _, r := range batch {
		n += len(r.exemplars)
	}
	if n == 0 {
		return nil
	}
	b, err := x.s.conn.PrepareBatch(ctx, "INSERT INTO "+x.s.schema.table(exemplarsTable)+
		" (tenant, ts, fingerprint, value, exemplar_hash, has_ts, exemplar_names, exemplar_values, metric_name, label_names, label_values)")
	if err != nil {
		return err
	}
	for _, r := range batch {
		for _, e := range r.exemplars {
			hasTs := uint8(0)
			if e.hasTs {
				hasTs = 1
			}
			if err := b.Append(r.tenant, e.key.ts, e.fp, e.key.value, e.key.hash, hasTs, e.names, e.values, e.metric, e.snames, e.svalue); err != nil {
				_ = b.Abort()
				return err
			}
		}
	}
	if err := b.Send(); err != nil {
		return err
	}
	x.s.metrics.insertedRows.WithLabelValues(exemplarsTable).Add(float64(n))
	return nil
}

// exemplarQuerier reads one tenant's exemplars.
type exemplarQuerier struct {
	ctx context.Context
	ts  *tenantStore
}

// exemplarCutoff returns the (ts, fingerprint) of the tenant's limit-th
// newest exemplar, ok false when it has no more than limit. Exemplars
// after it in (ts, fingerprint) order are the ones kept (with those of
// the same series and millisecond as the cutoff).
func (s *Store) exemplarCutoff(ctx context.Context, id tenancy.ID, limit int) (ts int64, fp uint64, ok bool, err error) {
	// DISTINCT: rows not yet merged (a retried insert) count once.
	q := fmt.Sprintf("SELECT ts, fingerprint FROM (SELECT DISTINCT ts, fingerprint, exemplar_hash, value FROM %s WHERE tenant = %s) ORDER BY ts DESC, fingerprint DESC LIMIT %d, 1",
		s.schema.table(exemplarsTable), quote(string(id)), limit-1)
	rows, err := s.query(ctx, "exemplar_cutoff", q)
	if err != nil {
		return 0, 0, false, err
	}
	defer rows.Close()
	if rows.Next() {
		if err := rows.Scan(&ts, &fp); err != nil {
			return 0, 0, false, s.readFailed("exemplar_cutoff", fmt.Errorf("read exemplar cutoff: %w", err))
		}
		ok = true
	}
	if err := rows.Err(); err != nil {
		return 0, 0, false, s.readFailed("exemplar_cutoff", fmt.Errorf("read exemplar cutoff: %w", err))
	}
	return ts, fp, ok, nil
}

// keptCond is the SQL condition of exemplars at or after the cutoff.
func keptCond(ts int64, fp uint64) string {
	return fmt.Sprintf("(ts > %d OR ts = %d AND fingerprint >= %d)", ts, ts, fp)
}

// Select returns the tenant's kept exemplars in [start, end] of the series
// matching any of the matcher sets (none: no series), by series in label
// order, each series' exemplars by time.
func (q *exemplarQuerier) Select(start, end int64, matchers ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	out := []exemplar.QueryResult{}
	if len(matchers) == 0 || start > end {
		return out, nil
	}
	s := q.ts.s
	where := []string{"tenant = " + quote(string(q.ts.id))}
	if start > math.MinInt64 {
		where = append(where, "ts >= "+strconv.FormatInt(start, 10))
	}
	if end < math.MaxInt64 {
		where = append(where, "ts <= "+strconv.FormatInt(end, 10))
	}
	if limit := s.exemplarLimit(q.ts.id); limit > 0 {
		cts, cfp, ok, err := s.exemplarCutoff(q.ctx, q.ts.id, limit)
		if err != nil {
			return nil, err
		}
		if ok {
			where = append(where, keptCond(cts, cfp))
		}
	}
	sets := make([]string, len(matchers))
	for i, ms := range matchers {
		pushed, _ := pushdown(ms)
		sets[i] = "(" + matchersSQL(pushed) + ")"
	}
	where = append(where, "("+strings.Join(sets, " OR ")+")")
	sql := fmt.Sprintf("SELECT fingerprint, ts, value, exemplar_hash, has_ts, exemplar_names, exemplar_values, label_names, label_values FROM %s WHERE %s ORDER BY fingerprint, ts, value, exemplar_hash",
		s.schema.table(exemplarsTable), strings.Join(where, " AND "))
	// rowID identifies a row of the select: equal ones are copies.
	type rowID struct {
		ts         int64
		bits, hash uint64
	}
	rows, err := s.query(q.ctx, "exemplars", sql)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var (
		fp, lastFp, hash uint64
		t                int64
		v                float64
		hasTs            uint8
		enames, evalues  []string
		snames, svalues  []string
		b                labels.ScratchBuilder
		cur              *exemplar.QueryResult
		skip             bool
		last             rowID
	)
	for rows.Next() {
		if err := rows.Scan(&fp, &t, &v, &hash, &hasTs, &enames, &evalues, &snames, &svalues); err != nil {
			return nil, s.readFailed("exemplars", fmt.Errorf("read exemplars: %w", err))
		}
		if cur == nil || fp != lastFp {
			if cur != nil && len(cur.Exemplars) > 0 {
				out = append(out, *cur)
			}
			lastFp, cur, skip = fp, &exemplar.QueryResult{}, false
			cur.SeriesLabels = columnsLabels(&b, snames, svalues)
			skip = !matchesSomeSet(cur.SeriesLabels, matchers)
			last = rowID{}
		} else if len(cur.Exemplars) > 0 && last == (rowID{t, math.Float64bits(v), hash}) {
			continue // an unmerged copy of the previous row (a NaN value too)
		}
		if skip {
			continue
		}
		last = rowID{t, math.Float64bits(v), hash}
		cur.Exemplars = append(cur.Exemplars, exemplar.Exemplar{Labels: columnsLabels(&b, enames, evalues), Value: v, Ts: t, HasTs: hasTs != 0})
	}
	if err := rows.Err(); err != nil {
		return nil, s.readFailed("exemplars", fmt.Errorf("read exemplars: %w", err))
	}
	if cur != nil && len(cur.Exemplars) > 0 {
		out = append(out, *cur)
	}
	slices.SortFunc(out, func(a, b exemplar.QueryResult) int { return labels.Compare(a.SeriesLabels, b.SeriesLabels) })
	return out, nil
}

// columnsLabels builds labels from name and value columns.
func columnsLabels(b *labels.ScratchBuilder, names, values []string) labels.Labels {
	b.Reset()
	for i, n := range names {
		if i < len(values) {
			b.Add(n, values[i])
		}
	}
	b.Sort()
	return b.Labels()
}

// matchesSomeSet reports whether lset matches every matcher of one of
// sets, as Prometheus' exemplar storage matches.
func matchesSomeSet(lset labels.Labels, sets [][]*labels.Matcher) bool {
	for _, ms := range sets {
		if matchesAll(lset, ms) {
			return true
		}
	}
	return false
}

// trimExemplars deletes, for every tenant holding more than half again
// its bound, the exemplars before its cutoff (and those older than its
// retention), in one mutation, on every node in cluster mode.
func (x *auxStore) trimExemplars(ctx context.Context, now time.Time) error {
	s := x.s
	def, over := s.cfg.policy().Retentions()
	retExpr, retMax := cutoffSQL(def, over, now) // per-tenant retention (retention.go)
	if s.cfg.ExemplarLimits == nil && retMax == math.MinInt64 {
		return nil
	}
	q := fmt.Sprintf("SELECT tenant, count(), countIf(ts < %s) FROM %s GROUP BY tenant", retExpr, s.schema.table(exemplarsTable))
	rows, err := s.query(ctx, "exemplar_counts", q)
	if err != nil {
		return err
	}
	type count struct {
		tenant    string
		rows, old uint64
	}
	var counts []count
	for rows.Next() {
		var c count
		if err := rows.Scan(&c.tenant, &c.rows, &c.old); err != nil {
			rows.Close()
			return fmt.Errorf("read exemplar counts: %w", err)
		}
		counts = append(counts, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read exemplar counts: %w", err)
	}
	var conds []string
	for _, c := range counts {
		id := tenancy.ID(c.tenant)
		var parts []string
		if c.old > 0 {
			parts = append(parts, fmt.Sprintf("ts < %d", s.retentionCutoff(id, now)))
		}
		if limit := s.exemplarLimit(id); limit > 0 && c.rows > uint64(limit+limit/2) {
			cts, cfp, ok, err := s.exemplarCutoff(ctx, id, limit)
			if err != nil {
				return err
			}
			if ok {
				parts = append(parts, "NOT "+keptCond(cts, cfp))
			}
		}
		if len(parts) > 0 {
			conds = append(conds, fmt.Sprintf("(tenant = %s AND (%s))", quote(c.tenant), strings.Join(parts, " OR ")))
		}
	}
	if len(conds) == 0 {
		return nil
	}
	slices.SortFunc(conds, cmp.Compare)
	return s.onEachNode(ctx, func(conn driver.Conn) error {
		alter := s.schema.exemplarDeleteSQL(conds)
		if err := conn.Exec(ctx, alter); err != nil {
			return fmt.Errorf("delete old exemplars: %w", err)
		}
		s.logger.Info("exemplar cleanup", slog.Int("tenants", len(conds)))
		return nil
	})
}

// exemplarDeleteSQL is the mutation deleting the exemplars that match any
// of conds.
func (s schema) exemplarDeleteSQL(conds []string) string {
	return fmt.Sprintf("ALTER TABLE %s DELETE WHERE %s", s.table(s.storageTable(exemplarsTable)), strings.Join(conds, " OR "))
}
