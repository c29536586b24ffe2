package remotewrite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// inflightBytes bounds the memory of the write requests being decoded and
// stored, across tenants and handlers. It is taken after the body is read,
// so a slow upload holds none of it, and never waited for: over it, a
// request is refused at once with Retry-After. No tenant may hold more than
// half of it while others hold some, so that one tenant's burst leaves room
// for the others.
type inflightBytes struct {
	max int64

	mu       sync.Mutex
	used     int64
	byTenant map[tenancy.ID]int64
}

func newInflightBytes(max int64) *inflightBytes {
	return &inflightBytes{max: max, byTenant: map[tenancy.ID]int64{}}
}

// reservation is what a request holds of the in-flight budget.
type reservation struct {
	tenant tenancy.ID
	n      int64
}

// acquire reserves n bytes for tenant id: at most the whole budget, so
// that a request larger than it may still run alone.
func (g *inflightBytes) acquire(id tenancy.ID, n int64) (reservation, error) {
	n = max(min(n, g.max), 1)
	g.mu.Lock()
	defer g.mu.Unlock()
	mine := g.byTenant[id]
	switch {
	case g.used+n > g.max:
		return reservation{}, inflightFull("write requests of %d bytes in flight, and this one needs %d more: over the limit of %d bytes; retry later",
			g.used, n, g.max)
	case mine+n > g.max/2 && g.used > mine:
		return reservation{}, inflightFull("tenant %s has write requests of %d bytes in flight, and this one needs %d more: "+
			"over half of the limit of %d bytes, which other tenants share; retry later", id, mine, n, g.max)
	}
	g.used += n
	g.byTenant[id] = mine + n
	return reservation{id, n}, nil
}

func (g *inflightBytes) release(r reservation) { g.shrink(r, 0) }

// grow raises reservation r to to bytes, if more: a request whose
// decoding took more than reserved (native histograms, whose buckets the
// per-request counts do not bound) holds what it took, under the rules of
// acquire; alone, it may hold the whole budget.
func (g *inflightBytes) grow(r reservation, to int64) (reservation, error) {
	if to <= r.n {
		return r, nil
	}
	more := to - r.n
	g.mu.Lock()
	defer g.mu.Unlock()
	mine := g.byTenant[r.tenant]
	switch {
	case g.used == mine:
		more = min(more, max(g.max-g.used, 0))
	case g.used+more > g.max:
		return r, inflightFull("write requests of %d bytes in flight, and this one decoded to %d more than it reserved: over the limit of %d bytes; retry later",
			g.used, more, g.max)
	case mine+more > g.max/2:
		return r, inflightFull("tenant %s has write requests of %d bytes in flight, and this one decoded to %d more than it reserved: "+
			"over half of the limit of %d bytes, which other tenants share; retry later", r.tenant, mine, more, g.max)
	}
	g.used += more
	g.byTenant[r.tenant] = mine + more
	r.n += more
	return r, nil
}

// shrink lowers reservation r to to bytes, if less, and returns it.
func (g *inflightBytes) shrink(r reservation, to int64) reservation {
	if to >= r.n {
		return r
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.used -= r.n - to
	if left := g.byTenant[r.tenant] - (r.n - to); left > 0 {
		g.byTenant[r.tenant] = left
	} else {
		delete(g.byTenant, r.tenant)
	}
	r.n = to
	return r
}

// decodeSlots bounds how many requests are decompressed and decoded at
// once. Safe for concurrent use.
type decodeSlots struct {
	slots   chan struct{}
	timeout time.Duration
}

func newDecodeSlots(n int, timeout time.Duration) *decodeSlots {
	if n <= 0 {
		n = 2 * runtime.GOMAXPROCS(0)
	}
	if timeout <= 0 {
		timeout = DefaultConfig().DecodeQueueTimeout
	}
	return &decodeSlots{slots: make(chan struct{}, n), timeout: timeout}
}

// acquire waits for a slot, at most the queue timeout or until ctx ends,
// and returns the function that gives it back.
func (d *decodeSlots) acquire(ctx context.Context) (release func(), err error) {
	select {
	case d.slots <- struct{}{}:
		return d.release, nil
	default:
	}
	t := time.NewTimer(d.timeout)
	defer t.Stop()
	select {
	case d.slots <- struct{}{}:
		return d.release, nil
	case <-t.C:
		err := apierror.Limit(apierror.Unavailable, tenancy.Global("--ingest.max-concurrent-decodes"),
			"no decode slot free within %s (--ingest.decode-queue-timeout): %d write requests are being decoded; retry later",
			d.timeout, cap(d.slots))
		err.RetryAfter = inflightRetryAfter
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (d *decodeSlots) release() { <-d.slots }

// inflightRetryAfter is the Retry-After of a write refused by the
// in-flight budget: requests in flight are done within about a second.
const inflightRetryAfter = time.Second

// inflightFull is the 503 of a write the in-flight budget refuses.
func inflightFull(format string, args ...any) error {
	err := apierror.Limit(apierror.Unavailable, tenancy.Global("--ingest.max-inflight-bytes"), format, args...)
	err.RetryAfter = inflightRetryAfter
	return err
}

// Ingester is the write path every protocol shares, from a decoded
// request to the store: the configuration, the in-flight byte budget and
// the decode slots all write requests share, validation, the tenants'
// ingestion rate, the ingest counters and the pool of buffers. The remote
// write receiver (Handler) and the native JSON write (package native) use
// one Ingester, so that they share one budget. It is safe for concurrent
// use.
//
// A protocol reads its body (ReadBody), reserves the memory it will take
// (Reserve), decodes it holding a decode slot (DecodeSlot), asks the rate
// limiter (Allow), and appends the series it decoded (Append), counting
// what it rejected itself (Reject) and the answer (Answered).
type Ingester struct {
	cfg       Config
	limiter   Limiter
	validator *Validator
	logger    *slog.Logger
	metrics   *metrics
	inflight  *inflightBytes
	decoding  *decodeSlots
	states    sync.Pool // of *writeState
	pending   *pendingMetadata
	startZero *storage.StartZeroCache // nil without --ingest.created-timestamp-zero-ingestion
	ha        HATracker               // nil: no HA-pair deduplication (SetHATracker)
	series    *seriesCache            // nil with --ingest.series-cache-size=0
}

// NewIngester returns the write path bounded by cfg, rate limited by
// limiter (nil for no limit), logging through logger (nil for none) and
// counting on reg (nil for nowhere; several Ingesters may share one).
func NewIngester(cfg Config, limiter Limiter, logger *slog.Logger, reg prometheus.Registerer) *Ingester {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	limits, limitsV2 := decodeLimits(cfg, rw1BytesPerByte), decodeLimits(cfg, rw2BytesPerByte)
	maxInflight := cfg.MaxInflightBytes
	if maxInflight <= 0 {
		maxInflight = math.MaxInt64
	}
	var startZero *storage.StartZeroCache
	if cfg.StartZeroIngestion {
		startZero = storage.NewStartZeroCache(cfg.StartZeroCacheSize)
	}
	return &Ingester{
		pending:   newPendingMetadata(cfg.MaxPendingMetadata, metadataLimit(limiter)),
		startZero: startZero,
		series:    newSeriesCache(cfg.SeriesCacheSize),
		cfg:       cfg,
		limiter:   limiter,
		validator: NewValidator(cfg),
		logger:    logger,
		metrics:   newMetrics(reg),
		inflight:  newInflightBytes(maxInflight),
		decoding:  newDecodeSlots(cfg.MaxConcurrentDecodes, cfg.DecodeQueueTimeout),
		states: sync.Pool{New: func() any {
			st := new(writeState)
			st.dec.Limits, st.decV2.Limits = limits, limitsV2
			// Not st.dec.deferLabels = cfg.SeriesCacheSize > 0 (yet): with
			// the labels parsed after decoding, requests shrink their
			// in-flight reservation sooner and more of them get in than
			// TestInflightBudget's heap bound allows (docs/benchmarks.md,
			// "Steady write path (issue 15)", Deferred labels).
			return st
		}},
	}
}

// metadataLimit is the per-tenant bound on metadata of limiter, when it
// has one (tenancy.Limits' MaxMetadata).
func metadataLimit(limiter Limiter) storage.TenantLimit {
	if l, ok := limiter.(interface{ MaxMetadata(tenancy.ID) int }); ok {
		return l.MaxMetadata
	}
	return nil
}

// Config is the configuration g was built with.
func (g *Ingester) Config() Config { return g.cfg }

// ReadBody reads the body of r, at most --ingest.max-request-bytes (a
// 413 naming it beyond). Read it before Reserve: a slow upload holds
// nothing shared.
func (g *Ingester) ReadBody(r *http.Request) ([]byte, error) {
	return readBody(r, nil, g.cfg.MaxCompressedBytes)
}

// Reserve takes n bytes of the in-flight budget for tenant id, or refuses
// at once (503 with Retry-After) when the writes in flight hold it;
// release gives them back.
func (g *Ingester) Reserve(id tenancy.ID, n int64) (release func(), err error) {
	r, err := g.inflight.acquire(id, n)
	if err != nil {
		return nil, err
	}
	return func() { g.inflight.release(r) }, nil
}

// DecodeSlot waits for one of the --ingest.max-concurrent-decodes slots,
// at most --ingest.decode-queue-timeout (then a 503) or until ctx ends;
// hold it while decoding, not while appending.
func (g *Ingester) DecodeSlot(ctx context.Context) (release func(), err error) {
	return g.decoding.acquire(ctx)
}

// Allow counts n samples received for tenant id and asks the rate limiter
// whether it may write them; refused, they are counted rejected.
func (g *Ingester) Allow(id tenancy.ID, n int) error {
	g.metrics.received.WithLabelValues(string(id)).Add(float64(n))
	if g.limiter == nil {
		return nil
	}
	if err := g.limiter.AllowIngest(id, n); err != nil {
		g.metrics.rejected.WithLabelValues(string(id), string(ReasonRateLimited)).Add(float64(n))
		return err
	}
	return nil
}

// Written is what an Append stored, and how many of its samples (floats
// and histograms) it rejected.
type Written struct {
	Samples, Histograms, Exemplars int
	Rejected                       int
}

// Append validates series (as remote write validates them: names, label
// limits, the time window, the histograms), stores the valid samples,
// histograms and exemplars in t's view of the store, with each series'
// Metadata, and commits them. onReject, if set, is told of each
// rejection with the index of its series. The error is the store's: then
// nothing of the batch is stored. Labels may come in any order; Append
// sorts them in place, and copies what it stores.
func (g *Ingester) Append(ctx context.Context, t storage.Tenant, series []TimeSeries, onReject func(i int, rej *Rejection)) (Written, error) {
	st := g.getState()
	defer g.putState(st)
	st.counts.reset()
	st.keyLabels = false // the series cache keys raw remote write 1.0 labels only
	w, err := g.appendSeries(g.appender(ctx, t), t.ID(), series, st, st.seriesMetadata, onReject)
	return Written{Samples: w.samples, Histograms: w.histograms, Exemplars: w.exemplars, Rejected: st.counts.samples}, err
}

// Reject counts n samples of tenant id that the protocol rejected itself,
// before Append, for reason.
func (g *Ingester) Reject(id tenancy.ID, reason Reason, n int) {
	g.metrics.rejected.WithLabelValues(string(id), string(reason)).Add(float64(n))
}

// Answered counts a write request of tenant id answered with status.
func (g *Ingester) Answered(id tenancy.ID, status int) {
	g.metrics.requests.WithLabelValues(string(id), strconv.Itoa(status)).Inc()
}

// decodeLimits are the strict DecodeLimits of cfg, for a protocol whose
// requests may decode to bytesPerByte bytes per byte.
func decodeLimits(cfg Config, bytesPerByte int) DecodeLimits {
	return DecodeLimits{
		MaxSeries:       cfg.MaxSeriesPerRequest,
		MaxLabels:       cfg.MaxLabelsPerRequest,
		MaxSamples:      cfg.MaxSamplesPerRequest,
		MaxBuckets:      cfg.MaxBucketsPerHistogram,
		MaxBytesPerByte: bytesPerByte,
		Strict:          true,
	}
}

// getState returns a writeState from the pool; putState returns it,
// without the buffers that grew too large to keep.
func (g *Ingester) getState() *writeState { return g.states.Get().(*writeState) }

func (g *Ingester) putState(st *writeState) {
	st.trim()
	g.states.Put(st)
}

// appender returns an appender of t's view, that injects start timestamps
// as zero samples when --ingest.created-timestamp-zero-ingestion is set.
func (g *Ingester) appender(ctx context.Context, t storage.Tenant) promstorage.AppenderV2 {
	app := t.Store.AppenderV2(ctx)
	if g.startZero != nil {
		app = storage.WithStartZero(app, g.startZero, t.ID())
	}
	return app
}

// metrics are the ingest counters, shared by the protocols.
type metrics struct {
	received *prometheus.CounterVec
	accepted *prometheus.CounterVec
	rejected *prometheus.CounterVec
	requests *prometheus.CounterVec

	exemplarsAccepted *prometheus.CounterVec
	exemplarsRefused  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		received: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "luminate_ingest_samples_received_total",
			Help: "Samples received in write requests, by tenant.",
		}, []string{"tenant"})),
		accepted: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "luminate_ingest_samples_accepted_total",
			Help: "Samples (floats and native histograms) stored and committed, by tenant.",
		}, []string{"tenant"})),
		rejected: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "luminate_ingest_samples_rejected_total",
			Help: "Samples refused, by tenant and reason.",
		}, []string{"tenant", "reason"})),
		requests: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "luminate_ingest_requests_total",
			Help: "Write requests answered, by tenant and HTTP status code.",
		}, []string{"tenant", "code"})),
		exemplarsAccepted: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "luminate_ingest_exemplars_accepted_total",
			Help: "Exemplars stored and committed, by tenant.",
		}, []string{"tenant"})),
		exemplarsRefused: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "luminate_ingest_exemplars_refused_total",
			Help: "Exemplars the store refused (invalid, out of order, or beside a rejected sample), by tenant; the samples beside them are stored.",
		}, []string{"tenant"})),
	}
}

// register registers c on reg, or returns the collector already registered
// under its name, so that Ingesters can share one registry.
func register(reg prometheus.Registerer, c *prometheus.CounterVec) *prometheus.CounterVec {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		if are := (prometheus.AlreadyRegisteredError{}); errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("remotewrite: register metrics: %v", err))
	}
	return c
}

// AppenderV2 returns an appender of t's view for a protocol that converts
// and appends its series itself (OTLP): it injects start timestamps as
// zero samples under --ingest.created-timestamp-zero-ingestion, as Append
// does. Validate what goes in with Validator and StoreRejection, and
// count it with Reject and Accepted.
func (g *Ingester) AppenderV2(ctx context.Context, t storage.Tenant) promstorage.AppenderV2 {
	return g.appender(ctx, t)
}

// Validator is the Validator of g's configuration.
func (g *Ingester) Validator() *Validator { return g.validator }

// Accepted counts the samples (floats and histograms) and exemplars of
// tenant id that a protocol appending itself stored and committed, and
// the exemplars the store refused.
func (g *Ingester) Accepted(id tenancy.ID, samples, exemplars, exemplarsRefused int) {
	g.metrics.accepted.WithLabelValues(string(id)).Add(float64(samples))
	if exemplars > 0 {
		g.metrics.exemplarsAccepted.WithLabelValues(string(id)).Add(float64(exemplars))
	}
	if exemplarsRefused > 0 {
		g.metrics.exemplarsRefused.WithLabelValues(string(id)).Add(float64(exemplarsRefused))
	}
}

// StoreRejection returns the *Rejection of an error of AppenderV2.Append
// about the sample or series ls (a client error), or nil when the store
// itself failed (then roll back and fail the request).
func StoreRejection(err error, ls []Label) *Rejection { return storeRejection(err, ls) }

// HATracker elects the replica of each Prometheus HA pair whose writes
// are stored; tenancy.HATracker is one. It must be safe for concurrent
// use.
type HATracker interface {
	// Labels returns the cluster and replica label names of tenant id,
	// ok false when the tenant does not accept HA samples.
	Labels(id tenancy.ID) (cluster, replica string, ok bool)
	// Check returns nil when the writes of replica of cluster are
	// stored, an error wrapping tenancy.ErrHADuplicate when they are
	// not (another replica is elected), or why it cannot tell.
	Check(ctx context.Context, id tenancy.ID, cluster, replica string) error
}

// SetHATracker makes g deduplicate the remote writes of Prometheus HA
// pairs through h (see Dedupe). Call it before serving.
func (g *Ingester) SetHATracker(h HATracker) { g.ha = h }

// Dedupe applies HA-pair deduplication to series, a write of tenant id,
// as Mimir does: when the tenant accepts HA samples and the first series
// carries both its cluster and its replica label, a write of a replica
// that is not elected is a duplicate (store nothing, answer 202), and
// the elected replica's series lose the replica label, in place. Writes
// without both labels pass unchanged.
func (g *Ingester) Dedupe(ctx context.Context, id tenancy.ID, series []TimeSeries) (duplicate bool, err error) {
	if g.ha == nil || len(series) == 0 {
		return false, nil
	}
	clusterLabel, replicaLabel, ok := g.ha.Labels(id)
	if !ok {
		return false, nil
	}
	var cluster, replica string
	for _, l := range series[0].Labels {
		switch l.Name {
		case clusterLabel:
			cluster = l.Value
		case replicaLabel:
			replica = l.Value
		}
	}
	if cluster == "" || replica == "" {
		return false, nil
	}
	// Copies: the labels point into the request's buffer, reused by the
	// next, and the tracker keeps them.
	switch err := g.ha.Check(ctx, id, strings.Clone(cluster), strings.Clone(replica)); {
	case errors.Is(err, tenancy.ErrHADuplicate):
		return true, nil
	case errors.Is(err, tenancy.ErrHAClusters):
		return false, apierror.Limit(apierror.InvalidArgument, tenancy.HAClustersSetting(), "%v", err)
	case err != nil:
		return false, err
	}
	for i := range series {
		series[i].Labels = slices.DeleteFunc(series[i].Labels, func(l Label) bool { return l.Name == replicaLabel })
	}
	return false, nil
}

// haDuplicate answers a remote write of an HA replica that is not
// elected, as Mimir does: 202, nothing stored. To remote write 2.0 it
// reports the request's counts as written, as they are by the elected
// replica: a standby Prometheus then records no failed samples.
type haDuplicate struct{ res writeResult }

func (d haDuplicate) Respond(w http.ResponseWriter, _ *http.Request) error {
	if d.res.proto == rw2 {
		setWritten(w.Header(), d.res.stored)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, "HA replica not elected: samples accepted, not stored\n")
	return nil
}

func countExemplars(series []TimeSeries) (n int) {
	for i := range series {
		n += len(series[i].Exemplars)
	}
	return n
}
