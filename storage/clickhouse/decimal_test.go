package clickhouse

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/require"
)

// decimalValue is the value digits and scale stand for, computed as the
// read query does.
func decimalValue(digits int64, scale int8) float64 {
	return float64(digits) / math.Pow10(int(scale))
}

func TestDecimalOf(t *testing.T) {
	cases := []struct {
		v      float64
		hint   int8
		digits int64
		scale  int8
		ok     bool
	}{
		{v: 0, digits: 0, scale: 0, ok: true},
		{v: 17, digits: 17, scale: 0, ok: true},
		{v: 123.45, digits: 12345, scale: 2, ok: true},
		{v: -123.45, digits: -12345, scale: 2, ok: true},
		{v: 0.1, digits: 1, scale: 1, ok: true},
		{v: 123.4, hint: 2, digits: 12340, scale: 2, ok: true}, // the series' scale kept
		{v: 123.45, hint: 1, digits: 12345, scale: 2, ok: true},
		{v: 1e-12, digits: 1, scale: 12, ok: true},
		{v: 1 << 53, digits: 1 << 53, scale: 0, ok: true},
		{v: 1<<53 + 2, scale: rawScale},
		{v: 1e300, scale: rawScale},
		{v: 1e-13, scale: rawScale},
		{v: 1.0 / 3, scale: rawScale},
		{v: math.Copysign(0, -1), scale: rawScale},
		{v: math.NaN(), scale: rawScale},
		{v: math.Float64frombits(value.StaleNaN), scale: rawScale},
		{v: math.Inf(1), scale: rawScale},
		{v: math.Inf(-1), scale: rawScale},
	}
	for _, c := range cases {
		digits, scale, ok := decimalOf(c.v, c.hint)
		require.Equal(t, c.ok, ok, "%v", c.v)
		require.Equal(t, c.scale, scale, "%v", c.v)
		if ok {
			require.Equal(t, c.digits, digits, "%v", c.v)
			require.Equal(t, math.Float64bits(c.v), math.Float64bits(decimalValue(digits, scale)), "%v", c.v)
		}
	}
}

// TestDecimalOfRandom checks the round trip on values of every kind a
// store sees: decimals of every scale, random bits, random floats.
func TestDecimalOfRandom(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	exact := 0
	for i := range 200_000 {
		var v float64
		switch i % 4 {
		case 0:
			v = float64(rnd.Int64N(2_000_000_000)-1_000_000_000) / math.Pow10(rnd.IntN(10))
		case 1:
			v = math.Float64frombits(rnd.Uint64())
		case 2:
			v = rnd.NormFloat64() * math.Pow10(rnd.IntN(30)-15)
		case 3:
			v = math.Round(rnd.Float64()*1e6) / 100
		}
		checkDecimal(t, v, int8(rnd.IntN(maxScale+2)-1))
		if _, _, ok := decimalOf(v, 0); ok {
			exact++
		}
	}
	require.Greater(t, exact, 100_000, "the decimal kinds are found exact")
}

func checkDecimal(t *testing.T, v float64, hint int8) {
	digits, scale, ok := decimalOf(v, hint)
	if !ok {
		require.Equal(t, int8(rawScale), scale)
		return
	}
	require.True(t, scale >= 0 && scale <= maxScale)
	require.LessOrEqual(t, max(digits, -digits), int64(maxExact))
	require.Equal(t, math.Float64bits(v), math.Float64bits(decimalValue(digits, scale)), "%v as %d / 10^%d", v, digits, scale)
}

func FuzzDecimalOf(f *testing.F) {
	for _, v := range []float64{0, 1, 123.45, -0.001, 1e300, math.NaN()} {
		f.Add(math.Float64bits(v), int8(0))
	}
	f.Fuzz(func(t *testing.T, bits uint64, hint int8) {
		checkDecimal(t, math.Float64frombits(bits), max(min(hint, maxScale), rawScale))
	})
}
