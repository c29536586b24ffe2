package main

// OTLP/HTTP requests (--kind=otlp, --kind=otlp-histogram): the series of
// the remote-write workload as OpenTelemetry would send them, for any OTLP
// metrics receiver (Luminate's /otlp/v1/metrics, Prometheus 3's
// /api/v1/otlp/v1/metrics).

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// OTLP kinds.
const (
	// kindOTLP: sums (monotonic, cumulative: counters) and gauges, half
	// each, as the float kind.
	kindOTLP = "otlp"
	// kindOTLPHistogram: cumulative histograms, explicit buckets
	// (--otlp-histogram=explicit) or exponential (exponential).
	kindOTLPHistogram = "otlp-histogram"
)

// OTLP histogram shapes.
const (
	histExplicit    = "explicit"    // otlpExplicitBounds, classic _bucket series in Prometheus
	histExponential = "exponential" // scale 3, histogramBuckets populated buckets: native histograms
)

// otlpExplicitBounds are the bounds of the explicit-bucket histograms, in
// seconds.
var otlpExplicitBounds = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// isOTLP tells whether kind sends OTLP.
func isOTLP(kind string) bool { return kind == kindOTLP || kind == kindOTLPHistogram }

// otlpName is the OTLP name of series id; Prometheus' translation adds
// _total to counters and the unit (_seconds) to histograms.
func otlpName(w workload, id int) (name, unit string) {
	m := id % metricsPerTarget
	if w.kind == kindOTLPHistogram {
		return fmt.Sprintf("bench.otlp.histogram.%03d", m), "s"
	}
	return fmt.Sprintf("bench.otlp.%03d", m), ""
}

// otlpPromName is what Prometheus 3 names series id (the default
// UnderscoreEscapingWithSuffixes translation): a family name for
// histograms (explicit: its _count series counts one sample per point).
func otlpPromName(kind string, m int, histogram string) string {
	switch {
	case kind == kindOTLPHistogram && histogram == histExponential:
		return fmt.Sprintf("bench_otlp_histogram_%03d_seconds", m)
	case kind == kindOTLPHistogram:
		return fmt.Sprintf("bench_otlp_histogram_%03d_seconds_count", m)
	case isCounter(m):
		return fmt.Sprintf("bench_otlp_%03d_total", m)
	}
	return fmt.Sprintf("bench_otlp_%03d", m)
}

// encodeOTLP builds request index of round as an ExportMetricsServiceRequest:
// a ResourceMetrics per target (service.name is the job, service.instance.id
// the instance), one metric of one data point per series whose attributes are
// the other target labels; gzip-compressed with --gzip. Prometheus makes of
// it the series of the remote-write workload (the same 8 labels), plus a
// target_info per target.
func (e *encoder) encodeOTLP(w workload, round, index int) (request, error) {
	lo := index * w.batch
	hi := min(lo+w.batch, w.series)
	first := w.firstSeries(round)
	ts := pcommon.Timestamp(time.UnixMilli(w.timestamp(round)).UnixNano())
	start := pcommon.Timestamp(w.start.Add(-w.interval).UnixNano())

	md := pmetric.NewMetrics()
	var sm pmetric.ScopeMetrics
	target := -1
	for i := lo; i < hi; i++ {
		id := first + i
		if t := id / metricsPerTarget; t != target {
			target = t
			tl := appendTargetLabels(e.tl[:0], t, w.seed)
			e.tl = tl
			rm := md.ResourceMetrics().AppendEmpty()
			ra := rm.Resource().Attributes()
			for _, l := range tl {
				switch l.Name {
				case "job":
					ra.PutStr("service.name", l.Value)
				case "instance":
					ra.PutStr("service.instance.id", l.Value)
				case "pod":
					ra.PutStr("k8s.pod.name", l.Value) // target_info is the pod's
				}
			}
			ra.PutStr("telemetry.sdk.language", "go")
			sm = rm.ScopeMetrics().AppendEmpty()
			sm.Scope().SetName("luminate-bench")
		}
		m := sm.Metrics().AppendEmpty()
		name, unit := otlpName(w, id)
		m.SetName(name)
		m.SetUnit(unit)
		var attrs pcommon.Map
		switch {
		case w.kind == kindOTLPHistogram && w.histogram == histExponential:
			h := m.SetEmptyExponentialHistogram()
			h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			p := h.DataPoints().AppendEmpty()
			p.SetStartTimestamp(start)
			p.SetTimestamp(ts)
			setExponential(p, id, round)
			attrs = p.Attributes()
		case w.kind == kindOTLPHistogram:
			h := m.SetEmptyHistogram()
			h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			p := h.DataPoints().AppendEmpty()
			p.SetStartTimestamp(start)
			p.SetTimestamp(ts)
			setExplicit(p, id, round)
			attrs = p.Attributes()
		case isCounter(id):
			s := m.SetEmptySum()
			s.SetIsMonotonic(true)
			s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			p := s.DataPoints().AppendEmpty()
			p.SetStartTimestamp(start)
			p.SetTimestamp(ts)
			p.SetDoubleValue(w.value(id, round))
			attrs = p.Attributes()
		default:
			p := m.SetEmptyGauge().DataPoints().AppendEmpty()
			p.SetTimestamp(ts)
			p.SetDoubleValue(w.value(id, round))
			attrs = p.Attributes()
		}
		for _, l := range e.tl {
			if l.Name != "job" && l.Name != "instance" {
				attrs.PutStr(l.Name, l.Value)
			}
		}
	}
	raw, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		return request{}, fmt.Errorf("encode OTLP request %d of round %d: %w", index, round, err)
	}
	if w.gzip {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		if _, err := zw.Write(raw); err != nil {
			return request{}, err
		}
		if err := zw.Close(); err != nil {
			return request{}, err
		}
		raw = b.Bytes()
	}
	return request{body: raw, samples: hi - lo}, nil
}

// setExplicit makes p the cumulative explicit-bucket histogram of series id
// in round: every bucket grows by a whole number of observations per round.
func setExplicit(p pmetric.HistogramDataPoint, id, round int) {
	h := mix(uint64(id))
	counts := make([]uint64, len(otlpExplicitBounds)+1)
	var count uint64
	sum := 0.0
	for i := range counts {
		hi := mix(h + uint64(i))
		c := 1 + hi%50 + uint64(round)*(1+hi%9)
		counts[i] = c
		count += c
		b := 20.0
		if i < len(otlpExplicitBounds) {
			b = otlpExplicitBounds[i]
		}
		sum += float64(c) * b * 0.75
	}
	p.ExplicitBounds().FromRaw(otlpExplicitBounds)
	p.BucketCounts().FromRaw(counts)
	p.SetCount(count)
	p.SetSum(sum)
}

// setExponential makes p the exponential histogram of series id in round:
// histogramValue's native histogram (schema 3, two spans) as OTLP has it,
// dense buckets from the first populated one (OTLP bucket k is native
// bucket k+1).
func setExponential(p pmetric.ExponentialHistogramDataPoint, id, round int) {
	nh := histogramValue(id, round)
	p.SetScale(nh.Schema)
	p.SetZeroCount(nh.ZeroCount)
	p.SetCount(nh.Count)
	p.SetSum(nh.Sum)
	var dense []uint64
	next := 0
	var c int64 // the bucket's count: PositiveBuckets are deltas
	for si, s := range nh.PositiveSpans {
		if si == 0 {
			p.Positive().SetOffset(s.Offset - 1)
		} else {
			for range s.Offset {
				dense = append(dense, 0)
			}
		}
		for range s.Length {
			c += nh.PositiveBuckets[next]
			next++
			dense = append(dense, uint64(c))
		}
	}
	p.Positive().BucketCounts().FromRaw(dense)
}

// otlpRejected is a writtenError when the 2xx answer to an OTLP request
// has a partial_success that rejected points (Prometheus answers with an
// empty body).
func otlpRejected(resp *http.Response, body []byte) error {
	if len(body) == 0 {
		return nil
	}
	r := pmetricotlp.NewExportResponse()
	var err error
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		err = r.UnmarshalJSON(body)
	} else {
		err = r.UnmarshalProto(body)
	}
	if err != nil {
		return &writtenError{fmt.Sprintf("HTTP %d: not an ExportMetricsServiceResponse: %v", resp.StatusCode, err)}
	}
	if n := r.PartialSuccess().RejectedDataPoints(); n > 0 {
		return &writtenError{fmt.Sprintf("HTTP %d: %d data points rejected: %s", resp.StatusCode, n, r.PartialSuccess().ErrorMessage())}
	}
	return nil
}
