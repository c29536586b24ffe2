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
// It is a route of the api router (Serve): the router authenticates,
// admits the request as a query, reads its body (before the query slot,
// so that a slow upload holds none), opens the tenant's view, and renders
// errors as plain text, the text of internal errors only in the log. It is
// not where external labels are added: Luminate has none.
package remoteread

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
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

// Limits are the per-tenant limits a remote read counts against (the
// router admits it as a query). *tenancy.Limits implements it;
// implementations must be safe for concurrent use.
type Limits interface {
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
	limits Limits
	logger *slog.Logger
	slots  *slots

	marshalPool sync.Pool // of *[]byte, for PooledMarshal

	queries  prometheus.Gauge
	requests *prometheus.CounterVec
}

// New returns the remote-read handler. limits may be nil (no
// per-tenant limits). Its metrics are registered on reg.
func New(cfg Config, limits Limits, logger *slog.Logger, reg prometheus.Registerer) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{
		cfg:    cfg,
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

// ReadBody is the most bytes a request's body may have, and the setting
// that raises it: the router reads the body (Route.ReadBody).
func (h *Handler) ReadBody() (int64, tenancy.Setting) {
	return int64(h.cfg.MaxRequestBytes), tenancy.Global("--remote-read.max-request-bytes")
}

// BodyTimeout is how long a client has to send the body, and the setting
// that raises it (Route.ReadBodyTimeout).
func (h *Handler) BodyTimeout() (time.Duration, tenancy.Setting) {
	return h.cfg.BodyTimeout, tenancy.Global("--remote-read.body-timeout")
}

// Serve decodes one remote-read request of the tenant, read whole by the
// router, and returns the response, which reads the store as it writes.
// An error in the middle of a stream aborts the connection (the router
// does), so that the client cannot take a partial stream for a whole.
func (h *Handler) Serve(r *http.Request, t storage.Tenant) (any, error) {
	res, err := h.decode(r, t)
	if err != nil {
		h.count(noType, err)
		return nil, err
	}
	return res, nil
}

// count counts a request by its response type and status.
func (h *Handler) count(typ prompb.ReadRequest_ResponseType, err error) {
	name := "none"
	switch typ {
	case prompb.ReadRequest_SAMPLES:
		name = "samples"
	case prompb.ReadRequest_STREAMED_XOR_CHUNKS:
		name = "streamed"
	}
	h.requests.WithLabelValues(name, strconv.Itoa(apierror.Classify(err).Status)).Inc()
}

// fromStorage is err, a failure of the store, as the client sees it: its
// kind, its text only in the log.
func (h *Handler) fromStorage(err error) error {
	switch info := apierror.Classify(err); {
	case err == nil, info.Kind == apierror.Internal: // masked by the router
		return err
	case info.Kind == apierror.Unavailable:
		h.logger.Warn("remote read: storage unavailable", "err", err)
		return &apierror.Error{Kind: apierror.Unavailable, Msg: "storage unavailable", RetryAfter: info.RetryAfter}
	case info.Kind == apierror.Timeout:
		return apierror.Limit(apierror.Timeout, tenancy.Global("--remote-read.timeout"), "remote read did not finish within %s", h.cfg.Timeout)
	case info.Kind == apierror.Canceled:
		return apierror.New(apierror.Canceled, "remote read canceled")
	}
	return err // a client error the store found, e.g. a reserved label
}

// noType is the response type of a request refused before negotiation.
const noType prompb.ReadRequest_ResponseType = -1

// response is the answer to one request.
type response struct {
	h      *Handler
	t      storage.Tenant
	typ    prompb.ReadRequest_ResponseType
	params []queryParams
}

func (h *Handler) decode(r *http.Request, t storage.Tenant) (*response, error) {
	compressed, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, apierror.Wrap(apierror.InvalidArgument, err, "read remote-read request body")
	}
	req, err := decodeReadRequest(compressed, h.cfg.MaxRequestBytes)
	if err != nil {
		return nil, err
	}
	if err := h.cfg.checkRequest(req); err != nil {
		return nil, err
	}
	typ, err := negotiateResponseType(req.AcceptedResponseTypes)
	if err != nil {
		return nil, err
	}
	// Every query's matchers are parsed before the response starts, so
	// that a bad one is a 400 rather than a cut-off stream.
	params := make([]queryParams, len(req.Queries))
	for i, q := range req.Queries {
		if params[i], err = selectParams(q); err != nil {
			return nil, err
		}
	}
	return &response{h: h, t: t, typ: typ, params: params}, nil
}

// Respond takes a slot and writes the response.
func (p *response) Respond(w http.ResponseWriter, r *http.Request) error {
	err := p.respond(w, r)
	p.h.count(p.typ, err)
	return err
}

func (p *response) respond(w http.ResponseWriter, r *http.Request) error {
	h, ctx := p.h, r.Context()
	h.queries.Inc()
	defer h.queries.Dec()
	release, err := h.slots.acquire(ctx, p.t.ID())
	if err != nil {
		return err
	}
	defer release()
	// The slot is held for at most --remote-read.timeout, however slowly
	// the client reads the response.
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	// (net/http clears the deadline once the response is flushed.)
	err = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(h.cfg.Timeout))
	if err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("set the remote-read response deadline: %w", err)
	}
	b := h.newBudget(p.t.ID(), p.typ)
	if p.typ == prompb.ReadRequest_STREAMED_XOR_CHUNKS {
		return h.streamChunks(ctx, w, p.t.Store, p.params, b)
	}
	return h.samples(ctx, w, p.t.Store, p.params, b)
}

// checkRequest checks the bounds of the request as a whole that its
// decoding alone shows: its queries and matchers.
func (c *Config) checkRequest(req *prompb.ReadRequest) error {
	if n, max := len(req.Queries), c.MaxQueriesPerRequest; n > max {
		return apierror.Limit(apierror.TooLarge, tenancy.Global("--remote-read.max-queries-per-request"), "remote-read request has %d queries, more than %d", n, max)
	}
	n := 0
	for _, q := range req.Queries {
		n += len(q.Matchers)
	}
	if max := c.MaxMatchersPerRequest; n > max {
		return apierror.Limit(apierror.TooLarge, tenancy.Global("--remote-read.max-matchers-per-request"), "remote-read request has %d matchers, more than %d", n, max)
	}
	return nil
}

// decodeReadRequest decodes a snappy-compressed prompb.ReadRequest whose
// decompressed size is at most max bytes.
func decodeReadRequest(compressed []byte, max int) (*prompb.ReadRequest, error) {
	n, err := snappy.DecodedLen(compressed)
	if err != nil {
		return nil, apierror.Wrap(apierror.InvalidArgument, err, "decompress remote-read request")
	}
	if n > max {
		return nil, apierror.Limit(apierror.TooLarge, tenancy.Global("--remote-read.max-request-bytes"), "remote-read request decompresses to %d bytes, more than %d", n, max)
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
		b.maxSamples = h.limits.MaxSamplesPerQuery(id)
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
		return h.fromStorage(err)
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
			return h.fromStorage(err)
		}
		if err := enc.addSeries(&series); err != nil {
			return err
		}
	}
	if err := ss.Err(); err != nil {
		return h.fromStorage(err)
	}
	for _, w := range ss.Warnings() {
		h.logger.Warn("remote read query warning", "warning", w)
	}
	return nil
}

// streamChunks answers every query with a stream of frames of at most one
// series each, a series split over frames of about MaxBytesInFrame.
func (h *Handler) streamChunks(ctx context.Context, w http.ResponseWriter, ts storage.TenantStore, params []queryParams, b *budget) error {
	w.Header().Set("Content-Type", streamedContentType)
	cw := newChunkedWriter(w)
	for i, q := range params {
		if err := h.streamQuery(ctx, cw, int64(i), ts, q, b); err != nil {
			return err
		}
	}
	if err := http.NewResponseController(w).Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

func (h *Handler) streamQuery(ctx context.Context, cw *chunkedWriter, index int64, ts storage.TenantStore, q queryParams, b *budget) error {
	querier, err := ts.ChunkQuerier(q.mint, q.maxt)
	if err != nil {
		return h.fromStorage(err)
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
			return h.fromStorage(err)
		}
	}
	if err := ss.Err(); err != nil {
		return h.fromStorage(err)
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
