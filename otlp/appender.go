package otlp

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/remotewrite"
	"github.com/luminate-io/luminate/tenancy"
)

// appender is the AppenderV2 the converters append to: it applies remote
// write's rules (remotewrite.Validator: labels, the time window; the
// histograms' validity and bucket limit; exemplars outside the window
// dropped) to every sample before the tenant's appender gets it, and
// counts what it stored and rejected. A rejected sample is not an error
// for the converter, which goes on with the next: rejections are told
// in the response's partial_success. An error of the store itself, or
// more samples than a request may hold, is returned and kept (fatal):
// the request then fails and rolls back.
//
// It counts the OTLP data points it sees, to tell how many were
// rejected: one per sample, but the series of one classic histogram or
// summary point (its _sum, _count, _bucket or quantile series, appended
// one after the other) count as one point; the
// target_info samples the converter adds count as none.
type appender struct {
	app        promstorage.AppenderV2
	validator  *remotewrite.Validator
	window     remotewrite.Window
	maxBuckets int
	maxSamples int // of all appends, --ingest.max-samples-per-request
	appends    int

	scratch []remotewrite.Label
	builder labels.ScratchBuilder

	// What was stored: samples (floats and histograms) and exemplars,
	// and the exemplars refused.
	samples, exemplars, exemplarsRefused int
	// The data points seen and rejected, by reason, and the first
	// rejection.
	points, rejected int
	byReason         map[remotewrite.Reason]int
	first            *remotewrite.Rejection
	// Whether the last sample was a classic histogram's or summary's
	// _sum, and whether the point being appended was rejected.
	afterSum    bool
	curRejected bool

	fatal error

	// The store's series handles and the cache of them (both nil when the
	// store has none), and the handle of the series of the last Append
	// stored (nil: none, or a series new in this batch).
	handles storeHandles
	cache   *seriesCache
	last    unsafe.Pointer
	// byHandle counts the points appended by their handles.
	byHandle int
}

func newAppender(app promstorage.AppenderV2, v *remotewrite.Validator, id tenancy.ID, now time.Time, cfg remotewrite.Config) *appender {
	return &appender{app: app, validator: v, window: v.WindowFor(id, now), maxBuckets: cfg.MaxBucketsPerHistogram, maxSamples: cfg.MaxSamplesPerRequest,
		builder: labels.NewScratchBuilder(16)}
}

// withCache lets the fast path append by the series handles of cache, if
// the store hands out handles.
func (a *appender) withCache(cache *seriesCache) *appender {
	if h, ok := a.app.(storeHandles); ok && cache != nil {
		a.handles, a.cache = h, cache
	}
	return a
}

// cacheOwner is the owner the keys of this appender's handles must mix
// in (the tenant's index in the store), 0 for no cache.
func (a *appender) cacheOwner() uint64 {
	if a.cache == nil {
		return 0
	}
	return a.handles.HandleOwner()
}

// lastHandle is the handle of the series the last Append stored, nil if
// none.
func (a *appender) lastHandle() unsafe.Pointer { return a.last }

// appendHandles appends one data point's float samples vs, at st and t,
// to the series of handles hs (one each, as cached for the point), as
// Append would append them by their labels: it returns how many it
// appended, from the first. 0: nothing appended (the sample is outside
// the time window, or over the request's samples, or a handle is stale):
// append by the labels, which says why. Less than len(hs): the handle
// of series n is stale; the point is counted, append the rest by their
// labels. cont: the point's first series was appended by its labels
// (Append counted the point), these are the rest of it.
func (a *appender) appendHandles(hs []unsafe.Pointer, st, t int64, vs []float64, cont bool) int {
	if a.fatal != nil || a.handles == nil || t > a.window.MaxT || t < a.window.MinT ||
		(a.maxSamples > 0 && a.appends+len(hs) > a.maxSamples) {
		if cont {
			a.afterSum = true // the rest continue this point, by their labels
		}
		return 0
	}
	for i, h := range hs {
		if !a.handles.AppendHandle(h, st, t, vs[i]) {
			if i > 0 || cont {
				a.appends += i
				a.samples += i
				if !cont {
					a.points++
					a.curRejected = false
				}
				a.afterSum = true // the rest continue this point
			}
			return i
		}
	}
	if cont {
		a.appends += len(hs)
		a.samples += len(hs)
		a.afterSum = false
		return len(hs)
	}
	a.appends += len(hs)
	a.samples += len(hs)
	a.points++
	a.byHandle++
	a.curRejected = false
	a.afterSum = false
	return len(hs)
}

// The target_info series of the converter (helper.go, addResourceTargetInfo).
const (
	targetInfoName = "target_info"
	targetInfoHelp = "Target metadata"
)

// Append implements promstorage.AppenderV2.
func (a *appender) Append(ref promstorage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AOptions) (promstorage.SeriesRef, error) {
	if a.fatal != nil {
		return 0, a.fatal
	}
	// A data point may make many samples (a classic histogram one per
	// bucket): the samples of one request are bounded as remote write's.
	if a.appends++; a.maxSamples > 0 && a.appends > a.maxSamples {
		a.fatal = apierror.Limit(apierror.TooLarge, tenancy.Global("--ingest.max-samples-per-request"),
			"an OTLP request converting to more than %d samples (series of buckets, quantiles, target_info); export smaller batches", a.maxSamples)
		return 0, a.fatal
	}
	a.startPoint(ls, h, fh, opts)
	a.last = nil
	valid, rej := a.check(ls, t, h, fh)
	if rej == nil {
		opts.Exemplars = a.exemplarsInWindow(opts.Exemplars)
		var err error
		ref, err = a.app.Append(ref, valid, st, t, v, h, fh, opts)
		if partial := (*promstorage.AppendPartialError)(nil); err != nil && errors.As(err, &partial) {
			a.exemplarsRefused += len(partial.ExemplarErrors)
			a.exemplars += max(0, len(opts.Exemplars)-len(partial.ExemplarErrors))
			err = nil
		} else if err == nil {
			a.exemplars += len(opts.Exemplars)
		}
		if err == nil {
			a.samples++
			if a.handles != nil && h == nil && fh == nil {
				a.last = a.handles.SeriesHandle()
			}
			return ref, nil
		}
		if rej = remotewrite.StoreRejection(err, a.scratch); rej == nil {
			a.fatal = fmt.Errorf("append: %w", err)
			return 0, a.fatal
		}
	}
	a.exemplarsRefused += len(opts.Exemplars)
	a.reject(rej, opts)
	return 0, nil
}

// startPoint counts the data point a sample of series ls begins, if it
// begins one. The converter appends a classic histogram or summary point
// as its _sum series (when it has a sum), its _count, then its buckets or
// quantiles: a point begins at a _sum, or at a _count not right after a
// _sum.
func (a *appender) startPoint(ls labels.Labels, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AOptions) {
	if opts.MetricFamilyName == targetInfoName && opts.Metadata.Help == targetInfoHelp {
		return
	}
	if h == nil && fh == nil && (opts.Metadata.Type == model.MetricTypeHistogram || opts.Metadata.Type == model.MetricTypeSummary) {
		name, family := ls.Get(model.MetricNameLabel), opts.MetricFamilyName
		isSum := len(name) == len(family)+len("_sum") && strings.HasPrefix(name, family) && strings.HasSuffix(name, "_sum")
		isCount := len(name) == len(family)+len("_count") && strings.HasPrefix(name, family) && strings.HasSuffix(name, "_count")
		afterSum := a.afterSum
		a.afterSum = isSum
		if !isSum && (!isCount || afterSum) {
			return
		}
	} else {
		a.afterSum = false
	}
	a.points++
	a.curRejected = false
}

// reject counts a rejected sample: its point, once.
func (a *appender) reject(rej *remotewrite.Rejection, opts promstorage.AOptions) {
	if a.first == nil {
		a.first = rej
	}
	if a.curRejected || (opts.MetricFamilyName == targetInfoName && opts.Metadata.Help == targetInfoHelp) {
		return
	}
	a.curRejected = true
	a.rejected++
	if a.byReason == nil {
		a.byReason = map[remotewrite.Reason]int{}
	}
	a.byReason[rej.Reason]++
}

// check validates a sample of series ls at t, and returns ls normalised
// (empty values dropped) or why it is rejected.
func (a *appender) check(ls labels.Labels, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (labels.Labels, *remotewrite.Rejection) {
	a.scratch = a.scratch[:0]
	ls.Range(func(l labels.Label) { a.scratch = append(a.scratch, remotewrite.Label{Name: l.Name, Value: l.Value}) })
	n := len(a.scratch)
	valid, err := a.validator.Series(a.scratch)
	if err != nil {
		return ls, asRejection(err)
	}
	a.scratch = valid
	if len(valid) != n {
		a.builder.Reset()
		for _, l := range valid {
			a.builder.Add(l.Name, l.Value)
		}
		ls = a.builder.Labels()
	}
	if err := a.window.Check(valid, t); err != nil {
		return ls, asRejection(err)
	}
	switch {
	case h != nil:
		if err := a.buckets(len(h.PositiveSpans), len(h.NegativeSpans), len(h.PositiveBuckets), len(h.NegativeBuckets), len(h.CustomValues)); err != nil {
			return ls, a.histogramRejection(t, err)
		}
		if err := h.Validate(); err != nil {
			return ls, a.histogramRejection(t, err)
		}
	case fh != nil:
		if err := a.buckets(len(fh.PositiveSpans), len(fh.NegativeSpans), len(fh.PositiveBuckets), len(fh.NegativeBuckets), len(fh.CustomValues)); err != nil {
			return ls, a.histogramRejection(t, err)
		}
		if err := fh.Validate(); err != nil {
			return ls, a.histogramRejection(t, err)
		}
	}
	return ls, nil
}

// buckets checks the sizes of a native histogram against
// --ingest.max-buckets-per-histogram.
func (a *appender) buckets(sizes ...int) error {
	if a.maxBuckets <= 0 {
		return nil
	}
	for _, n := range sizes {
		if n > a.maxBuckets {
			return fmt.Errorf("%d spans, buckets or custom bounds on one side, more than the limit of %d %s",
				n, a.maxBuckets, tenancy.Global("--ingest.max-buckets-per-histogram").Raise())
		}
	}
	return nil
}

func (a *appender) histogramRejection(t int64, err error) *remotewrite.Rejection {
	return &remotewrite.Rejection{
		Reason: remotewrite.ReasonInvalidHistogram,
		Series: remotewrite.FormatSeries(a.scratch),
		Msg:    fmt.Sprintf("native histogram at %s: %v", time.UnixMilli(t).UTC().Format(time.RFC3339Nano), err),
		Err:    err,
	}
}

// exemplarsInWindow drops, in place, the exemplars timestamped outside
// the window, counting them refused.
func (a *appender) exemplarsInWindow(es []exemplar.Exemplar) []exemplar.Exemplar {
	n := 0
	for _, e := range es {
		if e.HasTs && (e.Ts > a.window.MaxT || e.Ts < a.window.MinT) {
			a.exemplarsRefused++
			continue
		}
		es[n] = e
		n++
	}
	return es[:n]
}

// Commit implements promstorage.AppenderV2.
func (a *appender) Commit() error { return a.app.Commit() }

// Rollback implements promstorage.AppenderV2.
func (a *appender) Rollback() error { return a.app.Rollback() }

func asRejection(err error) *remotewrite.Rejection {
	if rej := (*remotewrite.Rejection)(nil); errors.As(err, &rej) {
		return rej
	}
	return &remotewrite.Rejection{Reason: remotewrite.ReasonInvalidSample, Msg: err.Error(), Err: err}
}
