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

// NativeMetric is one sample of a native write. Value is a JSON number or
// one of the strings "NaN", "+Inf", "-Inf"; Timestamp is an RFC 3339 string
// or a JSON number of Unix milliseconds, and defaults to the time of the
// request.
type NativeMetric struct {
	Name       string            `json:"name"`
	Dimensions map[string]string `json:"dimensions,omitempty"`
	Value      json.RawMessage   `json:"value"`
	Timestamp  json.RawMessage   `json:"timestamp,omitempty"`
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
	for i, m := range items {
		s, err := m.sample(now)
		if err != nil {
			rej := asRejection(err)
			rc.add(rej, 1)
			rc.series++
			resp.Errors = append(resp.Errors, NativeItemError{Index: i, Reason: rej.Reason, Message: rej.Error()})
			continue
		}
		start := len(labelArena)
		labelArena = append(labelArena, Label{Name: model.MetricNameLabel, Value: m.Name})
		for k, v := range m.Dimensions {
			labelArena = append(labelArena, Label{Name: k, Value: v})
		}
		series = append(series, TimeSeries{labelsStart: start, Samples: []Sample{s}})
		index = append(index, i)
	}
	for i := range series {
		end := len(labelArena)
		if i+1 < len(series) {
			end = series[i+1].labelsStart
		}
		series[i].Labels = labelArena[series[i].labelsStart:end:end]
	}
	app := appenderV1{h.store.ForTenant(p.Tenant).Appender(r.Context())}
	accepted, err := h.appendSeries(app, p.Tenant, series, st, func(i int, rej *Rejection) {
		resp.Errors = append(resp.Errors, NativeItemError{Index: index[i], Reason: rej.Reason, Message: rej.Error()})
	})
	if err != nil {
		return err
	}
	resp.Accepted, resp.Rejected = accepted, rc.samples
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

// sample parses m's value and timestamp, now when it has none.
func (m *NativeMetric) sample(now time.Time) (Sample, error) {
	ls := []Label{{Name: model.MetricNameLabel, Value: m.Name}}
	v, err := parseNativeValue(m.Value)
	if err != nil {
		return Sample{}, reject(ReasonInvalidValue, ls, nil, "%v", err)
	}
	t, err := parseNativeTimestamp(m.Timestamp, now)
	if err != nil {
		return Sample{}, reject(ReasonInvalidTimestamp, ls, nil, "%v", err)
	}
	return Sample{Value: v, Timestamp: t}, nil
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
