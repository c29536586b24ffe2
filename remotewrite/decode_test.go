package remotewrite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// randomString returns ASCII, multi-byte UTF-8, invalid UTF-8 or empty
// strings, so the decoder is shown not to interpret label bytes.
func randomString(r *rand.Rand) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:.-/ "
	switch r.IntN(6) {
	case 0:
		return ""
	case 1:
		return "ünïcødé_" + fmt.Sprint(r.IntN(1000))
	case 2:
		return string([]byte{0xff, 0xfe, byte(r.IntN(256))})
	}
	b := make([]byte, 1+r.IntN(40))
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

func randomFloat(r *rand.Rand) float64 {
	switch r.IntN(8) {
	case 0:
		return math.NaN()
	case 1:
		return math.Inf(1 - 2*r.IntN(2))
	case 2:
		return math.Float64frombits(0x7ff0000000000001 + uint64(r.IntN(1000))) // other NaN payloads
	}
	return r.NormFloat64() * 1e6
}

func randomTimestamp(r *rand.Rand) int64 {
	switch r.IntN(4) {
	case 0:
		return -r.Int64() // negative timestamps are 10-byte varints
	case 1:
		return 0
	}
	return 1_700_000_000_000 + r.Int64N(1e9)
}

func randomRequest(r *rand.Rand) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	for range r.IntN(20) {
		var ts prompb.TimeSeries
		for range r.IntN(12) {
			ts.Labels = append(ts.Labels, prompb.Label{Name: randomString(r), Value: randomString(r)})
		}
		for range r.IntN(30) {
			ts.Samples = append(ts.Samples, prompb.Sample{Value: randomFloat(r), Timestamp: randomTimestamp(r)})
		}
		for range r.IntN(3) {
			ts.Exemplars = append(ts.Exemplars, prompb.Exemplar{
				Labels: []prompb.Label{{Name: "trace_id", Value: randomString(r)}},
				Value:  randomFloat(r), Timestamp: randomTimestamp(r),
			})
		}
		if r.IntN(5) == 0 {
			for range 1 + r.IntN(2) {
				ts.Histograms = append(ts.Histograms, randomHistogram(r))
			}
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	for range r.IntN(3) {
		req.Metadata = append(req.Metadata, prompb.MetricMetadata{
			Type: prompb.MetricMetadata_MetricType(r.IntN(9)), MetricFamilyName: randomString(r), Help: randomString(r), Unit: randomString(r),
		})
	}
	return req
}

// compareWithPrompb returns an error describing the first difference
// between what prompb decoded and what we decoded.
func compareWithPrompb(want *prompb.WriteRequest, got *WriteRequest) error {
	if len(want.Timeseries) != len(got.Timeseries) {
		return fmt.Errorf("series: want %d, got %d", len(want.Timeseries), len(got.Timeseries))
	}
	if len(want.Metadata) != len(got.Metadata) {
		return fmt.Errorf("metadata: want %d, got %d", len(want.Metadata), len(got.Metadata))
	}
	for i, w := range want.Metadata {
		g := got.Metadata[i]
		if int32(w.Type) != g.Type || w.MetricFamilyName != g.FamilyName || w.Help != g.Help || w.Unit != g.Unit {
			return fmt.Errorf("metadata %d: want %+v, got %+v", i, w, g)
		}
	}
	for i, w := range want.Timeseries {
		g := got.Timeseries[i]
		if len(w.Labels) != len(g.Labels) {
			return fmt.Errorf("series %d labels: want %d, got %d", i, len(w.Labels), len(g.Labels))
		}
		for j, l := range w.Labels {
			if l.Name != g.Labels[j].Name || l.Value != g.Labels[j].Value {
				return fmt.Errorf("series %d label %d: want %q=%q, got %q=%q", i, j, l.Name, l.Value, g.Labels[j].Name, g.Labels[j].Value)
			}
		}
		if len(w.Samples) != len(g.Samples) {
			return fmt.Errorf("series %d samples: want %d, got %d", i, len(w.Samples), len(g.Samples))
		}
		for j, s := range w.Samples {
			gs := g.Samples[j]
			if math.Float64bits(s.Value) != math.Float64bits(gs.Value) || s.Timestamp != gs.Timestamp {
				return fmt.Errorf("series %d sample %d: want %v@%d, got %v@%d", i, j, s.Value, s.Timestamp, gs.Value, gs.Timestamp)
			}
		}
		if len(w.Exemplars) != len(g.Exemplars) || len(w.Histograms) != len(g.Histograms) {
			return fmt.Errorf("series %d: want %d exemplars %d histograms, got %d and %d",
				i, len(w.Exemplars), len(w.Histograms), len(g.Exemplars), len(g.Histograms))
		}
		for j, e := range w.Exemplars {
			var ls []Label
			for _, l := range e.Labels {
				ls = append(ls, Label{l.Name, l.Value})
			}
			if err := sameExemplar(ls, e.Value, e.Timestamp, g.Exemplars[j]); err != nil {
				return fmt.Errorf("series %d exemplar %d: %w", i, j, err)
			}
		}
		for j, h := range w.Histograms {
			if err := sameHistogramV1(h, &g.Histograms[j]); err != nil {
				return fmt.Errorf("series %d histogram %d: %w", i, j, err)
			}
		}
	}
	return nil
}

func TestDecodeRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var d Decoder // one decoder for all: reuse must not leak data between requests
	for i := range 500 {
		want := randomRequest(r)
		data, err := want.Marshal()
		require.NoError(t, err)

		got, err := d.Decode(snappy.Encode(nil, data), len(data))
		require.NoError(t, err, "request %d", i)
		require.NoError(t, compareWithPrompb(want, got), "request %d", i)

		got, err = d.Unmarshal(data)
		require.NoError(t, err, "request %d", i)
		require.NoError(t, compareWithPrompb(want, got), "request %d", i)

		floats, hists := got.Samples()
		var wantFloats, wantHists int
		for _, ts := range want.Timeseries {
			wantFloats += len(ts.Samples)
			wantHists += len(ts.Histograms)
		}
		require.Equal(t, wantFloats, floats)
		require.Equal(t, wantHists, hists)
	}
}

func TestDecodeTooLarge(t *testing.T) {
	data, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "up"}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: 2}},
	}}}).Marshal()
	require.NoError(t, err)
	var d Decoder
	_, err = d.Decode(snappy.Encode(nil, data), len(data)-1)
	require.ErrorIs(t, err, ErrTooLarge)
	_, err = d.Decode(snappy.Encode(nil, data), len(data))
	require.NoError(t, err)
	_, err = d.Decode([]byte("not snappy at all, and long enough"), 1<<20)
	require.ErrorIs(t, err, ErrMalformed)
}

// pb builds protobuf bytes by hand for malformed-input tests.
type pb []byte

func (b pb) tag(field, wire int) pb { return binary.AppendUvarint(b, uint64(field<<3|wire)) }
func (b pb) varint(v uint64) pb     { return binary.AppendUvarint(b, v) }
func (b pb) bytes(field int, m []byte) pb {
	return append(b.tag(field, wireBytes).varint(uint64(len(m))), m...)
}
func (b pb) raw(x ...byte) pb { return append(b, x...) }

func TestDecodeMalformed(t *testing.T) {
	okLabel := pb{}.bytes(1, []byte("__name__")).bytes(2, []byte("up"))
	okSample := pb{}.tag(1, wireFixed64).raw(0, 0, 0, 0, 0, 0, 0xf0, 0x3f).tag(2, wireVarint).varint(1000)
	series := func(inner pb) pb { return pb{}.bytes(1, inner) }

	for _, tc := range []struct {
		name string
		data pb
	}{
		{"truncated tag varint", pb{0x8a}},
		{"truncated length varint", pb{}.tag(1, wireBytes).raw(0x80, 0x80)},
		{"varint longer than 10 bytes", pb{}.tag(1, wireBytes).raw(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01)},
		{"length past the end", pb{}.tag(1, wireBytes).varint(10).raw(1, 2, 3)},
		{"huge length", pb{}.tag(1, wireBytes).varint(math.MaxUint64 >> 1).raw(1)},
		{"length with the top bit set", pb{}.tag(1, wireBytes).varint(math.MaxUint64)},
		{"timeseries with varint wire type", pb{}.tag(1, wireVarint).varint(5)},
		{"metadata with fixed32 wire type", pb{}.tag(3, wireFixed32).raw(1, 2, 3, 4)},
		{"field number zero", pb{}.tag(0, wireVarint).varint(1)},
		{"end group at top level", pb{}.tag(7, wireEndGroup)},
		{"illegal wire type 6", pb{}.tag(9, 6).varint(1)},
		{"illegal wire type 7", pb{}.tag(9, 7).varint(1)},
		{"unterminated group", pb{}.tag(9, wireStartGroup).tag(1, wireVarint).varint(1)},
		{"unknown fixed64 past the end", pb{}.tag(9, wireFixed64).raw(1, 2, 3)},
		{"unknown fixed32 past the end", pb{}.tag(9, wireFixed32).raw(1, 2)},
		{"label name with varint wire type", series(pb{}.bytes(1, pb{}.tag(1, wireVarint).varint(3)))},
		{"label value past the end", series(pb{}.bytes(1, pb{}.tag(2, wireBytes).varint(9).raw('a')))},
		{"label past the series", pb{}.tag(1, wireBytes).varint(3).tag(1, wireBytes).varint(40).raw(okLabel...)},
		{"sample value with varint wire type", series(pb{}.bytes(2, pb{}.tag(1, wireVarint).varint(3)))},
		{"truncated sample value", series(pb{}.bytes(2, pb{}.tag(1, wireFixed64).raw(1, 2, 3, 4)))},
		{"truncated sample timestamp", series(pb{}.bytes(2, pb{}.tag(2, wireVarint).raw(0xff, 0xff)))},
		{"sample timestamp with fixed64 wire type", series(pb{}.bytes(2, pb{}.tag(2, wireFixed64).raw(0, 0, 0, 0, 0, 0, 0, 0)))},
		{"samples with fixed32 wire type", series(pb{}.bytes(1, okLabel).tag(2, wireFixed32).raw(1, 2, 3, 4))},
		{"exemplar with varint wire type", series(pb{}.bytes(2, okSample).tag(3, wireVarint).varint(1))},
		{"histogram past the end", series(pb{}.bytes(2, okSample).tag(4, wireBytes).varint(100))},
		{"garbage after a valid series", append(series(pb{}.bytes(1, okLabel).bytes(2, okSample)), 0xff)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d Decoder
			_, err := d.Unmarshal(tc.data)
			require.ErrorIs(t, err, ErrMalformed)
			// The reference decoder agrees the input is malformed.
			require.Error(t, new(prompb.WriteRequest).Unmarshal(tc.data))
		})
	}
}

// TestDecodeLikePrompb covers the leniencies of gogo/protobuf our decoder
// must share: whatever prompb accepts, we accept and read the same way.
func TestDecodeLikePrompb(t *testing.T) {
	okLabel := pb{}.bytes(1, []byte("__name__")).bytes(2, []byte("up"))
	okSample := pb{}.tag(1, wireFixed64).raw(0, 0, 0, 0, 0, 0, 0xf0, 0x3f).tag(2, wireVarint).varint(1000)
	okSeries := pb{}.bytes(1, okLabel).bytes(2, okSample)
	for _, tc := range []struct {
		name string
		data pb
	}{
		{"empty request", pb{}},
		{"empty series", pb{}.bytes(1, nil)},
		{"unknown fields everywhere", pb{}.tag(2, wireVarint).varint(7).
			bytes(1, pb{}.tag(15, wireFixed32).raw(1, 2, 3, 4).
				bytes(1, append(okLabel.tag(3, wireFixed64).raw(1, 2, 3, 4, 5, 6, 7, 8), pb{}.bytes(9, []byte("x"))...)).
				bytes(2, append(okSample, pb{}.tag(5, wireVarint).varint(3)...)).
				bytes(99, []byte("unknown"))).
			tag(1<<20, wireFixed64).raw(1, 2, 3, 4, 5, 6, 7, 8)},
		{"nested groups skipped", pb{}.tag(8, wireStartGroup).tag(9, wireStartGroup).tag(1, wireVarint).varint(1).
			tag(9, wireEndGroup).bytes(2, []byte("in group")).tag(8, wireEndGroup).bytes(1, pb{}.bytes(1, okLabel))},
		{"repeated scalar fields: last wins", pb{}.bytes(1, pb{}.
			bytes(1, okLabel.bytes(2, []byte("down")).bytes(1, []byte("job"))).
			bytes(2, okSample.tag(2, wireVarint).varint(5).tag(1, wireFixed64).raw(0, 0, 0, 0, 0, 0, 0, 0x40)))},
		{"non-minimal varints", pb{}.raw(0x8a, 0x80, 0x00).raw(byte(len(okSeries))|0x80, 0x80, 0x80, 0x00).raw(okSeries...)},
		{"length varint overflowing 64 bits", pb{}.tag(1, wireBytes).raw(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02)},
		{"field number beyond 32 bits", pb{}.varint(uint64(1)<<35 | 1<<3 | wireBytes).varint(uint64(len(okSeries))).raw(okSeries...)},
		{"metadata and histograms counted", pb{}.bytes(3, []byte{0x08, 0x01}).bytes(1, pb{}.bytes(1, okLabel).bytes(4, nil).bytes(4, nil).bytes(3, nil))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want prompb.WriteRequest
			require.NoError(t, want.Unmarshal(tc.data))
			var d Decoder
			got, err := d.Unmarshal(tc.data)
			require.NoError(t, err)
			require.NoError(t, compareWithPrompb(&want, got))
		})
	}
}

func FuzzDecode(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		data, err := randomRequest(r).Marshal()
		require.NoError(f, err)
		f.Add(data)
	}
	// Histograms of every shape, exemplars, metadata.
	for _, data := range histogramSeeds(f, r, false) {
		f.Add(data)
	}
	f.Add([]byte{})
	f.Add([]byte(pb{}.tag(8, wireStartGroup).tag(8, wireEndGroup)))
	f.Add([]byte(pb{}.tag(1, wireBytes).raw(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02)))

	var d Decoder
	strict := Decoder{Limits: fuzzLimits}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want prompb.WriteRequest
		wantErr := want.Unmarshal(data)
		got, err := d.Unmarshal(data)
		var c decoded
		if err == nil {
			c = decoded{len(got.Metadata), got.Timeseries}
		}
		// The strict, bounded decoder of the handler: what it accepts is
		// what the lenient one decodes (without the labels that have no
		// value); what it refuses beyond that, the lenient result shows.
		sgot, serr := strict.Unmarshal(data)
		switch {
		case serr == nil && err != nil:
			t.Fatalf("strict accepts what lenient rejects: %v", err)
		case serr == nil:
			if err := sameAsLenient(got.Timeseries, sgot.Timeseries, true); err != nil {
				t.Fatal(err)
			}
		case err == nil:
			var f strictFacts
			f.size, f.nothing = len(data), len(got.Timeseries) == 0 && len(got.Metadata) == 0
			for _, ts := range got.Timeseries {
				f.series++
				f.samples += len(ts.Samples)
				if len(ts.Labels) == 0 {
					f.emptySeries = true
				}
				for _, l := range ts.Labels {
					if l.Value != "" {
						f.labels++
					}
					f.emptyLabel = f.emptyLabel || l == Label{}
				}
				for _, s := range ts.Samples {
					f.zeroSample = f.zeroSample || (s == Sample{})
				}
			}
			f.bytes = f.series*seriesSize + f.labels*labelSize + f.samples*sampleSize + len(got.Metadata)*metadataSize
			f.addExtras(got.Timeseries, false)
			f.justifies(t, serr)
		}
		checkAgainst(t, "prompb", data, wantErr, err, c,
			func() error { return compareWithPrompb(&want, got) },
			func(b []byte, max int) (int, error) {
				r, err := d.Decode(b, max)
				if err != nil {
					return 0, err
				}
				return len(r.Timeseries), nil
			})
	})
}

// fuzzLimits are the bounds of the strict decoders of the fuzz targets:
// small, so that the random requests cross them.
var fuzzLimits = DecodeLimits{MaxSeries: 8, MaxLabels: 64, MaxSamples: 64, MaxBuckets: 16, MaxBytesPerByte: 8, Strict: true}

// strictFacts are what a lenient decoder's result says of a request, for
// checking why a strict decoder refused it.
type strictFacts struct {
	size                                   int // of the request
	series, labels, samples, refs, symbols int // labels: with a value (1.0), or resolved (2.0)
	bytes                                  int // decoded, as the strict decoder counts them
	buckets                                int // the most values of one repeated field of a histogram
	emptySeries, emptyLabel, zeroSample    bool
	emptySymbol, nothing, reserved         bool
	zeroHistogram, zeroExemplar            bool
}

// addExtras adds the histograms and exemplars of series to f: the
// samples they count as, the bytes they take.
func (f *strictFacts) addExtras(series []TimeSeries, v2 bool) {
	for _, ts := range series {
		f.samples += len(ts.Histograms)
		for _, h := range ts.Histograms {
			f.bytes += histogramSize + (len(h.NegativeSpans)+len(h.PositiveSpans))*spanSize +
				(len(h.NegativeDeltas)+len(h.PositiveDeltas)+len(h.NegativeCounts)+len(h.PositiveCounts)+len(h.CustomValues))*bucketSize
			for _, n := range []int{len(h.NegativeSpans), len(h.PositiveSpans), len(h.NegativeDeltas), len(h.PositiveDeltas),
				len(h.NegativeCounts), len(h.PositiveCounts), len(h.CustomValues)} {
				f.buckets = max(f.buckets, n)
			}
			scalars := [...]uint64{h.CountInt, math.Float64bits(h.CountFloat), h.ZeroCountInt, math.Float64bits(h.ZeroCountFloat),
				math.Float64bits(h.Sum), uint64(h.Schema), math.Float64bits(h.ZeroThreshold), uint64(h.ResetHint), uint64(h.Timestamp), uint64(h.StartTimestamp)}
			f.zeroHistogram = f.zeroHistogram || (scalars == [10]uint64{} && !h.IsFloat && len(h.NegativeSpans)+len(h.PositiveSpans)+
				len(h.NegativeDeltas)+len(h.PositiveDeltas)+len(h.NegativeCounts)+len(h.PositiveCounts)+len(h.CustomValues) == 0)
		}
		for _, e := range ts.Exemplars {
			f.bytes += exemplarSize
			if v2 {
				f.bytes += 2 * len(e.Labels) * refSize
			} else {
				f.bytes += len(e.Labels) * labelSize
			}
			f.zeroExemplar = f.zeroExemplar || (len(e.Labels) == 0 && math.Float64bits(e.Value) == 0 && e.Timestamp == 0)
		}
		if v2 {
			f.bytes += metaRefsSize
		}
	}
}

// justifies fails t unless f explains err, a strict decoder's refusal.
func (f strictFacts) justifies(t *testing.T, err error) {
	t.Helper()
	var tm *TooManyError
	ok := false
	switch {
	case errors.As(err, &tm):
		n := map[string]int{"series": f.series, "labels": f.labels, "samples": f.samples, "symbols": f.symbols, "bytes": f.bytes, "buckets": f.buckets}[tm.What]
		if tm.What == "labels" && f.refs > 0 {
			n = max(n, (f.refs+1)/2)
		}
		ok = n > tm.Limit || (tm.What == "labels" && f.refs > 2*tm.Limit)
	case errors.Is(err, ErrEmpty):
		ok = f.emptySeries || f.emptyLabel || f.zeroSample || f.emptySymbol || f.zeroHistogram || f.zeroExemplar
	case errors.Is(err, ErrWrongMessage):
		ok = f.nothing || f.reserved
	}
	if !ok {
		t.Fatalf("strict decoder refuses (%v) what the lenient result does not explain: %+v", err, f)
	}
}

// sameAsLenient reports how strict, decoded by a strict decoder, differs
// from lenient, the same request decoded by a lenient one, once the labels
// without value are left out of lenient when dropEmpty (1.0).
func sameAsLenient(lenient, strict []TimeSeries, dropEmpty bool) error {
	if len(lenient) != len(strict) {
		return fmt.Errorf("series: lenient %d, strict %d", len(lenient), len(strict))
	}
	for i := range lenient {
		var want []Label
		for _, l := range lenient[i].Labels {
			if l.Value != "" || !dropEmpty {
				want = append(want, l)
			}
		}
		if fmt.Sprint(want) != fmt.Sprint(strict[i].Labels) || fmt.Sprint(lenient[i].Samples) != fmt.Sprint(strict[i].Samples) ||
			fmt.Sprint(lenient[i].Exemplars) != fmt.Sprint(strict[i].Exemplars) || fmt.Sprint(lenient[i].Histograms) != fmt.Sprint(strict[i].Histograms) ||
			metaOf(&lenient[i]) != metaOf(&strict[i]) {
			return fmt.Errorf("series %d: lenient %v %v, strict %v %v", i, want, lenient[i].Samples, strict[i].Labels, strict[i].Samples)
		}
	}
	return nil
}

func metaOf(ts *TimeSeries) Metadata {
	if ts.Metadata == nil {
		return Metadata{}
	}
	return *ts.Metadata
}

// decoded is what checkAgainst needs of a decoded request.
type decoded struct {
	metadata int
	series   []TimeSeries
}

// checkAgainst checks one fuzz input of a decoder against its reference
// (prompb for 1.0, writev2 for 2.0), refErr and err being the two
// decoders' errors on data. What the reference accepts we accept, with the
// same result (same), and nothing more. What we accept, decode (the
// snappy path; it returns the series count) decodes alike, and garbage
// given to it as a snappy block is an error, not a panic.
func checkAgainst(t *testing.T, ref string, data []byte, refErr, err error, got decoded, same func() error, decode func([]byte, int) (int, error)) {
	t.Helper()
	switch {
	case refErr == nil && err != nil:
		t.Fatalf("%s accepts, we reject: %v", ref, err)
	case refErr == nil:
		if err := same(); err != nil {
			t.Fatal(err)
		}
	case err == nil:
		t.Fatalf("%s rejects (%v), we accept", ref, refErr)
	}
	if err == nil {
		n := len(got.series)
		if m, err := decode(snappy.Encode(nil, data), len(data)); err != nil || m != n {
			t.Fatalf("snappy path: %v, %d series, want %d", err, m, n)
		}
	}
	_, _ = decode(data, 1<<20)
}

// BenchmarkDecode decodes a 2,000-sample request (200 series x 10 samples,
// 8 labels each, as Prometheus sends them) with one reused Decoder.
func BenchmarkDecode(b *testing.B) {
	for _, shape := range []struct{ series, samples int }{{200, 10}, {2000, 1}, {20, 100}} {
		b.Run(fmt.Sprintf("series=%d/samples=%d", shape.series, shape.samples), func(b *testing.B) {
			req := &prompb.WriteRequest{}
			for i := range shape.series {
				ts := prompb.TimeSeries{Labels: []prompb.Label{
					{Name: "__name__", Value: "http_requests_total"},
					{Name: "code", Value: "200"},
					{Name: "handler", Value: fmt.Sprintf("/api/v1/handler/%d", i%50)},
					{Name: "instance", Value: fmt.Sprintf("10.0.%d.%d:9090", i/250, i%250)},
					{Name: "job", Value: "prometheus"},
					{Name: "method", Value: "GET"},
					{Name: "pod", Value: fmt.Sprintf("prometheus-%d", i)},
					{Name: "region", Value: "eu-west-1"},
				}}
				for j := range shape.samples {
					ts.Samples = append(ts.Samples, prompb.Sample{Value: float64(i * j), Timestamp: 1_700_000_000_000 + int64(j)*15_000})
				}
				req.Timeseries = append(req.Timeseries, ts)
			}
			data, err := req.Marshal()
			require.NoError(b, err)
			compressed := snappy.Encode(nil, data)
			// Lenient, as the reference decoders; and strict and bounded,
			// as the handler decodes.
			for _, limits := range []DecodeLimits{{}, decodeLimits(DefaultConfig(), rw1BytesPerByte)} {
				name := "lenient"
				if limits.Strict {
					name = "strict"
				}
				b.Run(name, func(b *testing.B) {
					d := Decoder{Limits: limits}
					b.SetBytes(int64(len(compressed)))
					b.ReportAllocs()
					n := 0
					for b.Loop() {
						got, err := d.Decode(compressed, len(data))
						if err != nil || len(got.Timeseries) != shape.series {
							b.Fatal(err)
						}
						n++
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*shape.series*shape.samples), "ns/sample")
				})
			}
		})
	}
}
