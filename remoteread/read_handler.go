// Package remoteread serves Prometheus remote read (POST /api/v1/read):
// a snappy-compressed prompb.ReadRequest answered from the storage view of
// the verified tenant in the request context, as a snappy-compressed
// prompb.ReadResponse of samples and native histograms (prompb.Histogram,
// integer or float as stored) or as a stream of CRC-framed
// prompb.ChunkedReadResponse messages of the store's XOR, histogram and
// float histogram chunks, negotiated from the request's
// accepted_response_types exactly as Prometheus does. A histogram counts
// as one sample against the sample limits, as in Prometheus, and its bytes
// against the response's.
//
// Streamed responses read each series' chunks when they are written, so a
// response never holds more than one frame; a SAMPLES response is held as
// its encoding, at most --remote-read.max-response-bytes. Series never
// carry the _tenant_id label, and matchers on it cannot reach another
// tenant: the tenant's view matches the tenant implicitly.
//
// What one request may cost is bounded as a whole: its body (size, and a
// deadline to arrive), its queries and matchers, the series and samples of
// all its queries together and the bytes of its response. A request takes
// a slot only once its body is read, and one tenant may hold only its
// share of the slots.
//
// It is not where requests are authenticated (api middleware puts the
// tenancy.Principal in the context) nor where external labels are added:
// Luminate has none.
package remoteread

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// Limits are the per-tenant limits a remote read counts against; it is a
// query. *tenancy.Limits implements it; implementations must be safe for
// concurrent use.
type Limits interface {
	// AllowQuery counts one query against the tenant's query rate.
	AllowQuery(id tenancy.ID) error
	// AcquireQuery admits one query if the tenant runs fewer than its
	// concurrent limit, and returns the func that ends it.
	AcquireQuery(ctx context.Context, id tenancy.ID) (release func(), err error)
	// MaxSeriesPerQuery is the most series one request may return, over
	// all its queries; 0 means unlimited.
	MaxSeriesPerQuery(id tenancy.ID) int
	// MaxSamplesPerQuery is the most samples one request may return, over
	// all its queries; 0 means unlimited.
	MaxSamplesPerQuery(id tenancy.ID) int
}

// Content types of the two response types.
const (
	samplesContentType  = "application/x-protobuf"
	streamedContentType = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"
)

// Handler serves remote read. It is safe for concurrent use.
type Handler struct {
	cfg    Config
	store  storage.MetricsStore
	limits Limits
	logger *slog.Logger
	slots  *slots

	marshalPool sync.Pool // of *[]byte, for PooledMarshal

	queries  prometheus.Gauge
	requests *prometheus.CounterVec
}

// New returns the remote-read handler over store. limits may be nil (no
// per-tenant limits). Its metrics are registered on reg.
func New(cfg Config, store storage.MetricsStore, limits Limits, logger *slog.Logger, reg prometheus.Registerer) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil {
		return nil, errors.New("remoteread: a store is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{
		cfg:    cfg,
		store:  store,
		limits: limits,
		logger: logger,
		queries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "luminate_remote_read_queries",
			Help: "Remote-read requests running or waiting for a slot of --remote-read.concurrent-limit (once their body is read).",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "luminate_remote_read_requests_total",
			Help: "Remote-read requests by response type (samples, streamed, none when refused before negotiation) and HTTP status code.",
		}, []string{"response_type", "code"}),
	}
	h.slots = newSlots(cfg)
	if reg != nil {
		for _, c := range []prometheus.Collector{h.queries, h.requests} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register remote-read metrics: %w", err)
			}
		}
	}
	return h, nil
}

// ServeHTTP serves one remote-read request. Errors before the response
// starts are plain-text bodies with the status of apierror, as
// Prometheus' are, and the text of internal and storage errors only in the
// log; an error in the middle of a stream aborts the connection, so that
// the client cannot take a partial stream for a whole.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &startedWriter{ResponseWriter: w}
	typ, err := h.serve(sw, r)
	name := "none"
	switch typ {
	case prompb.ReadRequest_SAMPLES:
		name = "samples"
	case prompb.ReadRequest_STREAMED_XOR_CHUNKS:
		name = "streamed"
	}
	if err == nil {
		h.requests.WithLabelValues(name, "200").Inc()
		return
	}
	info := apierror.Classify(err)
	h.requests.WithLabelValues(name, strconv.Itoa(info.Status)).Inc()
	if sw.started {
		if info.Kind == apierror.Internal || info.Status >= 500 {
			h.logger.Error("remote read stream failed after it started; aborting the response", "err", err)
		} else {
			h.logger.Warn("remote read stream refused after it started; aborting the response", "err", err)
		}
		panic(http.ErrAbortHandler)
	}
	apierror.SetRetryAfter(w, info)
	w.Header().Del("Content-Encoding")
	http.Error(w, h.clientText(err, info), info.Status)
}

// storageError is an error of the store, whose text is for the log only.
type storageError struct{ err error }

func (e *storageError) Error() string { return e.err.Error() }
func (e *storageError) Unwrap() error { return e.err }

// fromStorage marks err, if any, as the store's.
func fromStorage(err error) error {
	if err == nil {
		return nil
	}
	return &storageError{err}
}

// clientText is the text of err a client sees: the error itself when this
// package wrote it for the client, else (an internal error, or a failure of
// the store) only its kind, the details being logged.
func (h *Handler) clientText(err error, info apierror.Info) string {
	var se *storageError
	if info.Kind != apierror.Internal && !errors.As(err, &se) {
		return err.Error()
	}
	switch info.Kind {
	case apierror.Internal:
		h.logger.Error("remote read failed", "err", err)
		return "internal error"
	case apierror.Unavailable:
		h.logger.Warn("remote read: storage unavailable", "err", err)
		return "storage unavailable"
	case apierror.Timeout:
		return fmt.Sprintf("remote read did not finish within %s (raise --remote-read.timeout)", h.cfg.Timeout)
	case apierror.Canceled:
		return "remote read canceled"
	}
	return err.Error() // a client error the store found, e.g. a reserved label
}

// noType is the response type of a request refused before negotiation.
const noType prompb.ReadRequest_ResponseType = -1

func (h *Handler) serve(w *startedWriter, r *http.Request) (prompb.ReadRequest_ResponseType, error) {
	ctx := r.Context()
	p, err := tenancy.FromContext(ctx)
	if err != nil {
		return noType, err
	}
	if err := tenancy.RequireScope(p, tenancy.ScopeRead); err != nil {
		return noType, err
	}
	if h.limits != nil {
		if err := h.limits.AllowQuery(p.Tenant); err != nil {
			return noType, err
		}
	}
	// The body is read, within its deadline, and checked before the
	// request takes a slot, so that slow or large uploads hold none.
	compressed, err := h.readBody(w, r)
	if err != nil {
		return noType, err
	}
	req, err := decodeReadRequest(compressed, h.cfg.MaxRequestBytes)
	if err != nil {
		return noType, err
	}
	if err := h.cfg.checkRequest(req); err != nil {
		return noType, err
	}
	typ, err := negotiateResponseType(req.AcceptedResponseTypes)
	if err != nil {
		return noType, err
	}
	if h.limits != nil {
		release, err := h.limits.AcquireQuery(ctx, p.Tenant)
		if err != nil {
			return noType, err
		}
		defer release()
	}
	h.queries.Inc()
	defer h.queries.Dec()
	release, err := h.slots.acquire(ctx, p.Tenant)
	if err != nil {
		return noType, err
	}
	defer release()
	// The slot is held for at most --remote-read.timeout, however slowly
	// the client reads the response.
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	// (net/http clears the deadline once the response is flushed.)
	err = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(h.cfg.Timeout))
	if err != nil && !errors.Is(err, http.ErrNotSupported) {
		return noType, fmt.Errorf("set the remote-read response deadline: %w", err)
	}

	// Every query's matchers are parsed before the response starts, so
	// that a bad one is a 400 rather than a cut-off stream.
	params := make([]queryParams, len(req.Queries))
	for i, q := range req.Queries {
		if params[i], err = selectParams(q); err != nil {
			return noType, err
		}
	}
	b := h.newBudget(p.Tenant, typ)
	ts := h.store.ForTenant(p.Tenant)
	if typ == prompb.ReadRequest_STREAMED_XOR_CHUNKS {
		return typ, h.streamChunks(ctx, w, ts, params, b)
	}
	return typ, h.samples(ctx, w, ts, params, b)
}

// maxBodyPrealloc is the most readBody allocates before the body arrives.
const maxBodyPrealloc = 64 << 10

// readBody reads the compressed request, at most --remote-read.max-request-bytes,
// within --remote-read.body-timeout.
func (h *Handler) readBody(w *startedWriter, r *http.Request) ([]byte, error) {
	limit := h.cfg.MaxRequestBytes
	tooLarge := func() error {
		return apierror.New(apierror.TooLarge, "remote-read request larger than %d bytes (raise --remote-read.max-request-bytes)", limit)
	}
	if r.ContentLength > int64(limit) {
		return nil, tooLarge()
	}
	rc := http.NewResponseController(w)
	deadline := false
	switch err := rc.SetReadDeadline(time.Now().Add(h.cfg.BodyTimeout)); {
	case err == nil:
		deadline = true
	case errors.Is(err, http.ErrNotSupported):
	default:
		return nil, fmt.Errorf("set the remote-read body deadline: %w", err)
	}
	// Memory for what arrives, not for what the client claims will.
	size := 512
	if r.ContentLength > 0 {
		size = int(min(r.ContentLength+1, maxBodyPrealloc)) // +1: no growth to see the EOF
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	body := http.MaxBytesReader(w.ResponseWriter, r.Body, int64(limit))
	_, err := buf.ReadFrom(body)
	if err != nil {
		// Closed unread, the body is not drained before the reply (the
		// deadline, left in place, fails what would drain it) and the
		// connection closes after it.
		_ = body.Close()
	} else if deadline {
		// The deadline is for the body only. (HTTP/1 in net/http clears
		// it itself when it starts reading past the body; this does not
		// depend on it.)
		if err := rc.SetReadDeadline(time.Time{}); err != nil {
			return nil, fmt.Errorf("clear the remote-read body deadline: %w", err)
		}
	}
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return buf.Bytes(), nil
	case errors.As(err, &mbe):
		return nil, tooLarge()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, apierror.New(apierror.InvalidArgument,
			"remote-read request body not received within %s (raise --remote-read.body-timeout)", h.cfg.BodyTimeout)
	}
	return nil, apierror.Wrap(apierror.InvalidArgument, err, "read remote-read request body")
}

// checkRequest checks the bounds of the request as a whole that its
// decoding alone shows: its queries and matchers.
func (c *Config) checkRequest(req *prompb.ReadRequest) error {
	if n, max := len(req.Queries), c.MaxQueriesPerRequest; n > max {
		return apierror.New(apierror.TooLarge, "remote-read request has %d queries, more than %d (raise --remote-read.max-queries-per-request)", n, max)
	}
	n := 0
	for _, q := range req.Queries {
		n += len(q.Matchers)
	}
	if max := c.MaxMatchersPerRequest; n > max {
		return apierror.New(apierror.TooLarge, "remote-read request has %d matchers, more than %d (raise --remote-read.max-matchers-per-request)", n, max)
	}
	return nil
}

// decodeReadRequest decodes a snappy-compressed prompb.ReadRequest whose
// decompressed size is at most max bytes.
func decodeReadRequest(compressed []byte, max int) (*prompb.ReadRequest, error) {
	if len(compressed) > max {
		return nil, apierror.New(apierror.TooLarge, "remote-read request larger than %d bytes (raise --remote-read.max-request-bytes)", max)
	}
	n, err := snappy.DecodedLen(compressed)
	if err != nil {
		return nil, apierror.Wrap(apierror.InvalidArgument, err, "decompress remote-read request")
	}
	if n > max {
		return nil, apierror.New(apierror.TooLarge, "remote-read request decompresses to %d bytes, more than %d (raise --remote-read.max-request-bytes)", n, max)
	}
	b, err := snappy.Decode(nil, compressed)
	if err != nil {
		return nil, apierror.Wrap(apierror.InvalidArgument, err, "decompress remote-read request")
	}
	var req prompb.ReadRequest
	if err := req.Unmarshal(b); err != nil {
		return nil, apierror.Wrap(apierror.InvalidArgument, err, "decode remote-read request")
	}
	return &req, nil
}

// negotiateResponseType picks the first accepted type the server supports,
// SAMPLES when the client accepts none, as Prometheus'
// remote.NegotiateResponseType does.
func negotiateResponseType(accepted []prompb.ReadRequest_ResponseType) (prompb.ReadRequest_ResponseType, error) {
	if len(accepted) == 0 {
		return prompb.ReadRequest_SAMPLES, nil
	}
	for _, t := range accepted {
		if t == prompb.ReadRequest_SAMPLES || t == prompb.ReadRequest_STREAMED_XOR_CHUNKS {
			return t, nil
		}
	}
	return noType, apierror.New(apierror.InvalidArgument,
		"server does not support any of the requested response types: %v; supported: [SAMPLES STREAMED_XOR_CHUNKS]", accepted)
}

// newBudget returns the budget of one request of tenant id answered with
// response type typ.
func (h *Handler) newBudget(id tenancy.ID, typ prompb.ReadRequest_ResponseType) *budget {
	b := &budget{maxBytes: h.cfg.MaxResponseBytes}
	if typ == prompb.ReadRequest_SAMPLES {
		b.maxQuerySamples = h.cfg.SampleLimit
	}
	if h.limits != nil {
		b.maxSeries = h.limits.MaxSeriesPerQuery(id)
		b.seriesSetting = "--limits.max-series-per-query or its per-tenant override max_series_per_query"
		b.maxSamples = h.limits.MaxSamplesPerQuery(id)
		b.samplesSetting = "--limits.max-samples-per-query or its per-tenant override max_samples_per_query"
	}
	return b
}

// queryParams are what one query selects.
type queryParams struct {
	mint, maxt int64
	matchers   []*labels.Matcher
	hints      *promstorage.SelectHints
}

// selectParams are the matchers and hints of one query.
func selectParams(q *prompb.Query) (queryParams, error) {
	ms, err := fromLabelMatchers(q.Matchers)
	if err != nil {
		return queryParams{}, apierror.Wrap(apierror.InvalidArgument, err, "remote-read matchers")
	}
	var hints *promstorage.SelectHints
	if q.Hints != nil {
		hints = &promstorage.SelectHints{
			Start:    q.Hints.StartMs,
			End:      q.Hints.EndMs,
			Step:     q.Hints.StepMs,
			Func:     q.Hints.Func,
			Grouping: q.Hints.Grouping,
			Range:    q.Hints.RangeMs,
			By:       q.Hints.By,
		}
	}
	return queryParams{mint: q.StartTimestampMs, maxt: q.EndTimestampMs, matchers: ms, hints: hints}, nil
}

func fromLabelMatchers(pbs []*prompb.LabelMatcher) ([]*labels.Matcher, error) {
	out := make([]*labels.Matcher, 0, len(pbs))
	for _, m := range pbs {
		var t labels.MatchType
		switch m.Type {
		case prompb.LabelMatcher_EQ:
			t = labels.MatchEqual
		case prompb.LabelMatcher_NEQ:
			t = labels.MatchNotEqual
		case prompb.LabelMatcher_RE:
			t = labels.MatchRegexp
		case prompb.LabelMatcher_NRE:
			t = labels.MatchNotRegexp
		default:
			return nil, fmt.Errorf("invalid matcher type %d", m.Type)
		}
		lm, err := labels.NewMatcher(t, m.Name, m.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, lm)
	}
	return out, nil
}

// samples answers every query with its samples in one ReadResponse,
// encoded as its series come within the budget's bytes.
func (h *Handler) samples(ctx context.Context, w http.ResponseWriter, ts storage.TenantStore, params []queryParams, b *budget) error {
	enc := newSamplesEncoder(b)
	for _, q := range params {
		if err := enc.beginQuery(); err != nil {
			return err
		}
		if err := h.querySamples(ctx, ts, q, b, enc); err != nil {
			return err
		}
		enc.endQuery()
	}
	out := snappy.Encode(nil, enc.buf)
	enc.buf = nil
	w.Header().Set("Content-Type", samplesContentType)
	w.Header().Set("Content-Encoding", "snappy")
	_, err := w.Write(out)
	return err
}

func (h *Handler) querySamples(ctx context.Context, ts storage.TenantStore, q queryParams, b *budget, enc *samplesEncoder) error {
	querier, err := ts.Querier(q.mint, q.maxt)
	if err != nil {
		return fromStorage(err)
	}
	defer h.close(querier)
	ss := querier.Select(ctx, false, q.hints, q.matchers...)
	b.startQuery()
	var (
		it     chunkenc.Iterator
		series prompb.TimeSeries
	)
	for ss.Next() {
		if err := b.addSeries(); err != nil {
			return err
		}
		s := ss.At()
		series.Labels = prompb.FromLabels(s.Labels(), series.Labels[:0])
		series.Samples, series.Histograms = series.Samples[:0], series.Histograms[:0]
		size := series.Size() // what series will take encoded, so far
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			if err := b.addSamples(1); err != nil {
				return err
			}
			switch vt {
			case chunkenc.ValFloat:
				t, v := it.At()
				series.Samples = append(series.Samples, prompb.Sample{Timestamp: t, Value: v})
				size += fieldSize(series.Samples[len(series.Samples)-1].Size())
			case chunkenc.ValHistogram:
				t, hist := it.AtHistogram(nil)
				series.Histograms = append(series.Histograms, prompb.FromIntHistogram(t, hist))
				size += fieldSize(series.Histograms[len(series.Histograms)-1].Size())
			case chunkenc.ValFloatHistogram:
				t, fh := it.AtFloatHistogram(nil)
				series.Histograms = append(series.Histograms, prompb.FromFloatHistogram(t, fh))
				size += fieldSize(series.Histograms[len(series.Histograms)-1].Size())
			default:
				return fmt.Errorf("unrecognized value type: %s", vt)
			}
			// A series is refused as it grows, not once it is whole.
			if !enc.fits(fieldSize(size)) {
				return b.responseTooLarge()
			}
		}
		if err := it.Err(); err != nil {
			return fromStorage(err)
		}
		if err := enc.addSeries(&series); err != nil {
			return err
		}
	}
	if err := ss.Err(); err != nil {
		return fromStorage(err)
	}
	for _, w := range ss.Warnings() {
		h.logger.Warn("remote read query warning", "warning", w)
	}
	return nil
}

// streamChunks answers every query with a stream of frames of at most one
// series each, a series split over frames of about MaxBytesInFrame.
func (h *Handler) streamChunks(ctx context.Context, w *startedWriter, ts storage.TenantStore, params []queryParams, b *budget) error {
	w.Header().Set("Content-Type", streamedContentType)
	cw := newChunkedWriter(w)
	for i, q := range params {
		if err := h.streamQuery(ctx, cw, int64(i), ts, q, b); err != nil {
			return err
		}
	}
	if !w.started {
		w.WriteHeader(http.StatusOK)
	}
	if err := http.NewResponseController(w.ResponseWriter).Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

func (h *Handler) streamQuery(ctx context.Context, cw *chunkedWriter, index int64, ts storage.TenantStore, q queryParams, b *budget) error {
	querier, err := ts.ChunkQuerier(q.mint, q.maxt)
	if err != nil {
		return fromStorage(err)
	}
	defer h.close(querier)
	// Streamed series must come sorted.
	ss := querier.Select(ctx, true, q.hints, q.matchers...)
	b.startQuery()
	var (
		chks []prompb.Chunk
		lbls []prompb.Label
		it   chunks.Iterator
	)
	for ss.Next() {
		if err := b.addSeries(); err != nil {
			return err
		}
		series := ss.At()
		it = series.Iterator(it)
		lbls = prompb.FromLabels(series.Labels(), lbls)
		maxData := h.cfg.MaxBytesInFrame
		for _, l := range lbls {
			maxData -= l.Size()
		}
		left := maxData
		more := it.Next()
		for more {
			chk := it.At()
			if chk.Chunk == nil {
				return fmt.Errorf("chunk of series %s not populated", series.Labels())
			}
			if err := b.addSamples(chk.Chunk.NumSamples()); err != nil {
				return err
			}
			chks = append(chks, prompb.Chunk{
				MinTimeMs: chk.MinTime,
				MaxTimeMs: chk.MaxTime,
				Type:      prompb.Chunk_Encoding(chk.Chunk.Encoding()),
				Data:      chk.Chunk.Bytes(),
			})
			left -= chks[len(chks)-1].Size()
			// A frame may exceed the target by up to one chunk.
			more = it.Next()
			if left > 0 && more {
				continue
			}
			resp := prompb.ChunkedReadResponse{
				ChunkedSeries: []*prompb.ChunkedSeries{{Labels: lbls, Chunks: chks}},
				QueryIndex:    index,
			}
			data, err := resp.PooledMarshal(&h.marshalPool)
			if err != nil {
				return fmt.Errorf("marshal chunked remote-read response: %w", err)
			}
			if err := b.addFrame(len(data)); err != nil {
				h.marshalPool.Put(&data)
				return err
			}
			err = cw.writeFrame(data)
			h.marshalPool.Put(&data)
			if err != nil {
				return fmt.Errorf("write remote-read stream: %w", err)
			}
			chks = chks[:0]
			left = maxData
		}
		if err := it.Err(); err != nil {
			return fromStorage(err)
		}
	}
	if err := ss.Err(); err != nil {
		return fromStorage(err)
	}
	for _, w := range ss.Warnings() {
		h.logger.Warn("remote read query warning", "warning", w)
	}
	return nil
}

func (h *Handler) close(c io.Closer) {
	if err := c.Close(); err != nil {
		h.logger.Warn("close remote-read querier", "err", err)
	}
}

// startedWriter records whether the response has started.
type startedWriter struct {
	http.ResponseWriter
	started bool
}

func (w *startedWriter) Write(p []byte) (int, error) {
	w.started = true
	return w.ResponseWriter.Write(p)
}

func (w *startedWriter) WriteHeader(code int) {
	w.started = true
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *startedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
