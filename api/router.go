// Package api is Luminate's HTTP front door. It routes requests to the
// handlers other packages build (remote write, remote read, the native
// JSON API, the Prometheus HTTP API) and owns what every request shares:
// request IDs, request-aware logging, the access log, HTTP metrics, panic
// recovery, authentication, scopes, per-tenant request limits, query
// admission, the tenant's view of the store, the body read deadline, the
// rendering of results and errors (Route, Responder), the health
// endpoints and /metrics.
//
// What every tenant shares is the operator's, not a tenant's: /metrics
// (which names every tenant), the detailed health report (paths, free
// bytes, key and limits files) and the runtime profiles need a token with
// tenancy.ScopeOperator on the public router, and are served without one
// only by NewInternalRouter, for a listener that only the cluster reaches.
// Without a token the health endpoints say ok, degraded or down, and no
// more.
//
// Handlers log with logger.InfoContext(r.Context(), ...) (and the like) on a
// logger built on NewLogHandler; their lines then carry the request_id and
// tenant of the request like the router's own.
//
// It also serves the OpenAPI document of the native JSON API.
//
// It is not where protocols are decoded or data is stored: their routes
// are mounted by cmd/luminate through Options.Routes, and errors become
// status codes in apierror, not here.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// Authenticator verifies the credentials of a request. *tenancy.Verifier
// implements it. Implementations must be safe for concurrent use.
type Authenticator interface {
	// Authenticate returns the verified principal of r, or an error saying
	// why r is not authenticated. The error must not contain the token.
	Authenticate(r *http.Request) (tenancy.Principal, error)
}

// RequestLimiter admits one request of an authenticated tenant, or returns
// an error (a *tenancy.LimitError, 429 with Retry-After) when the tenant is
// over its request rate. *tenancy.Limits implements it.
type RequestLimiter interface {
	AllowRequest(id tenancy.ID) error
}

// Route mounts a handler on the router.
//
// A data route sets Serve: the router authenticates the request, checks
// Scope, admits it (the tenant's request rate; for a Query route also its
// query rate and a concurrent-query slot), opens the tenant's view of the
// store, calls Serve, and renders what it returns. Handlers never resolve
// the tenant, check a scope or write an error themselves.
type Route struct {
	// Path is a gorilla/mux path template, e.g. "/api/v1/write" or
	// "/api/v1/label/{name}/values".
	Path string
	// Prefix mounts the route on every path that starts with Path (for a
	// whole API mounted under, say, "/prometheus/api/v1/"). The handler
	// sees the full path; wrap it in http.StripPrefix if it needs less.
	Prefix bool
	// Methods the route accepts; empty accepts every method.
	Methods []string
	// Name labels the route in metrics and the access log; it defaults to
	// Path. Keep it bounded: never derive it from request data.
	Name string
	// Public routes skip authentication; only Handler routes may be
	// public.
	Public bool
	// Scope, when set on a non-public route, is required of the principal
	// (403 otherwise). Admin implies every scope.
	Scope tenancy.Scope
	// Format is the wire format of every error the route answers, the
	// router's refusals (authentication, scope, limits, panics) and its
	// handler's errors alike.
	Format apierror.Format
	// FormatOf, if set, picks the format per request, for a path two APIs
	// share (/api/v1/query: native JSON queries and Prometheus' form).
	FormatOf func(*http.Request) apierror.Format
	// Query routes are admitted as queries: the tenant's query rate, then
	// a slot of its concurrent queries, held until the response is
	// written.
	Query bool
	// ReadBody, when > 0, has the router read the whole body (at most
	// ReadBody bytes; more is a 413 naming ReadBodySetting) before it
	// takes a query slot, so that a slow upload holds none. Serve reads
	// the buffered body from r.Body as usual.
	ReadBody        int64
	ReadBodySetting tenancy.Setting
	// ReadBodyTimeout, if set, is how long a ReadBody route's client has
	// to send the whole body (in place of Options.BodyReadTimeout: it must
	// not be longer); slower is a 400 naming ReadBodyTimeoutSetting.
	ReadBodyTimeout        time.Duration
	ReadBodyTimeoutSetting tenancy.Setting
	// Headers, if set, adds the headers every response of the route
	// carries (CORS), before anything else runs.
	Headers func(http.ResponseWriter, *http.Request)
	// Serve serves a data route for the request's tenant. What it returns
	// is rendered by the router: nil is 204 No Content; a Responder writes
	// itself; any other value is JSON, the value itself in the Native
	// format and {"status":"success","data":value} in the Prometheus one.
	// Return an untyped nil, never a nil pointer, for no content.
	Serve func(*http.Request, storage.Tenant) (any, error)
	// Handler serves a route that holds no tenant data: the built-in
	// endpoints (health, /metrics, profiles, the landing page) and
	// documents such as the OpenAPI file. A route sets exactly one of
	// Serve and Handler.
	Handler http.Handler
}

// Responder is a result that writes its own response: a stream, a
// protobuf body, a protocol's headers and status. The router calls Respond
// once, after Serve returned, still holding the request's query slot. An
// error Respond returns before it wrote anything is rendered like Serve's;
// after that it is logged and the connection aborted, so that a client
// never takes a truncated body for a whole one.
type Responder interface {
	Respond(w http.ResponseWriter, r *http.Request) error
}

// QueryAdmitter admits the queries of a tenant: its query rate, then its
// concurrent queries. *tenancy.Limits implements it.
type QueryAdmitter interface {
	AllowQuery(id tenancy.ID) error
	AcquireQuery(ctx context.Context, id tenancy.ID) (release func(), err error)
}

// TenantOpener opens a tenant's view of the store.
// storage.MetricsStore implements it.
type TenantOpener interface {
	ForTenant(id tenancy.ID) storage.TenantStore
}

// Options are the parts the router is assembled from.
type Options struct {
	// Auth authenticates every non-public route. Required.
	Auth Authenticator
	// Limits, if set, is asked to admit every authenticated request before
	// its handler runs, so an over-limit tenant is refused before its body
	// is read.
	Limits RequestLimiter
	// Queries, if set, admits the requests of Query routes.
	Queries QueryAdmitter
	// Tenants opens the tenant view handed to Serve. Required when a route
	// sets Serve.
	Tenants TenantOpener
	// Storage answers /-/ready and the storage part of
	// /api/v1/status/health. Required.
	Storage StorageChecker
	// Keys and LimitsFile, if set, are reported by /api/v1/status/health.
	Keys       KeyReporter
	LimitsFile LimitsReporter
	// Tracing reads the W3C trace context of every request and, when on,
	// records a span per request. nil propagates only.
	Tracing *Tracing
	// Gatherer is exposed at /metrics: Luminate's own registry, never the
	// default one. Required.
	Gatherer prometheus.Gatherer
	// Routes are the data routes, mounted in order after the built-in
	// ones (/-/healthy, /-/ready, /healthz, /readyz,
	// /api/v1/status/health, /metrics, PprofPath with Pprof, and on
	// NewRouter's the landing page at /, which lists those of Routes it
	// knows).
	Routes []Route
	// ReadyTimeout bounds one readiness or health check; 0 means 5s.
	ReadyTimeout time.Duration

	// Pprof mounts the Go runtime's profiles at PprofPath, for operator
	// tokens (and without a token on the internal router).
	Pprof bool
	// BodyReadTimeout bounds reading a request's body, from the moment its
	// handler starts (see ReadTimeoutFlag); 0 sets no deadline.
	BodyReadTimeout time.Duration
	// MaxBodyBytesInFlight bounds the bytes of the data routes' request
	// bodies read and not yet answered, all requests together, one tenant
	// to half of it (bodies.go, BodyBudgetFlag); 0 sets no bound.
	MaxBodyBytesInFlight int64

	// Usage, if set, serves UsagePath (usage.go): to operator tokens, and
	// without a token on the internal router.
	Usage http.Handler
}

// Route names of the built-in routes, as they appear in metrics.
const (
	routeNotFound         = "notfound"
	routeMethodNotAllowed = "method_not_allowed"
)

// NewRouter returns the handler serving every Luminate HTTP endpoint. It
// registers the HTTP metrics on reg and logs through logger.
func NewRouter(opts Options, logger *slog.Logger, reg prometheus.Registerer) (http.Handler, error) {
	if opts.Auth == nil {
		return nil, errors.New("api: Options.Auth is required")
	}
	return newRouter(opts, logger, reg, false)
}

// NewInternalRouter returns the handler of the internal listener: the
// built-in endpoints only (health, readiness, /metrics, the detailed
// health report and, with Options.Pprof, the profiles), every one without
// authentication. Serve it only where tenants cannot reach it (a port
// that a Kubernetes NetworkPolicy opens to Prometheus alone, or
// loopback). Options.Auth, Limits and Routes are not used. It shares the
// HTTP metrics NewRouter registered on reg, if it did.
func NewInternalRouter(opts Options, logger *slog.Logger, reg prometheus.Registerer) (http.Handler, error) {
	opts.Auth, opts.Limits, opts.Routes = nil, nil, nil
	return newRouter(opts, logger, reg, true)
}

func newRouter(opts Options, logger *slog.Logger, reg prometheus.Registerer, internal bool) (http.Handler, error) {
	switch {
	case opts.Storage == nil:
		return nil, errors.New("api: Options.Storage is required")
	case opts.Gatherer == nil:
		return nil, errors.New("api: Options.Gatherer is required")
	}
	logger = slog.New(NewLogHandler(logger.Handler()))
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 5 * time.Second
	}
	m, err := newHTTPMetrics(reg)
	if err != nil {
		return nil, err
	}

	ready := readyHandler(opts.Storage, opts.ReadyTimeout)
	health := healthChecker{store: opts.Storage, keys: opts.Keys, limits: opts.LimitsFile, timeout: opts.ReadyTimeout, auth: opts.Auth}
	get := []string{http.MethodGet}
	builtin := []Route{
		{Path: "/-/healthy", Methods: []string{http.MethodGet, http.MethodHead}, Public: true, Handler: http.HandlerFunc(healthyHandler)},
		{Path: "/healthz", Methods: []string{http.MethodGet, http.MethodHead}, Public: true, Handler: http.HandlerFunc(healthyHandler)},
		{Path: "/-/ready", Methods: []string{http.MethodGet, http.MethodHead}, Public: true, Handler: ready},
		{Path: "/readyz", Methods: []string{http.MethodGet, http.MethodHead}, Public: true, Handler: ready},
		// Public: anyone learns ok, degraded or down; operators (or the
		// internal listener) the components and their messages.
		{Path: "/api/v1/status/health", Methods: get, Public: true, Handler: health},
		{Path: "/metrics", Methods: get, Scope: tenancy.ScopeOperator, Handler: promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelError),
			ErrorHandling:     promhttp.ContinueOnError,
			Registry:          reg,
			EnableOpenMetrics: true,
		})},
	}
	if opts.Usage != nil {
		builtin = append(builtin, Route{Path: UsagePath, Methods: get, Scope: tenancy.ScopeOperator, Handler: opts.Usage})
	}
	if opts.Pprof {
		builtin = append(builtin, Route{Path: PprofPath, Prefix: true, Methods: get, Name: PprofPath, Scope: tenancy.ScopeOperator, Handler: PprofHandler()})
	}
	if internal {
		for i := range builtin {
			builtin[i].Public = true
		}
	}

	if !internal {
		// GET / is the landing page for whoever opens the address in a browser.
		mounted := map[string]bool{}
		for _, rt := range append(builtin, opts.Routes...) {
			mounted[rt.Path] = true
		}
		landing, err := landingHandler(mounted)
		if err != nil {
			return nil, err
		}
		builtin = append(builtin, Route{Path: "/", Methods: []string{http.MethodGet, http.MethodHead}, Public: true, Handler: landing})
	}

	bodies := newBodyBudget(opts.MaxBodyBytesInFlight)
	r := mux.NewRouter()
	seen := map[string]bool{}
	for _, rt := range append(builtin, opts.Routes...) {
		if rt.Path == "" || (rt.Handler == nil) == (rt.Serve == nil) {
			return nil, fmt.Errorf("api: route %q needs a path and one of Serve and Handler", rt.Path)
		}
		if rt.Serve != nil && (rt.Public || opts.Tenants == nil) {
			return nil, fmt.Errorf("api: route %q serves tenant data: it cannot be public and needs Options.Tenants", rt.Path)
		}
		key := fmt.Sprint(rt.Prefix, rt.Path, rt.Methods)
		if seen[key] {
			return nil, fmt.Errorf("api: route %s %v mounted twice", rt.Path, rt.Methods)
		}
		seen[key] = true
		name := rt.Name
		if name == "" {
			name = rt.Path
		}
		render := rt.renderError
		h := rt.Handler
		if rt.Serve != nil {
			h = serveTenant(rt, opts.Queries, opts.Tenants, bodies, render)
		}
		if !rt.Public {
			h = authenticate(opts.Auth, rt.Scope, opts.Limits, render, h)
		}
		h = opts.Tracing.span(name, m.instrument(name, recoverPanics(render, h)))
		if rt.Headers != nil {
			h = withHeaders(rt.Headers, h)
		}
		var route *mux.Route
		if rt.Prefix {
			route = r.PathPrefix(rt.Path).Handler(h)
		} else {
			route = r.Handle(rt.Path, h)
		}
		if len(rt.Methods) > 0 {
			route.Methods(rt.Methods...)
		}
	}
	r.NotFoundHandler = m.instrument(routeNotFound, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		nativeError(w, req, apierror.New(apierror.NotFound, "no endpoint %s %s", req.Method, req.URL.Path))
	}))
	r.MethodNotAllowedHandler = m.instrument(routeMethodNotAllowed, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		nativeError(w, req, apierror.New(apierror.MethodNotAllowed, "method %s not allowed on %s", req.Method, req.URL.Path))
	}))
	return withBodyDeadline(opts.BodyReadTimeout, withRequestID(logger, withTraceContext(r))), nil
}
