package remotewrite

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
)

// randomHistogram returns a prompb histogram of any shape the protocol
// carries, valid or not: integer or float, exponential or custom buckets,
// negative spans and buckets, each reset hint.
func randomHistogram(r *rand.Rand) prompb.Histogram {
	h := prompb.Histogram{
		Sum:           randomFloat(r),
		Schema:        int32(r.IntN(13)) - 4,
		ZeroThreshold: r.Float64() / 1000,
		ResetHint:     prompb.Histogram_ResetHint(r.IntN(4)),
		Timestamp:     randomTimestamp(r),
	}
	if r.IntN(4) == 0 {
		h.Schema = histogram.CustomBucketsSchema
		h.ZeroThreshold = 0
		for i := range 1 + r.IntN(5) {
			h.CustomValues = append(h.CustomValues, float64(i)+r.Float64())
		}
	}
	spans := func() []prompb.BucketSpan {
		var s []prompb.BucketSpan
		for range r.IntN(4) {
			s = append(s, prompb.BucketSpan{Offset: int32(r.IntN(7)) - 3, Length: uint32(r.IntN(4))})
		}
		return s
	}
	n := func(s []prompb.BucketSpan) int {
		t := 0
		for _, x := range s {
			t += int(x.Length)
		}
		return t
	}
	h.PositiveSpans, h.NegativeSpans = spans(), spans()
	if r.IntN(2) == 0 {
		h.Count = &prompb.Histogram_CountFloat{CountFloat: r.Float64() * 100}
		h.ZeroCount = &prompb.Histogram_ZeroCountFloat{ZeroCountFloat: r.Float64()}
		for range n(h.PositiveSpans) {
			h.PositiveCounts = append(h.PositiveCounts, r.Float64()*10)
		}
		for range n(h.NegativeSpans) {
			h.NegativeCounts = append(h.NegativeCounts, randomFloat(r))
		}
	} else {
		h.Count = &prompb.Histogram_CountInt{CountInt: r.Uint64N(1000)}
		h.ZeroCount = &prompb.Histogram_ZeroCountInt{ZeroCountInt: r.Uint64N(10)}
		for range n(h.PositiveSpans) {
			h.PositiveDeltas = append(h.PositiveDeltas, r.Int64N(9)-4)
		}
		for range n(h.NegativeSpans) {
			h.NegativeDeltas = append(h.NegativeDeltas, r.Int64N(1<<40)-1<<39)
		}
	}
	if r.IntN(8) == 0 { // the other oneof too: the last one set wins
		h.ZeroCount = nil
	}
	return h
}

// toV2Histogram is h as writev2 carries it.
func toV2Histogram(h prompb.Histogram) writev2.Histogram {
	out := writev2.Histogram{
		Sum: h.Sum, Schema: h.Schema, ZeroThreshold: h.ZeroThreshold,
		NegativeDeltas: h.NegativeDeltas, NegativeCounts: h.NegativeCounts,
		PositiveDeltas: h.PositiveDeltas, PositiveCounts: h.PositiveCounts,
		ResetHint: writev2.Histogram_ResetHint(h.ResetHint), Timestamp: h.Timestamp, CustomValues: h.CustomValues,
	}
	switch c := h.Count.(type) {
	case *prompb.Histogram_CountInt:
		out.Count = &writev2.Histogram_CountInt{CountInt: c.CountInt}
	case *prompb.Histogram_CountFloat:
		out.Count = &writev2.Histogram_CountFloat{CountFloat: c.CountFloat}
	}
	switch c := h.ZeroCount.(type) {
	case *prompb.Histogram_ZeroCountInt:
		out.ZeroCount = &writev2.Histogram_ZeroCountInt{ZeroCountInt: c.ZeroCountInt}
	case *prompb.Histogram_ZeroCountFloat:
		out.ZeroCount = &writev2.Histogram_ZeroCountFloat{ZeroCountFloat: c.ZeroCountFloat}
	}
	for _, s := range h.PositiveSpans {
		out.PositiveSpans = append(out.PositiveSpans, writev2.BucketSpan{Offset: s.Offset, Length: s.Length})
	}
	for _, s := range h.NegativeSpans {
		out.NegativeSpans = append(out.NegativeSpans, writev2.BucketSpan{Offset: s.Offset, Length: s.Length})
	}
	return out
}

func sameExemplar(ls []Label, v float64, ts int64, got Exemplar) error {
	if len(ls) != len(got.Labels) {
		return fmt.Errorf("want %d labels, got %d", len(ls), len(got.Labels))
	}
	for i, l := range ls {
		if l != got.Labels[i] {
			return fmt.Errorf("label %d: want %q, got %q", i, l, got.Labels[i])
		}
	}
	if math.Float64bits(v) != math.Float64bits(got.Value) || ts != got.Timestamp {
		return fmt.Errorf("want %v@%d, got %v@%d", v, ts, got.Value, got.Timestamp)
	}
	return nil
}

// sameHistogramV1 compares what prompb decoded, converted by prompb's
// ToIntHistogram or ToFloatHistogram, with what we decoded, converted by
// ours; and the fields the conversions leave out.
func sameHistogramV1(w prompb.Histogram, g *Histogram) error {
	if w.IsFloatHistogram() != g.IsFloat || w.Timestamp != g.Timestamp {
		return fmt.Errorf("float %v@%d, got %v@%d", w.IsFloatHistogram(), w.Timestamp, g.IsFloat, g.Timestamp)
	}
	if w.GetZeroCountInt() != g.ZeroCountInt || math.Float64bits(w.GetZeroCountFloat()) != math.Float64bits(g.ZeroCountFloat) {
		return fmt.Errorf("zero count: want %v/%v, got %v/%v", w.GetZeroCountInt(), w.GetZeroCountFloat(), g.ZeroCountInt, g.ZeroCountFloat)
	}
	if !equalInts(w.PositiveDeltas, g.PositiveDeltas) || !equalInts(w.NegativeDeltas, g.NegativeDeltas) ||
		!equalFloats(w.PositiveCounts, g.PositiveCounts) || !equalFloats(w.NegativeCounts, g.NegativeCounts) {
		return fmt.Errorf("buckets differ: want %+v, got %+v", w, *g)
	}
	if g.IsFloat {
		var fh histogram.FloatHistogram
		g.FloatHistogram(&fh)
		return sameFloatHistogram(w.ToFloatHistogram(), &fh)
	}
	var h histogram.Histogram
	g.IntHistogram(&h)
	return sameIntHistogram(w.ToIntHistogram(), &h)
}

func sameHistogramV2(w writev2.Histogram, g *Histogram) error {
	if w.IsFloatHistogram() != g.IsFloat || w.Timestamp != g.Timestamp || w.StartTimestamp != g.StartTimestamp {
		return fmt.Errorf("float %v@%d (start %d), got %v@%d (start %d)", w.IsFloatHistogram(), w.Timestamp, w.StartTimestamp, g.IsFloat, g.Timestamp, g.StartTimestamp)
	}
	if w.GetZeroCountInt() != g.ZeroCountInt || math.Float64bits(w.GetZeroCountFloat()) != math.Float64bits(g.ZeroCountFloat) {
		return fmt.Errorf("zero count: want %v/%v, got %v/%v", w.GetZeroCountInt(), w.GetZeroCountFloat(), g.ZeroCountInt, g.ZeroCountFloat)
	}
	if !equalInts(w.PositiveDeltas, g.PositiveDeltas) || !equalInts(w.NegativeDeltas, g.NegativeDeltas) ||
		!equalFloats(w.PositiveCounts, g.PositiveCounts) || !equalFloats(w.NegativeCounts, g.NegativeCounts) {
		return fmt.Errorf("buckets differ: want %+v, got %+v", w, *g)
	}
	if g.IsFloat {
		var fh histogram.FloatHistogram
		g.FloatHistogram(&fh)
		return sameFloatHistogram(w.ToFloatHistogram(), &fh)
	}
	var h histogram.Histogram
	g.IntHistogram(&h)
	return sameIntHistogram(w.ToIntHistogram(), &h)
}

func equalInts(a, b []int64) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return false
		}
	}
	return true
}

func equalSpans(a, b []histogram.Span) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}

func sameIntHistogram(w, g *histogram.Histogram) error {
	if w.CounterResetHint != g.CounterResetHint || w.Schema != g.Schema || w.ZeroCount != g.ZeroCount || w.Count != g.Count ||
		math.Float64bits(w.ZeroThreshold) != math.Float64bits(g.ZeroThreshold) || math.Float64bits(w.Sum) != math.Float64bits(g.Sum) ||
		!equalSpans(w.PositiveSpans, g.PositiveSpans) || !equalSpans(w.NegativeSpans, g.NegativeSpans) ||
		!equalInts(w.PositiveBuckets, g.PositiveBuckets) || !equalInts(w.NegativeBuckets, g.NegativeBuckets) ||
		!equalFloats(w.CustomValues, g.CustomValues) {
		return fmt.Errorf("want %v, got %v", w, g)
	}
	return nil
}

func sameFloatHistogram(w, g *histogram.FloatHistogram) error {
	if w.CounterResetHint != g.CounterResetHint || w.Schema != g.Schema ||
		math.Float64bits(w.ZeroCount) != math.Float64bits(g.ZeroCount) || math.Float64bits(w.Count) != math.Float64bits(g.Count) ||
		math.Float64bits(w.ZeroThreshold) != math.Float64bits(g.ZeroThreshold) || math.Float64bits(w.Sum) != math.Float64bits(g.Sum) ||
		!equalSpans(w.PositiveSpans, g.PositiveSpans) || !equalSpans(w.NegativeSpans, g.NegativeSpans) ||
		!equalFloats(w.PositiveBuckets, g.PositiveBuckets) || !equalFloats(w.NegativeBuckets, g.NegativeBuckets) ||
		!equalFloats(w.CustomValues, g.CustomValues) {
		return fmt.Errorf("want %v, got %v", w, g)
	}
	return nil
}

// TestDecodeHistogramsLikeOfficial decodes histograms, exemplars and
// metadata of every shape with the official prompb and writev2 types and
// with ours, and compares the results field by field, through the
// official conversions to model/histogram.
func TestDecodeHistogramsLikeOfficial(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var d Decoder
	var d2 DecoderV2
	for i := range 300 {
		req := &prompb.WriteRequest{}
		req2 := newV2Request()
		for j := range 1 + r.IntN(5) {
			ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: fmt.Sprintf("h%d", j)}}}
			s2 := req2.add("__name__", fmt.Sprintf("h%d", j))
			for range 1 + r.IntN(3) {
				h := randomHistogram(r)
				ts.Histograms = append(ts.Histograms, h)
				h2 := toV2Histogram(h)
				h2.StartTimestamp = r.Int64N(1e12)
				s2.Histograms = append(s2.Histograms, h2)
			}
			for range r.IntN(3) {
				e := prompb.Exemplar{Labels: []prompb.Label{{Name: "trace_id", Value: randomString(r)}, {Name: "span", Value: "x"}}, Value: randomFloat(r), Timestamp: randomTimestamp(r)}
				ts.Exemplars = append(ts.Exemplars, e)
				s2.Exemplars = append(s2.Exemplars, writev2.Exemplar{LabelsRefs: req2.refs("trace_id", e.Labels[0].Value, "span", "x"), Value: e.Value, Timestamp: e.Timestamp})
			}
			s2.Metadata = writev2.Metadata{Type: writev2.Metadata_MetricType(r.IntN(8)), HelpRef: req2.syms.Symbolize(randomString(r)), UnitRef: req2.syms.Symbolize("seconds")}
			req.Timeseries = append(req.Timeseries, ts)
			req.Metadata = append(req.Metadata, prompb.MetricMetadata{Type: prompb.MetricMetadata_HISTOGRAM, MetricFamilyName: fmt.Sprintf("h%d", j), Help: "help", Unit: "seconds"})
		}
		data, err := req.Marshal()
		require.NoError(t, err)
		var want prompb.WriteRequest
		require.NoError(t, want.Unmarshal(data))
		got, err := d.Decode(snappy.Encode(nil, data), len(data))
		require.NoError(t, err, "request %d", i)
		require.NoError(t, compareWithPrompb(&want, got), "request %d", i)

		req2.req.Symbols = req2.syms.Symbols()
		data, err = req2.req.Marshal()
		require.NoError(t, err)
		var want2 writev2.Request
		require.NoError(t, want2.Unmarshal(data))
		got2, err := d2.Decode(snappy.Encode(nil, data), len(data))
		require.NoError(t, err, "request %d", i)
		require.NoError(t, compareWithWritev2(&want2, got2), "request %d", i)
	}
}

// TestDecodeHistogramLeniencies: the oneofs keep the last field sent,
// repeated fields may be sent unpacked or in several packed runs, and
// interleaved, as gogo/protobuf takes them.
func TestDecodeHistogramLeniencies(t *testing.T) {
	double := func(f float64) []byte { return pb{}.raw(binaryDouble(f)...) }
	hist := pb{}.
		tag(fieldHistCountFloat, wireFixed64).raw(double(3)...).
		tag(fieldHistCountInt, wireVarint).varint(7). // count_int wins
		tag(fieldHistZeroCountInt, wireVarint).varint(1).
		tag(fieldHistZeroCountFloat, wireFixed64).raw(double(0.5)...). // zero_count_float wins
		tag(fieldHistPosDeltas, wireVarint).varint(4).                 // 2, unpacked
		bytes(fieldHistPosSpans, pb{}.tag(fieldSpanOffset, wireVarint).varint(1).tag(fieldSpanLength, wireVarint).varint(3)).
		bytes(fieldHistPosDeltas, pb{}.varint(1).varint(2)). // -1, 1, packed
		bytes(fieldHistNegDeltas, pb{}.varint(6)).
		tag(fieldHistCustomValues, wireFixed64).raw(double(1)...).
		bytes(fieldHistCustomValues, pb{}.raw(double(2)...).raw(double(3)...)).
		tag(fieldHistSchema, wireVarint).varint(5).   // -3
		tag(fieldHistTimestamp, wireVarint).varint(9) // tag 15
	ts := pb{}.bytes(1, pb{}.bytes(1, []byte("__name__")).bytes(2, []byte("h"))).bytes(4, hist)
	data := pb{}.bytes(1, ts)
	var want prompb.WriteRequest
	require.NoError(t, want.Unmarshal(data))
	require.Equal(t, []int64{2, -1, 1}, want.Timeseries[0].Histograms[0].PositiveDeltas)
	for _, limits := range []DecodeLimits{{}, decodeLimits(DefaultConfig(), rw1BytesPerByte)} {
		var d Decoder
		d.Limits = limits
		got, err := d.Unmarshal(data)
		require.NoError(t, err)
		require.NoError(t, compareWithPrompb(&want, got))
		h := got.Timeseries[0].Histograms[0]
		require.Equal(t, uint64(7), h.CountInt)
		require.False(t, h.IsFloat)
		require.Equal(t, 0.5, h.ZeroCountFloat)
		require.Equal(t, uint64(0), h.ZeroCountInt)
		require.Equal(t, int32(-3), h.Schema)
		require.Equal(t, []float64{1, 2, 3}, h.CustomValues)
	}
}

func binaryDouble(f float64) []byte {
	b := make([]byte, 8)
	u := math.Float64bits(f)
	for i := range b {
		b[i] = byte(u >> (8 * i))
	}
	return b
}

// TestDecodeHistogramMalformed: what prompb refuses in histograms,
// exemplars and metadata, we refuse; and strict refuses empty histograms
// and exemplars, unresolvable 2.0 references, and histograms beyond
// MaxBuckets.
func TestDecodeHistogramMalformed(t *testing.T) {
	name := pb{}.bytes(1, pb{}.bytes(1, []byte("__name__")).bytes(2, []byte("h")))
	series := func(inner pb) []byte { return pb{}.bytes(1, append(append(pb{}, name...), inner...)) }
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"count_int as double", series(pb{}.bytes(4, pb{}.tag(fieldHistCountInt, wireFixed64).raw(make([]byte, 8)...)))},
		{"sum as varint", series(pb{}.bytes(4, pb{}.tag(fieldHistSum, wireVarint).varint(1)))},
		{"truncated packed doubles", series(pb{}.bytes(4, pb{}.bytes(fieldHistPosCounts, make([]byte, 5))))},
		{"span as varint", series(pb{}.bytes(4, pb{}.tag(fieldHistPosSpans, wireVarint).varint(1)))},
		{"deltas as fixed32", series(pb{}.bytes(4, pb{}.tag(fieldHistPosDeltas, wireFixed32).raw(0, 0, 0, 0)))},
		{"truncated span", series(pb{}.bytes(4, pb{}.bytes(fieldHistPosSpans, pb{}.tag(fieldSpanOffset, wireVarint).raw(0x80))))},
		{"exemplar value as varint", series(pb{}.bytes(3, pb{}.tag(fieldExemplarValue, wireVarint).varint(1)))},
		{"exemplar label as varint", series(pb{}.bytes(3, pb{}.tag(fieldExemplarLabels, wireVarint).varint(1)))},
		{"metadata type as bytes", pb{}.bytes(3, pb{}.bytes(fieldMetadataType, nil))},
		{"metadata help as varint", pb{}.bytes(3, pb{}.tag(fieldMetadataHelp, wireVarint).varint(1))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want prompb.WriteRequest
			require.Error(t, want.Unmarshal(tc.data), "prompb refuses it")
			var d Decoder
			_, err := d.Unmarshal(tc.data)
			require.ErrorIs(t, err, ErrMalformed)
		})
	}

	strict := decodeLimits(DefaultConfig(), rw1BytesPerByte)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty histogram", series(pb{}.bytes(4, nil))},
		{"empty exemplar", series(pb{}.bytes(3, nil))},
	} {
		t.Run("strict "+tc.name, func(t *testing.T) {
			var want prompb.WriteRequest
			require.NoError(t, want.Unmarshal(tc.data), "prompb takes it")
			d := Decoder{Limits: strict}
			_, err := d.Unmarshal(tc.data)
			require.ErrorIs(t, err, ErrEmpty)
		})
	}

	t.Run("buckets", func(t *testing.T) {
		limits := strict
		limits.MaxBuckets = 4
		d := Decoder{Limits: limits}
		four := series(pb{}.bytes(4, pb{}.tag(fieldHistCountInt, wireVarint).varint(1).bytes(fieldHistPosDeltas, pb{}.varint(1).varint(1).varint(1).varint(1))))
		_, err := d.Unmarshal(four)
		require.NoError(t, err)
		for _, field := range []int{fieldHistPosDeltas, fieldHistNegDeltas} {
			five := series(pb{}.bytes(4, pb{}.tag(fieldHistCountInt, wireVarint).varint(1).bytes(field, pb{}.varint(1).varint(1).varint(1).varint(1).varint(1))))
			_, err = d.Unmarshal(five)
			var tm *TooManyError
			require.True(t, errors.As(err, &tm), "%v", err)
			require.Equal(t, "buckets", tm.What)
		}
		spans := pb{}
		for range 5 {
			spans = spans.bytes(fieldHistNegSpans, nil)
		}
		_, err = d.Unmarshal(series(pb{}.bytes(4, spans)))
		var tm *TooManyError
		require.True(t, errors.As(err, &tm), "%v", err)
	})

	t.Run("histograms count as samples", func(t *testing.T) {
		limits := strict
		limits.MaxSamples = 2
		d := Decoder{Limits: limits}
		h := pb{}.bytes(4, pb{}.tag(fieldHistCountInt, wireVarint).varint(1))
		s := pb{}.bytes(2, pb{}.tag(2, wireVarint).varint(1))
		_, err := d.Unmarshal(series(append(append(pb{}, h...), s...)))
		require.NoError(t, err)
		_, err = d.Unmarshal(series(append(append(append(pb{}, h...), s...), h...)))
		var tm *TooManyError
		require.True(t, errors.As(err, &tm), "%v", err)
		require.Equal(t, "samples", tm.What)
	})

	t.Run("2.0 references", func(t *testing.T) {
		syms := pb{}.bytes(4, nil).bytes(4, []byte("__name__")).bytes(4, []byte("h"))
		labels := pb{}.bytes(1, pb{}.varint(1).varint(2))
		for _, tc := range []struct {
			name  string
			inner pb
		}{
			{"exemplar label past the symbols", pb{}.bytes(4, pb{}.bytes(1, pb{}.varint(1).varint(9)))},
			{"exemplar odd references", pb{}.bytes(4, pb{}.bytes(1, pb{}.varint(1)))},
			{"help past the symbols", pb{}.bytes(5, pb{}.tag(fieldMetadataV2HelpRef, wireVarint).varint(3))},
			{"unit past the symbols", pb{}.bytes(5, pb{}.tag(fieldMetadataV2UnitRef, wireVarint).varint(30))},
		} {
			data := append(append(pb{}, syms...), pb{}.bytes(5, append(append(pb{}, labels...), tc.inner...))...)
			var d DecoderV2
			_, err := d.Unmarshal(data)
			require.ErrorIs(t, err, ErrMalformed, tc.name)
		}
	})
}

// refs symbolizes s.
func (b *v2Request) refs(s ...string) []uint32 {
	var out []uint32
	for _, x := range s {
		out = append(out, b.syms.Symbolize(x))
	}
	return out
}

// histogramSeeds are fuzz seeds: requests of one or two series of
// histograms of random shapes, with exemplars and metadata, as 1.0 or
// (v2) 2.0 bodies.
func histogramSeeds(f *testing.F, r *rand.Rand, v2 bool) [][]byte {
	var out [][]byte
	for range 10 {
		req := &prompb.WriteRequest{}
		req2 := newV2Request()
		for j := range 1 + r.IntN(2) {
			name := fmt.Sprintf("h%d", j)
			ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: name}}}
			s2 := req2.add("__name__", name)
			for range 1 + r.IntN(2) {
				h := randomHistogram(r)
				ts.Histograms = append(ts.Histograms, h)
				h2 := toV2Histogram(h)
				h2.StartTimestamp = r.Int64N(1e12)
				s2.Histograms = append(s2.Histograms, h2)
			}
			ts.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "t"}}, Value: 1, Timestamp: 5}}
			s2.Exemplars = []writev2.Exemplar{{LabelsRefs: req2.refs("trace_id", "t"), Value: 1, Timestamp: 5}}
			s2.Metadata = writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_HISTOGRAM, HelpRef: req2.syms.Symbolize("help"), UnitRef: req2.syms.Symbolize("s")}
			req.Timeseries = append(req.Timeseries, ts)
			req.Metadata = append(req.Metadata, prompb.MetricMetadata{Type: prompb.MetricMetadata_HISTOGRAM, MetricFamilyName: name, Help: "help", Unit: "s"})
		}
		var data []byte
		var err error
		if v2 {
			req2.req.Symbols = req2.syms.Symbols()
			data, err = req2.req.Marshal()
		} else {
			data, err = req.Marshal()
		}
		require.NoError(f, err)
		out = append(out, data)
	}
	return out
}
