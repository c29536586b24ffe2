package promql

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	pql "github.com/prometheus/prometheus/promql"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// Limits are the per-tenant query limits (the router admits queries by
// rate and concurrency). *tenancy.Limits implements it; implementations
// must be safe for concurrent use.
type Limits interface {
	// MaxSeriesPerQuery is the most series one query may load; 0 means
	// unlimited.
	MaxSeriesPerQuery(id tenancy.ID) int
	// MaxSamplesPerQuery is the most samples one query may hold in memory
	// at once (an engine MaxSamples of the tenant's own); 0 means
	// unlimited.
	MaxSamplesPerQuery(id tenancy.ID) int
	// For returns the limits of tenant id, of which the query API reads
	// the bounds of query texts and subqueries (MaxQueryLength,
	// MaxSubquerySteps, MaxSubqueryTotalSteps; 0 means none below the
	// --query.* bounds).
	For(id tenancy.ID) tenancy.TenantLimits
}

// The per-tenant query limits, by the setting that raises them.
func maxSeriesSetting() tenancy.Setting {
	return tenancy.PerTenant("--limits.max-series-per-query", "max_series_per_query")
}

func maxSamplesSetting() tenancy.Setting {
	return tenancy.PerTenant("--limits.max-samples-per-query", "max_samples_per_query")
}

// seriesLimit returns the series limit of one query of tenant id and the
// setting that raises it; 0 means none.
func (a *API) seriesLimit(id tenancy.ID) (int, tenancy.Setting) {
	limit, setting := a.cfg.MaxSeries, tenancy.Global("--query.max-series")
	if a.limits != nil {
		if t := a.limits.MaxSeriesPerQuery(id); t > 0 && (limit == 0 || t < limit) {
			limit, setting = t, maxSeriesSetting()
		}
	}
	return limit, setting
}

// limitedQueryable counts the series every Select of one query returns
// and fails the query when they exceed limit.
type limitedQueryable struct {
	storage.TenantStore
	limit   int
	setting tenancy.Setting
	n       atomic.Int64
}

// newLimitedQueryable returns ts, limited to limit series per query when
// limit > 0. Use one per query: the count spans all its Selects.
func newLimitedQueryable(ts storage.TenantStore, limit int, setting tenancy.Setting) promstorage.Queryable {
	if limit <= 0 {
		return ts
	}
	return &limitedQueryable{TenantStore: ts, limit: limit, setting: setting}
}

func (q *limitedQueryable) Querier(mint, maxt int64) (promstorage.Querier, error) {
	inner, err := q.TenantStore.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return &limitedQuerier{Querier: inner, q: q}, nil
}

func (q *limitedQueryable) tooMany() error {
	return apierror.Limit(apierror.Execution, q.setting, "query would load more than %d series", q.limit)
}

type limitedQuerier struct {
	promstorage.Querier
	q *limitedQueryable
}

func (lq *limitedQuerier) Select(ctx context.Context, sortSeries bool, hints *promstorage.SelectHints, ms ...*labels.Matcher) promstorage.SeriesSet {
	return &limitedSeriesSet{SeriesSet: lq.Querier.Select(ctx, sortSeries, hints, ms...), q: lq.q}
}

type limitedSeriesSet struct {
	promstorage.SeriesSet
	q   *limitedQueryable
	err error
}

func (s *limitedSeriesSet) Next() bool {
	if s.err != nil || !s.SeriesSet.Next() {
		return false
	}
	if s.q.n.Add(1) > int64(s.q.limit) {
		s.err = s.q.tooMany()
		return false
	}
	return true
}

func (s *limitedSeriesSet) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.SeriesSet.Err()
}

func (s *limitedSeriesSet) Warnings() annotations.Annotations { return s.SeriesSet.Warnings() }

// tenantQueryError is queryError for a query of tenant id: when the
// tenant's own engine (a max_samples_per_query below --query.max-samples)
// refused it for too many samples, the error names that setting.
func (a *API) tenantQueryError(id tenancy.ID, err error, timeout time.Duration) error {
	var tooMany pql.ErrTooManySamples
	if errors.As(err, &tooMany) && a.engineFor(id) != a.engine {
		return apierror.Limit(apierror.Execution, maxSamplesSetting(), "%s: more than the tenant's %d samples", err, a.limits.MaxSamplesPerQuery(id))
	}
	return a.queryError(err, timeout)
}

// queryError turns an error of the engine into one apierror
// classifies as Prometheus would (timeout and canceled 503, too many
// samples 422 execution, storage errors by their own kind, everything else
// 422 execution), naming the setting that raises a limit.
func (a *API) queryError(err error, timeout time.Duration) error {
	var (
		canceled    pql.ErrQueryCanceled
		timedOut    pql.ErrQueryTimeout
		tooMany     pql.ErrTooManySamples
		tooManyRead pql.ErrTooManySamplesRead
		tooManySer  pql.ErrTooManySeries
		st          pql.ErrStorage
		ae          *apierror.Error
	)
	switch {
	case errors.As(err, &ae):
		return ae // our own limit errors say everything; drop the engine's "expanding series:"
	case errors.As(err, &canceled), errors.Is(err, context.Canceled):
		return &apierror.Error{Kind: apierror.Canceled, Err: err}
	case errors.As(err, &timedOut), errors.Is(err, context.DeadlineExceeded):
		// The settings name their values.
		setting := tenancy.Global("--query.timeout")
		setting.Flag = fmt.Sprintf("--query.timeout=%s", a.cfg.Timeout)
		if timeout > 0 && timeout < a.cfg.Timeout {
			setting.Flag = fmt.Sprintf("the timeout parameter %s (at most --query.timeout=%s)", timeout, a.cfg.Timeout)
		}
		return apierror.Limit(apierror.Timeout, setting, "%s", err)
	case errors.As(err, &tooMany):
		setting := tenancy.Global("--query.max-samples")
		setting.Flag = fmt.Sprintf("--query.max-samples=%d", a.cfg.MaxSamples)
		return apierror.Limit(apierror.Execution, setting, "%s", err)
	case errors.As(err, &tooManyRead):
		return apierror.Limit(apierror.Execution, maxSamplesSetting(), "%s", err)
	case errors.As(err, &tooManySer):
		return apierror.Limit(apierror.Execution, maxSeriesSetting(), "%s", err)
	case errors.As(err, &st):
		if errors.Is(st.Err, storage.ErrUnavailable) {
			return st.Err
		}
		return &apierror.Error{Kind: apierror.Internal, Err: err}
	case errors.Is(err, storage.ErrUnavailable):
		return err
	}
	return &apierror.Error{Kind: apierror.Execution, Err: err}
}
