package otlp

import (
	"fmt"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

// refuseUnsupported removes from md the metrics Luminate does not store,
// and returns how many data points they held and why the first was
// refused: sums and histograms of delta temporality (see the package
// documentation), of no temporality, and metrics of no type.
func refuseUnsupported(md pmetric.Metrics) (rejected int, msg string) {
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		sms := rms.At(i).ScopeMetrics()
		for j := range sms.Len() {
			sms.At(j).Metrics().RemoveIf(func(m pmetric.Metric) bool {
				why, n := unsupported(m)
				if why == "" {
					return false
				}
				rejected += n
				if msg == "" {
					msg = why
				}
				return true
			})
		}
	}
	return rejected, msg
}

// unsupported says why m is not stored, or "", and how many points it has.
func unsupported(m pmetric.Metric) (why string, points int) {
	var t pmetric.AggregationTemporality
	switch m.Type() {
	case pmetric.MetricTypeGauge, pmetric.MetricTypeSummary:
		return "", 0
	case pmetric.MetricTypeSum:
		t, points = m.Sum().AggregationTemporality(), m.Sum().DataPoints().Len()
	case pmetric.MetricTypeHistogram:
		t, points = m.Histogram().AggregationTemporality(), m.Histogram().DataPoints().Len()
	case pmetric.MetricTypeExponentialHistogram:
		t, points = m.ExponentialHistogram().AggregationTemporality(), m.ExponentialHistogram().DataPoints().Len()
	default:
		return fmt.Sprintf("metric %q has no data (no gauge, sum, histogram, exponential histogram or summary)", m.Name()), 0
	}
	switch t {
	case pmetric.AggregationTemporalityCumulative:
		return "", 0
	case pmetric.AggregationTemporalityDelta:
		return DeltaMessage(m.Name()), points
	}
	return fmt.Sprintf("metric %q has no aggregation temporality: set it cumulative", m.Name()), points
}

// DeltaMessage is why the points of a delta metric are refused, and what
// to set instead.
func DeltaMessage(name string) string {
	return fmt.Sprintf("metric %q has delta temporality, which Luminate does not store (as Prometheus 3 and Mimir by default): "+
		"export cumulative temporality, with OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=cumulative in the OpenTelemetry SDK, "+
		"or the deltatocumulative processor in the OpenTelemetry Collector", name)
}
