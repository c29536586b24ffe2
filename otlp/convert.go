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
