package native

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/remotewrite"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// WriteRequest is the body of POST /api/v1/metrics:
//
//	{"metrics":[{"name":"http_requests_total","dimensions":{"path":"/"},"value":1.5,"timestamp":"2026-11-26T10:00:00Z"}]}
type WriteRequest struct {
	Metrics []WriteMetric `json:"metrics"`
}

// WriteMetric is one sample of a native write: a float Value or a native
// Histogram, exactly one. Value is a JSON number or one of the strings
// "NaN", "+Inf", "-Inf"; Timestamp is an RFC 3339 string or a JSON number
// of Unix milliseconds, and defaults to the time of the request.
// Exemplars, and the metadata of the metric family (Type, Help, Unit),
// are optional.
type WriteMetric struct {
	Name       string            `json:"name"`
	Dimensions map[string]string `json:"dimensions,omitempty"`
	Value      json.RawMessage   `json:"value,omitempty"`
	Histogram  *WriteHistogram   `json:"histogram,omitempty"`
	Timestamp  json.RawMessage   `json:"timestamp,omitempty"`
	Exemplars  []WriteExemplar   `json:"exemplars,omitempty"`
	Type       string            `json:"type,omitempty"` // counter, gauge, histogram, gaugehistogram, summary, info, stateset, unknown
	Help       string            `json:"help,omitempty"`
	Unit       string            `json:"unit,omitempty"`
}

// WriteHistogram is a native histogram sample in JSON. Counts are
// absolute per bucket (not deltas); an integer histogram (Float false)
// takes whole, non-negative counts. Sum and the other floats take the
// strings "NaN", "+Inf", "-Inf" as Value does.
type WriteHistogram struct {
	Schema           int32   `json:"schema"`
	Count            Float   `json:"count"`
	Sum              Float   `json:"sum"`
	ZeroThreshold    Float   `json:"zero_threshold,omitempty"`
	ZeroCount        Float   `json:"zero_count,omitempty"`
	CounterResetHint string  `json:"counter_reset_hint,omitempty"` // unknown (default), reset, not_reset, gauge
	PositiveSpans    []Span  `json:"positive_spans,omitempty"`
	PositiveCounts   []Float `json:"positive_counts,omitempty"`
	NegativeSpans    []Span  `json:"negative_spans,omitempty"`
	NegativeCounts   []Float `json:"negative_counts,omitempty"`
	CustomValues     []Float `json:"custom_values,omitempty"` // schema -53: the buckets' upper bounds
	Float            bool    `json:"float,omitempty"`
}

// WriteExemplar is an exemplar of a native write's sample. Timestamp
// takes the formats of WriteMetric's and defaults to the sample's.
type WriteExemplar struct {
	Labels    map[string]string `json:"labels"`
	Value     Float             `json:"value"`
	Timestamp json.RawMessage   `json:"timestamp,omitempty"`
}

// WriteResponse is the answer to a native write that was decoded: Status
// is "success" (200, everything stored), "partial" (400, the valid items
// stored, Errors says which were not) or "error" (400, every item
// rejected). A write refused as a whole gets the native error envelope
// instead (apierror.Write).
type WriteResponse struct {
	Status   string           `json:"status"`
	Accepted int              `json:"accepted"`
	Rejected int              `json:"rejected"`
	Errors   []WriteItemError `json:"errors"`
}

// WriteItemError is why the item at Index was rejected.
type WriteItemError struct {
	Index   int                `json:"index"`
	Reason  remotewrite.Reason `json:"reason"`
	Message string             `json:"message"`
}

// Respond writes r with its status: 200 for a success, 400 otherwise.
func (r *WriteResponse) Respond(w http.ResponseWriter, _ *http.Request) error {
	apierror.WriteJSON(w, r.status(), r)
	return nil
}

func (r *WriteResponse) status() int {
	if r.Rejected > 0 {
		return apierror.InvalidArgument.Status()
	}
	return http.StatusOK
}

// writeBytesPerByte is the memory a native write holds per byte of its
// body, the body included: decoded items, their maps of dimensions, and
// the series built from them.
const writeBytesPerByte = 8

// Write is the native JSON batch write, for POST /api/v1/metrics (a route
// of the metrics:write scope and the Native error format). It validates
// items as remote write validates series, through the same Ingester (its
// in-flight budget, decode slots, rate limits and counters), stores the
// valid ones and answers a WriteResponse.
type Write struct {
	g      *remotewrite.Ingester
	logger *slog.Logger
}

// NewWrite returns the native write, writing through g and logging
// through logger (nil for nowhere).
func NewWrite(g *remotewrite.Ingester, logger *slog.Logger) *Write {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Write{g, logger}
}

// Serve serves one native write of tenant t.
func (h *Write) Serve(r *http.Request, t storage.Tenant) (any, error) {
	resp, err := h.write(r, t)
	if err != nil {
		status := apierror.Classify(err).Status
		if status >= 500 {
			h.logger.WarnContext(r.Context(), "native write failed", "tenant", t.ID(), "status", status, "err", err)
		}
		h.g.Answered(t.ID(), status)
		return nil, err
	}
	h.g.Answered(t.ID(), resp.status())
	return resp, nil
}

func (h *Write) write(r *http.Request, t storage.Tenant) (*WriteResponse, error) {
	if err := checkBody(r); err != nil {
		return nil, err
	}
	g, id, cfg := h.g, t.ID(), h.g.Config()
	body, err := g.ReadBody(r)
	if err != nil {
		return nil, err
	}
	release, err := g.Reserve(id, writeBytesPerByte*int64(len(body)))
	if err != nil {
		return nil, err
	}
	defer release()
	done, err := g.DecodeSlot(r.Context())
	if err != nil {
		return nil, err
	}
	items, err := decodeWrite(body, cfg.MaxNativeMetrics)
	done()
	if err != nil {
		return nil, err
	}
	labels := 0
	for i := range items {
		if labels += 1 + len(items[i].Dimensions); labels > cfg.MaxLabelsPerRequest {
			err := apierror.Limit(apierror.TooLarge, tenancy.Global("--ingest.max-labels-per-request"),
				"more than %d labels (names and dimensions) in one request; split the batch", cfg.MaxLabelsPerRequest)
			err.Field = fmt.Sprintf("metrics[%d].dimensions", i)
			return nil, err
		}
	}
	if err := g.Allow(id, len(items)); err != nil {
		return nil, err
	}

	// One series of one sample per item; index maps series to items. The
	// arena has room for every label: the series' labels stay put.
	resp := &WriteResponse{Status: "success", Errors: []WriteItemError{}}
	now := time.Now()
	series := make([]remotewrite.TimeSeries, 0, len(items))
	index := make([]int, 0, len(items))
	arena := make([]remotewrite.Label, 0, labels)
	for i := range items {
		m := &items[i]
		ts, rej := m.series(now, cfg.MaxBucketsPerHistogram)
		if rej != nil {
			g.Reject(id, rej.Reason, 1)
			resp.Rejected++
			resp.Errors = append(resp.Errors, WriteItemError{Index: i, Reason: rej.Reason, Message: rej.Error()})
			continue
		}
		start := len(arena)
		arena = append(arena, remotewrite.Label{Name: model.MetricNameLabel, Value: m.Name})
		for k, v := range m.Dimensions {
			arena = append(arena, remotewrite.Label{Name: k, Value: v})
		}
		ts.Labels = arena[start:len(arena):len(arena)]
		series = append(series, ts)
		index = append(index, i)
	}
	stored, err := g.Append(r.Context(), t, series, func(i int, rej *remotewrite.Rejection) {
		resp.Errors = append(resp.Errors, WriteItemError{Index: index[i], Reason: rej.Reason, Message: rej.Error()})
	})
	if err != nil {
		return nil, err
	}
	resp.Accepted, resp.Rejected = stored.Samples+stored.Histograms, resp.Rejected+stored.Rejected
	switch {
	case resp.Rejected > 0 && resp.Accepted == 0:
		resp.Status = "error"
	case resp.Rejected > 0:
		resp.Status = "partial"
	}
	return resp, nil
}

// decodeWrite decodes the body of a native write: a WriteRequest with at
// most maxMetrics items, no unknown fields and nothing after it. Errors
// are *apierror.Error values naming the offending field.
func decodeWrite(body []byte, maxMetrics int) ([]WriteMetric, error) {
	var items []WriteMetric
	seen := false
	err := decodeObject(body, "", func(dec *json.Decoder, name, _ string) error {
		if name != "metrics" {
			return apierror.Field(name, "unknown field %q: the body is {\"metrics\":[...]}", name)
		}
		seen = true
		dec.DisallowUnknownFields() // in the items, at any depth
		if tok, err := dec.Token(); err != nil {
			return syntaxError(err, "metrics")
		} else if d, ok := tok.(json.Delim); !ok || d != '[' {
			return apierror.Field("metrics", "metrics must be a JSON array")
		}
		for dec.More() {
			if len(items) == maxMetrics {
				err := apierror.Limit(apierror.TooLarge, tenancy.Global("--ingest.max-native-metrics"),
					"more than %d metrics in one request; split the batch", maxMetrics)
				err.Field = "metrics"
				return err
			}
			var m WriteMetric
			if err := dec.Decode(&m); err != nil {
				return syntaxError(err, fmt.Sprintf("metrics[%d]", len(items)))
			}
			items = append(items, m)
		}
		if _, err := dec.Token(); err != nil { // the closing bracket
			return syntaxError(err, "metrics")
		}
		return nil
	})
	switch {
	case err != nil:
		return nil, err
	case !seen:
		return nil, apierror.Field("metrics", "field metrics is required")
	}
	return items, nil
}

// series returns m as a series of one sample, float or histogram, with
// its exemplars and metadata (its labels left to the caller); its
// timestamp is now when it has none. A histogram has at most maxBuckets
// spans, buckets and custom values on each side, as in remote write.
func (m *WriteMetric) series(now time.Time, maxBuckets int) (remotewrite.TimeSeries, *remotewrite.Rejection) {
	reject := func(reason remotewrite.Reason, format string, args ...any) (remotewrite.TimeSeries, *remotewrite.Rejection) {
		return remotewrite.TimeSeries{}, &remotewrite.Rejection{Reason: reason, Msg: fmt.Sprintf(format, args...),
			Series: remotewrite.FormatSeries([]remotewrite.Label{{Name: model.MetricNameLabel, Value: m.Name}})}
	}
	t, err := parseTimestamp(m.Timestamp, "timestamp", now.UnixMilli())
	if err != nil {
		return reject(remotewrite.ReasonInvalidTimestamp, "%v", err)
	}
	var ts remotewrite.TimeSeries
	switch {
	case m.Histogram != nil && len(bytes.TrimSpace(m.Value)) > 0:
		return reject(remotewrite.ReasonInvalidValue, "value and histogram given: a metric carries one of them")
	case m.Histogram != nil:
		if n := m.Histogram.longest(); maxBuckets > 0 && n > maxBuckets {
			return reject(remotewrite.ReasonInvalidHistogram, "histogram: %d spans, buckets or custom values, more than %d %s",
				n, maxBuckets, tenancy.Global("--ingest.max-buckets-per-histogram").Raise())
		}
		h, err := m.Histogram.histogram(t)
		if err != nil {
			return reject(remotewrite.ReasonInvalidHistogram, "histogram: %v", err)
		}
		ts.Histograms = []remotewrite.Histogram{h}
	default:
		v, err := parseFloat(m.Value)
		if err != nil {
			return reject(remotewrite.ReasonInvalidValue, "%v", err)
		}
		ts.Samples = []remotewrite.Sample{{Value: v, Timestamp: t}}
	}
	for i, e := range m.Exemplars {
		et, err := parseTimestamp(e.Timestamp, "timestamp", t)
		if err != nil {
			return reject(remotewrite.ReasonInvalidTimestamp, "exemplars[%d]: %v", i, err)
		}
		x := remotewrite.Exemplar{Value: float64(e.Value), Timestamp: et}
		for k, v := range e.Labels {
			x.Labels = append(x.Labels, remotewrite.Label{Name: k, Value: v})
		}
		ts.Exemplars = append(ts.Exemplars, x)
	}
	if m.Type != "" || m.Help != "" || m.Unit != "" {
		typ, ok := metricTypes[m.Type]
		if !ok {
			return reject(remotewrite.ReasonInvalidMetadata,
				"type %q is none of counter, gauge, histogram, gaugehistogram, summary, info, stateset, unknown", shortText(m.Type))
		}
		ts.Metadata = &remotewrite.Metadata{Type: typ, Help: m.Help, Unit: m.Unit}
	}
	return ts, nil
}

// metricTypes are the native write's metric types, as the protobuf enum
// of Metadata.Type.
var metricTypes = map[string]int32{
	"": 0, "unknown": 0, "counter": 1, "gauge": 2, "histogram": 3, "gaugehistogram": 4, "summary": 5, "info": 6, "stateset": 7,
}

// resetHintsByName are the native histogram's counter_reset_hint values.
var resetHintsByName = map[string]histogram.CounterResetHint{
	"": histogram.UnknownCounterReset, "unknown": histogram.UnknownCounterReset,
	"reset": histogram.CounterReset, "not_reset": histogram.NotCounterReset, "gauge": histogram.GaugeType,
}

// longest is the length of h's longest list of spans, counts or custom
// values.
func (h *WriteHistogram) longest() int {
	return max(len(h.PositiveSpans), len(h.NegativeSpans), len(h.PositiveCounts), len(h.NegativeCounts), len(h.CustomValues))
}

// histogram returns h as a decoded Histogram at timestamp t: an integer
// one, its counts turned into deltas, unless h.Float.
func (h *WriteHistogram) histogram(t int64) (remotewrite.Histogram, error) {
	hint, ok := resetHintsByName[h.CounterResetHint]
	if !ok {
		return remotewrite.Histogram{}, fmt.Errorf("counter_reset_hint %q is none of unknown, reset, not_reset, gauge", shortText(h.CounterResetHint))
	}
	out := remotewrite.Histogram{
		IsFloat:       h.Float,
		Sum:           float64(h.Sum),
		Schema:        h.Schema,
		ZeroThreshold: float64(h.ZeroThreshold),
		ResetHint:     int32(hint),
		Timestamp:     t,
		PositiveSpans: writeSpans(h.PositiveSpans),
		NegativeSpans: writeSpans(h.NegativeSpans),
		CustomValues:  writeFloats(h.CustomValues),
	}
	if h.Float {
		out.CountFloat, out.ZeroCountFloat = float64(h.Count), float64(h.ZeroCount)
		out.PositiveCounts, out.NegativeCounts = writeFloats(h.PositiveCounts), writeFloats(h.NegativeCounts)
		return out, nil
	}
	var err error
	if out.CountInt, err = whole("count", h.Count); err != nil {
		return remotewrite.Histogram{}, err
	}
	if out.ZeroCountInt, err = whole("zero_count", h.ZeroCount); err != nil {
		return remotewrite.Histogram{}, err
	}
	if out.PositiveDeltas, err = deltas("positive_counts", h.PositiveCounts); err != nil {
		return remotewrite.Histogram{}, err
	}
	if out.NegativeDeltas, err = deltas("negative_counts", h.NegativeCounts); err != nil {
		return remotewrite.Histogram{}, err
	}
	return out, nil
}

// maxWhole is the largest count an integer histogram takes from JSON:
// above it float64 no longer holds every whole number.
const maxWhole = 1 << 53

func whole(field string, f Float) (uint64, error) {
	v := float64(f)
	if v < 0 || v > maxWhole || v != math.Trunc(v) {
		return 0, fmt.Errorf("%s %v is not a whole number from 0 to 2^53 (an integer histogram; set \"float\": true for a float histogram)", field, v)
	}
	return uint64(v), nil
}

// deltas returns absolute counts as the deltas of an integer histogram.
func deltas(field string, counts []Float) ([]int64, error) {
	if len(counts) == 0 {
		return nil, nil
	}
	out := make([]int64, len(counts))
	var prev int64
	for i, c := range counts {
		v, err := whole(fmt.Sprintf("%s[%d]", field, i), c)
		if err != nil {
			return nil, err
		}
		out[i] = int64(v) - prev
		prev = int64(v)
	}
	return out, nil
}

func writeSpans(s []Span) []histogram.Span {
	if len(s) == 0 {
		return nil
	}
	out := make([]histogram.Span, len(s))
	for i, x := range s {
		out[i] = histogram.Span{Offset: x.Offset, Length: x.Length}
	}
	return out
}

func writeFloats(f []Float) []float64 {
	if len(f) == 0 {
		return nil
	}
	out := make([]float64, len(f))
	for i, x := range f {
		out[i] = float64(x)
	}
	return out
}
