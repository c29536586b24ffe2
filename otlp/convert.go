package otlp

import (
	"context"

	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
)

// fastConverter converts a protobuf ExportMetricsServiceRequest without
// pdata. convert returns ok=false, having appended nothing, when the
// request holds anything it does not handle (the caller then decodes with
// pdata and the upstream converter).
//
// The caller (Handler.write) holds the decode slot and the in-flight
// reservation; app is the validating appender over the tenant's store
// (remote write's rules, rejections counted there). convert appends and
// never commits: the caller checks st.Points against
// --ingest.max-samples-per-request and the rate limit, then commits or
// rolls back. st.Rejected and st.Message are convert's own refusals (delta
// points: DeltaMessage). The pdata path guards two things convert must
// guard too, or leave to pdata with ok=false: attribute values nested
// deeper than maxValueDepth (checkNesting; pdata recurses without bound),
// and target_info samples over wide time spans (targetInfoLookback).
type fastConverter interface {
	convert(ctx context.Context, body []byte, s prometheusremotewrite.Settings, app promstorage.AppenderV2) (st ConvertStats, ok bool, err error)
}

// ConvertStats is what a conversion did: the data points it read, how
// many of them were rejected, and the first rejection (for the
// partial_success of the response).
type ConvertStats struct {
	Points, Rejected int
	Message          string // the first rejection, for partial_success
}
