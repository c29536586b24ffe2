package badger

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/require"
)

func TestPackedRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	gens := map[string]func(i int) float64{
		"counter":    func(i int) float64 { return float64(i * r.IntN(10)) },
		"constant":   func(int) float64 { return 42 },
		"randomwalk": func(i int) float64 { return float64(r.IntN(200001)-100000) / 100 },
		"negative":   func(i int) float64 { return -float64(i+1) * 1.5 },
		"huge":       func(i int) float64 { return float64(int64(1)<<52 - int64(i)) },
		"micro":      func(i int) float64 { return float64(r.IntN(1000)) / 1e6 },
	}
	for name, gen := range gens {
		t.Run(name, func(t *testing.T) {
			var in []sample
			ts := int64(-50000)
			for i := 0; i < 150; i++ {
				ts += 15000 + int64(r.IntN(3)) - 1
				in = append(in, sample{t: ts, v: gen(i)})
			}
			b, ok := packChunk(nil, in)
			require.True(t, ok)
			out, err := unpackChunk(nil, b)
			require.NoError(t, err)
			require.Len(t, out, len(in))
			for i := range in {
				require.Equal(t, in[i].t, out[i].t)
				require.Equal(t, math.Float64bits(in[i].v), math.Float64bits(out[i].v), "sample %d: %v vs %v", i, in[i].v, out[i].v)
			}
			// unpackFloats decodes the same, appended after what is there.
			fts, vs, err := unpackFloats([]int64{1}, []float64{2}, b)
			require.NoError(t, err)
			require.Len(t, fts, len(in)+1)
			require.Len(t, vs, len(in)+1)
			for i := range in {
				require.Equal(t, in[i].t, fts[i+1])
				require.Equal(t, math.Float64bits(in[i].v), math.Float64bits(vs[i+1]), "sample %d", i)
			}
		})
	}
}

func TestPackedRefusesInexactValues(t *testing.T) {
	for _, v := range []float64{math.NaN(), math.Float64frombits(value.StaleNaN), math.Inf(1), math.Inf(-1), math.Copysign(0, -1), math.Pi, 1e300, 0.1234567} {
		_, ok := packChunk(nil, []sample{{t: 1, v: 1}, {t: 2, v: v}})
		require.False(t, ok, "%v", v)
	}
}

func FuzzUnpack(f *testing.F) {
	b, _ := packChunk(nil, []sample{{t: 1, v: 1}, {t: 2, v: 2.5}, {t: 30, v: -7}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := unpackChunk(nil, data) // must not panic
		ts, vs, ferr := unpackFloats(nil, nil, data)
		if err == nil && ferr == nil {
			require.Len(t, ts, len(out))
			require.Len(t, vs, len(out))
			for i := range out {
				require.Equal(t, out[i].t, ts[i])
				require.Equal(t, math.Float64bits(out[i].v), math.Float64bits(vs[i]))
			}
		}
	})
}

// BenchmarkUnpackFloats decodes a 2-hour chunk at 60 s of a float
// counter with 2-decimal steps, the sealed chunks of the week benchmark.
func BenchmarkUnpackFloats(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	var in []sample
	v := 100.0
	for i := range 120 {
		v = float64(int64(v*100)+int64(r.IntN(1000))) / 100
		in = append(in, sample{t: int64(i) * 60_000, v: v})
	}
	data, ok := packChunk(nil, in)
	require.True(b, ok)
	var ts []int64
	var vs []float64
	b.ReportAllocs()
	cpu := cpuTime(b)
	for b.Loop() {
		var err error
		ts, vs, err = unpackFloats(ts[:0], vs[:0], data)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/sample")
	b.ReportMetric(float64((cpuTime(b)-cpu).Nanoseconds())/float64(b.N*len(in)), "cpu-ns/sample")
}
