package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// nestedOTLP is an OTLP request whose one resource attribute is an
// AnyValue nested depth times (a kvlist in a kvlist ...), which pdata
// would decode recursively without bound.
func nestedOTLP(depth int) []byte {
	uv := func(n int) []byte { return binary.AppendUvarint(nil, uint64(n)) }
	core := []byte{0x0a, 0x01, 'x'} // AnyValue{string_value: "x"}
	prefixes := make([][]byte, depth)
	size := len(core)
	for i := depth - 1; i >= 0; i-- {
		kv := append([]byte{0x0a, 0x01, 'k', 0x12}, uv(size)...) // KeyValue{key, value: ...}
		kvl := append([]byte{0x0a}, uv(len(kv)+size)...)         // KeyValueList{values: ...}
		av := append([]byte{0x32}, uv(len(kvl)+len(kv)+size)...) // AnyValue{kvlist_value: ...}
		prefixes[i] = append(append(av, kvl...), kv...)
		size += len(prefixes[i])
	}
	kv := append([]byte{0x0a, 0x01, 'a', 0x12}, uv(size)...) // KeyValue{key: "a", value: ...}
	size += len(kv)
	res := append([]byte{0x0a}, uv(size)...) // Resource.attributes
	size += len(res)
	rm := append([]byte{0x0a}, uv(size)...) // ResourceMetrics.resource
	size += len(rm)
	req := append([]byte{0x0a}, uv(size)...) // ExportMetricsServiceRequest.resource_metrics
	out := append(append(append(req, rm...), res...), kv...)
	for _, p := range prefixes {
		out = append(out, p...)
	}
	return append(out, core...)
}

// anyAnswer accepts any status: the case checks only that the answer
// comes in time and that luminate survives it within its memory and CPU
// bounds.
var anyAnswer = statuses{lo: 200, hi: 599}

// fidelityAttackCases are tenant B's attacks on what issue 11 added:
// native histograms, exemplars and metadata in, query_exemplars and
// metadata out. Each is held to the bounds of every attack case.
func fidelityAttackCases(t *testing.T, s *attackServer) []attackCase {
	rw1 := func(req *prompb.WriteRequest) func(context.Context) *http.Request {
		raw, err := req.Marshal()
		require.NoError(t, err)
		body := snappy.Encode(nil, raw)
		return func(ctx context.Context) *http.Request {
			r := s.request(ctx, http.MethodPost, "/api/v1/write", s.tokenB, bytes.NewReader(body))
			r.Header.Set("Content-Type", "application/x-protobuf")
			r.Header.Set("Content-Encoding", "snappy")
			r.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
			return r
		}
	}
	rw2 := func(req *writev2.Request) func(context.Context) *http.Request {
		raw, err := req.Marshal()
		require.NoError(t, err)
		body := snappy.Encode(nil, raw)
		return func(ctx context.Context) *http.Request {
			r := s.request(ctx, http.MethodPost, "/api/v1/write", s.tokenB, bytes.NewReader(body))
			r.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
			r.Header.Set("Content-Encoding", "snappy")
			r.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
			return r
		}
	}
	get := func(path string) func(context.Context) *http.Request {
		return func(ctx context.Context) *http.Request { return s.request(ctx, http.MethodGet, path, s.tokenB, nil) }
	}
	name := func(n string, extra ...prompb.Label) []prompb.Label {
		return append([]prompb.Label{{Name: "__name__", Value: n}}, extra...)
	}

	// One histogram of 4Mi buckets, 64 times the per-histogram bound.
	wide := prompb.Histogram{Count: &prompb.Histogram_CountInt{CountInt: 0}, Schema: 0, Timestamp: s.now,
		PositiveSpans: []prompb.BucketSpan{{Offset: 0, Length: 4 << 20}}, PositiveDeltas: make([]int64, 4<<20)}
	// 100 histograms of 60,000 buckets each: every one within the bound,
	// six million buckets in one request.
	many := &prompb.WriteRequest{}
	for i := range 100 {
		deltas := make([]int64, 60_000)
		deltas[0] = 1
		many.Timeseries = append(many.Timeseries, prompb.TimeSeries{Labels: name("attack_hist_many", prompb.Label{Name: "i", Value: strconv.Itoa(i)}),
			Histograms: []prompb.Histogram{{Count: &prompb.Histogram_CountInt{CountInt: 60_000}, Schema: 0, Timestamp: s.now,
				PositiveSpans: []prompb.BucketSpan{{Offset: 0, Length: 60_000}}, PositiveDeltas: deltas}}})
	}
	// Span offsets that overflow a bucket index.
	overflow := &prompb.WriteRequest{}
	for i := range 1000 {
		overflow.Timeseries = append(overflow.Timeseries, prompb.TimeSeries{Labels: name("attack_hist_offsets", prompb.Label{Name: "i", Value: strconv.Itoa(i)}),
			Histograms: []prompb.Histogram{{Count: &prompb.Histogram_CountInt{CountInt: 2}, Schema: 0, Timestamp: s.now,
				PositiveSpans:  []prompb.BucketSpan{{Offset: math.MaxInt32, Length: 1}, {Offset: math.MaxInt32, Length: 1}},
				PositiveDeltas: []int64{1, 0}}}})
	}
	// Exemplars: 100,000 for one series, and one with a 1 MiB label.
	exemplars := make([]prompb.Exemplar, 100_000)
	for i := range exemplars {
		exemplars[i] = prompb.Exemplar{Labels: []prompb.Label{{Name: "trace_id", Value: strconv.Itoa(i)}}, Value: 1, Timestamp: s.now - int64(len(exemplars)-i)}
	}
	manyExemplars := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: name("attack_exemplars"),
		Samples: []prompb.Sample{{Timestamp: s.now, Value: 1}}, Exemplars: exemplars}}}
	bigExemplar := &writev2.Request{Symbols: []string{"", "__name__", "attack_exemplar_big", "trace_id", strings.Repeat("x", 1<<20)},
		Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{1, 2}, Samples: []writev2.Sample{{Timestamp: s.now, Value: 1}},
			Exemplars: []writev2.Exemplar{{LabelsRefs: []uint32{3, 4}, Value: 1, Timestamp: s.now}}}}}
	// 200,000 metadata entries of families that have no series: twice the
	// process-wide bound on metadata waiting for its series.
	meta := &prompb.WriteRequest{}
	for i := range 200_000 {
		meta.Metadata = append(meta.Metadata, prompb.MetricMetadata{Type: prompb.MetricMetadata_COUNTER,
			MetricFamilyName: fmt.Sprintf("attack_meta_%06d_total", i), Help: strings.Repeat("h", 64)})
	}
	// A native write of a histogram of a million buckets.
	counts := make([]int, 1_000_000)
	nativeHist, err := json.Marshal(map[string]any{"metrics": []any{map[string]any{
		"name": "attack_native_hist", "timestamp": s.now,
		"histogram": map[string]any{"schema": 0, "count": 0, "positive_spans": []any{map[string]any{"offset": 0, "length": len(counts)}}, "positive_counts": counts},
	}}})
	require.NoError(t, err)
	otlp := func(body []byte) func(context.Context) *http.Request {
		var z bytes.Buffer
		gz := gzip.NewWriter(&z)
		_, err := gz.Write(body)
		require.NoError(t, err)
		require.NoError(t, gz.Close())
		b := z.Bytes()
		return func(ctx context.Context) *http.Request {
			r := s.request(ctx, http.MethodPost, "/otlp/v1/metrics", s.tokenB, bytes.NewReader(b))
			r.Header.Set("Content-Type", "application/x-protobuf")
			r.Header.Set("Content-Encoding", "gzip")
			return r
		}
	}
	// An OTLP request of 1,000,001 gauge points of one series each.
	md := pmetric.NewMetrics()
	dps := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	dps.SetName("attack_otlp")
	points := dps.SetEmptyGauge().DataPoints()
	for i := range 1_000_001 {
		dp := points.AppendEmpty()
		dp.SetTimestamp(pcommon.Timestamp(s.now * 1e6))
		dp.SetDoubleValue(float64(i))
	}
	manyPoints, err := (&pmetric.ProtoMarshaler{}).MarshalMetrics(md)
	require.NoError(t, err)
	all := url.QueryEscape(`{__name__=~".+"}`)
	return []attackCase{
		{name: "rw1 histogram of 4Mi buckets", build: rw1(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: name("attack_hist_wide"), Histograms: []prompb.Histogram{wide}}}}), accept: clientError},
		{name: "rw1 100 histograms of 60000 buckets", build: rw1(many), accept: anyAnswer},
		{name: "rw1 1000 histograms with overflowing span offsets", build: rw1(overflow), accept: clientError},
		{name: "rw1 100000 exemplars of one series", build: rw1(manyExemplars), accept: anyAnswer},
		{name: "rw2 exemplar with a 1MiB label", build: rw2(bigExemplar), accept: statuses{lo: 200, hi: 499}},
		{name: "rw1 200000 metadata entries without series", build: rw1(meta), accept: anyAnswer},
		{name: "native write histogram of 1M buckets", build: func(ctx context.Context) *http.Request {
			r := s.request(ctx, http.MethodPost, "/api/v1/metrics", s.tokenB, bytes.NewReader(nativeHist))
			r.Header.Set("Content-Type", "application/json")
			return r
		}, accept: clientError},
		{name: "query_exemplars of every series over 10 years", build: get("/api/v1/query_exemplars?query=" + all + "&start=" + strconv.FormatInt(s.now/1000-10*365*86400, 10) + "&end=" + strconv.FormatInt(s.now/1000+3600, 10)), accept: anyAnswer},
		{name: "metadata of every family", build: get("/api/v1/metadata?limit=-1&limit_per_metric=-1"), accept: anyAnswer},
		{name: "otlp gzip bomb of 1GiB", build: otlp(make([]byte, 1<<30)), accept: clientError},
		{name: "otlp attribute nested a million deep", build: otlp(nestedOTLP(1_000_000)), accept: clientError},
		{name: "otlp 1000001 data points", build: otlp(manyPoints), accept: clientError},
	}
}
