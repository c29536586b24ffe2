package remotewrite

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

// TestWriteJSONPointsToNativeWrite: a newcomer who POSTs JSON to the remote
// write endpoint gets a 415 in remote write's plain text that says where
// JSON goes and which content types this endpoint takes.
func TestWriteJSONPointsToNativeWrite(t *testing.T) {
	h := newWrite(testConfig(t), openStore(t, nil), nil, nil, prometheus.NewRegistry())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(tenancy.NewContext(r.Context(), writer)))
	}))
	t.Cleanup(srv.Close)

	for _, path := range []string{"/api/v1/write", "/api/v1/push"} {
		for _, ct := range []string{"application/json", "application/json; charset=utf-8"} {
			resp, err := http.Post(srv.URL+path, ct, strings.NewReader(`{"metrics":[{"name":"up","value":1}]}`))
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			require.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode, string(body))
			require.Equal(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"))
			for _, want := range []string{"/api/v1/metrics", "application/x-protobuf", "proto=io.prometheus.write.v2.Request", "snappy"} {
				require.Contains(t, string(body), want, "%s %s", path, ct)
			}
		}
	}
}
