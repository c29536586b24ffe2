package remotewrite

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// NativeRequest is the body of POST /api/v1/metrics:
//
//	{"metrics":[{"name":"http_requests_total","dimensions":{"path":"/"},"value":1.5,"timestamp":"2026-11-26T10:00:00Z"}]}
type NativeRequest struct {
	Metrics []NativeMetric `json:"metrics"`
}

// NativeMetric is one sample of a native write: a float Value or a native
// Histogram, exactly one. Value is a JSON number or one of the strings
// "NaN", "+Inf", "-Inf"; Timestamp is an RFC 3339 string or a JSON number
// of Unix milliseconds, and defaults to the time of the request.
// Exemplars, and the metadata of the metric family (Type, Help, Unit),
// are optional.
type NativeMetric struct {
	Name       string            `json:"name"`
	Dimensions map[string]string `json:"dimensions,omitempty"`
	Value      json.RawMessage   `json:"value,omitempty"`
	Histogram  *NativeHistogram  `json:"histogram,omitempty"`
	Timestamp  json.RawMessage   `json:"timestamp,omitempty"`
	Exemplars  []NativeExemplar  `json:"exemplars,omitempty"`
	Type       string            `json:"type,omitempty"` // counter, gauge, histogram, gaugehistogram, summary, info, stateset, unknown
	Help       string            `json:"help,omitempty"`
	Unit       string            `json:"unit,omitempty"`
}

// NativeHistogram is a native histogram sample in JSON. Counts are
// absolute per bucket (not deltas); an integer histogram (Float false)
// takes whole, non-negative counts. Sum and the other floats take the
// strings "NaN", "+Inf", "-Inf" as Value does.
type NativeHistogram struct {
	Schema           int32         `json:"schema"`
	Count            NativeFloat   `json:"count"`
	Sum              NativeFloat   `json:"sum"`
	ZeroThreshold    NativeFloat   `json:"zero_threshold,omitempty"`
	ZeroCount        NativeFloat   `json:"zero_count,omitempty"`
	CounterResetHint string        `json:"counter_reset_hint,omitempty"` // unknown (default), reset, not_reset, gauge
	PositiveSpans    []NativeSpan  `json:"positive_spans,omitempty"`
	PositiveCounts   []NativeFloat `json:"positive_counts,omitempty"`
	NegativeSpans    []NativeSpan  `json:"negative_spans,omitempty"`
	NegativeCounts   []NativeFloat `json:"negative_counts,omitempty"`
	CustomValues     []NativeFloat `json:"custom_values,omitempty"` // schema -53: the buckets' upper bounds
	Float            bool          `json:"float,omitempty"`
}

// NativeSpan is a run of Length consecutive buckets, Offset buckets after
// the previous run (or from bucket 0 for the first).
type NativeSpan struct {
	Offset int32  `json:"offset"`
	Length uint32 `json:"length"`
}

// NativeExemplar is an exemplar of a native write's sample. Timestamp
// takes the formats of NativeMetric's and defaults to the sample's.
type NativeExemplar struct {
	Labels    map[string]string `json:"labels"`
	Value     NativeFloat       `json:"value"`
	Timestamp json.RawMessage   `json:"timestamp,omitempty"`
}

// NativeFloat is a JSON number, or one of the strings "NaN", "+Inf" and
// "-Inf".
type NativeFloat float64

// UnmarshalJSON implements json.Unmarshaler.
func (f *NativeFloat) UnmarshalJSON(b []byte) error {
	v, err := parseNativeValue(b)
	if err != nil {
		return err
	}
	*f = NativeFloat(v)
	return nil
}

// MarshalJSON implements json.Marshaler, writing NaN and infinities as
// strings.
func (f NativeFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Inf"`), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

// NativeResponse is the answer to a native write. Status is "success"
// (200, everything stored), "partial" (400, the valid items stored, Errors
// says which were not) or "error" (nothing stored: Errors lists the
// rejected items, or Error says why the whole request was refused).
type NativeResponse struct {
	Status   string            `json:"status"`
	Accepted int               `json:"accepted"`
	Rejected int               `json:"rejected"`
	Errors   []NativeItemError `json:"errors"`
	Error    *NativeError      `json:"error,omitempty"`
}

// NativeItemError is why the item at Index was rejected.
type NativeItemError struct {
	Index   int    `json:"index"`
	Reason  Reason `json:"reason"`
	Message string `json:"message"`
}

// NativeError is why a whole native write was refused, in the native
// API's error vocabulary.
type NativeError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// nativeHandler is the native JSON batch write.
type nativeHandler struct {
	*ingester
}

// NewNative returns the native JSON batch write, for POST /api/v1/metrics.
// It validates items as the remote write receiver does, stores the valid
// ones and answers with a NativeResponse. limiter may be nil.
func NewNative(cfg Config, store storage.MetricsStore, limiter Limiter, logger *slog.Logger, reg prometheus.Registerer) http.Handler {
	return &nativeHandler{newIngester(cfg, store, limiter, logger, reg)}
}

func (h *nativeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, err := tenancy.FromContext(r.Context())
	resp := NativeResponse{Status: "success", Errors: []NativeItemError{}}
	if err == nil {
		err = h.write(w, r, p, &resp)
	}
	status := http.StatusOK
	switch {
	case err != nil:
		info := apierror.Classify(err)
		status = info.Status
		msg := err.Error()
		if info.Kind == apierror.Internal {
			msg = "internal error"
		}
		if status >= 500 {
			h.logger.WarnContext(r.Context(), "native write failed", "tenant", p.Tenant, "status", status, "err", err)
		}
		apierror.SetRetryAfter(w, info)
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="luminate"`)
		}
		resp = NativeResponse{Status: "error", Errors: []NativeItemError{}, Error: &NativeError{
			Code: info.Kind.Code(), Message: msg, Field: info.Field,
		}}
	case resp.Rejected > 0:
		status = apierror.InvalidArgument.Status()
		resp.Status = "partial"
		if resp.Accepted == 0 {
			resp.Status = "error"
		}
	}
	b, err := json.Marshal(resp)
	if err != nil { // only plain strings and numbers: cannot happen
		b = []byte(`{"status":"error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	h.metrics.requests.WithLabelValues(string(p.Tenant), strconv.Itoa(status)).Inc()
}

func (h *nativeHandler) write(w http.ResponseWriter, r *http.Request, p tenancy.Principal, resp *NativeResponse) error {
	if err := requireWrite(p); err != nil {
		return err
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return apierror.New(apierror.UnsupportedMediaType, "Content-Type %q is not supported: send application/json", ct)
		}
	}
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return apierror.New(apierror.UnsupportedMediaType, "Content-Encoding %q is not supported: send the JSON uncompressed", enc)
	}
	st := h.getState()
	defer h.putState(st)
	var err error
	st.body, err = readBody(w, r, st.body, h.cfg.MaxCompressedBytes)
	if err != nil {
		return err
	}
	reserved, err := h.inflight.acquire(p.Tenant, nativeBytesPerByte*int64(len(st.body)))
	if err != nil {
		return err
	}
	defer h.inflight.release(reserved)
	release, err := h.decoding.acquire(r.Context())
	if err != nil {
		return err
	}
	items, err := DecodeNative(st.body, h.cfg.MaxNativeMetrics)
	release()
	if err != nil {
		return err
	}
	dims := 0
	for i := range items {
		if dims += 1 + len(items[i].Dimensions); dims > h.cfg.MaxLabelsPerRequest {
			return &apierror.Error{Kind: apierror.TooLarge, Field: fmt.Sprintf("metrics[%d].dimensions", i), Msg: fmt.Sprintf(
				"more than %d labels (names and dimensions) in one request (raise --ingest.max-labels-per-request, or split the batch)",
				h.cfg.MaxLabelsPerRequest)}
		}
	}
	if err := h.allow(p.Tenant, len(items)); err != nil {
		return err
	}

	// One series of one sample per item; index maps series to items.
	rc := &st.counts
	rc.reset()
	now := time.Now()
	series := make([]TimeSeries, 0, len(items))
	index := make([]int, 0, len(items))
	labelArena := make([]Label, 0, len(items)*4)
	for i := range items {
		m := &items[i]
		ts, err := m.series(now)
		if err != nil {
			rej := asRejection(err)
			rc.add(rej, 1)
			rc.series++
			resp.Errors = append(resp.Errors, NativeItemError{Index: i, Reason: rej.Reason, Message: rej.Error()})
			continue
		}
		ts.labelsStart = int32(len(labelArena))
		labelArena = append(labelArena, Label{Name: model.MetricNameLabel, Value: m.Name})
		for k, v := range m.Dimensions {
			labelArena = append(labelArena, Label{Name: k, Value: v})
		}
		series = append(series, ts)
		index = append(index, i)
	}
	for i := range series {
		end := len(labelArena)
		if i+1 < len(series) {
			end = int(series[i+1].labelsStart)
		}
		series[i].Labels = labelArena[series[i].labelsStart:end:end]
	}
	stored, err := h.appendSeries(h.appender(r.Context(), p.Tenant), p.Tenant, series, st, st.seriesMetadata, func(i int, rej *Rejection) {
		resp.Errors = append(resp.Errors, NativeItemError{Index: index[i], Reason: rej.Reason, Message: rej.Error()})
	})
	if err != nil {
		return err
	}
	resp.Accepted, resp.Rejected = stored.samples+stored.histograms, rc.samples
	return nil
}

// DecodeNative decodes the body of a native write: a NativeRequest with at
// most maxMetrics items, no unknown fields and nothing after it. Errors
// are *apierror.Error values naming the offending field.
func DecodeNative(body []byte, maxMetrics int) ([]NativeMetric, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := expectDelim(dec, '{', ""); err != nil {
		return nil, err
	}
	var items []NativeMetric
	seen := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxError(err, "")
		}
		if key, _ := tok.(string); key != "metrics" {
			return nil, apierror.Field(fmt.Sprint(tok), "unknown field %q: the body is {\"metrics\":[...]}", tok)
		}
		if seen {
			return nil, apierror.Field("metrics", "field metrics given twice")
		}
		seen = true
		if err := expectDelim(dec, '[', "metrics"); err != nil {
			return nil, err
		}
		for dec.More() {
			field := fmt.Sprintf("metrics[%d]", len(items))
			if len(items) == maxMetrics {
				return nil, &apierror.Error{Kind: apierror.TooLarge, Field: "metrics", Msg: fmt.Sprintf(
					"more than %d metrics in one request (raise --ingest.max-native-metrics, or split the batch)", maxMetrics)}
			}
			var m NativeMetric
			if err := dec.Decode(&m); err != nil {
				return nil, syntaxError(err, field)
			}
			items = append(items, m)
		}
		if err := expectDelim(dec, ']', "metrics"); err != nil {
			return nil, err
		}
	}
	if err := expectDelim(dec, '}', ""); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, apierror.Field("", "unexpected data after the JSON object")
	}
	if !seen {
		return nil, apierror.Field("metrics", "field metrics is required")
	}
	return items, nil
}

func expectDelim(dec *json.Decoder, want json.Delim, field string) error {
	tok, err := dec.Token()
	if err != nil {
		return syntaxError(err, field)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		where := field
		if where == "" {
			where = "the body"
		}
		return apierror.Field(field, "expected %q in %s, found %v", string(want), where, tok)
	}
	return nil
}

func syntaxError(err error, field string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return apierror.Field(field, "truncated JSON body")
	}
	if field == "" {
		return apierror.Field(field, "invalid JSON body: %v", err)
	}
	return apierror.Field(field, "%s: %v", field, err)
}

// series returns m as a series of one sample, float or histogram, with
// its exemplars and metadata (its labels left to the caller); its
// timestamp is now when it has none.
func (m *NativeMetric) series(now time.Time) (TimeSeries, error) {
	ls := []Label{{Name: model.MetricNameLabel, Value: m.Name}}
	t, err := parseNativeTimestamp(m.Timestamp, now)
	if err != nil {
		return TimeSeries{}, reject(ReasonInvalidTimestamp, ls, nil, "%v", err)
	}
	var ts TimeSeries
	switch {
	case m.Histogram != nil && len(bytes.TrimSpace(m.Value)) > 0:
		return TimeSeries{}, reject(ReasonInvalidValue, ls, nil, "value and histogram given: a metric carries one of them")
	case m.Histogram != nil:
		h, err := m.Histogram.histogram(t)
		if err != nil {
			return TimeSeries{}, reject(ReasonInvalidHistogram, ls, nil, "histogram: %v", err)
		}
		ts.Histograms = []Histogram{h}
	default:
		v, err := parseNativeValue(m.Value)
		if err != nil {
			return TimeSeries{}, reject(ReasonInvalidValue, ls, nil, "%v", err)
		}
		ts.Samples = []Sample{{Value: v, Timestamp: t}}
	}
	for i, e := range m.Exemplars {
		et, err := parseNativeTimestamp(e.Timestamp, time.UnixMilli(t))
		if err != nil {
			return TimeSeries{}, reject(ReasonInvalidTimestamp, ls, nil, "exemplars[%d]: %v", i, err)
		}
		x := Exemplar{Value: float64(e.Value), Timestamp: et}
		for k, v := range e.Labels {
			x.Labels = append(x.Labels, Label{Name: k, Value: v})
		}
		ts.Exemplars = append(ts.Exemplars, x)
	}
	if m.Type != "" || m.Help != "" || m.Unit != "" {
		typ, ok := metricTypes[m.Type]
		if !ok {
			return TimeSeries{}, reject(ReasonInvalidMetadata, ls, nil,
				"type %s is none of counter, gauge, histogram, gaugehistogram, summary, info, stateset, unknown", quoteShort(m.Type))
		}
		ts.Metadata = &Metadata{Type: typ, Help: m.Help, Unit: m.Unit}
	}
	return ts, nil
}

// metricTypes are the native write's metric types, as the protobuf enum
// of Metadata.Type.
var metricTypes = map[string]int32{
	"": 0, "unknown": 0, "counter": 1, "gauge": 2, "histogram": 3, "gaugehistogram": 4, "summary": 5, "info": 6, "stateset": 7,
}

// counterResetHints are the native histogram's counter_reset_hint values.
var counterResetHints = map[string]histogram.CounterResetHint{
	"": histogram.UnknownCounterReset, "unknown": histogram.UnknownCounterReset,
	"reset": histogram.CounterReset, "not_reset": histogram.NotCounterReset, "gauge": histogram.GaugeType,
}

// histogram returns h as a decoded Histogram at timestamp t: an integer
// one, its counts turned into deltas, unless h.Float.
func (h *NativeHistogram) histogram(t int64) (Histogram, error) {
	hint, ok := counterResetHints[h.CounterResetHint]
	if !ok {
		return Histogram{}, fmt.Errorf("counter_reset_hint %s is none of unknown, reset, not_reset, gauge", quoteShort(h.CounterResetHint))
	}
	out := Histogram{
		IsFloat:       h.Float,
		Sum:           float64(h.Sum),
		Schema:        h.Schema,
		ZeroThreshold: float64(h.ZeroThreshold),
		ResetHint:     int32(hint),
		Timestamp:     t,
		PositiveSpans: nativeSpans(h.PositiveSpans),
		NegativeSpans: nativeSpans(h.NegativeSpans),
		CustomValues:  nativeFloats(h.CustomValues),
	}
	if h.Float {
		out.CountFloat, out.ZeroCountFloat = float64(h.Count), float64(h.ZeroCount)
		out.PositiveCounts, out.NegativeCounts = nativeFloats(h.PositiveCounts), nativeFloats(h.NegativeCounts)
		return out, nil
	}
	var err error
	if out.CountInt, err = whole("count", h.Count); err != nil {
		return Histogram{}, err
	}
	if out.ZeroCountInt, err = whole("zero_count", h.ZeroCount); err != nil {
		return Histogram{}, err
	}
	if out.PositiveDeltas, err = deltas("positive_counts", h.PositiveCounts); err != nil {
		return Histogram{}, err
	}
	if out.NegativeDeltas, err = deltas("negative_counts", h.NegativeCounts); err != nil {
		return Histogram{}, err
	}
	return out, nil
}

// maxWhole is the largest count an integer histogram takes from JSON:
// above it float64 no longer holds every whole number.
const maxWhole = 1 << 53

func whole(field string, f NativeFloat) (uint64, error) {
	v := float64(f)
	if v < 0 || v > maxWhole || v != math.Trunc(v) {
		return 0, fmt.Errorf("%s %v is not a whole number from 0 to 2^53 (an integer histogram; set \"float\": true for a float histogram)", field, v)
	}
	return uint64(v), nil
}

// deltas returns absolute counts as the deltas of an integer histogram.
func deltas(field string, counts []NativeFloat) ([]int64, error) {
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

func nativeSpans(s []NativeSpan) []histogram.Span {
	if len(s) == 0 {
		return nil
	}
	out := make([]histogram.Span, len(s))
	for i, x := range s {
		out[i] = histogram.Span{Offset: x.Offset, Length: x.Length}
	}
	return out
}

func nativeFloats(f []NativeFloat) []float64 {
	if len(f) == 0 {
		return nil
	}
	out := make([]float64, len(f))
	for i, x := range f {
		out[i] = float64(x)
	}
	return out
}

func parseNativeValue(raw json.RawMessage) (float64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, errors.New("value is required")
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("value %s: %w", raw, err)
		}
		switch s {
		case "NaN":
			return math.NaN(), nil
		case "+Inf":
			return math.Inf(1), nil
		case "-Inf":
			return math.Inf(-1), nil
		}
		return 0, fmt.Errorf("value %q is neither a number nor \"NaN\", \"+Inf\" or \"-Inf\"", s)
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || !json.Valid(raw) {
		return 0, fmt.Errorf("value %s is not a number", shorten(raw))
	}
	return v, nil
}

func parseNativeTimestamp(raw json.RawMessage, now time.Time) (int64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return now.UnixMilli(), nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("timestamp %s: %w", shorten(raw), err)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return 0, fmt.Errorf("timestamp %q is not RFC 3339 (2026-11-26T10:00:00Z) nor Unix milliseconds", s)
		}
		return t.UnixMilli(), nil
	}
	t, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("timestamp %s is not a whole number of Unix milliseconds nor an RFC 3339 string", shorten(raw))
	}
	return t, nil
}

func shorten(raw []byte) string {
	if len(raw) > maxShownBytes {
		return string(raw[:maxShownBytes]) + "..."
	}
	return string(raw)
}
