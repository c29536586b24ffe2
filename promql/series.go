package promql

import (
	"errors"
	"net/http"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// The metadata endpoints answer from the tenant's index: label names and
// values come from Querier.LabelNames/LabelValues (with the matchers), the
// series list from Select with the "series" hint, never from samples.

// checkContextEvery is how many series /series lists between checks of
// the request's context.
const checkContextEvery = 128

// labelNames serves /labels.
func (a *API) labelNames(r *http.Request, rc *requestContext) (result, error) {
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		return result{}, err
	}
	tr, err := parseRange(r)
	if err != nil {
		return result{}, err
	}
	sets, err := parseMatchers(a.parser, r.Form["match[]"])
	if err != nil {
		return result{}, badData(err)
	}
	q, err := rc.store.Querier(timestamp.FromTime(tr.start), timestamp.FromTime(tr.end))
	if err != nil {
		return result{}, a.queryError(err, 0)
	}
	defer q.Close()

	hints := &promstorage.LabelHints{Limit: hintLimit(limit)}
	var (
		names    []string
		warnings annotations.Annotations
	)
	if len(sets) > 1 {
		set := map[string]struct{}{}
		for _, ms := range sets {
			vals, ws, err := q.LabelNames(r.Context(), hints, ms...)
			if err != nil {
				return result{}, a.queryError(err, 0)
			}
			warnings.Merge(ws)
			for _, v := range vals {
				set[v] = struct{}{}
			}
		}
		names = make([]string, 0, len(set))
		for v := range set {
			names = append(names, v)
		}
		slices.Sort(names)
	} else {
		var ms []*labels.Matcher
		if len(sets) == 1 {
			ms = sets[0]
		}
		names, warnings, err = q.LabelNames(r.Context(), hints, ms...)
		if err != nil {
			return result{}, a.queryError(err, 0)
		}
	}
	if names == nil {
		names = []string{}
	}
	if limit > 0 && len(names) > limit {
		names = names[:limit]
		warnings = warnings.Add(errors.New("results truncated due to limit"))
	}
	return result{data: names, warnings: warnings}, nil
}

// labelValues serves /label/{name}/values.
func (a *API) labelValues(r *http.Request, rc *requestContext) (result, error) {
	name, err := parseLabelName(r.PathValue("name"))
	if err != nil {
		return result{}, err
	}
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		return result{}, err
	}
	tr, err := parseRange(r)
	if err != nil {
		return result{}, err
	}
	sets, err := parseMatchers(a.parser, r.Form["match[]"])
	if err != nil {
		return result{}, badData(err)
	}
	q, err := rc.store.Querier(timestamp.FromTime(tr.start), timestamp.FromTime(tr.end))
	if err != nil {
		return result{}, a.queryError(err, 0)
	}
	defer q.Close()

	hints := &promstorage.LabelHints{Limit: hintLimit(limit)}
	var (
		vals     []string
		warnings annotations.Annotations
	)
	if len(sets) > 1 {
		set := map[string]struct{}{}
		for _, ms := range sets {
			vs, ws, err := q.LabelValues(r.Context(), name, hints, ms...)
			if err != nil {
				return result{}, a.queryError(err, 0)
			}
			warnings.Merge(ws)
			for _, v := range vs {
				set[v] = struct{}{}
			}
		}
		vals = make([]string, 0, len(set))
		for v := range set {
			vals = append(vals, v)
		}
	} else {
		var ms []*labels.Matcher
		if len(sets) == 1 {
			ms = sets[0]
		}
		vals, warnings, err = q.LabelValues(r.Context(), name, hints, ms...)
		if err != nil {
			return result{}, a.queryError(err, 0)
		}
		if vals == nil {
			vals = []string{}
		}
	}
	slices.Sort(vals)
	if limit > 0 && len(vals) > limit {
		vals = vals[:limit]
		warnings = warnings.Add(errors.New("results truncated due to limit"))
	}
	return result{data: vals, warnings: warnings}, nil
}

// series serves /series: the label sets of the series matching match[].
func (a *API) series(r *http.Request, rc *requestContext) (result, error) {
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
	sets, err := parseMatchers(a.parser, r.Form["match[]"])
	if err != nil {
		return result{}, invalidParam(err, "match[]")
	}
	start, end := timestamp.FromTime(tr.start), timestamp.FromTime(tr.end)
	seriesLimit, setting := a.seriesLimit(rc.principal.Tenant)
	q, err := newLimitedQueryable(rc.store, seriesLimit, setting).Querier(start, end)
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
	if len(sets) > 1 {
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
