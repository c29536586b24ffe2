package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/api"
	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// respondFunc is a Responder.
type respondFunc func(w http.ResponseWriter, r *http.Request) error

func (f respondFunc) Respond(w http.ResponseWriter, r *http.Request) error { return f(w, r) }

// admitter counts query admissions; it refuses tenant "busy".
type admitter struct{ allowed, acquired, released int }

func (a *admitter) AllowQuery(id tenancy.ID) error {
	a.allowed++
	return nil
}

func (a *admitter) AcquireQuery(_ context.Context, id tenancy.ID) (func(), error) {
	if id == "busy" {
		return nil, &tenancy.LimitError{Tenant: id, Limit: "max_concurrent_queries", RetryAfter: time.Second, Msg: "too many queries"}
	}
	a.acquired++
	return func() { a.released++ }, nil
}

func TestServeRoutes(t *testing.T) {
	adm := &admitter{}
	var sawBody string
	routes := []api.Route{
		{Path: "/native", Scope: tenancy.ScopeRead, Format: apierror.Native, Serve: func(r *http.Request, tn storage.Tenant) (any, error) {
			if r.URL.Query().Get("fail") != "" {
				return nil, apierror.Limit(apierror.InvalidArgument, tenancy.PerTenant("--limits.x", "x"), "too many %s", "things")
			}
			return map[string]string{"tenant": string(tn.ID())}, nil
		}},
		{Path: "/prom", Scope: tenancy.ScopeRead, Format: apierror.Prometheus, Query: true, Serve: func(r *http.Request, tn storage.Tenant) (any, error) {
			require.NotNil(t, tn.Store)
			if r.URL.Query().Get("fail") != "" {
				return nil, fmt.Errorf("disk on fire at /secret/path")
			}
			return []int{1, 2}, nil
		}},
		{Path: "/text", Scope: tenancy.ScopeWrite, Format: apierror.Text, Query: true, ReadBody: 8, ReadBodySetting: tenancy.Global("--x.max-bytes"),
			Serve: func(r *http.Request, tn storage.Tenant) (any, error) {
				b, err := io.ReadAll(r.Body)
				sawBody = string(b)
				if err != nil || len(b) == 0 {
					return nil, err
				}
				return respondFunc(func(w http.ResponseWriter, _ *http.Request) error {
					if string(b) == "late" {
						return errors.New("refused before writing")
					}
					w.Header().Set("X-Written", "1")
					w.WriteHeader(http.StatusAccepted)
					return nil
				}), nil
			}},
	}
	e := newEnvWith(t, func(o *api.Options) { o.Queries = adm; o.Tenants = o.Storage.(api.TenantOpener) }, routes...)
	reader, writer := e.token("acme", time.Hour, tenancy.ScopeRead), e.token("acme", time.Hour, tenancy.ScopeWrite)

	resp, body := e.do(t, http.MethodGet, "/native", reader, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.JSONEq(t, `{"tenant":"acme"}`, body)
	resp, body = e.do(t, http.MethodGet, "/native?fail=1", reader, nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
	require.JSONEq(t, `{"status":"error","error":{"code":"invalid_argument","message":"too many things (raise --limits.x or its per-tenant override x)","limit":"x"}}`, body)
	resp, body = e.do(t, http.MethodGet, "/native", writer, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, body)

	resp, body = e.do(t, http.MethodGet, "/prom", reader, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.JSONEq(t, `{"status":"success","data":[1,2]}`, body)
	require.Equal(t, []int{1, 1, 1}, []int{adm.allowed, adm.acquired, adm.released})
	resp, body = e.do(t, http.MethodGet, "/prom?fail=1", reader, nil)
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode, body)
	require.NotContains(t, body, "secret")
	require.Contains(t, body, resp.Header.Get(api.RequestIDHeader))
	var pe map[string]string
	require.NoError(t, json.Unmarshal([]byte(body), &pe))
	require.Equal(t, "internal", pe["errorType"])
	resp, body = e.do(t, http.MethodGet, "/prom", "", nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, body)
	require.Contains(t, body, `"errorType":"unauthorized"`)
	require.NotEmpty(t, resp.Header.Get("WWW-Authenticate"))
	resp, body = e.do(t, http.MethodGet, "/prom", e.token("busy", time.Hour, tenancy.ScopeRead), nil)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, body)
	require.Equal(t, "1", resp.Header.Get("Retry-After"))

	post := func(body string) (*http.Response, string) {
		req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/text", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+writer)
		resp, err := e.srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body = post("")
	require.Equal(t, http.StatusNoContent, resp.StatusCode, body)
	resp, body = post("ok")
	require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
	require.Equal(t, "1", resp.Header.Get("X-Written"))
	require.Equal(t, "ok", sawBody)
	resp, body = post("late")
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode, body)
	require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"), resp.Header.Get("Content-Type"))
	sawBody = ""
	acquired := adm.acquired
	resp, body = post("much too long")
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, body)
	require.Equal(t, "request body larger than 8 bytes (raise --x.max-bytes)\n", body)
	require.Empty(t, sawBody, "Serve does not run")
	require.Equal(t, acquired, adm.acquired, "no query slot taken for a body never read whole")
	require.Equal(t, adm.acquired, adm.released)
}
