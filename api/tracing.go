package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Tracing is the router's OpenTelemetry tracing. The W3C trace context of
// a request (traceparent, tracestate) is always read into its context, so
// that every line logged for the request carries the caller's trace_id
// and the context carries the trace to whatever the handlers call. Spans
// are recorded, one per request, and exported over OTLP/HTTP only when the
// standard OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) environment variable is set; the
// exporter reads the other OTEL_EXPORTER_OTLP_* variables (headers, TLS,
// compression, timeout), the SDK OTEL_TRACES_SAMPLER and
// OTEL_SERVICE_NAME/OTEL_RESOURCE_ATTRIBUTES. Otherwise there is no
// exporter and no span: only the propagation. A nil *Tracing propagates
// only, like one that is off.
//
// Safe for concurrent use.
type Tracing struct {
	provider *sdktrace.TracerProvider // nil when off
	tracer   trace.Tracer             // nil when off
}

// propagator reads and writes the W3C traceparent and tracestate headers.
var propagator propagation.TextMapPropagator = propagation.TraceContext{}

// NewTracing configures tracing from the environment (see Tracing);
// serviceVersion labels the exported spans. Shutdown flushes and stops
// the exporter.
func NewTracing(ctx context.Context, serviceVersion string, logger *slog.Logger) (*Tracing, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	endpoint := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if endpoint == "" {
		endpoint = os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	switch {
	case endpoint == "":
		return &Tracing{}, nil
	case strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true"):
		logger.Info("tracing disabled by OTEL_SDK_DISABLED=true")
		return &Tracing{}, nil
	case os.Getenv("OTEL_TRACES_EXPORTER") == "none":
		logger.Info("tracing disabled by OTEL_TRACES_EXPORTER=none")
		return &Tracing{}, nil
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := os.Getenv(name); p != "" && p != "http/protobuf" {
			return nil, fmt.Errorf("%s=%s: luminate exports traces over OTLP http/protobuf only", name, p)
		}
	}
	exporter, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName("luminate"), semconv.ServiceVersion(serviceVersion)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
		resource.WithTelemetrySDK(),
	)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("trace resource: %w", err), exporter.Shutdown(ctx))
	}
	provider := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	logger.Info("tracing: exporting spans over OTLP/HTTP", "endpoint", endpoint)
	return &Tracing{provider: provider, tracer: provider.Tracer("github.com/luminate-io/luminate/api")}, nil
}

// Enabled reports whether spans are recorded and exported.
func (t *Tracing) Enabled() bool { return t != nil && t.tracer != nil }

// TracerProvider returns the provider spans are exported through, for
// components that make their own spans; a no-op provider when off.
func (t *Tracing) TracerProvider() trace.TracerProvider {
	if !t.Enabled() {
		return noop.NewTracerProvider()
	}
	return t.provider
}

// Shutdown exports the spans not yet exported and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("shut down tracing: %w", err)
	}
	return nil
}

// withTraceContext puts the W3C trace context of the request, if any, in
// its context.
func withTraceContext(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("traceparent") == "" {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))))
	})
}

// span wraps the handler of route in a server span, child of the request's
// trace context, when tracing is on; next unchanged otherwise.
func (t *Tracing) span(route string, next http.Handler) http.Handler {
	if !t.Enabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := spanMethod(r.Method)
		ctx, span := t.tracer.Start(r.Context(), method+" "+route,
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				semconv.HTTPRequestMethodKey.String(method),
				semconv.HTTPRoute(route),
				semconv.URLPath(r.URL.Path),
				attribute.String("luminate.request_id", RequestID(r.Context())),
			))
		defer span.End()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// spanMethod bounds the method in span names and attributes.
func spanMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

// endSpan records the outcome of the request on its span (a no-op when the
// context holds no recording span): the status code, the tenant, and an
// error status for server errors.
func endSpan(ctx context.Context, status int, tenant string, err error) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	if tenant != "" {
		span.SetAttributes(attribute.String("luminate.tenant", tenant))
	}
	if status >= 500 {
		msg := http.StatusText(status)
		if err != nil {
			msg = err.Error()
		}
		span.SetStatus(codes.Error, msg)
	}
}
