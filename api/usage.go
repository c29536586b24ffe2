package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"
	"unsafe"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// UsagePath is the operator's per-tenant usage report (chargeback): on the
// internal listener without a token, on the main one for operator tokens.
const UsagePath = "/api/v1/usage"

// CountingTenants wraps a TenantOpener so that the samples and exemplars
// each tenant's appenders commit are counted in u: every write path
// (remote write, OTLP, native) stores through the views it opens.
func CountingTenants(t TenantOpener, u *tenancy.Usage) TenantOpener {
	return countingOpener{t, u}
}

type countingOpener struct {
	TenantOpener
	u *tenancy.Usage
}

func (o countingOpener) ForTenant(id tenancy.ID) storage.TenantStore {
	return countingStore{o.TenantOpener.ForTenant(id), id, o.u}
}

type countingStore struct {
	storage.TenantStore
	id tenancy.ID
	u  *tenancy.Usage
}

func (s countingStore) AppenderV2(ctx context.Context) promstorage.AppenderV2 {
	app := s.TenantStore.AppenderV2(ctx)
	c := &countingAppender{AppenderV2: app, id: s.id, u: s.u}
	if ex, ok := app.(promstorage.ExemplarAppenderV2); ok {
		return &countingExemplarAppender{countingAppender: c, ex: ex}
	}
	return c
}

// countingAppender counts what it appends and adds it to the usage when
// the commit succeeds.
type countingAppender struct {
	promstorage.AppenderV2
	id                 tenancy.ID
	u                  *tenancy.Usage
	samples, exemplars int
}

func (a *countingAppender) Append(ref promstorage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AppendV2Options) (promstorage.SeriesRef, error) {
	ref, err := a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
	var partial *promstorage.AppendPartialError
	if err == nil || errors.As(err, &partial) {
		// A partial error refused exemplars, the sample is appended.
		a.samples++
		a.exemplars += len(opts.Exemplars)
		if partial != nil {
			a.exemplars -= len(partial.ExemplarErrors)
		}
	}
	return ref, err
}

func (a *countingAppender) Commit() error {
	err := a.AppenderV2.Commit()
	if err == nil {
		a.u.AddSamples(a.id, a.samples)
		a.u.AddExemplars(a.id, max(a.exemplars, 0))
	}
	a.samples, a.exemplars = 0, 0
	return err
}

func (a *countingAppender) Rollback() error {
	a.samples, a.exemplars = 0, 0
	return a.AppenderV2.Rollback()
}

// The store appender's optional fast paths pass through the count:
// remotewrite finds them by type assertion (its histogramsValidated and
// handleAppender; storage/badger's appender has them), and would go the
// slow way around a wrapper that hides them (validating every histogram
// twice, and looking every series up by its labels).

// HistogramsValidated tells the store's appender, when it can be told,
// that its caller validates the histograms it appends.
func (a *countingAppender) HistogramsValidated() {
	if v, ok := a.AppenderV2.(interface{ HistogramsValidated() }); ok {
		v.HistogramsValidated()
	}
}

// handles is the series-handle fast path of storage/badger's appender.
type handles interface {
	HandleOwner() uint64
	SeriesHandle() unsafe.Pointer
	AppendHandle(h unsafe.Pointer, st, t int64, v float64) bool
	AppendHistogramHandle(h unsafe.Pointer, st, t int64, hist *histogram.Histogram, fh *histogram.FloatHistogram) bool
}

// HandleOwner is the store appender's, or 0 (no handles) when it has
// none.
func (a *countingAppender) HandleOwner() uint64 {
	if h, ok := a.AppenderV2.(handles); ok {
		return h.HandleOwner()
	}
	return 0
}

func (a *countingAppender) SeriesHandle() unsafe.Pointer {
	if h, ok := a.AppenderV2.(handles); ok {
		return h.SeriesHandle()
	}
	return nil
}

func (a *countingAppender) AppendHandle(h unsafe.Pointer, st, t int64, v float64) bool {
	if app, ok := a.AppenderV2.(handles); ok && app.AppendHandle(h, st, t, v) {
		a.samples++
		return true
	}
	return false
}

func (a *countingAppender) AppendHistogramHandle(h unsafe.Pointer, st, t int64, hist *histogram.Histogram, fh *histogram.FloatHistogram) bool {
	if app, ok := a.AppenderV2.(handles); ok && app.AppendHistogramHandle(h, st, t, hist, fh) {
		a.samples++
		return true
	}
	return false
}

// countingExemplarAppender keeps the store's ExemplarAppenderV2.
type countingExemplarAppender struct {
	*countingAppender
	ex promstorage.ExemplarAppenderV2
}

func (a *countingExemplarAppender) AppendExemplars(ref promstorage.SeriesRef, ls labels.Labels, es []exemplar.Exemplar) (promstorage.SeriesRef, error) {
	ref, err := a.ex.AppendExemplars(ref, ls, es)
	n := len(es)
	var partial *promstorage.AppendPartialError
	switch {
	case err == nil:
	case errors.As(err, &partial):
		n -= len(partial.ExemplarErrors)
	default:
		n = 0
	}
	a.exemplars += max(n, 0)
	return ref, err
}

// CountingQueries wraps a QueryAdmitter (nil admits every query) so that
// each query admitted is counted in u.
func CountingQueries(q QueryAdmitter, u *tenancy.Usage) QueryAdmitter {
	return countingQueries{q, u}
}

type countingQueries struct {
	q QueryAdmitter
	u *tenancy.Usage
}

func (c countingQueries) AllowQuery(id tenancy.ID) error {
	if c.q == nil {
		return nil
	}
	return c.q.AllowQuery(id)
}

func (c countingQueries) AcquireQuery(ctx context.Context, id tenancy.ID) (func(), error) {
	release := func() {}
	if c.q != nil {
		var err error
		if release, err = c.q.AcquireQuery(ctx, id); err != nil {
			return nil, err
		}
	}
	c.u.AddQuery(id)
	return release, nil
}

// TenantUsage is one tenant's row of the usage report.
type TenantUsage struct {
	Tenant tenancy.ID `json:"tenant"`
	// ActiveSeries is the store's active series count (the one the
	// series limit uses), Series every retained series.
	ActiveSeries uint64 `json:"active_series"`
	Series       uint64 `json:"series"`
	// SamplesIngested, ExemplarsIngested and Queries count since this
	// process started (sum them over the pods).
	SamplesIngested   uint64 `json:"samples_ingested"`
	ExemplarsIngested uint64 `json:"exemplars_ingested"`
	Queries           uint64 `json:"queries"`
	// BytesStored is the backend's estimate of the tenant's bytes on disk
	// (see docs/operations.md, "Cardinality and usage").
	BytesStored uint64 `json:"bytes_stored"`
}

// UsageReport is the body of UsagePath.
type UsageReport struct {
	Tenants []TenantUsage `json:"tenants"`
}

// usageTTL is how long a tenant's store figures are reused.
const usageTTL = 30 * time.Second

// UsageHandler serves the usage report of the tenants u has counted (plus
// those named by tenant= parameters), with each one's active series and
// bytes stored from store, reused for usageTTL.
func UsageHandler(store TenantOpener, u *tenancy.Usage) http.Handler {
	return &usageHandler{store: store, u: u, cache: map[tenancy.ID]cachedUsage{}}
}

type usageHandler struct {
	store TenantOpener
	u     *tenancy.Usage
	mu    sync.Mutex
	cache map[tenancy.ID]cachedUsage
}

type cachedUsage struct {
	at                   time.Time
	active, series, size uint64
}

func (h *usageHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ids := h.u.Tenants()
	if names := r.URL.Query()["tenant"]; len(names) > 0 {
		ids = ids[:0]
		for _, name := range names {
			id, err := tenancy.ParseID(name)
			if err != nil {
				nativeError(w, r, apierror.New(apierror.InvalidArgument, "tenant %q: %v", name, err))
				return
			}
			ids = append(ids, id)
		}
	}
	rep := UsageReport{Tenants: []TenantUsage{}}
	for _, id := range ids {
		c, err := h.storeFigures(r.Context(), id)
		if err != nil {
			nativeError(w, r, err)
			return
		}
		n := h.u.Counts(id)
		rep.Tenants = append(rep.Tenants, TenantUsage{Tenant: id, ActiveSeries: c.active, Series: c.series,
			SamplesIngested: n.SamplesIngested, ExemplarsIngested: n.ExemplarsIngested, Queries: n.Queries, BytesStored: c.size})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(rep)
}

func (h *usageHandler) storeFigures(ctx context.Context, id tenancy.ID) (cachedUsage, error) {
	h.mu.Lock()
	c, ok := h.cache[id]
	h.mu.Unlock()
	if ok && time.Since(c.at) < usageTTL {
		return c, nil
	}
	ts := h.store.ForTenant(id)
	active, err := ts.Cardinality(ctx, storage.CardinalityRequest{TotalOnly: true, Active: true})
	if err != nil {
		return c, err
	}
	all, err := ts.Cardinality(ctx, storage.CardinalityRequest{Limit: 1})
	if err != nil {
		return c, err
	}
	c = cachedUsage{at: time.Now(), active: active.NumSeries, series: all.NumSeries, size: active.BytesStored}
	h.mu.Lock()
	h.cache[id] = c
	h.mu.Unlock()
	return c, nil
}
