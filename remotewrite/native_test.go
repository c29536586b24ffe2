package remotewrite

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

func postNative(h http.Handler, p *tenancy.Principal, body string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/metrics", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	if p != nil {
		r = r.WithContext(tenancy.NewContext(r.Context(), *p))
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func nativeResponse(t testing.TB, w *httptest.ResponseRecorder) NativeResponse {
	t.Helper()
	require.Equal(t, "application/json", w.Header().Get("Content-Type"))
	var resp NativeResponse
	dec := json.NewDecoder(w.Body)
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&resp))
	return resp
}

func TestNativeWrite(t *testing.T) {
	store := openStore(t, nil)
	reg := prometheus.NewRegistry()
	h := NewNative(testConfig(t), store, nil, nil, reg)
	now := time.Now().Truncate(time.Second).UTC()
	ms := now.UnixMilli()

	body := fmt.Sprintf(`{"metrics":[
		{"name":"http_requests_total","dimensions":{"path":"/","code":"200"},"value":1.5,"timestamp":%q},
		{"name":"http_requests_total","dimensions":{"path":"/","code":"200"},"value":2.5,"timestamp":%d},
		{"name":"temperature","value":"NaN","timestamp":%d},
		{"name":"temperature","dimensions":{"room":"a"},"value":"+Inf","timestamp":%d},
		{"name":"temperature","dimensions":{"room":"b"},"value":"-Inf","timestamp":%d},
		{"name":"no_timestamp","value":7}
	]}`, now.Format(time.RFC3339), ms+1000, ms, ms, ms)
	w := postNative(h, &writer, body, nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, NativeResponse{Status: "success", Accepted: 6, Errors: []NativeItemError{}}, nativeResponse(t, w))

	got := readBack(t, store, writer.Tenant)
	require.Equal(t, []tsample{{ms, 1.5}, {ms + 1000, 2.5}}, got[`{__name__="http_requests_total", code="200", path="/"}`])
	require.Len(t, got[`{__name__="temperature"}`], 1)
	require.True(t, math.IsNaN(got[`{__name__="temperature"}`][0].V))
	require.Equal(t, []tsample{{ms, math.Inf(1)}}, got[`{__name__="temperature", room="a"}`])
	require.Equal(t, []tsample{{ms, math.Inf(-1)}}, got[`{__name__="temperature", room="b"}`])
	noTS := got[`{__name__="no_timestamp"}`]
	require.Len(t, noTS, 1)
	require.InDelta(t, time.Now().UnixMilli(), noTS[0].T, float64(time.Minute.Milliseconds()), "defaults to the time of the request")
	require.Equal(t, 6.0, counter(t, reg, "luminate_ingest_samples_accepted_total", "tenant", "acme"))
	require.Equal(t, 1.0, counter(t, reg, "luminate_ingest_requests_total", "tenant", "acme", "code", "200"))
}

func TestNativePartial(t *testing.T) {
	store := openStore(t, nil)
	reg := prometheus.NewRegistry()
	h := NewNative(testConfig(t), store, nil, nil, reg)
	ms := time.Now().UnixMilli()
	body := fmt.Sprintf(`{"metrics":[
		{"name":"good","value":1,"timestamp":%[1]d},
		{"name":"","value":1,"timestamp":%[1]d},
		{"name":"stolen","dimensions":{"_tenant_id":"other"},"value":1,"timestamp":%[1]d},
		{"name":"bad_value","value":"lots","timestamp":%[1]d},
		{"name":"bad_value","value":true,"timestamp":%[1]d},
		{"name":"bad_value","value":null,"timestamp":%[1]d},
		{"name":"bad_time","value":1,"timestamp":"yesterday"},
		{"name":"bad_time","value":1,"timestamp":1.5},
		{"name":"future","value":1,"timestamp":%[2]d},
		{"name":"dup","dimensions":{"__name__":"other"},"value":1,"timestamp":%[1]d},
		{"name":"long","dimensions":{"x":"%[3]s"},"value":1,"timestamp":%[1]d},
		{"name":"good","dimensions":{"x":"y"},"value":2,"timestamp":%[1]d}
	]}`, ms, ms+int64(time.Hour/time.Millisecond), strings.Repeat("v", 2049))
	w := postNative(h, &writer, body, nil)
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	resp := nativeResponse(t, w)
	require.Equal(t, "partial", resp.Status)
	require.Equal(t, 2, resp.Accepted)
	require.Equal(t, 10, resp.Rejected)
	reasons := map[int]Reason{}
	for _, e := range resp.Errors {
		reasons[e.Index] = e.Reason
		require.NotEmpty(t, e.Message)
	}
	require.Equal(t, map[int]Reason{
		1: ReasonMissingMetricName, 2: ReasonTenantLabel, 3: ReasonInvalidValue, 4: ReasonInvalidValue,
		5: ReasonInvalidValue, 6: ReasonInvalidTimestamp, 7: ReasonInvalidTimestamp, 8: ReasonTooFarInFuture,
		9: ReasonDuplicateLabel, 10: ReasonLabelValueTooLong,
	}, reasons)
	require.Len(t, readBack(t, store, writer.Tenant), 2)
	require.Empty(t, readBack(t, store, "other"))

	t.Run("all rejected", func(t *testing.T) {
		w := postNative(h, &writer, `{"metrics":[{"name":"x","value":"y"}]}`, nil)
		require.Equal(t, http.StatusBadRequest, w.Code)
		resp := nativeResponse(t, w)
		require.Equal(t, "error", resp.Status)
		require.Equal(t, []NativeItemError{{Index: 0, Reason: ReasonInvalidValue,
			Message: `series {__name__="x"}: value "y" is neither a number nor "NaN", "+Inf" or "-Inf"`}}, resp.Errors)
	})
}

func TestNativeRefused(t *testing.T) {
	store := openStore(t, nil)
	cfg := testConfig(t)
	cfg.MaxNativeMetrics = 3
	cfg.MaxCompressedBytes = 1 << 10
	h := NewNative(cfg, store, nil, nil, prometheus.NewRegistry())
	readOnly := tenancy.Principal{Tenant: "acme", Scopes: []tenancy.Scope{tenancy.ScopeRead}}
	one := `{"metrics":[{"name":"up","value":1}]}`
	for _, tc := range []struct {
		name    string
		p       *tenancy.Principal
		body    string
		hdr     map[string]string
		status  int
		message string
		field   string
	}{
		{name: "no principal", body: one, status: http.StatusUnauthorized},
		{name: "no write scope", p: &readOnly, body: one, status: http.StatusForbidden},
		{name: "too many metrics", p: &writer, body: `{"metrics":[` + strings.Repeat(`{"name":"up","value":1},`, 3) + `{"name":"up","value":1}]}`,
			status: http.StatusRequestEntityTooLarge, message: "--ingest.max-native-metrics", field: "metrics"},
		{name: "body too large", p: &writer, body: `{"metrics":[{"name":"` + strings.Repeat("x", 2000) + `","value":1}]}`,
			status: http.StatusRequestEntityTooLarge, message: "--ingest.max-request-bytes"},
		{name: "wrong content type", p: &writer, body: one, hdr: map[string]string{"Content-Type": "text/plain"}, status: http.StatusUnsupportedMediaType},
		{name: "compressed", p: &writer, body: one, hdr: map[string]string{"Content-Encoding": "gzip"}, status: http.StatusUnsupportedMediaType},
		{name: "unknown top-level field", p: &writer, body: `{"metrics":[],"extra":1}`, status: http.StatusBadRequest, message: `unknown field "extra"`, field: "extra"},
		{name: "unknown item field", p: &writer, body: `{"metrics":[{"name":"up","value":1,"labels":{}}]}`, status: http.StatusBadRequest, message: `unknown field "labels"`, field: "metrics[0]"},
		{name: "dimensions not strings", p: &writer, body: `{"metrics":[{"name":"up","value":1,"dimensions":{"a":1}}]}`, status: http.StatusBadRequest, field: "metrics[0]"},
		{name: "metrics missing", p: &writer, body: `{}`, status: http.StatusBadRequest, message: "required", field: "metrics"},
		{name: "metrics not a list", p: &writer, body: `{"metrics":{}}`, status: http.StatusBadRequest, field: "metrics"},
		{name: "not an object", p: &writer, body: `[]`, status: http.StatusBadRequest},
		{name: "truncated", p: &writer, body: `{"metrics":[{"name":"up"`, status: http.StatusBadRequest, message: "truncated", field: "metrics[0]"},
		{name: "trailing data", p: &writer, body: one + `{}`, status: http.StatusBadRequest, message: "after"},
		{name: "metrics twice", p: &writer, body: `{"metrics":[],"metrics":[]}`, status: http.StatusBadRequest, message: "twice", field: "metrics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := postNative(h, tc.p, tc.body, tc.hdr)
			require.Equal(t, tc.status, w.Code, w.Body.String())
			resp := nativeResponse(t, w)
			require.Equal(t, "error", resp.Status)
			require.NotNil(t, resp.Error)
			require.Contains(t, resp.Error.Message, tc.message)
			require.Equal(t, tc.field, resp.Error.Field)
		})
	}
	require.Empty(t, readBack(t, store, writer.Tenant))
}

func TestNativeRateLimited(t *testing.T) {
	store := openStore(t, nil)
	limits, err := tenancy.NewLimits(tenancy.LimitsConfig{TenantLimits: tenancy.TenantLimits{
		IngestionRate: 1, IngestionBurst: 2,
	}}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	h := NewNative(testConfig(t), store, limits, nil, prometheus.NewRegistry())
	// Over the burst: never fits, 413 without Retry-After.
	w := postNative(h, &writer, `{"metrics":[{"name":"a","value":1},{"name":"b","value":1},{"name":"c","value":1}]}`, nil)
	require.Equal(t, http.StatusRequestEntityTooLarge, w.Code, w.Body.String())
	require.Empty(t, w.Header().Get("Retry-After"))
	require.Contains(t, nativeResponse(t, w).Error.Message, "ingestion_burst")
	require.Empty(t, readBack(t, store, writer.Tenant))

	// Over the rate: the burst of 2 is taken, the third sample must wait.
	w = postNative(h, &writer, `{"metrics":[{"name":"a","value":1},{"name":"b","value":1}]}`, nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	w = postNative(h, &writer, `{"metrics":[{"name":"c","value":1}]}`, nil)
	require.Equal(t, http.StatusTooManyRequests, w.Code, w.Body.String())
	require.NotEmpty(t, w.Header().Get("Retry-After"))
	require.Equal(t, "rate_limited", nativeResponse(t, w).Error.Code)
	require.Len(t, readBack(t, store, writer.Tenant), 2)
}

func TestNativeStoreUnavailable(t *testing.T) {
	store := openStore(t, nil)
	h := NewNative(testConfig(t), store, nil, nil, prometheus.NewRegistry())
	require.NoError(t, store.Close())
	w := postNative(h, &writer, `{"metrics":[{"name":"a","value":1}]}`, nil)
	require.Equal(t, http.StatusServiceUnavailable, w.Code, w.Body.String())
	require.NotEmpty(t, w.Header().Get("Retry-After"))
	require.Equal(t, "unavailable", nativeResponse(t, w).Error.Code)
}

// FuzzNative drives arbitrary bodies through the native write handler and
// a real store: it must answer, never panic, with a well-formed response
// whose counts add up.
func FuzzNative(f *testing.F) {
	ms := time.Now().UnixMilli()
	for _, s := range []string{
		`{"metrics":[{"name":"up","dimensions":{"job":"x"},"value":1.5,"timestamp":"2026-11-26T10:00:00Z"}]}`,
		fmt.Sprintf(`{"metrics":[{"name":"up","value":"NaN","timestamp":%d},{"name":"","value":1}]}`, ms),
		`{"metrics":[{"name":"a","value":"+Inf"},{"name":"b","value":"-Inf","timestamp":-1}]}`,
		`{"metrics":[{"name":"a","dimensions":{"_tenant_id":"x","__name__":"b"},"value":1e400}]}`,
		`{"metrics":[]}`, `{}`, `[`, `{"metrics":[{"name":"a","value":1,"extra":2}]}`,
		`{"metrics":[{"name":"h","type":"histogram","help":"x","histogram":{"schema":3,"count":3,"sum":"NaN","zero_count":1,` +
			`"positive_spans":[{"offset":-1,"length":2}],"positive_counts":[1,1]},"exemplars":[{"labels":{"trace_id":"a"},"value":1}]}]}`,
		`{"metrics":[{"name":"h","histogram":{"float":true,"schema":-53,"count":2.5,"sum":1,"positive_spans":[{"offset":0,"length":1}],` +
			`"positive_counts":[2.5],"custom_values":[1]}},{"name":"h","value":1,"histogram":{"schema":0,"count":0,"sum":0}}]}`,
	} {
		f.Add([]byte(s))
	}
	store := openStore(f, nil)
	cfg := testConfig(f)
	cfg.MaxNativeMetrics = 50
	h := NewNative(cfg, store, nil, nil, prometheus.NewRegistry())
	f.Fuzz(func(t *testing.T, body []byte) {
		w := postNative(h, &writer, string(body), nil)
		var resp NativeResponse
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatalf("response is not JSON: %v: %s", err, w.Body)
		}
		items, decodeErr := DecodeNative(body, cfg.MaxNativeMetrics)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest:
			if decodeErr != nil {
				if w.Code != http.StatusBadRequest || resp.Error == nil {
					t.Fatalf("undecodable body answered %d: %s", w.Code, w.Body)
				}
				return
			}
			if resp.Accepted+resp.Rejected != len(items) || len(resp.Errors) != resp.Rejected {
				t.Fatalf("%d items, response %+v", len(items), resp)
			}
			for _, e := range resp.Errors {
				if e.Index < 0 || e.Index >= len(items) || e.Reason == "" {
					t.Fatalf("bad item error %+v", e)
				}
			}
		case http.StatusRequestEntityTooLarge:
			if decodeErr == nil {
				t.Fatalf("413 for a body that decodes")
			}
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	})
}
