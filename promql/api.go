// Package promql serves the Prometheus HTTP API (/api/v1/query,
// query_range, series, labels, label values, metadata, query_exemplars,
// status/buildinfo, status/tsdb, format_query, parse_query) over Luminate's
// storage, with the PromQL engine of Prometheus.
//
// Every endpoint is a route of the api router (Routes), which resolves the
// verified tenant, opens its storage view and admits queries; an endpoint
// reads only that view, so none can forget the tenant filter, and the
// _tenant_id label never appears in a response. Responses are
// byte-compatible with Prometheus' web/api/v1: the same JSON shapes,
// parameter parsing, warnings and infos; errors are returned, and the
// router renders them in Prometheus' envelope with the status and
// errorType of apierror. The query limits (timeout, max samples, max
// series, query texts) are enforced here and name the setting that raises
// them.
//
// It is not where requests are authenticated or admitted (the api router),
// nor the native JSON query API, nor remote read (package remoteread).
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
			UseStartTimestamps:       cfg.StartTimestamps,
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
	return a.engineWith(a.samplesLimit(id))
}

// engineWith returns the engine whose MaxSamples is n.
func (a *API) engineWith(n int) *pql.Engine {
	if n == a.cfg.MaxSamples {
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

// endpoint kinds decide what runs before the endpoint.
type kind int

const (
	static     kind = iota // no storage access (buildinfo, format_query, ...)
	indexed                // reads the tenant's index, under --query.timeout
	statistics             // reads series statistics (status/tsdb, cardinality): under --query.timeout and admitted as a query, as one may cost seconds on ClickHouse
	query                  // runs PromQL; admitted by the router as a query
)

// route is one endpoint of the API.
type route struct {
	methods []string
	path    string // relative to a prefix
	kind    kind
	fn      apiFunc
}

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
		{get, "/status/tsdb", statistics, a.serveTSDBStatus},
		// Mimir's cardinality API (cardinality.go).
		{getPost, "/cardinality/label_names", statistics, a.cardinalityLabelNames},
		{getPost, "/cardinality/label_values", statistics, a.cardinalityLabelValues},
		{getPost, "/cardinality/active_series", statistics, a.cardinalityActiveSeries},
	}
}

// Endpoint is one endpoint of the API, for the router to mount: it needs
// scope metrics:read, answers errors in Prometheus' envelope, and is
// admitted as a query when Query is set.
type Endpoint struct {
	Methods []string
	// Path is a full path template such as "/api/v1/label/{name}/values"
	// (the router sets the request's path values); Name is the same.
	Path, Name string
	Query      bool
	// Headers sets the CORS headers of --query.cors-origin.
	Headers func(http.ResponseWriter, *http.Request)
	// Serve answers a request of the tenant: a Responder writing
	// Prometheus' success envelope, nil for 204, or an error.
	Serve func(*http.Request, storage.Tenant) (any, error)
}

// Routes lists every endpoint, under /api/v1 (the paths of Prometheus)
// and under /prometheus/api/v1.
func (a *API) Routes() []Endpoint {
	var out []Endpoint
	for _, prefix := range []string{"/api/v1", "/prometheus/api/v1"} {
		for _, rt := range a.routes() {
			out = append(out, Endpoint{Methods: rt.methods, Path: prefix + rt.path, Name: prefix + rt.path,
				Query: rt.kind == query || rt.kind == statistics, Headers: a.setCORS, Serve: a.serve(rt)})
		}
	}
	return out
}

// result is what an endpoint returns on success.
type result struct {
	data     any
	warnings annotations.Annotations
	// finalize, if set, runs after the response is written (it releases
	// memory the data points to, such as a query's result).
	finalize func()
}

// apiFunc is the logic of one endpoint. It reads the request's form
// (parsed by serve) and, unless its kind is static, the tenant's view.
type apiFunc func(r *http.Request, t storage.Tenant) (result, error)

// serve parses the form of a request, runs the endpoint and counts its
// outcome; its result is a Responder.
func (a *API) serve(rt route) func(*http.Request, storage.Tenant) (any, error) {
	return func(r *http.Request, t storage.Tenant) (any, error) {
		res, err := a.run(r, t, rt)
		errorType := ""
		if err != nil {
			errorType = apierror.Classify(err).Kind.PromType()
		}
		a.m.queries.WithLabelValues(rt.path, errorType).Inc()
		switch {
		case err != nil:
			return nil, err
		case res.data == nil:
			return nil, nil
		}
		if p, ok := res.data.(plainJSON); ok {
			return p, nil // a body without the envelope (cardinality.go)
		}
		return &response{a: a, result: res}, nil
	}
}

func (a *API) run(r *http.Request, t storage.Tenant, rt route) (result, error) {
	if r.Body != nil && r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(nil, r.Body, maxFormBytes)
	}
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return result{}, apierror.New(apierror.TooLarge, "request body larger than %d bytes", maxFormBytes)
		}
		return result{}, badData(fmt.Errorf("error parsing form values: %w", err))
	}
	if rt.kind == indexed || rt.kind == statistics {
		// Queries get --query.timeout from the engine; index reads here.
		ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
		defer cancel()
		r = r.WithContext(ctx)
	}
	return rt.fn(r, t)
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

// response writes a result in the success envelope:
//
//	{"status":"success","data":...,"warnings":[...],"infos":[...]}
type response struct {
	a *API
	result
}

// Respond writes the response, then finalizes the result.
func (p *response) Respond(w http.ResponseWriter, r *http.Request) error {
	if p.finalize != nil {
		defer p.finalize()
	}
	warn, info := p.warnings.AsStrings(r.FormValue("query"), 10, 10)
	s := p.a.json.BorrowStream(nil)
	defer p.a.json.ReturnStream(s)
	s.WriteObjectStart()
	s.WriteObjectField("status")
	s.WriteString("success")
	s.WriteMore()
	s.WriteObjectField("data")
	writeData(s, p.data)
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
		return fmt.Errorf("encode response: %w", s.Error)
	}
	p.a.writeBody(w, r, s.Buffer())
	return nil
}

// statsParamWarning warns about stats values Prometheus deprecates.
func statsParamWarning(s string) error {
	switch s {
	case "", "true", "all":
		return nil
	}
	return fmt.Errorf("value %q for parameter \"stats\" is deprecated and will be rejected in the next major release, use %q or %q", s, "true", "all")
}
