package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/remotewrite"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// Config bounds the OTLP receiver, beside the --ingest.* bounds it shares
// with remote write (body size, data points per request as samples, the
// in-flight budget, decode slots, label limits).
type Config struct {
	// MaxDecompressedBytes bounds a gzip body once inflated; it is cut
	// off while inflating, never inflated whole.
	MaxDecompressedBytes int64
	// LookbackDelta is the query lookback delta, which spaces the
	// target_info samples (no flag: --query.lookback-delta).
	LookbackDelta time.Duration
}

// DefaultConfig returns the defaults of the flags.
func DefaultConfig() Config {
	return Config{MaxDecompressedBytes: 64 << 20, LookbackDelta: 5 * time.Minute}
}

// RegisterFlags registers the --otlp.* bounds on f (the translation
// flags are tenancy's, with their per-tenant overrides).
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	d := DefaultConfig()
	f.Int64Var(&c.MaxDecompressedBytes, "otlp.max-decompressed-bytes", d.MaxDecompressedBytes,
		"Largest OTLP request body accepted once gzip-decompressed, in bytes; inflating stops there and the request gets 413.")
}

// Validate reports every setting out of range.
func (c *Config) Validate() error {
	if c.MaxDecompressedBytes <= 0 {
		return fmt.Errorf("--otlp.max-decompressed-bytes must be positive, got %d", c.MaxDecompressedBytes)
	}
	return nil
}

// Translations gives a tenant's OTLP translation; *tenancy.Limits
// implements it.
type Translations interface {
	OTLP(id tenancy.ID) tenancy.OTLPTranslation
}

// Handler is the OTLP/HTTP metrics receiver, for POST /otlp/v1/metrics
// and its aliases (routes of the metrics:write scope whose errors take
// FormatOf). It writes through a remotewrite.Ingester, sharing remote
// write's bounds, rate limits and counters. Safe for concurrent use.
type Handler struct {
	g            *remotewrite.Ingester
	cfg          Config
	translations Translations
	fast         fastConverter
	logger       *slog.Logger
	converters   sync.Pool // of *prometheusremotewrite.PrometheusConverter
	// cache holds the store's handles of the series the fast path
	// appended, nil when --ingest.series-cache-size is 0.
	cache *seriesCache
}

// NewHandler returns the receiver writing through g, translating as
// translations says for each tenant (nil: Prometheus' defaults), logging
// through logger (nil for nowhere).
func NewHandler(g *remotewrite.Ingester, cfg Config, translations Translations, logger *slog.Logger) *Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxDecompressedBytes <= 0 {
		cfg.MaxDecompressedBytes = DefaultConfig().MaxDecompressedBytes
	}
	if cfg.LookbackDelta <= 0 {
		cfg.LookbackDelta = DefaultConfig().LookbackDelta
	}
	h := &Handler{g: g, cfg: cfg, translations: translations, logger: logger}
	fc := newFastConverter().(*fastConv)
	fc.maxPoints = g.Config().MaxSamplesPerRequest
	h.fast = fc
	h.cache = newSeriesCache(g.Config().SeriesCacheSize)
	h.converters.New = func() any { return prometheusremotewrite.NewPrometheusConverter(nil) }
	return h
}

// encoding is the body encoding of a request, and of its response.
type encoding int

const (
	encProtobuf encoding = iota
	encJSON
)

const (
	contentTypeProtobuf = "application/x-protobuf"
	contentTypeJSON     = "application/json"
)

// FormatOf is the error format of request r: a google.rpc.Status in the
// encoding of its body.
func FormatOf(r *http.Request) apierror.Format {
	if enc, _ := encodingOf(r); enc == encJSON {
		return apierror.OTLPJSON
	}
	return apierror.OTLPProtobuf
}

func encodingOf(r *http.Request) (encoding, error) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	switch {
	case err == nil && mt == contentTypeProtobuf:
		return encProtobuf, nil
	case err == nil && mt == contentTypeJSON:
		return encJSON, nil
	}
	return encProtobuf, apierror.New(apierror.UnsupportedMediaType,
		"Content-Type %q is not an OTLP body: send %s or %s", ct, contentTypeProtobuf, contentTypeJSON)
}

func gzipped(r *http.Request) (bool, error) {
	switch ce := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); ce {
	case "", "identity":
		return false, nil
	case "gzip":
		return true, nil
	default:
		return false, apierror.New(apierror.UnsupportedMediaType, "Content-Encoding %q is not supported: send gzip or no encoding", ce)
	}
}

// Response is the answer to an export that was decoded: an
// ExportMetricsServiceResponse, whose partial_success says how many data
// points were rejected and why (joinMessages), in the encoding of the
// request.
type Response struct {
	Points, Rejected int
	Message          string
	json             bool
}

// Respond writes r, 200.
func (r *Response) Respond(w http.ResponseWriter, _ *http.Request) error {
	resp := pmetricotlp.NewExportResponse()
	if r.Rejected > 0 || r.Message != "" {
		ps := resp.PartialSuccess()
		ps.SetRejectedDataPoints(int64(r.Rejected))
		ps.SetErrorMessage(r.Message)
	}
	var (
		b   []byte
		err error
		ct  = contentTypeProtobuf
	)
	if r.json {
		b, err = resp.MarshalJSON()
		ct = contentTypeJSON
	} else {
		b, err = resp.MarshalProto()
	}
	if err != nil {
		return fmt.Errorf("encode OTLP response: %w", err)
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	return nil
}

// Serve serves one OTLP export of tenant t.
func (h *Handler) Serve(r *http.Request, t storage.Tenant) (any, error) {
	resp, err := h.write(r, t)
	if err != nil {
		status := apierror.Classify(err).Status
		if status >= 500 {
			h.logger.WarnContext(r.Context(), "OTLP write failed", "tenant", t.ID(), "status", status, "err", err)
		}
		h.g.Answered(t.ID(), status)
		return nil, err
	}
	h.g.Answered(t.ID(), http.StatusOK)
	return resp, nil
}

// decodedBytesPerByte is the memory an OTLP request holds per byte of
// its decompressed body once pdata decoded it and the converter built
// its series.
const decodedBytesPerByte = 8

func (h *Handler) write(r *http.Request, t storage.Tenant) (*Response, error) {
	enc, err := encodingOf(r)
	if err != nil {
		return nil, err
	}
	gz, err := gzipped(r)
	if err != nil {
		return nil, err
	}
	g, id := h.g, t.ID()
	body, err := g.ReadBody(r)
	if err != nil {
		return nil, err
	}
	release, err := g.Reserve(id, int64(len(body)))
	if err != nil {
		return nil, err
	}
	defer release()
	done, err := g.DecodeSlot(r.Context())
	if err != nil {
		return nil, err
	}
	defer func() { done() }()
	raw := body
	if gz {
		if raw, err = gunzip(body, h.cfg.MaxDecompressedBytes); err != nil {
			return nil, err
		}
	}
	releaseDecoded, err := g.Reserve(id, decodedBytesPerByte*int64(len(raw)))
	if err != nil {
		return nil, err
	}
	defer func() { releaseDecoded() }()

	settings := Settings(h.translation(id), h.cfg.LookbackDelta)
	resp := &Response{json: enc == encJSON}
	app := newAppender(g.AppenderV2(r.Context(), t), g.Validator(), t.ID(), time.Now(), g.Config()).withCache(h.cache)
	if h.fast != nil && enc == encProtobuf {
		st, ok, err := h.fast.convertAdmit(r.Context(), raw, settings, app, func(points int) error {
			done()
			done = func() {}
			return h.admit(id, points)
		})
		switch {
		case err != nil:
			return nil, errors.Join(err, app.Rollback())
		case ok:
			return h.commit(id, app, resp, st)
		}
		// Not for the fast converter: it appended nothing.
	}

	// pdata takes up to some hundred times the bytes of a body of tiny
	// messages: what it will take is counted first, refused when more
	// than a request may hold, and reserved.
	if releaseDecoded, err = h.reserveDecoded(id, raw, enc, releaseDecoded); err != nil {
		return nil, err
	}
	md, err := decode(raw, enc)
	if err != nil {
		return nil, err
	}
	done()
	done = func() {}
	points := md.DataPointCount()
	if err := h.admit(id, points); err != nil {
		return nil, err
	}
	st := ConvertStats{Points: points}
	var span time.Duration
	st.Rejected, st.Message, span = refuseUnsupported(md)
	settings.LookbackDelta = targetInfoLookback(settings.LookbackDelta, span)
	c := h.converters.Get().(*prometheusremotewrite.PrometheusConverter)
	c.Reset(app)
	annots, err := c.FromMetrics(r.Context(), md, settings)
	c.Reset(nil)
	h.converters.Put(c)
	if app.fatal != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil, errors.Join(app.fatal, err, app.Rollback())
	}
	if err != nil {
		// Metrics the converter dropped whole (names it cannot build,
		// unsupported types): their points never reached the appender.
		if dropped := points - st.Rejected - app.points; dropped > 0 {
			st.Rejected += dropped
			g.Reject(id, remotewrite.ReasonInvalidSample, dropped)
		}
		st.Message = joinMessages(st.Message, firstError(err))
		h.logger.Debug("OTLP points dropped by the converter", "tenant", id, "err", err)
	}
	if ws, _ := annots.AsStrings("", 0, 0); len(ws) > 0 {
		h.logger.Debug("OTLP translation warnings", "tenant", id, "warnings", ws)
	}
	return h.commit(id, app, resp, st)
}

// reserveDecoded counts what decoding raw with pdata will allocate
// (decodedCost), refuses it if more than the whole in-flight budget or
// with more data points than a request may hold, and exchanges
// reservation held (the fast path's) for it. The release it returns is
// never nil.
func (h *Handler) reserveDecoded(id tenancy.ID, raw []byte, enc encoding, held func()) (func(), error) {
	var points, cost int64
	if enc == encJSON {
		points, cost = decodedCostJSON(raw)
	} else {
		points, cost = decodedCost(raw)
	}
	cfg := h.g.Config()
	if limit := cfg.MaxSamplesPerRequest; limit > 0 && points > int64(limit) {
		return held, apierror.Limit(apierror.TooLarge, tenancy.Global("--ingest.max-samples-per-request"),
			"%d data points in one OTLP request, more than the limit of %d; export smaller batches", points, limit)
	}
	if limit := cfg.MaxInflightBytes; limit > 0 && cost > limit {
		return held, apierror.Limit(apierror.TooLarge, tenancy.Global("--ingest.max-inflight-bytes"),
			"an OTLP request of %d bytes decodes to about %d bytes, more than the limit of %d bytes that all write requests in flight share; export smaller batches",
			len(raw), cost, limit)
	}
	held()
	release, err := h.g.Reserve(id, cost)
	if err != nil {
		return func() {}, err
	}
	return release, nil
}

// admit bounds the data points of one request
// (--ingest.max-samples-per-request) and asks the rate limiter for them.
func (h *Handler) admit(id tenancy.ID, points int) error {
	if limit := h.g.Config().MaxSamplesPerRequest; limit > 0 && points > limit {
		return apierror.Limit(apierror.TooLarge, tenancy.Global("--ingest.max-samples-per-request"),
			"%d data points in one OTLP request, more than the limit of %d; export smaller batches", points, limit)
	}
	return h.g.Allow(id, points)
}

// commit commits what app holds and returns the response, counting what
// was stored and rejected.
func (h *Handler) commit(id tenancy.ID, app *appender, resp *Response, st ConvertStats) (*Response, error) {
	if err := app.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	h.g.Accepted(id, app.samples, app.exemplars, app.exemplarsRefused)
	if app.byHandle > 0 {
		h.cache.hits.Add(int64(app.byHandle))
	}
	for reason, n := range app.byReason {
		h.g.Reject(id, reason, n)
	}
	resp.Points = st.Points
	resp.Rejected = min(st.Rejected+app.rejected, st.Points)
	resp.Message = st.Message
	if app.first != nil {
		resp.Message = joinMessages(resp.Message, app.first.Error())
	}
	return resp, nil
}

func (h *Handler) translation(id tenancy.ID) tenancy.OTLPTranslation {
	if h.translations == nil {
		return tenancy.DefaultOTLPTranslation()
	}
	return h.translations.OTLP(id)
}

// gunzip inflates body, at most limit bytes: beyond, it stops and
// refuses the request.
func gunzip(body []byte, limit int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, apierror.Wrap(apierror.InvalidArgument, err, "gzip body")
	}
	var buf bytes.Buffer
	buf.Grow(int(min(int64(len(body))*4, limit) + bytes.MinRead))
	n, err := buf.ReadFrom(io.LimitReader(zr, limit+1))
	switch {
	case n > limit:
		return nil, apierror.Limit(apierror.TooLarge, tenancy.Global("--otlp.max-decompressed-bytes"),
			"OTLP body inflates to more than the limit of %d bytes", limit)
	case err != nil:
		return nil, apierror.Wrap(apierror.InvalidArgument, err, "gzip body")
	}
	return buf.Bytes(), nil
}

// decode decodes an ExportMetricsServiceRequest with pdata.
func decode(raw []byte, enc encoding) (pmetric.Metrics, error) {
	if err := checkNesting(raw, enc); err != nil {
		return pmetric.Metrics{}, err
	}
	req := pmetricotlp.NewExportRequest()
	var err error
	if enc == encJSON {
		err = req.UnmarshalJSON(raw)
	} else {
		err = req.UnmarshalProto(raw)
	}
	if err != nil {
		return pmetric.Metrics{}, apierror.Wrap(apierror.InvalidArgument, err, "decode OTLP metrics")
	}
	return req.Metrics(), nil
}

// maxMessage bounds each reason of a partial_success's error_message.
const maxMessage = 1024

// joinMessages joins the reasons of a partial success, each cut to
// maxMessage bytes: the first refusal found by each stage (the
// converter's own, the converter's errors, the validation of the
// series), not necessarily the first point of the request.
func joinMessages(a, b string) string {
	if len(b) > maxMessage {
		b = strings.ToValidUTF8(b[:maxMessage], "") + "..."
	}
	switch {
	case b == "":
		return a
	case a == "":
		return b
	}
	return a + "; " + b
}

// firstError is the first of the errors err joins.
func firstError(err error) string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		if errs := j.Unwrap(); len(errs) > 0 {
			return firstError(errs[0])
		}
	}
	return err.Error()
}
