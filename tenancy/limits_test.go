package tenancy_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// fakeClock is a settable clock for the limiters.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type limitsEnv struct {
	l     *tenancy.Limits
	reg   *prometheus.Registry
	clock *fakeClock
	file  string
	logs  *syncBuffer
}

// syncBuffer is a log destination safe for the Run goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newLimits returns Limits with defaults tl and, if overrides is not empty,
// an overrides file holding it.
func newLimits(t *testing.T, tl tenancy.TenantLimits, overrides string) limitsEnv {
	t.Helper()
	env := limitsEnv{reg: prometheus.NewRegistry(), clock: &fakeClock{now: testNow}, logs: &syncBuffer{}}
	cfg := tenancy.LimitsConfig{TenantLimits: tl}
	if overrides != "" {
		env.file = writeFile(t, "overrides.yaml", []byte(overrides))
		cfg.OverridesFile = env.file
	}
	l, err := tenancy.NewLimits(cfg, slog.New(slog.NewTextHandler(env.logs, nil)), env.reg)
	require.NoError(t, err)
	tenancy.SetLimitsClock(l, env.clock.Now)
	env.l = l
	return env
}

func rateLimited(t *testing.T, reg *prometheus.Registry, tenant, limit string) float64 {
	return metricValue(t, reg, "luminate_rate_limited_total", map[string]string{"tenant": tenant, "limit": limit})
}

// requireLimitError checks err is a 429 for limit naming flag, with a
// positive Retry-After.
func requireLimitError(t *testing.T, err error, limit, flag string) *tenancy.LimitError {
	t.Helper()
	var le *tenancy.LimitError
	require.ErrorAs(t, err, &le)
	require.ErrorIs(t, err, tenancy.ErrRateLimited)
	require.Equal(t, limit, le.Limit)
	require.Contains(t, le.Error(), flag)
	require.Contains(t, le.Error(), "per-tenant override "+limit)
	require.Positive(t, le.RetryAfter)
	info := apierror.Classify(err)
	require.Equal(t, http.StatusTooManyRequests, info.Status)
	require.Equal(t, le.RetryAfter, info.RetryAfter)
	return le
}

func TestLimitsConfig(t *testing.T) {
	t.Run("flags", func(t *testing.T) {
		var cfg tenancy.LimitsConfig
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		cfg.RegisterFlags(fs)
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		require.ElementsMatch(t, []string{
			"limits.ingestion-rate", "limits.ingestion-burst", "limits.request-rate", "limits.request-burst",
			"limits.max-active-series", "limits.max-series-per-query", "limits.max-samples-per-query",
			"limits.query-rate", "limits.query-burst", "limits.max-concurrent-queries", "limits.overrides-file",
			"limits.max-query-length", "limits.max-subquery-steps", "limits.max-subquery-total-steps",
			"limits.max-exemplars", "limits.max-metadata",
			"otlp.translation-strategy", "otlp.promote-resource-attributes", "otlp.promote-all-resource-attributes",
			"otlp.ignore-resource-attributes", "otlp.keep-identifying-resource-attributes", "otlp.convert-histograms-to-nhcb",
			"otlp.promote-scope-metadata", "otlp.label-name-underscore-sanitization", "otlp.label-name-preserve-multiple-underscores",
			"limits.accept-ha-samples", "limits.ha-cluster-label", "limits.ha-replica-label", "limits.ha-max-clusters",
		}, names)
		require.Equal(t, tenancy.DefaultLimitsConfig(), cfg)
		require.NoError(t, cfg.Validate())
		require.NoError(t, fs.Parse([]string{
			"--limits.ingestion-rate=1.5", "--limits.ingestion-burst=2", "--limits.request-rate=3", "--limits.request-burst=4",
			"--limits.max-active-series=5", "--limits.max-series-per-query=6", "--limits.max-samples-per-query=7",
			"--limits.query-rate=8", "--limits.query-burst=9", "--limits.max-concurrent-queries=10", "--limits.overrides-file=o.yaml",
			"--limits.max-query-length=11", "--limits.max-subquery-steps=12", "--limits.max-subquery-total-steps=13",
			"--limits.max-exemplars=14", "--limits.max-metadata=15",
		}))
		require.Equal(t, tenancy.LimitsConfig{TenantLimits: tenancy.TenantLimits{
			IngestionRate: 1.5, IngestionBurst: 2, RequestRate: 3, RequestBurst: 4, MaxActiveSeries: 5, MaxSeriesPerQuery: 6,
			MaxSamplesPerQuery: 7, QueryRate: 8, QueryBurst: 9, MaxConcurrentQueries: 10,
			MaxQueryLength: 11, MaxSubquerySteps: 12, MaxSubqueryTotalSteps: 13, MaxExemplars: 14, MaxMetadata: 15,
			OTLP: tenancy.DefaultOTLPTranslation(), HA: tenancy.DefaultHALimits(),
		}, OverridesFile: "o.yaml"}, cfg)
	})
	tests := []struct {
		name    string
		mutate  func(*tenancy.TenantLimits)
		wantErr string
	}{
		{"defaults", func(*tenancy.TenantLimits) {}, ""},
		{"all unlimited", func(tl *tenancy.TenantLimits) { *tl = tenancy.TenantLimits{} }, ""},
		{"negative rate", func(tl *tenancy.TenantLimits) { tl.IngestionRate = -1 }, "ingestion_rate"},
		{"NaN rate", func(tl *tenancy.TenantLimits) { tl.QueryRate = math.NaN() }, "query_rate"},
		{"infinite rate", func(tl *tenancy.TenantLimits) { tl.RequestRate = math.Inf(1) }, "request_rate"},
		{"rate without burst", func(tl *tenancy.TenantLimits) { tl.QueryBurst = 0 }, "query_burst must be at least 1"},
		{"negative burst", func(tl *tenancy.TenantLimits) { tl.IngestionBurst = -1 }, "ingestion_burst"},
		{"negative series", func(tl *tenancy.TenantLimits) { tl.MaxActiveSeries = -1 }, "max_active_series"},
		{"negative concurrency", func(tl *tenancy.TenantLimits) { tl.MaxConcurrentQueries = -1 }, "max_concurrent_queries"},
		{"negative query length", func(tl *tenancy.TenantLimits) { tl.MaxQueryLength = -1 }, "max_query_length"},
		{"negative subquery steps", func(tl *tenancy.TenantLimits) { tl.MaxSubqueryTotalSteps = -1 }, "max_subquery_total_steps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tenancy.DefaultLimitsConfig()
			tt.mutate(&cfg.TenantLimits)
			err := cfg.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			_, err = tenancy.NewLimits(cfg, nil, nil)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestOverridesFile(t *testing.T) {
	d := tenancy.DefaultTenantLimits()
	tests := []struct {
		name    string
		yaml    string
		want    map[tenancy.ID]tenancy.TenantLimits
		wantErr string
	}{
		{"empty file", "", map[tenancy.ID]tenancy.TenantLimits{}, ""},
		{"no overrides", "overrides:\n", map[tenancy.ID]tenancy.TenantLimits{}, ""},
		{"partial override keeps defaults", `
overrides:
  acme:
    ingestion_rate: 50000
    max_active_series: 1_000
  big.co-2:
    max_concurrent_queries: 0
    query_rate: 2.5
`, map[tenancy.ID]tenancy.TenantLimits{
			"acme":     func() tenancy.TenantLimits { tl := d; tl.IngestionRate = 50000; tl.MaxActiveSeries = 1000; return tl }(),
			"big.co-2": func() tenancy.TenantLimits { tl := d; tl.MaxConcurrentQueries = 0; tl.QueryRate = 2.5; return tl }(),
		}, ""},
		{"every key", `
overrides:
  t:
    ingestion_rate: 1
    ingestion_burst: 2
    request_rate: 3
    request_burst: 4
    max_active_series: 5
    max_series_per_query: 6
    max_samples_per_query: 7
    query_rate: 8
    query_burst: 9
    max_concurrent_queries: 10
    max_query_length: 11
    max_subquery_steps: 12
    max_subquery_total_steps: 13
    max_exemplars: 14
    max_metadata: 15
`, map[tenancy.ID]tenancy.TenantLimits{"t": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, tenancy.DefaultOTLPTranslation(), d.HA}}, ""},
		{"unknown key", "overrides:\n  acme:\n    ingestion_rat: 5\n", nil, "ingestion_rat"},
		{"unknown top-level key", "override:\n  acme: {}\n", nil, "override"},
		{"invalid tenant", "overrides:\n  'acme corp': {ingestion_rate: 5}\n", nil, "acme corp"},
		{"duplicate tenant", "overrides:\n  acme: {}\n  acme: {}\n", nil, "already defined"},
		{"negative value", "overrides:\n  acme: {max_active_series: -1}\n", nil, "max_active_series -1 is negative"},
		{"rate without burst", "overrides:\n  acme: {ingestion_rate: 5, ingestion_burst: 0}\n", nil, "ingestion_burst must be at least 1"},
		{"NaN", "overrides:\n  acme: {ingestion_rate: .nan}\n", nil, "ingestion_rate"},
		{"wrong type", "overrides:\n  acme: {max_active_series: lots}\n", nil, "lots"},
		{"two documents", "overrides: {}\n---\noverrides: {}\n", nil, "more than one YAML document"},
		{"not YAML", "overrides: [\n", nil, "decode overrides"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tenancy.ParseOverrides([]byte(tt.yaml), d)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)

			env := newLimits(t, d, tt.yaml+"\n")
			for id, tl := range tt.want {
				require.Equal(t, tl, env.l.For(id))
			}
			require.Equal(t, d, env.l.For("someone-else"))
		})
	}
}

func TestNewLimitsRefusesInvalidOverrides(t *testing.T) {
	cfg := tenancy.DefaultLimitsConfig()
	cfg.OverridesFile = writeFile(t, "o.yaml", []byte("overrides:\n  acme: {bogus: 1}\n"))
	_, err := tenancy.NewLimits(cfg, nil, nil)
	require.ErrorContains(t, err, "bogus")
	cfg.OverridesFile = filepath.Join(t.TempDir(), "missing.yaml")
	_, err = tenancy.NewLimits(cfg, nil, nil)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestReload(t *testing.T) {
	env := newLimits(t, tenancy.DefaultTenantLimits(), "overrides:\n  acme: {max_active_series: 10}\n")
	require.Equal(t, 10, env.l.MaxActiveSeries("acme"))

	require.NoError(t, os.WriteFile(env.file, []byte("overrides:\n  acme: {max_active_series: 20, max_series_per_query: 7}\n  beta: {max_samples_per_query: 3}\n"), 0o600))
	require.NoError(t, env.l.Reload())
	require.Equal(t, 20, env.l.MaxActiveSeries("acme"))
	require.Equal(t, 7, env.l.MaxSeriesPerQuery("acme"))
	require.Equal(t, 3, env.l.MaxSamplesPerQuery("beta"))

	for name, content := range map[string]string{
		"invalid YAML":  "overrides: {acme: [",
		"invalid key":   "overrides:\n  acme: {max_active_series: 30, nope: 1}\n",
		"invalid value": "overrides:\n  acme: {max_active_series: -30}\n",
	} {
		require.NoError(t, os.WriteFile(env.file, []byte(content), 0o600), name)
		require.Error(t, env.l.Reload(), name)
		require.Equal(t, 20, env.l.MaxActiveSeries("acme"), name)
		require.Equal(t, 3, env.l.MaxSamplesPerQuery("beta"), name)
	}
	require.NoError(t, os.Remove(env.file))
	require.ErrorIs(t, env.l.Reload(), os.ErrNotExist)
	require.Equal(t, 20, env.l.MaxActiveSeries("acme"))
	require.Contains(t, env.logs.String(), "previous limits stay in force")

	require.NoError(t, os.WriteFile(env.file, []byte("overrides: {}\n"), 0o600))
	require.NoError(t, env.l.Reload())
	require.Equal(t, tenancy.DefaultTenantLimits().MaxActiveSeries, env.l.MaxActiveSeries("acme"))

	require.Equal(t, 3.0, metricValue(t, env.reg, "luminate_limits_overrides_reloads_total", map[string]string{"result": "success"}))
	require.Equal(t, 4.0, metricValue(t, env.reg, "luminate_limits_overrides_reloads_total", map[string]string{"result": "failure"}))
}

func TestSeriesLimitsMethodValue(t *testing.T) {
	env := newLimits(t, tenancy.DefaultTenantLimits(), "overrides:\n  acme: {max_active_series: 0}\n  small: {max_active_series: 5}\n")
	var sl storage.SeriesLimits = env.l.MaxActiveSeries
	require.Equal(t, 0, sl("acme"))
	require.Equal(t, 5, sl("small"))
	require.Equal(t, tenancy.DefaultTenantLimits().MaxActiveSeries, sl("other"))
}

func TestAllowIngest(t *testing.T) {
	env := newLimits(t, tenancy.DefaultTenantLimits(), "overrides:\n  acme: {ingestion_rate: 1000, ingestion_burst: 2000}\n")
	l := env.l
	require.NoError(t, l.AllowIngest("acme", 0))
	require.NoError(t, l.AllowIngest("acme", 1500))
	require.NoError(t, l.AllowIngest("acme", 500))

	err := l.AllowIngest("acme", 100)
	le := requireLimitError(t, err, "ingestion_rate", "--limits.ingestion-rate")
	require.Equal(t, "ingestion rate limit of 1000 samples/s exceeded for tenant acme (raise --limits.ingestion-rate or its per-tenant override ingestion_rate)", le.Error())
	require.Equal(t, 100*time.Millisecond, le.RetryAfter)
	require.Equal(t, tenancy.ID("acme"), le.Tenant)
	require.Equal(t, 1.0, rateLimited(t, env.reg, "acme", "ingestion_rate"))

	// A refused write takes nothing: after RetryAfter it fits exactly.
	env.clock.Advance(le.RetryAfter)
	require.NoError(t, l.AllowIngest("acme", 100))
	require.Error(t, l.AllowIngest("acme", 1))

	// Larger than the burst: never fits, so it is a 413 without
	// Retry-After, not a 429 a sender would retry for ever; the message
	// names the burst.
	env.clock.Advance(time.Hour)
	err = l.AllowIngest("acme", 2001)
	require.ErrorAs(t, err, &le)
	require.ErrorIs(t, err, tenancy.ErrRequestTooLarge)
	require.NotErrorIs(t, err, tenancy.ErrRateLimited)
	require.True(t, le.TooLarge)
	require.Equal(t, "ingestion_burst", le.Limit)
	require.Contains(t, le.Error(), "--limits.ingestion-burst")
	require.Contains(t, le.Error(), "per-tenant override ingestion_burst")
	require.Contains(t, le.Error(), "2001 samples")
	require.Zero(t, le.RetryAfter)
	info := apierror.Classify(err)
	require.Equal(t, http.StatusRequestEntityTooLarge, info.Status)
	require.Zero(t, info.RetryAfter)
	require.Equal(t, 1.0, rateLimited(t, env.reg, "acme", "ingestion_burst"))

	// Other tenants have their own, default, budget.
	require.NoError(t, l.AllowIngest("beta", 1_000_000))
}

func TestAllowRequestAndQuery(t *testing.T) {
	tests := []struct {
		name  string
		allow func(*tenancy.Limits, tenancy.ID) error
		limit string
		flag  string
		msg   string
	}{
		{"request", (*tenancy.Limits).AllowRequest, "request_rate", "--limits.request-rate",
			"request rate limit of 2 requests/s exceeded for tenant acme (raise --limits.request-rate or its per-tenant override request_rate)"},
		{"query", (*tenancy.Limits).AllowQuery, "query_rate", "--limits.query-rate",
			"query rate limit of 2 queries/s exceeded for tenant acme (raise --limits.query-rate or its per-tenant override query_rate)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newLimits(t, tenancy.DefaultTenantLimits(),
				"overrides:\n  acme: {request_rate: 2, request_burst: 3, query_rate: 2, query_burst: 3}\n  free: {request_rate: 0, query_rate: 0}\n")
			for range 3 {
				require.NoError(t, tt.allow(env.l, "acme"))
			}
			err := tt.allow(env.l, "acme")
			le := requireLimitError(t, err, tt.limit, tt.flag)
			require.Equal(t, tt.msg, le.Error())
			require.Equal(t, 500*time.Millisecond, le.RetryAfter)
			require.Equal(t, 1.0, rateLimited(t, env.reg, "acme", tt.limit))

			env.clock.Advance(time.Second)
			require.NoError(t, tt.allow(env.l, "acme"))
			require.NoError(t, tt.allow(env.l, "acme"))
			require.Error(t, tt.allow(env.l, "acme"))

			for range 10_000 {
				require.NoError(t, tt.allow(env.l, "free"))
			}
		})
	}
}

func TestReloadUpdatesLimiters(t *testing.T) {
	env := newLimits(t, tenancy.DefaultTenantLimits(), "overrides:\n  acme: {request_rate: 1, request_burst: 1}\n")
	require.NoError(t, env.l.AllowRequest("acme"))
	require.Error(t, env.l.AllowRequest("acme"))

	// Raised: the bucket keeps its (empty) tokens but refills faster.
	require.NoError(t, os.WriteFile(env.file, []byte("overrides:\n  acme: {request_rate: 10, request_burst: 10}\n"), 0o600))
	require.NoError(t, env.l.Reload())
	env.clock.Advance(500 * time.Millisecond)
	for range 5 {
		require.NoError(t, env.l.AllowRequest("acme"))
	}
	require.Error(t, env.l.AllowRequest("acme"))

	// Unlimited, then limited again: a fresh full bucket.
	require.NoError(t, os.WriteFile(env.file, []byte("overrides:\n  acme: {request_rate: 0}\n"), 0o600))
	require.NoError(t, env.l.Reload())
	for range 100 {
		require.NoError(t, env.l.AllowRequest("acme"))
	}
	require.NoError(t, os.WriteFile(env.file, []byte("overrides:\n  acme: {request_rate: 1, request_burst: 2}\n"), 0o600))
	require.NoError(t, env.l.Reload())
	require.NoError(t, env.l.AllowRequest("acme"))
	require.NoError(t, env.l.AllowRequest("acme"))
	requireLimitError(t, env.l.AllowRequest("acme"), "request_rate", "--limits.request-rate")
}

func TestAcquireQuery(t *testing.T) {
	env := newLimits(t, tenancy.DefaultTenantLimits(), "overrides:\n  acme: {max_concurrent_queries: 2}\n  free: {max_concurrent_queries: 0}\n")
	ctx := context.Background()
	r1, err := env.l.AcquireQuery(ctx, "acme")
	require.NoError(t, err)
	r2, err := env.l.AcquireQuery(ctx, "acme")
	require.NoError(t, err)

	_, err = env.l.AcquireQuery(ctx, "acme")
	le := requireLimitError(t, err, "max_concurrent_queries", "--limits.max-concurrent-queries")
	require.Contains(t, le.Error(), "tenant acme already runs 2 concurrent queries")
	require.Equal(t, 1.0, rateLimited(t, env.reg, "acme", "max_concurrent_queries"))

	// Other tenants are not affected.
	r3, err := env.l.AcquireQuery(ctx, "beta")
	require.NoError(t, err)
	r3()

	// Releasing twice frees one slot only.
	r1()
	r1()
	r4, err := env.l.AcquireQuery(ctx, "acme")
	require.NoError(t, err)
	_, err = env.l.AcquireQuery(ctx, "acme")
	require.Error(t, err)
	r2()
	r4()

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = env.l.AcquireQuery(canceled, "acme")
	require.ErrorIs(t, err, context.Canceled)

	var releases []func()
	for range 100 {
		r, err := env.l.AcquireQuery(ctx, "free")
		require.NoError(t, err)
		releases = append(releases, r)
	}
	for _, r := range releases {
		r()
	}
}

func TestEvictIdleTenants(t *testing.T) {
	env := newLimits(t, tenancy.DefaultTenantLimits(), "")
	require.NoError(t, env.l.AllowRequest("a"))
	require.NoError(t, env.l.AllowIngest("b", 10))
	release, err := env.l.AcquireQuery(context.Background(), "c")
	require.NoError(t, err)
	require.Equal(t, 3, tenancy.TenantStates(env.l))

	tenancy.EvictIdle(env.l)
	require.Equal(t, 3, tenancy.TenantStates(env.l), "recently used tenants stay")

	env.clock.Advance(time.Hour)
	require.NoError(t, env.l.AllowRequest("a"))
	tenancy.EvictIdle(env.l)
	require.Equal(t, 2, tenancy.TenantStates(env.l), "b is dropped; a was just used, c runs a query")

	release()
	env.clock.Advance(time.Hour)
	tenancy.EvictIdle(env.l)
	require.Zero(t, tenancy.TenantStates(env.l))
	require.NoError(t, env.l.AllowRequest("a"))
}

func TestRunReloadsChangedFile(t *testing.T) {
	env := newLimits(t, tenancy.DefaultTenantLimits(), "overrides:\n  acme: {max_active_series: 10}\n")
	tenancy.SetLimitsPollInterval(env.l, 10*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- env.l.Run(ctx) }()

	replaceFile(t, env.file, "overrides:\n  acme: {max_active_series: 12345}\n")
	require.Eventually(t, func() bool { return env.l.MaxActiveSeries("acme") == 12345 }, 10*time.Second, 5*time.Millisecond)

	// An invalid change is refused; the limits in force stay.
	replaceFile(t, env.file, "overrides:\n  acme: {max_active_series: x}\n")
	require.Eventually(t, func() bool {
		return strings.Contains(env.logs.String(), "previous limits stay in force")
	}, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, 12345, env.l.MaxActiveSeries("acme"))

	cancel()
	require.NoError(t, <-done)
}

// replaceFile replaces path atomically, as operators should.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// TestLimitsConcurrent uses the limits from many goroutines while the
// overrides are reloaded and idle tenants evicted; run it with -race. The
// concurrency gate must never admit more queries than the limit.
func TestLimitsConcurrent(t *testing.T) {
	files := []string{
		"overrides:\n  t0: {max_concurrent_queries: 3, ingestion_rate: 100, ingestion_burst: 1000}\n",
		"overrides:\n  t0: {max_concurrent_queries: 3, request_rate: 0}\n  t1: {query_rate: 1, query_burst: 1}\n",
	}
	env := newLimits(t, tenancy.DefaultTenantLimits(), files[0])
	tenants := []tenancy.ID{"t0", "t1", "t2"}
	var held, maxHeld atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				id := tenants[(g+i)%len(tenants)]
				_ = env.l.AllowIngest(id, 10)
				_ = env.l.AllowRequest(id)
				_ = env.l.AllowQuery(id)
				release, err := env.l.AcquireQuery(context.Background(), "t0")
				if err == nil {
					n := held.Add(1)
					for m := maxHeld.Load(); n > m && !maxHeld.CompareAndSwap(m, n); m = maxHeld.Load() {
					}
					held.Add(-1)
					release()
				}
			}
		})
	}
	var reloadErr error
	wg.Go(func() {
		for i := range 50 {
			tmp := env.file + ".tmp"
			reloadErr = errors.Join(os.WriteFile(tmp, []byte(files[i%2]), 0o600), os.Rename(tmp, env.file))
			if reloadErr == nil {
				reloadErr = env.l.Reload()
			}
			if reloadErr != nil {
				return
			}
			env.clock.Advance(time.Hour)
			tenancy.EvictIdle(env.l)
		}
	})
	wg.Wait()
	require.NoError(t, reloadErr)
	require.LessOrEqual(t, maxHeld.Load(), int64(3))
	require.Positive(t, maxHeld.Load())
}

func BenchmarkAllowIngest(b *testing.B) {
	l, err := tenancy.NewLimits(tenancy.DefaultLimitsConfig(), nil, nil)
	require.NoError(b, err)
	tenants := []tenancy.ID{"a", "b", "c", "d"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if err := l.AllowIngest(tenants[i%len(tenants)], 1); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
