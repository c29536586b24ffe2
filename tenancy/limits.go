package tenancy

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"gopkg.in/yaml.v3"
)

// TenantLimits are the limits of one tenant. For every field 0 means
// unlimited. The YAML keys are those of the overrides file.
type TenantLimits struct {
	// IngestionRate is the sustained samples/s a tenant may write, and
	// IngestionBurst how many samples it may write at once above it. A
	// single write request larger than the burst is always refused.
	IngestionRate  float64 `yaml:"ingestion_rate,omitempty"`
	IngestionBurst int     `yaml:"ingestion_burst,omitempty"`
	// RequestRate and RequestBurst bound the API requests/s of a tenant.
	RequestRate  float64 `yaml:"request_rate,omitempty"`
	RequestBurst int     `yaml:"request_burst,omitempty"`
	// MaxActiveSeries is the most series a tenant may hold; new series
	// beyond it are refused, existing ones keep flowing.
	MaxActiveSeries int `yaml:"max_active_series,omitempty"`
	// MaxSeriesPerQuery and MaxSamplesPerQuery bound what one query loads.
	MaxSeriesPerQuery  int `yaml:"max_series_per_query,omitempty"`
	MaxSamplesPerQuery int `yaml:"max_samples_per_query,omitempty"`
	// QueryRate and QueryBurst bound the queries/s of a tenant.
	QueryRate  float64 `yaml:"query_rate,omitempty"`
	QueryBurst int     `yaml:"query_burst,omitempty"`
	// MaxConcurrentQueries is how many queries of a tenant may run at once.
	MaxConcurrentQueries int `yaml:"max_concurrent_queries,omitempty"`

	// MaxQueryLength, MaxSubquerySteps and MaxSubqueryTotalSteps bound the
	// text of one PromQL query (bytes) and the steps its subqueries
	// evaluate, below the --query.* bounds that apply to every tenant;
	// 0 leaves those alone.
	MaxQueryLength        int `yaml:"max_query_length,omitempty"`
	MaxSubquerySteps      int `yaml:"max_subquery_steps,omitempty"`
	MaxSubqueryTotalSteps int `yaml:"max_subquery_total_steps,omitempty"`

	// MaxExemplars is the most exemplars a tenant keeps; beyond it the
	// oldest are dropped first. MaxMetadata is the most metric families
	// whose metadata (type, help, unit) a tenant keeps; metadata of new
	// families beyond it is dropped, samples are not.
	MaxExemplars int `yaml:"max_exemplars,omitempty"`
	MaxMetadata  int `yaml:"max_metadata,omitempty"`

	// OTLP is how the tenant's OTLP metrics are translated.
	OTLP OTLPTranslation `yaml:",inline"`

	// HA is the tenant's HA-pair deduplication (ha.go).
	HA HALimits `yaml:",inline"`
}

// DefaultTenantLimits are the limits of a tenant without an override. They
// let one tenant use a whole single node (the ingest target is about 1M
// samples/s and 1M active series) while bounding what a runaway client or
// query can take:
//   - ingestion 1,000,000 samples/s, burst 2,000,000 (two seconds; far
//     above any remote-write batch);
//   - 2,000 requests/s, burst 4,000 (1M samples/s in Prometheus' default
//     batches of 500 samples);
//   - 2,000,000 active series (twice the 1M-series benchmark);
//   - 100,000 series and 50,000,000 samples per query (the latter is
//     Prometheus' --query.max-samples);
//   - 100 queries/s, burst 300 (a dashboard refresh of many panels), and
//     20 concurrent queries (Prometheus' --query.max-concurrency);
//   - 100,000 exemplars (Prometheus' storage.exemplars.max-exemplars) and
//     the metadata of 10,000 metric families.
func DefaultTenantLimits() TenantLimits {
	return TenantLimits{
		IngestionRate:        1_000_000,
		IngestionBurst:       2_000_000,
		RequestRate:          2_000,
		RequestBurst:         4_000,
		MaxActiveSeries:      2_000_000,
		MaxSeriesPerQuery:    100_000,
		MaxSamplesPerQuery:   50_000_000,
		QueryRate:            100,
		QueryBurst:           300,
		MaxConcurrentQueries: 20,
		MaxExemplars:         100_000,
		MaxMetadata:          10_000,
		OTLP:                 DefaultOTLPTranslation(),
		HA:                   DefaultHALimits(),
	}
}

// Validate checks that every limit is finite and non-negative and that
// every rate has a burst.
func (tl TenantLimits) Validate() error {
	var errs []error
	for _, r := range []struct {
		key   string
		rate  float64
		burst int
	}{
		{"ingestion", tl.IngestionRate, tl.IngestionBurst},
		{"request", tl.RequestRate, tl.RequestBurst},
		{"query", tl.QueryRate, tl.QueryBurst},
	} {
		switch {
		case math.IsNaN(r.rate) || math.IsInf(r.rate, 0) || r.rate < 0:
			errs = append(errs, fmt.Errorf("%s_rate %v must be a non-negative number (0 means unlimited)", r.key, r.rate))
		case r.burst < 0:
			errs = append(errs, fmt.Errorf("%s_burst %d is negative", r.key, r.burst))
		case r.rate > 0 && r.burst == 0:
			errs = append(errs, fmt.Errorf("%s_burst must be at least 1 when %s_rate is set", r.key, r.key))
		}
	}
	for _, c := range []struct {
		key string
		v   int
	}{
		{"max_active_series", tl.MaxActiveSeries},
		{"max_series_per_query", tl.MaxSeriesPerQuery},
		{"max_samples_per_query", tl.MaxSamplesPerQuery},
		{"max_concurrent_queries", tl.MaxConcurrentQueries},
		{"max_query_length", tl.MaxQueryLength},
		{"max_subquery_steps", tl.MaxSubquerySteps},
		{"max_subquery_total_steps", tl.MaxSubqueryTotalSteps},
		{"max_exemplars", tl.MaxExemplars},
		{"max_metadata", tl.MaxMetadata},
	} {
		if c.v < 0 {
			errs = append(errs, fmt.Errorf("%s %d is negative (0 means unlimited)", c.key, c.v))
		}
	}
	if err := tl.OTLP.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := tl.HA.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// LimitsConfig holds the default limits of every tenant and the file of
// per-tenant overrides.
type LimitsConfig struct {
	TenantLimits
	// OverridesFile is a YAML file of per-tenant overrides:
	//
	//	overrides:
	//	  acme:
	//	    ingestion_rate: 50000
	//	    max_active_series: 200000
	//
	// Keys are the flag names after "limits." with underscores; a tenant's
	// unset keys keep the defaults. It is reloaded when it changes and on
	// SIGHUP.
	OverridesFile string
}

// DefaultLimitsConfig returns DefaultTenantLimits and no overrides file.
func DefaultLimitsConfig() LimitsConfig { return LimitsConfig{TenantLimits: DefaultTenantLimits()} }

// RegisterFlags registers the --limits.* flags on f, with defaults from
// DefaultTenantLimits.
func (c *LimitsConfig) RegisterFlags(f *flag.FlagSet) {
	d := DefaultTenantLimits()
	const o = " 0 means unlimited. Per-tenant override key: "
	f.Float64Var(&c.IngestionRate, "limits.ingestion-rate", d.IngestionRate, "Samples/s each tenant may write, sustained."+o+"ingestion_rate.")
	f.IntVar(&c.IngestionBurst, "limits.ingestion-burst", d.IngestionBurst, "Samples each tenant may write at once above its ingestion rate; also the largest write request accepted (larger ones get 413). Per-tenant override key: ingestion_burst.")
	f.Float64Var(&c.RequestRate, "limits.request-rate", d.RequestRate, "API requests/s each tenant may make, sustained."+o+"request_rate.")
	f.IntVar(&c.RequestBurst, "limits.request-burst", d.RequestBurst, "API requests each tenant may make at once above its request rate. Per-tenant override key: request_burst.")
	f.IntVar(&c.MaxActiveSeries, "limits.max-active-series", d.MaxActiveSeries, "Series each tenant may hold; new series beyond it are refused, existing ones keep flowing."+o+"max_active_series.")
	f.IntVar(&c.MaxSeriesPerQuery, "limits.max-series-per-query", d.MaxSeriesPerQuery, "Series one query (or one remote-read request, all its queries together) may load."+o+"max_series_per_query.")
	f.IntVar(&c.MaxSamplesPerQuery, "limits.max-samples-per-query", d.MaxSamplesPerQuery, "Samples one query (or one remote-read request, all its queries together) may load."+o+"max_samples_per_query.")
	f.Float64Var(&c.QueryRate, "limits.query-rate", d.QueryRate, "Queries/s each tenant may run, sustained."+o+"query_rate.")
	f.IntVar(&c.QueryBurst, "limits.query-burst", d.QueryBurst, "Queries each tenant may run at once above its query rate. Per-tenant override key: query_burst.")
	f.IntVar(&c.MaxConcurrentQueries, "limits.max-concurrent-queries", d.MaxConcurrentQueries, "Queries of one tenant that may run at the same time; more are refused with 429."+o+"max_concurrent_queries.")
	const q = " 0 leaves it to the --query.* bound of every tenant, which also caps it. Per-tenant override key: "
	f.IntVar(&c.MaxQueryLength, "limits.max-query-length", d.MaxQueryLength, "Bytes of one PromQL query text (or of the match[] selectors of one request)."+q+"max_query_length.")
	f.IntVar(&c.MaxSubquerySteps, "limits.max-subquery-steps", d.MaxSubquerySteps, "Steps one subquery of a query may evaluate."+q+"max_subquery_steps.")
	f.IntVar(&c.MaxSubqueryTotalSteps, "limits.max-subquery-total-steps", d.MaxSubqueryTotalSteps, "Points the subqueries of one query may feed into the functions over them."+q+"max_subquery_total_steps.")
	f.IntVar(&c.MaxExemplars, "limits.max-exemplars", d.MaxExemplars, "Exemplars each tenant keeps; beyond it the oldest are dropped first."+o+"max_exemplars.")
	f.IntVar(&c.MaxMetadata, "limits.max-metadata", d.MaxMetadata, "Metric families whose metadata (type, help, unit) each tenant keeps; metadata of further families is dropped, their samples are kept."+o+"max_metadata.")
	c.OTLP.registerFlags(f)
	c.HA.registerFlags(f)
	f.StringVar(&c.OverridesFile, "limits.overrides-file", c.OverridesFile, "YAML file of per-tenant limit overrides (overrides: {TENANT: {ingestion_rate: N, ...}}), reloaded when it changes (replace it atomically, e.g. write a new file and rename it) and on SIGHUP.")
}

// Validate checks the default limits.
func (c *LimitsConfig) Validate() error {
	if err := c.TenantLimits.Validate(); err != nil {
		return fmt.Errorf("--limits.*: %w", err)
	}
	return nil
}

// tenantOverride is one tenant's entry in the overrides file; nil fields
// keep the default.
type tenantOverride struct {
	IngestionRate        *float64 `yaml:"ingestion_rate,omitempty"`
	IngestionBurst       *int     `yaml:"ingestion_burst,omitempty"`
	RequestRate          *float64 `yaml:"request_rate,omitempty"`
	RequestBurst         *int     `yaml:"request_burst,omitempty"`
	MaxActiveSeries      *int     `yaml:"max_active_series,omitempty"`
	MaxSeriesPerQuery    *int     `yaml:"max_series_per_query,omitempty"`
	MaxSamplesPerQuery   *int     `yaml:"max_samples_per_query,omitempty"`
	QueryRate            *float64 `yaml:"query_rate,omitempty"`
	QueryBurst           *int     `yaml:"query_burst,omitempty"`
	MaxConcurrentQueries *int     `yaml:"max_concurrent_queries,omitempty"`

	MaxQueryLength        *int `yaml:"max_query_length,omitempty"`
	MaxSubquerySteps      *int `yaml:"max_subquery_steps,omitempty"`
	MaxSubqueryTotalSteps *int `yaml:"max_subquery_total_steps,omitempty"`

	MaxExemplars *int `yaml:"max_exemplars,omitempty"`
	MaxMetadata  *int `yaml:"max_metadata,omitempty"`

	otlpOverride `yaml:",inline"`
	haOverride   `yaml:",inline"`
}

func (o tenantOverride) apply(tl TenantLimits) TenantLimits {
	set := func(dst *int, src *int) {
		if src != nil {
			*dst = *src
		}
	}
	setf := func(dst *float64, src *float64) {
		if src != nil {
			*dst = *src
		}
	}
	setf(&tl.IngestionRate, o.IngestionRate)
	set(&tl.IngestionBurst, o.IngestionBurst)
	setf(&tl.RequestRate, o.RequestRate)
	set(&tl.RequestBurst, o.RequestBurst)
	set(&tl.MaxActiveSeries, o.MaxActiveSeries)
	set(&tl.MaxSeriesPerQuery, o.MaxSeriesPerQuery)
	set(&tl.MaxSamplesPerQuery, o.MaxSamplesPerQuery)
	setf(&tl.QueryRate, o.QueryRate)
	set(&tl.QueryBurst, o.QueryBurst)
	set(&tl.MaxConcurrentQueries, o.MaxConcurrentQueries)
	set(&tl.MaxQueryLength, o.MaxQueryLength)
	set(&tl.MaxSubquerySteps, o.MaxSubquerySteps)
	set(&tl.MaxSubqueryTotalSteps, o.MaxSubqueryTotalSteps)
	set(&tl.MaxExemplars, o.MaxExemplars)
	set(&tl.MaxMetadata, o.MaxMetadata)
	tl.OTLP = o.otlpOverride.apply(tl.OTLP)
	tl.HA = o.haOverride.apply(tl.HA)
	return tl
}

// overridesFile is the format of --limits.overrides-file.
type overridesFile struct {
	Overrides map[string]tenantOverride `yaml:"overrides"`
}

// maxOverridesFileSize bounds the overrides file.
const maxOverridesFileSize = 16 << 20

// parseOverrides decodes an overrides file strictly: unknown keys, invalid
// tenant IDs and more than one YAML document are errors.
func parseOverrides(data []byte) (overridesFile, error) {
	var of overridesFile
	if len(data) > maxOverridesFileSize {
		return of, fmt.Errorf("overrides file is larger than %d bytes", maxOverridesFileSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&of); err != nil && !errors.Is(err, io.EOF) {
		return overridesFile{}, fmt.Errorf("decode overrides: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return overridesFile{}, errors.New("decode overrides: more than one YAML document")
	}
	var errs []error
	for name := range of.Overrides {
		if _, err := ParseID(name); err != nil {
			errs = append(errs, fmt.Errorf("overrides: tenant %q: %w", name, err))
		}
	}
	return of, errors.Join(errs...)
}

// effective returns the limits of every tenant of of over defaults, and
// an error naming each tenant whose limits are invalid.
func (of overridesFile) effective(defaults TenantLimits) (map[ID]TenantLimits, error) {
	m := make(map[ID]TenantLimits, len(of.Overrides))
	var errs []error
	for name, o := range of.Overrides {
		tl := o.apply(defaults)
		if err := tl.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("overrides: tenant %q: %w", name, err))
		}
		m[ID(name)] = tl
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

func (of overridesFile) marshal() ([]byte, error) { return yaml.Marshal(of) }

// limitsSnapshot is the immutable set of limits in force.
type limitsSnapshot struct {
	defaults  TenantLimits
	overrides map[ID]TenantLimits
}

func (s *limitsSnapshot) get(id ID) TenantLimits {
	if tl, ok := s.overrides[id]; ok {
		return tl
	}
	return s.defaults
}

// tenantState is the rate limiters and query gate of one tenant.
type tenantState struct {
	ingest, request, query *rate.Limiter
	inflight               atomic.Int64 // running queries
	lastUsed               atomic.Int64 // unix nanoseconds
}

func newLimiter(r float64, burst int) *rate.Limiter {
	if r == 0 {
		return rate.NewLimiter(rate.Inf, 0)
	}
	return rate.NewLimiter(rate.Limit(r), burst)
}

// updateLimiter returns l changed to rate r and burst: l itself, keeping
// its tokens, or a new full limiter if l was unlimited.
func updateLimiter(l *rate.Limiter, now time.Time, r float64, burst int) *rate.Limiter {
	switch {
	case r == 0:
		l.SetLimitAt(now, rate.Inf)
	case l.Limit() == rate.Inf:
		return newLimiter(r, burst)
	default:
		l.SetLimitAt(now, rate.Limit(r))
		l.SetBurstAt(now, burst)
	}
	return l
}

// Limits enforces per-tenant limits: the default limits of its config,
// overridden per tenant by the overrides file. All methods are safe for
// concurrent use.
type Limits struct {
	cfg    LimitsConfig
	logger *slog.Logger
	snap   atomic.Pointer[limitsSnapshot]

	mu      sync.RWMutex
	tenants map[ID]*tenantState

	reloadMu     sync.Mutex
	fileStamp    fileStamp  // of the overrides file at the last reload attempt
	pendingStamp *fileStamp // a change seen by the last poll, not yet reloaded
	lastReload   ReloadStatus
	now          func() time.Time
	pollInterval time.Duration
	idleAfter    time.Duration

	rateLimited *prometheus.CounterVec
	reloads     *prometheus.CounterVec
}

type fileStamp struct {
	modTime time.Time
	size    int64
}

// Defaults of the Run loop.
const (
	overridesPollInterval = 5 * time.Second
	// A tenant's buckets are dropped after this long without a request;
	// recreated, they start full, which they would be by then anyway.
	idleTenantTimeout = 15 * time.Minute
)

// NewLimits returns Limits enforcing cfg. It reads the overrides file, if
// any, and fails if it is invalid.
func NewLimits(cfg LimitsConfig, logger *slog.Logger, reg prometheus.Registerer) (*Limits, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Limits{
		cfg:          cfg,
		logger:       logger,
		tenants:      map[ID]*tenantState{},
		now:          time.Now,
		pollInterval: overridesPollInterval,
		idleAfter:    idleTenantTimeout,
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "luminate_rate_limited_total",
			Help: "Requests refused by a per-tenant limit, by tenant and limit (the override key that raises it).",
		}, []string{"tenant", "limit"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "luminate_limits_overrides_reloads_total",
			Help: "Reloads of the per-tenant limits overrides file, by result (success or failure).",
		}, []string{"result"}),
	}
	l.reloads.WithLabelValues("success")
	l.reloads.WithLabelValues("failure")
	l.snap.Store(&limitsSnapshot{defaults: cfg.TenantLimits})
	if cfg.OverridesFile != "" {
		if err := l.Reload(); err != nil {
			return nil, err
		}
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{l.rateLimited, l.reloads} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register limits metrics: %w", err)
			}
		}
	}
	return l, nil
}

// For returns the limits in force for tenant id.
func (l *Limits) For(id ID) TenantLimits { return l.snap.Load().get(id) }

// MaxActiveSeries returns the most series tenant id may hold; 0 means
// unlimited. l.MaxActiveSeries is a storage.SeriesLimits.
func (l *Limits) MaxActiveSeries(id ID) int { return l.For(id).MaxActiveSeries }

// MaxExemplars returns the most exemplars tenant id keeps; 0 means
// unlimited. l.MaxExemplars is a storage.TenantLimit.
func (l *Limits) MaxExemplars(id ID) int { return l.For(id).MaxExemplars }

// MaxMetadata returns the most metric families whose metadata tenant id
// keeps; 0 means unlimited. l.MaxMetadata is a storage.TenantLimit.
func (l *Limits) MaxMetadata(id ID) int { return l.For(id).MaxMetadata }

// MaxSeriesPerQuery returns the most series one query of tenant id may
// load; 0 means unlimited.
func (l *Limits) MaxSeriesPerQuery(id ID) int { return l.For(id).MaxSeriesPerQuery }

// MaxSamplesPerQuery returns the most samples one query of tenant id may
// load; 0 means unlimited.
func (l *Limits) MaxSamplesPerQuery(id ID) int { return l.For(id).MaxSamplesPerQuery }

// ReloadStatus is the outcome of the last load of the overrides file.
type ReloadStatus struct {
	File    string    // "" when no overrides file is configured
	At      time.Time // when it was last loaded or tried
	Err     error     // why the last try failed; nil if it succeeded
	Loaded  time.Time // when the limits in force were loaded
	Tenants int       // tenants with overrides in force
}

// LastReload reports the last load of the overrides file.
func (l *Limits) LastReload() ReloadStatus {
	l.reloadMu.Lock()
	defer l.reloadMu.Unlock()
	st := l.lastReload
	st.File = l.cfg.OverridesFile
	return st
}

// Reload reads the overrides file again. If it is missing or invalid, the
// limits in force stay, the error is logged and returned. Limiters of
// active tenants take the new limits at once.
func (l *Limits) Reload() error {
	path := l.cfg.OverridesFile
	if path == "" {
		return nil
	}
	l.reloadMu.Lock()
	defer l.reloadMu.Unlock()
	err := l.reload(path)
	l.lastReload.At, l.lastReload.Err = l.now(), err
	if err == nil {
		l.lastReload.Loaded = l.lastReload.At
		l.lastReload.Tenants = len(l.snap.Load().overrides)
	}
	if err != nil {
		l.reloads.WithLabelValues("failure").Inc()
		l.logger.Error("per-tenant limits overrides not reloaded; the previous limits stay in force", "file", path, "err", err)
		return err
	}
	l.reloads.WithLabelValues("success").Inc()
	return nil
}

func (l *Limits) reload(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("--limits.overrides-file: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		l.fileStamp = fileStamp{fi.ModTime(), fi.Size()}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxOverridesFileSize+1))
	if err != nil {
		return fmt.Errorf("--limits.overrides-file %s: %w", path, err)
	}
	of, err := parseOverrides(data)
	if err != nil {
		return fmt.Errorf("--limits.overrides-file %s: %w", path, err)
	}
	eff, err := of.effective(l.cfg.TenantLimits)
	if err != nil {
		return fmt.Errorf("--limits.overrides-file %s: %w", path, err)
	}
	snap := &limitsSnapshot{defaults: l.cfg.TenantLimits, overrides: eff}
	l.snap.Store(snap)

	now := l.now()
	l.mu.Lock()
	for id, st := range l.tenants {
		tl := snap.get(id)
		st.ingest = updateLimiter(st.ingest, now, tl.IngestionRate, tl.IngestionBurst)
		st.request = updateLimiter(st.request, now, tl.RequestRate, tl.RequestBurst)
		st.query = updateLimiter(st.query, now, tl.QueryRate, tl.QueryBurst)
	}
	l.mu.Unlock()
	l.logger.Info("per-tenant limits overrides loaded", "file", path, "tenants", len(eff))
	return nil
}

// Run reloads the overrides file when it changes (polled every few
// seconds; a change is read once it has been stable for one poll, but
// replacing the file by a rename is safest) and on SIGHUP at once, and drops the state of long-idle tenants. It
// returns nil when ctx is done.
func (l *Limits) Run(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	tick := time.NewTicker(l.pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			if l.cfg.OverridesFile == "" {
				l.logger.Info("SIGHUP: no --limits.overrides-file to reload")
				continue
			}
			l.logger.Info("SIGHUP: reloading per-tenant limits overrides", "file", l.cfg.OverridesFile)
			_ = l.Reload() // logged; the old limits stay
		case <-tick.C:
			l.evictIdle()
			if l.overridesChanged() {
				_ = l.Reload() // logged; the old limits stay
			}
		}
	}
}

// overridesChanged reports whether the overrides file's modification time
// or size differs from the last reload attempt and has stayed the same
// since the previous poll, so that a file being written in place is not
// read half-written.
func (l *Limits) overridesChanged() bool {
	if l.cfg.OverridesFile == "" {
		return false
	}
	fi, err := os.Stat(l.cfg.OverridesFile)
	l.reloadMu.Lock()
	defer l.reloadMu.Unlock()
	var stamp fileStamp
	if err == nil {
		stamp = fileStamp{fi.ModTime(), fi.Size()}
	}
	switch {
	case stamp == l.fileStamp:
		l.pendingStamp = nil
		return false
	case l.pendingStamp == nil || *l.pendingStamp != stamp:
		l.pendingStamp = &stamp
		return false
	}
	// Try (and report a failure) once per change, not on every poll.
	l.fileStamp, l.pendingStamp = stamp, nil
	return true
}

// evictIdle drops the state of tenants idle for longer than idleAfter
// with no query running.
func (l *Limits) evictIdle() {
	cutoff := l.now().Add(-l.idleAfter).UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, st := range l.tenants {
		if st.lastUsed.Load() < cutoff && st.inflight.Load() == 0 {
			delete(l.tenants, id)
		}
	}
}

// state runs f on the state of tenant id, creating it if needed, under the
// read lock so that it cannot be evicted meanwhile.
func (l *Limits) state(id ID, now time.Time, f func(*tenantState)) {
	l.mu.RLock()
	st, ok := l.tenants[id]
	if !ok {
		l.mu.RUnlock()
		l.mu.Lock()
		if st, ok = l.tenants[id]; !ok {
			tl := l.For(id)
			st = &tenantState{
				ingest:  newLimiter(tl.IngestionRate, tl.IngestionBurst),
				request: newLimiter(tl.RequestRate, tl.RequestBurst),
				query:   newLimiter(tl.QueryRate, tl.QueryBurst),
			}
			l.tenants[id] = st
		}
		l.mu.Unlock()
		l.mu.RLock()
		if st, ok = l.tenants[id]; !ok { // evicted in between: very unlikely, retry
			l.mu.RUnlock()
			l.state(id, now, f)
			return
		}
	}
	defer l.mu.RUnlock()
	st.lastUsed.Store(now.UnixNano())
	f(st)
}

// limitSpec is a rate or concurrency limit and its unit, for messages.
type limitSpec struct {
	Setting
	unit string
}

var (
	ingestionRateSpec  = limitSpec{PerTenant("--limits.ingestion-rate", "ingestion_rate"), "samples/s"}
	ingestionBurstSpec = limitSpec{PerTenant("--limits.ingestion-burst", "ingestion_burst"), "samples"}
	requestRateSpec    = limitSpec{PerTenant("--limits.request-rate", "request_rate"), "requests/s"}
	queryRateSpec      = limitSpec{PerTenant("--limits.query-rate", "query_rate"), "queries/s"}
	concurrencySpec    = limitSpec{PerTenant("--limits.max-concurrent-queries", "max_concurrent_queries"), "queries"}
)

func (l *Limits) refuse(id ID, spec limitSpec, retryAfter time.Duration, msg string) *LimitError {
	l.rateLimited.WithLabelValues(string(id), spec.ID).Inc()
	return &LimitError{Tenant: id, Limit: spec.ID, RetryAfter: retryAfter, Msg: msg + " " + spec.Raise()}
}

func formatRate(r float64) string { return strconv.FormatFloat(r, 'f', -1, 64) }

// take takes n tokens from the bucket pick selects, or returns the
// LimitError of spec with the time until they would be there.
func (l *Limits) take(id ID, n int, spec limitSpec, pick func(*tenantState) *rate.Limiter) error {
	now := l.now()
	var err error
	l.state(id, now, func(st *tenantState) {
		lim := pick(st)
		if lim.Limit() == rate.Inf {
			return
		}
		r := lim.ReserveN(now, n)
		if !r.OK() {
			// No wait makes it fit: refuse it as too large, not for now,
			// or a sender retrying 429 would retry it for ever.
			le := l.refuse(id, ingestionBurstSpec, 0,
				fmt.Sprintf("write of %d samples exceeds the ingestion burst of %d samples for tenant %s: split it", n, lim.Burst(), id))
			le.TooLarge = true
			err = le
			return
		}
		if d := r.DelayFrom(now); d > 0 {
			r.CancelAt(now)
			err = l.refuse(id, spec, d,
				fmt.Sprintf("%s limit of %s %s exceeded for tenant %s", rateName(spec), formatRate(float64(lim.Limit())), spec.unit, id))
		}
	})
	return err
}

func rateName(s limitSpec) string {
	switch s {
	case ingestionRateSpec:
		return "ingestion rate"
	case requestRateSpec:
		return "request rate"
	}
	return "query rate"
}

// AllowIngest takes samples from tenant id's ingestion budget, or returns
// a *LimitError (429) with the time after which the write would fit; a
// write of more samples than the burst can never fit: its *LimitError is
// TooLarge (413).
func (l *Limits) AllowIngest(id ID, samples int) error {
	if samples <= 0 {
		return nil
	}
	return l.take(id, samples, ingestionRateSpec, func(st *tenantState) *rate.Limiter { return st.ingest })
}

// AllowRequest counts one API request of tenant id against its request
// rate, or returns a *LimitError (429).
func (l *Limits) AllowRequest(id ID) error {
	return l.take(id, 1, requestRateSpec, func(st *tenantState) *rate.Limiter { return st.request })
}

// AllowQuery counts one query of tenant id against its query rate, or
// returns a *LimitError (429).
func (l *Limits) AllowQuery(id ID) error {
	return l.take(id, 1, queryRateSpec, func(st *tenantState) *rate.Limiter { return st.query })
}

// AcquireQuery admits one query of tenant id if fewer than its
// max_concurrent_queries are running, and returns the func that ends it
// (safe to call more than once). When the tenant is at its limit it
// returns a *LimitError (429) at once, without waiting; if ctx is already
// done it returns ctx's error.
func (l *Limits) AcquireQuery(ctx context.Context, id ID) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	max := int64(l.For(id).MaxConcurrentQueries)
	var st *tenantState
	l.state(id, l.now(), func(s *tenantState) {
		if n := s.inflight.Add(1); max > 0 && n > max {
			s.inflight.Add(-1)
			err = l.refuse(id, concurrencySpec, time.Second,
				fmt.Sprintf("tenant %s already runs %d concurrent queries, its limit", id, max))
			return
		}
		st = s
	})
	if err != nil {
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { st.inflight.Add(-1) }) }, nil
}
