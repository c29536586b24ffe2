package otlp_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/luminate-io/luminate/remotewrite"
)

// benchExport is an export of series series of points points each, of
// kind "sum" or "histogram" (10 explicit buckets), the points one second
// apart from base.
func benchExport(kind string, series, points int, base time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	sm := newResource(md)
	m := sm.Metrics().AppendEmpty()
	m.SetName("bench." + kind)
	m.SetUnit("s")
	bounds := []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}
	switch kind {
	case "sum":
		s := m.SetEmptySum()
		s.SetIsMonotonic(true)
		s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		dps := s.DataPoints()
		dps.EnsureCapacity(series * points)
		for i := range series {
			for j := range points {
				dp := dps.AppendEmpty()
				dp.SetStartTimestamp(ts(base.Add(-time.Hour)))
				dp.SetTimestamp(ts(base.Add(time.Duration(j) * time.Second)))
				dp.SetDoubleValue(float64(i + j))
				dp.Attributes().PutStr("series", fmt.Sprint(i))
				dp.Attributes().PutStr("method", "GET")
			}
		}
	case "histogram":
		h := m.SetEmptyHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		dps := h.DataPoints()
		dps.EnsureCapacity(series * points)
		for i := range series {
			for j := range points {
				dp := dps.AppendEmpty()
				dp.SetStartTimestamp(ts(base.Add(-time.Hour)))
				dp.SetTimestamp(ts(base.Add(time.Duration(j) * time.Second)))
				dp.ExplicitBounds().FromRaw(bounds)
				counts := make([]uint64, len(bounds)+1)
				for k := range counts {
					counts[k] = uint64(j + k)
				}
				dp.BucketCounts().FromRaw(counts)
				var total uint64
				for _, c := range counts {
					total += c
				}
				dp.SetCount(total)
				dp.SetSum(float64(total) * 0.1)
				dp.Attributes().PutStr("series", fmt.Sprint(i))
				dp.Attributes().PutStr("method", "GET")
			}
		}
	}
	return md
}

// BenchmarkPipeline is the receiver's pdata path: decode, Prometheus'
// converter, validation and the Badger append and commit, through the
// router, for 1,000 series of 10 points a request.
func BenchmarkPipeline(b *testing.B) {
	const series, points = 1000, 10
	for _, kind := range []string{"sum", "histogram"} {
		b.Run(kind, func(b *testing.B) {
			e := newEnv(b, envOptions{ingest: func(c *remotewrite.Config) { c.MaxCompressedBytes = 64 << 20 }})
			base := time.Now().Add(-time.Hour)
			var bodies [][]byte
			for i := range 20 {
				bodies = append(bodies, protoBody(b, benchExport(kind, series, points, base.Add(time.Duration(i*points)*time.Second))))
			}
			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for b.Loop() {
				if n == len(bodies) {
					b.StopTimer()
					base = base.Add(time.Duration(len(bodies)*points) * time.Second)
					for i := range bodies {
						bodies[i] = protoBody(b, benchExport(kind, series, points, base.Add(time.Duration(i*points)*time.Second)))
					}
					n = 0
					b.StartTimer()
				}
				w := e.post(bodies[n], post{})
				n++
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
			pts := float64(b.N * series * points)
			b.ReportMetric(pts/b.Elapsed().Seconds(), "points/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
