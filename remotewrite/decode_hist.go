package remotewrite

import (
	"encoding/binary"
	"math"
	"slices"
	"unsafe"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/metadata"
)

// Histogram is one decoded native histogram sample: a prometheus.Histogram
// or io.prometheus.write.v2.Histogram, field for field. Its slices point
// into the decoder's arenas: valid until the decoder's next Decode or
// Unmarshal call.
//
// An integer histogram (count_int) carries its buckets as deltas, a float
// histogram (count_float) as absolute counts; IntHistogram and
// FloatHistogram read them as prompb's ToIntHistogram and
// ToFloatHistogram do.
type Histogram struct {
	// IsFloat says which of the count oneof was set last: count_float
	// (true) or count_int. CountInt or CountFloat is 0 when unset, as
	// prompb's getters answer.
	IsFloat                        bool
	CountInt                       uint64
	CountFloat                     float64
	ZeroCountInt                   uint64
	ZeroCountFloat                 float64
	Sum                            float64
	Schema                         int32
	ZeroThreshold                  float64
	ResetHint                      int32 // histogram.CounterResetHint
	Timestamp                      int64
	StartTimestamp                 int64 // remote write 2.0 only (field 17); 0 when unknown
	NegativeSpans, PositiveSpans   []histogram.Span
	NegativeDeltas, PositiveDeltas []int64
	NegativeCounts, PositiveCounts []float64
	CustomValues                   []float64
}

// IntHistogram fills dst with h as an integer histogram, sharing h's
// slices (a missing slice stays nil, so that Validate sees an exponential
// histogram without custom values as such).
func (h *Histogram) IntHistogram(dst *histogram.Histogram) {
	*dst = histogram.Histogram{
		CounterResetHint: histogram.CounterResetHint(h.ResetHint),
		Schema:           h.Schema,
		ZeroThreshold:    h.ZeroThreshold,
		ZeroCount:        h.ZeroCountInt,
		Count:            h.CountInt,
		Sum:              h.Sum,
		PositiveSpans:    h.PositiveSpans,
		PositiveBuckets:  h.PositiveDeltas,
		NegativeSpans:    h.NegativeSpans,
		NegativeBuckets:  h.NegativeDeltas,
		CustomValues:     h.CustomValues,
	}
}

// FloatHistogram fills dst with h, a float histogram (IsFloat), sharing
// h's slices.
func (h *Histogram) FloatHistogram(dst *histogram.FloatHistogram) {
	*dst = histogram.FloatHistogram{
		CounterResetHint: histogram.CounterResetHint(h.ResetHint),
		Schema:           h.Schema,
		ZeroThreshold:    h.ZeroThreshold,
		ZeroCount:        h.ZeroCountFloat,
		Count:            h.CountFloat,
		Sum:              h.Sum,
		PositiveSpans:    h.PositiveSpans,
		PositiveBuckets:  h.PositiveCounts,
		NegativeSpans:    h.NegativeSpans,
		NegativeBuckets:  h.NegativeCounts,
		CustomValues:     h.CustomValues,
	}
}

// Exemplar is one decoded prometheus.Exemplar or
// io.prometheus.write.v2.Exemplar, its label references resolved. Its
// labels point into the decoder's arenas.
type Exemplar struct {
	Labels    []Label
	Value     float64
	Timestamp int64
}

// Metadata is one decoded prometheus.MetricMetadata (remote write 1.0,
// FamilyName set) or the io.prometheus.write.v2.Metadata of a series, its
// references resolved. Type is the protobuf enum, the same in both.
type Metadata struct {
	Type       int32
	FamilyName string
	Help, Unit string
}

// IsEmpty says whether m carries nothing (2.0: the series sent no
// metadata, or only an unknown type).
func (m Metadata) IsEmpty() bool { return m.Type == 0 && m.Help == "" && m.Unit == "" }

// MetricType returns m's type as Prometheus names it; unknown for an
// unspecified or unknown enum value.
func (m Metadata) MetricType() model.MetricType {
	switch m.Type {
	case 1:
		return model.MetricTypeCounter
	case 2:
		return model.MetricTypeGauge
	case 3:
		return model.MetricTypeHistogram
	case 4:
		return model.MetricTypeGaugeHistogram
	case 5:
		return model.MetricTypeSummary
	case 6:
		return model.MetricTypeInfo
	case 7:
		return model.MetricTypeStateset
	}
	return model.MetricTypeUnknown
}

// ToMetadata returns m as Prometheus' metadata.Metadata.
func (m Metadata) ToMetadata() metadata.Metadata {
	return metadata.Metadata{Type: m.MetricType(), Help: m.Help, Unit: m.Unit}
}

// Sizes charged to DecodeLimits.MaxBytesPerByte for the structures of
// histograms, exemplars and metadata.
const (
	histogramSize = int(unsafe.Sizeof(Histogram{})) + int(unsafe.Sizeof(histStarts{}))
	spanSize      = int(unsafe.Sizeof(histogram.Span{}))
	bucketSize    = 8 // an int64 delta or a float64 count or bound
	exemplarSize  = int(unsafe.Sizeof(Exemplar{})) + int(unsafe.Sizeof(0))
	metadataSize  = int(unsafe.Sizeof(Metadata{}))
)

// The repeated fields of a histogram, each decoded into an arena of its
// own so that a histogram's values are contiguous in it however its
// fields interleave.
const (
	hNegSpans = iota
	hPosSpans
	hNegDeltas
	hPosDeltas
	hNegCounts
	hPosCounts
	hCustom
	hFields
)

// histStarts is where a histogram's values start in each arena.
type histStarts [hFields]int

// histArenas are the arenas of the histograms of one request, shared by
// the 1.0 and 2.0 decoders.
type histArenas struct {
	hists  []Histogram
	starts []histStarts
	spans  [2][]histogram.Span // negative, positive
	deltas [2][]int64
	counts [3][]float64 // negative, positive, custom values
}

func (a *histArenas) reset() {
	a.hists, a.starts = a.hists[:0], a.starts[:0]
	for i := range a.spans {
		a.spans[i] = a.spans[i][:0]
		a.deltas[i] = a.deltas[i][:0]
	}
	for i := range a.counts {
		a.counts[i] = a.counts[i][:0]
	}
}

func (a *histArenas) trim(maxBytes int) {
	trim(&a.hists, maxBytes)
	trim(&a.starts, maxBytes)
	for i := range a.spans {
		trim(&a.spans[i], maxBytes)
		trim(&a.deltas[i], maxBytes)
	}
	for i := range a.counts {
		trim(&a.counts[i], maxBytes)
	}
}

func (a *histArenas) lens() histStarts {
	return histStarts{
		len(a.spans[0]), len(a.spans[1]), len(a.deltas[0]), len(a.deltas[1]),
		len(a.counts[0]), len(a.counts[1]), len(a.counts[2]),
	}
}

// finish points each histogram's slices at their final place in the
// arenas, once they stopped growing; an empty field stays nil, as prompb
// leaves it.
func (a *histArenas) finish() {
	end := a.lens()
	for i := len(a.hists) - 1; i >= 0; i-- {
		s, h := a.starts[i], &a.hists[i]
		h.NegativeSpans = sub(a.spans[0], s[hNegSpans], end[hNegSpans])
		h.PositiveSpans = sub(a.spans[1], s[hPosSpans], end[hPosSpans])
		h.NegativeDeltas = sub(a.deltas[0], s[hNegDeltas], end[hNegDeltas])
		h.PositiveDeltas = sub(a.deltas[1], s[hPosDeltas], end[hPosDeltas])
		h.NegativeCounts = sub(a.counts[0], s[hNegCounts], end[hNegCounts])
		h.PositiveCounts = sub(a.counts[1], s[hPosCounts], end[hPosCounts])
		h.CustomValues = sub(a.counts[2], s[hCustom], end[hCustom])
		end = s
	}
}

// sub is a[start:end], capped, or nil when empty.
func sub[T any](a []T, start, end int) []T {
	if start == end {
		return nil
	}
	return a[start:end:end]
}

// Field numbers of prometheus.Histogram and io.prometheus.write.v2.Histogram
// (the same, 2.0 adds start_timestamp), of BucketSpan, of the exemplars
// and of the metadata.
const (
	fieldHistCountInt       = 1
	fieldHistCountFloat     = 2
	fieldHistSum            = 3
	fieldHistSchema         = 4
	fieldHistZeroThreshold  = 5
	fieldHistZeroCountInt   = 6
	fieldHistZeroCountFloat = 7
	fieldHistNegSpans       = 8
	fieldHistNegDeltas      = 9
	fieldHistNegCounts      = 10
	fieldHistPosSpans       = 11
	fieldHistPosDeltas      = 12
	fieldHistPosCounts      = 13
	fieldHistResetHint      = 14
	fieldHistTimestamp      = 15
	fieldHistCustomValues   = 16
	fieldHistStartTimestamp = 17 // remote write 2.0 only

	fieldSpanOffset = 1
	fieldSpanLength = 2

	fieldExemplarLabels    = 1 // 1.0: Label messages; 2.0: packed label references
	fieldExemplarValue     = 2
	fieldExemplarTimestamp = 3

	fieldMetadataType       = 1
	fieldMetadataFamilyName = 2 // 1.0 only
	fieldMetadataHelp       = 4 // 1.0; 2.0's help_ref is 3
	fieldMetadataUnit       = 5 // 1.0; 2.0's unit_ref is 4
	fieldMetadataV2HelpRef  = 3
	fieldMetadataV2UnitRef  = 4
)

// varintField reads the varint of field name at b[next:], whose tag is at
// b[at].
func varintField(b []byte, name string, wire, at, next int) (uint64, int, error) {
	if wire != wireVarint {
		return 0, 0, wrongWire(name, wire, at)
	}
	return uvarint(b, next)
}

// doubleField reads the double of field name at b[next:].
func doubleField(b []byte, name string, wire, at, next int) (float64, int, error) {
	if wire != wireFixed64 {
		return 0, 0, wrongWire(name, wire, at)
	}
	if len(b)-next < 8 {
		return 0, 0, malformed("truncated double", next)
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(b[next:])), next + 8, nil
}

func zigzag64(v uint64) int64 { return int64(v>>1) ^ -int64(v&1) }
func zigzag32(v uint64) int32 { u := uint32(v); return int32(u>>1) ^ -int32(u&1) }

// histogram decodes the Histogram in b[i:], whose tag is at b[at], into a
// new histogram of a, charging c. v2 reads start_timestamp. c.buckets
// bounds each of its repeated fields (spans, deltas, counts and custom
// values of either side).
func (a *histArenas) histogram(c *caps, b []byte, i, at int, strict, v2 bool) error {
	if i == len(b) && strict {
		return empty("histogram without any field", at)
	}
	if err := c.take(histogramSize); err != nil {
		return err
	}
	more := c.room/histogramSize + 1
	h := push(&a.hists, more)
	start := a.lens()
	*push(&a.starts, more) = start
	// full refuses one more value of field f, of which the arena holds
	// n, beyond c.buckets, and charges it.
	full := func(f, n int) error {
		if n-start[f] >= c.buckets {
			return tooMany("buckets", c.buckets)
		}
		return c.take(bucketSize)
	}
	for i < len(b) {
		field, wire, next, err := tag(b, i)
		if err != nil {
			return err
		}
		var v uint64
		switch field {
		case fieldHistCountInt:
			if v, i, err = varintField(b, "Histogram.count_int", wire, i, next); err != nil {
				return err
			}
			h.IsFloat, h.CountInt, h.CountFloat = false, v, 0
		case fieldHistCountFloat:
			var f float64
			if f, i, err = doubleField(b, "Histogram.count_float", wire, i, next); err != nil {
				return err
			}
			h.IsFloat, h.CountInt, h.CountFloat = true, 0, f
		case fieldHistSum:
			if h.Sum, i, err = doubleField(b, "Histogram.sum", wire, i, next); err != nil {
				return err
			}
		case fieldHistSchema:
			if v, i, err = varintField(b, "Histogram.schema", wire, i, next); err != nil {
				return err
			}
			h.Schema = zigzag32(v)
		case fieldHistZeroThreshold:
			if h.ZeroThreshold, i, err = doubleField(b, "Histogram.zero_threshold", wire, i, next); err != nil {
				return err
			}
		case fieldHistZeroCountInt:
			if v, i, err = varintField(b, "Histogram.zero_count_int", wire, i, next); err != nil {
				return err
			}
			h.ZeroCountInt, h.ZeroCountFloat = v, 0
		case fieldHistZeroCountFloat:
			var f float64
			if f, i, err = doubleField(b, "Histogram.zero_count_float", wire, i, next); err != nil {
				return err
			}
			h.ZeroCountInt, h.ZeroCountFloat = 0, f
		case fieldHistNegSpans, fieldHistPosSpans:
			side, f := 0, hNegSpans
			if field == fieldHistPosSpans {
				side, f = 1, hPosSpans
			}
			s, end, err := lengthDelimited(b, "Histogram.spans", wire, i, next)
			if err != nil {
				return err
			}
			if err := full(f, len(a.spans[side])); err != nil {
				return err
			}
			a.spans[side] = append(a.spans[side], histogram.Span{})
			if err := span(&a.spans[side][len(a.spans[side])-1], b[:end], s); err != nil {
				return err
			}
			i = end
		case fieldHistNegDeltas, fieldHistPosDeltas:
			side, f := 0, hNegDeltas
			if field == fieldHistPosDeltas {
				side, f = 1, hPosDeltas
			}
			if wire == wireBytes {
				// Packed, as senders send them: when the field's length,
				// at most one value a byte, fits the limits, they are
				// charged once, after.
				if s, end, err := lengthDelimited(b, "Histogram.deltas", wire, i, next); err == nil &&
					len(a.deltas[side])-start[f]+(end-s) <= c.buckets && end-s <= c.room/bucketSize {
					n := len(a.deltas[side])
					if i, err = packedDeltas(b, &a.deltas[side], s, end); err != nil {
						return err
					}
					c.room -= (len(a.deltas[side]) - n) * bucketSize
					continue
				}
			}
			if i, err = deltas64(b, &a.deltas[side], "Histogram.deltas", wire, i, next, func(n int) error { return full(f, n) }); err != nil {
				return err
			}
		case fieldHistNegCounts, fieldHistPosCounts, fieldHistCustomValues:
			k, f := 0, hNegCounts
			switch field {
			case fieldHistPosCounts:
				k, f = 1, hPosCounts
			case fieldHistCustomValues:
				k, f = 2, hCustom
			}
			if i, err = doubles(b, &a.counts[k], "Histogram.counts/custom_values", wire, i, next, func(n int) error { return full(f, n) }); err != nil {
				return err
			}
		case fieldHistResetHint:
			if v, i, err = varintField(b, "Histogram.reset_hint", wire, i, next); err != nil {
				return err
			}
			h.ResetHint = int32(v)
		case fieldHistTimestamp:
			if v, i, err = varintField(b, "Histogram.timestamp", wire, i, next); err != nil {
				return err
			}
			h.Timestamp = int64(v)
		case fieldHistStartTimestamp:
			if !v2 {
				if i, err = skip(b, i); err != nil {
					return err
				}
				continue
			}
			if v, i, err = varintField(b, "Histogram.start_timestamp", wire, i, next); err != nil {
				return err
			}
			h.StartTimestamp = int64(v)
		default:
			if i, err = skip(b, i); err != nil {
				return err
			}
		}
	}
	return nil
}

// deltas64 reads a repeated sint64 field, packed or not, into *dst,
// calling room before each value. Like gogo/protobuf, a packed field's
// varints are read while they start inside it, bounded by the message.
func deltas64(b []byte, dst *[]int64, name string, wire, at, next int, room func(n int) error) (int, error) {
	switch wire {
	case wireVarint:
		v, end, err := uvarint(b, next)
		if err != nil {
			return 0, err
		}
		if err := room(len(*dst)); err != nil {
			return 0, err
		}
		*dst = append(*dst, zigzag64(v))
		return end, nil
	case wireBytes:
		start, end, err := lengthDelimited(b, name, wire, at, next)
		if err != nil {
			return 0, err
		}
		i := start
		for i < end {
			v, n, err := uvarint(b, i)
			if err != nil {
				return 0, err
			}
			if err := room(len(*dst)); err != nil {
				return 0, err
			}
			*dst = append(*dst, zigzag64(v))
			i = n
		}
		return i, nil
	}
	return 0, wrongWire(name, wire, at)
}

// packedDeltas reads the packed sint64 values of b[start:end] into *dst,
// as deltas64 does, without per-value limits: at most one value a byte.
// One- and two-byte varints, most bucket deltas, are read inline.
func packedDeltas(b []byte, dst *[]int64, start, end int) (int, error) {
	d := slices.Grow(*dst, end-start)
	p := len(d)
	d = d[:cap(d)]
	i := start
	for i < end {
		var v uint64
		if c := b[i]; c < 0x80 {
			v = uint64(c)
			i++
		} else if i+1 < len(b) && b[i+1] < 0x80 {
			v = uint64(c&0x7f) | uint64(b[i+1])<<7
			i += 2
		} else {
			var err error
			if v, i, err = uvarintLong(b, i); err != nil {
				*dst = d[:p]
				return 0, err
			}
		}
		d[p] = zigzag64(v)
		p++
	}
	*dst = d[:p]
	return i, nil
}

// doubles reads a repeated double field, packed or not, into *dst,
// calling room before each value. Like gogo/protobuf, a packed field's
// doubles are read while they start inside it, bounded by the message.
func doubles(b []byte, dst *[]float64, name string, wire, at, next int, room func(n int) error) (int, error) {
	switch wire {
	case wireFixed64:
		f, end, err := doubleField(b, name, wire, at, next)
		if err != nil {
			return 0, err
		}
		if err := room(len(*dst)); err != nil {
			return 0, err
		}
		*dst = append(*dst, f)
		return end, nil
	case wireBytes:
		start, end, err := lengthDelimited(b, name, wire, at, next)
		if err != nil {
			return 0, err
		}
		i := start
		for i < end {
			if len(b)-i < 8 {
				return 0, malformed("truncated double", i)
			}
			if err := room(len(*dst)); err != nil {
				return 0, err
			}
			*dst = append(*dst, math.Float64frombits(binary.LittleEndian.Uint64(b[i:])))
			i += 8
		}
		return i, nil
	}
	return 0, wrongWire(name, wire, at)
}

func span(s *histogram.Span, b []byte, i int) error {
	for i < len(b) {
		field, wire, next, err := tag(b, i)
		if err != nil {
			return err
		}
		var v uint64
		switch field {
		case fieldSpanOffset:
			if v, i, err = varintField(b, "BucketSpan.offset", wire, i, next); err != nil {
				return err
			}
			s.Offset = zigzag32(v)
		case fieldSpanLength:
			if v, i, err = varintField(b, "BucketSpan.length", wire, i, next); err != nil {
				return err
			}
			s.Length = uint32(v)
		default:
			if i, err = skip(b, i); err != nil {
				return err
			}
		}
	}
	return nil
}

// exemplarScalar reads the value or timestamp of an exemplar, the field
// at b[i:] whose tag is parsed; ok is false for another field.
func exemplarScalar(e *Exemplar, b []byte, field int32, wire, i, next int) (int, bool, error) {
	switch field {
	case fieldExemplarValue:
		v, end, err := doubleField(b, "Exemplar.value", wire, i, next)
		if err != nil {
			return 0, true, err
		}
		e.Value = v
		return end, true, nil
	case fieldExemplarTimestamp:
		v, end, err := varintField(b, "Exemplar.timestamp", wire, i, next)
		if err != nil {
			return 0, true, err
		}
		e.Timestamp = int64(v)
		return end, true, nil
	}
	return 0, false, nil
}

// spanOf returns the values of item i in arena, from starts[i] to the
// next item's start or the end of the arena, capped.
func spanOf[T any](arena []T, starts []int, i int) []T {
	end := len(arena)
	if i+1 < len(starts) {
		end = starts[i+1]
	}
	return arena[starts[i]:end:end]
}

// push appends a zero T to *s and returns it. It grows *s by doubling,
// never by more than limit elements (what the byte budget may still
// take), and straight to that when the next doubling would pass it: the
// arenas of large structures then hold at most their budget, and while
// growing at most twice it, garbage included.
func push[T any](s *[]T, limit int) *T {
	p := extend(s, limit)
	var zero T
	*p = zero
	return p
}

// extend is push without zeroing the new element, which holds what an
// earlier request left there: the caller sets all of it.
func extend[T any](s *[]T, limit int) *T {
	if len(*s) == cap(*s) {
		grow(s, limit)
	}
	*s = (*s)[:len(*s)+1]
	return &(*s)[len(*s)-1]
}

func grow[T any](s *[]T, limit int) {
	most := len(*s) + max(limit, 1)
	n := max(2*cap(*s), 16)
	if most < 2*n { // the doubling after this one would pass the budget: straight to it
		n = most
	}
	grown := make([]T, len(*s), n)
	copy(grown, *s)
	*s = grown
}
