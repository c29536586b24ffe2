package promql

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	pql "github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/stats"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// query serves /query: an instant PromQL query at time (default now).
func (a *API) query(r *http.Request, t storage.Tenant) (result, error) {
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		return result{}, err
	}
	ts, err := parseTimeParam(r, "time", time.Now())
	if err != nil {
		return result{}, err
	}
	return a.runQuery(r, t, limit, func(ctx context.Context, opts pql.QueryOpts, q string) (pql.Query, error) {
		return a.engineFor(t.ID()).NewInstantQuery(ctx, a.queryable(t), opts, q, ts)
	})
}

// queryRange serves /query_range: a PromQL query over start, end and step.
func (a *API) queryRange(r *http.Request, t storage.Tenant) (result, error) {
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		return result{}, err
	}
	p, err := parseRangeParams(r)
	if err != nil {
		return result{}, err
	}
	return a.runQuery(r, t, limit, func(ctx context.Context, opts pql.QueryOpts, q string) (pql.Query, error) {
		// Split in time unless the response carries the query's statistics.
		if r.FormValue("stats") != "" {
			return a.engineFor(t.ID()).NewRangeQuery(ctx, a.queryable(t), opts, q, p.start, p.end, p.step)
		}
		return a.newRangeQuery(ctx, t, a.queryable(t), opts, q, p.start, p.end, p.step, false)
	})
}

// queryable is the storage one query of the request's tenant reads: the
// tenant's view, limited to the tenant's series per query.
func (a *API) queryable(t storage.Tenant) promstorage.Queryable {
	limit, setting := a.seriesLimit(t.ID())
	return newLimitedQueryable(t.Store, limit, setting)
}

// runQuery builds a query with newQuery, runs it and renders its result,
// as Prometheus' query and queryRange do after their own parameters.
func (a *API) runQuery(r *http.Request, t storage.Tenant, limit int,
	newQuery func(context.Context, pql.QueryOpts, string) (pql.Query, error),
) (result, error) {
	ctx := r.Context()
	timeout, err := parseTimeout(r)
	if err != nil {
		return result{}, err
	}
	// The parse counts against the timeout too.
	ctx, cancel := context.WithTimeout(ctx, a.queryTimeout(timeout))
	defer cancel()
	opts, err := a.queryOpts(r, t)
	if err != nil {
		return result{}, badData(err)
	}
	qry, err := a.prepare(ctx, t.ID(), r.FormValue("query"), timeout, func(ctx context.Context, q string) (pql.Query, error) {
		return newQuery(ctx, opts, q)
	})
	if err != nil {
		return result{}, err
	}
	res := qry.Exec(ctx)
	if res.Err != nil {
		qry.Close()
		return result{}, a.tenantQueryError(t.ID(), res.Err, timeout)
	}
	warnings := res.Warnings
	if limit > 0 && truncate(res, limit) {
		warnings = warnings.Add(errors.New("results truncated due to limit"))
	}
	statsParam := r.FormValue("stats")
	if warn := statsParamWarning(statsParam); warn != nil {
		warnings = warnings.Add(warn)
	}
	var qs stats.QueryStats
	if statsParam != "" {
		qs = stats.NewQueryStats(qry.Stats())
	}
	return result{
		data:     &queryData{resultType: res.Value.Type(), result: res.Value, stats: qs},
		warnings: warnings,
		finalize: qry.Close,
	}, nil
}

// queryTimeout is the bound of one query: --query.timeout, or the
// request's shorter timeout.
func (a *API) queryTimeout(timeout time.Duration) time.Duration {
	if timeout > 0 && timeout < a.cfg.Timeout {
		return timeout
	}
	return a.cfg.Timeout
}

// queryOpts are the engine options of one query: the request's lookback
// delta and per-step stats, and the tenant's samples limit.
func (a *API) queryOpts(r *http.Request, t storage.Tenant) (pql.QueryOpts, error) {
	var lookback time.Duration
	if s := r.FormValue("lookback_delta"); s != "" {
		d, err := parseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("error parsing lookback delta duration: %w", err)
		}
		lookback = d
	}
	var useST *bool
	if v := r.Header.Get("X-Prometheus-Use-Start-Timestamps"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("error parsing X-Prometheus-Use-Start-Timestamps header: %w", err)
		}
		useST = &b
	}
	perStep := r.FormValue("stats") == "all"
	return pql.NewPrometheusQueryOpts(perStep, lookback, useST), nil
}

// constructionError maps an error building a query: a timeout or
// cancellation as such, anything else (a syntax error) as a bad query
// parameter.
func (a *API) constructionError(err error, timeout time.Duration) error {
	var (
		timedOut pql.ErrQueryTimeout
		canceled pql.ErrQueryCanceled
	)
	if errors.As(err, &timedOut) || errors.As(err, &canceled) {
		return a.queryError(err, timeout)
	}
	return invalidParam(err, "query")
}

// truncate cuts a vector or matrix result to limit series and reports
// whether it did.
func truncate(res *pql.Result, limit int) bool {
	switch v := res.Value.(type) {
	case pql.Matrix:
		if len(v) > limit {
			res.Value = v[:limit]
			return true
		}
	case pql.Vector:
		if len(v) > limit {
			res.Value = v[:limit]
			return true
		}
	}
	return false
}

// queryExemplars serves /query_exemplars as Prometheus does: the
// exemplars of the series the query's selectors match (every selector of
// the query, parser.ExtractSelectors), with start <= t <= end, from the
// tenant's exemplar storage. The query's text is bounded as any query's;
// the answer by the tenant's max_exemplars, all the store keeps.
func (a *API) queryExemplars(r *http.Request, t storage.Tenant) (result, error) {
	tr, err := parseRange(r)
	if err != nil {
		return result{}, err
	}
	if tr.end.Before(tr.start) {
		return result{}, badData(errors.New("end timestamp must not be before start timestamp"))
	}
	expr, err := a.parseExpr(t, r.FormValue("query"))
	if err != nil {
		return result{}, badData(err)
	}
	selectors := parser.ExtractSelectors(expr)
	if len(selectors) < 1 {
		return result{}, nil // Prometheus answers 204
	}
	eq, err := t.Store.ExemplarQuerier(r.Context())
	if err != nil {
		return result{}, a.queryError(err, 0)
	}
	res, err := eq.Select(timestamp.FromTime(tr.start), timestamp.FromTime(tr.end), selectors...)
	if err != nil {
		return result{}, a.queryError(err, 0)
	}
	if err := r.Context().Err(); err != nil {
		return result{}, a.queryError(err, 0)
	}
	for i := range res { // the tenant's own label never leaves
		res[i].SeriesLabels = labels.NewBuilder(res[i].SeriesLabels).Del(tenancy.Label).Labels()
	}
	return result{data: exemplarList(res)}, nil
}

// formatQuery serves /format_query: the query, pretty-printed.
func (a *API) formatQuery(r *http.Request, t storage.Tenant) (result, error) {
	expr, err := a.parseExpr(t, r.FormValue("query"))
	if err != nil {
		return result{}, invalidParam(err, "query")
	}
	return result{data: expr.Pretty(0)}, nil
}

// parseQuery serves /parse_query: the query's syntax tree as JSON.
func (a *API) parseQuery(r *http.Request, t storage.Tenant) (result, error) {
	expr, err := a.parseExpr(t, r.FormValue("query"))
	if err != nil {
		return result{}, invalidParam(err, "query")
	}
	return result{data: translateAST(expr)}, nil
}

// parseExpr parses a query text that is not run, within the bounds of the
// request's tenant.
func (a *API) parseExpr(t storage.Tenant, q string) (parser.Expr, error) {
	if err := a.checkLength(t.ID(), "query is", q); err != nil {
		return nil, err
	}
	return a.parser.ParseExpr(q)
}
