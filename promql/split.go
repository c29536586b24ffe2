package promql

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	pql "github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/stats"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// A long range query is split in time into parts evaluated in parallel,
// one per core, as VictoriaMetrics spreads one query over its cores: the
// engine evaluates a query on one goroutine, and a week of samples is
// mostly decoding and per-step work that the steps of another part do not
// depend on. Each step of a range query is evaluated on its own (windows,
// lookback and subquery grids are absolute), so the parts' matrices,
// concatenated series by series, are the whole query's matrix. Queries
// that refer to their own start or end (the @ modifier, start(), end())
// are not split.
//
// Every answer stays the whole query's: a part that fails for anything
// but the context (a limit, a data error) has the whole query run alone,
// which fails or answers as it would have. Limits hold across the parts:
// each part's engine holds at most MaxSamples/parts samples, and the
// series limit counts each selector's series once across parts.
const (
	minSplitRange    = 3 * time.Hour // shorter ranges are mostly per-series setup, which parts repeat
	minStepsPerPart  = 50
	maxRangeSplitNum = 8
)

// rangeParts is the number of parts a range query over [start, end] at
// step runs in: 1 when it is not split.
func (a *API) rangeParts(expr parser.Expr, start, end time.Time, step time.Duration) int {
	procs := a.cfg.RangeParallelism
	if procs == 0 {
		procs = runtime.GOMAXPROCS(0)
	}
	if procs < 2 || step <= 0 || end.Sub(start) < minSplitRange {
		return 1
	}
	steps := int(end.Sub(start)/step) + 1
	parts := min(procs, steps/minStepsPerPart, maxRangeSplitNum)
	if parts < 2 || refersToQueryRange(expr) {
		return 1
	}
	return parts
}

// refersToQueryRange reports whether expr has an @ modifier (start() and
// end() are @ modifiers too), whose time the parts would not share.
func refersToQueryRange(expr parser.Expr) bool {
	found := false
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch e := n.(type) {
		case *parser.VectorSelector:
			found = found || e.Timestamp != nil || e.StartOrEnd != 0
		case *parser.SubqueryExpr:
			found = found || e.Timestamp != nil || e.StartOrEnd != 0
		}
		return nil
	})
	return found
}

// newRangeQuery builds the range query of tenant t over queryable q (the
// tenant's limited view), split in time when rangeParts says so. count
// has the split query count the series its selectors load as the whole
// query would (Exec reports them); the series limit counts them anyway.
func (a *API) newRangeQuery(ctx context.Context, t storage.Tenant, q promstorage.Queryable, opts pql.QueryOpts, qs string, start, end time.Time, step time.Duration, count bool) (pql.Query, error) {
	id := t.ID()
	whole, err := a.engineFor(id).NewRangeQuery(ctx, q, opts, qs, start, end, step)
	if err != nil || opts.EnablePerStepStats() {
		return whole, err
	}
	stmt, ok := whole.Statement().(*parser.EvalStmt)
	if !ok {
		return whole, nil
	}
	n := a.rangeParts(stmt.Expr, start, end, step)
	if n < 2 {
		return whole, nil
	}
	limit, setting := a.seriesLimit(id)
	shared := &partSeries{limit: limit, setting: setting}
	if limit > 0 || count {
		shared.seen = map[partSeriesKey]struct{}{}
	}
	engine := a.engineWith(max(1, a.samplesLimit(id)/n))
	steps := int64(end.Sub(start)/step) + 1
	sq := &splitQuery{whole: whole, series: shared}
	for i := range int64(n) {
		lo, hi := steps*i/int64(n), steps*(i+1)/int64(n)-1
		pstart, pend := start.Add(time.Duration(lo)*step), start.Add(time.Duration(hi)*step)
		if i == int64(n)-1 {
			pend = end
		}
		pq, err := engine.NewRangeQuery(ctx, &partQueryable{ts: t.Store, shared: shared}, opts, qs, pstart, pend, step)
		if err != nil {
			sq.closeParts()
			return whole, nil // the whole query runs alone
		}
		sq.parts = append(sq.parts, pq)
	}
	return sq, nil
}

// samplesLimit is the MaxSamples of tenant id's engine.
func (a *API) samplesLimit(id tenancy.ID) int {
	if a.limits != nil {
		if n := a.limits.MaxSamplesPerQuery(id); n > 0 && n < a.cfg.MaxSamples {
			return n
		}
	}
	return a.cfg.MaxSamples
}

// splitQuery runs its parts in parallel and answers their concatenated
// matrices, or, when a part fails for anything but the context, the whole
// query's own answer.
type splitQuery struct {
	whole  pql.Query
	parts  []pql.Query
	series *partSeries

	alone   bool // the whole query ran
	results []*pql.Result
}

func (s *splitQuery) Exec(ctx context.Context) *pql.Result {
	s.results = make([]*pql.Result, len(s.parts))
	var wg sync.WaitGroup
	for i, p := range s.parts {
		wg.Go(func() { s.results[i] = p.Exec(ctx) })
	}
	wg.Wait()
	var warnings annotations.Annotations
	for _, r := range s.results {
		if r.Err == nil {
			warnings.Merge(r.Warnings)
			continue
		}
		if ctx.Err() != nil || isContextError(r.Err) {
			return &pql.Result{Err: r.Err, Warnings: r.Warnings}
		}
		s.alone = true
		s.closeParts()
		return s.whole.Exec(ctx)
	}
	mats := make([]pql.Matrix, len(s.results))
	for i, r := range s.results {
		m, ok := r.Value.(pql.Matrix)
		if !ok { // a range query's value is a matrix
			s.alone = true
			s.closeParts()
			return s.whole.Exec(ctx)
		}
		mats[i] = m
	}
	return &pql.Result{Value: concatMatrices(mats), Warnings: warnings}
}

func isContextError(err error) bool {
	var canceled pql.ErrQueryCanceled
	var timedOut pql.ErrQueryTimeout
	return errors.As(err, &canceled) || errors.As(err, &timedOut) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// concatMatrices merges matrices sorted by labels whose series hold
// consecutive time ranges, in time order: a series in several of them
// gets their points one after another.
func concatMatrices(mats []pql.Matrix) pql.Matrix {
	n := 0
	for _, m := range mats {
		n += len(m)
	}
	out := make(pql.Matrix, 0, n)
	pos := make([]int, len(mats))
	for {
		// The smallest labels among the matrices' next series.
		var next labels.Labels
		have := false
		for i, m := range mats {
			if pos[i] < len(m) && (!have || labels.Compare(m[pos[i]].Metric, next) < 0) {
				next, have = m[pos[i]].Metric, true
			}
		}
		if !have {
			return out
		}
		var s pql.Series
		nf, nh, first := 0, 0, -1
		for i, m := range mats {
			if pos[i] < len(m) && labels.Equal(m[pos[i]].Metric, next) {
				if first < 0 {
					first = i
				}
				nf += len(m[pos[i]].Floats)
				nh += len(m[pos[i]].Histograms)
			}
		}
		s = mats[first][pos[first]]
		if nf > 0 {
			s.Floats = make([]pql.FPoint, 0, nf)
		}
		if nh > 0 {
			s.Histograms = make([]pql.HPoint, 0, nh)
		}
		for i, m := range mats {
			if pos[i] < len(m) && labels.Equal(m[pos[i]].Metric, next) {
				s.Floats = append(s.Floats, m[pos[i]].Floats...)
				s.Histograms = append(s.Histograms, m[pos[i]].Histograms...)
				pos[i]++
			}
		}
		out = append(out, s)
	}
}

// Close releases the parts (whose histograms the merged matrix points to)
// and the whole query.
func (s *splitQuery) Close() {
	s.closeParts()
	s.whole.Close()
}

func (s *splitQuery) closeParts() {
	for _, p := range s.parts {
		p.Close()
	}
	s.parts = nil
}

func (s *splitQuery) Statement() parser.Statement { return s.whole.Statement() }
func (s *splitQuery) String() string              { return s.whole.String() }

func (s *splitQuery) Cancel() {
	for _, p := range s.parts {
		p.Cancel()
	}
	s.whole.Cancel()
}

// Stats are the whole query's when it ran alone, otherwise the parts'
// summed, with the series the selectors loaded counted as the whole
// query counts them when the query counts series.
func (s *splitQuery) Stats() *stats.Statistics {
	if s.alone || len(s.results) == 0 {
		return s.whole.Stats()
	}
	out := &stats.Statistics{Samples: &stats.QuerySamples{}}
	for i, p := range s.parts {
		st := p.Stats()
		if i == 0 {
			out.Timers = st.Timers
		}
		if st.Samples == nil {
			continue
		}
		out.Samples.PeakSamples += st.Samples.PeakSamples
		out.Samples.TotalSamples += st.Samples.TotalSamples
		out.Samples.SamplesRead += st.Samples.SamplesRead
		out.Samples.TotalSeries += st.Samples.TotalSeries
	}
	if s.series.seen != nil {
		out.Samples.TotalSeries = s.series.count()
	}
	return out
}

// partSeries counts the series the selectors of a split query's parts
// load, each selector's series once across the parts: the count of the
// whole query, whose selectors load the union of what the parts' load.
// The parts' selectors are told apart by the order of their Selects,
// which is the order of the query's syntax tree in every part.
type partSeries struct {
	limit   int // 0: none
	setting tenancy.Setting

	mu   sync.Mutex
	seen map[partSeriesKey]struct{} // nil: not counting
}

type partSeriesKey struct {
	selector int
	hash     uint64
}

func (p *partSeries) add(selector int, lset labels.Labels) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen[partSeriesKey{selector, lset.Hash()}] = struct{}{}
	if p.limit > 0 && len(p.seen) > p.limit {
		return (&limitedQueryable{limit: p.limit, setting: p.setting}).tooMany()
	}
	return nil
}

func (p *partSeries) count() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return int64(len(p.seen))
}

// partQueryable is the tenant's view for one part of a split query.
type partQueryable struct {
	ts     storage.TenantStore
	shared *partSeries
}

func (q *partQueryable) Querier(mint, maxt int64) (promstorage.Querier, error) {
	inner, err := q.ts.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	if q.shared.seen == nil {
		return inner, nil
	}
	return &partQuerier{Querier: inner, shared: q.shared}, nil
}

type partQuerier struct {
	promstorage.Querier
	shared *partSeries
	mu     sync.Mutex
	n      int // Selects so far
}

func (q *partQuerier) Select(ctx context.Context, sortSeries bool, hints *promstorage.SelectHints, ms ...*labels.Matcher) promstorage.SeriesSet {
	q.mu.Lock()
	sel := q.n
	q.n++
	q.mu.Unlock()
	return &partSeriesSet{SeriesSet: q.Querier.Select(ctx, sortSeries, hints, ms...), shared: q.shared, selector: sel}
}

type partSeriesSet struct {
	promstorage.SeriesSet
	shared   *partSeries
	selector int
	err      error
}

func (s *partSeriesSet) Next() bool {
	if s.err != nil || !s.SeriesSet.Next() {
		return false
	}
	if err := s.shared.add(s.selector, s.SeriesSet.At().Labels()); err != nil {
		s.err = err
		return false
	}
	return true
}

func (s *partSeriesSet) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.SeriesSet.Err()
}
