package promql

import (
	"sync"

	jsoniter "github.com/json-iterator/go"
)

var upstreamCodecOnce sync.Once

// UpstreamJSON encodes v as Prometheus' web/api/v1 JSON codec does (the
// copy in upstreamcodec_test.go), for the tests of package promql_test.
func UpstreamJSON(v any) ([]byte, error) {
	upstreamCodecOnce.Do(registerUpstreamCodec)
	return jsoniter.ConfigCompatibleWithStandardLibrary.Marshal(v)
}
