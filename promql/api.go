// Package promql serves the Prometheus HTTP API (/api/v1/query,
// query_range, series, labels, label values, metadata, query_exemplars,
// status/buildinfo, status/tsdb, format_query, parse_query) over Luminate's
// storage, with the PromQL engine of Prometheus.
//
// Every request is answered from the storage view of the verified tenant in
// its context (storage.MetricsStore.ForTenant), built per request, so no
// endpoint can forget the tenant filter; the _tenant_id label never appears
// in a response. Responses are byte-compatible with Prometheus' web/api/v1:
// the same JSON shapes, parameter parsing, warnings and infos, errorType
// values; status codes come from apierror. Query limits (timeout, max
// samples, max series, per-tenant rate and concurrency) are enforced here
// and name the setting that raises them.
//
// It is not where requests are authenticated (api middleware does that and
// puts the tenancy.Principal in the context), nor the native JSON query API,
// nor remote read (package remoteread).
package promql

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"

	jsoniter "github.com/json-iterator/go"
	"github.com/prometheus/client_golang/prometheus"
	pql "github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// BuildInfo is what /api/v1/status/buildinfo reports, in Prometheus' shape.
type BuildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	Branch    string `json:"branch"`
	BuildUser string `json:"buildUser"`
	BuildDate string `json:"buildDate"`
	GoVersion string `json:"goVersion"`
}

// PrometheusVersion is the Prometheus release whose HTTP API and PromQL this
// package serves (module v0.316.0). Grafana enables features by the version
// in buildinfo, so it is the default version reported there.
const PrometheusVersion = "3.16.0"

// maxFormBytes bounds the body of a form POST.
const maxFormBytes = 4 << 20

// API serves the Prometheus HTTP API. It is safe for concurrent use.
type API struct {
	cfg       Config
	store     storage.MetricsStore
	limits    Limits
	logger    *slog.Logger
	engine    *pql.Engine
	newEngine func(maxSamples int) *pql.Engine
	// tenantEngines run the queries of tenants whose max_samples_per_query
	// is below --query.max-samples, one engine per such limit (an engine's
	// MaxSamples is fixed when it is built).
	tenantEnginesMu sync.Mutex
	tenantEngines   map[int]*pql.Engine
	parser          parser.Parser
	cors            *regexp.Regexp
	json            jsoniter.API
	buildInfo       BuildInfo
	gzip            sync.Pool // of *gzip.Writer

	m *metrics
}

type metrics struct {
	queries *prometheus.CounterVec
}

// New returns the API over store, with one PromQL engine shared by every
// tenant. limits may be nil (no per-tenant limits). It registers the
// engine's metrics (prometheus_engine_*) and its own on reg.
func New(cfg Config, store storage.MetricsStore, limits Limits, logger *slog.Logger, reg prometheus.Registerer) (*API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil {
		return nil, errors.New("promql: a store is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cors, _ := compileCORS(cfg.CORSOrigin) // checked by Validate
	p := &boundedParser{
		Parser: parser.NewParser(parser.Options{
			EnableExperimentalFunctions: cfg.ExperimentalFunctions,
			EnableBinopFillModifiers:    cfg.FillModifiers,
			EnableUnquotedUTF8Names:     cfg.UnquotedUTF8Names,
		}),
		maxLength: cfg.MaxQueryLength, maxDepth: cfg.MaxQueryDepth, maxTerms: cfg.MaxQueryTerms, maxSelectors: cfg.MaxMatchSelectors,
	}
	subqueryStep := cfg.SubqueryStep.Milliseconds()
	engineOpts := func(maxSamples int, reg prometheus.Registerer) pql.EngineOpts {
		return pql.EngineOpts{
			Logger:                   logger.With("component", "promql-engine"),
			Reg:                      reg,
			MaxSamples:               maxSamples,
			Timeout:                  cfg.Timeout,
			LookbackDelta:            cfg.LookbackDelta,
			NoStepSubqueryIntervalFn: func(int64) int64 { return subqueryStep },
			EnableAtModifier:         true,
			EnableNegativeOffset:     true,
			EnablePerStepStats:       true,
			EnableDelayedNameRemoval: cfg.DelayedNameRemoval,
			// No query-cost budget (EnableQueryCost): it checks the context
			// twice per sample read, a quarter of the CPU of a dashboard
			// range query here. Per-tenant samples limits get engines of
			// their own instead (engineFor).
			Parser: p,
		}
	}
	engine := pql.NewEngine(engineOpts(cfg.MaxSamples, reg))
	a := &API{
		cfg:    cfg,
		store:  store,
		limits: limits,
		logger: logger,
		engine: engine,
		newEngine: func(maxSamples int) *pql.Engine {
			return pql.NewEngine(engineOpts(maxSamples, nil)) // metrics stay on the main engine
		},
		tenantEngines: map[int]*pql.Engine{},
		parser:        p,
		cors:          cors,
		json:          jsonConfig(),
		buildInfo:     defaultBuildInfo(),
		m: &metrics{
			queries: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "luminate_promql_requests_total",
				Help: "Prometheus HTTP API requests, by endpoint and errorType (empty on success).",
			}, []string{"endpoint", "error_type"}),
		},
	}
	if reg != nil {
		if err := reg.Register(a.m.queries); err != nil {
			return nil, fmt.Errorf("register promql metrics: %w", err)
		}
	}
	return a, nil
}

// jsonConfig is the encoder of every response: the standard library's
// behaviour, as Prometheus' jsoniter.ConfigCompatibleWithStandardLibrary.
func jsonConfig() jsoniter.API {
	return jsoniter.Config{
		EscapeHTML:             true,
		SortMapKeys:            true,
		ValidateJsonRawMessage: true,
	}.Froze()
}

func defaultBuildInfo() BuildInfo {
	bi := BuildInfo{Version: PrometheusVersion, GoVersion: runtime.Version()}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				bi.Revision = s.Value
			case "vcs.time":
				bi.BuildDate = s.Value
			}
		}
	}
	return bi
}

// SetBuildInfo replaces what /api/v1/status/buildinfo reports; empty
// fields keep their defaults. Call it before serving.
func (a *API) SetBuildInfo(bi BuildInfo) {
	d := a.buildInfo
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&d.Version, bi.Version}, {&d.Revision, bi.Revision}, {&d.Branch, bi.Branch},
		{&d.BuildUser, bi.BuildUser}, {&d.BuildDate, bi.BuildDate}, {&d.GoVersion, bi.GoVersion},
	} {
		if f.src != "" {
			*f.dst = f.src
		}
	}
	a.buildInfo = d
}

// Close releases the engine.
func (a *API) Close() error {
	a.tenantEnginesMu.Lock()
	defer a.tenantEnginesMu.Unlock()
	errs := []error{a.engine.Close()}
	for _, e := range a.tenantEngines {
		errs = append(errs, e.Close())
	}
	return errors.Join(errs...)
}

// engineFor returns the engine for a query of tenant id: the shared one, or
// one whose MaxSamples is the tenant's lower max_samples_per_query.
func (a *API) engineFor(id tenancy.ID) *pql.Engine {
	if a.limits == nil {
		return a.engine
	}
	n := a.limits.MaxSamplesPerQuery(id)
	if n <= 0 || n >= a.cfg.MaxSamples {
		return a.engine
	}
	a.tenantEnginesMu.Lock()
	defer a.tenantEnginesMu.Unlock()
	e := a.tenantEngines[n]
	if e == nil {
		e = a.newEngine(n)
		a.tenantEngines[n] = e
	}
	return e
}

// endpoint kinds decide what the wrapper does before the endpoint runs.
type kind int

const (
	static  kind = iota // no storage access (buildinfo, format_query, ...)
	indexed             // reads the tenant's index or cardinality
	query               // runs PromQL; counts against query rate and concurrency
)

// route is one endpoint of the API.
type route struct {
	methods []string
	path    string // relative to a prefix
	kind    kind
	fn      apiFunc
}

// prefixes are the paths the API is served under: Prometheus' own, and
// the one for tools pointed at a /prometheus prefix.
func prefixes() []string { return []string{"/api/v1", "/prometheus/api/v1"} }

func (a *API) routes() []route {
	getPost := []string{http.MethodGet, http.MethodPost}
	get := []string{http.MethodGet}
	return []route{
		{getPost, "/query", query, a.query},
		{getPost, "/query_range", query, a.queryRange},
		{getPost, "/query_exemplars", indexed, a.queryExemplars},
		{getPost, "/format_query", static, a.formatQuery},
		{getPost, "/parse_query", static, a.parseQuery},
		{getPost, "/labels", indexed, a.labelNames},
		{get, "/label/{name}/values", indexed, a.labelValues},
		{getPost, "/series", indexed, a.series},
		{get, "/metadata", indexed, a.metadata},
		{get, "/status/buildinfo", static, a.serveBuildInfo},
		{get, "/status/tsdb", indexed, a.serveTSDBStatus},
	}
}

// Endpoint is a path Handler serves and its methods, for routers that
// mount paths one by one rather than a prefix. Path is a full path
// template such as "/api/v1/label/{name}/values".
type Endpoint struct {
	Methods []string
	Path    string
}

// Endpoints lists every path Handler serves, under both prefixes.
func (a *API) Endpoints() []Endpoint {
	var out []Endpoint
	for _, prefix := range prefixes() {
		for _, rt := range a.routes() {
			out = append(out, Endpoint{Methods: rt.methods, Path: prefix + rt.path})
		}
	}
	return out
}

// Handler returns the handler serving every endpoint under /api/v1 (the
// paths of Prometheus) and under /prometheus/api/v1. It dispatches on the
// full path, so it can be mounted on a prefix or on each of Endpoints.
// The router must authenticate first: every endpoint needs a
// tenancy.Principal with scope metrics:read in the request context.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, prefix := range prefixes() {
		for _, rt := range a.routes() {
			h := a.wrap(rt.path, rt.kind, rt.fn)
			for _, m := range rt.methods {
				mux.Handle(m+" "+prefix+rt.path, h)
			}
		}
		mux.Handle(prefix+"/", a.fallback(mux, prefix+"/"))
	}
	return mux
}

// fallback answers what no endpoint does: OPTIONS (CORS preflight) with
// 204, a known path with another method with 405, anything else with 404.
func (a *API) fallback(mux *http.ServeMux, pattern string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.setCORS(w, r)
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, p := mux.Handler(probe); p != pattern {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(append(allow, http.MethodOptions), ", "))
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
			return
		}
		a.respondError(w, r, "notfound", apierror.New(apierror.NotFound, "no endpoint %s %s", r.Method, r.URL.Path))
	})
}

// result is what an endpoint returns on success.
type result struct {
	data     any
	warnings annotations.Annotations
	// finalize, if set, runs after the response is written (it releases
	// memory the data points to, such as a query's result).
	finalize func()
}

// apiFunc is the logic of one endpoint. It reads the request's form (parsed
// by the wrapper) and, unless its kind is static, the tenant's view in rc.
type apiFunc func(r *http.Request, rc *requestContext) (result, error)

// requestContext is what the wrapper resolved for an endpoint.
type requestContext struct {
	principal tenancy.Principal
	store     storage.TenantStore
}

// wrap turns an endpoint into a handler: it checks the principal and its
// scope, applies the tenant's query limits, parses the form, runs the
// endpoint, and writes its result or error in Prometheus' envelope.
func (a *API) wrap(name string, k kind, f apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.setCORS(w, r)
		res, err := a.serve(w, r, k, f)
		if res.finalize != nil {
			defer res.finalize()
		}
		if err != nil {
			a.respondError(w, r, name, err)
			return
		}
		a.m.queries.WithLabelValues(name, "").Inc()
		if res.data == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		a.respond(w, r, res.data, res.warnings)
	})
}

func (a *API) serve(w http.ResponseWriter, r *http.Request, k kind, f apiFunc) (result, error) {
	p, err := tenancy.FromContext(r.Context())
	if err != nil {
		return result{}, err
	}
	if err := tenancy.RequireScope(p, tenancy.ScopeRead); err != nil {
		return result{}, err
	}
	if k == query && a.limits != nil {
		if err := a.limits.AllowQuery(p.Tenant); err != nil {
			return result{}, err
		}
		release, err := a.limits.AcquireQuery(r.Context(), p.Tenant)
		if err != nil {
			return result{}, err
		}
		defer release()
	}
	if r.Body != nil && r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	}
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return result{}, apierror.New(apierror.TooLarge, "request body larger than %d bytes", maxFormBytes)
		}
		return result{}, badData(fmt.Errorf("error parsing form values: %w", err))
	}
	rc := &requestContext{principal: p}
	if k != static {
		rc.store = a.store.ForTenant(p.Tenant)
	}
	if k == indexed {
		// Queries get --query.timeout from the engine; index reads here.
		ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
		defer cancel()
		r = r.WithContext(ctx)
	}
	return f(r, rc)
}

// setCORS allows browsers from a permitted origin to read the response,
// as Prometheus does.
func (a *API) setCORS(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" || a.cors == nil || !a.cors.MatchString(origin) {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Headers", "Accept, Authorization, Content-Type, Origin")
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	h.Set("Access-Control-Expose-Headers", "Date")
	h.Set("Vary", "Origin")
	h.Set("Access-Control-Allow-Origin", origin)
}

// respond writes data in the success envelope:
//
//	{"status":"success","data":...,"warnings":[...],"infos":[...]}
func (a *API) respond(w http.ResponseWriter, r *http.Request, data any, warnings annotations.Annotations) {
	warn, info := warnings.AsStrings(r.FormValue("query"), 10, 10)
	s := a.json.BorrowStream(nil)
	defer a.json.ReturnStream(s)
	s.WriteObjectStart()
	s.WriteObjectField("status")
	s.WriteString("success")
	s.WriteMore()
	s.WriteObjectField("data")
	writeData(s, data)
	if len(warn) > 0 {
		s.WriteMore()
		s.WriteObjectField("warnings")
		s.WriteVal(warn)
	}
	if len(info) > 0 {
		s.WriteMore()
		s.WriteObjectField("infos")
		s.WriteVal(info)
	}
	s.WriteObjectEnd()
	if s.Error != nil {
		a.logger.Error("encode response", "path", r.URL.Path, "err", s.Error)
		a.respondError(w, r, "encode", fmt.Errorf("encode response: %w", s.Error))
		return
	}
	a.writeBody(w, r, http.StatusOK, s.Buffer())
}

// errorBody is Prometheus' error envelope.
type errorBody struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
}

// respondError writes err in Prometheus' error envelope, with the status,
// errorType and Retry-After of apierror.Classify.
func (a *API) respondError(w http.ResponseWriter, r *http.Request, name string, err error) {
	info := apierror.Classify(err)
	if info.Kind == apierror.Internal {
		a.logger.Error("query API internal error", "path", r.URL.Path, "err", err)
	}
	a.m.queries.WithLabelValues(name, info.Kind.PromType()).Inc()
	a.writeError(w, r, info, err)
}

// WriteError writes err in Prometheus' error envelope, for the requests the
// router refuses before they reach the API (authentication, scope, request
// limits, panics): its Route.WriteError on the API's routes, so that
// Grafana and promtool read those errors as they read the API's own.
func (a *API) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	a.writeError(w, r, apierror.Classify(err), err)
}

func (a *API) writeError(w http.ResponseWriter, r *http.Request, info apierror.Info, err error) {
	b, merr := a.json.Marshal(errorBody{Status: "error", ErrorType: info.Kind.PromType(), Error: err.Error()})
	if merr != nil {
		http.Error(w, merr.Error(), http.StatusInternalServerError)
		return
	}
	apierror.SetRetryAfter(w, info)
	a.writeBody(w, r, info.Status, b)
}

// statsParamWarning warns about stats values Prometheus deprecates.
func statsParamWarning(s string) error {
	switch s {
	case "", "true", "all":
		return nil
	}
	return fmt.Errorf("value %q for parameter \"stats\" is deprecated and will be rejected in the next major release, use %q or %q", s, "true", "all")
}
