package clickhouse

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// Cardinality reports the statistics of the tenant's series req selects.
//
// Without matchers it answers from a snapshot of the maintained
// statistics (series_stats, schema_stats.go; cardinality_stats.go): rows
// per (day, label pair), so its cost follows the tenant's distinct label
// pairs, not its series or samples. Days are UTC: a time range is widened
// to whole days, all time means the retained days (retentionCutoff).
// Matchers on a label other than the metric name select the series from
// the label index (cardinality_index.go); others from the series table
// (as label queries do), fast for a metric name (the table's key starts
// with it). Series deleted for good (forgetSeries) are subtracted. The
// counts are uniq estimates (see schema_stats.go).
func (ts *tenantStore) Cardinality(ctx context.Context, req storage.CardinalityRequest) (storage.Cardinality, error) {
	s := ts.s
	if req.TotalOnly {
		return ts.usage(ctx, req)
	}
	if _, err := s.refreshTombs(ctx, ts.id); err != nil { // deletions by any pod (delete.go)
		return storage.Cardinality{}, err
	}
	now := time.Now()
	d1, d2 := int32(math.MinInt32), int32(math.MaxInt32)
	if cut := s.retentionCutoff(ts.id, now); cut != math.MinInt64 {
		d1 = dayOf(cut)
	}
	if !req.AllTime() {
		d1, d2 = max(d1, dayOf(req.Start)), dayOf(req.End)
	}
	activeSince := storage.ActiveSince(now, s.cfg.ActiveSeriesWindow) // the one definition (active.go)
	if req.Active {
		// The active window in whole days.
		d1 = max(d1, dayOf(activeSince))
	}
	var c storage.Cardinality
	if d1 > d2 {
		return c, nil
	}
	var err error
	if req.ListSeries {
		start, end := int64(d1)*msPerDay, int64(d2)*msPerDay+msPerDay-1
		if d1 == math.MinInt32 {
			start = max(math.MinInt64, s.retentionCutoff(ts.id, now))
		}
		if req.Active { // series with samples since activeSince
			start = max(activeSince, s.retentionCutoff(ts.id, now))
		}
		if d2 == math.MaxInt32 {
			end = math.MaxInt64
		}
		if drivers, ok := indexDrivers(req.Matchers); ok {
			c.Series, err = ts.indexListSeries(ctx, req, drivers, start, end)
		} else {
			c.Series, err = ts.listSeries(ctx, req, start, end)
		}
		return c, err
	}
	if len(req.Matchers) == 0 {
		c, err = ts.statsCardinality(ctx, req, d1, d2)
	} else if drivers, ok := indexDrivers(req.Matchers); ok {
		c, err = ts.indexCardinality(ctx, req, drivers, d1, d2) // cardinality_index.go
	} else {
		c, err = ts.seriesCardinality(ctx, req, d1, d2)
	}
	if err != nil {
		return c, err
	}
	c.Approximate = true
	if req.Active && len(req.Matchers) == 0 {
		// The one active series count (active.go).
		n, err := s.activeSeries(ctx, ts.id)
		if err != nil {
			return c, err
		}
		c.NumSeries = uint64(n)
	}
	return c, nil
}

// dayOf is the UTC day of millisecond timestamp t (floor division).
func dayOf(t int64) int32 {
	d := t / msPerDay
	if t%msPerDay < 0 {
		d--
	}
	return int32(max(min(d, math.MaxInt32), math.MinInt32))
}

// setsSQL is the condition of matcher sets on a row with a metric_name
// column (and, for other labels, label_names and label_values): any set,
// all its matchers.
func setsSQL(sets [][]*labels.Matcher) string {
	if len(sets) == 0 {
		return "1"
	}
	parts := make([]string, len(sets))
	for i, ms := range sets {
		parts[i] = "(" + matchersSQL(ms) + ")"
	}
	return strings.Join(parts, " OR ")
}

// pairRow is one label name's statistics as the pair query returns them.
type pairRow struct {
	name          string
	values        uint64
	series, bytes int64
	top           [][]any // (count, value), best first
}

// seriesCardinality answers req from the series table: the series rows of
// the matching series in days [d1, d2], one per series.
func (ts *tenantStore) seriesCardinality(ctx context.Context, req storage.CardinalityRequest, d1, d2 int32) (storage.Cardinality, error) {
	s := ts.s
	h1, h2 := int64(d1)*24, int64(d2)*24+23
	h1, h2 = max(h1, math.MinInt32), min(h2, math.MaxInt32)
	tenant := quote(string(ts.id))
	// Series deleted for good are left out; series_forgotten is sharded
	// as the series table, so its local table serves the subquery.
	where := fmt.Sprintf("tenant = %s AND hour >= %d AND hour <= %d AND (%s) AND fingerprint NOT IN (SELECT fingerprint FROM %s WHERE tenant = %s AND last_day >= %d)",
		tenant, h1, h2, setsSQL(req.Matchers), s.schema.table(s.schema.storageTable(forgottenTable)), tenant, d1)
	where += s.tombCond(ts.id) // rows holding only deleted samples (delete.go)
	perSeries := fmt.Sprintf("(SELECT fingerprint, any(label_names) AS ln, any(label_values) AS lv FROM %s WHERE %s GROUP BY fingerprint)", s.schema.table(seriesTable), where)
	pairs := fmt.Sprintf("SELECT label_name, label_value, toInt64(count()) AS c FROM %s ARRAY JOIN ln AS label_name, lv AS label_value GROUP BY label_name, label_value", perSeries)
	return ts.pairCardinality(ctx, req, pairs, fmt.Sprintf(
		"SELECT min(min_ts), max(hour) FROM %s WHERE %s", s.schema.table(seriesTable), where))
}

// pairCardinality builds the report from pairs (a query of label_name,
// label_value, c: series per pair) and times (min_ts, max hour).
func (ts *tenantStore) pairCardinality(ctx context.Context, req storage.CardinalityRequest, pairs, times string) (storage.Cardinality, error) {
	s := ts.s
	var c storage.Cardinality
	top := ""
	if req.Limit > 0 {
		top = fmt.Sprintf(", 1, %d", req.Limit)
	} else {
		top = ", 1, 1000000000"
	}
	sql := fmt.Sprintf("SELECT label_name, count(), sum(c), sum(length(label_value) * c), arraySlice(arraySort(x -> (-x.1, x.2), groupArray((c, label_value)))%s) FROM (%s) GROUP BY label_name",
		top, pairs)
	// The time range is read meanwhile: the answer waits for the longer
	// of the two queries, not their sum.
	type timesResult struct {
		minTs   int64
		maxHour int32
		err     error
	}
	timesCtx, cancelTimes := context.WithCancel(ctx)
	defer cancelTimes()
	timesDone := make(chan timesResult, 1)
	go func() {
		var r timesResult
		rows, err := s.query(timesCtx, "cardinality", times)
		if err != nil {
			r.err = err
		} else {
			if rows.Next() {
				r.err = rows.Scan(&r.minTs, &r.maxHour)
			}
			rows.Close()
			if r.err != nil {
				r.err = s.readFailed("cardinality", fmt.Errorf("cardinality: %w", r.err))
			}
		}
		timesDone <- r
	}()
	rows, err := s.query(ctx, "cardinality", sql)
	if err != nil {
		return c, err
	}
	var names []pairRow
	for rows.Next() {
		var r pairRow
		var top [][]any
		if err := rows.Scan(&r.name, &r.values, &r.series, &r.bytes, &top); err != nil {
			rows.Close()
			return c, s.readFailed("cardinality", fmt.Errorf("cardinality: %w", err))
		}
		names = append(names, pairRowTop(r, top))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return c, s.readFailed("cardinality", fmt.Errorf("cardinality: %w", err))
	}

	byName := map[string]*pairRow{}
	var byLabel, seriesByLabel, mem, allTop []storage.Count
	for i := range names {
		r := &names[i]
		byName[r.name] = r
		c.NumLabelNames++
		c.NumLabelPairs += int(r.values)
		c.NumLabelRefs += uint64(r.series)
		byLabel = append(byLabel, storage.Count{Name: r.name, Value: r.values})
		seriesByLabel = append(seriesByLabel, storage.Count{Name: r.name, Value: uint64(r.series)})
		mem = append(mem, storage.Count{Name: r.name, Value: uint64(r.bytes)})
		for _, p := range r.top {
			allTop = append(allTop, storage.Count{Name: r.name + "=" + p[1].(string), Value: p[0].(uint64)})
		}
	}
	values := func(name string) []storage.Count {
		out := []storage.Count{}
		if r := byName[name]; r != nil {
			for _, p := range r.top {
				out = append(out, storage.Count{Name: p[1].(string), Value: p[0].(uint64)})
			}
		}
		return out
	}
	if r := byName[labels.MetricName]; r != nil {
		c.NumSeries = uint64(r.series)
	}
	c.ByMetricName = values(labels.MetricName)
	c.ByLabelName = storage.TopCounts(byLabel, req.Limit)
	c.SeriesByLabel = storage.TopCounts(seriesByLabel, req.Limit)
	c.MemoryByLabel = storage.TopCounts(mem, req.Limit)
	c.ByLabelPair = topPairCounts(allTop, req.Limit)
	if req.FocusLabel != "" {
		c.ByFocusLabelValue = values(req.FocusLabel)
	}
	for _, name := range req.LabelNames {
		lv := storage.LabelValues{Name: name, Values: values(name)}
		if r := byName[name]; r != nil {
			lv.NumValues, lv.NumSeries = r.values, uint64(r.series)
		}
		c.LabelValues = append(c.LabelValues, lv)
	}
	tr := <-timesDone
	if c.NumSeries == 0 {
		return c, nil
	}
	if tr.err != nil {
		return c, tr.err
	}
	c.MinTime = tr.minTs
	maxHour := tr.maxHour
	// The series rows know each hour's first sample, not its last: the
	// newest sample lies in the newest hour, not after now.
	c.MaxTime = min(hourEnd(maxHour), time.Now().UnixMilli())
	return c, nil
}

// pairRowTop converts the (count, value) tuples the driver returns.
func pairRowTop(r pairRow, top [][]any) pairRow {
	for _, x := range top {
		if len(x) != 2 {
			continue
		}
		cnt, _ := x[0].(int64)
		val, _ := x[1].(string)
		if cnt > 0 {
			r.top = append(r.top, []any{uint64(cnt), val})
		}
	}
	return r
}

// topPairCounts orders name=value pair counts by count descending then by
// name and value, keeping n (all when n <= 0). The pairs of each name are
// that name's top n, so the overall top n is among them.
func topPairCounts(list []storage.Count, n int) []storage.Count {
	slices.SortFunc(list, func(a, b storage.Count) int {
		if a.Value != b.Value {
			if a.Value > b.Value {
				return -1
			}
			return 1
		}
		an, av, _ := strings.Cut(a.Name, "=")
		bn, bv, _ := strings.Cut(b.Name, "=")
		if an != bn {
			return strings.Compare(an, bn)
		}
		return strings.Compare(av, bv)
	})
	if n > 0 && len(list) > n {
		list = list[:n]
	}
	return list
}

// listSeries returns the labels of the series req selects with samples in
// [start, end], at most req.Limit.
func (ts *tenantStore) listSeries(ctx context.Context, req storage.CardinalityRequest, start, end int64) ([]labels.Labels, error) {
	q := &querier{ts: ts, mint: start, maxt: end}
	sets := req.Matchers
	if len(sets) == 0 {
		sets = [][]*labels.Matcher{{labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+")}}
	}
	limit := req.Limit
	seen := map[uint64]bool{}
	var out []labels.Labels
	for _, ms := range sets {
		set := q.Select(ctx, false, &promstorage.SelectHints{Start: start, End: end, Func: "series", Limit: limit}, ms...)
		for set.Next() {
			lset := set.At().Labels()
			if h := lset.Hash(); !seen[h] {
				seen[h] = true
				out = append(out, lset)
			}
			if req.Limit > 0 && len(out) >= req.Limit {
				return out, nil
			}
		}
		if err := set.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// forgottenSeries is a series deleted for good (delete_series over all of
// its data).
type forgottenSeries struct {
	fingerprint uint64
	lset        labels.Labels // without _tenant_id
}

// forgetSeries is called once series are deleted for good, so that the
// cardinality statistics stop counting them at once: it lists them in
// series_forgotten with the days they had series rows (read from the
// series table while it still has them; else every retained day up to
// today), which the statistics subtract.
func (s *Store) forgetSeries(ctx context.Context, id tenancy.ID, series []forgottenSeries) error {
	if len(series) == 0 {
		return nil
	}
	now := time.Now()
	first := int32(math.MinInt32)
	if cut := s.retentionCutoff(id, now); cut != math.MinInt64 {
		first = dayOf(cut)
	}
	today := dayOf(now.UnixMilli())
	days := map[uint64][2]int32{}
	for chunk := range slices.Chunk(series, inListMax) {
		var in strings.Builder
		for i, f := range chunk {
			if i > 0 {
				in.WriteByte(',')
			}
			in.WriteString(strconv.FormatUint(f.fingerprint, 10))
		}
		rows, err := s.query(ctx, "forget_series", fmt.Sprintf("SELECT fingerprint, min(hour), max(hour) FROM %s WHERE tenant = %s AND fingerprint IN (%s) GROUP BY fingerprint",
			s.schema.table(seriesTable), quote(string(id)), in.String()))
		if err != nil {
			return err
		}
		for rows.Next() {
			var fp uint64
			var h1, h2 int32
			if err := rows.Scan(&fp, &h1, &h2); err != nil {
				rows.Close()
				return s.readFailed("forget_series", err)
			}
			days[fp] = [2]int32{floorDiv(h1, 24), floorDiv(h2, 24)}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return s.readFailed("forget_series", err)
		}
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.schema.table(forgottenTable)+
		" (tenant, fingerprint, forgotten_at, first_day, last_day, metric_name, label_names, label_values)")
	if err != nil {
		return fmt.Errorf("forget series: %w", err)
	}
	at := now.UnixMilli()
	for _, f := range series {
		d, ok := days[f.fingerprint]
		if !ok {
			d = [2]int32{first, today}
		}
		var names, values []string
		f.lset.Range(func(l labels.Label) {
			if l.Value != "" {
				names = append(names, l.Name)
				values = append(values, l.Value)
			}
		})
		if err := b.Append(string(id), f.fingerprint, at, d[0], d[1], f.lset.Get(labels.MetricName), names, values); err != nil {
			_ = b.Abort()
			return fmt.Errorf("forget series: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("forget series: %w", err)
	}
	// The snapshots see them at the next request (statsCache.get).
	return nil
}

func floorDiv(a, b int32) int32 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// usage answers a TotalOnly request: the active series count (active.go)
// or the statistics' series total, and BytesStored estimated as the
// tenant's rows in the samples and series tables times each table's
// compressed bytes per row (system.parts of the server queried, over its
// active parts; in cluster mode one node's ratio stands for all). Counting
// the tenant's rows reads its part of the tenant column, the first of the
// primary key.
func (ts *tenantStore) usage(ctx context.Context, req storage.CardinalityRequest) (storage.Cardinality, error) {
	s := ts.s
	var c storage.Cardinality
	if req.Active {
		n, err := s.activeSeries(ctx, ts.id)
		if err != nil {
			return c, err
		}
		c.NumSeries = uint64(n)
	} else {
		all, err := ts.Cardinality(ctx, storage.CardinalityRequest{Limit: 1})
		if err != nil {
			return c, err
		}
		c.NumSeries = all.NumSeries
	}
	for _, table := range []string{samplesTable, seriesTable} {
		sql := fmt.Sprintf("SELECT (SELECT count() FROM %s WHERE tenant = %s), (SELECT toFloat64(sum(bytes_on_disk)) / greatest(sum(rows), 1) FROM system.parts WHERE database = %s AND table = %s AND active)",
			s.schema.table(table), quote(string(ts.id)), quote(s.schema.db), quote(s.schema.storageTable(table)))
		rows, err := s.query(ctx, "usage", sql)
		if err != nil {
			return c, err
		}
		var n uint64
		var perRow float64
		if rows.Next() {
			err = rows.Scan(&n, &perRow)
		}
		rows.Close()
		if err != nil {
			return c, s.readFailed("usage", fmt.Errorf("usage: %w", err))
		}
		c.BytesStored += uint64(float64(n) * perRow)
	}
	c.Approximate = true
	return c, nil
}
