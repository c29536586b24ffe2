package badger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/encoding"
	"github.com/prometheus/prometheus/tsdb/record"
)

var errCorrupt = errors.New("corrupt record")

func appendLabels(b []byte, lset labels.Labels) []byte {
	b = binary.AppendUvarint(b, uint64(lset.Len()))
	lset.Range(func(l labels.Label) {
		b = binary.AppendUvarint(b, uint64(len(l.Name)))
		b = append(b, l.Name...)
		b = binary.AppendUvarint(b, uint64(len(l.Value)))
		b = append(b, l.Value...)
	})
	return b
}

// decoder reads the varint-framed encodings of this package.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = errCorrupt
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) uint32() uint32 {
	v := d.bytes(4)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

func (d *decoder) float() float64 {
	v := d.bytes(8)
	if v == nil {
		return 0
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(v))
}

func (d *decoder) labels(sb *labels.ScratchBuilder) labels.Labels {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errCorrupt
	}
	sb.Reset()
	for i := uint64(0); i < n && d.err == nil; i++ {
		name := d.bytes(int(d.uvarint()))
		value := d.bytes(int(d.uvarint()))
		if builderCopies {
			// Labels copies them: no allocation per name and value.
			sb.Add(aliasString(name), aliasString(value))
		} else {
			sb.Add(string(name), string(value))
		}
	}
	if d.err != nil {
		return labels.EmptyLabels()
	}
	sb.Sort()
	return sb.Labels()
}

// aliasString returns b as a string without copying it; b must not change
// while the string is in use.
func aliasString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func decodeLabels(b []byte) (labels.Labels, error) {
	d := decoder{b: b}
	var sb labels.ScratchBuilder
	l := d.labels(&sb)
	if d.err != nil {
		return labels.EmptyLabels(), fmt.Errorf("decode labels: %w", d.err)
	}
	return l, nil
}

// A commit record holds what one Commit made durable: the series it created
// and its samples, for one tenant. Floats come first; histograms, when the
// commit has any, in a section of their own after them, each with its
// position among all the commit's samples (so a replay applies them in the
// order they were written: the last write of a timestamp wins, whatever
// its kind). The start timestamps other than 0, when the commit has any,
// follow in a third section, each with its sample's position (the
// histogram section is then written even when empty). Records from before
// histograms end after the floats, records from before start timestamps
// after the histograms; a commit without histograms or start timestamps
// writes the same bytes as they did.
//
//	tenant(4) nseries(uvarint) [series(uvarint) labels]...
//	nfloats(uvarint) [series(uvarint) t(varint) v(8)]...
//	[nhistograms(uvarint) [position(uvarint) series(uvarint) t(varint) kind(1) histogram]...]
//	[nst(uvarint) [position(uvarint) t-st(varint)]...]
//
// kind is encHistogram or encFloatHistogram; the histogram is encoded as
// Prometheus' own WAL encodes it (record.EncodeHistogram and
// record.EncodeFloatHistogram), every field bit-exact. Positions ascend.
type walSeries struct {
	id   uint64
	lset labels.Labels
}

type walSample struct {
	id uint64
	sample
}

// appendCommitRecord appends the record of samples (whose series are set)
// to b.
func appendCommitRecord(b []byte, tenant uint32, series []walSeries, samples []pendingSample) []byte {
	b = binary.BigEndian.AppendUint32(b, tenant)
	b = binary.AppendUvarint(b, uint64(len(series)))
	for _, s := range series {
		b = binary.AppendUvarint(b, s.id)
		b = appendLabels(b, s.lset)
	}
	nh, nst := 0, 0
	for _, s := range samples {
		if s.h != nil || s.fh != nil {
			nh++
		}
		if s.st != 0 {
			nst++
		}
	}
	b = binary.AppendUvarint(b, uint64(len(samples)-nh))
	for _, s := range samples {
		if s.h != nil || s.fh != nil {
			continue
		}
		b = binary.AppendUvarint(b, s.ser.id)
		b = binary.AppendVarint(b, s.t)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.v))
	}
	if nh == 0 && nst == 0 {
		return b
	}
	b = binary.AppendUvarint(b, uint64(nh))
	for i, s := range samples {
		if s.h == nil && s.fh == nil {
			continue
		}
		b = binary.AppendUvarint(b, uint64(i))
		b = binary.AppendUvarint(b, s.ser.id)
		b = binary.AppendVarint(b, s.t)
		if s.h != nil {
			b = append(b, encHistogram)
			b = appendHistogram(b, s.h)
		} else {
			b = append(b, encFloatHistogram)
			b = appendFloatHistogram(b, s.fh)
		}
	}
	if nst == 0 {
		return b
	}
	b = binary.AppendUvarint(b, uint64(nst))
	for i, s := range samples {
		if s.st != 0 {
			b = binary.AppendUvarint(b, uint64(i))
			b = binary.AppendVarint(b, s.t-s.st)
		}
	}
	return b
}

// appendHistogram appends h as record.EncodeHistogram encodes it, byte
// for byte, in less time: b grows once, and the varints are written in
// place.
func appendHistogram(b []byte, h *histogram.Histogram) []byte {
	custom := histogram.IsCustomBucketsSchema(h.Schema)
	n := 1 + 3*binary.MaxVarintLen64 + 2*8 + 4*binary.MaxVarintLen64 +
		(len(h.PositiveSpans)+len(h.NegativeSpans))*(binary.MaxVarintLen64+binary.MaxVarintLen32) +
		(len(h.PositiveBuckets)+len(h.NegativeBuckets))*binary.MaxVarintLen64
	if custom {
		n += binary.MaxVarintLen64 + 8*len(h.CustomValues)
	}
	b = slices.Grow(b, n)
	p := len(b)
	b = b[:cap(b)]
	b[p] = byte(h.CounterResetHint)
	p = putVarint(b, p+1, int64(h.Schema))
	p = putFloat(b, p, h.ZeroThreshold)
	p = putUvarint(b, p, h.ZeroCount)
	p = putUvarint(b, p, h.Count)
	p = putFloat(b, p, h.Sum)
	p = putSpans(b, p, h.PositiveSpans)
	p = putSpans(b, p, h.NegativeSpans)
	p = putVarints(b, putUvarint(b, p, uint64(len(h.PositiveBuckets))), h.PositiveBuckets)
	p = putVarints(b, putUvarint(b, p, uint64(len(h.NegativeBuckets))), h.NegativeBuckets)
	if custom {
		p = putFloats(b, p, h.CustomValues)
	}
	return b[:p]
}

// appendFloatHistogram appends h as record.EncodeFloatHistogram encodes
// it, byte for byte.
func appendFloatHistogram(b []byte, h *histogram.FloatHistogram) []byte {
	custom := histogram.IsCustomBucketsSchema(h.Schema)
	n := 1 + binary.MaxVarintLen64 + 4*8 + 4*binary.MaxVarintLen64 +
		(len(h.PositiveSpans)+len(h.NegativeSpans))*(binary.MaxVarintLen64+binary.MaxVarintLen32) +
		(len(h.PositiveBuckets)+len(h.NegativeBuckets))*8
	if custom {
		n += binary.MaxVarintLen64 + 8*len(h.CustomValues)
	}
	b = slices.Grow(b, n)
	p := len(b)
	b = b[:cap(b)]
	b[p] = byte(h.CounterResetHint)
	p = putVarint(b, p+1, int64(h.Schema))
	p = putFloat(b, p, h.ZeroThreshold)
	p = putFloat(b, p, h.ZeroCount)
	p = putFloat(b, p, h.Count)
	p = putFloat(b, p, h.Sum)
	p = putSpans(b, p, h.PositiveSpans)
	p = putSpans(b, p, h.NegativeSpans)
	p = putFloats(b, p, h.PositiveBuckets)
	p = putFloats(b, p, h.NegativeBuckets)
	if custom {
		p = putFloats(b, p, h.CustomValues)
	}
	return b[:p]
}

// The put functions write at b[p:], which the caller made large enough,
// and return the position after what they wrote.

func putUvarint(b []byte, p int, v uint64) int {
	for v >= 0x80 {
		b[p] = byte(v) | 0x80
		v >>= 7
		p++
	}
	b[p] = byte(v)
	return p + 1
}

// putVarint writes v zigzag-encoded, as binary.PutVarint does.
func putVarint(b []byte, p int, v int64) int { return putUvarint(b, p, uint64(v<<1)^uint64(v>>63)) }

func putVarints(b []byte, p int, xs []int64) int {
	for _, x := range xs {
		v := uint64(x<<1) ^ uint64(x>>63)
		for v >= 0x80 {
			b[p] = byte(v) | 0x80
			v >>= 7
			p++
		}
		b[p] = byte(v)
		p++
	}
	return p
}

// putFloat writes v big-endian, as Encbuf.PutBE64 does.
func putFloat(b []byte, p int, v float64) int {
	binary.BigEndian.PutUint64(b[p:], math.Float64bits(v))
	return p + 8
}

func putSpans(b []byte, p int, spans []histogram.Span) int {
	p = putUvarint(b, p, uint64(len(spans)))
	for _, s := range spans {
		p = putVarint(b, p, int64(s.Offset))
		p = putUvarint(b, p, uint64(s.Length))
	}
	return p
}

// putFloats writes the count of xs, then each big-endian.
func putFloats(b []byte, p int, xs []float64) int {
	p = putUvarint(b, p, uint64(len(xs)))
	for _, v := range xs {
		p = putFloat(b, p, v)
	}
	return p
}

func decodeCommitRecord(rec []byte) (tenant uint32, series []walSeries, samples []walSample, err error) {
	d := decoder{b: rec}
	var sb labels.ScratchBuilder
	tenant = d.uint32()
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return 0, nil, nil, errCorrupt
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		id := d.uvarint()
		series = append(series, walSeries{id: id, lset: d.labels(&sb)})
	}
	n = d.uvarint()
	if n > uint64(len(d.b)) {
		return 0, nil, nil, errCorrupt
	}
	samples = make([]walSample, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		samples = append(samples, walSample{id: d.uvarint(), sample: sample{t: d.varint(), v: d.float()}})
	}
	if d.err == nil && len(d.b) > 0 {
		samples, d.b, d.err = decodeHistograms(d.b, samples)
	}
	if d.err == nil && len(d.b) > 0 {
		n = d.uvarint()
		if n > uint64(len(samples)) {
			d.err = errCorrupt
		}
		next := uint64(0) // positions ascend
		for i := uint64(0); i < n && d.err == nil; i++ {
			pos, diff := d.uvarint(), d.varint()
			if d.err == nil && (pos < next || pos >= uint64(len(samples))) {
				d.err = errCorrupt
				break
			}
			next = pos + 1
			samples[pos].st = samples[pos].t - diff
		}
		if d.err == nil && len(d.b) > 0 {
			d.err = errCorrupt
		}
	}
	if d.err != nil {
		return 0, nil, nil, fmt.Errorf("decode commit record: %w", d.err)
	}
	return tenant, series, samples, nil
}

// decodeHistograms decodes the histogram section of a commit record and
// interleaves its samples with the floats, at their positions. It returns
// the bytes after the section.
func decodeHistograms(b []byte, floats []walSample) (out []walSample, rest []byte, err error) {
	defer func() {
		// record's decoders trust their lengths; the record's checksum
		// passed, so only a bug gets here.
		if r := recover(); r != nil {
			out, rest, err = nil, nil, fmt.Errorf("histograms: %v: %w", r, errCorrupt)
		}
	}()
	buf := encoding.Decbuf{B: b}
	nh := buf.Uvarint64()
	if buf.Err() != nil || nh > uint64(len(b)) {
		return nil, nil, errCorrupt
	}
	total := uint64(len(floats)) + nh
	out = make([]walSample, 0, total)
	f := 0
	for range nh {
		pos := buf.Uvarint64()
		s := walSample{id: buf.Uvarint64()}
		s.t = buf.Varint64()
		switch buf.Byte() {
		case encHistogram:
			s.h = &histogram.Histogram{}
			record.DecodeHistogram(&buf, s.h)
		case encFloatHistogram:
			s.fh = &histogram.FloatHistogram{}
			record.DecodeFloatHistogram(&buf, s.fh)
		default:
			return nil, nil, errCorrupt
		}
		if buf.Err() != nil || pos < uint64(len(out)) || pos >= total {
			return nil, nil, errCorrupt
		}
		for uint64(len(out)) < pos {
			if f == len(floats) {
				return nil, nil, errCorrupt
			}
			out = append(out, floats[f])
			f++
		}
		out = append(out, s)
	}
	if buf.Err() != nil {
		return nil, nil, errCorrupt
	}
	return append(out, floats[f:]...), buf.B, nil
}
