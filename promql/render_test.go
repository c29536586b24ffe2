package promql

import (
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	jsoniter "github.com/json-iterator/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	pql "github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/parser/posrange"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/stats"
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

// upstreamQueryData is web/api/v1's QueryData (without the query-cost
// field, which Luminate never sets and upstream omits when unset).
type upstreamQueryData struct {
	ResultType parser.ValueType `json:"resultType"`
	Result     parser.Value     `json:"result"`
	Stats      stats.QueryStats `json:"stats,omitempty"`
}

// upstreamResponse is web/api/v1's Response.
type upstreamResponse struct {
	Status    string   `json:"status"`
	Data      any      `json:"data,omitempty"`
	ErrorType string   `json:"errorType,omitempty"`
	Error     string   `json:"error,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	Infos     []string `json:"infos,omitempty"`
}

// upstreamJSON encodes v as Prometheus' JSON codec does.
func upstreamJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := UpstreamJSON(v)
	require.NoError(t, err)
	return string(b)
}

// renderHistograms are native histograms of every shape the codec
// distinguishes: integer ones (as the engine hands them, converted to
// float), float ones, exponential schemas from -4 to 8, custom buckets,
// negative buckets, zero buckets (with and without a threshold), empty
// buckets (not rendered), gaps between spans, non-finite sums and counts.
func renderHistograms() []*histogram.FloatHistogram {
	integer := &histogram.Histogram{
		Schema: 3, Count: 21, Sum: 34.5, ZeroThreshold: 0.001, ZeroCount: 2,
		CounterResetHint: histogram.NotCounterReset,
		PositiveSpans:    []histogram.Span{{Offset: -2, Length: 2}, {Offset: 3, Length: 2}},
		PositiveBuckets:  []int64{1, 2, -3, 4}, // deltas: 1 3 0 4
		NegativeSpans:    []histogram.Span{{Offset: 0, Length: 3}},
		NegativeBuckets:  []int64{5, -2, -2}, // 5 3 1
	}
	return []*histogram.FloatHistogram{
		integer.ToFloat(nil),
		{ // custom buckets, the last one up to +Inf
			Schema: histogram.CustomBucketsSchema, Count: 7.5, Sum: 3.25,
			PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 2}},
			PositiveBuckets: []float64{1.5, 2, 3, 1},
			CustomValues:    []float64{0.1, 0.5, 1, 2.5},
		},
		{ // negative buckets only, fractional counts, schema -4
			Schema: -4, Count: 3.75, Sum: -1234.5e10, CounterResetHint: histogram.GaugeType,
			NegativeSpans:   []histogram.Span{{Offset: -1, Length: 2}, {Offset: 2, Length: 1}},
			NegativeBuckets: []float64{0.25, 1e-7, 3.5},
		},
		{ // schema 8, zero bucket without a threshold, NaN sum
			Schema: 8, Count: math.Inf(1), Sum: math.NaN(), ZeroCount: 4,
			PositiveSpans:   []histogram.Span{{Offset: 1000, Length: 1}},
			PositiveBuckets: []float64{math.Inf(1)},
		},
		{Schema: 0, Count: 0, Sum: 0}, // empty
		{ // stale marker
			Schema: 1, Sum: math.Float64frombits(value.StaleNaN),
		},
	}
}

// TestRenderMatchesUpstreamCodec checks that query results render byte for
// byte as Prometheus' web/api/v1 JSON codec renders them (the copy in
// upstreamcodec_test.go), native histograms included, in the whole
// success envelope.
func TestRenderMatchesUpstreamCodec(t *testing.T) {
	hs := renderHistograms()
	ls := labels.FromStrings("__name__", "h", "le", "<&>", "q", `"x"`, "ü", "\u2028")
	var vec pql.Vector
	var mat pql.Matrix
	for i, h := range hs {
		l := labels.NewBuilder(ls).Set("i", strconv.Itoa(i)).Labels()
		vec = append(vec, pql.Sample{Metric: l, T: int64(i)*1001 - 2000, H: h})
		mat = append(mat, pql.Series{Metric: l, Histograms: []pql.HPoint{{T: int64(i), H: h}, {T: 1_700_000_000_123, H: h}}})
	}
	vec = append(vec, pql.Sample{Metric: labels.EmptyLabels(), T: 5, F: -0.5})
	mat = append(mat, pql.Series{ // floats and histograms in one series
		Metric:     labels.FromStrings("a", "b"),
		Floats:     []pql.FPoint{{T: 1, F: 1e-7}, {T: 2, F: math.NaN()}, {T: 3, F: 1e21}},
		Histograms: []pql.HPoint{{T: 4, H: hs[0]}, {T: 5, H: hs[1]}},
	})
	a := &API{json: jsonConfig()}
	var warnings annotations.Annotations
	warnings.Add(annotations.NewBadBucketLabelWarning("x", "y", posrange.PositionRange{}))
	warnings.Add(annotations.NewPossibleNonCounterInfo("x", posrange.PositionRange{}))
	for _, res := range []parser.Value{vec, mat, pql.Vector{}, pql.Matrix{}, pql.Scalar{T: 1, V: math.Inf(-1)}} {
		t.Run(string(res.Type()), func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/api/v1/query", nil)
			resp := &response{a: a, result: result{data: &queryData{resultType: res.Type(), result: res}, warnings: warnings}}
			require.NoError(t, resp.Respond(rec, req))
			warn, info := warnings.AsStrings("", 10, 10)
			want := upstreamJSON(t, upstreamResponse{
				Status:   "success",
				Data:     &upstreamQueryData{ResultType: res.Type(), Result: res},
				Warnings: warn,
				Infos:    info,
			})
			require.Equal(t, want, rec.Body.String())
		})
	}
}

// TestUpstreamCodecCopyIsVerbatim checks that upstreamcodec_test.go holds
// Prometheus' encoders unchanged, as the module go.mod requires has them.
func TestUpstreamCodecCopyIsVerbatim(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/prometheus/prometheus").Output()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("go list the prometheus module: %v", err)
		}
		t.Skipf("go list the prometheus module: %v", err)
	}
	upstream, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "web", "api", "v1", "json_codec.go"))
	require.NoError(t, err)
	copied, err := os.ReadFile("upstreamcodec_test.go")
	require.NoError(t, err)
	const from = "func unsafeMarshalSeriesJSON("
	i := strings.Index(string(upstream), from)
	require.Positive(t, i, "upstream codec has no %s", from)
	_, tail, ok := strings.Cut(string(copied), "// --- verbatim from web/api/v1/json_codec.go below this line ---\n\n")
	require.True(t, ok)
	require.Equal(t, string(upstream[i:]), tail, "the copy differs from upstream's codec")
}

// TestRenderExemplarsAndMetadataMatchUpstreamCodec checks /query_exemplars
// and /metadata data against Prometheus' codec.
func TestRenderExemplarsAndMetadataMatchUpstreamCodec(t *testing.T) {
	a := &API{json: jsonConfig()}
	exemplars := []exemplar.QueryResult{
		{SeriesLabels: labels.FromStrings("__name__", "h_bucket", "le", "<0.5>"), Exemplars: []exemplar.Exemplar{
			{Labels: labels.FromStrings("trace_id", "abc"), Value: 0.25, Ts: -1005, HasTs: true},
			{Labels: labels.EmptyLabels(), Value: math.NaN(), Ts: 1_700_000_000_000, HasTs: true},
			{Labels: labels.FromStrings("span_id", "\"q\"", "trace_id", "ü"), Value: 1e-9, Ts: 12},
		}},
		{SeriesLabels: labels.EmptyLabels(), Exemplars: nil},
	}
	md := map[string][]metadata.Metadata{
		"http_requests": {{Type: model.MetricTypeCounter, Unit: "requests", Help: "Requests <served> & \"counted\"."}},
		"a":             {{Type: model.MetricTypeHistogram}},
		"b_info":        {{Type: model.MetricTypeInfo, Help: "x"}},
	}
	for _, c := range []struct {
		name     string
		ours, up any
	}{
		{"exemplars", exemplarList(exemplars), exemplars},
		{"no exemplars", exemplarList{}, []exemplar.QueryResult{}},
		{"metadata", metadataMap(md), md},
		{"no metadata", metadataMap{}, map[string][]metadata.Metadata{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			resp := &response{a: a, result: result{data: c.ours}}
			require.NoError(t, resp.Respond(rec, httptest.NewRequest(http.MethodGet, "/api/v1/x", nil)))
			require.Equal(t, upstreamJSON(t, upstreamResponse{Status: "success", Data: c.up}), rec.Body.String())
		})
	}
}
