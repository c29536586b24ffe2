package promql

import (
	"sync"
	"time"

	jsoniter "github.com/json-iterator/go"
)

var upstreamCodecOnce sync.Once

// UpstreamJSON encodes v as Prometheus' web/api/v1 JSON codec does (the
// copy in upstreamcodec_test.go), for the tests of package promql_test.
func UpstreamJSON(v any) ([]byte, error) {
	upstreamCodecOnce.Do(registerUpstreamCodec)
	return jsoniter.ConfigCompatibleWithStandardLibrary.Marshal(v)
}

// RangeParts is the number of parts a range query of q would run in.
func (a *API) RangeParts(q string, start, end time.Time, step time.Duration) (int, error) {
	expr, err := a.parser.ParseExpr(q)
	if err != nil {
		return 0, err
	}
	return a.rangeParts(expr, start, end, step), nil
}
