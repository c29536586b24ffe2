package native_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/native"
	"github.com/luminate-io/luminate/remotewrite"
)

// The native write takes histograms (counts absolute per bucket, as the
// native API shows them), exemplars and metadata.
func TestWriteHistograms(t *testing.T) {
	store := openStore(t)
	h := newWrite(testConfig(t), store, nil, prometheus.NewRegistry())
	ms := time.Now().UnixMilli()
	body := fmt.Sprintf(`{"metrics":[
		{"name":"latency_seconds","dimensions":{"job":"api"},"timestamp":%d,"type":"histogram","help":"Latency.","unit":"seconds",
		 "histogram":{"schema":3,"count":12,"sum":34.5,"zero_threshold":0.001,"zero_count":2,"counter_reset_hint":"not_reset",
		  "positive_spans":[{"offset":0,"length":2},{"offset":3,"length":1}],"positive_counts":[1,4,3],
		  "negative_spans":[{"offset":-2,"length":1}],"negative_counts":[2]},
		 "exemplars":[{"labels":{"trace_id":"abc"},"value":0.25},{"labels":{"trace_id":"def"},"value":"+Inf","timestamp":%d}]},
		{"name":"queue_depth","timestamp":%d,
		 "histogram":{"float":true,"schema":-2,"count":3.5,"sum":"-Inf","counter_reset_hint":"gauge",
		  "positive_spans":[{"offset":1,"length":2}],"positive_counts":[1.25,2.25]}},
		{"name":"classic","timestamp":%d,
		 "histogram":{"schema":-53,"count":6,"sum":2.5,"positive_spans":[{"offset":0,"length":3}],"positive_counts":[1,3,2],"custom_values":[0.1,0.5,1]}}
	]}`, ms, ms-10, ms, ms)
	w := postNative(h, &writer, body, nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, native.WriteResponse{Status: "success", Accepted: 3, Errors: []native.WriteItemError{}}, nativeResponse(t, w))

	exp, custom := testHistograms()
	got := readPoints(t, store, writer.Tenant)
	requireSameHistogram(t, exp, got[`{__name__="latency_seconds", job="api"}`][0])
	requireSameHistogram(t, custom, got[`{__name__="classic"}`][0])
	q := got[`{__name__="queue_depth"}`]
	require.Len(t, q, 1)
	require.NotNil(t, q[0].FH)
	require.Equal(t, []float64{1.25, 2.25}, q[0].FH.PositiveBuckets)
	require.Equal(t, histogram.GaugeType, q[0].FH.CounterResetHint)

	ex := readExemplars(t, store, writer.Tenant)[`{__name__="latency_seconds", job="api"}`]
	require.Len(t, ex, 2)
	require.Equal(t, ms-10, ex[0].Ts, "sorted by timestamp")
	require.Equal(t, ms, ex[1].Ts, "defaults to the sample's")
	require.Equal(t, map[string]metadata.Metadata{
		"latency_seconds": {Type: model.MetricTypeHistogram, Help: "Latency.", Unit: "seconds"},
	}, readMetadata(t, store, writer.Tenant))
}

// Each item's histogram is checked on its own: the others are stored.
func TestWriteHistogramRejected(t *testing.T) {
	store := openStore(t)
	h := newWrite(testConfig(t), store, nil, prometheus.NewRegistry())
	body := `{"metrics":[
		{"name":"ok","histogram":{"schema":0,"count":1,"sum":1,"positive_spans":[{"offset":0,"length":1}],"positive_counts":[1]}},
		{"name":"both","value":1,"histogram":{"schema":0,"count":0,"sum":0}},
		{"name":"fraction","histogram":{"schema":0,"count":1.5,"sum":1}},
		{"name":"mismatch","histogram":{"schema":0,"count":5,"sum":1,"positive_spans":[{"offset":0,"length":1}],"positive_counts":[1]}},
		{"name":"schema","histogram":{"schema":9,"count":0,"sum":0}},
		{"name":"spans","histogram":{"schema":0,"count":1,"sum":1,"positive_spans":[{"offset":0,"length":2}],"positive_counts":[1]}},
		{"name":"hint","histogram":{"schema":0,"count":0,"sum":0,"counter_reset_hint":"maybe"}},
		{"name":"typ","value":1,"type":"countr"},
		{"name":"neither"}
	]}`
	w := postNative(h, &writer, body, nil)
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	resp := nativeResponse(t, w)
	require.Equal(t, 1, resp.Accepted)
	reasons := map[int]remotewrite.Reason{}
	for _, e := range resp.Errors {
		reasons[e.Index] = e.Reason
	}
	require.Equal(t, map[int]remotewrite.Reason{
		1: remotewrite.ReasonInvalidValue, 2: remotewrite.ReasonInvalidHistogram, 3: remotewrite.ReasonInvalidHistogram, 4: remotewrite.ReasonInvalidHistogram,
		5: remotewrite.ReasonInvalidHistogram, 6: remotewrite.ReasonInvalidHistogram, 7: remotewrite.ReasonInvalidMetadata, 8: remotewrite.ReasonInvalidValue,
	}, reasons)
	require.Len(t, readPoints(t, store, writer.Tenant), 1)

	// Parsing stays strict: an unknown field anywhere refuses the request.
	w = postNative(h, &writer, `{"metrics":[{"name":"x","histogram":{"schema":0,"count":0,"sum":0,"buckets":[1]}}]}`, nil)
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), `unknown field \"buckets\"`)
}

// The histograms TestWriteHistograms writes: exponential with both sides
// and a zero bucket, and custom buckets.
func testHistograms() (exp, custom *histogram.Histogram) {
	exp = &histogram.Histogram{
		CounterResetHint: histogram.NotCounterReset,
		Schema:           3, Count: 12, Sum: 34.5, ZeroThreshold: 0.001, ZeroCount: 2,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}, {Offset: 3, Length: 1}}, PositiveBuckets: []int64{1, 3, -1}, // 1, 4, 3
		NegativeSpans: []histogram.Span{{Offset: -2, Length: 1}}, NegativeBuckets: []int64{2},
	}
	custom = &histogram.Histogram{
		Schema: histogram.CustomBucketsSchema, Count: 6, Sum: 2.5,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 3}}, PositiveBuckets: []int64{1, 2, -1}, // 1, 3, 2
		CustomValues: []float64{0.1, 0.5, 1},
	}
	return exp, custom
}

func requireSameHistogram(t *testing.T, want *histogram.Histogram, got point) {
	t.Helper()
	require.NotNil(t, got.H, "an integer histogram")
	require.True(t, want.Equals(got.H), "want %v, got %v", want, got.H)
}

// A histogram with more spans, buckets or custom values than
// --ingest.max-buckets-per-histogram is rejected on its own, as remote
// write refuses it, however it fits the body.
func TestWriteHistogramBucketBound(t *testing.T) {
	store := openStore(t)
	cfg := testConfig(t)
	cfg.MaxBucketsPerHistogram = 4
	h := newWrite(cfg, store, nil, prometheus.NewRegistry())
	body := `{"metrics":[
		{"name":"four","histogram":{"schema":0,"count":4,"sum":1,"positive_spans":[{"offset":0,"length":4}],"positive_counts":[1,1,1,1]}},
		{"name":"five","histogram":{"schema":0,"count":5,"sum":1,"positive_spans":[{"offset":0,"length":5}],"positive_counts":[1,1,1,1,1]}},
		{"name":"spans","histogram":{"schema":0,"count":0,"sum":0,"negative_spans":[{"offset":0,"length":0},{"offset":0,"length":0},{"offset":0,"length":0},{"offset":0,"length":0},{"offset":0,"length":0}]}},
		{"name":"custom","histogram":{"schema":-53,"count":0,"sum":0,"custom_values":[1,2,3,4,5]}}
	]}`
	w := postNative(h, &writer, body, nil)
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	resp := nativeResponse(t, w)
	require.Equal(t, 1, resp.Accepted, w.Body.String())
	require.Len(t, resp.Errors, 3, w.Body.String())
	for i, e := range resp.Errors {
		require.Equal(t, i+1, e.Index)
		require.Equal(t, remotewrite.ReasonInvalidHistogram, e.Reason)
		require.Contains(t, e.Message, "more than 4 (raise --ingest.max-buckets-per-histogram)")
	}
	require.Len(t, readPoints(t, store, writer.Tenant), 1)
}
