package badger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
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
// its kind). Records from before histograms end after the floats.
//
//	tenant(4) nseries(uvarint) [series(uvarint) labels]...
//	nfloats(uvarint) [series(uvarint) t(varint) v(8)]...
//	[nhistograms(uvarint) [position(uvarint) series(uvarint) t(varint) kind(1) histogram]...]
//
// kind is encHistogram or encFloatHistogram; the histogram is encoded as
// Prometheus' own WAL encodes it (record.EncodeHistogram and
// record.EncodeFloatHistogram), every field bit-exact.
type walSeries struct {
	id   uint64
	lset labels.Labels
}

type walSample struct {
	id uint64
	sample
}

func appendCommitRecord(b []byte, tenant uint32, series []walSeries, samples []walSample) []byte {
	b = binary.BigEndian.AppendUint32(b, tenant)
	b = binary.AppendUvarint(b, uint64(len(series)))
	for _, s := range series {
		b = binary.AppendUvarint(b, s.id)
		b = appendLabels(b, s.lset)
	}
	nh := 0
	for _, s := range samples {
		if s.h != nil || s.fh != nil {
			nh++
		}
	}
	b = binary.AppendUvarint(b, uint64(len(samples)-nh))
	for _, s := range samples {
		if s.h != nil || s.fh != nil {
			continue
		}
		b = binary.AppendUvarint(b, s.id)
		b = binary.AppendVarint(b, s.t)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.v))
	}
	if nh == 0 {
		return b
	}
	b = binary.AppendUvarint(b, uint64(nh))
	buf := encoding.Encbuf{B: b}
	for i, s := range samples {
		if s.h == nil && s.fh == nil {
			continue
		}
		buf.PutUvarint(i)
		buf.PutUvarint64(s.id)
		buf.PutVarint64(s.t)
		if s.h != nil {
			buf.PutByte(encHistogram)
			record.EncodeHistogram(&buf, s.h)
		} else {
			buf.PutByte(encFloatHistogram)
			record.EncodeFloatHistogram(&buf, s.fh)
		}
	}
	return buf.B
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
		samples, d.err = decodeHistograms(d.b, samples)
	}
	if d.err != nil {
		return 0, nil, nil, fmt.Errorf("decode commit record: %w", d.err)
	}
	return tenant, series, samples, nil
}

// decodeHistograms decodes the histogram section of a commit record and
// interleaves its samples with the floats, at their positions.
func decodeHistograms(b []byte, floats []walSample) (out []walSample, err error) {
	defer func() {
		// record's decoders trust their lengths; the record's checksum
		// passed, so only a bug gets here.
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("histograms: %v: %w", r, errCorrupt)
		}
	}()
	buf := encoding.Decbuf{B: b}
	nh := buf.Uvarint64()
	if buf.Err() != nil || nh > uint64(len(b)) {
		return nil, errCorrupt
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
			return nil, errCorrupt
		}
		if buf.Err() != nil || pos < uint64(len(out)) || pos >= total {
			return nil, errCorrupt
		}
		for uint64(len(out)) < pos {
			if f == len(floats) {
				return nil, errCorrupt
			}
			out = append(out, floats[f])
			f++
		}
		out = append(out, s)
	}
	if buf.Err() != nil || buf.Len() != 0 {
		return nil, errCorrupt
	}
	return append(out, floats[f:]...), nil
}
