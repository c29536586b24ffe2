package otlp

import (
	"fmt"
	"math"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// refuseUnsupported removes from md the metrics Luminate does not store,
// and returns how many data points they held and why the first was
// refused: sums and histograms of delta temporality (see the package
// documentation), of no temporality, and metrics of no type. It also
// returns the widest span of the points' timestamps in one resource.
func refuseUnsupported(md pmetric.Metrics) (rejected int, msg string, span time.Duration) {
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		lo, hi := pcommon.Timestamp(math.MaxUint64), pcommon.Timestamp(0)
		sms := rms.At(i).ScopeMetrics()
		for j := range sms.Len() {
			sms.At(j).Metrics().RemoveIf(func(m pmetric.Metric) bool {
				why, n := unsupported(m)
				if why == "" {
					lo, hi = timeRange(m, lo, hi)
					return false
				}
				rejected += n
				if msg == "" {
					msg = why
				}
				return true
			})
		}
		if hi > lo {
			span = max(span, time.Duration(min(hi-lo, math.MaxInt64)))
		}
	}
	return rejected, msg, span
}

// timeRange widens [lo, hi] to the timestamps of m's points.
func timeRange(m pmetric.Metric, lo, hi pcommon.Timestamp) (pcommon.Timestamp, pcommon.Timestamp) {
	widen := func(t pcommon.Timestamp) { lo, hi = min(lo, t), max(hi, t) }
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		for _, p := range m.Gauge().DataPoints().All() {
			widen(p.Timestamp())
		}
	case pmetric.MetricTypeSum:
		for _, p := range m.Sum().DataPoints().All() {
			widen(p.Timestamp())
		}
	case pmetric.MetricTypeHistogram:
		for _, p := range m.Histogram().DataPoints().All() {
			widen(p.Timestamp())
		}
	case pmetric.MetricTypeExponentialHistogram:
		for _, p := range m.ExponentialHistogram().DataPoints().All() {
			widen(p.Timestamp())
		}
	case pmetric.MetricTypeSummary:
		for _, p := range m.Summary().DataPoints().All() {
			widen(p.Timestamp())
		}
	}
	return lo, hi
}

// maxTargetInfoSpacings bounds the target_info samples of one resource.
// Prometheus' converter writes one every half lookback delta from the
// resource's earliest point to its latest: for points of 1970 and of
// today, 11 million of them. A request whose points span more than
// maxTargetInfoSpacings half lookbacks has its target_info samples
// spaced wider, maxTargetInfoSpacings+2 at most per resource.
const maxTargetInfoSpacings = 4

// targetInfoLookback is the lookback delta that spaces the target_info
// samples of resources spanning span: lookback, or wider when span
// needs more than maxTargetInfoSpacings of its halves.
func targetInfoLookback(lookback, span time.Duration) time.Duration {
	if span/maxTargetInfoSpacings > lookback/2 {
		return 2 * (span/maxTargetInfoSpacings + 1)
	}
	return lookback
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
