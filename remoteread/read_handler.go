// Package remoteread serves Prometheus remote read (POST /api/v1/read):
// a snappy-compressed prompb.ReadRequest answered from the storage view of
// the verified tenant in the request context, as a snappy-compressed
// prompb.ReadResponse of samples or as a stream of CRC-framed
// prompb.ChunkedReadResponse messages of XOR chunks, negotiated from the
// request's accepted_response_types exactly as Prometheus does.
//
// Streamed responses read each series' chunks when they are written, so a
// response never holds more than one frame. Series never carry the
// _tenant_id label, and matchers on it cannot reach another tenant: the
// tenant's view matches the tenant implicitly.
//
// It is not where requests are authenticated (api middleware puts the
// tenancy.Principal in the context) nor where external labels are added:
// Luminate has none.
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

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/luminate-io/luminate/api/apierror"
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
	// MaxSeriesPerQuery is the most series one query may return; 0 means
	// unlimited.
	MaxSeriesPerQuery(id tenancy.ID) int
	// MaxSamplesPerQuery is the most samples one query may return; 0
	// means unlimited.
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
	gate   chan struct{} // nil: no concurrency limit

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
			Help: "Remote-read requests running or waiting for a slot of --remote-read.concurrent-limit.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "luminate_remote_read_requests_total",
			Help: "Remote-read requests by response type (samples, streamed, none when refused before negotiation) and HTTP status code.",
		}, []string{"response_type", "code"}),
	}
	if cfg.ConcurrentLimit > 0 {
		h.gate = make(chan struct{}, cfg.ConcurrentLimit)
	}
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
// starts are plain-text bodies with the status of api/apierror, as
// Prometheus' are; an error in the middle of a stream aborts the
// connection, so that the client cannot take a partial stream for a whole.
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
		h.logger.Error("remote read stream failed after it started; aborting the response", "err", err)
		panic(http.ErrAbortHandler)
	}
	if info.Kind == apierror.Internal {
		h.logger.Error("remote read failed", "err", err)
	}
	apierror.SetRetryAfter(w, info)
	w.Header().Del("Content-Encoding")
	http.Error(w, err.Error(), info.Status)
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
		release, err := h.limits.AcquireQuery(ctx, p.Tenant)
		if err != nil {
			return noType, err
		}
		defer release()
	}
	h.queries.Inc()
	defer h.queries.Dec()
	if h.gate != nil {
		select {
		case h.gate <- struct{}{}:
			defer func() { <-h.gate }()
		case <-ctx.Done():
			return noType, fmt.Errorf("wait for a slot of --remote-read.concurrent-limit=%d: %w", h.cfg.ConcurrentLimit, ctx.Err())
		}
	}

	req, err := h.decode(r)
	if err != nil {
		return noType, err
	}
	typ, err := negotiateResponseType(req.AcceptedResponseTypes)
	if err != nil {
		return noType, err
	}
	lim := h.queryLimits(p.Tenant, typ)
	ts := h.store.ForTenant(p.Tenant)
	if typ == prompb.ReadRequest_STREAMED_XOR_CHUNKS {
		return typ, h.streamChunks(ctx, w, ts, req, lim)
	}
	return typ, h.samples(ctx, w, ts, req, lim)
}

// decode reads the snappy-compressed request, bounded before and after
// decompression.
func (h *Handler) decode(r *http.Request) (*prompb.ReadRequest, error) {
	max := h.cfg.MaxRequestBytes
	compressed, err := io.ReadAll(io.LimitReader(r.Body, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("read remote-read request: %w", err)
	}
	if len(compressed) > max {
		return nil, apierror.New(apierror.TooLarge, "remote-read request larger than %d bytes (raise --remote-read.max-request-bytes)", max)
	}
	return decodeReadRequest(compressed, max)
}

// decodeReadRequest decodes a snappy-compressed prompb.ReadRequest whose
// decompressed size is at most max bytes.
func decodeReadRequest(compressed []byte, max int) (*prompb.ReadRequest, error) {
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

// limits are the bounds of one query of a request, with the settings that
// raise them; 0 means none.
type limits struct {
	series, samples               int
	seriesSetting, samplesSetting string
}

// queryLimits returns the limits of one query of tenant id answered with
// response type typ: the tenant's series and samples per query, and for
// SAMPLES responses also --remote-read.sample-limit (streamed responses
// are bounded by frame size, as in Prometheus).
func (h *Handler) queryLimits(id tenancy.ID, typ prompb.ReadRequest_ResponseType) limits {
	var l limits
	if typ == prompb.ReadRequest_SAMPLES {
		l.samples, l.samplesSetting = h.cfg.SampleLimit, "--remote-read.sample-limit"
	}
	if h.limits == nil {
		return l
	}
	l.series = h.limits.MaxSeriesPerQuery(id)
	l.seriesSetting = "--limits.max-series-per-query or its per-tenant override max_series_per_query"
	if t := h.limits.MaxSamplesPerQuery(id); t > 0 && (l.samples == 0 || t < l.samples) {
		l.samples, l.samplesSetting = t, "--limits.max-samples-per-query or its per-tenant override max_samples_per_query"
	}
	return l
}

func (l limits) tooManySeries() error {
	return apierror.New(apierror.InvalidArgument, "exceeded series limit (%d) (raise %s)", l.series, l.seriesSetting)
}

func (l limits) tooManySamples() error {
	return apierror.New(apierror.InvalidArgument, "exceeded sample limit (%d) (raise %s)", l.samples, l.samplesSetting)
}

// selectParams are the matchers and hints of one query.
func selectParams(q *prompb.Query) ([]*labels.Matcher, *promstorage.SelectHints, error) {
	ms, err := fromLabelMatchers(q.Matchers)
	if err != nil {
		return nil, nil, apierror.Wrap(apierror.InvalidArgument, err, "remote-read matchers")
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
	return ms, hints, nil
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

// samples answers every query with its samples in one ReadResponse.
func (h *Handler) samples(ctx context.Context, w http.ResponseWriter, ts storage.TenantStore, req *prompb.ReadRequest, lim limits) error {
	resp := prompb.ReadResponse{Results: make([]*prompb.QueryResult, len(req.Queries))}
	for i, q := range req.Queries {
		res, err := h.querySamples(ctx, ts, q, lim)
		if err != nil {
			return err
		}
		resp.Results[i] = res
	}
	b, err := resp.Marshal()
	if err != nil {
		return fmt.Errorf("marshal remote-read response: %w", err)
	}
	w.Header().Set("Content-Type", samplesContentType)
	w.Header().Set("Content-Encoding", "snappy")
	_, err = w.Write(snappy.Encode(nil, b))
	return err
}

func (h *Handler) querySamples(ctx context.Context, ts storage.TenantStore, q *prompb.Query, lim limits) (*prompb.QueryResult, error) {
	ms, hints, err := selectParams(q)
	if err != nil {
		return nil, err
	}
	querier, err := ts.Querier(q.StartTimestampMs, q.EndTimestampMs)
	if err != nil {
		return nil, err
	}
	defer h.close(querier)
	ss := querier.Select(ctx, false, hints, ms...)
	res := &prompb.QueryResult{}
	var (
		it       chunkenc.Iterator
		nSamples int
	)
	for ss.Next() {
		if lim.series > 0 && len(res.Timeseries) >= lim.series {
			return nil, lim.tooManySeries()
		}
		series := ss.At()
		it = series.Iterator(it)
		var (
			samples    []prompb.Sample
			histograms []prompb.Histogram
		)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			nSamples++
			if lim.samples > 0 && nSamples > lim.samples {
				return nil, lim.tooManySamples()
			}
			switch vt {
			case chunkenc.ValFloat:
				t, v := it.At()
				samples = append(samples, prompb.Sample{Timestamp: t, Value: v})
			case chunkenc.ValHistogram:
				t, hist := it.AtHistogram(nil)
				histograms = append(histograms, prompb.FromIntHistogram(t, hist))
			case chunkenc.ValFloatHistogram:
				t, fh := it.AtFloatHistogram(nil)
				histograms = append(histograms, prompb.FromFloatHistogram(t, fh))
			default:
				return nil, fmt.Errorf("unrecognized value type: %s", vt)
			}
		}
		if err := it.Err(); err != nil {
			return nil, err
		}
		res.Timeseries = append(res.Timeseries, &prompb.TimeSeries{
			Labels:     prompb.FromLabels(series.Labels(), nil),
			Samples:    samples,
			Histograms: histograms,
		})
	}
	if err := ss.Err(); err != nil {
		return nil, err
	}
	for _, w := range ss.Warnings() {
		h.logger.Warn("remote read query warning", "warning", w)
	}
	return res, nil
}

// streamChunks answers every query with a stream of frames of at most one
// series each, a series split over frames of about MaxBytesInFrame.
func (h *Handler) streamChunks(ctx context.Context, w *startedWriter, ts storage.TenantStore, req *prompb.ReadRequest, lim limits) error {
	w.Header().Set("Content-Type", streamedContentType)
	cw := newChunkedWriter(w)
	for i, q := range req.Queries {
		if err := h.streamQuery(ctx, cw, int64(i), ts, q, lim); err != nil {
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

func (h *Handler) streamQuery(ctx context.Context, cw *chunkedWriter, index int64, ts storage.TenantStore, q *prompb.Query, lim limits) error {
	ms, hints, err := selectParams(q)
	if err != nil {
		return err
	}
	querier, err := ts.ChunkQuerier(q.StartTimestampMs, q.EndTimestampMs)
	if err != nil {
		return err
	}
	defer h.close(querier)
	// Streamed series must come sorted.
	ss := querier.Select(ctx, true, hints, ms...)
	var (
		chks     []prompb.Chunk
		lbls     []prompb.Label
		it       chunks.Iterator
		nSeries  int
		nSamples int
	)
	for ss.Next() {
		nSeries++
		if lim.series > 0 && nSeries > lim.series {
			return lim.tooManySeries()
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
			nSamples += chk.Chunk.NumSamples()
			if lim.samples > 0 && nSamples > lim.samples {
				return lim.tooManySamples()
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
			b, err := resp.PooledMarshal(&h.marshalPool)
			if err != nil {
				return fmt.Errorf("marshal chunked remote-read response: %w", err)
			}
			err = cw.writeFrame(b)
			h.marshalPool.Put(&b)
			if err != nil {
				return fmt.Errorf("write remote-read stream: %w", err)
			}
			chks = chks[:0]
			left = maxData
		}
		if err := it.Err(); err != nil {
			return err
		}
	}
	if err := ss.Err(); err != nil {
		return err
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
