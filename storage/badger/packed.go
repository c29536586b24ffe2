package badger

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// Sealed chunks are stored in one of two encodings, named by the first byte
// of the chunk value:
//
//   - encXOR: Prometheus' Gorilla XOR chunk, the head's own encoding, used
//     for any value;
//   - encPacked: used when every value of the chunk is a decimal with at most
//     maxScale fractional digits (counters, integer gauges, prices, most
//     real metrics). Values become integers scaled by 10^k, and timestamps
//     and values are stored as byte-aligned varints of their deltas (or
//     delta-of-deltas, whichever is shorter), timestamps first and values
//     after. Regular scrape intervals become runs of zero bytes and small
//     value steps single bytes, which Badger's ZSTD block compression then
//     squeezes far below what the bit-packed XOR stream allows.
//
// Packing is decided per chunk at seal time and falls back to XOR whenever
// a value (NaN, StaleNaN, ±Inf, -0, or a non-decimal float) would not
// round-trip bit-exactly.
//
// Histogram chunks are stored in Prometheus' own encodings, as the head
// wrote them: encHistogram and encFloatHistogram.
//
// A chunk with a start timestamp (AppenderV2's st) other than 0 in any of
// its samples is in the start-timestamp-capable variant of its kind,
// Prometheus' own again, which keeps every sample's st: encXOR2,
// encHistogramST or encFloatHistogramST (never packed). Chunks without
// start timestamps keep the encodings above, byte for byte.
const (
	encXOR              byte = byte(chunkenc.EncXOR)
	encHistogram        byte = byte(chunkenc.EncHistogram)
	encFloatHistogram   byte = byte(chunkenc.EncFloatHistogram)
	encXOR2             byte = byte(chunkenc.EncXOR2)
	encHistogramST      byte = byte(chunkenc.EncHistogramST)
	encFloatHistogramST byte = byte(chunkenc.EncFloatHistogramST)
	encPacked           byte = 0x80
)

// kindOf returns the encoding without start timestamps of enc's kind:
// encXOR for floats (packed or not), encHistogram or encFloatHistogram.
func kindOf(enc byte) byte {
	switch enc {
	case encXOR2, encPacked:
		return encXOR
	case encHistogramST:
		return encHistogram
	case encFloatHistogramST:
		return encFloatHistogram
	}
	return enc
}

// withST returns the start-timestamp-capable encoding of enc's kind.
func withST(enc byte) byte {
	switch kindOf(enc) {
	case encHistogram:
		return encHistogramST
	case encFloatHistogram:
		return encFloatHistogramST
	}
	return encXOR2
}

// hasST reports whether chunks in enc keep start timestamps.
func hasST(enc byte) bool {
	return enc == encXOR2 || enc == encHistogramST || enc == encFloatHistogramST
}

const maxScale = 6

var pow10 = [maxScale + 1]float64{1, 10, 100, 1e3, 1e4, 1e5, 1e6}

// decimalScale returns the smallest k such that every value is an integer
// divided by 10^k, exactly.
func decimalScale(samples []sample) (int, bool) {
next:
	for k := 0; k <= maxScale; k++ {
		p := pow10[k]
		for _, s := range samples {
			x := math.Round(s.v * p)
			if !(math.Abs(x) <= 1<<53) { // also false for NaN
				continue next
			}
			// The check is the decoder's own computation, so what passes
			// it round-trips bit-exactly (-0 and NaN never do).
			if math.Float64bits(float64(int64(x))/p) != math.Float64bits(s.v) {
				continue next
			}
		}
		return k, true
	}
	return 0, false
}

func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

// uvarintLen is the encoded length of v.
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// appendDeltas appends xs[1:] as zigzag varints of their deltas or, when
// dod is set, of their delta-of-deltas (after one plain delta).
func appendDeltas(b []byte, xs []int64, dod bool) []byte {
	var prevDelta int64
	for i := 1; i < len(xs); i++ {
		d := xs[i] - xs[i-1]
		if dod && i > 1 {
			b = binary.AppendUvarint(b, zigzag(d-prevDelta))
		} else {
			b = binary.AppendUvarint(b, zigzag(d))
		}
		prevDelta = d
	}
	return b
}

func deltasLen(xs []int64, dod bool) int {
	n := 0
	var prevDelta int64
	for i := 1; i < len(xs); i++ {
		d := xs[i] - xs[i-1]
		if dod && i > 1 {
			n += uvarintLen(zigzag(d - prevDelta))
		} else {
			n += uvarintLen(zigzag(d))
		}
		prevDelta = d
	}
	return n
}

// packChunk encodes sorted samples in the packed encoding, or reports
// false when a value does not fit it.
//
//	flags(1: scale | valueDoD<<4) n(uvarint) t0(varint) [zigzag delta/dod]... x0(varint) [zigzag delta/dod]...
func packChunk(dst []byte, samples []sample) ([]byte, bool) {
	if len(samples) == 0 {
		return dst, false
	}
	k, ok := decimalScale(samples)
	if !ok {
		return dst, false
	}
	ts := make([]int64, len(samples))
	xs := make([]int64, len(samples))
	for i, s := range samples {
		ts[i] = s.t
		xs[i] = int64(math.Round(s.v * pow10[k]))
	}
	valueDoD := deltasLen(xs, true) < deltasLen(xs, false)
	flags := byte(k)
	if valueDoD {
		flags |= 1 << 4
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(len(samples)))
	dst = binary.AppendVarint(dst, ts[0])
	dst = appendDeltas(dst, ts, true)
	dst = binary.AppendVarint(dst, xs[0])
	dst = appendDeltas(dst, xs, valueDoD)
	return dst, true
}

// next reads one zigzag varint of d as a signed value, with a fast path for
// the one-byte varints that regular data is mostly made of.
func (d *decoder) nextZigzag() int64 {
	var u uint64
	if b := d.b; len(b) > 0 && b[0] < 0x80 {
		u = uint64(b[0])
		d.b = b[1:]
	} else {
		u = d.uvarint()
	}
	return int64(u>>1) ^ -int64(u&1)
}

// unpackChunk appends the samples of a packed chunk to dst. Timestamps and
// scaled values are decoded straight into the appended samples.
func unpackChunk(dst []sample, data []byte) ([]sample, error) {
	if len(data) < 1 {
		return dst, fmt.Errorf("packed chunk: %w", errCorrupt)
	}
	flags := data[0]
	k := int(flags & 0x0f)
	if k > maxScale {
		return dst, fmt.Errorf("packed chunk scale %d: %w", k, errCorrupt)
	}
	d := decoder{b: data[1:]}
	n := d.uvarint()
	if n == 0 || n > uint64(len(data)) {
		return dst, fmt.Errorf("packed chunk length: %w", errCorrupt)
	}
	base := len(dst)
	dst = slices.Grow(dst, int(n))[:base+int(n)]
	out := dst[base:]
	// Timestamps: first value, one delta, then delta-of-deltas.
	t := d.varint()
	var delta int64
	for i := range out {
		switch i {
		case 0:
		case 1:
			delta = d.nextZigzag()
			t += delta
		default:
			delta += d.nextZigzag()
			t += delta
		}
		out[i] = sample{t: t}
	}
	// Values: first value, then deltas or delta-of-deltas.
	x := d.varint()
	dod := flags&(1<<4) != 0
	p := pow10[k]
	delta = 0
	for i := range out {
		if i > 0 {
			z := d.nextZigzag()
			if dod && i > 1 {
				delta += z
			} else {
				delta = z
			}
			x += delta
		}
		out[i].v = float64(x) / p
	}
	if d.err != nil {
		return dst[:base], fmt.Errorf("packed chunk: %w", d.err)
	}
	return dst, nil
}

// unpackFloats appends the timestamps and values of a packed chunk to ts
// and vs: what unpackChunk decodes, into the two slices a reader iterates,
// without a sample struct per sample. The varints are read with a fast
// path for the one-byte ones regular data is mostly made of.
func unpackFloats(ts []int64, vs []float64, data []byte) ([]int64, []float64, error) {
	return unpackFloatsOf(ts, vs, data, true)
}

// unpackFloatsOf is unpackFloats, with values left 0 unless values is set
// (for queries that read only whether and when samples exist).
func unpackFloatsOf(ts []int64, vs []float64, data []byte, values bool) ([]int64, []float64, error) {
	if len(data) < 1 {
		return ts, vs, fmt.Errorf("packed chunk: %w", errCorrupt)
	}
	flags := data[0]
	k := int(flags & 0x0f)
	if k > maxScale {
		return ts, vs, fmt.Errorf("packed chunk scale %d: %w", k, errCorrupt)
	}
	d := decoder{b: data[1:]}
	n := d.uvarint()
	if n == 0 || n > uint64(len(data)) {
		return ts, vs, fmt.Errorf("packed chunk length: %w", errCorrupt)
	}
	t := d.varint()
	if d.err != nil {
		return ts, vs, fmt.Errorf("packed chunk: %w", d.err)
	}
	base := len(ts)
	ts = slices.Grow(ts, int(n))[:base+int(n)]
	vs = slices.Grow(vs, int(n))[:base+int(n)]
	tout, vout := ts[base:], vs[base:len(ts)]
	b := d.b
	// Timestamps: first value, one delta, then delta-of-deltas (at a
	// regular interval, a run of zero bytes).
	tout[0] = t
	var delta int64
	p, ok := 0, true
	if len(tout) > 1 {
		var z int64
		if z, p, ok = zigzagAt(b, p); !ok {
			return ts[:base], vs[:base], fmt.Errorf("packed chunk: %w", errCorrupt)
		}
		delta = z
		t += delta
		tout[1] = t
		for i := 2; i < len(tout); i++ {
			if p < len(b) && b[p] == 0 {
				p++
			} else {
				if z, p, ok = zigzagAt(b, p); !ok {
					return ts[:base], vs[:base], fmt.Errorf("packed chunk: %w", errCorrupt)
				}
				delta += z
			}
			t += delta
			tout[i] = t
		}
	}
	if !values {
		clear(vout)
		return ts, vs, nil
	}
	// Values: first value, then deltas or delta-of-deltas.
	d.b = b[p:]
	x := d.varint()
	if d.err != nil {
		return ts[:base], vs[:base], fmt.Errorf("packed chunk: %w", d.err)
	}
	b, p = d.b, 0
	pw := pow10[k]
	vout[0] = float64(x) / pw
	dod := flags&(1<<4) != 0
	delta = 0
	for i := 1; i < len(vout); i++ {
		var z int64
		// One- and two-byte varints inline: small value steps.
		if p+1 < len(b) && b[p+1] < 0x80 && b[p] >= 0x80 {
			u := uint64(b[p]&0x7f) | uint64(b[p+1])<<7
			z = int64(u>>1) ^ -int64(u&1)
			p += 2
		} else if p < len(b) && b[p] < 0x80 {
			u := uint64(b[p])
			z = int64(u>>1) ^ -int64(u&1)
			p++
		} else if z, p, ok = zigzagAt(b, p); !ok {
			return ts[:base], vs[:base], fmt.Errorf("packed chunk: %w", errCorrupt)
		}
		if dod && i > 1 {
			delta += z
		} else {
			delta = z
		}
		x += delta
		vout[i] = float64(x) / pw
	}
	return ts, vs, nil
}

// zigzagAt reads the zigzag varint at b[p:] and returns it with the
// position after it; ok is false when b holds no valid varint there.
func zigzagAt(b []byte, p int) (z int64, next int, ok bool) {
	if p < len(b) && b[p] < 0x80 {
		u := uint64(b[p])
		return int64(u>>1) ^ -int64(u&1), p + 1, true
	}
	if p >= len(b) {
		return 0, p, false
	}
	u, m := binary.Uvarint(b[p:])
	if m <= 0 {
		return 0, p, false
	}
	return int64(u>>1) ^ -int64(u&1), p + m, true
}

// decodeAny appends the samples of a chunk in either encoding to dst.
func decodeAny(dst []sample, enc byte, data []byte) ([]sample, error) {
	switch enc {
	case encXOR, encXOR2:
		return decodeFloatChunk(dst, enc, data)
	case encPacked:
		return unpackChunk(dst, data)
	}
	return decodeHistogramChunk(dst, enc, data)
}

// sealedValue returns the Badger value of a sealed chunk: an XOR chunk
// packed when that is smaller, the chunk's own bytes otherwise.
func sealedValue(enc byte, data []byte) []byte {
	if enc != encXOR {
		return chunkValue(enc, data)
	}
	samples, err := decodeFloatChunk(make([]sample, 0, 128), encXOR, data)
	if err == nil {
		packed, ok := packChunk([]byte{encPacked}, samples)
		if ok {
			return packed
		}
	}
	return chunkValue(encXOR, data)
}

// chunkValue returns the Badger value of a chunk: its encoding, then its
// bytes.
func chunkValue(enc byte, data []byte) []byte {
	v := make([]byte, 0, len(data)+1)
	v = append(v, enc)
	return append(v, data...)
}
