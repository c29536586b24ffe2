package promql_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/api"
	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/promql"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/badger"
	"github.com/luminate-io/luminate/tenancy"
)

// Test requests carry their principal in these headers; headerAuth,
// standing in for token verification, reads it.
const (
	tenantHeader = "X-Test-Tenant"
	scopesHeader = "X-Test-Scopes"
)

// headerAuth authenticates a request by its test headers.
type headerAuth struct{}

func (headerAuth) Authenticate(r *http.Request) (tenancy.Principal, error) {
	id := r.Header.Get(tenantHeader)
	if id == "" {
		return tenancy.Principal{}, tenancy.ErrNoTenant
	}
	p := tenancy.Principal{Tenant: tenancy.ID(id), Scopes: []tenancy.Scope{tenancy.ScopeRead}}
	if s, ok := r.Header[scopesHeader]; ok {
		p.Scopes = nil
		for _, sc := range strings.Fields(strings.Join(s, " ")) {
			p.Scopes = append(p.Scopes, tenancy.Scope(sc))
		}
	}
	return p, nil
}

// newRouter mounts the API's routes on an api router over store, as
// cmd/luminate does, with queries admitted by limits if it admits them.
func newRouter(tb testing.TB, a *promql.API, store storage.MetricsStore, limits promql.Limits) http.Handler {
	tb.Helper()
	opts := api.Options{Auth: headerAuth{}, Tenants: store, Storage: store, Gatherer: prometheus.NewRegistry()}
	if q, ok := limits.(api.QueryAdmitter); ok {
		opts.Queries = q
	}
	for _, ep := range a.Routes() {
		opts.Routes = append(opts.Routes, api.Route{Path: ep.Path, Methods: ep.Methods, Name: ep.Name, Scope: tenancy.ScopeRead,
			Format: apierror.Prometheus, Query: ep.Query, Headers: ep.Headers, Serve: ep.Serve})
	}
	h, err := api.NewRouter(opts, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(tb, err)
	return h
}

type env struct {
	t     *testing.T
	store *badger.Store
	api   *promql.API
	srv   *httptest.Server
}

// newEnv starts the API over a fresh Badger store.
func newEnv(t *testing.T, cfg promql.Config, limits promql.Limits) *env {
	t.Helper()
	store, err := badger.New(badger.Config{Path: t.TempDir()}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	return newEnvOn(t, store, cfg, limits)
}

func newEnvOn(t *testing.T, store *badger.Store, cfg promql.Config, limits promql.Limits) *env {
	t.Helper()
	api, err := promql.New(cfg, store, limits, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, api.Close()) })
	srv := httptest.NewServer(newRouter(t, api, store, limits))
	t.Cleanup(srv.Close)
	return &env{t: t, store: store, api: api, srv: srv}
}

// sample is one float sample of a series given in PromQL text form.
type sample struct {
	series string
	t      int64 // milliseconds
	v      float64
}

// load appends samples for tenant id.
func (e *env) load(id tenancy.ID, samples ...sample) {
	e.t.Helper()
	app := e.store.ForTenant(id).AppenderV2(context.Background())
	for _, s := range samples {
		ls, err := parserMetric(s.series)
		require.NoError(e.t, err)
		_, err = app.Append(0, ls, 0, s.t, s.v, nil, nil, promstorage.AOptions{})
		require.NoError(e.t, err)
	}
	require.NoError(e.t, app.Commit())
}

// series returns samples of one series every step from start for n steps,
// with value f(i).
func series(name string, start, step int64, n int, f func(i int) float64) []sample {
	out := make([]sample, n)
	for i := range out {
		out[i] = sample{name, start + int64(i)*step, f(i)}
	}
	return out
}

// response is a raw response.
type response struct {
	status int
	header http.Header
	body   string
}

// get sends GET path?params as tenant id ("" for no principal).
func (e *env) get(id tenancy.ID, path string, params url.Values) response {
	e.t.Helper()
	u := e.srv.URL + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(e.t, err)
	return e.do(id, req)
}

// post sends a form POST as tenant id.
func (e *env) post(id tenancy.ID, path string, params url.Values) response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(params.Encode()))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return e.do(id, req)
}

func (e *env) do(id tenancy.ID, req *http.Request) response {
	e.t.Helper()
	if id != "" {
		req.Header.Set(tenantHeader, string(id))
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// envelope is Prometheus' response envelope, decoded.
type envelope struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
	Infos     []string        `json:"infos"`
}

func (r response) envelope(t *testing.T) envelope {
	t.Helper()
	var env envelope
	require.NoError(t, json.Unmarshal([]byte(r.body), &env), "body %s", r.body)
	return env
}

func vals(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

func parserMetric(s string) (labels.Labels, error) {
	return parser.NewParser(parser.Options{}).ParseMetric(s)
}
