package grafana

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/api"
	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/native"
	"github.com/luminate-io/luminate/promql"
	"github.com/luminate-io/luminate/remoteread"
	"github.com/luminate-io/luminate/remotewrite"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/badger"
	"github.com/luminate-io/luminate/storage/clickhouse"
	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
	"github.com/luminate-io/luminate/tenancy"
)

// luminate is a Luminate server assembled in-process from the real
// components, wired as cmd/luminate's serve wires them: one registry shared
// by the verifier, the limits, the store, the write, read and query
// handlers and the router, served at /metrics.
type luminate struct {
	t       *testing.T
	handler http.Handler
	secret  []byte
}

// throttledTenant has an ingestion burst of one sample (limits overrides
// file), so that any larger write is refused by a rate limit.
const throttledTenant tenancy.ID = "throttled"

// newLuminate assembles a server over the store openStore returns; the
// store is opened on the shared registry and closed when t ends.
func newLuminate(t *testing.T, openStore func(reg prometheus.Registerer, limits *tenancy.Limits) storage.MetricsStore) *luminate {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	dir := t.TempDir()

	// The collectors cmd/luminate's newRegistry adds: Go runtime, process,
	// build info.
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("luminate"),
	)

	// The secret is the file's text, as `openssl rand -hex 32` writes it.
	raw := make([]byte, 32)
	_, err := rand.Read(raw)
	require.NoError(t, err)
	secret := []byte(hex.EncodeToString(raw))
	secretFile := filepath.Join(dir, "hmac.secret")
	require.NoError(t, os.WriteFile(secretFile, secret, 0o600))
	verifier, err := tenancy.NewVerifier(tenancy.AuthConfig{HMACSecretFile: secretFile}, logger, reg)
	require.NoError(t, err)

	overrides := filepath.Join(dir, "overrides.yaml")
	require.NoError(t, os.WriteFile(overrides,
		fmt.Appendf(nil, "overrides:\n  %s:\n    ingestion_rate: 1\n    ingestion_burst: 1\n", throttledTenant), 0o600))
	limitsCfg := tenancy.DefaultLimitsConfig()
	limitsCfg.OverridesFile = overrides
	limits, err := tenancy.NewLimits(limitsCfg, logger, reg)
	require.NoError(t, err)

	store := openStore(reg, limits)
	t.Cleanup(func() { require.NoError(t, store.Close()) })

	queryAPI, err := promql.New(promql.DefaultConfig(), store, limits, logger, reg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, queryAPI.Close()) })
	remoteRead, err := remoteread.New(remoteread.DefaultConfig(), limits, logger, reg)
	require.NoError(t, err)

	post := []string{http.MethodPost}
	ingester := remotewrite.NewIngester(remotewrite.DefaultConfig(), limits, logger, reg)
	routes := []api.Route{
		{Path: "/api/v1/write", Methods: post, Scope: tenancy.ScopeWrite, Format: apierror.Text, Serve: remotewrite.NewHandler(ingester).Serve},
		{Path: "/api/v1/metrics", Methods: post, Scope: tenancy.ScopeWrite, Format: apierror.Native, Serve: native.NewWrite(ingester, logger).Serve},
	}
	maxBody, bodySetting := remoteRead.ReadBody()
	routes = append(routes, api.Route{Path: "/api/v1/read", Methods: post, Scope: tenancy.ScopeRead, Format: apierror.Text, Query: true,
		ReadBody: maxBody, ReadBodySetting: bodySetting, Serve: remoteRead.Serve})
	for _, ep := range queryAPI.Routes() {
		routes = append(routes, api.Route{Path: ep.Path, Methods: ep.Methods, Name: ep.Name, Scope: tenancy.ScopeRead,
			Format: apierror.Prometheus, Query: ep.Query, Headers: ep.Headers, Serve: ep.Serve})
	}
	router, err := api.NewRouter(api.Options{Auth: verifier, Limits: limits, Queries: limits, Storage: store, Tenants: store, Gatherer: reg, Routes: routes}, logger, reg)
	require.NoError(t, err)
	return &luminate{t: t, handler: router, secret: secret}
}

// newBadgerLuminate is a Luminate on a Badger store in a temporary
// directory, with short idle and checkpoint intervals so that the gauges
// they set (active series, series in the index) are set within seconds.
func newBadgerLuminate(t *testing.T) *luminate {
	return newLuminate(t, func(reg prometheus.Registerer, limits *tenancy.Limits) storage.MetricsStore {
		cfg := badger.DefaultConfig()
		cfg.Path = t.TempDir()
		cfg.IdleTimeout = 100 * time.Millisecond
		cfg.CheckpointInterval = 100 * time.Millisecond
		cfg.SeriesLimits = limits.MaxActiveSeries
		s, err := badger.New(cfg, slog.New(slog.DiscardHandler), reg)
		require.NoError(t, err)
		return s
	})
}

// newClickHouseLuminate is a Luminate on a real clickhouse-server started
// for t (skipped when the server is not installed, failing under CI=true),
// and the server's handle.
func newClickHouseLuminate(t *testing.T) (*luminate, *chtest.Server) {
	srv := chtest.New(t)
	return newLuminate(t, func(reg prometheus.Registerer, limits *tenancy.Limits) storage.MetricsStore {
		cfg := clickhouse.DefaultConfig()
		cfg.DSN = srv.DSN()
		cfg.SeriesLimits = limits.MaxActiveSeries
		s, err := clickhouse.New(cfg, slog.New(slog.DiscardHandler), reg)
		require.NoError(t, err)
		return s
	}), srv
}

// do serves one request as tenant (no token when tenant is empty) and
// returns the response.
func (l *luminate) do(tenant tenancy.ID, method, path, contentType string, body []byte) *http.Response {
	l.t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if tenant != "" {
		tok, err := tenancy.Mint(l.secret, "", tenant, []tenancy.Scope{tenancy.ScopeRead, tenancy.ScopeWrite}, time.Hour, "", "", time.Now())
		require.NoError(l.t, err)
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	rec := httptest.NewRecorder()
	l.handler.ServeHTTP(rec, req)
	return rec.Result()
}

// expect serves one request and checks its status.
func (l *luminate) expect(status int, tenant tenancy.ID, method, path, contentType string, body []byte) {
	l.t.Helper()
	resp := l.do(tenant, method, path, contentType, body)
	b, _ := io.ReadAll(resp.Body)
	require.Equal(l.t, status, resp.StatusCode, "%s %s as %q: %s", method, path, tenant, b)
}

// exercise makes the requests that give Luminate's labelled metrics their
// children: accepted and rejected writes for two tenants, a write refused
// by a rate limit, requests without a token, PromQL queries and remote
// reads.
func (l *luminate) exercise() {
	l.t.Helper()
	now := time.Now()
	for _, tenant := range []tenancy.ID{"team-a", "team-b"} {
		var items []string
		for i := range 3 {
			items = append(items, fmt.Sprintf(`{"name":"dashboard_test_metric","dimensions":{"series":"%d"},"value":%d,"timestamp":%d}`,
				i, i, now.Add(-time.Minute).UnixMilli()))
		}
		l.expect(http.StatusOK, tenant, http.MethodPost, "/api/v1/metrics", "application/json",
			[]byte(`{"metrics":[`+strings.Join(items, ",")+`]}`))
		// One valid and one invalid item: 400, partial.
		l.expect(http.StatusBadRequest, tenant, http.MethodPost, "/api/v1/metrics", "application/json",
			fmt.Appendf(nil, `{"metrics":[{"name":"dashboard_test_metric","value":1,"timestamp":%d},{"value":1}]}`, now.UnixMilli()))
	}
	// Two samples over a burst of one: a write that can never fit is 413,
	// not a 429 a sender would retry for ever.
	l.expect(http.StatusRequestEntityTooLarge, throttledTenant, http.MethodPost, "/api/v1/metrics", "application/json",
		[]byte(`{"metrics":[{"name":"a","value":1},{"name":"b","value":2}]}`))
	l.expect(http.StatusUnauthorized, "", http.MethodGet, "/api/v1/query?query=1", "", nil)

	start := strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)
	end := strconv.FormatInt(now.Unix(), 10)
	l.expect(http.StatusOK, "team-a", http.MethodGet, "/api/v1/query?query="+url.QueryEscape("sum(dashboard_test_metric)"), "", nil)
	form := url.Values{"query": {"rate(dashboard_test_metric[5m])"}, "start": {start}, "end": {end}, "step": {"15"}}
	l.expect(http.StatusOK, "team-a", http.MethodPost, "/prometheus/api/v1/query_range", "application/x-www-form-urlencoded", []byte(form.Encode()))
	l.expect(http.StatusBadRequest, "team-a", http.MethodGet, "/api/v1/query?query="+url.QueryEscape("sum("), "", nil)
	l.expect(http.StatusOK, "team-a", http.MethodGet, "/api/v1/label/__name__/values?start="+start+"&end="+end, "", nil)
	l.expect(http.StatusOK, "team-a", http.MethodGet, "/api/v1/series?match[]=dashboard_test_metric&start="+start+"&end="+end, "", nil)

	rr := &prompb.ReadRequest{Queries: []*prompb.Query{{
		StartTimestampMs: now.Add(-time.Hour).UnixMilli(),
		EndTimestampMs:   now.UnixMilli(),
		Matchers:         []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: model.MetricNameLabel, Value: "dashboard_test_metric"}},
	}}}
	for _, accepted := range []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES, prompb.ReadRequest_STREAMED_XOR_CHUNKS} {
		rr.AcceptedResponseTypes = []prompb.ReadRequest_ResponseType{accepted}
		b, err := rr.Marshal()
		require.NoError(l.t, err)
		l.expect(http.StatusOK, "team-b", http.MethodPost, "/api/v1/read", "application/x-protobuf", snappy.Encode(nil, b))
	}
}

// family is one metric family Luminate serves.
type family struct {
	name   string
	typ    dto.MetricType
	n      int             // metrics (children) in the family
	labels map[string]bool // label names of its children
}

// scrape reads /metrics through the router, as Prometheus scrapes it (with
// a token holding the operator scope: /metrics names every tenant), and
// returns its families by name.
func (l *luminate) scrape() map[string]family {
	l.t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	tok, err := tenancy.Mint(l.secret, "", "prometheus", []tenancy.Scope{tenancy.ScopeOperator}, time.Hour, "", "", time.Now())
	require.NoError(l.t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	l.handler.ServeHTTP(rec, req)
	resp := rec.Result()
	require.Equal(l.t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(l.t, err)
	out := make(map[string]family, len(mfs))
	for name, mf := range mfs {
		f := family{name: name, typ: mf.GetType(), n: len(mf.GetMetric()), labels: map[string]bool{}}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				f.labels[lp.GetName()] = true
			}
		}
		out[name] = f
	}
	return out
}

// scrapeWhen scrapes until ready says the families are complete (for the
// gauges background jobs set), failing after a generous deadline.
func (l *luminate) scrapeWhen(what string, ready func(map[string]family) bool) map[string]family {
	l.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		fams := l.scrape()
		if ready(fams) {
			return fams
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("/metrics did not show %s within 30s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
