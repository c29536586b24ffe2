// Package storage is the contract between Luminate's protocols and its
// storage backends (storage/badger, storage/clickhouse).
//
// A MetricsStore holds every tenant's data. Callers never touch it directly:
// they ask it for a TenantStore, a view scoped to one verified tenant, and
// use the Prometheus storage interfaces on that view. The view injects the
// tenant as the _tenant_id dimension on every series it writes, matches it
// implicitly on every read, and never returns it in labels, so no caller can
// forget the tenant filter.
//
// It is not where protocols are decoded or requests authenticated.
package storage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/luminate-io/luminate/tenancy"
)

// MetricsStore is a multi-tenant metrics store. All methods are safe for
// concurrent use.
type MetricsStore interface {
	// ForTenant returns the view of the store scoped to tenant id.
	ForTenant(id tenancy.ID) TenantStore
	// Ready returns nil when the store can serve reads, and an error
	// saying what is wrong otherwise. A store that serves reads but cannot
	// accept writes (disk full, read-only) is still ready: Health says so.
	Ready(ctx context.Context) error
	// Health reports the state of the read and the write path. It is
	// cheap enough to call on every health request.
	Health(ctx context.Context) Health
	// Close flushes everything acknowledged and releases the store.
	Close() error
}

// TenantStore is one tenant's view of a MetricsStore. Series written through
// it carry the tenant; series read through it are the tenant's only, without
// the _tenant_id label. Safe for concurrent use; the appenders and queriers
// it returns are not (as in Prometheus). Appenders keep no reference to
// the labels, exemplars or option strings (MetricFamilyName, Metadata)
// passed to Append once it returns (they copy what they keep), so callers
// may build them in reused memory.
//
// Label names and values (with matchers, time range and limit) come from
// Querier(mint, maxt).LabelNames/LabelValues with LabelHints.Limit; series
// listing from Select with SelectHints{Func: "series"}.
//
// What AppenderV2.Append keeps, on every backend:
//   - a float (h and fh nil), an integer histogram (h) or a float
//     histogram (fh), bit-exact, stale markers included; a series may
//     change between floats and histograms, and a later write of the same
//     timestamp replaces the earlier one whatever its kind (last write
//     wins, also out of order);
//   - opts.Exemplars, each checked with ValidateExemplar and against the
//     series' newest exemplar as Prometheus' exemplar storage does
//     (duplicates are dropped silently, older ones refused); at most the
//     tenant's MaxExemplars are kept, the oldest dropped first. Refused
//     exemplars come back as a *promstorage.AppendPartialError with the
//     sample still appended. The AppenderV2 is also a
//     promstorage.ExemplarAppenderV2: AppendExemplars adds exemplars to a
//     series that already has samples (remote write senders put a
//     series' exemplars in an entry of their own);
//   - opts.Metadata under opts.MetricFamilyName (the metric name when
//     empty), latest wins, for at most the tenant's MaxMetadata families;
//   - st, the sample's start timestamp (0 when unknown), stored with the
//     sample and returned by the iterators' AtST, as Prometheus 3's
//     st-storage feature keeps it. Zero samples at the start timestamp
//     (Prometheus' created-timestamp-zero-ingestion) are another matter:
//     the protocol layer appends them (WithStartZero).
//
// Reads return the samples as Prometheus' own do: Select's iterators yield
// chunkenc.ValFloat, ValHistogram or ValFloatHistogram per sample, and
// ChunkQuerier's chunks are XOR, histogram or float histogram chunks.
type TenantStore interface {
	promstorage.AppendableV2
	promstorage.SampleAndChunkQueryable
	promstorage.ExemplarQueryable
	MetadataQueryable

	// Cardinality reports statistics of the tenant's series that req
	// selects (see CardinalityRequest), from statistics the backend
	// maintains as series come and go rather than a walk of every series.
	Cardinality(ctx context.Context, req CardinalityRequest) (Cardinality, error)

	// Deleter: delete_series and clean_tombstones (issue 14).
	Deleter
}

// Deleter deletes a tenant's series, as Prometheus' admin API does. A
// deletion is durable and invisible to every read once DeleteSeries
// returns; the space is reclaimed later (CleanTombstones, or the store's
// background pass).
type Deleter interface {
	// DeleteSeries deletes the samples in [Start, End] of the series
	// matching any of the matcher sets. It counts the matching series
	// first and refuses with a DeleteLimitError, deleting nothing, when
	// they are more than MaxSeries (0: unlimited).
	DeleteSeries(ctx context.Context, req DeleteRequest) (DeleteResult, error)
	// CleanTombstones rewrites or drops the stored data the tenant's
	// deletions hide, and forgets the deletions it reclaimed.
	CleanTombstones(ctx context.Context) error
}

// DeleteRequest is one delete_series call: the series matching any of
// Matchers, in [Start, End] (milliseconds, inclusive).
type DeleteRequest struct {
	Matchers   [][]*labels.Matcher
	Start, End int64
	MaxSeries  int
}

// DeleteResult says what a deletion did.
type DeleteResult struct {
	Series int // series with samples in the range
	Whole  int // of those, series deleted over all their data
}

// DeleteLimitError is the error of a deletion refused because it matched
// more series than one call may delete; it wraps ErrDeleteLimit. Matched
// is how many the backend counted before it stopped: more than Limit, not
// necessarily all. The protocol layer words it with the setting that
// raises the limit (DeleteLimitSetting).
type DeleteLimitError struct{ Matched, Limit int }

func (e *DeleteLimitError) Error() string {
	return fmt.Sprintf("%v: more than %d series match (%d counted), at most %d may be deleted in one call", ErrDeleteLimit, e.Limit, e.Matched, e.Limit)
}

// Unwrap returns ErrDeleteLimit.
func (e *DeleteLimitError) Unwrap() error { return ErrDeleteLimit }

// DeleteLimitSetting is the setting of the most series one delete_series
// call may delete.
func DeleteLimitSetting() tenancy.Setting {
	return tenancy.PerTenant("--limits.max-delete-series", "max_delete_series")
}

// SetsQuerier is a querier that answers for the union of several matcher
// sets (the repeated match[] of the series and label APIs) in fewer round
// trips than one call per set. Each answer equals what the calls per set
// would give, merged: ClickHouse implements it, so that a request of a
// thousand match[] is a few queries.
type SetsQuerier interface {
	// SelectSeriesSets is Select with hints.Func "series" (label sets
	// only, sorted) of the series matching any of sets.
	SelectSeriesSets(ctx context.Context, hints *promstorage.SelectHints, sets [][]*labels.Matcher) promstorage.SeriesSet
	// LabelNamesSets is LabelNames of the series matching any of sets.
	LabelNamesSets(ctx context.Context, hints *promstorage.LabelHints, sets [][]*labels.Matcher) ([]string, annotations.Annotations, error)
	// LabelValuesSets is LabelValues of the series matching any of sets.
	LabelValuesSets(ctx context.Context, name string, hints *promstorage.LabelHints, sets [][]*labels.Matcher) ([]string, annotations.Annotations, error)
}

// MetadataQueryable reads the metric metadata a tenant's writers sent.
type MetadataQueryable interface {
	// Metadata returns the latest metadata of each of the tenant's metric
	// families, by family name. A non-empty metric returns that family
	// only; limit > 0 returns at most that many families.
	Metadata(ctx context.Context, metric string, limit int) (map[string]metadata.Metadata, error)
}

// CardinalityRequest selects the series a cardinality report covers and
// what it lists. The zero value (plus a Limit) is every retained series.
type CardinalityRequest struct {
	// Matchers: a series counts when it matches every matcher of any of
	// the sets (Prometheus' match[]); none selects every series.
	Matchers [][]*labels.Matcher
	// Start and End (milliseconds, inclusive) keep the series with
	// samples between them; both 0 means all retained data. Backends
	// that keep statistics by UTC day (ClickHouse) widen them to days.
	Start, End int64
	// Active counts only the tenant's active series (the definition the
	// series limit uses), in place of every retained series.
	Active bool
	// Limit bounds every list (0: unlimited).
	Limit int
	// FocusLabel fills ByFocusLabelValue: series per value of that label.
	FocusLabel string
	// LabelNames fill LabelValues: per name, series per value.
	LabelNames []string
	// ListSeries fills Series with the selected series' labels, at most
	// Limit of them, and nothing else.
	ListSeries bool
	// TotalOnly wants NumSeries (of every series, or the active count
	// with Active) and BytesStored only: usage reports.
	TotalOnly bool
}

// AllTime reports whether the request covers all retained data.
func (r CardinalityRequest) AllTime() bool { return r.Start == 0 && r.End == 0 }

// Cardinality describes the series one tenant holds.
type Cardinality struct {
	NumSeries     uint64
	NumLabelPairs int    // distinct name=value pairs
	NumLabelNames int    // distinct label names
	NumLabelRefs  uint64 // name=value pairs over all series (VictoriaMetrics' totalLabelValuePairs)
	MinTime       int64  // milliseconds; 0 when empty
	MaxTime       int64
	ByMetricName  []Count // series per metric name, descending
	ByLabelName   []Count // distinct values per label name, descending
	SeriesByLabel []Count // series per label name, descending
	ByLabelPair   []Count // series per name=value pair, descending
	MemoryByLabel []Count // bytes of values per label name, descending
	// ByFocusLabelValue: series per value of the request's FocusLabel.
	ByFocusLabelValue []Count
	// LabelValues: one per name of the request's LabelNames, in order.
	LabelValues []LabelValues
	// Series: the selected series, with the request's ListSeries.
	Series []labels.Labels
	// Approximate is set when counts are estimates (see the backend).
	Approximate bool
	// BytesStored estimates the bytes the tenant's data takes on disk
	// (with TotalOnly; see the backend for how).
	BytesStored uint64
}

// LabelValues is the cardinality of one label name.
type LabelValues struct {
	Name      string
	NumValues uint64  // distinct values
	NumSeries uint64  // series with the label
	Values    []Count // series per value, descending, at most Limit
}

// TopCounts sorts list by value descending then name, and keeps the first
// n (all when n <= 0).
func TopCounts(list []Count, n int) []Count {
	slices.SortFunc(list, func(a, b Count) int {
		if a.Value != b.Value {
			return cmp.Compare(b.Value, a.Value)
		}
		return cmp.Compare(a.Name, b.Name)
	})
	if n > 0 && len(list) > n {
		list = list[:n]
	}
	return list
}

// Health is a store's report on its read and write paths.
type Health struct {
	Read, Write Check
}

// Check is the state of one path, with a message for operators.
type Check struct {
	Status  Status
	Message string
}

// Status is the state of a component of Luminate.
type Status string

// Statuses, from best to worst.
const (
	StatusOK       Status = "ok"
	StatusDegraded Status = "degraded" // working, with a problem an operator should fix
	StatusDown     Status = "down"     // not working
)

// Count is one row of a cardinality report.
type Count struct {
	Name  string
	Value uint64
}

// SeriesLimits returns the most active series tenant id may hold; 0 means
// unlimited. Backends consult it when a series is created, so existing
// series keep flowing when a tenant is at its limit.
type SeriesLimits func(id tenancy.ID) int

// SeriesLimitError is the error of a new series refused because tenant id
// holds active series already, at its limit: it wraps ErrSeriesLimit and
// says how to raise the limit.
func SeriesLimitError(id tenancy.ID, active, limit int, series string) error {
	return fmt.Errorf("%w: tenant %s has %d active series, the limit is %d %s: %s",
		ErrSeriesLimit, id, active, limit, SeriesLimitSetting().Raise(), series)
}

// SeriesLimitSetting is the setting of the active series limit.
func SeriesLimitSetting() tenancy.Setting {
	return tenancy.PerTenant("--limits.max-active-series", "max_active_series")
}

// TenantLimit returns a per-tenant bound, such as the most exemplars or
// metadata entries tenant id may keep; 0 means unlimited.
type TenantLimit func(id tenancy.ID) int

// ValidateExemplar checks what Prometheus checks of an exemplar before it
// looks at the series' other exemplars: the runes of its label names and
// values together are at most exemplar.ExemplarMaxLabelSetLength, and its
// labels are valid.
func ValidateExemplar(e exemplar.Exemplar) error {
	n := 0
	var err error
	e.Labels.Range(func(l labels.Label) {
		if err != nil {
			return
		}
		n += utf8.RuneCountInString(l.Name) + utf8.RuneCountInString(l.Value)
		if n > exemplar.ExemplarMaxLabelSetLength {
			err = fmt.Errorf("%w: %s", promstorage.ErrExemplarLabelLength, e.Labels.String())
		}
	})
	return err
}

// Errors backends return; apierror maps them to HTTP statuses.
var (
	// ErrUnavailable means the backend cannot serve the call now (disk
	// full, database down); the caller should retry later.
	ErrUnavailable = errors.New("storage unavailable")
	// ErrSeriesLimit means a new series was refused because the tenant is
	// at its active series limit.
	ErrSeriesLimit = errors.New("per-tenant active series limit reached")
	// ErrTenantLabel means a series carried the reserved _tenant_id label.
	ErrTenantLabel = errors.New("label " + tenancy.Label + " is reserved")
	// ErrDeleteLimit means a deletion matched more series than one call
	// may delete.
	ErrDeleteLimit = errors.New("per-tenant delete series limit reached")
)
