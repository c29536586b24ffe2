package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestServeUsageAndCardinality: the running server counts each tenant's
// samples and queries (PromQL, status/tsdb and cardinality requests: 3 + 3
// here) and reports them, with active series and bytes
// stored, on the internal listener without a token (and to operator
// tokens only on the main one); the cardinality API is mounted for read
// tokens and shows a tenant its own series only.
func TestServeUsageAndCardinality(t *testing.T) {
	lum, secret := startAuthLuminate(t, "--http.internal-listen-address=127.0.0.1:0")
	line := lum.waitLog(`"msg":"listening internally"`)
	require.NotEmpty(t, line, lum.stderr())
	var l struct{ Address string }
	require.NoError(t, json.Unmarshal([]byte(line), &l))
	internal := "http://" + l.Address

	now := time.Now().UnixMilli()
	for tenant, n := range map[string]int{"usage-a": 30, "usage-b": 5} {
		token := e2eToken(t, secret, "usage-a", "metrics:write")
		if tenant == "usage-b" {
			token = e2eToken(t, secret, "usage-b", "metrics:write")
		}
		resp, err := http.DefaultClient.Do(newRemoteWrite(t, lum.url("/api/v1/write"), token, bytes.NewReader(remoteWriteSeries(t, "used_"+tenant[len(tenant)-1:], n, 4, now))))
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusNoContent, resp.StatusCode, string(b))
	}
	readA := e2eToken(t, secret, "usage-a", "metrics:read")
	for range 3 {
		code, body := apiGet(t, lum.url(""), "/api/v1/query?query=count(used_a)", readA)
		require.Equal(t, http.StatusOK, code, string(body))
	}

	code, body := apiGet(t, lum.url(""), "/api/v1/cardinality/label_names", readA)
	require.Equal(t, http.StatusOK, code, string(body))
	require.JSONEq(t, `{"label_values_count_total":31,"label_names_count":2,"cardinality":[{"label_name":"i","label_values_count":30},{"label_name":"__name__","label_values_count":1}]}`, string(body))
	code, body = apiGet(t, lum.url(""), "/prometheus/api/v1/cardinality/active_series?selector="+url.QueryEscape(`{__name__=~".+",i="7"}`), readA)
	require.Equal(t, http.StatusOK, code, string(body))
	require.JSONEq(t, `{"data":[{"__name__":"used_a","i":"7"}]}`, string(body))
	code, body = apiGet(t, lum.url(""), "/api/v1/status/tsdb?focusLabel=i&topN=2", readA)
	require.Equal(t, http.StatusOK, code, string(body))
	require.Contains(t, string(body), `"totalSeries":30,`)
	require.NotContains(t, string(body), "used_b")

	type row struct {
		Tenant          string
		ActiveSeries    uint64 `json:"active_series"`
		Series          uint64 `json:"series"`
		SamplesIngested uint64 `json:"samples_ingested"`
		Queries         uint64 `json:"queries"`
		BytesStored     uint64 `json:"bytes_stored"`
	}
	usage := func(base, token string) (int, map[string]row) {
		code, body := apiGet(t, base, "/api/v1/usage", token)
		var rep struct{ Tenants []row }
		if code == http.StatusOK {
			require.NoError(t, json.Unmarshal(body, &rep), string(body))
		}
		out := map[string]row{}
		for _, r := range rep.Tenants {
			out[r.Tenant] = r
		}
		return code, out
	}
	code, rows := usage(internal, "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, row{Tenant: "usage-a", ActiveSeries: 30, Series: 30, SamplesIngested: 120, Queries: 6, BytesStored: rows["usage-a"].BytesStored}, rows["usage-a"])
	require.Equal(t, row{Tenant: "usage-b", ActiveSeries: 5, Series: 5, SamplesIngested: 20, BytesStored: rows["usage-b"].BytesStored}, rows["usage-b"])

	code, _ = usage(lum.url(""), "")
	require.Equal(t, http.StatusUnauthorized, code, "the main listener wants a token")
	code, _ = usage(lum.url(""), readA)
	require.Equal(t, http.StatusForbidden, code, "and the operator scope")
	code, rows = usage(lum.url(""), e2eToken(t, secret, "ops", "operator"))
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, uint64(120), rows["usage-a"].SamplesIngested)

	code, body = apiGet(t, lum.url(""), "/metrics", e2eToken(t, secret, "ops", "operator"))
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(body), `luminate_usage_samples_ingested_total{tenant="usage-a"} 120`)
	require.Contains(t, string(body), `luminate_usage_queries_total{tenant="usage-a"} 6`)

	require.NoError(t, lum.Cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, lum.wait(), lum.stderr())
}
