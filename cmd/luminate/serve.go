package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/version"

	"github.com/luminate-io/luminate/api"
	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/native"
	"github.com/luminate-io/luminate/otlp"
	"github.com/luminate-io/luminate/promql"
	"github.com/luminate-io/luminate/remoteread"
	"github.com/luminate-io/luminate/remotewrite"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/badger"
	"github.com/luminate-io/luminate/storage/clickhouse"
	"github.com/luminate-io/luminate/tenancy"
)

// serveConfig is everything `luminate serve` is configured with.
type serveConfig struct {
	configFile      string
	listenAddress   string
	shutdownTimeout time.Duration
	backend         string
	retention       model.Duration
	activeWindow    time.Duration // --storage.active-series-window (storage.ActiveSince)
	logLevel        string
	logFormat       string
	createDevSecret bool
	gcPercent       int
	pprof           bool

	badger     badger.Config
	clickhouse clickhouse.Config
	auth       tenancy.AuthConfig
	limits     tenancy.LimitsConfig
	cluster    tenancy.ClusterConfig // limits across pods (ClickHouse)
	ingest     remotewrite.Config
	otlp       otlp.Config
	query      promql.Config
	remoteRead remoteread.Config
	ha         tenancy.HAConfig

	// What tenants and strangers can see (issue #10).
	internalListenAddress string
	readTimeout           time.Duration
	maxBodyBytesInFlight  int64
}

// defaultGCPercent halves the heap headroom Go keeps by default (100): the
// head chunks and index of a store with a million active series are most
// of the heap, and headroom on top of them is resident memory. Measured
// with BenchmarkActiveSeriesMemory at 1,000,000 series: 1.76 KiB RSS per
// series at GOGC=100, 1.30 KiB at 50, for about the same append rate.
const defaultGCPercent = 50

// Backends --storage.backend accepts.
const (
	backendBadger     = "badger"
	backendClickHouse = "clickhouse"
)

func (c *serveConfig) registerFlags(fs *flag.FlagSet) {
	c.retention = model.Duration(90 * 24 * time.Hour)
	fs.StringVar(&c.configFile, configFileFlag, "",
		"YAML file setting any of these flags by name, nested (storage: {badger: {path: /x}}) or dotted (storage.badger.path: /x). Flags given on the command line win.")
	fs.StringVar(&c.listenAddress, "http.listen-address", ":9201", "Address to serve HTTP on.")
	fs.DurationVar(&c.shutdownTimeout, "http.shutdown-timeout", 30*time.Second,
		"On SIGINT or SIGTERM, how long in-flight requests may take to finish before their connections are closed.")
	fs.StringVar(&c.backend, "storage.backend", backendBadger, "Storage backend: badger (embedded, single node; --storage.badger.*) or clickhouse (--storage.clickhouse.*).")
	fs.Var(&c.retention, "storage.retention", "How long samples are kept, as a `duration` such as 90d, 2w or 1y; 0 keeps them forever. Per-tenant override key: retention.")
	fs.DurationVar(&c.activeWindow, "storage.active-series-window", storage.DefaultActiveSeriesWindow,
		"A series is active (for --limits.max-active-series, cardinality and usage) when it has a sample timestamped at or after the start of the UTC hour holding now minus this: it counts for this long to an hour longer after its last sample. The same on both backends; on ClickHouse counted tenant-wide across pods.")
	fs.StringVar(&c.logLevel, "log.level", "info", "Log level: debug, info, warn or error.")
	fs.StringVar(&c.logFormat, "log.format", "logfmt", "Log format: logfmt or json.")
	fs.IntVar(&c.gcPercent, "runtime.gc-percent", defaultGCPercent,
		"Go garbage collector target (GOGC): lower trades CPU for memory. The GOGC environment variable, when set, wins.")
	fs.BoolVar(&c.pprof, "debug.pprof", false,
		"Serve Go runtime profiles under /debug/pprof/ (go tool pprof) to tokens with the operator scope, and on --http.internal-listen-address.")
	fs.BoolVar(&c.createDevSecret, "auth.jwt.create-dev-secret", false,
		"DEVELOPMENT ONLY: if the --auth.jwt.hmac-secret-file does not exist, create it with a random secret (make run does this).")
	c.badger.RegisterFlags(fs)
	c.clickhouse.RegisterFlags(fs)
	c.auth.RegisterFlags(fs)
	c.limits.RegisterFlags(fs)
	c.cluster.RegisterFlags(fs)
	c.ingest.RegisterFlags(fs)
	c.otlp.RegisterFlags(fs)
	c.query.RegisterFlags(fs)
	c.remoteRead.RegisterFlags(fs)
	c.ha.RegisterFlags(fs)

	fs.StringVar(&c.internalListenAddress, "http.internal-listen-address", "",
		"If set, a second address serving /metrics, the detailed /api/v1/status/health, the health probes and (with --debug.pprof) /debug/pprof/ WITHOUT authentication, for Prometheus and operators; nothing else is served there. "+
			"Keep it unreachable by tenants (a port only a Kubernetes NetworkPolicy opens to Prometheus, or 127.0.0.1). On --http.listen-address those endpoints need a token with the operator scope.")
	fs.DurationVar(&c.readTimeout, api.ReadTimeoutFlag, api.DefaultBodyReadTimeout,
		"How long a client may take to send a request's body, from the end of its headers; slower requests are answered 408 and their connection closed. 0 sets no deadline. Answers may take longer: only the body is bounded.")
	fs.Int64Var(&c.maxBodyBytesInFlight, api.BodyBudgetFlag, api.DefaultBodyBudget,
		"Bytes of request bodies received and not yet answered, all requests together; one tenant may hold at most half. A body past it is refused with 503 and Retry-After, so that uploads stalled before their last byte cannot hold unbounded memory. 0 sets no bound.")
}

// newServeFlags returns serve's flag set, bound to c.
func newServeFlags(c *serveConfig, output io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("luminate serve", flag.ContinueOnError)
	fs.SetOutput(output)
	c.registerFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: luminate serve [flags]\n\nStarts the Luminate server. Flags (docs/configuration.md has them all):\n\n")
		fs.PrintDefaults()
	}
	return fs
}

// parseServeConfig parses args (and the config file they name) into a
// validated serveConfig.
func parseServeConfig(args []string, output io.Writer) (*serveConfig, error) {
	c := &serveConfig{}
	fs := newServeFlags(c, output)
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if c.configFile != "" {
		if err := applyConfigFile(fs, c.configFile); err != nil {
			return nil, usageError{err}
		}
	}
	c.badger.Retention = time.Duration(c.retention)
	c.clickhouse.Retention = time.Duration(c.retention)
	c.ingest.Retention = time.Duration(c.retention)
	c.limits.Retention = c.retention // the default of the per-tenant retention override
	c.badger.ActiveSeriesWindow, c.clickhouse.ActiveSeriesWindow = c.activeWindow, c.activeWindow
	if err := c.validate(); err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

func (c *serveConfig) validate() error {
	var errs []error
	switch c.backend {
	case backendBadger:
		errs = append(errs, c.badger.Validate())
	case backendClickHouse:
		errs = append(errs, c.clickhouse.Validate())
	default:
		errs = append(errs, fmt.Errorf("--storage.backend=%q: want %s or %s", c.backend, backendBadger, backendClickHouse))
	}
	if c.activeWindow <= 0 || c.activeWindow > 7*24*time.Hour {
		errs = append(errs, fmt.Errorf("--storage.active-series-window=%s: not in (0, 168h]", c.activeWindow))
	}
	if c.listenAddress == "" {
		errs = append(errs, errors.New("--http.listen-address must be set"))
	}
	if c.shutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--http.shutdown-timeout=%s: must be positive", c.shutdownTimeout))
	}
	if _, err := parseLogLevel(c.logLevel); err != nil {
		errs = append(errs, err)
	}
	if c.logFormat != "logfmt" && c.logFormat != "json" {
		errs = append(errs, fmt.Errorf("--log.format=%q: want logfmt or json", c.logFormat))
	}
	if c.createDevSecret && c.auth.HMACSecretFile == "" {
		errs = append(errs, errors.New("--auth.jwt.create-dev-secret needs --auth.jwt.hmac-secret-file to name the file to create"))
	}
	if c.backend == backendClickHouse && c.cluster.Enabled {
		errs = append(errs, c.cluster.Validate())
	}
	errs = append(errs, c.auth.Validate(), c.limits.Validate(), c.ingest.Validate(), c.otlp.Validate(), c.query.Validate(), c.remoteRead.Validate(), c.ha.Validate())
	if c.readTimeout < 0 {
		errs = append(errs, fmt.Errorf("--%s=%s: must not be negative", api.ReadTimeoutFlag, c.readTimeout))
	}
	if c.maxBodyBytesInFlight < 0 {
		errs = append(errs, fmt.Errorf("--%s=%d: must not be negative", api.BodyBudgetFlag, c.maxBodyBytesInFlight))
	}
	if _, port, _ := net.SplitHostPort(c.internalListenAddress); c.internalListenAddress == c.listenAddress && port != "0" {
		errs = append(errs, errors.New("--http.internal-listen-address must differ from --http.listen-address: the internal endpoints need no token"))
	}
	return errors.Join(errs...)
}

func parseLogLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("--log.level=%q: want debug, info, warn or error", s)
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	l, err := parseLogLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: l}
	// api.NewLogHandler adds the request ID and tenant to every line logged
	// with a request's context, in any package.
	switch format {
	case "logfmt":
		return slog.New(api.NewLogHandler(slog.NewTextHandler(w, opts))), nil
	case "json":
		return slog.New(api.NewLogHandler(slog.NewJSONHandler(w, opts))), nil
	}
	return nil, fmt.Errorf("--log.format=%q: want logfmt or json", format)
}

// newRegistry returns Luminate's own metrics registry with the Go runtime,
// process and build-info collectors. The default registry is never used.
func newRegistry() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("luminate"),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register runtime metrics: %w", err)
		}
	}
	return reg, nil
}

// runServe runs the server until ctx is done or SIGINT/SIGTERM arrives,
// then shuts down gracefully: stop accepting, let in-flight requests finish
// (bounded by --http.shutdown-timeout), stop the background jobs, and flush
// and close the store.
func runServe(ctx context.Context, args []string, stderr io.Writer) (err error) {
	cfg, err := parseServeConfig(args, stderr)
	if err != nil {
		return err
	}
	logger, err := newLogger(stderr, cfg.logLevel, cfg.logFormat)
	if err != nil {
		return err
	}
	started := time.Now()
	logger.Info("starting luminate", "version", version.Version, "revision", version.GetRevision(), "go", version.GoVersion)
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.gcPercent)
	}

	if cfg.createDevSecret {
		created, err := tenancy.EnsureDevSecret(cfg.auth.HMACSecretFile)
		if err != nil {
			return fmt.Errorf("create development secret: %w", err)
		}
		if created {
			logger.Warn("created a development HMAC secret; do not use it in production", "file", cfg.auth.HMACSecretFile)
		}
		logger.Info("mint a development token with: " + tokenCommand(os.Args[0], cfg.auth.HMACSecretFile))
	}

	reg, err := newRegistry()
	if err != nil {
		return err
	}
	verifier, err := tenancy.NewVerifier(cfg.auth, logger, reg)
	if err != nil {
		return err
	}
	limits, err := tenancy.NewLimits(cfg.limits, logger.With("component", "limits"), reg)
	if err != nil {
		return err
	}
	// Limits across pods: on ClickHouse the pods divide each tenant's rate
	// and concurrency limits through the pods table (tenancy/cluster.go).
	var podShares *tenancy.PodShares
	if cfg.backend == backendClickHouse && cfg.cluster.Enabled {
		pods, err := clickhouse.NewPods(cfg.clickhouse, logger.With("component", "pods"))
		if err != nil {
			return err
		}
		defer pods.Close()
		if podShares, err = limits.ShareAcrossPods(pods, cfg.cluster, reg); err != nil {
			return err
		}
		logger.Info("tenant limits shared across the pods on this ClickHouse", "pod", podShares.PodID(), "heartbeat", cfg.cluster.Heartbeat.String())
	}
	cfg.badger.SeriesLimits = limits.MaxActiveSeries
	cfg.clickhouse.SeriesLimits = limits.MaxActiveSeries
	cfg.badger.ExemplarLimits, cfg.badger.MetadataLimits = limits.MaxExemplars, limits.MaxMetadata
	cfg.clickhouse.ExemplarLimits, cfg.clickhouse.MetadataLimits = limits.MaxExemplars, limits.MaxMetadata
	cfg.clickhouse.MaxSeriesPerQuery = limits.MaxSeriesPerQuery   // a select reads at most one series past it
	cfg.clickhouse.MaxSamplesPerQuery = limits.MaxSamplesPerQuery // and at most one batch of samples past this
	// Per-tenant retention: the overrides file's retention key.
	cfg.badger.RetentionPolicy, cfg.clickhouse.RetentionPolicy, cfg.ingest.RetentionPolicy = limits, limits, limits
	haStore := &openedHAStore{}
	store, err := openStore(cfg, logger, reg, haStore)
	if err != nil {
		return err
	}
	defer func() {
		logger.Info("closing storage")
		if cerr := store.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close storage: %w", cerr))
			return
		}
		logger.Info("storage closed; luminate stopped")
	}()

	queryAPI, err := promql.New(cfg.query, store, limits, logger.With("component", "promql"), reg)
	if err != nil {
		return err
	}
	defer queryAPI.Close()
	queryAPI.SetBuildInfo(promql.BuildInfo{ // the version stays Prometheus', which Grafana reads
		Revision: version.GetRevision(), Branch: version.Branch, BuildUser: version.BuildUser, BuildDate: version.BuildDate,
	})
	// The remote-read route has its own body deadline (the router reads
	// the body before taking a slot), replacing the router's: it must not
	// be the longer of the two.
	rrCfg := cfg.remoteRead
	if cfg.readTimeout > 0 && rrCfg.BodyTimeout > cfg.readTimeout {
		rrCfg.BodyTimeout = cfg.readTimeout
	}
	remoteRead, err := remoteread.New(rrCfg, limits, logger.With("component", "remoteread"), reg)
	if err != nil {
		return err
	}
	// Tracing is configured by the standard OTEL_* environment variables:
	// spans are exported only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
	tracing, err := api.NewTracing(ctx, version.Version, logger.With("component", "tracing"))
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if terr := tracing.Shutdown(sctx); terr != nil {
			logger.Warn("spans not exported at shutdown", "err", terr)
		}
	}()
	// The remote write, native write and OTLP share one Ingester: one
	// in-flight budget, its decode slots and counters.
	ingester := remotewrite.NewIngester(cfg.ingest, limits, logger.With("component", "ingest"), reg)
	// HA pairs (--limits.accept-ha-samples): the elections in memory on
	// Badger, in ClickHouse's ha_elections table for the pods sharing it.
	var haElections tenancy.HAStore = tenancy.NewMemoryHAStore()
	if cfg.backend == backendClickHouse {
		haElections = haStore
	}
	haTracker, err := tenancy.NewHATracker(cfg.ha, haElections, limits.HA, logger.With("component", "ha"), reg)
	if err != nil {
		return err
	}
	ingester.SetHATracker(haTracker)
	otlpCfg := cfg.otlp
	otlpCfg.LookbackDelta = cfg.query.LookbackDelta
	routes := dataRoutes(
		remotewrite.NewHandler(ingester).Serve,
		native.NewWrite(ingester, logger.With("component", "ingest")).Serve,
		otlp.NewHandler(ingester, otlpCfg, limits, logger.With("component", "otlp")).Serve,
		remoteRead,
		queryAPI,
	)
	routes = append(routes, adminRoutes(queryAPI, logger.With("component", "admin"))...)
	// Per-tenant usage for chargeback (api/usage.go): counted where the
	// samples are committed and the queries admitted.
	usage := tenancy.NewUsage()
	if err := reg.Register(usage); err != nil {
		return fmt.Errorf("register usage metrics: %w", err)
	}
	routerOpts := api.Options{
		Auth:       verifier,
		Limits:     limits,
		Queries:    api.CountingQueries(limits, usage),
		Tenants:    api.CountingTenants(store, usage),
		Usage:      api.UsageHandler(store, usage),
		Storage:    store,
		Keys:       verifier,
		LimitsFile: limits,
		Tracing:    tracing,
		Gatherer:   reg,
		Routes:     routes,

		Pprof:                cfg.pprof,
		BodyReadTimeout:      cfg.readTimeout,
		MaxBodyBytesInFlight: cfg.maxBodyBytesInFlight,
	}
	router, err := api.NewRouter(routerOpts, logger, reg)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.listenAddress)
	if err != nil {
		return fmt.Errorf("listen on --http.listen-address: %w", err)
	}
	internal, err := newInternalServer(cfg, routerOpts, logger, reg)
	if err != nil {
		_ = ln.Close()
		return err
	}
	srv := &http.Server{
		Handler:           router,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	var g run.Group
	{
		// HTTP first: its interrupt drains in-flight requests before the
		// other actors are interrupted and the store is closed.
		g.Add(func() error {
			logger.Info("listening", "address", ln.Addr().String())
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve HTTP: %w", err)
			}
			return nil
		}, func(reason error) {
			logger.Info("shutting down: stopping HTTP server, waiting for in-flight requests", "reason", reason, "timeout", cfg.shutdownTimeout.String())
			sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				logger.Warn("in-flight requests did not finish in time; closing their connections", "err", err)
				_ = srv.Close()
			}
		})
	}
	{
		lctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return limits.Run(lctx) }, func(error) { cancel() })
	}
	if internal != nil {
		g.Add(internal.run, internal.stop)
	}
	if podShares != nil {
		pctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return podShares.Run(pctx) }, func(error) { cancel() })
	}
	g.Add(run.SignalHandler(ctx, os.Interrupt, syscall.SIGTERM))
	{
		sctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return waitForStore(sctx, store, logger, started) }, func(error) { cancel() })
	}

	err = g.Run()
	if errors.Is(err, run.ErrSignal) || errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// openStore opens the configured backend in the background, so that the
// HTTP server listens at once: /-/healthy answers 200 while /-/ready, reads
// and writes answer 503 (with Retry-After and how far opening got) until
// the store is open. What must fail the start at once is checked before it
// returns: the configuration, and the lock of Badger's data directory (a
// second luminate on it refuses to start). Opening itself (Badger's WAL
// replay, ClickHouse's connection and migrations) failing ends the
// process: see waitForStore.
func openStore(cfg *serveConfig, logger *slog.Logger, reg prometheus.Registerer, ha *openedHAStore) (*storage.Opening, error) {
	switch cfg.backend {
	case backendBadger:
		r, err := badger.Open(cfg.badger, logger.With("component", "badger"), reg)
		if errors.Is(err, badger.ErrLocked) {
			return nil, fmt.Errorf("%w (stop the other process or choose another --storage.badger.path)", err)
		}
		if err != nil {
			return nil, fmt.Errorf("open storage: %w", err)
		}
		return storage.OpenInBackground(func(ctx context.Context) (storage.MetricsStore, error) {
			return r.Recover(ctx)
		}, r.Status), nil
	case backendClickHouse:
		return storage.OpenInBackground(func(context.Context) (storage.MetricsStore, error) {
			s, err := clickhouse.New(cfg.clickhouse, logger.With("component", "clickhouse"), reg)
			if err == nil {
				ha.store.Store(s.HAStore())
			}
			return s, err
		}, func() string { return "connecting to ClickHouse and migrating its schema" }), nil
	}
	return nil, fmt.Errorf("unknown --storage.backend=%q", cfg.backend)
}

// waitForStore returns the error of opening the store, or nil once ctx is
// done; it logs when the store is open.
func waitForStore(ctx context.Context, store *storage.Opening, logger *slog.Logger, started time.Time) error {
	select {
	case <-store.Done():
		if err := store.Err(); err != nil {
			return fmt.Errorf("open storage: %w", err)
		}
		logger.Info("storage open", "since_start", time.Since(started))
	case <-ctx.Done():
		return nil
	}
	<-ctx.Done()
	return nil
}

// dataRoutes are the authenticated routes, served by the protocol packages:
// writes need the metrics:write scope, reads metrics:read.
// /api/v1/query (and /prometheus/api/v1/query) is the native query, which
// answers JSON bodies itself and hands GETs and form POSTs to the
// Prometheus API.
func dataRoutes(remoteWrite, nativeWrite, otlpWrite func(*http.Request, storage.Tenant) (any, error), remoteRead *remoteread.Handler, queryAPI *promql.API) []api.Route {
	post := []string{http.MethodPost}
	routes := []api.Route{
		{Path: "/api/v1/write", Methods: post, Scope: tenancy.ScopeWrite, Format: apierror.Text, Serve: remoteWrite},
		{Path: "/api/v1/push", Methods: post, Scope: tenancy.ScopeWrite, Format: apierror.Text, Serve: remoteWrite},
		{Path: "/api/v1/metrics", Methods: post, Scope: tenancy.ScopeWrite, Format: apierror.Native, Serve: nativeWrite},
	}
	// Remote read: admitted as a query once its body is read.
	maxBody, bodySetting := remoteRead.ReadBody()
	timeout, timeoutSetting := remoteRead.BodyTimeout()
	routes = append(routes, api.Route{Path: "/api/v1/read", Methods: post, Scope: tenancy.ScopeRead, Format: apierror.Text, Query: true,
		ReadBody: maxBody, ReadBodySetting: bodySetting, ReadBodyTimeout: timeout, ReadBodyTimeoutSetting: timeoutSetting, Serve: remoteRead.Serve})
	// OTLP/HTTP metrics, its errors a google.rpc.Status in the request's
	// encoding.
	for _, p := range otlp.Paths() {
		routes = append(routes, api.Route{Path: p, Methods: post, Scope: tenancy.ScopeWrite, FormatOf: otlp.FormatOf, Serve: otlpWrite})
	}
	// The Prometheus HTTP API, under /api/v1 and /prometheus/api/v1, one
	// route per endpoint so that metrics and logs name the endpoint; its
	// errors, the router's refusals included, in Prometheus' envelope, as
	// Grafana and promtool expect.
	for _, ep := range queryAPI.Routes() {
		rt := api.Route{Path: ep.Path, Methods: ep.Methods, Name: ep.Name, Scope: tenancy.ScopeRead,
			Format: apierror.Prometheus, Query: ep.Query, Headers: ep.Headers, Serve: ep.Serve}
		if ep.Path == "/api/v1/query" || ep.Path == "/prometheus/api/v1/query" { // shared with the native query
			nq := native.NewQuery(queryAPI, ep.Serve)
			rt.FormatOf, rt.Serve = nq.FormatOf, nq.Serve
		}
		routes = append(routes, rt)
	}
	return append(routes, api.Route{Path: "/api/v1/openapi.yaml", Methods: []string{http.MethodGet}, Public: true, Handler: api.OpenAPIHandler()})
}

// adminRoutes are Prometheus' TSDB admin endpoints (delete_series,
// clean_tombstones) on the token's tenant: they need the admin scope, and
// answer errors in Prometheus' envelope. Every call is logged to logger.
func adminRoutes(queryAPI *promql.API, logger *slog.Logger) []api.Route {
	var routes []api.Route
	for _, ep := range queryAPI.AdminRoutes(logger) {
		routes = append(routes, api.Route{Path: ep.Path, Methods: ep.Methods, Name: ep.Name, Scope: tenancy.ScopeAdmin,
			Format: apierror.Prometheus, Serve: ep.Serve})
	}
	return routes
}

// internalServer serves api.NewInternalRouter on
// --http.internal-listen-address: the operator's endpoints without a token.
type internalServer struct {
	ln      net.Listener
	srv     *http.Server
	logger  *slog.Logger
	timeout time.Duration
}

// newInternalServer listens on --http.internal-listen-address, or returns
// nil when it is not set.
func newInternalServer(cfg *serveConfig, opts api.Options, logger *slog.Logger, reg *prometheus.Registry) (*internalServer, error) {
	if cfg.internalListenAddress == "" {
		return nil, nil
	}
	h, err := api.NewInternalRouter(opts, logger, reg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.internalListenAddress)
	if err != nil {
		return nil, fmt.Errorf("listen on --http.internal-listen-address: %w", err)
	}
	return &internalServer{
		ln: ln,
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
		logger:  logger,
		timeout: cfg.shutdownTimeout,
	}, nil
}

func (s *internalServer) run() error {
	s.logger.Info("listening internally", "address", s.ln.Addr().String(),
		"serves", "/metrics, /api/v1/status/health in detail, /debug/pprof/ with --debug.pprof, the probes; WITHOUT authentication: keep this address unreachable by tenants")
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve --http.internal-listen-address: %w", err)
	}
	return nil
}

func (s *internalServer) stop(error) {
	sctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		_ = s.srv.Close()
	}
}

// openedHAStore is the ClickHouse store's HA elections once it is open;
// until then its calls fail as the store's do (503 with Retry-After).
type openedHAStore struct {
	store atomic.Pointer[clickhouse.HAStore]
}

func (o *openedHAStore) get() (*clickhouse.HAStore, error) {
	if s := o.store.Load(); s != nil {
		return s, nil
	}
	return nil, &storage.StartingError{Status: "connecting to ClickHouse and migrating its schema"}
}

func (o *openedHAStore) Get(ctx context.Context, id tenancy.ID, cluster string) (tenancy.HAElection, bool, error) {
	s, err := o.get()
	if err != nil {
		return tenancy.HAElection{}, false, err
	}
	return s.Get(ctx, id, cluster)
}

func (o *openedHAStore) Elect(ctx context.Context, id tenancy.ID, cluster string, term uint64, replica string, now time.Time) (tenancy.HAElection, error) {
	s, err := o.get()
	if err != nil {
		return tenancy.HAElection{}, err
	}
	return s.Elect(ctx, id, cluster, term, replica, now)
}

func (o *openedHAStore) Seen(ctx context.Context, id tenancy.ID, cluster string, e tenancy.HAElection, now time.Time) error {
	s, err := o.get()
	if err != nil {
		return err
	}
	return s.Seen(ctx, id, cluster, e, now)
}
