package apierror_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// TestWrite checks each wire format's rendering of the same errors: the
// status and Retry-After of Classify, WWW-Authenticate on a 401, the
// internal text masked behind the request ID, the limit's ID.
func TestWrite(t *testing.T) {
	for _, tc := range []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string // native code
		wantType   string // Prometheus errorType
		wantField  string
		wantLimit  string
		wantRetry  string
		wantMsg    string
	}{
		{"invalid field", apierror.Field("metrics[3].name", "bad metric name %q", "1x"), 400, "invalid_argument", "bad_data", "metrics[3].name", "", "", `bad metric name "1x"`},
		{"storage unavailable", errors.Join(errors.New("append"), storage.ErrUnavailable), 503, "unavailable", "unavailable", "", "", "5", "append"},
		{"rate limited", &tenancy.LimitError{Tenant: "acme", Limit: "ingestion_rate", RetryAfter: 1500 * time.Millisecond, Msg: "over ingestion_rate; raise --limits.ingestion-rate"}, 429, "rate_limited", "too_many_requests", "", "ingestion_rate", "2", "raise --limits.ingestion-rate"},
		{"limit helper", apierror.Limit(apierror.TooLarge, tenancy.Global("--ingest.max-request-bytes"), "body of %d bytes", 9), 413, "invalid_argument", "bad_data", "", "ingest.max-request-bytes", "", "body of 9 bytes (raise --ingest.max-request-bytes)"},
		{"unauthenticated", tenancy.ErrUnauthenticated, 401, "unauthenticated", "unauthorized", "", "", "", "unauthenticated"},
		{"series limit", storage.SeriesLimitError("acme", 5, 5, `{a="b"}`), 400, "invalid_argument", "bad_data", "", "max_active_series", "", "the limit is 5 (raise --limits.max-active-series or its per-tenant override max_active_series)"},
		{"internal", errors.New("disk said secret things"), 500, "internal", "internal", "", "", "", "internal error; the server log has the details under request_id req-7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := func(w *httptest.ResponseRecorder, contentType string) {
				t.Helper()
				require.Equal(t, tc.wantStatus, w.Code)
				require.Equal(t, contentType, w.Header().Get("Content-Type"))
				require.Equal(t, tc.wantRetry, w.Header().Get("Retry-After"))
				require.Equal(t, tc.wantStatus == 401, w.Header().Get("WWW-Authenticate") != "")
				require.NotContains(t, w.Body.String(), "secret")
			}

			w := httptest.NewRecorder()
			info := apierror.Write(w, apierror.Native, tc.err, "req-7")
			require.Equal(t, tc.wantStatus, info.Status)
			check(w, "application/json")
			var env apierror.NativeEnvelope
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &env), w.Body.String())
			require.Equal(t, "error", env.Status)
			require.Equal(t, tc.wantCode, env.Error.Code)
			require.Equal(t, tc.wantField, env.Error.Field)
			require.Equal(t, tc.wantLimit, env.Error.Limit)
			require.Contains(t, env.Error.Message, tc.wantMsg)
			if tc.wantField == "" {
				require.NotContains(t, w.Body.String(), `"field"`)
			}

			w = httptest.NewRecorder()
			apierror.Write(w, apierror.Prometheus, tc.err, "req-7")
			check(w, "application/json")
			var prom map[string]string
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &prom), w.Body.String())
			require.Equal(t, map[string]string{"status": "error", "errorType": tc.wantType, "error": prom["error"]}, prom)
			require.Contains(t, prom["error"], strings.ReplaceAll(tc.wantMsg, `"`, `"`))

			w = httptest.NewRecorder()
			apierror.Write(w, apierror.Text, tc.err, "req-7")
			check(w, "text/plain; charset=utf-8")
			require.Contains(t, w.Body.String(), tc.wantMsg)
			require.True(t, strings.HasSuffix(w.Body.String(), "\n"))
		})
	}
}

func TestWriteJSON(t *testing.T) {
	w := httptest.NewRecorder()
	apierror.WriteJSON(w, http.StatusAccepted, map[string]int{"accepted": 2})
	require.Equal(t, http.StatusAccepted, w.Code)
	require.JSONEq(t, `{"accepted":2}`, w.Body.String())

	w = httptest.NewRecorder()
	apierror.WriteJSON(w, http.StatusOK, map[string]any{"bad": func() {}})
	require.Equal(t, http.StatusInternalServerError, w.Code)
	var env apierror.NativeEnvelope
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &env))
	require.Equal(t, "internal", env.Error.Code)
}
