package api_test

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/luminate-io/luminate/api"
)

// otlpReceiver is an OTLP/HTTP trace receiver on loopback: it keeps every
// span exported to it.
type otlpReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	rcv := &otlpReceiver{}
	rcv.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		var req coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(b, &req)
		}
		if r.URL.Path != "/v1/traces" || err != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		rcv.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				rcv.spans = append(rcv.spans, ss.Spans...)
			}
		}
		rcv.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(rcv.srv.Close)
	return rcv
}

func (r *otlpReceiver) received() []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*tracepb.Span(nil), r.spans...)
}

const (
	incomingTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	incomingSpan  = "00f067aa0ba902b7"
	traceparent   = "00-" + incomingTrace + "-" + incomingSpan + "-01"
)

// tracedEnv is a router with tracing configured from the environment the
// test set, a route that logs and reports the span it runs in, and the log
// lines written.
type tracedEnv struct {
	*env
	tracing  *api.Tracing
	handlers *syncBuffer
	inSpan   chan trace.SpanContext
}

func newTracedEnv(t *testing.T) *tracedEnv {
	t.Helper()
	tracing, err := api.NewTracing(context.Background(), "test", nil)
	require.NoError(t, err)
	te := &tracedEnv{tracing: tracing, handlers: &syncBuffer{}, inSpan: make(chan trace.SpanContext, 1)}
	handlerLogger := slog.New(api.NewLogHandler(slog.NewJSONHandler(te.handlers, nil)))
	te.env = newEnvWith(t, func(o *api.Options) { o.Tracing = tracing }, api.Route{
		Path: "/api/v1/traced", Methods: []string{http.MethodGet}, Public: true,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			handlerLogger.InfoContext(r.Context(), "in the handler")
			span := trace.SpanFromContext(r.Context())
			if span.IsRecording() {
				te.inSpan <- span.SpanContext()
			} else {
				te.inSpan <- trace.SpanContextFromContext(r.Context())
			}
			w.WriteHeader(http.StatusTeapot)
		}),
	})
	return te
}

// call sends a request to the traced route with a traceparent and returns
// the span context the handler saw and the handler's log line.
func (te *tracedEnv) call(t *testing.T) (trace.SpanContext, map[string]any) {
	t.Helper()
	resp, _ := te.do(t, http.MethodGet, "/api/v1/traced", "", http.Header{"Traceparent": {traceparent}})
	require.Equal(t, http.StatusTeapot, resp.StatusCode)
	sc := <-te.inSpan
	var line map[string]any
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(te.handlers.String())), &line))
	return sc, line
}

func TestTracingExportsSpans(t *testing.T) {
	rcv := newOTLPReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.srv.URL)
	te := newTracedEnv(t)
	require.True(t, te.tracing.Enabled())

	sc, line := te.call(t)
	require.Equal(t, incomingTrace, sc.TraceID().String(), "the span continues the caller's trace")
	require.NotEqual(t, incomingSpan, sc.SpanID().String(), "in a span of its own")
	require.Equal(t, incomingTrace, line["trace_id"], "handler logs carry the trace")
	require.Equal(t, sc.SpanID().String(), line["span_id"])
	require.NotEmpty(t, line["request_id"])

	require.NoError(t, te.tracing.Shutdown(context.Background())) // exports what is batched
	spans := rcv.received()
	require.Len(t, spans, 1)
	s := spans[0]
	require.Equal(t, incomingTrace, hex.EncodeToString(s.TraceId))
	require.Equal(t, incomingSpan, hex.EncodeToString(s.ParentSpanId))
	require.Equal(t, sc.SpanID().String(), hex.EncodeToString(s.SpanId))
	require.Equal(t, "GET /api/v1/traced", s.Name)
	require.Equal(t, tracepb.Span_SPAN_KIND_SERVER, s.Kind)
	attrs := map[string]any{}
	for _, kv := range s.Attributes {
		attrs[kv.Key] = kv.Value.GetStringValue()
		if i, ok := kv.Value.Value.(*commonpb.AnyValue_IntValue); ok {
			attrs[kv.Key] = i.IntValue
		}
	}
	require.Equal(t, "GET", attrs["http.request.method"])
	require.Equal(t, "/api/v1/traced", attrs["http.route"])
	require.Equal(t, "/api/v1/traced", attrs["url.path"])
	require.Equal(t, line["request_id"], attrs["luminate.request_id"])
	require.Equal(t, int64(http.StatusTeapot), attrs["http.response.status_code"])

	// The access log line of the router carries the trace too.
	var access map[string]any
	for _, l := range te.logs.lines(t) {
		if l["msg"] == "request" {
			access = l
		}
	}
	require.NotNil(t, access)
	require.Equal(t, incomingTrace, access["trace_id"])
}

func TestTracingOff(t *testing.T) {
	t.Run("no endpoint: propagation only", func(t *testing.T) {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
		t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
		te := newTracedEnv(t)
		require.False(t, te.tracing.Enabled())
		sc, line := te.call(t)
		require.Equal(t, incomingTrace, sc.TraceID().String(), "the caller's trace context is in the request context")
		require.Equal(t, incomingSpan, sc.SpanID().String(), "and no span of our own")
		require.True(t, sc.IsRemote())
		require.Equal(t, incomingTrace, line["trace_id"], "logs carry the caller's trace")
		require.Equal(t, incomingSpan, line["span_id"])
		require.NoError(t, te.tracing.Shutdown(context.Background()))
	})
	t.Run("OTEL_SDK_DISABLED: nothing exported", func(t *testing.T) {
		rcv := newOTLPReceiver(t)
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.srv.URL)
		t.Setenv("OTEL_SDK_DISABLED", "true")
		te := newTracedEnv(t)
		require.False(t, te.tracing.Enabled())
		te.call(t)
		require.NoError(t, te.tracing.Shutdown(context.Background()))
		require.Empty(t, rcv.received())
	})
	t.Run("no traceparent: no trace in logs", func(t *testing.T) {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
		te := newTracedEnv(t)
		resp, _ := te.do(t, http.MethodGet, "/api/v1/traced", "", nil)
		require.Equal(t, http.StatusTeapot, resp.StatusCode)
		require.False(t, (<-te.inSpan).IsValid())
		require.NotContains(t, te.handlers.String(), "trace_id")
		require.Contains(t, te.handlers.String(), "request_id")
	})
}

func TestTracingRefusesGRPC(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	_, err := api.NewTracing(context.Background(), "test", nil)
	require.ErrorContains(t, err, "http/protobuf only")
}
