package clickhouse

import "math"

// Exact decimals. Most values Prometheus scrapes are decimals with a few
// digits after the point (123.45, 0.25, 17), and a Float64 column
// compresses those poorly: neighbouring values share few bits. Where the
// samples table has the digits and scale columns (servers with codecs,
// see migration 2), a value that is exactly digits / 10^scale is stored as
// those two integers, with value 0; every other value (NaN payloads such
// as Prometheus' stale marker, infinities, -0, values needing more digits)
// keeps its bits in value, with scale -1. Reads compute
// if(scale < 0, value, digits / intExp10(scale)): one IEEE division of
// the same two exactly representable numbers the check below divides, so
// the value read back is bit-for-bit the value written.

// maxScale is the largest scale tried.
const maxScale = 12

// maxExact is the largest integer magnitude a float64 holds exactly.
const maxExact = 1 << 53

// rawScale is the scale of a value kept as Float64 bits.
const rawScale = -1

// decimalOf returns digits and scale with digits / 10^scale == v exactly,
// trying hint (the scale the series used last) first so that a series keeps
// one scale and its digits stay close from sample to sample. ok is false
// when no scale up to maxScale represents v.
func decimalOf(v float64, hint int8) (digits int64, scale int8, ok bool) {
	if math.IsNaN(v) || math.IsInf(v, 0) || v == 0 && math.Signbit(v) {
		return 0, rawScale, false
	}
	if hint >= 0 {
		if d, ok := decimalAt(v, hint); ok {
			return d, hint, true
		}
	}
	for s := int8(0); s <= maxScale; s++ {
		if s == hint {
			continue
		}
		if d, ok := decimalAt(v, s); ok {
			return d, s, true
		}
	}
	return 0, rawScale, false
}

// decimalAt returns round(v * 10^s) when dividing it by 10^s gives v back.
func decimalAt(v float64, s int8) (int64, bool) {
	p := math.Pow10(int(s))
	x := math.Round(v * p)
	if x > maxExact || x < -maxExact {
		return 0, false
	}
	d := int64(x)
	return d, float64(d)/p == v
}
