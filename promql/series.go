package promql

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/luminate-io/luminate/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// The metadata endpoints answer from the tenant's index: label names and
// values come from Querier.LabelNames/LabelValues (with the matchers), the
// series list from Select with the "series" hint, never from samples.

// checkContextEvery is how many series /series lists between checks of
// the request's context.
const checkContextEvery = 128

// labelNames serves /labels.
func (a *API) labelNames(r *http.Request, t storage.Tenant) (result, error) {
	return a.labelQuery(r, t, func(ctx context.Context, q promstorage.Querier, hints *promstorage.LabelHints, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelNames(ctx, hints, ms...)
	}, func(ctx context.Context, q storage.SetsQuerier, hints *promstorage.LabelHints, sets [][]*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelNamesSets(ctx, hints, sets)
	})
}

// labelValues serves /label/{name}/values.
func (a *API) labelValues(r *http.Request, t storage.Tenant) (result, error) {
	name, err := parseLabelName(r.PathValue("name"))
	if err != nil {
		return result{}, err
	}
	return a.labelQuery(r, t, func(ctx context.Context, q promstorage.Querier, hints *promstorage.LabelHints, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelValues(ctx, name, hints, ms...)
	}, func(ctx context.Context, q storage.SetsQuerier, hints *promstorage.LabelHints, sets [][]*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelValuesSets(ctx, name, hints, sets)
	})
}

// labelQuery answers /labels and /label/{name}/values: it parses limit,
// start, end and match[], asks get once per matcher set (once without
// matchers when there is none; getSets once for all sets when the store
// answers several at once), and returns the sorted union, truncated to
// limit with a warning.
func (a *API) labelQuery(r *http.Request, t storage.Tenant, get func(context.Context, promstorage.Querier, *promstorage.LabelHints, []*labels.Matcher) ([]string, annotations.Annotations, error),
	getSets func(context.Context, storage.SetsQuerier, *promstorage.LabelHints, [][]*labels.Matcher) ([]string, annotations.Annotations, error)) (result, error) {
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		return result{}, err
	}
	tr, err := parseRange(r)
	if err != nil {
		return result{}, err
	}
	sets, err := a.parseMatchers(t, r.Form["match[]"])
	if err != nil {
		return result{}, badData(err)
	}
	q, err := t.Store.Querier(timestamp.FromTime(tr.start), timestamp.FromTime(tr.end))
	if err != nil {
		return result{}, a.queryError(err, 0)
	}
	defer q.Close()

	hints := &promstorage.LabelHints{Limit: hintLimit(limit)}
	var (
		out      []string
		warnings annotations.Annotations
	)
	if sq, ok := setsQuerier(q); ok && len(sets) > 1 {
		out, warnings, err = getSets(r.Context(), sq, hints, sets)
		if err != nil {
			return result{}, a.queryError(err, 0)
		}
	} else if len(sets) > 1 {
		set := map[string]struct{}{}
		for _, ms := range sets {
			vals, ws, err := get(r.Context(), q, hints, ms)
			if err != nil {
				return result{}, a.queryError(err, 0)
			}
			warnings.Merge(ws)
			for _, v := range vals {
				set[v] = struct{}{}
			}
		}
		out = make([]string, 0, len(set))
		for v := range set {
			out = append(out, v)
		}
	} else {
		var ms []*labels.Matcher
		if len(sets) == 1 {
			ms = sets[0]
		}
		out, warnings, err = get(r.Context(), q, hints, ms)
		if err != nil {
			return result{}, a.queryError(err, 0)
		}
	}
	if out == nil {
		out = []string{}
	}
	slices.Sort(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
		warnings = warnings.Add(errors.New("results truncated due to limit"))
	}
	return result{data: out, warnings: warnings}, nil
}

// series serves /series: the label sets of the series matching match[].
func (a *API) series(r *http.Request, t storage.Tenant) (result, error) {
	if len(r.Form["match[]"]) == 0 {
		return result{}, badData(errors.New("no match[] parameter provided"))
	}
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		return result{}, err
	}
	tr, err := parseRange(r)
	if err != nil {
		return result{}, err
	}
	sets, err := a.parseMatchers(t, r.Form["match[]"])
	if err != nil {
		return result{}, invalidParam(err, "match[]")
	}
	start, end := timestamp.FromTime(tr.start), timestamp.FromTime(tr.end)
	seriesLimit, setting := a.seriesLimit(t.ID())
	q, err := newLimitedQueryable(t.Store, seriesLimit, setting).Querier(start, end)
	if err != nil {
		return result{}, a.queryError(err, 0)
	}
	defer q.Close()

	ctx := r.Context()
	hints := &promstorage.SelectHints{
		Start: start,
		End:   end,
		Func:  "series", // no samples needed
		Limit: hintLimit(limit),
	}
	var set promstorage.SeriesSet
	if sq, ok := setsQuerier(q); ok && len(sets) > 1 {
		set = sq.SelectSeriesSets(ctx, hints, sets)
	} else if len(sets) > 1 {
		var all []promstorage.SeriesSet
		for _, ms := range sets {
			all = append(all, q.Select(ctx, true, hints, ms...))
		}
		set = promstorage.NewMergeSeriesSet(all, 0, promstorage.ChainedSeriesMerge)
	} else {
		set = q.Select(ctx, true, hints, sets[0]...) // sorted output, as users read it
	}

	out := seriesList{}
	warnings := set.Warnings()
	for i := 1; set.Next(); i++ {
		if i%checkContextEvery == 0 {
			if err := ctx.Err(); err != nil {
				return result{}, a.queryError(err, 0)
			}
		}
		out = append(out, set.At().Labels())
		if limit > 0 && len(out) > limit {
			out = out[:limit]
			warnings = warnings.Add(errors.New("results truncated due to limit"))
			return result{data: out, warnings: warnings}, nil
		}
	}
	if err := set.Err(); err != nil {
		return result{}, a.queryError(err, 0)
	}
	return result{data: out, warnings: warnings}, nil
}

// setsQuerier returns q's storage.SetsQuerier, through the series limit's
// wrapper, if the store has one.
func setsQuerier(q promstorage.Querier) (storage.SetsQuerier, bool) {
	if lq, ok := q.(*limitedQuerier); ok {
		sq, ok := lq.Querier.(storage.SetsQuerier)
		if !ok {
			return nil, false
		}
		return limitedSetsQuerier{SetsQuerier: sq, q: lq.q}, true
	}
	sq, ok := q.(storage.SetsQuerier)
	return sq, ok
}

// limitedSetsQuerier counts the series of SelectSeriesSets as
// limitedQuerier counts those of Select.
type limitedSetsQuerier struct {
	storage.SetsQuerier
	q *limitedQueryable
}

func (lq limitedSetsQuerier) SelectSeriesSets(ctx context.Context, hints *promstorage.SelectHints, sets [][]*labels.Matcher) promstorage.SeriesSet {
	return &limitedSeriesSet{SeriesSet: lq.SetsQuerier.SelectSeriesSets(ctx, hints, sets), q: lq.q}
}

// parseMatchers parses the request's match[] selectors within the bounds
// of its tenant: together they count as one query text.
func (a *API) parseMatchers(t storage.Tenant, selectors []string) ([][]*labels.Matcher, error) {
	if err := a.checkLength(t.ID(), "match[] selectors are", selectors...); err != nil {
		return nil, err
	}
	return parseMatchers(a.parser, selectors)
}
