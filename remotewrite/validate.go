package remotewrite

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// Reason says why a series or sample was rejected. It is the reason label
// of luminate_ingest_samples_rejected_total and the reason field of the
// native write API's errors.
type Reason string

// The reasons.
const (
	ReasonMissingMetricName Reason = "missing_metric_name"
	ReasonInvalidMetricName Reason = "invalid_metric_name"
	ReasonInvalidLabelName  Reason = "invalid_label_name"
	ReasonInvalidLabelValue Reason = "invalid_label_value"
	ReasonDuplicateLabel    Reason = "duplicate_label"
	ReasonTooManyLabels     Reason = "too_many_labels"
	ReasonLabelNameTooLong  Reason = "label_name_too_long"
	ReasonLabelValueTooLong Reason = "label_value_too_long"
	ReasonTenantLabel       Reason = "tenant_label"
	ReasonTooFarInFuture    Reason = "too_far_in_future"
	ReasonTooOld            Reason = "too_old"
	ReasonSeriesLimit       Reason = "series_limit"
	ReasonInvalidHistogram  Reason = "invalid_histogram" // fails Prometheus' histogram.Validate
	ReasonRateLimited       Reason = "rate_limited"
	ReasonInvalidSample     Reason = "invalid_sample"    // refused by the store for another reason
	ReasonInvalidValue      Reason = "invalid_value"     // native write: value missing or not a number
	ReasonInvalidTimestamp  Reason = "invalid_timestamp" // native write: timestamp not RFC 3339 or milliseconds
	ReasonInvalidMetadata   Reason = "invalid_metadata"  // native write: unknown metric type
)

// NameValidation is the naming scheme Luminate applies: Prometheus 3's
// UTF-8 names, which include every legacy ([a-zA-Z_:][a-zA-Z0-9_:]*) name.
const NameValidation = model.UTF8Validation

// Rejection is why one series, or one sample of it, was refused. Err, when
// set, is a sentinel error it wraps (storage.ErrTenantLabel,
// storage.ErrSeriesLimit).
type Rejection struct {
	Reason Reason
	Series string // the series in Prometheus text format, long values shortened
	Msg    string
	Err    error
}

func (r *Rejection) Error() string { return "series " + r.Series + ": " + r.Msg }

// Unwrap returns the sentinel error r wraps, if any.
func (r *Rejection) Unwrap() error { return r.Err }

func reject(reason Reason, ls []Label, err error, format string, args ...any) *Rejection {
	return &Rejection{Reason: reason, Series: FormatSeries(ls), Msg: fmt.Sprintf(format, args...), Err: err}
}

// Validator applies Prometheus' naming rules and Luminate's limits to the
// series and samples of a write. It is safe for concurrent use.
type Validator struct {
	maxLabels      int
	maxNameLength  int
	maxValueLength int
	maxFutureSkew  time.Duration
	retention      time.Duration
	policy         storage.RetentionPolicy // nil: retention for every tenant
}

// NewValidator returns a Validator enforcing the limits of cfg. A limit of
// zero is no limit.
func NewValidator(cfg Config) *Validator {
	return &Validator{
		maxLabels:      cfg.MaxLabelsPerSeries,
		maxNameLength:  cfg.MaxLabelNameLength,
		maxValueLength: cfg.MaxLabelValueLength,
		maxFutureSkew:  cfg.MaxFutureSkew,
		retention:      cfg.Retention,
		policy:         cfg.RetentionPolicy,
	}
}

// Series validates the labels of one series and normalises them in place:
// labels with empty values are dropped (Prometheus treats them as absent)
// and the rest sorted by name. It returns the normalised labels, a
// sub-slice of ls, or a *Rejection.
//
// A series carrying the reserved tenant label is rejected whatever its
// value: the tenant comes from the verified token, never from the client.
func (v *Validator) Series(ls []Label) ([]Label, error) {
	return v.series(ls, false)
}

// series is Series; validUTF8 says that every name and value of ls is
// known to be valid UTF-8.
func (v *Validator) series(ls []Label, validUTF8 bool) ([]Label, error) {
	validUTF8 = validUTF8 && NameValidation == model.UTF8Validation
	n := 0
	for _, l := range ls {
		if l.Name == tenancy.Label {
			return nil, reject(ReasonTenantLabel, ls, storage.ErrTenantLabel,
				"label %s is reserved: the tenant comes from the token, remove it from the sender's labels", tenancy.Label)
		}
		if l.Value != "" {
			ls[n] = l
			n++
		}
	}
	ls = ls[:n]
	if v.maxLabels > 0 && len(ls) > v.maxLabels {
		return nil, reject(ReasonTooManyLabels, ls, nil,
			"%d labels, more than the limit of %d %s", len(ls), v.maxLabels, tenancy.Global("--ingest.max-labels-per-series").Raise())
	}
	if !slices.IsSortedFunc(ls, compareLabels) {
		slices.SortFunc(ls, compareLabels)
	}
	hasName := false
	for i, l := range ls {
		if i > 0 && ls[i-1].Name == l.Name {
			return nil, reject(ReasonDuplicateLabel, ls, nil, "duplicate label name %s", quoteShort(l.Name))
		}
		if v.maxNameLength > 0 && len(l.Name) > v.maxNameLength {
			return nil, reject(ReasonLabelNameTooLong, ls, nil,
				"label name %s is %d bytes long, more than the limit of %d %s",
				quoteShort(l.Name), len(l.Name), v.maxNameLength, tenancy.Global("--ingest.max-label-name-length").Raise())
		}
		if v.maxValueLength > 0 && len(l.Value) > v.maxValueLength {
			return nil, reject(ReasonLabelValueTooLong, ls, nil,
				"value of label %s is %d bytes long, more than the limit of %d %s",
				quoteShort(l.Name), len(l.Value), v.maxValueLength, tenancy.Global("--ingest.max-label-value-length").Raise())
		}
		if l.Name == model.MetricNameLabel {
			hasName = true
			if !validUTF8 && !NameValidation.IsValidMetricName(l.Value) {
				return nil, reject(ReasonInvalidMetricName, ls, nil, "metric name %s is not valid UTF-8", quoteShort(l.Value))
			}
			continue
		}
		if validUTF8 {
			// What remains of NameValidation (UTF-8): a name is not empty.
			if l.Name == "" {
				return nil, reject(ReasonInvalidLabelName, ls, nil, "label name %s is not valid UTF-8", quoteShort(l.Name))
			}
			continue
		}
		if !NameValidation.IsValidLabelName(l.Name) {
			return nil, reject(ReasonInvalidLabelName, ls, nil, "label name %s is not valid UTF-8", quoteShort(l.Name))
		}
		if !utf8.ValidString(l.Value) {
			return nil, reject(ReasonInvalidLabelValue, ls, nil, "value of label %s is not valid UTF-8", quoteShort(l.Name))
		}
	}
	if !hasName {
		return nil, reject(ReasonMissingMetricName, ls, nil, "no metric name (label %s)", model.MetricNameLabel)
	}
	return ls, nil
}

func compareLabels(a, b Label) int { return strings.Compare(a.Name, b.Name) }

// Window is the range of sample timestamps a Validator accepts at one
// moment. Compute it once per request.
type Window struct {
	MinT, MaxT int64 // milliseconds, inclusive
	skew       time.Duration
	retention  time.Duration
}

// Window returns the timestamps v accepts at now: from now minus the
// retention to now plus the allowed future skew.
func (v *Validator) Window(now time.Time) Window { return v.window(v.retention, now) }

// WindowFor is Window for a write of tenant id, from now minus the
// tenant's own retention.
func (v *Validator) WindowFor(id tenancy.ID, now time.Time) Window {
	if v.policy == nil {
		return v.Window(now)
	}
	return v.window(v.policy.Retention(id), now)
}

func (v *Validator) window(retention time.Duration, now time.Time) Window {
	w := Window{MinT: minTime, MaxT: maxTime, skew: v.maxFutureSkew, retention: retention}
	if v.maxFutureSkew > 0 {
		w.MaxT = now.Add(v.maxFutureSkew).UnixMilli()
	}
	if retention > 0 {
		w.MinT = now.Add(-retention).UnixMilli()
	}
	return w
}

const (
	minTime = -1 << 63
	maxTime = 1<<63 - 1
)

// Check returns a *Rejection when timestamp t, of a sample of series ls,
// is outside w.
func (w Window) Check(ls []Label, t int64) error {
	switch {
	case t > w.MaxT:
		return reject(ReasonTooFarInFuture, ls, nil,
			"sample timestamp %s is more than %s in the future %s",
			formatMillis(t), w.skew, tenancy.Global("--ingest.max-future-skew").Raise())
	case t < w.MinT:
		return reject(ReasonTooOld, ls, nil,
			"sample timestamp %s is older than the storage retention of %s", formatMillis(t), w.retention)
	}
	return nil
}

func formatMillis(t int64) string {
	return time.UnixMilli(t).UTC().Format(time.RFC3339Nano)
}

// Bounds on what a rejection message repeats of the offending series, so a
// client sending megabyte-long labels does not get them echoed back.
const (
	maxShownLabels = 30
	maxShownBytes  = 128
)

// FormatSeries writes ls in the Prometheus text format,
// {__name__="up", job="x"}, shortening long names and values.
func FormatSeries(ls []Label) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i == maxShownLabels {
			fmt.Fprintf(&b, ", ... %d more", len(ls)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		if model.LegacyValidation.IsValidLabelName(l.Name) {
			b.WriteString(l.Name)
		} else {
			b.WriteString(quoteShort(l.Name))
		}
		b.WriteByte('=')
		b.WriteString(quoteShort(l.Value))
	}
	b.WriteByte('}')
	return b.String()
}

// quoteShort quotes s, cut to maxShownBytes.
func quoteShort(s string) string {
	if len(s) <= maxShownBytes {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:maxShownBytes]) + fmt.Sprintf("...(%d bytes)", len(s))
}
