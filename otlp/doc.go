// Package otlp is the OTLP/HTTP metrics receiver: POST /otlp/v1/metrics
// (also under /prometheus, and at Prometheus 3's /api/v1/otlp/v1/metrics),
// protobuf or JSON bodies, gzip or none, scope metrics:write.
//
// It translates as Prometheus 3.16 does, with Prometheus' own converter
// (storage/remote/otlptranslator/prometheusremotewrite) and the settings
// Prometheus builds from its otlp: block (Settings), set by the --otlp.*
// flags and per tenant in the limits file (tenancy.OTLPTranslation), so
// that a series is named and labelled in Luminate exactly as in
// Prometheus. The converter appends through an appender that applies
// remote write's rules (remotewrite.Validator and the Ingester's bounds,
// rate limits, counters and start-zero injection), so OTLP data obeys the
// limits remote write does.
//
// Every point kind is stored: sums (monotonic as counters, others as
// gauges), gauges, histograms (classic _bucket/_sum/_count series, or
// native histograms with custom buckets under
// --otlp.convert-histograms-to-nhcb), exponential histograms as native
// histograms (scaled down to schema 8), summaries; exemplars, metadata
// (type, unit, help) and start times (created timestamps) as remote
// write stores them.
//
// Delta temporality is refused. Prometheus 3.16 refuses it by default (its
// converter's AllowDeltaTemporality is off unless the experimental
// otlp-native-delta-ingestion feature stores the raw deltas, typed
// unknown, or otlp-deltatocumulative accumulates them in the memory of
// one process), and so does Mimir unless otel_native_delta_ingestion is
// set. Turning deltas into cumulative counters is exact only with every
// point of a series, in order, in one stateful place; a receiver behind a
// load balancer, restarted, or missing a request would store wrong totals
// without knowing it, and raw deltas break rate() and increase(). So the
// points of delta sums and histograms are refused, the rest of the
// request stored, with a partial_success whose message names the fix:
// OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=cumulative in the SDK,
// or the Collector's deltatocumulative processor. (The SDKs' delta
// preference leaves up-down counters and gauges cumulative: those pass.)
//
// Responses follow the OTLP/HTTP specification: 200 with an
// ExportMetricsServiceResponse in the request's encoding, whose
// partial_success counts the data points rejected (invalid labels, out of
// the time window, invalid histograms, delta) and gives the first reason
// each stage found, the valid points stored; otherwise a google.rpc.Status in the request's
// encoding (apierror.OTLPProtobuf, apierror.OTLPJSON): 400 for a body
// that does not decode, 401, 403, 413 for a body, its inflated size or its
// data points over the limits, 415 for other encodings, 429 and 503 with
// Retry-After when retrying later may succeed.
//
// Two guards Prometheus lacks: attribute values nested more than 32 deep
// are refused before pdata recurses into them (a few hundred kilobytes of
// gzip would otherwise overflow the stack), and target_info samples,
// which the converter writes every half lookback delta between a
// resource's earliest and latest points, are spaced wider for resources
// whose points span more than twice the lookback delta (points of 1970
// and today would otherwise make eleven million).
package otlp
