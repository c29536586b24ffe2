package clickhouse

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// The series and label APIs, and delete_series, take repeated match[]:
// the series matching any of them. Asked one matcher set at a time, a
// request of a thousand match[] is a thousand queries, seconds of the
// server's time on one request; these ask ClickHouse once per group of
// sets, with the disjunction of their SQL (storage.SetsQuerier).

// matcherGroup is matcher sets asked for in one series query: where is
// the disjunction of their pushed-down SQL (a superset of the series
// they match: every row is checked against sets in Go), exact whether it
// is their exact disjunction.
type matcherGroup struct {
	sets  [][]*labels.Matcher
	where string
	exact bool
}

// matcherGroups packs matcher sets into as few series queries as keep
// each query's matcher SQL within matchersSQLMax: a delete_series call of
// a thousand match[] is a few queries, not a thousand.
func matcherGroups(sets [][]*labels.Matcher) []matcherGroup {
	var (
		out   []matcherGroup
		parts []string
		size  int
	)
	flush := func() {
		if len(parts) > 0 {
			out[len(out)-1].where = strings.Join(parts, " OR ")
			parts, size = nil, 0
		}
	}
	for _, ms := range sets {
		pushed, exact := pushdown(ms)
		sql := "(" + matchersSQL(pushed) + ")"
		if len(parts) == 0 || size+len(sql) > matchersSQLMax {
			flush()
			out = append(out, matcherGroup{exact: true})
		}
		g := &out[len(out)-1]
		g.sets = append(g.sets, ms)
		g.exact = g.exact && exact
		parts = append(parts, sql)
		size += len(sql) + len(" OR ")
	}
	flush()
	return out
}

// match reports whether lset matches every matcher of any of g's sets.
func (g *matcherGroup) match(lset labels.Labels) bool {
	return slices.ContainsFunc(g.sets, func(ms []*labels.Matcher) bool { return matchesAll(lset, ms) })
}

// SelectSeriesSets implements storage.SetsQuerier.
func (q *querier) SelectSeriesSets(ctx context.Context, hints *promstorage.SelectHints, sets [][]*labels.Matcher) promstorage.SeriesSet {
	mint, maxt := q.selectRange(hints)
	if mint > maxt {
		return promstorage.EmptySeriesSet()
	}
	if hints == nil {
		hints = &promstorage.SelectHints{}
	}
	limit := q.maxSeries()
	var overErr error
	byFP := map[uint64]resolved{}
	for _, g := range matcherGroups(sets) {
		list, over, first, err := q.resolveSeries(ctx, q.exactSeriesWhereCond(mint, maxt, g.where), g.match, g.exact, hints, limit)
		if err != nil {
			return promstorage.ErrSeriesSet(err)
		}
		if over {
			if hints.Limit > 0 && !first {
				return promstorage.ErrSeriesSet(tooManySeries(limit))
			}
			overErr = tooManySeries(limit)
		}
		for _, r := range list {
			byFP[r.fp] = r
		}
		if limit > 0 && len(byFP) > limit {
			overErr = tooManySeries(limit)
			break // as one set over the limit: the rest need not be read
		}
	}
	list := slices.SortedFunc(maps.Values(byFP), func(a, b resolved) int { return labels.Compare(a.lset, b.lset) })
	if hints.Limit > 0 && len(list) > hints.Limit {
		list = list[:hints.Limit]
	}
	return &labelsOnlySet{list: list, over: overErr}
}

// LabelNamesSets implements storage.SetsQuerier.
func (q *querier) LabelNamesSets(ctx context.Context, hints *promstorage.LabelHints, sets [][]*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.labelsOfSets(ctx, "label_names", hints, sets,
		func(where string) string {
			return "SELECT DISTINCT arrayJoin(label_names) AS n FROM " + q.table(seriesTable) + " WHERE " + where + " ORDER BY n" + limitClause(hints)
		},
		func(lset labels.Labels, add func(string)) { lset.Range(func(l labels.Label) { add(l.Name) }) })
}

// LabelValuesSets implements storage.SetsQuerier.
func (q *querier) LabelValuesSets(ctx context.Context, name string, hints *promstorage.LabelHints, sets [][]*labels.Matcher) ([]string, annotations.Annotations, error) {
	if name == "" || name == tenancy.Label {
		return []string{}, nil, nil
	}
	return q.labelsOfSets(ctx, "label_values", hints, sets,
		func(where string) string {
			return "SELECT DISTINCT v FROM (SELECT " + labelExpr(name) + " AS v FROM " + q.table(seriesTable) + " WHERE " + where + ") WHERE v != '' ORDER BY v" + limitClause(hints)
		},
		func(lset labels.Labels, add func(string)) {
			if v := lset.Get(name); v != "" {
				add(v)
			}
		})
}

// labelsOfSets answers LabelNamesSets and LabelValuesSets: per group, in
// SQL (sql of the group's WHERE clause) when the group's SQL is exact,
// else from its series matched in Go (of adds the strings of one series);
// the union sorted and cut to the hinted limit.
func (q *querier) labelsOfSets(ctx context.Context, kind string, hints *promstorage.LabelHints, sets [][]*labels.Matcher, sql func(where string) string, of func(labels.Labels, func(string))) ([]string, annotations.Annotations, error) {
	seen := map[string]struct{}{}
	for _, g := range matcherGroups(sets) {
		var (
			out []string
			err error
		)
		if g.exact {
			out, err = q.ts.s.queryStringsKind(ctx, kind, sql(q.exactSeriesWhereCond(q.mint, q.maxt, g.where)))
		} else {
			out, err = q.labelsInGo(ctx, g.where, g.match, hints, of)
		}
		if err != nil {
			return nil, nil, err
		}
		for _, v := range out {
			seen[v] = struct{}{}
		}
	}
	out := slices.Sorted(maps.Keys(seen))
	if hints != nil && hints.Limit > 0 && len(out) > hints.Limit {
		out = out[:hints.Limit]
	}
	if out == nil {
		out = []string{}
	}
	return out, nil, nil
}

// SelectSeriesSets implements storage.SetsQuerier, without the deleted
// series as Select.
func (d *deletedQuerier) SelectSeriesSets(ctx context.Context, hints *promstorage.SelectHints, sets [][]*labels.Matcher) promstorage.SeriesSet {
	tb, err := d.ts.s.refreshTombs(ctx, d.ts.id)
	if err != nil {
		return promstorage.ErrSeriesSet(err)
	}
	set := d.q.SelectSeriesSets(ctx, hints, sets)
	if tb == nil {
		return set
	}
	mint, maxt := d.q.selectRange(hints)
	return storage.WithoutDeleted(set, deletedOf(d.ts.id, tb), mint, maxt, false)
}

// LabelNamesSets implements storage.SetsQuerier.
func (d *deletedQuerier) LabelNamesSets(ctx context.Context, hints *promstorage.LabelHints, sets [][]*labels.Matcher) ([]string, annotations.Annotations, error) {
	if _, err := d.ts.s.refreshTombs(ctx, d.ts.id); err != nil {
		return nil, nil, err
	}
	return d.q.LabelNamesSets(ctx, hints, sets)
}

// LabelValuesSets implements storage.SetsQuerier.
func (d *deletedQuerier) LabelValuesSets(ctx context.Context, name string, hints *promstorage.LabelHints, sets [][]*labels.Matcher) ([]string, annotations.Annotations, error) {
	if _, err := d.ts.s.refreshTombs(ctx, d.ts.id); err != nil {
		return nil, nil, err
	}
	return d.q.LabelValuesSets(ctx, name, hints, sets)
}

var _ storage.SetsQuerier = (*deletedQuerier)(nil)
