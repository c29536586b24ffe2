package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/luminate-io/luminate/tenancy"
)

// Reads (see doc.go): series are resolved first from the series table
// (matchers pushed down as SQL), then their samples are read by (tenant,
// fingerprint, time), one row per series holding its samples as arrays,
// duplicates resolved by part order. No JOIN: sets of fingerprints are literal lists or IN
// subqueries.

// inListMax is the most fingerprints sent as a literal IN list (about 20
// bytes each; ClickHouse parses at most max_query_size, 256 KiB, of SQL).
const inListMax = 4000

func (ts *tenantStore) Querier(mint, maxt int64) (promstorage.Querier, error) {
	return &querier{ts: ts, mint: mint, maxt: maxt}, nil
}

func (ts *tenantStore) ChunkQuerier(mint, maxt int64) (promstorage.ChunkQuerier, error) {
	return &chunkQuerier{querier{ts: ts, mint: mint, maxt: maxt}}, nil
}

// querier reads one tenant's data within [mint, maxt]. Not safe for
// concurrent use (as in Prometheus).
type querier struct {
	ts         *tenantStore
	mint, maxt int64
}

func (q *querier) Close() error { return nil }

func (q *querier) tenantCond() string { return "tenant = " + quote(string(q.ts.id)) }

func (q *querier) table(name string) string { return q.ts.s.schema.table(name) }

// subTable names a table inside an IN subquery. In cluster mode that is
// the local table: the outer query runs on every shard against its local
// tables and so does the subquery, which is exact because a series' rows
// and samples share a shard (both tables are sharded by fingerprint).
func (q *querier) subTable(name string) string {
	return q.ts.s.schema.table(q.ts.s.schema.storageTable(name))
}

// seriesWhere is the WHERE clause selecting rows of the series table of
// series matching ms in hours overlapping [mint, maxt]: a superset of the
// series with samples in the range.
func (q *querier) seriesWhere(mint, maxt int64, ms []*labels.Matcher) string {
	return fmt.Sprintf("%s AND hour >= %d AND hour <= %d AND %s", q.tenantCond(), hourOf(mint), hourOf(maxt), matchersSQL(ms))
}

// exactSeriesWhere is like seriesWhere but selects only series with a
// sample inside [mint, maxt]. A series row records the earliest sample of
// its hour (min_ts); each row whose min_ts lies in the range proves a
// sample there, and a row whose min_ts lies after the range proves none in
// its hour. Only rows of the first hour with min_ts before mint are
// undecided: for the series nothing else decides, their samples in
// [mint, end of that hour] are checked. For a live series queried up to
// now that set is empty, so the check reads no samples.
func (q *querier) exactSeriesWhere(mint, maxt int64, ms []*labels.Matcher) string {
	base := q.seriesWhere(mint, maxt, ms)
	proven := fmt.Sprintf("(min_ts >= %d AND min_ts <= %d)", mint, maxt)
	h1 := hourOf(mint)
	if hourStart(h1) >= mint {
		return base + " AND " + proven // no row has min_ts before mint
	}
	undecided := fmt.Sprintf("SELECT fingerprint FROM %s WHERE %s AND hour = %d AND min_ts < %d AND %s AND fingerprint NOT IN (SELECT fingerprint FROM %s WHERE %s AND %s)",
		q.subTable(seriesTable), q.tenantCond(), h1, mint, matchersSQL(ms), q.subTable(seriesTable), base, proven)
	checked := fmt.Sprintf("SELECT fingerprint FROM %s WHERE %s AND ts >= %d AND ts <= %d AND fingerprint IN (%s)",
		q.subTable(samplesTable), q.tenantCond(), mint, min(maxt, hourEnd(h1)), undecided)
	return base + " AND (" + proven + " OR fingerprint IN (" + checked + "))"
}

// hourStart and hourEnd are the first and last millisecond of hour h.
func hourStart(h int32) int64 { return int64(h) * msPerHour }
func hourEnd(h int32) int64   { return int64(h)*msPerHour + msPerHour - 1 }

// selectRange narrows the querier's range to the hints' one.
func (q *querier) selectRange(hints *promstorage.SelectHints) (int64, int64) {
	mint, maxt := q.mint, q.maxt
	if hints != nil && (hints.Start != 0 || hints.End != 0) {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	return mint, maxt
}

// resolved is a series found in the series table.
type resolved struct {
	fp   uint64
	lset labels.Labels
}

// resolveSeries returns the series the WHERE clause selects that match
// every matcher (rechecked here with Prometheus' own matching).
func (q *querier) resolveSeries(ctx context.Context, where string, ms []*labels.Matcher, hints *promstorage.SelectHints) ([]resolved, error) {
	sql := fmt.Sprintf("SELECT fingerprint, any(label_names), any(label_values) FROM %s WHERE %s GROUP BY fingerprint", q.table(seriesTable), where)
	rows, err := q.ts.s.query(ctx, "series", sql)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var (
		out           []resolved
		names, values []string
		b             labels.ScratchBuilder
	)
	for rows.Next() {
		var fp uint64
		if err := rows.Scan(&fp, &names, &values); err != nil {
			return nil, fmt.Errorf("read series: %w", err)
		}
		b.Reset()
		for i := range names {
			b.Add(names[i], values[i])
		}
		b.Sort()
		lset := b.Labels()
		if !matchesAll(lset, ms) {
			continue
		}
		if hints != nil && hints.ShardCount > 0 && labels.StableHash(lset)%hints.ShardCount != hints.ShardIndex {
			continue
		}
		out = append(out, resolved{fp, lset})
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable(fmt.Errorf("read series: %w", err))
	}
	return out, nil
}

func matchesAll(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

func (q *querier) Select(ctx context.Context, sortSeries bool, hints *promstorage.SelectHints, ms ...*labels.Matcher) promstorage.SeriesSet {
	mint, maxt := q.selectRange(hints)
	if mint > maxt {
		return promstorage.EmptySeriesSet()
	}
	if hints != nil && hints.Func == "series" {
		list, err := q.resolveSeries(ctx, q.exactSeriesWhere(mint, maxt, ms), ms, hints)
		if err != nil {
			return promstorage.ErrSeriesSet(err)
		}
		slices.SortFunc(list, func(a, b resolved) int { return labels.Compare(a.lset, b.lset) })
		if hints.Limit > 0 && len(list) > hints.Limit {
			list = list[:hints.Limit]
		}
		return &labelsOnlySet{list: list}
	}
	list, err := q.resolveSeries(ctx, q.seriesWhere(mint, maxt, ms), ms, hints)
	if err != nil {
		return promstorage.ErrSeriesSet(err)
	}
	if len(list) == 0 {
		return promstorage.EmptySeriesSet()
	}
	set := &sampleSet{q: q, ctx: ctx, mint: mint, maxt: maxt, sorted: sortSeries, ms: ms, byFP: make(map[uint64]int, len(list))}
	if hints != nil {
		set.limit = hints.Limit
	}
	if sortSeries {
		slices.SortFunc(list, func(a, b resolved) int { return labels.Compare(a.lset, b.lset) })
	} else {
		slices.SortFunc(list, func(a, b resolved) int { return cmpUint64(a.fp, b.fp) })
	}
	set.list = list
	for i, r := range list {
		set.byFP[r.fp] = i
	}
	return set
}

func cmpUint64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// sampleSet streams the samples of resolved series, one query per batch of
// series (or one query for all when order does not matter), one result
// row per series.
type sampleSet struct {
	q          *querier
	ctx        context.Context
	mint, maxt int64
	sorted     bool
	ms         []*labels.Matcher
	list       []resolved
	byFP       map[uint64]int
	limit      int

	next int // first series of the next batch
	rows driver.Rows
	// A row read ahead: the first of the next series.
	pending bool
	pfp     uint64
	pt      int64
	pv      float64
	cur     *memSeries
	emitted int
	err     error
}

func (s *sampleSet) Next() bool {
	if s.err != nil || (s.limit > 0 && s.emitted >= s.limit) {
		s.closeRows()
		return false
	}
	for {
		if s.rows == nil {
			if s.next >= len(s.list) {
				return false
			}
			if err := s.startBatch(); err != nil {
				s.err = err
				return false
			}
		}
		// Rows come by series, then time, then part: collect one series,
		// keeping of equal times the last (the newest part's).
		var (
			fp   uint64
			ts   []int64
			vals []float64
		)
		if s.pending {
			fp, ts, vals = s.pfp, append(ts, s.pt), append(vals, s.pv)
			s.pending = false
		}
		for s.rows.Next() {
			var (
				rfp uint64
				t   int64
				v   float64
			)
			if err := s.rows.Scan(&rfp, &t, &v); err != nil {
				s.err = fmt.Errorf("read samples: %w", err)
				s.closeRows()
				return false
			}
			switch {
			case len(ts) == 0:
				fp = rfp
			case rfp != fp:
				s.pending, s.pfp, s.pt, s.pv = true, rfp, t, v
			case t == ts[len(ts)-1]:
				vals[len(vals)-1] = v
				continue
			}
			if s.pending {
				break
			}
			ts, vals = append(ts, t), append(vals, v)
		}
		if !s.pending {
			err := s.rows.Err()
			s.closeRows()
			if err != nil {
				s.err = unavailable(fmt.Errorf("read samples: %w", err))
				return false
			}
		}
		if len(ts) == 0 {
			continue
		}
		i, ok := s.byFP[fp]
		if !ok {
			continue // a series the Go-side matcher check dropped
		}
		s.cur = &memSeries{lset: s.list[i].lset, ts: ts, vals: vals}
		s.emitted++
		return true
	}
}

// startBatch sends the samples query of the next batch of series.
func (s *sampleSet) startBatch() error {
	tenant := s.q.tenantCond()
	var fpCond, order string
	switch {
	case !s.sorted && len(s.list) > inListMax:
		// Unordered: one query for all, the fingerprint set built by
		// ClickHouse from the series table.
		fpCond = fmt.Sprintf("fingerprint IN (SELECT fingerprint FROM %s WHERE %s)", s.q.subTable(seriesTable), s.q.seriesWhere(s.mint, s.maxt, s.ms))
		order = "fingerprint"
		s.next = len(s.list)
	default:
		end := min(s.next+inListMax/2, len(s.list))
		batch := s.list[s.next:end]
		s.next = end
		fps := make([]uint64, len(batch))
		for i, r := range batch {
			fps[i] = r.fp
		}
		list := uint64List(fps)
		fpCond = "fingerprint IN (" + list + ")"
		order = "fingerprint"
		if s.sorted {
			ranks := make([]string, len(batch))
			for i := range ranks {
				ranks[i] = strconv.Itoa(i)
			}
			order = fmt.Sprintf("transform(fingerprint, [%s], [%s], %d)", list, strings.Join(ranks, ","), len(batch))
		}
	}
	// Plain rows, by series, time and part: parts of a partition are
	// numbered in insert order (_part_index) and each holds a key once,
	// so the last row of equal times is the last written (Next keeps it).
	// This is what FINAL computes, without FINAL's cost on 18.x. (Rows,
	// not per-series arrays: the driver scans arrays element by element
	// through reflection.)
	sql := fmt.Sprintf("SELECT fingerprint, ts, %s FROM %s WHERE %s AND %s AND ts >= %d AND ts <= %d ORDER BY %s, ts, _part_index",
		s.q.ts.s.schema.valueExpr(), s.q.table(samplesTable), tenant, fpCond, s.mint, s.maxt, order)
	rows, err := s.q.ts.s.query(s.ctx, "samples", sql)
	if err != nil {
		return err
	}
	s.rows = rows
	return nil
}

func (s *sampleSet) closeRows() {
	s.pending = false
	if s.rows != nil {
		_ = s.rows.Close()
		s.rows = nil
	}
}

func (s *sampleSet) At() promstorage.Series { return s.cur }
func (s *sampleSet) Err() error {
	return s.err
}
func (s *sampleSet) Warnings() annotations.Annotations { return nil }

// labelsOnlySet is the result of a series listing: labels, no samples.
type labelsOnlySet struct {
	list []resolved
	i    int
}

func (s *labelsOnlySet) Next() bool {
	if s.i >= len(s.list) {
		return false
	}
	s.i++
	return true
}
func (s *labelsOnlySet) At() promstorage.Series {
	return &memSeries{lset: s.list[s.i-1].lset}
}
func (s *labelsOnlySet) Err() error                        { return nil }
func (s *labelsOnlySet) Warnings() annotations.Annotations { return nil }

// memSeries is one series' samples, in time order.
type memSeries struct {
	lset labels.Labels
	ts   []int64
	vals []float64
}

func (m *memSeries) Labels() labels.Labels { return m.lset }

func (m *memSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	if si, ok := it.(*sliceIterator); ok {
		si.reset(m.ts, m.vals)
		return si
	}
	si := &sliceIterator{}
	si.reset(m.ts, m.vals)
	return si
}

// sliceIterator iterates float samples held in two slices.
type sliceIterator struct {
	ts   []int64
	vals []float64
	i    int
}

func (it *sliceIterator) reset(ts []int64, vals []float64) { it.ts, it.vals, it.i = ts, vals, -1 }

func (it *sliceIterator) Next() chunkenc.ValueType {
	if it.i+1 >= len(it.ts) {
		it.i = len(it.ts)
		return chunkenc.ValNone
	}
	it.i++
	return chunkenc.ValFloat
}

func (it *sliceIterator) Seek(t int64) chunkenc.ValueType {
	if it.i < 0 {
		it.i = 0
	}
	if it.i >= len(it.ts) {
		return chunkenc.ValNone
	}
	if it.ts[it.i] >= t {
		return chunkenc.ValFloat
	}
	j, _ := slices.BinarySearch(it.ts[it.i:], t)
	it.i += j
	if it.i >= len(it.ts) {
		return chunkenc.ValNone
	}
	return chunkenc.ValFloat
}

func (it *sliceIterator) At() (int64, float64) { return it.ts[it.i], it.vals[it.i] }
func (it *sliceIterator) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	panic("sliceIterator holds floats only")
}

func (it *sliceIterator) AtFloatHistogram(*histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	panic("sliceIterator holds floats only")
}
func (it *sliceIterator) AtT() int64  { return it.ts[it.i] }
func (it *sliceIterator) AtST() int64 { return 0 }
func (it *sliceIterator) Err() error  { return nil }

// LabelNames returns the label names of the tenant's series matching ms
// with samples in the querier's range, sorted.
func (q *querier) LabelNames(ctx context.Context, hints *promstorage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	sql := fmt.Sprintf("SELECT DISTINCT arrayJoin(label_names) AS n FROM %s WHERE %s ORDER BY n%s",
		q.table(seriesTable), q.exactSeriesWhere(q.mint, q.maxt, ms), limitClause(hints))
	out, err := q.ts.s.queryStringsKind(ctx, "label_names", sql)
	return out, nil, err
}

// LabelValues returns the values of label name on the tenant's series
// matching ms with samples in the querier's range, sorted.
func (q *querier) LabelValues(ctx context.Context, name string, hints *promstorage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if name == "" || name == tenancy.Label {
		return []string{}, nil, nil
	}
	sql := fmt.Sprintf("SELECT DISTINCT v FROM (SELECT %s AS v FROM %s WHERE %s) WHERE v != '' ORDER BY v%s",
		labelExpr(name), q.table(seriesTable), q.exactSeriesWhere(q.mint, q.maxt, ms), limitClause(hints))
	out, err := q.ts.s.queryStringsKind(ctx, "label_values", sql)
	return out, nil, err
}

func limitClause(hints *promstorage.LabelHints) string {
	if hints == nil || hints.Limit <= 0 {
		return ""
	}
	return " LIMIT " + strconv.Itoa(hints.Limit)
}

// chunkQuerier serves the querier's series as XOR chunks.
type chunkQuerier struct{ querier }

func (q *chunkQuerier) Select(ctx context.Context, sortSeries bool, hints *promstorage.SelectHints, ms ...*labels.Matcher) promstorage.ChunkSeriesSet {
	return promstorage.NewSeriesSetToChunkSet(q.querier.Select(ctx, sortSeries, hints, ms...))
}

// query runs a read query, recording its metrics; errors wrap
// storage.ErrUnavailable when the server cannot answer.
func (s *Store) query(ctx context.Context, kind, sql string) (driver.Rows, error) {
	start := time.Now()
	if s.queryLog != nil {
		s.queryLog(kind, sql)
	}
	s.metrics.queries.WithLabelValues(kind).Inc()
	rows, err := s.conn.Query(ctx, sql)
	if err != nil && isConnError(err) {
		rows, err = s.conn.Query(ctx, sql)
	}
	s.metrics.queryDuration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	if err != nil {
		s.metrics.queryErrors.WithLabelValues(kind).Inc()
		return nil, unavailable(fmt.Errorf("query %s: %w", kind, err))
	}
	return rows, nil
}

func (s *Store) queryStringsKind(ctx context.Context, kind, sql string) ([]string, error) {
	rows, err := s.query(ctx, kind, sql)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("query %s: %w", kind, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable(fmt.Errorf("query %s: %w", kind, err))
	}
	return out, nil
}
