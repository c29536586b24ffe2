package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/api"
	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage/badger"
	"github.com/luminate-io/luminate/tenancy"
)

// env is a router over a real Badger store and a real JWT verifier.
type env struct {
	t      *testing.T
	store  *badger.Store
	reg    *prometheus.Registry
	logs   *syncBuffer
	secret []byte
	srv    *httptest.Server
	dir    string // the store's data directory is under it
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// lines decodes the JSON log lines written so far.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		out = append(out, m)
	}
	return out
}

func newEnv(t *testing.T, routes ...api.Route) *env {
	t.Helper()
	return newEnvWith(t, nil, routes...)
}

// newEnvWith is newEnv with the router options adjusted by mutate.
func newEnvWith(t *testing.T, mutate func(*api.Options), routes ...api.Route) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, reg: prometheus.NewRegistry(), logs: &syncBuffer{}, dir: dir}
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	cfg := badger.DefaultConfig()
	cfg.Path = filepath.Join(dir, "data")
	store, err := badger.New(cfg, logger, e.reg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	e.store = store

	secretFile := filepath.Join(dir, "hmac.secret")
	_, err = tenancy.EnsureDevSecret(secretFile)
	require.NoError(t, err)
	e.secret, err = tenancy.LoadHMACSecret(secretFile)
	require.NoError(t, err)
	verifier, err := tenancy.NewVerifier(tenancy.AuthConfig{HMACSecretFile: secretFile}, logger, e.reg)
	require.NoError(t, err)

	opts := api.Options{Auth: verifier, Storage: store, Gatherer: e.reg, Routes: routes}
	if mutate != nil {
		mutate(&opts)
	}
	h, err := api.NewRouter(opts, logger, e.reg)
	require.NoError(t, err)
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) token(tenant tenancy.ID, ttl time.Duration, scopes ...tenancy.Scope) string {
	tok, err := tenancy.Mint(e.secret, "HS256", tenant, scopes, ttl, "", "", time.Now())
	require.NoError(e.t, err)
	return tok
}

// do sends a request and returns the response with its body read.
func (e *env) do(t *testing.T, method, path, token string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

// counter returns luminate_http_requests_total{route, code}, and the
// sample count of the duration histogram with the same labels.
func (e *env) counter(route, code string) (requests float64, observations uint64) {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	require.NoError(e.t, err)
	match := func(m *dto.Metric) bool {
		var r, c string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "route":
				r = l.GetValue()
			case "code":
				c = l.GetValue()
			}
		}
		return r == route && c == code
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if !match(m) {
				continue
			}
			switch mf.GetName() {
			case "luminate_http_requests_total":
				requests = m.GetCounter().GetValue()
			case "luminate_http_request_duration_seconds":
				observations = m.GetHistogram().GetSampleCount()
			}
		}
	}
	return requests, observations
}

// principalEcho is a data handler answering with the principal it sees.
var principalEcho = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	p, err := tenancy.FromContext(r.Context())
	if err != nil {
		apierror.Write(w, apierror.Native, err, "")
		return
	}
	apierror.WriteJSON(w, http.StatusOK, map[string]any{"tenant": p.Tenant, "request_id": api.RequestID(r.Context())})
})

type envelope struct {
	Status string `json:"status"`
	Error  struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

func decodeEnvelope(t *testing.T, body string) envelope {
	t.Helper()
	var env envelope
	require.NoError(t, json.Unmarshal([]byte(body), &env), body)
	require.Equal(t, "error", env.Status)
	return env
}

func TestHealthAndReady(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/-/healthy", "/healthz", "/-/ready", "/readyz"} {
		t.Run(path, func(t *testing.T) {
			resp, _ := e.do(t, http.MethodGet, path, "", nil)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			resp, body := e.do(t, http.MethodHead, path, "", nil)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Empty(t, body)
		})
	}

	require.NoError(t, e.store.Close())
	for _, path := range []string{"/-/ready", "/readyz"} {
		resp, body := e.do(t, http.MethodGet, path, "", nil)
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, path)
		require.NotContains(t, body, "store closed", "the reason is the log's and the operator's: %s", path)
		require.Contains(t, body, "not ready", path)
	}
	for _, path := range []string{"/-/healthy", "/healthz"} {
		resp, _ := e.do(t, http.MethodGet, path, "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
	n, obs := e.counter("/-/ready", "503")
	require.Equal(t, 1.0, n)
	require.Equal(t, uint64(1), obs)
}

func TestRequestID(t *testing.T) {
	handlerLogs := &syncBuffer{}
	handlerLogger := slog.New(api.NewLogHandler(slog.NewJSONHandler(handlerLogs, nil)))
	e := newEnv(t,
		api.Route{Path: "/api/v1/echo", Handler: principalEcho},
		api.Route{Path: "/api/v1/log", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			handlerLogger.InfoContext(r.Context(), "from a handler")
			handlerLogger.InfoContext(r.Context(), "with its own tenant attribute", "tenant", "explicit")
			w.WriteHeader(http.StatusNoContent)
		})},
	)
	tok := e.token("acme", time.Hour, tenancy.ScopeRead)

	t.Run("incoming ID is kept", func(t *testing.T) {
		resp, body := e.do(t, http.MethodGet, "/api/v1/echo", tok, http.Header{"X-Request-Id": {"abc-123"}})
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, "abc-123", resp.Header.Get(api.RequestIDHeader))
		require.JSONEq(t, `{"tenant":"acme","request_id":"abc-123"}`, body)
	})
	t.Run("generated when missing", func(t *testing.T) {
		r1, _ := e.do(t, http.MethodGet, "/-/healthy", "", nil)
		r2, _ := e.do(t, http.MethodGet, "/-/healthy", "", nil)
		id1, id2 := r1.Header.Get(api.RequestIDHeader), r2.Header.Get(api.RequestIDHeader)
		require.NotEmpty(t, id1)
		require.NotEqual(t, id1, id2)
	})
	for name, bad := range map[string]string{
		"too long":   strings.Repeat("a", 129),
		"with space": "a b",
		"non-ASCII":  "caf\u00e9",
	} {
		t.Run("replaced when "+name, func(t *testing.T) {
			resp, _ := e.do(t, http.MethodGet, "/-/healthy", "", http.Header{"X-Request-Id": {bad}})
			id := resp.Header.Get(api.RequestIDHeader)
			require.NotEmpty(t, id)
			require.NotEqual(t, bad, id)
		})
	}
	t.Run("in every log line of the request", func(t *testing.T) {
		resp, _ := e.do(t, http.MethodGet, "/api/v1/echo", "", http.Header{"X-Request-Id": {"log-me"}})
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		var found bool
		for _, l := range e.logs.lines(t) {
			if l["path"] == "/api/v1/echo" && l["status"] == 401.0 {
				require.Equal(t, "log-me", l["request_id"])
				require.Equal(t, "request", l["msg"])
				found = true
			}
		}
		require.True(t, found, e.logs.String())
	})
	t.Run("in log lines of handlers, with the tenant", func(t *testing.T) {
		resp, _ := e.do(t, http.MethodGet, "/api/v1/log", tok, http.Header{"X-Request-Id": {"handler-1"}})
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
		lines := handlerLogs.lines(t)
		require.Len(t, lines, 2)
		require.Equal(t, "handler-1", lines[0]["request_id"])
		require.Equal(t, "acme", lines[0]["tenant"])
		require.Equal(t, "handler-1", lines[1]["request_id"])
		require.Equal(t, "explicit", lines[1]["tenant"], "attributes the line has are not duplicated")
		require.Equal(t, 2, strings.Count(handlerLogs.String(), `"tenant"`), "one tenant per line")
	})
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t,
		api.Route{Path: "/api/v1/echo", Methods: []string{http.MethodGet}, Handler: principalEcho},
		api.Route{Path: "/api/v1/write-only", Methods: []string{http.MethodPost}, Scope: tenancy.ScopeWrite, Handler: principalEcho},
	)
	valid := e.token("acme", time.Hour, tenancy.ScopeRead)
	writer := e.token("acme", time.Hour, tenancy.ScopeWrite)
	expired, err := tenancy.Mint(e.secret, "HS256", "acme", []tenancy.Scope{tenancy.ScopeRead}, time.Minute, "", "", time.Now().Add(-time.Hour))
	require.NoError(t, err)
	otherKey, err := tenancy.Mint(bytes.Repeat([]byte("k"), 32), "HS256", "acme", nil, time.Hour, "", "", time.Now())
	require.NoError(t, err)

	for _, tc := range []struct {
		name, method, path, token string
		wantStatus                int
		wantCode                  string
	}{
		{"no token", http.MethodGet, "/api/v1/echo", "", http.StatusUnauthorized, "unauthenticated"},
		{"garbage token", http.MethodGet, "/api/v1/echo", "not.a.jwt", http.StatusUnauthorized, "unauthenticated"},
		{"expired token", http.MethodGet, "/api/v1/echo", expired, http.StatusUnauthorized, "unauthenticated"},
		{"token signed with another key", http.MethodGet, "/api/v1/echo", otherKey, http.StatusUnauthorized, "unauthenticated"},
		{"missing scope", http.MethodPost, "/api/v1/write-only", valid, http.StatusForbidden, "permission_denied"},
		{"valid token", http.MethodGet, "/api/v1/echo", valid, http.StatusOK, ""},
		{"valid token with scope", http.MethodPost, "/api/v1/write-only", writer, http.StatusOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.do(t, tc.method, tc.path, tc.token, nil)
			require.Equal(t, tc.wantStatus, resp.StatusCode, body)
			if tc.wantStatus == http.StatusOK {
				require.Contains(t, body, `"tenant":"acme"`)
				return
			}
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			require.Equal(t, tc.wantCode, decodeEnvelope(t, body).Error.Code)
			if tc.wantStatus == http.StatusUnauthorized {
				require.True(t, strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer"))
			}
		})
	}

	t.Run("public routes need no token", func(t *testing.T) {
		resp, _ := e.do(t, http.MethodGet, "/-/healthy", "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})
	t.Run("logs name the tenant, never the token", func(t *testing.T) {
		logs := e.logs.String()
		for _, tok := range []string{valid, writer, expired, otherKey} {
			require.NotContains(t, logs, tok)
			// Not even the signature alone.
			require.NotContains(t, logs, tok[strings.LastIndexByte(tok, '.')+1:])
		}
		var tenantLogged bool
		for _, l := range e.logs.lines(t) {
			if l["path"] == "/api/v1/write-only" && l["status"] == 403.0 {
				require.Equal(t, "acme", l["tenant"])
				tenantLogged = true
			}
		}
		require.True(t, tenantLogged, logs)
	})
	n, _ := e.counter("/api/v1/echo", "401")
	require.Equal(t, 4.0, n)
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, api.Route{Path: "/api/v1/echo", Handler: principalEcho})
	for range 3 {
		e.do(t, http.MethodGet, "/-/healthy", "", nil)
	}
	e.do(t, http.MethodGet, "/api/v1/echo", "", nil)
	e.do(t, http.MethodGet, "/no/such/path", "", nil)

	for _, tc := range []struct {
		route, code string
		want        float64
	}{
		{"/-/healthy", "200", 3},
		{"/api/v1/echo", "401", 1},
		{"notfound", "404", 1},
	} {
		n, obs := e.counter(tc.route, tc.code)
		require.Equal(t, tc.want, n, "%s %s", tc.route, tc.code)
		require.Equal(t, uint64(tc.want), obs, "%s %s", tc.route, tc.code)
	}

	resp, body := e.do(t, http.MethodGet, "/metrics", e.token("ops", time.Hour, tenancy.ScopeOperator), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `luminate_http_requests_total{code="200",route="/-/healthy"} 3`)
	require.Contains(t, body, "luminate_http_request_duration_seconds_bucket")
	require.Contains(t, body, "luminate_auth_failures_total")
}

func TestPanicRecovery(t *testing.T) {
	e := newEnv(t,
		api.Route{Path: "/panic", Public: true, Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
			panic("boom")
		})},
		api.Route{Path: "/panic-after-write", Public: true, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
			panic("boom after write")
		})},
	)
	resp, body := e.do(t, http.MethodGet, "/panic", "", http.Header{"X-Request-Id": {"panic-1"}})
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	env := decodeEnvelope(t, body)
	require.Equal(t, "internal", env.Error.Code)
	require.Contains(t, env.Error.Message, "panic-1")
	require.NotContains(t, env.Error.Message, "boom", "internal details stay in the log")
	require.Contains(t, e.logs.String(), `"panic":"boom"`)

	// The server keeps serving.
	resp, _ = e.do(t, http.MethodGet, "/-/healthy", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// After the response started, the connection is aborted rather than
	// the client taking a truncated body for a whole one.
	r, err := e.srv.Client().Get(e.srv.URL + "/panic-after-write")
	if err == nil {
		_, err = io.ReadAll(r.Body)
		r.Body.Close()
	}
	require.Error(t, err)

	n, _ := e.counter("/panic", "500")
	require.Equal(t, 1.0, n)
	n, _ = e.counter("/panic-after-write", "500")
	require.Equal(t, 1.0, n)
}

func TestRoutes(t *testing.T) {
	var prefixPaths []string
	var mu sync.Mutex
	e := newEnv(t,
		api.Route{Path: "/api/v1/write", Methods: []string{http.MethodPost}, Public: true, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		})},
		api.Route{Path: "/prometheus/api/v1/", Prefix: true, Name: "prometheus", Public: true, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			prefixPaths = append(prefixPaths, r.URL.Path)
			mu.Unlock()
			w.WriteHeader(http.StatusOK)
		})},
	)
	resp, _ := e.do(t, http.MethodPost, "/api/v1/write", "", nil)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)

	resp, body := e.do(t, http.MethodGet, "/api/v1/write", "", nil)
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	require.Equal(t, "invalid_argument", decodeEnvelope(t, body).Error.Code)

	resp, body = e.do(t, http.MethodGet, "/api/v1/nope", "", nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Equal(t, "not_found", decodeEnvelope(t, body).Error.Code)

	for _, p := range []string{"/prometheus/api/v1/query", "/prometheus/api/v1/label/job/values"} {
		resp, _ = e.do(t, http.MethodGet, p, "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, p)
	}
	require.Equal(t, []string{"/prometheus/api/v1/query", "/prometheus/api/v1/label/job/values"}, prefixPaths)
	n, _ := e.counter("prometheus", "200")
	require.Equal(t, 2.0, n)
}

func TestNewRouterRejects(t *testing.T) {
	e := newEnv(t)
	verifier, err := tenancy.NewVerifier(tenancy.AuthConfig{Disabled: true}, nil, nil)
	require.NoError(t, err)
	ok := api.Options{Auth: verifier, Storage: e.store, Gatherer: prometheus.NewRegistry()}
	for name, mutate := range map[string]func(o *api.Options){
		"no auth":           func(o *api.Options) { o.Auth = nil },
		"no storage":        func(o *api.Options) { o.Storage = nil },
		"no gatherer":       func(o *api.Options) { o.Gatherer = nil },
		"route w/o handler": func(o *api.Options) { o.Routes = []api.Route{{Path: "/x"}} },
		"duplicate route": func(o *api.Options) {
			o.Routes = []api.Route{{Path: "/x", Handler: principalEcho}, {Path: "/x", Handler: principalEcho}}
		},
		"built-in route again": func(o *api.Options) {
			o.Routes = []api.Route{{Path: "/metrics", Methods: []string{http.MethodGet}, Handler: principalEcho}}
		},
	} {
		t.Run(name, func(t *testing.T) {
			o := ok
			mutate(&o)
			_, err := api.NewRouter(o, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			require.Error(t, err)
		})
	}
	_, err = api.NewRouter(ok, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
}

func TestRequestLimits(t *testing.T) {
	cfg := tenancy.DefaultLimitsConfig()
	cfg.RequestRate = 0.001 // one request per 1000 s
	cfg.RequestBurst = 1
	limits, err := tenancy.NewLimits(cfg, nil, nil)
	require.NoError(t, err)
	e := newEnvWith(t, func(o *api.Options) { o.Limits = limits }, api.Route{Path: "/api/v1/echo", Handler: principalEcho})
	acme := e.token("acme", time.Hour, tenancy.ScopeRead)

	resp, body := e.do(t, http.MethodGet, "/api/v1/echo", acme, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	resp, body = e.do(t, http.MethodGet, "/api/v1/echo", acme, nil)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, body)
	require.Equal(t, "rate_limited", decodeEnvelope(t, body).Error.Code)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))

	// Other tenants and public routes are not affected.
	resp, body = e.do(t, http.MethodGet, "/api/v1/echo", e.token("beta", time.Hour, tenancy.ScopeRead), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	resp, _ = e.do(t, http.MethodGet, "/-/healthy", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	// Unauthenticated requests are refused before they use a budget.
	resp, _ = e.do(t, http.MethodGet, "/api/v1/echo", "", nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func TestRouteFormat(t *testing.T) {
	e := newEnv(t,
		api.Route{Path: "/api/v1/query", Scope: tenancy.ScopeRead, Handler: principalEcho, Format: apierror.Prometheus},
		api.Route{Path: "/boom", Public: true, Format: apierror.Prometheus, Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
			panic("secret detail")
		})},
	)
	for _, tc := range []struct {
		name, path, token string
		status            int
		errorType         string
	}{
		{"no token", "/api/v1/query", "", http.StatusUnauthorized, "unauthorized"},
		{"missing scope", "/api/v1/query", e.token("acme", time.Hour, tenancy.ScopeWrite), http.StatusForbidden, "forbidden"},
		{"panic", "/boom", "", http.StatusInternalServerError, "internal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.do(t, http.MethodGet, tc.path, tc.token, nil)
			require.Equal(t, tc.status, resp.StatusCode, body)
			var got map[string]string
			require.NoError(t, json.Unmarshal([]byte(body), &got), body)
			require.Equal(t, tc.errorType, got["errorType"])
			require.NotContains(t, body, "secret detail")
			require.Equal(t, tc.status == http.StatusUnauthorized, resp.Header.Get("WWW-Authenticate") != "")
		})
	}
	var logged bool
	for _, l := range e.logs.lines(t) {
		if l["msg"] == "request" && l["path"] == "/api/v1/query" && l["status"] == 401.0 {
			require.Contains(t, l["err"], "missing bearer token")
			logged = true
		}
	}
	require.True(t, logged, "the access log names the error")
}
