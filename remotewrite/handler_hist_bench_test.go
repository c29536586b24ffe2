package remotewrite

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// BenchmarkWriteV2Histograms is BenchmarkWriteV2 with one integer native
// histogram (schema 3, 20 buckets in two spans) per series and request:
// the cost of the histogram write path from body to Badger, to set against
// the store's own BenchmarkAppendHistograms.
func BenchmarkWriteV2Histograms(b *testing.B) {
	store := openStore(b, nil)
	cfg := testConfig(b)
	cfg.MaxFutureSkew = 0
	h := newWrite(cfg, store, nil, nil, prometheus.NewRegistry())
	const nSeries = 2000
	req := newV2Request()
	for i := range nSeries {
		req.add("__name__", "http_request_duration_seconds", "code", "200", "handler", fmt.Sprintf("/api/%d", i%50),
			"instance", fmt.Sprintf("10.0.0.%d:9090", i), "job", "prometheus")
	}
	base := time.Now().Add(-24 * time.Hour).UnixMilli()
	next := 0
	body := func() []byte {
		next++
		for i := range req.req.Timeseries {
			hh := &histogram.Histogram{Schema: 3, Count: uint64(200 * next), Sum: float64(next), ZeroThreshold: 1e-128,
				PositiveSpans: []histogram.Span{{Offset: 0, Length: 10}, {Offset: 5, Length: 10}}}
			hh.PositiveBuckets = make([]int64, 20)
			hh.PositiveBuckets[0] = int64(10 * next)
			req.req.Timeseries[i].Histograms = []writev2.Histogram{writev2.FromIntHistogram(0, base+int64(next)*15000, hh)}
		}
		return req.encode(b)
	}
	benchmarkWrites(b, nSeries, body, func(data []byte) *httptest.ResponseRecorder { return postV2(h, &writer, data, nil) })
}

// BenchmarkWriteHistograms is BenchmarkWriteV2Histograms over remote
// write 1.0.
func BenchmarkWriteHistograms(b *testing.B) {
	store := openStore(b, nil)
	cfg := testConfig(b)
	cfg.MaxFutureSkew = 0
	h := newWrite(cfg, store, nil, nil, prometheus.NewRegistry())
	const nSeries = 2000
	req := &prompb.WriteRequest{}
	for i := range nSeries {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels: series("__name__", "http_request_duration_seconds", "code", "200", "handler", fmt.Sprintf("/api/%d", i%50),
				"instance", fmt.Sprintf("10.0.0.%d:9090", i), "job", "prometheus"),
		})
	}
	base := time.Now().Add(-24 * time.Hour).UnixMilli()
	next := 0
	body := func() []byte {
		next++
		for i := range req.Timeseries {
			hh := &histogram.Histogram{Schema: 3, Count: uint64(200 * next), Sum: float64(next), ZeroThreshold: 1e-128,
				PositiveSpans: []histogram.Span{{Offset: 0, Length: 10}, {Offset: 5, Length: 10}}}
			hh.PositiveBuckets = make([]int64, 20)
			hh.PositiveBuckets[0] = int64(10 * next)
			req.Timeseries[i].Histograms = []prompb.Histogram{prompb.FromIntHistogram(base+int64(next)*15000, hh)}
		}
		return encode(b, req)
	}
	benchmarkWrites(b, nSeries, body, func(data []byte) *httptest.ResponseRecorder { return post(h, &writer, data, nil) })
}
