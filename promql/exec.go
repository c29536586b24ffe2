package promql

import (
	"context"
	"errors"
	"time"

	"github.com/luminate-io/luminate/storage"
	"github.com/prometheus/prometheus/model/labels"
	pql "github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/annotations"
)

// ExecRequest is one PromQL query run through Exec.
type ExecRequest struct {
	// Query is the PromQL expression. A syntax error is an InvalidArgument
	// error naming the field "query".
	Query string
	// Start and End bound a range query (Start <= End); an instant query
	// has Start equal to End and Step 0.
	Start, End time.Time
	// Step is the resolution of a range query; 0 for an instant query.
	Step time.Duration
	// Lookback overrides --query.lookback-delta for this query when > 0.
	Lookback time.Duration
	// HistogramKinds asks ExecResult.IntegerHistogram to tell which native
	// histogram samples the query read were stored as integer histograms
	// (the engine turns them all into float histograms). It costs a map
	// entry per integer histogram sample read; meant for plain selectors.
	HistogramKinds bool
}

// ExecResult is the result of Exec. Call Close when done with Value: it
// returns the query's memory to the engine.
type ExecResult struct {
	Value    parser.Value
	Warnings annotations.Annotations
	// SeriesScanned is the number of series the query's selectors loaded
	// (a series two selectors load counts twice).
	SeriesScanned int64
	// SamplesScanned is the number of samples the engine read.
	SamplesScanned int64

	close func()
	kinds *histogramKinds
}

// IntegerHistogram reports whether the sample of the series ls at t was
// read from the store as an integer histogram; false unless the request
// asked for HistogramKinds. It holds for a selector's own samples, whose
// labels are the stored series' labels.
func (r *ExecResult) IntegerHistogram(ls labels.Labels, t int64) bool {
	return r.kinds != nil && r.kinds.integer(ls, t)
}

// Close releases the result.
func (r *ExecResult) Close() {
	if r != nil && r.close != nil {
		r.close()
		r.close = nil
	}
}

// Timeout is --query.timeout, the bound of one query, which callers of
// Exec also apply to the index reads they make themselves.
func (a *API) Timeout() time.Duration { return a.cfg.Timeout }

// Exec runs one PromQL query over the view of tenant t, for APIs other
// than the Prometheus HTTP API (the native query API). It applies the
// limits /api/v1/query does (series and samples, query texts,
// --query.timeout and --query.max-samples), but does not admit the query:
// the caller's route is a Query route, which the router admits once (the
// tenant's query rate and concurrent queries). Its errors are classified
// by apierror and name the setting that raises a limit.
func (a *API) Exec(ctx context.Context, t storage.Tenant, req ExecRequest) (*ExecResult, error) {
	id := t.ID()
	if req.Step < 0 || req.End.Before(req.Start) || (req.Step == 0 && !req.Start.Equal(req.End)) {
		return nil, errors.New("promql: Exec needs Start == End for an instant query, Start <= End and a positive Step for a range query")
	}
	if req.Step > 0 && req.End.Sub(req.Start)/req.Step > maxPointsPerSeries {
		return nil, badData(errors.New("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"))
	}
	limit, setting := a.seriesLimit(id)
	queryable := newLimitedQueryable(t.Store, limit, setting)
	var kinds *histogramKinds
	if req.HistogramKinds {
		kinds = &histogramKinds{series: map[string]map[int64]struct{}{}}
		queryable = kindQueryable{Queryable: queryable, kinds: kinds}
	}
	opts := pql.NewPrometheusQueryOpts(false, req.Lookback, nil)
	// The parse counts against the timeout too.
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	qry, err := a.prepare(ctx, id, req.Query, 0, func(ctx context.Context, q string) (pql.Query, error) {
		if req.Step == 0 {
			return a.engineFor(id).NewInstantQuery(ctx, queryable, opts, q, req.Start)
		}
		if kinds != nil { // reads the selectors' own samples: one query
			return a.engineFor(id).NewRangeQuery(ctx, queryable, opts, q, req.Start, req.End, req.Step)
		}
		return a.newRangeQuery(ctx, t, queryable, opts, q, req.Start, req.End, req.Step, true)
	})
	if err != nil {
		return nil, err
	}
	res := qry.Exec(ctx)
	if res.Err != nil {
		qry.Close()
		return nil, a.tenantQueryError(id, res.Err, 0)
	}
	out := &ExecResult{Value: res.Value, Warnings: res.Warnings, close: qry.Close, kinds: kinds}
	if st := qry.Stats(); st != nil && st.Samples != nil {
		out.SeriesScanned = st.Samples.TotalSeries
		out.SamplesScanned = st.Samples.SamplesRead
	}
	return out, nil
}
