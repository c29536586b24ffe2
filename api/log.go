package api

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"

	"github.com/luminate-io/luminate/tenancy"
)

// Keys the log handler adds to records logged with a request's context.
const (
	logKeyRequestID = "request_id"
	logKeyTenant    = "tenant"
	logKeyTraceID   = "trace_id"
	logKeySpanID    = "span_id"
)

// NewLogHandler wraps h so that every record logged with a request's
// context (logger.InfoContext(r.Context(), ...) and the like, in any
// package) carries the request's request_id, its trace_id and span_id
// when the request came with a W3C traceparent or tracing is on (see
// Tracing), and, once authenticated, its tenant, unless the record already
// has them. cmd/luminate builds the
// process logger on it; NewRouter applies it to the logger it is given.
// Wrapping twice is harmless.
func NewLogHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(logHandler); ok {
		return h
	}
	return logHandler{h}
}

type logHandler struct{ next slog.Handler }

func (h logHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	id := RequestID(ctx)
	var tenant tenancy.ID
	if p, err := tenancy.FromContext(ctx); err == nil {
		tenant = p.Tenant
	}
	sc := trace.SpanContextFromContext(ctx)
	traced := sc.IsValid()
	if id == "" && tenant == "" && !traced {
		return h.next.Handle(ctx, r)
	}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case logKeyRequestID:
			id = ""
		case logKeyTenant:
			tenant = ""
		case logKeyTraceID:
			traced = false
		}
		return true
	})
	if id != "" || tenant != "" || traced {
		r = r.Clone()
		if id != "" {
			r.AddAttrs(slog.String(logKeyRequestID, id))
		}
		if traced {
			r.AddAttrs(slog.String(logKeyTraceID, sc.TraceID().String()), slog.String(logKeySpanID, sc.SpanID().String()))
		}
		if tenant != "" {
			r.AddAttrs(slog.String(logKeyTenant, tenant.String()))
		}
	}
	return h.next.Handle(ctx, r)
}

func (h logHandler) WithAttrs(as []slog.Attr) slog.Handler { return logHandler{h.next.WithAttrs(as)} }
func (h logHandler) WithGroup(name string) slog.Handler    { return logHandler{h.next.WithGroup(name)} }

// loggerFrom returns the router's logger, which the request context
// carries for the error renderers.
func loggerFrom(ctx context.Context) *slog.Logger {
	l, _ := ctx.Value(loggerKey{}).(*slog.Logger)
	return l
}
