package remotewrite

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
)

func randomRequestV2(r *rand.Rand) *writev2.Request {
	syms := writev2.NewSymbolTable()
	req := &writev2.Request{}
	for range r.IntN(20) {
		var ts writev2.TimeSeries
		for range r.IntN(12) {
			ts.LabelsRefs = append(ts.LabelsRefs, syms.Symbolize(randomString(r)), syms.Symbolize(randomString(r)))
		}
		for range r.IntN(30) {
			s := writev2.Sample{Value: randomFloat(r), Timestamp: randomTimestamp(r)}
			if r.IntN(3) == 0 {
				s.StartTimestamp = randomTimestamp(r)
			}
			ts.Samples = append(ts.Samples, s)
		}
		for range r.IntN(3) {
			ts.Exemplars = append(ts.Exemplars, writev2.Exemplar{
				LabelsRefs: []uint32{syms.Symbolize("trace_id"), syms.Symbolize(randomString(r))},
				Value:      randomFloat(r), Timestamp: randomTimestamp(r),
			})
		}
		if r.IntN(5) == 0 {
			for range 1 + r.IntN(2) {
				h := toV2Histogram(randomHistogram(r))
				if r.IntN(2) == 0 {
					h.StartTimestamp = randomTimestamp(r)
				}
				ts.Histograms = append(ts.Histograms, h)
			}
		}
		if r.IntN(2) == 0 {
			ts.Metadata = writev2.Metadata{
				Type:    writev2.Metadata_MetricType(r.IntN(9)),
				HelpRef: syms.Symbolize(randomString(r)),
				UnitRef: syms.Symbolize(randomString(r)),
			}
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Symbols = syms.Symbols()
	return req
}

// compareWithWritev2 returns an error describing the first difference
// between what writev2 decoded, its labels resolved through its symbols,
// and what we decoded.
func compareWithWritev2(want *writev2.Request, got *RequestV2) error {
	if len(want.Symbols) != len(got.Symbols) {
		return fmt.Errorf("symbols: want %d, got %d", len(want.Symbols), len(got.Symbols))
	}
	for i, s := range want.Symbols {
		if got.Symbols[i] != s {
			return fmt.Errorf("symbol %d: want %q, got %q", i, s, got.Symbols[i])
		}
	}
	if len(want.Timeseries) != len(got.Timeseries) {
		return fmt.Errorf("series: want %d, got %d", len(want.Timeseries), len(got.Timeseries))
	}
	for i, w := range want.Timeseries {
		g := got.Timeseries[i]
		if len(w.LabelsRefs) != 2*len(g.Labels) {
			return fmt.Errorf("series %d: want %d label references, got %d labels", i, len(w.LabelsRefs), len(g.Labels))
		}
		for j := range g.Labels {
			name, value := want.Symbols[w.LabelsRefs[2*j]], want.Symbols[w.LabelsRefs[2*j+1]]
			if name != g.Labels[j].Name || value != g.Labels[j].Value {
				return fmt.Errorf("series %d label %d: want %q=%q, got %q=%q", i, j, name, value, g.Labels[j].Name, g.Labels[j].Value)
			}
		}
		if len(w.Samples) != len(g.Samples) {
			return fmt.Errorf("series %d samples: want %d, got %d", i, len(w.Samples), len(g.Samples))
		}
		for j, s := range w.Samples {
			gs := g.Samples[j]
			if math.Float64bits(s.Value) != math.Float64bits(gs.Value) || s.Timestamp != gs.Timestamp || s.StartTimestamp != gs.StartTimestamp {
				return fmt.Errorf("series %d sample %d: want %v@%d (start %d), got %v@%d (start %d)",
					i, j, s.Value, s.Timestamp, s.StartTimestamp, gs.Value, gs.Timestamp, gs.StartTimestamp)
			}
		}
		if len(w.Exemplars) != len(g.Exemplars) || len(w.Histograms) != len(g.Histograms) {
			return fmt.Errorf("series %d: want %d exemplars %d histograms, got %d and %d",
				i, len(w.Exemplars), len(w.Histograms), len(g.Exemplars), len(g.Histograms))
		}
		for j, e := range w.Exemplars {
			var ls []Label
			for k := 0; k+1 < len(e.LabelsRefs); k += 2 {
				ls = append(ls, Label{want.Symbols[e.LabelsRefs[k]], want.Symbols[e.LabelsRefs[k+1]]})
			}
			if err := sameExemplar(ls, e.Value, e.Timestamp, g.Exemplars[j]); err != nil {
				return fmt.Errorf("series %d exemplar %d: %w", i, j, err)
			}
		}
		for j, h := range w.Histograms {
			if err := sameHistogramV2(h, &g.Histograms[j]); err != nil {
				return fmt.Errorf("series %d histogram %d: %w", i, j, err)
			}
		}
		var wm metadata.Metadata
		if len(want.Symbols) > 0 {
			var err error
			if wm, err = w.ToMetadata(want.Symbols); err != nil {
				return fmt.Errorf("series %d: writev2 metadata: %w", i, err)
			}
		} else {
			wm.Type = model.MetricTypeUnknown
			if t := w.Metadata.Type; t > 0 && t < 8 {
				wm.Type = Metadata{Type: int32(t)}.MetricType()
			}
		}
		var gm Metadata
		if g.Metadata != nil {
			gm = *g.Metadata
			if gm.IsEmpty() {
				return fmt.Errorf("series %d: empty metadata not nil", i)
			}
		}
		if int32(w.Metadata.Type) != gm.Type || wm != gm.ToMetadata() {
			return fmt.Errorf("series %d metadata: want %+v (%v), got %+v", i, wm, w.Metadata.Type, gm)
		}
	}
	return nil
}

// resolvable reports whether every label reference of req resolves, and
// the symbols table starts with the empty string, as the spec requires.
func resolvable(req *writev2.Request) error {
	if len(req.Symbols) > 0 && req.Symbols[0] != "" {
		return fmt.Errorf("first symbol %q", req.Symbols[0])
	}
	for i, ts := range req.Timeseries {
		if len(ts.LabelsRefs)%2 != 0 {
			return fmt.Errorf("series %d: odd label references", i)
		}
		for _, ref := range ts.LabelsRefs {
			if int(ref) >= len(req.Symbols) {
				return fmt.Errorf("series %d: reference %d out of range", i, ref)
			}
		}
		for j, e := range ts.Exemplars {
			if len(e.LabelsRefs)%2 != 0 {
				return fmt.Errorf("series %d exemplar %d: odd label references", i, j)
			}
			for _, ref := range e.LabelsRefs {
				if int(ref) >= len(req.Symbols) {
					return fmt.Errorf("series %d exemplar %d: reference %d out of range", i, j, ref)
				}
			}
		}
		if m := ts.Metadata; (m.HelpRef != 0 || m.UnitRef != 0 || len(req.Symbols) > 0) && (int(m.HelpRef) >= len(req.Symbols) || int(m.UnitRef) >= len(req.Symbols)) {
			return fmt.Errorf("series %d: metadata reference out of range", i)
		}
	}
	return nil
}

func TestDecodeV2RoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var d DecoderV2 // one decoder for all: reuse must not leak data between requests
	for i := range 500 {
		want := randomRequestV2(r)
		data, err := want.Marshal()
		require.NoError(t, err)

		got, err := d.Decode(snappy.Encode(nil, data), len(data))
		require.NoError(t, err, "request %d", i)
		require.NoError(t, compareWithWritev2(want, got), "request %d", i)

		got, err = d.Unmarshal(data)
		require.NoError(t, err, "request %d", i)
		require.NoError(t, compareWithWritev2(want, got), "request %d", i)

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

func TestDecodeV2TooLarge(t *testing.T) {
	data, err := (&writev2.Request{
		Symbols:    []string{"", "__name__", "up"},
		Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{1, 2}, Samples: []writev2.Sample{{Value: 1, Timestamp: 2}}}},
	}).Marshal()
	require.NoError(t, err)
	var d DecoderV2
	_, err = d.Decode(snappy.Encode(nil, data), len(data)-1)
	require.ErrorIs(t, err, ErrTooLarge)
	got, err := d.Decode(snappy.Encode(nil, data), len(data))
	require.NoError(t, err)
	require.Equal(t, []Label{{"__name__", "up"}}, got.Timeseries[0].Labels)
	_, err = d.Decode([]byte("not snappy at all, and long enough"), 1<<20)
	require.ErrorIs(t, err, ErrMalformed)
}

func TestDecodeV2Malformed(t *testing.T) {
	syms := pb{}.bytes(4, nil).bytes(4, []byte("__name__")).bytes(4, []byte("up")) // "", "__name__", "up"
	okSample := pb{}.tag(1, wireFixed64).raw(0, 0, 0, 0, 0, 0, 0xf0, 0x3f).tag(2, wireVarint).varint(1000)
	refs := func(r ...uint64) pb {
		var b pb
		for _, v := range r {
			b = b.varint(v)
		}
		return pb{}.bytes(1, b)
	}
	series := func(inner pb) pb { return slices.Concat(syms, pb{}.bytes(5, inner)) }

	for _, tc := range []struct {
		name string
		data pb
		// semantic: the protobuf is well formed (writev2 decodes it) but
		// its label references do not resolve.
		semantic bool
	}{
		{name: "truncated tag varint", data: pb{0xaa}},
		{name: "truncated symbol length varint", data: pb{}.tag(4, wireBytes).raw(0x80, 0x80)},
		{name: "varint longer than 10 bytes", data: pb{}.tag(5, wireBytes).raw(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01)},
		{name: "symbol past the end", data: pb{}.tag(4, wireBytes).varint(10).raw('a', 'b')},
		{name: "series length with the top bit set", data: pb{}.tag(5, wireBytes).varint(math.MaxUint64)},
		{name: "symbols with varint wire type", data: pb{}.tag(4, wireVarint).varint(1)},
		{name: "timeseries with fixed64 wire type", data: pb{}.tag(5, wireFixed64).raw(1, 2, 3, 4, 5, 6, 7, 8)},
		{name: "field number zero", data: pb{}.tag(0, wireBytes).varint(0)},
		{name: "end group at top level", data: pb{}.tag(9, wireEndGroup)},
		{name: "illegal wire type 6", data: series(pb{}.tag(9, 6).varint(1))},
		{name: "unterminated group in a series", data: series(pb{}.tag(9, wireStartGroup).tag(1, wireVarint).varint(1))},
		{name: "truncated unpacked label ref", data: series(pb{}.tag(1, wireVarint).raw(0x81))},
		{name: "truncated packed label refs", data: series(pb{}.tag(1, wireBytes).varint(2).raw(0x81, 0x81))},
		{name: "packed label refs past the series", data: series(pb{}.tag(1, wireBytes).varint(5).raw(1, 2))},
		{name: "label refs with fixed32 wire type", data: series(pb{}.tag(1, wireFixed32).raw(1, 0, 0, 0))},
		{name: "samples with varint wire type", data: series(refs(1, 2).tag(2, wireVarint).varint(1))},
		{name: "sample value with varint wire type", data: series(refs(1, 2).bytes(2, pb{}.tag(1, wireVarint).varint(3)))},
		{name: "truncated sample value", data: series(refs(1, 2).bytes(2, pb{}.tag(1, wireFixed64).raw(1, 2, 3)))},
		{name: "truncated sample timestamp", data: series(refs(1, 2).bytes(2, pb{}.tag(2, wireVarint).raw(0xff)))},
		{name: "sample start timestamp with fixed64 wire type", data: series(refs(1, 2).bytes(2, okSample.tag(3, wireFixed64).raw(0, 0, 0, 0, 0, 0, 0, 0)))},
		{name: "truncated sample start timestamp", data: series(refs(1, 2).bytes(2, okSample.tag(3, wireVarint).raw(0x80)))},
		{name: "histogram with varint wire type", data: series(refs(1, 2).tag(3, wireVarint).varint(1))},
		{name: "exemplar past the end", data: series(refs(1, 2).tag(4, wireBytes).varint(50))},
		{name: "metadata with fixed32 wire type", data: series(refs(1, 2).tag(5, wireFixed32).raw(1, 2, 3, 4))},
		{name: "garbage after a valid series", data: append(series(refs(1, 2).bytes(2, okSample)), 0xff)},

		{name: "odd number of label refs", data: series(refs(1, 2, 1).bytes(2, okSample)), semantic: true},
		{name: "odd number of unpacked label refs", data: series(pb{}.tag(1, wireVarint).varint(1).bytes(2, okSample)), semantic: true},
		{name: "label name ref out of range", data: series(refs(3, 2).bytes(2, okSample)), semantic: true},
		{name: "label value ref out of range", data: series(refs(1, 1<<31).bytes(2, okSample)), semantic: true},
		{name: "refs without symbols", data: pb{}.bytes(5, refs(0, 0)), semantic: true},
		{name: "first symbol not empty", data: pb{}.bytes(4, []byte("__name__")).bytes(4, []byte("up")).bytes(5, refs(0, 1).bytes(2, okSample)), semantic: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d DecoderV2
			_, err := d.Unmarshal(tc.data)
			require.ErrorIs(t, err, ErrMalformed)
			var ref writev2.Request
			refErr := ref.Unmarshal(tc.data)
			if tc.semantic {
				require.NoError(t, refErr, "writev2 decodes it")
				require.Error(t, resolvable(&ref), "but its references do not resolve")
			} else {
				require.Error(t, refErr, "the reference decoder agrees the input is malformed")
			}
		})
	}
}

// TestDecodeV2LikeWritev2 covers the leniencies of gogo/protobuf our
// decoder must share: whatever writev2 accepts (and resolves), we accept
// and read the same way.
func TestDecodeV2LikeWritev2(t *testing.T) {
	syms := pb{}.bytes(4, nil).bytes(4, []byte("__name__")).bytes(4, []byte("up")).bytes(4, []byte("job"))
	withSyms := func(b pb) pb { return slices.Concat(syms, b) }
	okSample := pb{}.tag(1, wireFixed64).raw(0, 0, 0, 0, 0, 0, 0xf0, 0x3f).tag(2, wireVarint).varint(1000)
	for _, tc := range []struct {
		name string
		data pb
	}{
		{"empty request", pb{}},
		{"empty series", pb{}.bytes(5, nil)},
		{"symbols after the series", slices.Concat(pb{}.bytes(5, pb{}.bytes(1, []byte{1, 2}).bytes(2, okSample)), syms)},
		{"unpacked label refs", withSyms(pb{}.bytes(5, pb{}.tag(1, wireVarint).varint(1).tag(1, wireVarint).varint(2)))},
		{"packed and unpacked refs mixed", withSyms(pb{}.bytes(5, pb{}.bytes(1, []byte{1, 2}).tag(1, wireVarint).varint(3).tag(1, wireVarint).varint(2)))},
		{"refs truncated to 32 bits", withSyms(pb{}.bytes(5, pb{}.bytes(1, pb{}.varint(1<<32|1).varint(2))))},
		{"packed refs whose last varint runs past the field", withSyms(pb{}.bytes(5, pb{}.tag(1, wireBytes).varint(2).raw(1, 0x82, 0x00)))},
		{"reserved fields 1 to 3 skipped", slices.Concat(pb{}.tag(1, wireVarint).varint(1).bytes(2, []byte("old")).tag(3, wireFixed32).raw(1, 2, 3, 4), syms)},
		{"unknown fields everywhere", withSyms(pb{}.tag(15, wireFixed32).raw(1, 2, 3, 4).
			bytes(5, pb{}.bytes(1, []byte{1, 2}).tag(7, wireFixed64).raw(1, 2, 3, 4, 5, 6, 7, 8).
				bytes(2, append(okSample, pb{}.tag(9, wireVarint).varint(3)...)).bytes(99, []byte("unknown"))))},
		{"created timestamp of older senders with another wire type skipped", withSyms(pb{}.bytes(5, pb{}.bytes(1, []byte{1, 2}).bytes(6, []byte("x")).bytes(2, okSample)))},
		{"repeated scalars: last wins", withSyms(pb{}.bytes(5, pb{}.bytes(1, []byte{1, 2}).
			bytes(2, okSample.tag(2, wireVarint).varint(5).tag(3, wireVarint).varint(4).tag(3, wireVarint).varint(3))))},
		{"non-minimal varints", withSyms(pb{}.raw(5<<3|wireBytes|0x80, 0x00, 0x84, 0x80, 0x00).raw(pb{}.bytes(1, []byte{1, 2})...))},
		{"nested groups skipped", withSyms(pb{}.tag(8, wireStartGroup).tag(9, wireStartGroup).tag(1, wireVarint).varint(1).
			tag(9, wireEndGroup).tag(8, wireEndGroup).bytes(5, pb{}.bytes(1, []byte{1, 2})))},
		{"histograms, exemplars and metadata counted", withSyms(pb{}.bytes(5, pb{}.bytes(1, []byte{1, 2}).bytes(3, nil).bytes(3, nil).bytes(4, nil).bytes(5, nil)))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want writev2.Request
			require.NoError(t, want.Unmarshal(tc.data))
			require.NoError(t, resolvable(&want))
			var d DecoderV2
			got, err := d.Unmarshal(tc.data)
			require.NoError(t, err)
			require.NoError(t, compareWithWritev2(&want, got))
		})
	}
}

func TestDecodeV2CreatedTimestamp(t *testing.T) {
	// A sender older than the 2.0-rc.4 spec puts the start timestamp on
	// the series (field 6); newer ones on each sample.
	sampleAt := func(t, st uint64) pb {
		b := pb{}.tag(1, wireFixed64).raw(0, 0, 0, 0, 0, 0, 0xf0, 0x3f).tag(2, wireVarint).varint(t)
		if st != 0 {
			b = b.tag(3, wireVarint).varint(st)
		}
		return b
	}
	data := pb{}.bytes(4, nil).bytes(4, []byte("__name__")).bytes(4, []byte("up")).
		bytes(5, pb{}.bytes(1, []byte{1, 2}).tag(6, wireVarint).varint(500).bytes(2, sampleAt(1000, 0)).bytes(2, sampleAt(2000, 900))).
		bytes(5, pb{}.bytes(1, []byte{1, 2}).bytes(2, sampleAt(3000, 0)))
	var d DecoderV2
	got, err := d.Unmarshal(data)
	require.NoError(t, err)
	require.Len(t, got.Timeseries, 2)
	legacy, current := &got.Timeseries[0], &got.Timeseries[1]
	require.Equal(t, int64(500), legacy.CreatedTimestamp)
	require.Equal(t, int64(500), legacy.StartTimestamp(legacy.Samples[0].StartTimestamp), "the series' created timestamp stands in")
	require.Equal(t, int64(900), legacy.StartTimestamp(legacy.Samples[1].StartTimestamp), "the sample's own wins")
	require.Equal(t, int64(0), current.StartTimestamp(current.Samples[0].StartTimestamp))
}

func FuzzDecodeV2(f *testing.F) {
	r := rand.New(rand.NewPCG(9, 10))
	for range 20 {
		data, err := randomRequestV2(r).Marshal()
		require.NoError(f, err)
		f.Add(data)
	}
	// Histograms of every shape, exemplars, metadata.
	for _, data := range histogramSeeds(f, r, true) {
		f.Add(data)
	}
	f.Add([]byte{})
	f.Add([]byte(pb{}.bytes(4, []byte("x")).bytes(5, pb{}.bytes(1, []byte{0, 0}))))
	f.Add([]byte(pb{}.bytes(4, nil).bytes(5, pb{}.tag(1, wireBytes).varint(1).raw(0x81, 0x00))))

	var d DecoderV2
	strict := DecoderV2{Limits: fuzzLimits}
	strict.Limits.MaxBytesPerByte = 12
	f.Fuzz(func(t *testing.T, data []byte) {
		var want writev2.Request
		wantErr := want.Unmarshal(data)
		if wantErr == nil {
			wantErr = resolvable(&want)
		}
		got, err := d.Unmarshal(data)
		var c decoded
		if err == nil {
			c = decoded{0, got.Timeseries}
		}
		// The strict, bounded decoder of the handler: what it accepts is
		// what the lenient one decodes; what it refuses beyond that, the
		// lenient result shows.
		sgot, serr := strict.Unmarshal(data)
		switch {
		case serr == nil && err != nil:
			t.Fatalf("strict accepts what lenient rejects: %v", err)
		case serr == nil:
			if len(got.Symbols) != len(sgot.Symbols) {
				t.Fatalf("symbols: lenient %d, strict %d", len(got.Symbols), len(sgot.Symbols))
			}
			if err := sameAsLenient(got.Timeseries, sgot.Timeseries, false); err != nil {
				t.Fatal(err)
			}
		case err == nil:
			var f strictFacts
			f.size, f.nothing = len(data), len(got.Timeseries) == 0 && len(got.Symbols) == 0
			f.symbols = len(got.Symbols)
			for i, s := range got.Symbols {
				f.emptySymbol = f.emptySymbol || (i > 0 && s == "")
			}
			for _, ts := range got.Timeseries {
				f.series++
				f.samples += len(ts.Samples)
				f.labels += len(ts.Labels)
				f.refs += 2 * len(ts.Labels)
				f.emptySeries = f.emptySeries || len(ts.Labels) == 0
				for _, s := range ts.Samples {
					f.zeroSample = f.zeroSample || (s == Sample{})
				}
			}
			f.bytes = f.series*seriesSize + f.symbols*symbolSize + f.refs*refSize + f.samples*sampleSize
			f.addExtras(got.Timeseries, true)
			for i := 0; i < len(data); {
				field, _, _, err := tag(data, i)
				if err != nil {
					break
				}
				f.reserved = f.reserved || field <= 3
				if i, err = skip(data, i); err != nil {
					break
				}
			}
			f.justifies(t, serr)
		}
		checkAgainst(t, "writev2", data, wantErr, err, c,
			func() error { return compareWithWritev2(&want, got) },
			func(b []byte, max int) (int, error) {
				r, err := d.Decode(b, max)
				if err != nil {
					return 0, err
				}
				return len(r.Timeseries), nil
			})
	})
}

// BenchmarkDecodeV2 decodes the requests of BenchmarkDecode as remote
// write 2.0, with one reused DecoderV2.
func BenchmarkDecodeV2(b *testing.B) {
	for _, shape := range []struct{ series, samples int }{{200, 10}, {2000, 1}, {20, 100}} {
		b.Run(fmt.Sprintf("series=%d/samples=%d", shape.series, shape.samples), func(b *testing.B) {
			syms := writev2.NewSymbolTable()
			req := &writev2.Request{}
			for i := range shape.series {
				ts := writev2.TimeSeries{}
				for _, l := range [][2]string{
					{"__name__", "http_requests_total"},
					{"code", "200"},
					{"handler", fmt.Sprintf("/api/v1/handler/%d", i%50)},
					{"instance", fmt.Sprintf("10.0.%d.%d:9090", i/250, i%250)},
					{"job", "prometheus"},
					{"method", "GET"},
					{"pod", fmt.Sprintf("prometheus-%d", i)},
					{"region", "eu-west-1"},
				} {
					ts.LabelsRefs = append(ts.LabelsRefs, syms.Symbolize(l[0]), syms.Symbolize(l[1]))
				}
				for j := range shape.samples {
					ts.Samples = append(ts.Samples, writev2.Sample{Value: float64(i * j), Timestamp: 1_700_000_000_000 + int64(j)*15_000})
				}
				ts.Metadata = writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: syms.Symbolize("Requests served.")}
				req.Timeseries = append(req.Timeseries, ts)
			}
			req.Symbols = syms.Symbols()
			data, err := req.Marshal()
			require.NoError(b, err)
			compressed := snappy.Encode(nil, data)
			// Lenient, as the reference decoders; and strict and bounded,
			// as the handler decodes.
			for _, limits := range []DecodeLimits{{}, decodeLimits(DefaultConfig(), rw2BytesPerByte)} {
				name := "lenient"
				if limits.Strict {
					name = "strict"
				}
				b.Run(name, func(b *testing.B) {
					d := DecoderV2{Limits: limits}
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
