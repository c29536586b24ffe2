package promql_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/promql"
	"github.com/luminate-io/luminate/storage/badger"
)

// benchEnv loads n counter series (10 jobs, 15s interval, 1h) into a
// Badger store and serves the API over it, without network round trips.
func benchEnv(b *testing.B, n int) http.Handler {
	b.Helper()
	store, err := badger.New(badger.Config{Path: b.TempDir()}, nil, prometheus.NewRegistry())
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, store.Close()) })
	ts := store.ForTenant(acme)
	const points = 240
	for p := range points {
		app := ts.AppenderV2(context.Background())
		for i := range n {
			ls := labels.FromStrings("__name__", "http_requests_total", "job", "job-"+strconv.Itoa(i%10), "instance", "i-"+strconv.Itoa(i))
			_, err := app.Append(0, ls, 0, t0+int64(p)*15_000, float64(p*(i%7+1)), nil, nil, promstorage.AOptions{})
			require.NoError(b, err)
		}
		require.NoError(b, app.Commit())
	}
	api, err := promql.New(promql.DefaultConfig(), store, nil, nil, prometheus.NewRegistry())
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, api.Close()) })
	return newRouter(b, api, store, nil)
}

func benchGet(b *testing.B, h http.Handler, path string, params url.Values) {
	req := httptest.NewRequest(http.MethodGet, path+"?"+params.Encode(), nil)
	req.Header.Set(tenantHeader, string(acme))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkQueryRange is the dashboard query sum by (job) (rate(x[5m]))
// over the hour loaded, at a 15s step.
func BenchmarkQueryRange(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("series=%d", n), func(b *testing.B) {
			h := benchEnv(b, n)
			benchGet(b, h, "/api/v1/query_range", url.Values{
				"query": {`sum by (job) (rate(http_requests_total[5m]))`},
				"start": {strconv.FormatInt(t0/1000+300, 10)}, "end": {strconv.FormatInt(t0/1000+3600, 10)}, "step": {"15"},
			})
		})
	}
}

// BenchmarkLabelValuesWithMatch is a Grafana variable query:
// label_values(http_requests_total{job="job-3"}, instance).
func BenchmarkLabelValuesWithMatch(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("series=%d", n), func(b *testing.B) {
			store := benchEnv(b, n)
			benchGet(b, store, "/api/v1/label/instance/values", url.Values{"match[]": {`http_requests_total{job="job-3"}`}})
		})
	}
}
