package otlp_test

import (
	"net/http"
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/luminate-io/luminate/remotewrite"
)

// FuzzOTLP posts arbitrary bodies, protobuf or JSON, plain or gzipped,
// to the receiver over a Badger store: every answer is a 200 with an
// ExportMetricsServiceResponse or a 400/413 with a google.rpc.Status,
// never a panic, a 5xx or a hang.
func FuzzOTLP(f *testing.F) {
	md := pmetric.NewMetrics()
	sm := newResource(md)
	addSum(sm, "c", "1", true, pmetric.AggregationTemporalityCumulative, 1, 2)
	addSum(sm, "d", "", true, pmetric.AggregationTemporalityDelta, 1)
	g := sm.Metrics().AppendEmpty()
	g.SetName("g")
	g.SetEmptyGauge().DataPoints().AppendEmpty().SetDoubleValue(1)
	h := sm.Metrics().AppendEmpty()
	h.SetName("h")
	hs := h.SetEmptyHistogram()
	hs.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hp := hs.DataPoints().AppendEmpty()
	hp.SetTimestamp(ts(t1))
	hp.ExplicitBounds().FromRaw([]float64{1})
	hp.BucketCounts().FromRaw([]uint64{1, 2})
	eh := sm.Metrics().AppendEmpty()
	eh.SetName("e")
	ehs := eh.SetEmptyExponentialHistogram()
	ehs.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	ep := ehs.DataPoints().AppendEmpty()
	ep.SetTimestamp(ts(t1))
	ep.SetScale(20)
	ep.Negative().BucketCounts().FromRaw([]uint64{1, 0, 3})
	su := sm.Metrics().AppendEmpty()
	su.SetName("s")
	su.SetEmptySummary().DataPoints().AppendEmpty().QuantileValues().AppendEmpty().SetQuantile(0.9)
	pb, _ := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	js, _ := pmetricotlp.NewExportRequestFromMetrics(md).MarshalJSON()
	for _, seed := range [][]byte{pb, js, nestedProto(40), nestedJSON(40), {}, []byte("{}"), {0x0a, 0x00}} {
		f.Add(seed, uint8(0))
		f.Add(seed, uint8(1))
	}
	f.Add(gzipped(f, pb), uint8(2))
	f.Add(gzipped(f, js), uint8(3))
	e := newEnv(f, envOptions{ingest: func(c *remotewrite.Config) { c.MaxSamplesPerRequest = 10_000 }})
	f.Fuzz(func(t *testing.T, body []byte, mode uint8) {
		p := post{}
		if mode&1 == 1 {
			p.contentType = "application/json"
		}
		if mode&2 == 2 {
			p.contentEncoding = "gzip"
		}
		w := e.post(body, p)
		switch w.Code {
		case http.StatusOK:
			exportResponse(t, w)
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			rpcStatus(t, w)
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	})
}
