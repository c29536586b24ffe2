package storagetest

import (
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/require"
)

// specialFloat is a value that must round-trip.
type specialFloat struct {
	name string
	v    float64
}

var specialFloats = []specialFloat{
	{"StaleNaN", math.Float64frombits(value.StaleNaN)},
	{"NaN", math.NaN()},
	{"+Inf", math.Inf(1)},
	{"-Inf", math.Inf(-1)},
	{"MaxFloat64", math.MaxFloat64},
	{"-MaxFloat64", -math.MaxFloat64},
	{"zero", 0},
	{"negative zero", math.Copysign(0, -1)},
	{"smallest subnormal", math.SmallestNonzeroFloat64},
	{"negative smallest subnormal", -math.SmallestNonzeroFloat64},
	{"largest subnormal", math.Float64frombits(0x000fffffffffffff)},
	{"subnormal 1e-310", 1e-310},
	{"smallest normal", 0x1p-1022},
	{"0.1+0.2", 0.1 + 0.2},
	{"2^53+2", 1<<53 + 2},
	{"MaxInt64 as float", math.MaxInt64},
	{"-1e300", -1e300},
}

// testSpecialFloats round-trips every special value: bit-exact for all but
// plain NaN, which must come back as a NaN that is not the staleness marker.
func testSpecialFloats(t *testing.T, b Backend) {
	ts := b.Open(t).ForTenant(tenantA)
	var data []series
	// All values in one series, back to back and between ordinary
	// values, so that every transition goes through the encoding.
	var mixed []sample
	tm := baseTime
	for _, f := range specialFloats {
		for _, v := range []float64{f.v, f.v, 1.5, f.v, 42} {
			mixed = append(mixed, sample{tm, v})
			tm += step
		}
	}
	data = append(data, series{ls("__name__", "special", "layout", "mixed"), mixed})
	for _, f := range specialFloats {
		// Alone, and as the first and last sample of a series.
		data = append(data,
			series{ls("__name__", "special", "layout", "alone", "value", f.name), []sample{{baseTime, f.v}}},
			series{ls("__name__", "special", "layout", "edges", "value", f.name), []sample{{baseTime, f.v}, {baseTime + step, 1}, {baseTime + 2*step, -2}, {baseTime + 3*step, f.v}}},
		)
	}
	write(t, ts, data...)
	want := merge(data)
	got := selectSeries(t, ts, 0, math.MaxInt64, eq("__name__", "special"))
	requireSameSeries(t, want, got, "special float values")
	requireStaleNaNBits(t, want, got)
}

// requireStaleNaNBits requires every staleness marker of want to come back
// with exactly value.StaleNaN's bits (requireSameSeries has matched the
// shapes of want and got already).
func requireStaleNaNBits(t testing.TB, want, got []series) {
	t.Helper()
	for i, s := range want {
		for j, smp := range s.samples {
			if !value.IsStaleNaN(smp.F) {
				continue
			}
			bits := math.Float64bits(got[i].samples[j].F)
			require.Equal(t, value.StaleNaN, bits, "%s @%d: StaleNaN must be stored bit-exact: want %#016x, got %#016x", s.lset, smp.T, value.StaleNaN, bits)
		}
	}
}
