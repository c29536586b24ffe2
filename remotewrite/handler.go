// Package remotewrite receives metrics pushed to Luminate by the
// Prometheus remote write 1.0 and 2.0 protocols (POST /api/v1/write and
// /api/v1/push, snappy compressed prometheus.WriteRequest or
// io.prometheus.write.v2.Request protobuf, told apart by the proto
// parameter of the Content-Type). It decodes, bounds, validates and rate
// limits writes, and appends them through the tenant's view of the store;
// its Ingester is that write path, shared with the other write protocols
// (package native's JSON write).
//
// It is not where requests are authenticated or their tenant resolved
// (the router hands Serve a storage.Tenant), nor where errors become
// status codes and bodies (apierror), nor where out-of-order or duplicate
// samples are resolved (the store accepts them idempotently).
package remotewrite

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// Config bounds and validates writes. Zero label and time limits disable
// the limit; the byte and item bounds must be positive.
type Config struct {
	MaxCompressedBytes   int64         // request body as sent
	MaxDecompressedBytes int64         // remote write body after snappy
	MaxLabelsPerSeries   int           // including __name__
	MaxLabelNameLength   int           // bytes
	MaxLabelValueLength  int           // bytes, the metric name included
	MaxFutureSkew        time.Duration // how far past now a sample may be
	Retention            time.Duration // samples older are refused; set from the storage retention, no flag
	// RetentionPolicy, when set, gives each tenant its own retention in
	// place of Retention (the overrides file's retention key).
	RetentionPolicy  storage.RetentionPolicy `yaml:"-"`
	MaxNativeMetrics int                     // items per native JSON write

	// What one request may decode to, and what all requests in flight
	// may hold (issue #10: no tenant can take Luminate down).
	MaxSeriesPerRequest  int           // series of one remote write request
	MaxLabelsPerRequest  int           // labels of all series of one request
	MaxSamplesPerRequest int           // float and histogram samples of one request
	MaxInflightBytes     int64         // memory of the write requests being decoded and stored, all tenants
	MaxConcurrentDecodes int           // requests decompressed and decoded at once, all tenants; 0 means twice GOMAXPROCS
	DecodeQueueTimeout   time.Duration // how long a request waits for a decode slot before 503

	// Issue #11: native histograms, exemplars, metadata, start timestamps.
	MaxBucketsPerHistogram int  // spans, buckets or custom values of one native histogram (each)
	MaxPendingMetadata     int  // remote write 1.0 metadata entries waiting for a series of their family, all tenants
	StartZeroIngestion     bool // turn start (created) timestamps into zero samples
	StartZeroCacheSize     int  // series whose last injected start timestamp is remembered

	// Issue #15: the steady write path.
	SeriesCacheSize int // series whose store handle is remembered by their labels as sent (seriescache.go); 0: none
}

// DefaultConfig returns the defaults of the flags.
func DefaultConfig() Config {
	return Config{
		MaxCompressedBytes:   10 << 20,
		MaxDecompressedBytes: 64 << 20,
		MaxLabelsPerSeries:   40,
		MaxLabelNameLength:   1024,
		MaxLabelValueLength:  2048,
		MaxFutureSkew:        10 * time.Minute,
		MaxNativeMetrics:     10000,
		// Prometheus sends at most max_samples_per_send (2,000 by
		// default; some raise it to 10,000 or more) samples, so as many
		// series, of some tens of labels, per request: these are 10 to
		// 50 times the largest real batches, and bound the decoded
		// structures of one request of floats to about 70 MB (100,000
		// series of 136 bytes, 1,000,000 labels of 32, 1,000,000 samples
		// of 24); a histogram sample takes 312 bytes and its buckets 8
		// each, within the bytes per byte of the request.
		MaxSeriesPerRequest:  100_000,
		MaxLabelsPerRequest:  1_000_000,
		MaxSamplesPerRequest: 1_000_000,
		// Twice the largest 1.0 request (10 MiB compressed, 64 MiB
		// decompressed, about 60 MB decoded at most), or some hundreds of
		// default Prometheus batches of 2,000 samples at once (about 1 MB
		// reserved each before decoding, 0.5 MB after): far above what
		// the store appends concurrently on one node.
		MaxInflightBytes: 512 << 20,
		// Decompressing and decoding is CPU work: with no more requests
		// at it than twice the cores (VictoriaMetrics'
		// -maxConcurrentInserts), a burst of large writes queues instead
		// of taking every core from the queries of other tenants. The
		// appends, which may wait on a disk or ClickHouse, are not
		// counted.
		DecodeQueueTimeout: 10 * time.Second,
		// Prometheus' clients cap native histograms at 160 buckets a
		// side by default (OpenTelemetry's SDKs too), and classic
		// histograms converted to custom buckets have tens: 65,536 is
		// what a schema 8 histogram spanning 256 powers of two holds.
		MaxBucketsPerHistogram: 1 << 16,
		// Prometheus sends the metadata of all its families, some
		// thousands, every minute, apart from the samples.
		MaxPendingMetadata: 100_000,
		// Off, as Prometheus 3's created-timestamp-zero-ingestion
		// feature is: queries answer what a Prometheus receiving the
		// same writes answers.
		StartZeroIngestion: false,
		StartZeroCacheSize: 1_000_000,
		// Twice a million active series: a million fit in one of the
		// cache's two generations, so steady ingest never rotates it.
		SeriesCacheSize: 2_000_000,
	}
}

// RegisterFlags registers the --ingest.* flags on f, with the defaults of
// DefaultConfig.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	d := DefaultConfig()
	f.Int64Var(&c.MaxCompressedBytes, "ingest.max-request-bytes", d.MaxCompressedBytes,
		"Largest write request body accepted, in bytes, as sent (compressed); larger requests get 413.")
	f.Int64Var(&c.MaxDecompressedBytes, "ingest.max-decompressed-bytes", d.MaxDecompressedBytes,
		"Largest remote write request accepted after snappy decompression, in bytes; larger requests get 413.")
	f.IntVar(&c.MaxLabelsPerSeries, "ingest.max-labels-per-series", d.MaxLabelsPerSeries,
		"Most labels a series may have, __name__ included; 0 for no limit.")
	f.IntVar(&c.MaxLabelNameLength, "ingest.max-label-name-length", d.MaxLabelNameLength,
		"Longest label name accepted, in bytes; 0 for no limit.")
	f.IntVar(&c.MaxLabelValueLength, "ingest.max-label-value-length", d.MaxLabelValueLength,
		"Longest label value (and metric name) accepted, in bytes; 0 for no limit.")
	f.DurationVar(&c.MaxFutureSkew, "ingest.max-future-skew", d.MaxFutureSkew,
		"How far in the future a sample's timestamp may be; 0 for no limit.")
	f.IntVar(&c.MaxNativeMetrics, "ingest.max-native-metrics", d.MaxNativeMetrics,
		"Most metrics one native JSON write (POST /api/v1/metrics) may carry.")

	f.IntVar(&c.MaxSeriesPerRequest, "ingest.max-series-per-request", d.MaxSeriesPerRequest,
		"Most series one remote write request may carry; larger requests get 413.")
	f.IntVar(&c.MaxLabelsPerRequest, "ingest.max-labels-per-request", d.MaxLabelsPerRequest,
		"Most labels one write request may carry, all its series together (a remote write 2.0 request may also hold twice as many symbols); larger requests get 413.")
	f.IntVar(&c.MaxSamplesPerRequest, "ingest.max-samples-per-request", d.MaxSamplesPerRequest,
		"Most samples (floats and native histograms) one remote write request may carry; larger requests get 413.")
	f.Int64Var(&c.MaxInflightBytes, "ingest.max-inflight-bytes", d.MaxInflightBytes,
		"Memory, in bytes, that the write requests being decoded and stored may hold together, all tenants (a remote write request counts its body, its decompressed body and its decoded series, a native write 8 times its body); beyond it, or beyond half of it for one tenant while others hold some, writes get 503 with Retry-After.")
	f.IntVar(&c.MaxConcurrentDecodes, "ingest.max-concurrent-decodes", d.MaxConcurrentDecodes,
		"Write requests decompressed and decoded at once, all tenants; more wait (see --ingest.decode-queue-timeout). 0 means twice GOMAXPROCS.")
	f.DurationVar(&c.DecodeQueueTimeout, "ingest.decode-queue-timeout", d.DecodeQueueTimeout,
		"How long a write request may wait for one of --ingest.max-concurrent-decodes; then it gets 503 with Retry-After.")

	f.IntVar(&c.MaxBucketsPerHistogram, "ingest.max-buckets-per-histogram", d.MaxBucketsPerHistogram,
		"Most spans, buckets or custom bucket bounds (each, per side) one native histogram sample may carry; a remote write request holding a larger one gets 413.")
	f.IntVar(&c.MaxPendingMetadata, "ingest.max-pending-metadata", d.MaxPendingMetadata,
		"Most remote write 1.0 metadata entries, all tenants, kept in memory until a series of their metric family arrives (Prometheus sends metadata apart from samples); each tenant holds at most its --limits.max-metadata of them (override max_metadata); beyond either, metadata of new families waits for its next sending.")
	f.BoolVar(&c.StartZeroIngestion, "ingest.created-timestamp-zero-ingestion", d.StartZeroIngestion,
		"Store a zero sample at the start (created) timestamp of a counter or histogram sample that carries one (remote write 2.0), once per series and start timestamp, as Prometheus' created-timestamp-zero-ingestion feature does. Off by default, as in Prometheus 3: queries then answer what a Prometheus receiving the same writes answers; on, rate() and increase() count the first increase of a new or reset counter.")
	f.IntVar(&c.StartZeroCacheSize, "ingest.created-timestamp-cache-size", d.StartZeroCacheSize,
		"With --ingest.created-timestamp-zero-ingestion, how many series (all tenants) remember the start timestamp last injected, so that it is injected once, not on every write; a series forgotten gets its zero sample again (harmless, one out-of-order write). Takes about 50 bytes a series, twice this at most.")
	f.IntVar(&c.SeriesCacheSize, "ingest.series-cache-size", d.SeriesCacheSize,
		"How many series (all tenants) the remote write receiver remembers by their labels as sent, so that their next samples and histograms skip label validation and the series lookup (Badger backend; remote write 1.0 and 2.0, series without exemplars or metadata). Half of it are the series a steady load keeps cached; beyond, some are looked up by their labels again. About 70 bytes a series; 0 turns the cache off.")
}

// Validate reports every setting out of range.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxCompressedBytes <= 0 {
		errs = append(errs, fmt.Errorf("--ingest.max-request-bytes must be positive, got %d", c.MaxCompressedBytes))
	}
	if c.MaxDecompressedBytes <= 0 {
		errs = append(errs, fmt.Errorf("--ingest.max-decompressed-bytes must be positive, got %d", c.MaxDecompressedBytes))
	}
	if c.MaxNativeMetrics <= 0 {
		errs = append(errs, fmt.Errorf("--ingest.max-native-metrics must be positive, got %d", c.MaxNativeMetrics))
	}
	for _, l := range []struct {
		flag string
		v    int64
	}{
		{"--ingest.max-series-per-request", int64(c.MaxSeriesPerRequest)},
		{"--ingest.max-labels-per-request", int64(c.MaxLabelsPerRequest)},
		{"--ingest.max-samples-per-request", int64(c.MaxSamplesPerRequest)},
		{"--ingest.max-inflight-bytes", c.MaxInflightBytes},
		{"--ingest.max-buckets-per-histogram", int64(c.MaxBucketsPerHistogram)},
		{"--ingest.max-pending-metadata", int64(c.MaxPendingMetadata)},
		{"--ingest.created-timestamp-cache-size", int64(c.StartZeroCacheSize)},
	} {
		if l.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %d", l.flag, l.v))
		}
	}
	if c.MaxConcurrentDecodes < 0 {
		errs = append(errs, fmt.Errorf("--ingest.max-concurrent-decodes must not be negative, got %d", c.MaxConcurrentDecodes))
	}
	if c.DecodeQueueTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--ingest.decode-queue-timeout must be positive, got %s", c.DecodeQueueTimeout))
	}
	for _, l := range []struct {
		flag string
		v    int64
	}{
		{"--ingest.max-labels-per-series", int64(c.MaxLabelsPerSeries)},
		{"--ingest.max-label-name-length", int64(c.MaxLabelNameLength)},
		{"--ingest.max-label-value-length", int64(c.MaxLabelValueLength)},
		{"--ingest.max-future-skew", int64(c.MaxFutureSkew)},
		{"storage retention", int64(c.Retention)},
		{"--ingest.series-cache-size", int64(c.SeriesCacheSize)},
	} {
		if l.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, got %d", l.flag, l.v))
		}
	}
	return errors.Join(errs...)
}

// Limiter decides whether a tenant may ingest more samples now. It is
// declared here, where it is used; tenancy.Limits implements it. It must
// be safe for concurrent use. A refusal should wrap tenancy.ErrRateLimited
// (a *tenancy.LimitError with its Retry-After) so it becomes a 429.
type Limiter interface {
	AllowIngest(id tenancy.ID, samples int) error
}

// writeState is what one request reuses from the last: the body and
// decompression buffers, the decoded arenas and a label builder.
type writeState struct {
	body    []byte
	dec     Decoder
	decV2   DecoderV2
	builder labels.ScratchBuilder
	lset    labels.Labels // reused by buildLabels for each series
	counts  rejectCounts
	// What the appender may hold until it commits.
	hists    []histogram.Histogram
	fhists   []histogram.FloatHistogram
	ex       []exemplar.Exemplar
	metaMemo map[Metadata]metadata.Metadata // remote write 2.0's metadata, converted once per request
	cached   cachedSeries                   // the series cache's keys and handles of the request (seriescache.go)
	// keyLabels has the series cache key the request's series by their
	// labels (remote write 2.0), not by their raw labels (1.0); keyBuf
	// holds a key's bytes.
	keyLabels bool
	keyBuf    []byte
}

// maxPooledBytes is the largest buffer a pooled writeState keeps: enough
// for Prometheus batches of tens of thousands of samples, so that one huge
// request does not stay resident in the pool after it.
const maxPooledBytes = 4 << 20

// trim drops the buffers of st that grew beyond maxPooledBytes.
func (st *writeState) trim() {
	trim(&st.body, maxPooledBytes)
	st.dec.Trim(maxPooledBytes)
	st.decV2.Trim(maxPooledBytes)
	trim(&st.hists, maxPooledBytes)
	trim(&st.fhists, maxPooledBytes)
	trim(&st.ex, maxPooledBytes)
	trim(&st.keyBuf, maxPooledBytes)
	clear(st.cached.handles) // nor the series of the last request's handles
	// Nothing kept alive through them: the exemplars' labels, the
	// decoder arenas the histograms point into. What lies past their
	// lengths was cleared by the request that used it.
	clear(st.ex)
	clear(st.hists)
	clear(st.fhists)
}

// How many bytes of decoded structures a request may take per byte of its
// decompressed body (DecodeLimits.MaxBytesPerByte): about twice what real
// requests take. 2,000 1.0 series of one sample and the single label
// __name__="m1" take 4.2 times their size, real series with job, instance
// and a few more labels 1.6 to 3 times: label strings point into the body.
// A 2.0 label is two references of a byte or two for 40 bytes decoded (4
// per reference, 32 per Label): 2.0 series of one sample take 6 times
// their size, 2 to 4 with more samples. A native histogram's bucket is a
// delta of a byte or two for 8 bytes decoded: series of few labels and a
// histogram of 160 buckets take 7.5 times their size, so histograms get
// some more room (10 and 14, not 8 and 12 for floats alone).
const (
	rw1BytesPerByte = 10
	rw2BytesPerByte = 14
)

// decodedBound is the most the decoded structures of a request of proto,
// n bytes decompressed, may take: its bytes per byte, or what the
// per-request counts allow if less.
func (g *Ingester) decodedBound(proto protocol, n int) int64 {
	c := g.cfg
	series, labels, samples := int64(c.MaxSeriesPerRequest), int64(c.MaxLabelsPerRequest), int64(c.MaxSamplesPerRequest)
	if series <= 0 || labels <= 0 || samples <= 0 { // unlimited (a Config not validated)
		series, labels, samples = math.MaxInt32, math.MaxInt32, math.MaxInt32
	}
	if proto == rw2 {
		return min(rw2BytesPerByte*int64(n),
			series*int64(seriesSize+metaRefsSize)+2*labels*int64(refSize+symbolSize)+samples*int64(sampleSize))
	}
	return min(rw1BytesPerByte*int64(n),
		series*int64(seriesSize)+labels*int64(labelSize)+samples*int64(sampleSize))
}

// Handler is the remote write 1.0 and 2.0 receiver, for POST
// /api/v1/write and /api/v1/push (a route of the metrics:write scope and
// the Text error format). It takes remote write 1.0 and 2.0 requests on
// the same endpoint.
//
// It answers 204 when every sample was stored; 400 when some series or
// samples were invalid, after storing the valid ones; 413 above the size
// bounds, the per-request limits or the tenant's ingestion burst (a
// request that can never pass); 415 for another content type, encoding,
// protobuf message or protocol version; 429 over the tenant's rate; 503
// with Retry-After when the writes in flight hold the in-flight budget;
// and otherwise 5xx only when the store failed, so that senders retry
// exactly what was not stored. A body that is not the message its
// Content-Type names (a 1.0 body sent as 2.0, or the reverse), or that
// holds empty series, labels, samples, histograms or exemplars, is a 400.
//
// Float samples, native histograms (integer and float, exponential and
// custom buckets, stale markers), exemplars and metadata are all stored.
// A histogram that fails Prometheus' histogram.Validate is rejected as an
// invalid sample is (400, the rest stored). Exemplars are best effort, as
// in Prometheus: one the store refuses, or outside the accepted time
// window, is dropped and counted, and fails nothing (the remote write 2.0
// spec makes an error of samples and histograms not written, not of
// exemplars; the Exemplars-Written header tells the sender). Metadata is
// filed under its metric family (see metadata.go).
//
// To remote write 2.0 requests it also answers the
// X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written headers
// with the counts stored, whatever the status.
type Handler struct {
	g *Ingester
}

// NewHandler returns the remote write receiver writing through g.
func NewHandler(g *Ingester) *Handler { return &Handler{g} }

// Serve serves one remote write request of tenant t.
func (h *Handler) Serve(r *http.Request, t storage.Tenant) (any, error) {
	res, err := h.write(r, t)
	status := http.StatusNoContent
	if err != nil {
		status = apierror.Classify(err).Status
		if status >= 500 {
			h.g.logger.WarnContext(r.Context(), "remote write failed", "tenant", t.ID(), "status", status, "err", err)
		} else {
			h.g.logger.DebugContext(r.Context(), "remote write refused", "tenant", t.ID(), "status", status, "err", err)
		}
	}
	if res.duplicate { // HA pairs: accepted, not stored
		status = http.StatusAccepted
	}
	h.g.Answered(t.ID(), status)
	if res.duplicate && err == nil {
		return haDuplicate{res}, nil
	}
	if res.proto == rw2 {
		return v2Answer{res.stored, err}, nil
	}
	return nil, err
}

// v2Answer answers a remote write 2.0 request: the headers that say what
// was written, on every response, then 204 or the error, which the router
// renders (Respond returns it before writing anything).
type v2Answer struct {
	stored written
	err    error
}

func (a v2Answer) Respond(w http.ResponseWriter, _ *http.Request) error {
	setWritten(w.Header(), a.stored)
	if a.err != nil {
		return a.err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Remote write media types and headers.
const (
	protobufType    = "application/x-protobuf"
	protoV1         = "prometheus.WriteRequest"
	protoV2         = "io.prometheus.write.v2.Request"
	versionHeader   = "X-Prometheus-Remote-Write-Version"
	versionV1Prefix = "0.1."
	versionV2Prefix = "2."

	samplesWrittenHeader    = "X-Prometheus-Remote-Write-Samples-Written"
	histogramsWrittenHeader = "X-Prometheus-Remote-Write-Histograms-Written"
	exemplarsWrittenHeader  = "X-Prometheus-Remote-Write-Exemplars-Written"
)

// protocol is the remote write version of a request.
type protocol int

const (
	rw1 protocol = iota + 1 // prometheus.WriteRequest
	rw2                     // io.prometheus.write.v2.Request
)

// checkHeaders negotiates the protocol of a request from its Content-Type
// proto parameter, as the remote write 2.0 spec says: none or
// prometheus.WriteRequest is 1.0, io.prometheus.write.v2.Request is 2.0,
// anything else is refused. Like Prometheus, it takes a missing
// Content-Type or Content-Encoding to mean the 1.0 defaults, for old
// senders. A version header, when sent, must match the message.
func checkHeaders(hdr http.Header) (protocol, error) {
	proto := rw1
	if ct := hdr.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			return 0, apierror.New(apierror.UnsupportedMediaType, "Content-Type %q: %v", ct, err)
		}
		if mt == "application/json" {
			return 0, apierror.New(apierror.UnsupportedMediaType,
				"Content-Type %q is not supported here: send JSON to /api/v1/metrics (the native write); this endpoint takes remote write, %s (1.0) or %s;proto=%s (2.0), snappy compressed",
				ct, protobufType, protobufType, protoV2)
		}
		if mt != protobufType {
			return 0, apierror.New(apierror.UnsupportedMediaType,
				"Content-Type %q is not supported: remote write sends %s", ct, protobufType)
		}
		switch p := params["proto"]; p {
		case "", protoV1:
		case protoV2:
			proto = rw2
		default:
			return 0, apierror.New(apierror.UnsupportedMediaType,
				"Content-Type proto=%q is not supported: only %s (remote write 1.0) and %s (remote write 2.0)", p, protoV1, protoV2)
		}
	}
	if enc := hdr.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "snappy") {
		return 0, apierror.New(apierror.UnsupportedMediaType,
			"Content-Encoding %q is not supported: remote write bodies are snappy block compressed", enc)
	}
	v := hdr.Get(versionHeader)
	switch {
	case v == "":
	case proto == rw1 && !strings.HasPrefix(v, versionV1Prefix):
		return 0, apierror.New(apierror.UnsupportedMediaType,
			"%s %q is not supported with proto=%s: remote write 1.0 is version 0.1.0 (send 2.0 with proto=%s)",
			versionHeader, v, protoV1, protoV2)
	case proto == rw2 && !strings.HasPrefix(v, versionV2Prefix):
		return 0, apierror.New(apierror.UnsupportedMediaType,
			"%s %q is not supported with proto=%s: remote write 2.0 is version 2.0.0", versionHeader, v, protoV2)
	}
	return proto, nil
}

// setWritten sets the headers remote write 2.0 requires on every
// response: how many samples, histograms and exemplars were stored.
func setWritten(h http.Header, w written) {
	h.Set(samplesWrittenHeader, strconv.Itoa(w.samples))
	h.Set(histogramsWrittenHeader, strconv.Itoa(w.histograms))
	h.Set(exemplarsWrittenHeader, strconv.Itoa(w.exemplars))
}

// maxBodyPrealloc is the most readBody allocates for a body before its
// bytes arrive, whatever its Content-Length claims: a sender that declares
// 10 MiB and trickles it holds memory only for what it sent.
const maxBodyPrealloc = 256 << 10

// readBody reads r's body into buf, at most limit bytes
// (--ingest.max-request-bytes). The router bounds how long it may take to
// arrive.
func readBody(r *http.Request, buf []byte, limit int64) ([]byte, error) {
	tooLarge := func(n string) error {
		return apierror.Limit(apierror.TooLarge, tenancy.Global("--ingest.max-request-bytes"),
			"request body of %s bytes is larger than the limit of %d", n, limit)
	}
	if r.ContentLength > limit {
		return buf, tooLarge(strconv.FormatInt(r.ContentLength, 10))
	}
	if r.Body == nil {
		return buf[:0], nil
	}
	body := http.MaxBytesReader(nil, r.Body, limit)
	buf = buf[:0]
	if n := int(min(r.ContentLength+1, maxBodyPrealloc)); r.ContentLength > 0 && cap(buf) < n {
		buf = make([]byte, 0, n)
	}
	for {
		if len(buf) == cap(buf) {
			// Double (not the 1.25 of append for large slices): few
			// copies, and never more than twice what arrived.
			buf = slices.Grow(buf, max(len(buf), 4096))
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case err == io.EOF:
			return buf, nil
		case err != nil:
			if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
				return buf, tooLarge("more than " + strconv.FormatInt(limit, 10))
			}
			// A body past the server's read deadline (--http.read-timeout)
			// wraps apierror.ErrRequestTimeout: 408, whatever wraps it.
			return buf, apierror.Wrap(apierror.InvalidArgument, err, "read request body")
		}
	}
}

// writeResult is what a remote write request got: its protocol, once
// negotiated, and what was stored.
type writeResult struct {
	proto     protocol
	stored    written
	duplicate bool // of an HA replica not elected: answered 202, nothing stored
}

func (h *Handler) write(r *http.Request, t storage.Tenant) (writeResult, error) {
	g, id := h.g, t.ID()
	proto, err := checkHeaders(r.Header)
	if err != nil {
		return writeResult{}, err
	}
	res := writeResult{proto: proto}
	st := g.getState()
	defer g.putState(st)

	// The body first, holding nothing shared while it arrives; then its
	// memory and that of its decoding, from the in-flight budget, before
	// decompressing (snappy's header says the decompressed size).
	st.body, err = readBody(r, st.body, g.cfg.MaxCompressedBytes)
	if err != nil {
		return res, err
	}
	n, err := decodedLen(st.body)
	if err != nil {
		return res, apierror.Wrap(apierror.InvalidArgument, err, "decode remote write request")
	}
	if int64(n) > g.cfg.MaxDecompressedBytes {
		return res, apierror.Limit(apierror.TooLarge, tenancy.Global("--ingest.max-decompressed-bytes"), "%s: %d bytes, more than the limit of %d",
			ErrTooLarge, n, g.cfg.MaxDecompressedBytes)
	}
	// The body, the decompressed body and the most its decoding may take:
	// once decoded, the reservation shrinks to what it took.
	reserved, err := g.inflight.acquire(id, int64(len(st.body))+int64(n)+g.decodedBound(proto, n))
	if err != nil {
		return res, err
	}
	defer func() { g.inflight.release(reserved) }()

	release, err := g.DecodeSlot(r.Context())
	if err != nil {
		return res, err
	}
	var series []TimeSeries
	var meta []Metadata // remote write 1.0's, by metric family
	if proto == rw2 {
		var req *RequestV2
		if req, err = st.decV2.Decode(st.body, int(g.cfg.MaxDecompressedBytes)); err == nil {
			series = req.Timeseries
		}
	} else {
		var req *WriteRequest
		if req, err = st.dec.Decode(st.body, int(g.cfg.MaxDecompressedBytes)); err == nil {
			series, meta = req.Timeseries, req.Metadata
		}
	}
	release()
	decoded := st.dec.DecodedBytes()
	if proto == rw2 {
		decoded = st.decV2.DecodedBytes()
	}
	took := int64(len(st.body)) + int64(n) + int64(decoded)
	if err == nil {
		var gerr error
		if reserved, gerr = g.inflight.grow(reserved, took); gerr != nil {
			return res, gerr
		}
	}
	reserved = g.inflight.shrink(reserved, took)
	var tm *TooManyError
	switch {
	case errors.As(err, &tm) && tm.What == "bytes":
		// Not a sender's batch, however large: no setting raises it.
		return res, &apierror.Error{Kind: apierror.TooLarge, Err: err}
	case errors.As(err, &tm) && tm.What == "buckets":
		return res, apierror.Limit(apierror.TooLarge, requestLimit(tm.What), "%v", err)
	case errors.As(err, &tm):
		return res, apierror.Limit(apierror.TooLarge, requestLimit(tm.What), "%v; send smaller batches (max_samples_per_send)", err)
	case errors.Is(err, ErrTooLarge):
		return res, apierror.Limit(apierror.TooLarge, tenancy.Global("--ingest.max-decompressed-bytes"), "%v", err)
	case err != nil && proto == rw2:
		return res, apierror.Wrap(apierror.InvalidArgument, err, "decode remote write 2.0 request")
	case err != nil:
		return res, apierror.Wrap(apierror.InvalidArgument, err, "decode remote write request")
	}
	floats, histograms := countSamples(series)
	if res.duplicate, err = g.Dedupe(r.Context(), id, series); err != nil || res.duplicate {
		if res.duplicate { // as written, by the elected replica
			res.stored = written{samples: floats, histograms: histograms, exemplars: countExemplars(series)}
		}
		return res, err
	}
	if err := g.Allow(id, floats+histograms); err != nil {
		return res, err
	}
	rc := &st.counts
	rc.reset()
	var find metaFunc
	if proto == rw2 {
		find = st.seriesMetadata
	} else if len(meta) > 0 || g.pending.has(id) {
		m := g.familyMetadata(id, meta)
		defer m.keepUnused()
		find = m.find
	}
	st.keyLabels = proto == rw2
	res.stored, err = g.appendSeries(g.appender(r.Context(), t), id, series, st, find, nil)
	if err != nil {
		return res, err
	}
	if rc.first == nil {
		return res, nil
	}
	return res, apierror.Wrap(apierror.InvalidArgument, rc.first, fmt.Sprintf(
		"%d of %d series rejected (%d samples rejected, %d stored); first rejection",
		rc.series, len(series), rc.samples, res.stored.samples+res.stored.histograms))
}

// requestLimit is the setting of the limit of DecodeLimits on what, a
// TooManyError's What.
func requestLimit(what string) tenancy.Setting {
	switch what {
	case "series":
		return tenancy.Global("--ingest.max-series-per-request")
	case "samples":
		return tenancy.Global("--ingest.max-samples-per-request")
	case "buckets":
		return tenancy.Global("--ingest.max-buckets-per-histogram")
	}
	return tenancy.Global("--ingest.max-labels-per-request") // labels, and symbols (two per label)
}

// written is what a write stored.
type written struct {
	samples, histograms, exemplars int
}

// metaFunc returns the metadata, and its metric family name (empty for
// the metric name), to attach to the appends of ts, a series named name;
// ok is false when it has none.
type metaFunc func(ts *TimeSeries, name string) (m metadata.Metadata, family string, ok bool)

// appendSeries validates series, stores the valid samples, histograms and
// exemplars through app, an appender of tenant id's view, with the
// metadata meta (which may be nil) finds, and commits them. Rejections
// are tallied in st.counts (which the caller resets) and, when onReject is
// set, reported with the index of their series. It returns what was
// stored, and an error only when the store failed: then nothing of the
// batch is stored.
//
// A series' exemplars ride on the first of its samples the store takes;
// those of an entry without samples (remote write senders send exemplars
// in entries of their own) go through AppendExemplars. Exemplars the
// store refuses (a *promstorage.AppendPartialError, or a series it does
// not hold) are not counted stored and reject nothing else, as in
// Prometheus, for which exemplars are best effort.
func (g *Ingester) appendSeries(app promstorage.AppenderV2, id tenancy.ID, series []TimeSeries, st *writeState, meta metaFunc, onReject func(series int, rej *Rejection)) (written, error) {
	rc := &st.counts
	var out written
	exRefused := 0
	defer func() {
		for _, c := range rc.byReason {
			g.metrics.rejected.WithLabelValues(string(id), string(c.reason)).Add(float64(c.n))
		}
		if exRefused > 0 {
			g.metrics.exemplarsRefused.WithLabelValues(string(id)).Add(float64(exRefused))
		}
	}()
	rejectSeries := func(i int, rej *Rejection, n int) {
		rc.add(rej, n)
		if onReject != nil {
			onReject(i, rej)
		}
	}
	st.prepare(series)
	if v, ok := app.(histogramsValidated); ok {
		v.HistogramsValidated() // st.histogram checks them
	}
	win := g.validator.WindowFor(id, time.Now())
	cache := g.seriesCache(app) // seriescache.go
	if err := cache.lookup(st, series, meta); err != nil {
		return written{}, apierror.Wrap(apierror.InvalidArgument, err, "decode remote write request")
	}
	for i := range series {
		ts := &series[i]
		before := rc.samples
		// A series seen before is appended to by its handle (seriescache.go);
		// from and hfrom are the first sample and histogram left to append
		// with the labels.
		key, cacheable := cache.entry(st, i)
		from, hfrom := 0, 0
		if cacheable {
			var stored written
			stored, from, hfrom = cache.append(st, key, ts, win, i, rejectSeries)
			out.samples += stored.samples
			out.histograms += stored.histograms
			if from == len(ts.Samples) && hfrom == len(ts.Histograms) {
				if rc.samples > before {
					rc.series++
				}
				continue
			}
		}
		ls, err := g.validator.series(ts.Labels, ts.validUTF8)
		if err != nil {
			rejectSeries(i, asRejection(err), len(ts.Samples)+len(ts.Histograms))
			rc.series++
			exRefused += len(ts.Exemplars)
			continue
		}
		lset := buildLabels(&st.builder, ls, &st.lset)
		var opts promstorage.AOptions
		if meta != nil {
			if m, family, ok := meta(ts, lset.Get(model.MetricNameLabel)); ok {
				opts.Metadata, opts.MetricFamilyName = m, family
			}
		}
		exemplars, outside := st.exemplars(ts.Exemplars, win)
		exRefused += outside
		var ref promstorage.SeriesRef
		// add appends one sample (h or fh set for a histogram), with the
		// exemplars not yet stored; done is false when the series is
		// over (its remaining n samples rejected), err set when the
		// store failed.
		add := func(t, stt int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, rest int) (done bool, err error) {
			o := opts
			o.Exemplars = exemplars
			ref, err = app.Append(ref, lset, ts.StartTimestamp(stt), t, v, h, fh, o)
			if partial, ok := asPartial(err); ok {
				exRefused += len(partial.ExemplarErrors)
				out.exemplars += max(0, len(exemplars)-len(partial.ExemplarErrors))
				exemplars = nil
				g.logger.Debug("exemplars refused", "tenant", id, "series", FormatSeries(ls), "err", err)
				err = nil
			} else if err == nil {
				out.exemplars += len(exemplars)
				exemplars = nil
			}
			if err == nil {
				if h != nil || fh != nil {
					out.histograms++
				} else {
					out.samples++
				}
				if cacheable {
					cache.put(key) // the series' handle, from now on
					cacheable = false
				}
				return true, nil
			}
			rej := storeRejection(err, ls)
			if rej == nil {
				return false, errors.Join(fmt.Errorf("append: %w", err), rollback(app))
			}
			if rej.Reason == ReasonSeriesLimit { // the series was not created, nor will it be for its next samples
				rejectSeries(i, rej, rest)
				return false, nil
			}
			rejectSeries(i, rej, 1)
			return true, nil
		}
		more := true
		for j := from; j < len(ts.Samples); j++ {
			s := &ts.Samples[j]
			if err := win.Check(ls, s.Timestamp); err != nil {
				rejectSeries(i, asRejection(err), 1)
				continue
			}
			if more, err = add(s.Timestamp, s.StartTimestamp, s.Value, nil, nil, len(ts.Samples)-j+len(ts.Histograms)); err != nil {
				return written{}, err
			}
			if !more {
				break
			}
		}
		for j := hfrom; j < len(ts.Histograms); j++ {
			if !more {
				break
			}
			hp := &ts.Histograms[j]
			if err := win.Check(ls, hp.Timestamp); err != nil {
				rejectSeries(i, asRejection(err), 1)
				continue
			}
			h, fh, err := st.histogram(hp)
			if err != nil {
				rejectSeries(i, invalidHistogram(ls, hp, err), 1)
				continue
			}
			if more, err = add(hp.Timestamp, hp.StartTimestamp, 0, h, fh, len(ts.Histograms)-j); err != nil {
				return written{}, err
			}
		}
		switch exApp, ok := app.(promstorage.ExemplarAppenderV2); {
		case len(exemplars) == 0:
		case len(ts.Samples)+len(ts.Histograms) == 0 && ok:
			// Exemplars alone, as Prometheus sends them: for a series
			// that has samples, in this request or an earlier one.
			_, err := exApp.AppendExemplars(ref, lset, exemplars)
			if partial, isPartial := asPartial(err); isPartial {
				exRefused += len(partial.ExemplarErrors)
				out.exemplars += max(0, len(exemplars)-len(partial.ExemplarErrors))
			} else if err != nil {
				exRefused += len(exemplars)
			} else {
				out.exemplars += len(exemplars)
			}
			if err != nil {
				g.logger.Debug("exemplars refused", "tenant", id, "series", FormatSeries(ls), "err", err)
			}
		default: // no sample of the series was stored
			exRefused += len(exemplars)
		}
		if rc.samples > before {
			rc.series++
		}
	}
	if err := app.Commit(); err != nil {
		return written{}, fmt.Errorf("commit: %w", err)
	}
	g.metrics.accepted.WithLabelValues(string(id)).Add(float64(out.samples + out.histograms))
	if out.exemplars > 0 {
		g.metrics.exemplarsAccepted.WithLabelValues(string(id)).Add(float64(out.exemplars))
	}
	return out, nil
}

// histogramsValidated is an appender that can be told that its caller
// checks its histograms with Validate (storage/badger's), so that it
// does not check them again.
type histogramsValidated interface{ HistogramsValidated() }

// prepare sizes the arenas of st for the histograms and exemplars of
// series, so that the pointers handed to the appender stay valid until it
// commits.
func (st *writeState) prepare(series []TimeSeries) {
	nh, ne := 0, 0
	for i := range series {
		nh += len(series[i].Histograms)
		ne += len(series[i].Exemplars)
	}
	clear(st.metaMemo)
	st.hists = slices.Grow(st.hists[:0], nh)
	st.fhists = slices.Grow(st.fhists[:0], nh)
	st.ex = slices.Grow(st.ex[:0], ne)
}

// histogram returns hp as the histogram or float histogram to append,
// from the arenas of st, after checking it as Prometheus' head appender
// does (histogram.Validate). Its custom values are copied: stores may
// keep them, as Prometheus' interns them.
func (st *writeState) histogram(hp *Histogram) (*histogram.Histogram, *histogram.FloatHistogram, error) {
	if hp.IsFloat {
		st.fhists = st.fhists[:len(st.fhists)+1]
		fh := &st.fhists[len(st.fhists)-1]
		hp.FloatHistogram(fh)
		if err := fh.Validate(); err != nil {
			return nil, nil, err
		}
		fh.CustomValues = slices.Clone(fh.CustomValues)
		return nil, fh, nil
	}
	st.hists = st.hists[:len(st.hists)+1]
	h := &st.hists[len(st.hists)-1]
	hp.IntHistogram(h)
	if err := h.Validate(); err != nil {
		return nil, nil, err
	}
	h.CustomValues = slices.Clone(h.CustomValues)
	return h, nil, nil
}

// untakeHistogram gives back the arena slot of hp, the last histogram
// histogram returned, so that it is converted again.
func (st *writeState) untakeHistogram(hp *Histogram) {
	if hp.IsFloat {
		st.fhists = st.fhists[:len(st.fhists)-1]
	} else {
		st.hists = st.hists[:len(st.hists)-1]
	}
}

// invalidHistogram is the rejection of hp, a histogram of the series ls
// that histogram.Validate refused with err.
func invalidHistogram(ls []Label, hp *Histogram, err error) *Rejection {
	return reject(ReasonInvalidHistogram, ls, err, "native histogram at %s: %v", formatMillis(hp.Timestamp), err)
}

// exemplars returns es as Prometheus exemplars, sorted by timestamp as
// AppenderV2 requires, in memory of st's that stays untouched until the
// batch commits; nil when there are none. Those timestamped outside win
// (Prometheus' receiver refuses exemplars too far in the future) are left
// out, and counted.
func (st *writeState) exemplars(es []Exemplar, win Window) (_ []exemplar.Exemplar, outside int) {
	if len(es) == 0 {
		return nil, 0
	}
	start := len(st.ex)
	for _, e := range es {
		if e.Timestamp != 0 && (e.Timestamp > win.MaxT || e.Timestamp < win.MinT) {
			outside++
			continue
		}
		st.builder.Reset()
		for _, l := range e.Labels {
			st.builder.Add(strings.Clone(l.Name), strings.Clone(l.Value))
		}
		st.builder.Sort()
		st.ex = append(st.ex, exemplar.Exemplar{Labels: st.builder.Labels(), Value: e.Value, Ts: e.Timestamp, HasTs: e.Timestamp != 0})
	}
	if len(st.ex) == start {
		return nil, outside
	}
	out := st.ex[start:len(st.ex):len(st.ex)]
	slices.SortStableFunc(out, func(a, b exemplar.Exemplar) int { return cmp.Compare(a.Ts, b.Ts) })
	return out, outside
}

// asPartial returns err as a *promstorage.AppendPartialError: the sample
// appended, some of its exemplars refused.
func asPartial(err error) (*promstorage.AppendPartialError, bool) {
	if err == nil {
		return nil, false
	}
	return errors.AsType[*promstorage.AppendPartialError](err)
}

func rollback(app promstorage.AppenderV2) error {
	if err := app.Rollback(); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

// storeRejection turns an error of Append into a *Rejection when it is
// about the sample or series (a client error), and nil when the store
// itself failed.
func storeRejection(err error, ls []Label) *Rejection {
	reason := ReasonInvalidSample
	switch {
	case errors.Is(err, storage.ErrSeriesLimit):
		reason = ReasonSeriesLimit
	case errors.Is(err, storage.ErrTenantLabel):
		reason = ReasonTenantLabel
	case errors.Is(err, promstorage.ErrOutOfBounds), errors.Is(err, promstorage.ErrTooOldSample):
		reason = ReasonTooOld
	case errors.As(err, new(histogram.Error)):
		reason = ReasonInvalidHistogram
	case apierror.Classify(err).Kind != apierror.InvalidArgument:
		return nil
	}
	return reject(reason, ls, err, "%s", err.Error())
}

// buildLabels returns ls as labels.Labels, sorted as ls is. The result
// does not share memory with ls, whose strings point into the decoder's
// reused buffer. In the default (stringlabels) build it is written over
// *dst, reusing its memory from series to series: no allocation per series.
// That is safe because appenders copy the labels of the series they create
// and keep no reference to the labels of existing ones.
func buildLabels(b *labels.ScratchBuilder, ls []Label, dst *labels.Labels) labels.Labels {
	b.Reset()
	for _, l := range ls {
		if builderCopies {
			b.Add(l.Name, l.Value)
		} else {
			b.Add(strings.Clone(l.Name), strings.Clone(l.Value))
		}
	}
	if builderCopies {
		b.Overwrite(dst)
		return *dst
	}
	return b.Labels()
}

// asRejection returns err, from Validator, as a *Rejection.
func asRejection(err error) *Rejection {
	var rej *Rejection
	if errors.As(err, &rej) {
		return rej
	}
	return &Rejection{Reason: ReasonInvalidSample, Msg: err.Error(), Err: err}
}

// rejectCounts tallies the rejections of one request.
type rejectCounts struct {
	first    *Rejection
	series   int
	samples  int
	byReason []reasonCount
}

type reasonCount struct {
	reason Reason
	n      int
}

func (c *rejectCounts) reset() {
	*c = rejectCounts{byReason: c.byReason[:0]}
}

// add counts n samples rejected for rej.
func (c *rejectCounts) add(rej *Rejection, n int) {
	if c.first == nil {
		c.first = rej
	}
	c.samples += n
	for i := range c.byReason {
		if c.byReason[i].reason == rej.Reason {
			c.byReason[i].n += n
			return
		}
	}
	c.byReason = append(c.byReason, reasonCount{rej.Reason, n})
}
