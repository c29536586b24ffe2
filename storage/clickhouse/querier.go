package clickhouse

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/bits"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// Reads (see doc.go): series are resolved first from the series table
// (matchers pushed down as SQL), then their samples are read by (tenant,
// fingerprint, time) in batches of series, duplicates resolved by part
// order. No JOIN: sets of fingerprints are literal lists or IN subqueries.

// inListMax is the most fingerprints sent as a literal IN list (about 20
// bytes each; ClickHouse parses at most max_query_size, 256 KiB, of SQL).
const inListMax = 4000

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
	return q.seriesWhereCond(mint, maxt, matchersSQL(ms))
}

// seriesWhereCond is seriesWhere of the series whose rows meet the SQL
// condition cond.
func (q *querier) seriesWhereCond(mint, maxt int64, cond string) string {
	return fmt.Sprintf("%s AND hour >= %d AND hour <= %d AND (%s)", q.tenantCond(), hourOf(mint), hourOf(maxt), cond) +
		q.ts.s.tombCond(q.ts.id) // without deleted series (delete.go)
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
	return q.exactSeriesWhereCond(mint, maxt, matchersSQL(ms))
}

// exactSeriesWhereCond is exactSeriesWhere of the series whose rows meet
// the SQL condition cond.
func (q *querier) exactSeriesWhereCond(mint, maxt int64, cond string) string {
	base := q.seriesWhereCond(mint, maxt, cond)
	proven := fmt.Sprintf("(min_ts >= %d AND min_ts <= %d)", mint, maxt)
	h1 := hourOf(mint)
	if hourStart(h1) >= mint {
		return base + " AND " + proven // no row has min_ts before mint
	}
	undecided := fmt.Sprintf("SELECT fingerprint FROM %s WHERE %s AND hour = %d AND min_ts < %d AND (%s) AND fingerprint NOT IN (SELECT fingerprint FROM %s WHERE %s AND %s)",
		q.subTable(seriesTable), q.tenantCond(), h1, mint, cond, q.subTable(seriesTable), base, proven)
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
	// hours is the number of its series rows in the range: at least the
	// number of hours in which it has samples there.
	hours int
}

// labelPairsExpr is a series' labels as one string of length-prefixed
// names and values ("8:__name__2:up3:job4:node"), which decodeLabelPairs
// reads: the driver scans a string at once, arrays element by element
// through reflection.
const labelPairsExpr = "arrayStringConcat(arrayMap((n, v) -> concat(toString(length(n)), ':', n, toString(length(v)), ':', v), any(label_names), any(label_values)))"

// maxSeries is the most series one query of the tenant may load
// (Config.MaxSeriesPerQuery); 0 means unlimited.
func (q *querier) maxSeries() int {
	if f := q.ts.s.cfg.MaxSeriesPerQuery; f != nil {
		return max(f(q.ts.id), 0)
	}
	return 0
}

// maxSamples is the most samples one query of the tenant may load
// (Config.MaxSamplesPerQuery); 0 means unlimited.
func (q *querier) maxSamples() int {
	if f := q.ts.s.cfg.MaxSamplesPerQuery; f != nil {
		return max(f(q.ts.id), 0)
	}
	return 0
}

// tooManySamples is the error of a select of more than n samples.
func tooManySamples(n int) error {
	return apierror.Limit(apierror.Execution, tenancy.PerTenant("--limits.max-samples-per-query", "max_samples_per_query"), "query would load more than %d samples", n)
}

// tooManySeries is the error of a select of more than n series.
func tooManySeries(n int) error {
	return apierror.Limit(apierror.Execution, tenancy.PerTenant("--limits.max-series-per-query", "max_series_per_query"), "query would load more than %d series", n)
}

// labelOrderExpr orders series rows as labels.Compare orders their
// labels: label_names are sorted, and arrays of (name, value) pairs
// compare pair by pair, bytewise, the shorter first when one is a prefix.
const labelOrderExpr = "arrayMap((n, v) -> [n, v], any(label_names), any(label_values))"

// resolveSeries returns the series the WHERE clause selects that match
// every matcher (rechecked here with Prometheus' own matching). When
// limit > 0 it reads at most limit+1 of them and reports over when there
// are more than limit: the caller's own count then fails the query
// without the store reading every series row first. exact says the WHERE
// clause selects exactly the matching series (every matcher was sent):
// the limit is then sent too, as a LIMIT, and when the hints ask for the
// first hints.Limit series the server orders them and sends no more:
// then first is set, and the series returned are the first in label
// order.
func (q *querier) resolveSeries(ctx context.Context, where string, match func(labels.Labels) bool, exact bool, hints *promstorage.SelectHints, limit int) (out []resolved, over, first bool, err error) {
	sharded := hints != nil && hints.ShardCount > 0
	sql := fmt.Sprintf("SELECT fingerprint, %s, count() FROM %s WHERE %s GROUP BY fingerprint", labelPairsExpr, q.table(seriesTable), where)
	sqlLimit := 0
	if exact && !sharded {
		if limit > 0 {
			sqlLimit = limit + 1
		}
		if hints != nil && hints.Limit > 0 {
			first = true
			sql += " ORDER BY " + labelOrderExpr
			if sqlLimit == 0 || hints.Limit < sqlLimit {
				sqlLimit = hints.Limit
			}
		}
	}
	limited := limit > 0 && sqlLimit == limit+1
	if sqlLimit > 0 {
		sql += " LIMIT " + strconv.Itoa(sqlLimit)
	}
	// Stopping early cancels the query: closing its rows would read them all.
	ctx, cancel := context.WithCancel(ctx)
	rows, err := q.ts.s.query(ctx, "series", sql)
	if err != nil {
		cancel()
		return nil, false, false, err
	}
	defer func() { cancel(); _ = rows.Close() }()
	var (
		fp, hours uint64
		pairs     string
		b         labels.ScratchBuilder
		read      int
	)
	dest := []any{&fp, &pairs, &hours}
	for rows.Next() {
		read++
		if err := rows.Scan(dest...); err != nil {
			return nil, false, false, q.ts.s.readFailed("series", fmt.Errorf("read series: %w", err))
		}
		if err := decodeLabelPairs(pairs, &b); err != nil {
			return nil, false, false, q.ts.s.readFailed("series", fmt.Errorf("read series %d: %w", fp, err))
		}
		lset := b.Labels()
		if !match(lset) {
			continue
		}
		if sharded && labels.StableHash(lset)%hints.ShardCount != hints.ShardIndex {
			continue
		}
		out = append(out, resolved{fp: fp, lset: lset, hours: int(hours)})
		if limit > 0 && len(out) > limit && sqlLimit == 0 {
			return out, true, first, nil // the rest unread (a limited query has no rest)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, false, false, q.ts.s.readFailed("series", fmt.Errorf("read series: %w", err))
	}
	// The server stopped at limit+1: whatever Go's recheck dropped, the
	// rows past it are unknown, so the select cannot be answered whole.
	return out, limit > 0 && (len(out) > limit || limited && read > limit), first, nil
}

// errLabelPairs reports a malformed labelPairsExpr string.
var errLabelPairs = errors.New("malformed label pairs")

// decodeLabelPairs resets b to the labels of a labelPairsExpr string,
// sorted.
func decodeLabelPairs(s string, b *labels.ScratchBuilder) error {
	b.Reset()
	next := func() (string, bool) {
		colon := strings.IndexByte(s, ':')
		if colon < 1 {
			return "", false
		}
		n, err := strconv.Atoi(s[:colon])
		if err != nil || n < 0 || n > len(s)-colon-1 {
			return "", false
		}
		v := s[colon+1 : colon+1+n]
		s = s[colon+1+n:]
		return v, true
	}
	for s != "" {
		name, ok := next()
		if !ok {
			return errLabelPairs
		}
		value, ok := next()
		if !ok {
			return errLabelPairs
		}
		b.Add(name, value)
	}
	b.Sort()
	return nil
}

// matcherFunc is matchesAll of ms.
func matcherFunc(ms []*labels.Matcher) func(labels.Labels) bool {
	return func(lset labels.Labels) bool { return matchesAll(lset, ms) }
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
	pushed, exact := pushdown(ms)
	limit := q.maxSeries()
	// Past the limit the series held are limit+1 of the selected ones,
	// unless the server sent the first ones: a select asking for the first
	// n fails then.
	var overErr error
	if hints != nil && hints.Func == "series" {
		list, over, first, err := q.resolveSeries(ctx, q.exactSeriesWhere(mint, maxt, pushed), matcherFunc(ms), exact, hints, limit)
		if err != nil {
			return promstorage.ErrSeriesSet(err)
		}
		if over {
			if hints.Limit > 0 && !first {
				return promstorage.ErrSeriesSet(tooManySeries(limit))
			}
			overErr = tooManySeries(limit)
		}
		slices.SortFunc(list, func(a, b resolved) int { return labels.Compare(a.lset, b.lset) })
		if hints.Limit > 0 && len(list) > hints.Limit {
			list = list[:hints.Limit]
		}
		return &labelsOnlySet{list: list, over: overErr}
	}
	list, over, first, err := q.resolveSeries(ctx, q.seriesWhere(mint, maxt, pushed), matcherFunc(ms), exact, hints, limit)
	if err != nil {
		return promstorage.ErrSeriesSet(err)
	}
	if over {
		if hints != nil && hints.Limit > 0 && !first {
			return promstorage.ErrSeriesSet(tooManySeries(limit))
		}
		overErr = tooManySeries(limit)
	}
	if len(list) == 0 {
		return promstorage.EmptySeriesSet()
	}
	set := &sampleSet{q: q, ctx: ctx, mint: mint, maxt: maxt, perHour: assumedPerHour, over: overErr, budget: q.maxSamples()}
	if hints != nil {
		set.limit = hints.Limit
	}
	if sortSeries {
		slices.SortFunc(list, func(a, b resolved) int { return labels.Compare(a.lset, b.lset) })
	} else {
		// Fingerprint order: a batch reads a narrow stretch of the table.
		slices.SortFunc(list, func(a, b resolved) int { return cmp.Compare(a.fp, b.fp) })
	}
	set.list = list
	return set
}

// Samples are read in batches of series. A batch is one query whose rows
// are held in memory until the batch is grouped, so its size is bounded
// by an estimate of its samples: a series has a series row per hour with
// samples (the range covers at most its length in hours of each), and an
// hour holds perHour samples, at first assumedPerHour (a 15 s scrape
// interval), then the density the previous batch had.
//
// A batch denser than estimated is cut short once it holds batchRowsMax
// rows and read again in batches of half its series, so a wrong estimate
// costs time, not memory. A select loads at most budget samples (the tenant's
// max_samples_per_query): batches are no larger than what is left of it,
// and the batch that crosses it is still handed over, so that a caller
// counting samples fails the query with its own error; the next one is
// not read.
const (
	batchSamples   = 1 << 20
	batchRowsMax   = 4 * batchSamples
	assumedPerHour = 240
)

// errDenseBatch reports a batch cut short at batchRowsMax rows.
var errDenseBatch = errors.New("batch denser than estimated")

// sampleSet streams the samples of resolved series in list order, one
// query per batch of series.
type sampleSet struct {
	q          *querier
	ctx        context.Context
	mint, maxt int64
	list       []resolved
	limit      int
	// over, when set, is the error after the last series of list: the
	// select had more series than the store loads.
	over error
	// budget is the most samples the select loads (0: unlimited); loaded
	// counts them.
	budget, loaded int
	rowsMax        int // batchRowsMax; lower in tests
	histBytesMax   int // batchHistBytesMax; lower in tests
	// seriesMax, when set, is the most series of a batch: half those of
	// the last batch cut short.
	seriesMax int

	next    int     // first series of the next batch
	perHour float64 // samples per series row expected in the next batch
	batch   []memSeries
	bi      int // next series of batch to return
	cur     *memSeries
	emitted int
	err     error
}

func (s *sampleSet) Next() bool {
	if s.err != nil || (s.limit > 0 && s.emitted >= s.limit) {
		return false
	}
	for s.bi >= len(s.batch) {
		if s.next >= len(s.list) {
			s.err = s.over
			return false
		}
		if s.budget > 0 && s.loaded > s.budget {
			s.err = tooManySamples(s.budget)
			return false
		}
		if err := s.readBatch(); err != nil {
			if errors.Is(err, errDenseBatch) {
				continue
			}
			s.err = err
			return false
		}
	}
	s.cur = &s.batch[s.bi]
	s.bi++
	s.emitted++
	return true
}

// hoursIn is the number of hours of samples series r may have in the
// range: its series rows, at most the range's length.
func (s *sampleSet) hoursIn(r resolved) float64 {
	return min(float64(max(r.hours, 1)), (float64(s.maxt)-float64(s.mint)+1)/msPerHour)
}

// batchEnd returns the end of the next batch of series: as many as fit
// batchSamples by estimate (at least one) and an IN list.
func (s *sampleSet) batchEnd() int {
	end, est := s.next, 0.0
	estMost := float64(batchSamples)
	if s.budget > 0 {
		estMost = min(estMost, float64(s.budget-s.loaded+1))
	}
	most := inListMax / 2
	if s.seriesMax > 0 {
		most = min(most, s.seriesMax)
	}
	for end < len(s.list) && end-s.next < most {
		est += s.hoursIn(s.list[end]) * s.perHour
		if end > s.next && est > estMost {
			break
		}
		end++
	}
	return end
}

// readBatch reads the samples of the next batch of series into s.batch.
func (s *sampleSet) readBatch() error {
	start, end := s.next, s.batchEnd()
	s.next = end
	batch := s.list[start:end]
	fps := make([]uint64, len(batch))
	hours := 0.0
	for i, r := range batch {
		fps[i] = r.fp
		hours += s.hoursIn(r)
	}
	// Plain rows in no particular order: the server does not sort (on 18.x
	// that costs more than reading), Go groups them (sampleRows.group).
	// Parts of a partition are numbered in insert order (_part_index) and
	// each holds a key once, so of equal times the row of the highest
	// _part_index is the last written. This is what FINAL computes,
	// without FINAL's cost on 18.x. (Rows, not per-series arrays: the
	// driver scans arrays element by element through reflection.)
	sc := s.q.ts.s.schema
	sql := samplesSQL(sc.valueExpr(), sc.stExpr(), s.q.table(samplesTable), s.q.tenantCond(), fps, s.mint, s.maxt)
	ctx, cancel := context.WithCancel(s.ctx)
	res, err := s.q.ts.s.query(ctx, "samples", sql)
	if err != nil {
		cancel()
		return err
	}
	defer func() { cancel(); _ = res.Close() }()
	rowsMax := s.rowsMax
	if rowsMax == 0 {
		rowsMax = batchRowsMax
	}
	pos := make(map[uint64]int32, len(batch))
	for i, r := range batch {
		pos[r.fp] = int32(i)
	}
	rows := newSampleRows(min(int(hours*s.perHour), 2*batchSamples))
	var (
		fp, part uint64
		t, st    int64
		v        float64
		lastFP   uint64
		lastPos  = int32(-1)
		// Series with a row holding histMarker, by position: their
		// histograms are read by a second query (readHists).
		marked  []bool
		nMarked int
	)
	dest := []any{&fp, &t, &v, &st, &part}
	for res.Next() {
		if err := res.Scan(dest...); err != nil {
			return s.q.ts.s.readFailed("samples", fmt.Errorf("read samples: %w", err))
		}
		// Rows come in runs of one series: look its position up once a run.
		if fp != lastFP || lastPos < 0 {
			p, ok := pos[fp]
			if !ok {
				return s.q.ts.s.readFailed("samples", fmt.Errorf("read samples: series %d was not asked for", fp))
			}
			lastFP, lastPos = fp, p
		}
		rows.add(lastPos, t, v, st, part)
		if math.Float64bits(v) == histMarker {
			if marked == nil {
				marked = make([]bool, len(batch))
			}
			if !marked[lastPos] {
				marked[lastPos] = true
				nMarked++
			}
		}
		if n := len(rows.ts); n >= rowsMax && len(batch) > 1 {
			// At least n samples in hours: read it again, smaller.
			s.next, s.seriesMax = start, max(len(batch)/2, 1)
			s.perHour = max(s.perHour, float64(n)/hours)
			return errDenseBatch
		}
	}
	if err := res.Err(); err != nil {
		return s.q.ts.s.readFailed("samples", fmt.Errorf("read samples: %w", err))
	}
	var hists map[histKey]histRow
	if nMarked > 0 {
		_ = res.Close() // all read: free the connection for the next query
		fps := make([]uint64, 0, nMarked)
		for i, m := range marked {
			if m {
				fps = append(fps, batch[i].fp)
			}
		}
		hists, err = s.readHists(fps)
		if errors.Is(err, errDenseBatch) && len(batch) > 1 {
			s.next, s.seriesMax = start, max(len(batch)/2, 1)
			return err
		}
		if err != nil {
			return err
		}
	}
	if n := len(rows.ts); n > 0 {
		s.perHour = max(float64(n)/hours, 1)
		s.loaded += n
	}
	// A new slice: callers may hold the series of earlier batches.
	s.batch, s.bi = rows.group(batch, nil), 0
	if hists != nil {
		var continued []uint64 // series whose first sample may continue an earlier one
		for i := range s.batch {
			m := &s.batch[i]
			m.attachHists(hists)
			if m.hists != nil && m.hists[0] != "" && histHint(m.hists[0]) == histogram.UnknownCounterReset && s.mint > math.MinInt64+prevWindow {
				continued = append(continued, m.fp)
			}
		}
		var prevs map[uint64]histRow
		if len(continued) > 0 {
			if prevs, err = s.readPrev(continued); err != nil {
				return err
			}
		}
		for i := range s.batch {
			m := &s.batch[i]
			if m.hists != nil {
				if p, ok := prevs[m.fp]; ok && p.hist != "" {
					m.prevT, m.prevHist = p.ts, p.hist
				}
				m.resolveHints()
			}
		}
	}
	return nil
}

// samplesSQL selects (fingerprint, ts, value, st, _part_index) of the rows
// of series fps in [mint, maxt], valueExpr and stExpr being the value's
// and the start timestamp's expressions.
func samplesSQL(valueExpr, stExpr, table, tenantCond string, fps []uint64, mint, maxt int64) string {
	return fmt.Sprintf("SELECT fingerprint, ts, %s, %s, _part_index FROM %s WHERE %s AND fingerprint IN (%s) AND ts >= %d AND ts <= %d",
		valueExpr, stExpr, table, tenantCond, uint64List(fps), mint, maxt)
}

// prevWindow is how far before a select's range the sample before it is
// looked for, to tell whether the first histogram of the range continues
// it (resolveHints). Beyond, its hint stays unknown.
const prevWindow = msPerHour

// readPrev reads, of each series fps, the newest sample in the prevWindow
// before the range: its hist when it is a histogram, "" for a float.
func (s *sampleSet) readPrev(fps []uint64) (map[uint64]histRow, error) {
	slices.Sort(fps)
	sql := fmt.Sprintf("SELECT fingerprint, ts, if(%s, %s, ''), _part_index FROM %s WHERE %s AND fingerprint IN (%s) AND ts >= %d AND ts < %d ORDER BY fingerprint, ts DESC, _part_index DESC LIMIT 1 BY fingerprint",
		histMarkerSQL, histColumn, s.q.table(samplesTable), s.q.tenantCond(), uint64List(fps), s.mint-prevWindow, s.mint)
	ctx, cancel := context.WithCancel(s.ctx)
	res, err := s.q.ts.s.query(ctx, "histogram_prev", sql)
	if err != nil {
		cancel()
		return nil, err
	}
	defer func() { cancel(); _ = res.Close() }()
	out := map[uint64]histRow{}
	var (
		fp uint64
		r  histRow
	)
	dest := []any{&fp, &r.ts, &r.hist, &r.part}
	for res.Next() {
		if err := res.Scan(dest...); err != nil {
			return nil, s.q.ts.s.readFailed("histogram_prev", fmt.Errorf("read previous samples: %w", err))
		}
		out[fp] = r
	}
	if err := res.Err(); err != nil {
		return nil, s.q.ts.s.readFailed("histogram_prev", fmt.Errorf("read previous samples: %w", err))
	}
	return out, nil
}

// batchHistBytesMax bounds the encoded histograms one batch holds: a batch
// of many dense histogram series is read again in batches of half its
// series, as one of too many rows is. A histogram counts as one sample
// against max_samples_per_query, whatever its size.
const batchHistBytesMax = 256 << 20

// histKey is a sample of a batch.
type histKey struct {
	fp uint64
	ts int64
}

// histRow is the newest row holding histMarker at a histKey.
type histRow struct {
	part uint64
	hist string
	ts   int64 // readPrev's only
}

// histMarkerSQL is true on samples rows whose value has histMarker's bits
// (reinterpretAsString: 18.16 reinterprets no Float64 as UInt64).
var histMarkerSQL = fmt.Sprintf("reinterpretAsString(value) = unhex('%016X')", bits.ReverseBytes64(histMarker))

// histsSQL selects (fingerprint, ts, hist, _part_index) of the rows of
// series fps in [mint, maxt] whose value is histMarker.
func histsSQL(table, tenantCond string, fps []uint64, mint, maxt int64) string {
	return fmt.Sprintf("SELECT fingerprint, ts, %s, _part_index FROM %s WHERE %s AND fingerprint IN (%s) AND ts >= %d AND ts <= %d AND %s",
		histColumn, table, tenantCond, uint64List(fps), mint, maxt, histMarkerSQL)
}

// readHists reads the hist column of the rows of series fps in the range
// whose value is histMarker, keeping at each time the newest part's. The
// first query's newest row at a time, when it has the marker, is the
// newest of those with it, so this finds its hist whatever merges ran
// between the two queries; a float with the marker's bits has an empty
// hist and stays a float.
func (s *sampleSet) readHists(fps []uint64) (map[histKey]histRow, error) {
	slices.Sort(fps)
	sql := histsSQL(s.q.table(samplesTable), s.q.tenantCond(), fps, s.mint, s.maxt)
	ctx, cancel := context.WithCancel(s.ctx)
	res, err := s.q.ts.s.query(ctx, "histograms", sql)
	if err != nil {
		cancel()
		return nil, err
	}
	defer func() { cancel(); _ = res.Close() }()
	histBytesMax := s.histBytesMax
	if histBytesMax == 0 {
		histBytesMax = batchHistBytesMax
	}
	out := map[histKey]histRow{}
	var (
		k     histKey
		r     histRow
		bytes int
	)
	dest := []any{&k.fp, &k.ts, &r.hist, &r.part}
	for res.Next() {
		if err := res.Scan(dest...); err != nil {
			return nil, s.q.ts.s.readFailed("histograms", fmt.Errorf("read histograms: %w", err))
		}
		if old, ok := out[k]; ok && old.part > r.part {
			continue
		}
		out[k] = r
		if bytes += len(r.hist); bytes > histBytesMax && len(fps) > 1 {
			return nil, errDenseBatch
		}
	}
	if err := res.Err(); err != nil {
		return nil, s.q.ts.s.readFailed("histograms", fmt.Errorf("read histograms: %w", err))
	}
	return out, nil
}

// sampleRows holds the rows of one batch as read: runs of rows of one
// series from one part, in the order the server sent them. A series
// usually comes in one run, already in time order: it is then returned
// as it lies, without a copy.
type sampleRows struct {
	ts   []int64
	vals []float64
	sts  []int64 // start timestamps; nil until a row has one
	runs []sampleRun
}

// sampleRun is rows [start, end) of sampleRows, of the series at position
// pos in the batch, from part part.
type sampleRun struct {
	pos        int32
	part       uint64
	start, end int
}

// newSampleRows returns empty sampleRows with room for n rows. (Never
// reused: the series group returns share its arrays.)
func newSampleRows(n int) *sampleRows {
	return &sampleRows{ts: make([]int64, 0, n), vals: make([]float64, 0, n)}
}

func (r *sampleRows) add(pos int32, t int64, v float64, st int64, part uint64) {
	if k := len(r.runs) - 1; k < 0 || r.runs[k].pos != pos || r.runs[k].part != part {
		r.runs = append(r.runs, sampleRun{pos: pos, part: part, start: len(r.ts)})
	}
	if st != 0 && r.sts == nil {
		r.sts = make([]int64, len(r.ts), cap(r.ts)) // rows so far have none
	}
	r.ts = append(r.ts, t)
	r.vals = append(r.vals, v)
	if r.sts != nil {
		r.sts = append(r.sts, st)
	}
	r.runs[len(r.runs)-1].end = len(r.ts)
}

// knownSTs returns sts, nil when none is known (all 0).
func knownSTs(sts []int64) []int64 {
	for _, st := range sts {
		if st != 0 {
			return sts
		}
	}
	return nil
}

// group appends to out the batch's series that have samples, in batch
// order, each with its samples in time order and of equal times the
// newest part's. A series in one ordered run shares r's arrays (its
// capacity cut to its length); others get arrays of their own.
func (r *sampleRows) group(batch []resolved, out []memSeries) []memSeries {
	runs := r.runs
	if !slices.IsSortedFunc(runs, cmpRun) {
		runs = slices.Clone(runs)
		slices.SortFunc(runs, cmpRun)
	}
	for len(runs) > 0 {
		n := 1
		for n < len(runs) && runs[n].pos == runs[0].pos {
			n++
		}
		series := runs[:n]
		runs = runs[n:]
		if first := series[0]; n == 1 && strictlyIncreasing(r.ts[first.start:first.end]) {
			ts, vals := r.ts[first.start:first.end:first.end], r.vals[first.start:first.end:first.end]
			var sts []int64
			if r.sts != nil {
				sts = knownSTs(r.sts[first.start:first.end:first.end])
			}
			out = append(out, memSeries{lset: batch[first.pos].lset, fp: batch[first.pos].fp, ts: ts, vals: vals, sts: sts})
			continue
		}
		var seg segment
		for _, run := range series {
			seg.ts = append(seg.ts, r.ts[run.start:run.end]...)
			seg.vals = append(seg.vals, r.vals[run.start:run.end]...)
			if r.sts != nil {
				seg.sts = append(seg.sts, r.sts[run.start:run.end]...)
			}
			for range run.end - run.start {
				seg.parts = append(seg.parts, run.part)
			}
		}
		seg.sts = knownSTs(seg.sts)
		if !seg.sorted() {
			sort.Stable(seg)
		}
		w := seg.dedup()
		m := memSeries{lset: batch[series[0].pos].lset, fp: batch[series[0].pos].fp, ts: seg.ts[:w:w], vals: seg.vals[:w:w]}
		if seg.sts != nil {
			m.sts = knownSTs(seg.sts[:w:w]) // the kept rows may have none
		}
		out = append(out, m)
	}
	return out
}

// cmpRun orders runs by series, then as they came.
func cmpRun(a, b sampleRun) int {
	if a.pos != b.pos {
		return int(a.pos) - int(b.pos)
	}
	return a.start - b.start
}

func strictlyIncreasing(ts []int64) bool {
	for i := 1; i < len(ts); i++ {
		if ts[i] <= ts[i-1] {
			return false
		}
	}
	return true
}

// segment is one series' rows, sorted by time then part.
type segment struct {
	ts    []int64
	vals  []float64
	sts   []int64 // nil when no row has a start timestamp
	parts []uint64
}

func (s segment) Len() int { return len(s.ts) }
func (s segment) Less(i, j int) bool {
	return s.ts[i] < s.ts[j] || s.ts[i] == s.ts[j] && s.parts[i] < s.parts[j]
}

func (s segment) Swap(i, j int) {
	s.ts[i], s.ts[j] = s.ts[j], s.ts[i]
	s.vals[i], s.vals[j] = s.vals[j], s.vals[i]
	s.parts[i], s.parts[j] = s.parts[j], s.parts[i]
	if s.sts != nil {
		s.sts[i], s.sts[j] = s.sts[j], s.sts[i]
	}
}

func (s segment) sorted() bool {
	for i := 1; i < len(s.ts); i++ {
		if !s.Less(i-1, i) {
			return false
		}
	}
	return true
}

// dedup keeps of equal times the last row (the newest part's), with its
// start timestamp, moving the kept rows to the front; it returns their
// number.
func (s segment) dedup() int {
	w := 0
	for i := range s.ts {
		if w > 0 && s.ts[i] == s.ts[w-1] {
			s.vals[w-1] = s.vals[i]
			if s.sts != nil {
				s.sts[w-1] = s.sts[i]
			}
			continue
		}
		s.ts[w], s.vals[w] = s.ts[i], s.vals[i]
		if s.sts != nil {
			s.sts[w] = s.sts[i]
		}
		w++
	}
	return w
}

func (s *sampleSet) At() promstorage.Series { return s.cur }
func (s *sampleSet) Err() error {
	return s.err
}
func (s *sampleSet) Warnings() annotations.Annotations { return nil }

// labelsOnlySet is the result of a series listing: labels, no samples.
type labelsOnlySet struct {
	list []resolved
	over error // as sampleSet.over
	i    int
	err  error
}

func (s *labelsOnlySet) Next() bool {
	if s.i >= len(s.list) {
		s.err = s.over
		return false
	}
	s.i++
	return true
}
func (s *labelsOnlySet) At() promstorage.Series {
	return &memSeries{lset: s.list[s.i-1].lset}
}
func (s *labelsOnlySet) Err() error                        { return s.err }
func (s *labelsOnlySet) Warnings() annotations.Annotations { return nil }

// memSeries is one series' samples, in time order. hists, when the series
// has histograms in the range, holds each sample's encoded histogram ("" for
// a float); nil for a series of floats. sts, when a sample of the range has
// a start timestamp, holds each sample's (0: unknown); nil when none has.
type memSeries struct {
	lset  labels.Labels
	fp    uint64
	ts    []int64
	vals  []float64
	hists []string
	sts   []int64
	// prevHist, when set, is the histogram at prevT, the sample before the
	// range: the ChunkQuerier starts the series' first chunk with it.
	prevT    int64
	prevHist string
}

// attachHists fills m.hists from the histograms read for its batch.
func (m *memSeries) attachHists(hists map[histKey]histRow) {
	for i, v := range m.vals {
		if math.Float64bits(v) != histMarker {
			continue
		}
		r, ok := hists[histKey{m.fp, m.ts[i]}]
		if !ok || r.hist == "" {
			continue // a float with the marker's bits
		}
		if m.hists == nil {
			m.hists = make([]string, len(m.ts))
		}
		m.hists[i] = r.hist
	}
}

func (m *memSeries) Labels() labels.Labels { return m.lset }

func (m *memSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	if m.hists != nil {
		mi, ok := it.(*mixedIterator)
		if !ok {
			mi = &mixedIterator{}
		}
		mi.reset(m)
		return mi
	}
	si, ok := it.(*storage.FloatIterator)
	if !ok {
		si = &storage.FloatIterator{}
	}
	si.Reset(m.ts, m.vals, m.sts)
	return si
}

// LabelNames returns the label names of the tenant's series matching ms
// with samples in the querier's range, sorted.
func (q *querier) LabelNames(ctx context.Context, hints *promstorage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	pushed, exact := pushdown(ms)
	if !exact {
		out, err := q.labelsInGo(ctx, matchersSQL(pushed), matcherFunc(ms), hints, func(lset labels.Labels, add func(string)) {
			lset.Range(func(l labels.Label) { add(l.Name) })
		})
		return out, nil, err
	}
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
	pushed, exact := pushdown(ms)
	if !exact {
		out, err := q.labelsInGo(ctx, matchersSQL(pushed), matcherFunc(ms), hints, func(lset labels.Labels, add func(string)) {
			if v := lset.Get(name); v != "" {
				add(v)
			}
		})
		return out, nil, err
	}
	sql := fmt.Sprintf("SELECT DISTINCT v FROM (SELECT %s AS v FROM %s WHERE %s) WHERE v != '' ORDER BY v%s",
		labelExpr(name), q.table(seriesTable), q.exactSeriesWhere(q.mint, q.maxt, ms), limitClause(hints))
	out, err := q.ts.s.queryStringsKind(ctx, "label_values", sql)
	return out, nil, err
}

// labelsInGo answers LabelNames and LabelValues for matchers not all sent
// as SQL: from the series the pushed ones select (cond, their SQL),
// matched in Go (match), at most the series a query may load. of adds the
// strings of one series.
func (q *querier) labelsInGo(ctx context.Context, cond string, match func(labels.Labels) bool, hints *promstorage.LabelHints, of func(labels.Labels, func(string))) ([]string, error) {
	limit := q.maxSeries()
	list, over, _, err := q.resolveSeries(ctx, q.exactSeriesWhereCond(q.mint, q.maxt, cond), match, false, nil, limit)
	if err != nil {
		return nil, err
	}
	if over {
		return nil, tooManySeries(limit)
	}
	seen := map[string]struct{}{}
	for _, r := range list {
		of(r.lset, func(v string) { seen[v] = struct{}{} })
	}
	out := slices.Sorted(maps.Keys(seen))
	if hints != nil && hints.Limit > 0 && len(out) > hints.Limit {
		out = out[:hints.Limit]
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

func limitClause(hints *promstorage.LabelHints) string {
	if hints == nil || hints.Limit <= 0 {
		return ""
	}
	return " LIMIT " + strconv.Itoa(hints.Limit)
}

// chunkQuerier serves the querier's series as chunks: XOR chunks for
// floats, histogram and float histogram chunks for histograms (chunks.go).
type chunkQuerier struct{ querier }

func (q *chunkQuerier) Select(ctx context.Context, sortSeries bool, hints *promstorage.SelectHints, ms ...*labels.Matcher) promstorage.ChunkSeriesSet {
	return &chunkSet{SeriesSet: q.querier.Select(ctx, sortSeries, hints, ms...)}
}

// query runs a read query, recording its metrics; its errors are logged
// and masked (readFailed), wrapping storage.ErrUnavailable when the server
// cannot answer.
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
		return nil, s.readFailed(kind, fmt.Errorf("query %s (%d bytes of SQL): %w", kind, len(sql), err))
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
			return nil, s.readFailed(kind, fmt.Errorf("query %s: %w", kind, err))
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, s.readFailed(kind, fmt.Errorf("query %s: %w", kind, err))
	}
	return out, nil
}
