package promql

import (
	"math"
	"testing"

	jsoniter "github.com/json-iterator/go"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	pql "github.com/prometheus/prometheus/promql"
	"github.com/stretchr/testify/require"
)

// TestRenderValues checks the encoding of values the store cannot hold yet
// (native histograms) or that are rare (negative timestamps, extreme
// floats) against Prometheus' JSON codec, worked out by hand. Sample
// timestamps keep three decimals when they have any ("1.500"), as
// jsonutil.MarshalTimestamp writes them.
func TestRenderValues(t *testing.T) {
	h := &histogram.FloatHistogram{
		Schema:          0,
		Count:           2,
		Sum:             3,
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 1}},
		PositiveBuckets: []float64{2},
	}
	ls := labels.FromStrings("__name__", "h", "q", `"x"`)
	for _, c := range []struct {
		name string
		data any
		want string
	}{
		{"histogram sample", &queryData{resultType: "vector", result: pql.Vector{{Metric: ls, T: 1500, H: h}}},
			`{"resultType":"vector","result":[{"metric":{"__name__":"h","q":"\"x\""},"histogram":[1.500,{"count":"2","sum":"3","buckets":[[0,"0.5","1","2"]]}]}]}`},
		{"histogram series", &queryData{resultType: "matrix", result: pql.Matrix{{Metric: ls, Histograms: []pql.HPoint{{T: -1005, H: h}}}}},
			`{"resultType":"matrix","result":[{"metric":{"__name__":"h","q":"\"x\""},"histograms":[[-1.005,{"count":"2","sum":"3","buckets":[[0,"0.5","1","2"]]}]]}]}`},
		{"floats", &queryData{resultType: "matrix", result: pql.Matrix{{Metric: labels.EmptyLabels(), Floats: []pql.FPoint{
			{T: 0, F: math.Inf(-1)}, {T: 1, F: 1e21}, {T: 10, F: -0.000001}, {T: 100, F: 123456.789},
		}}}},
			`{"resultType":"matrix","result":[{"metric":{},"values":[[0,"-Inf"],[0.001,"1e+21"],[0.010,"-0.000001"],[0.100,"123456.789"]]}]}`},
		{"empty vector", &queryData{resultType: "vector", result: pql.Vector{}}, `{"resultType":"vector","result":[]}`},
		{"empty matrix", &queryData{resultType: "matrix", result: pql.Matrix{}}, `{"resultType":"matrix","result":[]}`},
		{"empty series list", seriesList{}, `[]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := jsoniter.ConfigCompatibleWithStandardLibrary.BorrowStream(nil)
			defer jsoniter.ConfigCompatibleWithStandardLibrary.ReturnStream(s)
			writeData(s, c.data)
			require.NoError(t, s.Error)
			require.Equal(t, c.want, string(s.Buffer()))
		})
	}
}
