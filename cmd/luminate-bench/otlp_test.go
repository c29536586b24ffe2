package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// decodeOTLP undoes what encodeOTLP did.
func decodeOTLP(t *testing.T, r request, gz bool) pmetric.Metrics {
	t.Helper()
	body := r.body
	if gz {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		require.NoError(t, err)
		body, err = io.ReadAll(zr)
		require.NoError(t, err)
	}
	req := pmetricotlp.NewExportRequest()
	require.NoError(t, req.UnmarshalProto(body))
	return req.Metrics()
}

func TestBuildOTLP(t *testing.T) {
	start := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for _, w := range []workload{
		{kind: kindOTLP},
		{kind: kindOTLP, gzip: true},
		{kind: kindOTLPHistogram, histogram: histExplicit, gzip: true},
		{kind: kindOTLPHistogram, histogram: histExponential},
	} {
		w.series, w.batch, w.workers, w.mode, w.interval, w.start, w.seed = 450, 200, 2, modeSteady, 15*time.Second, start, 7
		t.Run(w.kind+" "+w.histogram, func(t *testing.T) {
			perWorker, err := w.build(0, 2)
			require.NoError(t, err)
			points := map[string][]int64{} // timestamps by metric name and attributes
			for _, reqs := range perWorker {
				for _, r := range reqs {
					md := decodeOTLP(t, r, w.gzip)
					require.Equal(t, r.samples, md.DataPointCount())
					for i := range md.ResourceMetrics().Len() {
						rm := md.ResourceMetrics().At(i)
						job, ok := rm.Resource().Attributes().Get("service.name")
						require.True(t, ok)
						_, ok = rm.Resource().Attributes().Get("service.instance.id")
						require.True(t, ok)
						ms := rm.ScopeMetrics().At(0).Metrics()
						for j := range ms.Len() {
							m := ms.At(j)
							var key string
							var ts int64
							switch m.Type() {
							case pmetric.MetricTypeSum:
								require.True(t, m.Sum().IsMonotonic())
								p := m.Sum().DataPoints().At(0)
								key, ts = m.Name()+job.Str()+p.Attributes().AsRaw()["pod"].(string), int64(p.Timestamp())
							case pmetric.MetricTypeGauge:
								p := m.Gauge().DataPoints().At(0)
								key, ts = m.Name()+job.Str()+p.Attributes().AsRaw()["pod"].(string), int64(p.Timestamp())
							case pmetric.MetricTypeHistogram:
								p := m.Histogram().DataPoints().At(0)
								var n uint64
								for _, c := range p.BucketCounts().AsRaw() {
									n += c
								}
								require.Equal(t, p.Count(), n)
								require.Equal(t, p.ExplicitBounds().Len()+1, p.BucketCounts().Len())
								key, ts = m.Name()+job.Str()+p.Attributes().AsRaw()["pod"].(string), int64(p.Timestamp())
							case pmetric.MetricTypeExponentialHistogram:
								p := m.ExponentialHistogram().DataPoints().At(0)
								n := p.ZeroCount()
								for _, c := range p.Positive().BucketCounts().AsRaw() {
									n += c
								}
								require.Equal(t, p.Count(), n, "count = zero + buckets")
								require.EqualValues(t, 3, p.Scale())
								key, ts = m.Name()+job.Str()+p.Attributes().AsRaw()["pod"].(string), int64(p.Timestamp())
							default:
								t.Fatalf("metric %s of type %v", m.Name(), m.Type())
							}
							points[key] = append(points[key], ts)
						}
					}
				}
			}
			require.Len(t, points, w.series)
			for k, tss := range points {
				require.Len(t, tss, 2, k)
				require.Equal(t, int64(w.interval), tss[1]-tss[0], "%s: in order, a round apart", k)
			}
		})
	}
}

func TestOTLPFlags(t *testing.T) {
	var stderr bytes.Buffer
	require.Equal(t, 2, run(t.Context(), []string{"--kind=float", "--gzip"}, io.Discard, &stderr))
	require.Contains(t, stderr.String(), "--gzip is for the OTLP kinds")
	stderr.Reset()
	require.Equal(t, 2, run(t.Context(), []string{"--kind=otlp-histogram", "--otlp-histogram=native"}, io.Discard, &stderr))
	require.Contains(t, stderr.String(), "--otlp-histogram")
}
