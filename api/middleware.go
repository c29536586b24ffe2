package api

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/tenancy"
)

// RequestIDHeader carries the request ID in both directions.
const RequestIDHeader = "X-Request-ID"

// maxRequestIDLength bounds an incoming request ID; longer ones are replaced.
const maxRequestIDLength = 128

type (
	requestIDKey struct{}
	loggerKey    struct{}
	exchangeKey  struct{}
)

// exchange is what the middleware learns about a request while serving it,
// for the access log written when it ends. Only the request's own goroutine
// touches it.
type exchange struct {
	tenant tenancy.ID
	err    error
}

// RequestID returns the ID of the request ctx belongs to, or "" outside a
// request served by the router.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// withRequestID gives every request an ID, taken from X-Request-ID when the
// client sent a usable one and generated otherwise, echoes it in the
// response, and puts it and the router's logger in the request context.
func withRequestID(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID(id) {
			id = rand.Text()
		}
		w.Header().Set(RequestIDHeader, id)
		ctx := context.WithValue(r.Context(), requestIDKey{}, id)
		ctx = context.WithValue(ctx, loggerKey{}, logger)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// validRequestID accepts up to 128 printable ASCII characters without
// spaces, so an ID can neither break a log line nor grow without bound.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// httpMetrics are the router's own metrics.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight prometheus.Gauge
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "luminate_http_requests_total",
			Help: "HTTP requests served, by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "luminate_http_request_duration_seconds",
			Help:                            "Time to serve an HTTP request, by route and status code.",
			Buckets:                         []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"route", "code"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "luminate_http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
	}
	// A second router on reg (the internal listener's) counts into the
	// first one's metrics: one set of HTTP metrics per process.
	var err error
	if m.requests, err = registerShared(reg, m.requests); err != nil {
		return nil, err
	}
	if m.duration, err = registerShared(reg, m.duration); err != nil {
		return nil, err
	}
	if m.inflight, err = registerShared(reg, m.inflight); err != nil {
		return nil, err
	}
	return m, nil
}

// registerShared registers c on reg, or returns the collector of the same
// kind already registered there.
func registerShared[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	if err != nil {
		return c, fmt.Errorf("register HTTP metrics: %w", err)
	}
	return c, nil
}

// instrument counts and times every request to route and writes its access
// log line: at debug level when it succeeded, info for client errors, warn
// for server errors.
func (m *httpMetrics) instrument(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.inflight.Inc()
		rec := &responseRecorder{ResponseWriter: w}
		ex := &exchange{}
		r = r.WithContext(context.WithValue(r.Context(), exchangeKey{}, ex))
		defer func() {
			m.inflight.Dec()
			status := rec.status
			switch {
			case rec.aborted:
				// The handler panicked and the connection was aborted: the
				// client got no complete response, whatever was sent.
				status = http.StatusInternalServerError
			case status == 0:
				status = http.StatusOK // net/http sends 200 for an empty response
			}
			code := strconv.Itoa(status)
			elapsed := time.Since(start)
			endSpan(r.Context(), status, ex.tenant.String(), ex.err)
			m.requests.WithLabelValues(route, code).Inc()
			m.duration.WithLabelValues(route, code).Observe(elapsed.Seconds())

			level := slog.LevelDebug
			switch {
			case status >= 500:
				level = slog.LevelWarn
			case status >= 400:
				level = slog.LevelInfo
			}
			logger := loggerFrom(r.Context())
			if logger == nil || !logger.Enabled(r.Context(), level) {
				return
			}
			attrs := []slog.Attr{
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.String("route", route),
				slog.Int("status", status),
				slog.Int64("bytes", rec.bytes),
				slog.Duration("duration", elapsed),
				slog.String("remote", r.RemoteAddr),
			}
			if ex.tenant != "" {
				attrs = append(attrs, slog.String("tenant", ex.tenant.String()))
			}
			if ex.err != nil {
				attrs = append(attrs, slog.String("err", ex.err.Error()))
			}
			logger.LogAttrs(r.Context(), level, "request", attrs...)
		}()
		next.ServeHTTP(rec, r)
	})
}

// recoverPanics turns a panicking handler into a logged 500. When the
// handler had already started the response, the connection is aborted
// instead, so the client never takes a truncated body for a whole one.
func recoverPanics(render func(http.ResponseWriter, *http.Request, error), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler { //nolint:errorlint // net/http compares it the same way
				markAborted(w)
				panic(v)
			}
			if logger := loggerFrom(r.Context()); logger != nil {
				logger.ErrorContext(r.Context(), "panic serving request", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			}
			if rec, ok := w.(*responseRecorder); ok && rec.status != 0 {
				rec.aborted = true
				panic(http.ErrAbortHandler)
			}
			// The panic value stays in the log: renderers may show messages.
			fail(w, r, render, apierror.New(apierror.Internal, "internal error (panic); the server log has the details under request_id %s", RequestID(r.Context())))
		}()
		next.ServeHTTP(w, r)
	})
}

func markAborted(w http.ResponseWriter) {
	if rec, ok := w.(*responseRecorder); ok {
		rec.aborted = true
	}
}

// authenticate lets a request through only with a verified principal
// holding scope (if set) and admitted by limits (if set), and puts the
// principal in the request context. It logs the tenant, never the
// credentials.
func authenticate(auth Authenticator, scope tenancy.Scope, limits RequestLimiter, render func(http.ResponseWriter, *http.Request, error), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := auth.Authenticate(r)
		if err == nil && p.Tenant == "" {
			err = tenancy.ErrNoTenant
		}
		if err != nil {
			if apierror.Classify(err).Kind == apierror.Internal {
				err = apierror.Wrap(apierror.Unauthenticated, err, "authentication")
			}
			fail(w, r, render, err)
			return
		}
		ctx := r.Context()
		if ex, ok := ctx.Value(exchangeKey{}).(*exchange); ok {
			ex.tenant = p.Tenant
		}
		ctx = tenancy.NewContext(ctx, p)
		if scope != "" {
			if err := tenancy.RequireScope(p, scope); err != nil {
				fail(w, r.WithContext(ctx), render, err)
				return
			}
		}
		if limits != nil {
			if err := limits.AllowRequest(p.Tenant); err != nil {
				fail(w, r.WithContext(ctx), render, err)
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// fail answers a request with err, rendered by render (a route's
// renderError: apierror.Write in its format), and keeps err for the access
// log.
func fail(w http.ResponseWriter, r *http.Request, render func(http.ResponseWriter, *http.Request, error), err error) {
	if ex, ok := r.Context().Value(exchangeKey{}).(*exchange); ok {
		ex.err = err
	}
	render(w, r, err)
}

// responseRecorder remembers the status and size of a response. Unwrap lets
// http.ResponseController reach the connection's Flush, deadlines and so on.
type responseRecorder struct {
	http.ResponseWriter
	status  int
	bytes   int64
	aborted bool
}

func (w *responseRecorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush sends buffered data to the client, for streaming handlers that
// type-assert http.Flusher.
func (w *responseRecorder) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *responseRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
