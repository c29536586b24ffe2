package native_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

// TestQueryWithoutContentType: a POST on /api/v1/query without a
// Content-Type whose body is a JSON object is a native query (it was
// parsed as a PromQL form and failed with "no expression found in input");
// another body is refused naming both content types; an empty body or URL
// parameters stay the Prometheus query.
func TestQueryWithoutContentType(t *testing.T) {
	e := newQueryEnv(t, tenancy.DefaultTenantLimits())
	e.write(t, "acme", acmeData())
	acme := e.token("acme", tenancy.ScopeRead)

	resp, body := e.send(t, http.MethodPost, "/api/v1/query", acme, "", []byte(" \n"+`{"queryType":"latest","metric":"mem","lookback":"3h"}`))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Contains(t, string(body), `"queryType":"latest"`)
	require.Contains(t, string(body), `"value":43`)

	// A native error is in the native envelope, not Prometheus'.
	resp, body = e.send(t, http.MethodPost, "/api/v1/query", acme, "", []byte(`{"queryType":"nonsense"}`))
	requireError(t, resp, body, http.StatusBadRequest, "invalid_argument", "queryType", "")
	require.NotContains(t, string(body), "no expression found")

	// Neither JSON nor a form: refused, naming both content types.
	resp, body = e.send(t, http.MethodPost, "/api/v1/query", acme, "", []byte("sum(cpu)"))
	requireError(t, resp, body, http.StatusUnsupportedMediaType, "invalid_argument", "", "application/json")
	require.Contains(t, string(body), "application/x-www-form-urlencoded")

	// The Prometheus query from URL parameters is unchanged, with an empty
	// body or any body.
	form := url.Values{"query": {"sum(cpu)"}, "time": {fmt.Sprintf("%.3f", float64(e.ms(time.Minute))/1000)}}
	for _, b := range []string{"", "ignored"} {
		resp, body = e.send(t, http.MethodPost, "/api/v1/query?"+form.Encode(), acme, "", []byte(b))
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		require.True(t, strings.HasPrefix(string(body), `{"status":"success","data":{"resultType":"vector"`), string(body))
	}
	resp, body = e.send(t, http.MethodPost, "/api/v1/query", acme, "", nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, string(body))
	require.Contains(t, string(body), `"errorType":"bad_data"`)
}

// TestQueryJSONSentAsForm: curl -d '{...}' sends a native query as a form
// (Content-Type application/x-www-form-urlencoded); it was parsed as PromQL
// and failed with "no expression found in input". It is refused with a 415
// in the native envelope that says which Content-Type to send; forms stay
// Prometheus' queries.
func TestQueryJSONSentAsForm(t *testing.T) {
	e := newQueryEnv(t, tenancy.DefaultTenantLimits())
	e.write(t, "acme", acmeData())
	acme := e.token("acme", tenancy.ScopeRead)
	const form = "application/x-www-form-urlencoded"

	for _, path := range []string{"/api/v1/query", "/prometheus/api/v1/query"} {
		resp, body := e.send(t, http.MethodPost, path, acme, form, []byte(`{"queryType":"latest","metric":"mem"}`))
		requireError(t, resp, body, http.StatusUnsupportedMediaType, "invalid_argument", "", "send a native query with Content-Type: application/json")
		require.NotContains(t, string(body), "no expression found")
	}
	// Refused before the token is looked at, in the same envelope.
	resp, body := e.send(t, http.MethodPost, "/api/v1/query", "", form, []byte(" {}"))
	requireError(t, resp, body, http.StatusUnauthorized, "unauthenticated", "", "")

	// A form, and a form with its query in the URL, are Prometheus'.
	at := fmt.Sprintf("%.3f", float64(e.ms(time.Minute))/1000)
	resp, body = e.send(t, http.MethodPost, "/api/v1/query", acme, form, []byte(url.Values{"query": {"sum(cpu)"}, "time": {at}}.Encode()))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.True(t, strings.HasPrefix(string(body), `{"status":"success","data":{"resultType":"vector"`), string(body))
	resp, body = e.send(t, http.MethodPost, "/api/v1/query?"+url.Values{"query": {"sum(cpu)"}, "time": {at}}.Encode(), acme, form, []byte("{}"))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	resp, body = e.send(t, http.MethodPost, "/api/v1/query", acme, form, nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, string(body))
	require.Contains(t, string(body), `"errorType":"bad_data"`)
}
