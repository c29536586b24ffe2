package promql

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/timestamp"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// The TSDB admin endpoints of Prometheus' HTTP API that Luminate serves:
// POST|PUT /api/v1/admin/tsdb/delete_series (match[] required, start and
// end optional) and /api/v1/admin/tsdb/clean_tombstones, both answering
// 204. They act on the token's tenant only and need the admin scope: the
// router checks it (AdminRoutes). Every call is logged (the audit line,
// "tsdb admin") whatever its outcome.

// AdminRoutes lists the admin endpoints, under /api/v1 and
// /prometheus/api/v1, for the router to mount with scope admin. Their
// calls are logged to logger.
func (a *API) AdminRoutes(logger *slog.Logger) []Endpoint {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	methods := []string{http.MethodPost, http.MethodPut}
	var out []Endpoint
	for _, prefix := range []string{"/api/v1", "/prometheus/api/v1"} {
		for _, rt := range []struct {
			path string
			fn   func(*http.Request, storage.Tenant, *slog.Logger) error
		}{
			{"/admin/tsdb/delete_series", a.deleteSeries},
			{"/admin/tsdb/clean_tombstones", a.cleanTombstones},
		} {
			path := prefix + rt.path
			out = append(out, Endpoint{Methods: methods, Path: path, Name: path, Serve: func(r *http.Request, t storage.Tenant) (any, error) {
				err := rt.fn(r, t, logger)
				errorType := ""
				if err != nil {
					errorType = apierror.Classify(err).Kind.PromType()
				}
				a.m.queries.WithLabelValues(rt.path, errorType).Inc()
				return nil, err // nil: 204
			}})
		}
	}
	return out
}

// parseAdminForm parses the form of an admin request, its body bounded.
func parseAdminForm(r *http.Request) error {
	if r.Body != nil {
		r.Body = http.MaxBytesReader(nil, r.Body, maxFormBytes)
	}
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return apierror.New(apierror.TooLarge, "request body larger than %d bytes", maxFormBytes)
		}
		return badData(fmt.Errorf("error parsing form values: %w", err))
	}
	return nil
}

// maxDeleteSeries is the most series one delete_series call of tenant id
// may delete (0: unlimited).
func (a *API) maxDeleteSeries(id tenancy.ID) int {
	if a.limits == nil {
		return tenancy.DefaultTenantLimits().MaxDeleteSeries
	}
	return a.limits.For(id).MaxDeleteSeries
}

// deleteSeries deletes the samples of the series matching any match[] in
// [start, end] (default: all time), as Prometheus' delete_series does.
func (a *API) deleteSeries(r *http.Request, t storage.Tenant, logger *slog.Logger) (err error) {
	started := time.Now()
	if err := parseAdminForm(r); err != nil {
		return err
	}
	selectors := r.Form["match[]"]
	var res storage.DeleteResult
	var start, end time.Time
	defer func() {
		attrs := []any{slog.String("tenant", t.ID().String()), slog.String("subject", t.Principal.Subject), slog.String("endpoint", "delete_series"),
			slog.String("match", strings.Join(selectors, " ")), slog.Int("series", res.Series), slog.Int("series_whole", res.Whole),
			slog.Duration("duration", time.Since(started))}
		if !start.IsZero() {
			attrs = append(attrs, slog.Int64("start", timestamp.FromTime(start)), slog.Int64("end", timestamp.FromTime(end)))
		}
		if err != nil {
			logger.WarnContext(r.Context(), "tsdb admin", append(attrs, slog.String("outcome", "refused"), slog.Any("err", err))...)
			return
		}
		logger.InfoContext(r.Context(), "tsdb admin", append(attrs, slog.String("outcome", "deleted"))...)
	}()
	if len(selectors) == 0 {
		return badData(errors.New("no match[] parameter provided"))
	}
	sets, err := a.parseMatchers(t, selectors)
	if err != nil {
		return badData(err)
	}
	if start, err = parseTimeParam(r, "start", minTime); err != nil {
		return err
	}
	if end, err = parseTimeParam(r, "end", maxTime); err != nil {
		return err
	}
	limit := a.maxDeleteSeries(t.ID())
	res, err = t.Store.DeleteSeries(r.Context(), storage.DeleteRequest{
		Matchers: sets, Start: timestamp.FromTime(start), End: timestamp.FromTime(end), MaxSeries: limit,
	})
	var le *storage.DeleteLimitError
	if errors.As(err, &le) {
		return apierror.Limit(apierror.TooLarge, storage.DeleteLimitSetting(),
			"delete_series matches more than %d series, the most one call may delete; nothing was deleted: narrow match[], start and end, or", le.Limit)
	}
	return err
}

// cleanTombstones reclaims the space of the tenant's deletions.
func (a *API) cleanTombstones(r *http.Request, t storage.Tenant, logger *slog.Logger) error {
	started := time.Now()
	if err := parseAdminForm(r); err != nil {
		return err
	}
	err := t.Store.CleanTombstones(r.Context())
	attrs := []any{slog.String("tenant", t.ID().String()), slog.String("subject", t.Principal.Subject), slog.String("endpoint", "clean_tombstones"), slog.Duration("duration", time.Since(started))}
	if err != nil {
		logger.WarnContext(r.Context(), "tsdb admin", append(attrs, slog.String("outcome", "failed"), slog.Any("err", err))...)
		return err
	}
	logger.InfoContext(r.Context(), "tsdb admin", append(attrs, slog.String("outcome", "cleaned"))...)
	return nil
}
