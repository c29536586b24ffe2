package remotewrite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/golang/snappy"
)

// Label is one name/value pair of a series.
//
// Strings produced by a Decoder point into the decoder's buffer: they are
// valid until the decoder's next Decode or Unmarshal call. Copy them (as
// labels.ScratchBuilder.Labels does) to keep them longer.
type Label struct {
	Name, Value string
}

// Sample is one float sample: a value at a timestamp in milliseconds.
type Sample struct {
	Value     float64
	Timestamp int64
	// StartTimestamp is when the counter the sample belongs to started
	// counting, in milliseconds; 0 when unknown. Only remote write 2.0
	// carries it.
	StartTimestamp int64
}

// TimeSeries is one decoded prometheus.TimeSeries or
// io.prometheus.write.v2.TimeSeries, with its float samples, native
// histogram samples, exemplars and (2.0) metadata.
type TimeSeries struct {
	Labels     []Label
	Samples    []Sample
	Histograms []Histogram
	Exemplars  []Exemplar
	// Metadata is the series' metadata in remote write 2.0 (the type,
	// help and unit of its metric family), nil when it sent none or only
	// zero fields; nil in 1.0, whose metadata is WriteRequest.Metadata.
	Metadata *Metadata
	// CreatedTimestamp is the series' created_timestamp (field 6), sent
	// by remote write 2.0 senders older than the 2.0-rc.4 spec, which
	// moved it to Sample.StartTimestamp; 0 when absent.
	CreatedTimestamp int64

	// Offsets into the decoder's arenas while decoding: 32 bits keep
	// the series small (the arenas hold far fewer than 2^31 entries:
	// DecodeLimits.MaxBytesPerByte bounds them).
	labelsStart, samplesStart int32
	histStart, exStart        int32
	refsStart                 int32 // remote write 2.0: offset into DecoderV2.refs while decoding
	// rawStart and rawEnd delimit the series' Label fields in the request
	// Decoder.Unmarshal decoded (remote write 1.0), when they follow one
	// another: the labels as sent, which the series cache keys (Decoder.
	// RawLabels). Both 0 otherwise.
	rawStart, rawEnd int32
	// deferred is set when the decoder left the labels, all next to one
	// another, unparsed (Decoder.deferLabels): Decoder.ParseLabels
	// parses them; Labels is empty until then.
	deferred bool
	// validUTF8 is set when the decoder found every label name and value
	// valid UTF-8 (2.0: every symbol of the request), for Validator to
	// skip that check. The zero value has it checked.
	validUTF8 bool
}

// StartTimestamp returns the start timestamp st of a sample of ts: its
// own, or else the series' created timestamp.
func (ts *TimeSeries) StartTimestamp(st int64) int64 {
	if st != 0 {
		return st
	}
	return ts.CreatedTimestamp
}

// WriteRequest is one decoded prometheus.WriteRequest (remote write 1.0).
type WriteRequest struct {
	Timeseries []TimeSeries
	Metadata   []Metadata
}

// Samples returns how many float samples and native histogram samples r
// holds.
func (r *WriteRequest) Samples() (floats, histograms int) {
	return countSamples(r.Timeseries)
}

func countSamples(series []TimeSeries) (floats, histograms int) {
	for i := range series {
		floats += len(series[i].Samples)
		histograms += len(series[i].Histograms)
	}
	return floats, histograms
}

// Errors the decoder returns, wrapped with the position of the fault.
var (
	// ErrMalformed means the request is not a valid snappy block or
	// prometheus.WriteRequest (io.prometheus.write.v2.Request) protobuf.
	ErrMalformed = errors.New("malformed remote write request")
	// ErrTooLarge means the request decompresses to more than allowed.
	ErrTooLarge = errors.New("decompressed remote write request too large")
	// ErrEmpty means a strict decoder found an empty structure: a series
	// without labels, a label or sample message without any field. It
	// comes wrapped with ErrMalformed.
	ErrEmpty = errors.New("empty structure")
	// ErrWrongMessage means a strict decoder found the other protocol's
	// message: a remote write 1.0 body sent as 2.0 or the reverse. It
	// comes wrapped with ErrMalformed.
	ErrWrongMessage = errors.New("not the message of the negotiated protocol")
)

// DecodeLimits bound what one request may decode to, so that the decoded
// structures (136 bytes a series, 32 a label, 24 a sample, 312 a native
// histogram and 8 a bucket, 48 an exemplar, whatever their size on the
// wire) stay proportional to what a sender may legitimately
// send. A zero count is no limit; the zero DecodeLimits decodes exactly
// what the reference decoders (prompb, writev2) decode.
type DecodeLimits struct {
	MaxSeries  int // series in the request
	MaxLabels  int // labels of all its series; a 2.0 request may also hold twice as many symbols
	MaxSamples int // float and histogram samples of all its series
	// MaxBuckets bounds each native histogram: each of its repeated
	// fields (positive or negative spans, deltas or counts, custom
	// values) holds at most this many.
	MaxBuckets int
	// MaxBytesPerByte bounds the decoded structures of a request to this
	// many bytes per byte of the decompressed request, whatever its
	// counts: empty or tiny series, labels and samples refused that way
	// decode to much more than they weigh. Real requests decode to 1 to
	// 5 times their size in 1.0 (label strings point into the body), to
	// 5 to 10 times in 2.0 (a label is two references of a byte or two).
	MaxBytesPerByte int
	// Strict refuses, as malformed, what no sender sends but the
	// reference decoders take: a series without labels (ErrEmpty), a
	// label or sample message with no field (ErrEmpty), and a non-empty
	// body with nothing of the negotiated message in it, or in 2.0 with
	// the fields 1 to 3 that io.prometheus.write.v2.Request reserves for
	// 1.0's (ErrWrongMessage).
	Strict bool
}

// TooManyError is a request holding more series, labels, symbols or
// samples, or decoding to more bytes, than its DecodeLimits allow.
type TooManyError struct {
	What  string // "series", "labels", "symbols", "samples", "buckets" or "bytes"
	Limit int
}

func (e *TooManyError) Error() string {
	switch {
	case e.What == "bytes":
		return fmt.Sprintf("remote write request decodes to more than %d bytes of series, labels and samples, "+
			"too many for its size: it is mostly empty or tiny structures", e.Limit)
	case e.What == "buckets":
		return fmt.Sprintf("remote write request holds a native histogram of more than %d spans, buckets or custom values", e.Limit)
	}
	return fmt.Sprintf("remote write request holds more than %d %s", e.Limit, e.What)
}

// Sizes of the decoded structures, charged to DecodeLimits.MaxBytesPerByte.
const (
	seriesSize = int(unsafe.Sizeof(TimeSeries{}))
	labelSize  = int(unsafe.Sizeof(Label{}))
	sampleSize = int(unsafe.Sizeof(Sample{}))
	symbolSize = int(unsafe.Sizeof(""))
	// A 2.0 label reference takes 4 bytes, and half a Label once resolved.
	refSize = int(unsafe.Sizeof(uint32(0))) + labelSize/2
)

// caps are the limits of a DecodeLimits for one request, math.MaxInt for
// none, and what is left of its byte budget.
type caps struct {
	series, labels, samples, buckets int
	room, bytes                      int // bytes left to decode into, of bytes
	nsamples                         int // float and histogram samples decoded
}

func (l DecodeLimits) caps(size int) caps {
	c := func(n int) int {
		if n <= 0 {
			return math.MaxInt
		}
		return n
	}
	b := math.MaxInt
	if l.MaxBytesPerByte > 0 && size < math.MaxInt/l.MaxBytesPerByte {
		// A floor, so that tiny requests (one series of one sample) pass.
		b = max(size*l.MaxBytesPerByte, 4<<10)
	}
	return caps{series: c(l.MaxSeries), labels: c(l.MaxLabels), samples: c(l.MaxSamples), buckets: c(l.MaxBuckets), room: b, bytes: b}
}

// take charges n bytes of decoded structure to the budget.
func (c *caps) take(n int) error {
	if c.room -= n; c.room < 0 {
		return tooMany("bytes", c.bytes)
	}
	return nil
}

// used is how many bytes of decoded structure the request took.
func (c *caps) used() int { return c.bytes - c.room }

func tooMany(what string, limit int) error { return &TooManyError{What: what, Limit: limit} }

func empty(msg string, off int) error {
	return fmt.Errorf("%w: %w: %s at byte %d", ErrMalformed, ErrEmpty, msg, off)
}

// Decoder decodes snappy-compressed remote write 1.0 requests, reusing its
// buffers from one request to the next: in steady state it allocates
// nothing. It is not safe for concurrent use; keep one per goroutine, or in
// a sync.Pool.
//
// It accepts exactly what github.com/prometheus/prometheus/prompb's
// WriteRequest.Unmarshal accepts (including its leniencies: varints longer
// than needed, field numbers truncated to 32 bits), and decodes all of
// it: series, samples, native histograms, exemplars and metadata.
type Decoder struct {
	// Limits bound each request; the zero value decodes like prompb.
	Limits DecodeLimits

	buf  []byte // the decompressed request
	data []byte // the request last unmarshalled (the series' raw labels are in it)
	// deferLabels leaves the labels of a series that are all next to one
	// another unparsed (TimeSeries.deferred), counted and charged to the
	// limits as labels (empty-valued ones too), for ParseLabels: the series
	// cache finds most series by those bytes and never needs them.
	deferLabels bool
	nDeferred   int // labels left unparsed in the request
	req         WriteRequest
	labels      []Label
	samples     []Sample
	hist        histArenas
	ex          []Exemplar
	exStarts    []int   // where each exemplar's labels start in exLabels
	exLabels    []Label // the exemplars' labels
	caps        caps    // of Limits, for the request being decoded
}

// DecodedBytes is how many bytes of decoded structures (series, labels,
// samples) the last request took, as DecodeLimits.MaxBytesPerByte counts
// them.
func (d *Decoder) DecodedBytes() int { return d.caps.used() }

// Trim drops the buffers that grew beyond maxBytes each, so that a
// pooled decoder does not keep the memory of its largest request.
func (d *Decoder) Trim(maxBytes int) {
	trim(&d.buf, maxBytes)
	trim(&d.req.Timeseries, maxBytes)
	trim(&d.labels, maxBytes)
	trim(&d.samples, maxBytes)
	trim(&d.req.Metadata, maxBytes)
	d.hist.trim(maxBytes)
	trim(&d.ex, maxBytes)
	trim(&d.exStarts, maxBytes)
	trim(&d.exLabels, maxBytes)
}

// trim sets *s to nil when its capacity holds more than maxBytes.
func trim[T any](s *[]T, maxBytes int) {
	if uintptr(cap(*s))*unsafe.Sizeof(*new(T)) > uintptr(maxBytes) {
		*s = nil
	}
}

// decodedLen returns the size compressed decompresses to, without
// decompressing it.
func decodedLen(compressed []byte) (int, error) {
	n, err := snappy.DecodedLen(compressed)
	if err != nil {
		return 0, fmt.Errorf("%w: snappy: %w", ErrMalformed, err)
	}
	return n, nil
}

// Decode decompresses a snappy block of at most maxDecompressed bytes and
// decodes the prometheus.WriteRequest in it. The result, and the strings in
// it, are valid until the next call on d.
func (d *Decoder) Decode(compressed []byte, maxDecompressed int) (*WriteRequest, error) {
	buf, err := decompress(d.buf, compressed, maxDecompressed)
	if err != nil {
		return nil, err
	}
	d.buf = buf
	return d.Unmarshal(d.buf)
}

// RawLabels returns the Label fields of ts, a series of the request d
// decoded last, as they were sent, or nil when they were not all next to
// one another in the request. Valid until d decodes another request.
func (d *Decoder) RawLabels(ts *TimeSeries) []byte {
	if ts.rawEnd <= ts.rawStart || int(ts.rawEnd) > len(d.data) {
		return nil
	}
	return d.data[ts.rawStart:ts.rawEnd]
}

// decompress decompresses a snappy block of at most maxDecompressed bytes
// into buf's memory, growing it if needed.
func decompress(buf, compressed []byte, maxDecompressed int) ([]byte, error) {
	n, err := decodedLen(compressed)
	if err != nil {
		return buf, err
	}
	if n > maxDecompressed {
		return buf, fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrTooLarge, n, maxDecompressed)
	}
	if n <= snappyAsmMax {
		out, err := snappy.Decode(buf[:cap(buf)], compressed)
		if err != nil {
			return buf, fmt.Errorf("%w: snappy: %w", ErrMalformed, err)
		}
		return out, nil
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	_, header := binary.Uvarint(compressed) // valid: decodedLen read it
	if err := decodeSnappy(buf, compressed[header:]); err != nil {
		return buf, fmt.Errorf("%w: snappy: %w", ErrMalformed, err)
	}
	return buf, nil
}

// Unmarshal decodes an uncompressed prometheus.WriteRequest. Strings in the
// result point into data; the result is valid until the next call on d and
// while data is not modified.
func (d *Decoder) Unmarshal(data []byte) (*WriteRequest, error) {
	d.req.Timeseries = d.req.Timeseries[:0]
	d.req.Metadata = d.req.Metadata[:0]
	d.labels = d.labels[:0]
	d.samples = d.samples[:0]
	d.hist.reset()
	d.ex, d.exStarts, d.exLabels = d.ex[:0], d.exStarts[:0], d.exLabels[:0]
	d.caps = d.Limits.caps(len(data))
	d.data, d.nDeferred = data, 0
	if err := d.writeRequest(data); err != nil {
		return nil, err
	}
	if d.Limits.Strict && len(data) > 0 && len(d.req.Timeseries) == 0 && len(d.req.Metadata) == 0 {
		return nil, fmt.Errorf("%w: %w: %d bytes without any series or metadata of a prometheus.WriteRequest "+
			"(a remote write 2.0 body is sent with Content-Type proto=%s)", ErrMalformed, ErrWrongMessage, len(data), protoV2)
	}
	// The arenas may have moved while growing: point the series at their
	// final place, capping each slice so in-place edits stay inside it.
	for i := range d.ex {
		d.ex[i].Labels = spanOf(d.exLabels, d.exStarts, i)
	}
	d.hist.finish()
	ts := d.req.Timeseries
	for i := range ts {
		le, se := len(d.labels), len(d.samples)
		if i+1 < len(ts) {
			le, se = int(ts[i+1].labelsStart), int(ts[i+1].samplesStart)
		}
		ts[i].Labels = d.labels[ts[i].labelsStart:le:le]
		ts[i].Samples = d.samples[ts[i].samplesStart:se:se]
	}
	finishSeries(ts, d.hist.hists, d.ex)
	return &d.req, nil
}

// finishSeries points each series at its histograms and exemplars. A
// request of floats alone has none: its series keep their nil slices,
// without another pass over them.
func finishSeries(ts []TimeSeries, hists []Histogram, ex []Exemplar) {
	if len(hists) == 0 && len(ex) == 0 {
		return
	}
	for i := range ts {
		he, ee := len(hists), len(ex)
		if i+1 < len(ts) {
			he, ee = int(ts[i+1].histStart), int(ts[i+1].exStart)
		}
		ts[i].Histograms = sub(hists, int(ts[i].histStart), he)
		ts[i].Exemplars = sub(ex, int(ts[i].exStart), ee)
	}
}

// Wire types of the protobuf encoding.
const (
	wireVarint     = 0
	wireFixed64    = 1
	wireBytes      = 2
	wireStartGroup = 3
	wireEndGroup   = 4
	wireFixed32    = 5
)

// Field numbers, from prompb/remote.proto and prompb/types.proto.
const (
	fieldWriteRequestTimeseries = 1
	fieldWriteRequestMetadata   = 3

	fieldTimeSeriesLabels     = 1
	fieldTimeSeriesSamples    = 2
	fieldTimeSeriesExemplars  = 3
	fieldTimeSeriesHistograms = 4

	fieldLabelName  = 1
	fieldLabelValue = 2

	fieldSampleValue          = 1
	fieldSampleTimestamp      = 2
	fieldSampleStartTimestamp = 3 // remote write 2.0 only
)

func malformed(msg string, off int, args ...any) error {
	return fmt.Errorf("%w: %s at byte %d", ErrMalformed, fmt.Sprintf(msg, args...), off)
}

// uvarint reads a varint at b[i:] the way gogo/protobuf does: at most ten
// bytes, bits beyond 64 dropped.
func uvarint(b []byte, i int) (uint64, int, error) {
	if i < len(b) && b[i] < 0x80 {
		return uint64(b[i]), i + 1, nil
	}
	return uvarintLong(b, i)
}

// uvarintLong is uvarint past its one-byte case.
func uvarintLong(b []byte, i int) (uint64, int, error) {
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if i >= len(b) {
			return 0, 0, malformed("truncated varint", i)
		}
		c := b[i]
		i++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, i, nil
		}
	}
	return 0, 0, malformed("varint longer than 10 bytes", i)
}

// tag reads a field tag at b[i:].
func tag(b []byte, i int) (field int32, wire int, next int, err error) {
	if i < len(b) {
		// A one-byte tag (fields 1 to 15) of a legal wire type.
		if c := b[i]; c < 0x80 && c >= 8 && c&7 != wireEndGroup {
			return int32(c >> 3), int(c & 7), i + 1, nil
		}
	}
	return tagLong(b, i)
}

// tagLong is tag past its one-byte case.
func tagLong(b []byte, i int) (field int32, wire int, next int, err error) {
	v, next, err := uvarint(b, i)
	if err != nil {
		return 0, 0, 0, err
	}
	field, wire = int32(v>>3), int(v&7)
	if wire == wireEndGroup {
		return 0, 0, 0, malformed("end group for non-group", i)
	}
	if field <= 0 {
		return 0, 0, 0, malformed("illegal field number %d", i, field)
	}
	return field, wire, next, nil
}

// lengthDelimited reads the bounds of the contents of field name, whose
// tag starts at b[at] and ends at b[next], after checking it has the
// length-delimited wire type (an embedded message, a string or a packed
// list).
func lengthDelimited(b []byte, name string, wire, at, next int) (start, end int, err error) {
	if wire != wireBytes {
		return 0, 0, wrongWire(name, wire, at)
	}
	n, start, err := uvarint(b, next)
	if err != nil {
		return 0, 0, err
	}
	if n > uint64(len(b)-start) {
		return 0, 0, malformed("length %d past the end of the message", next, n)
	}
	return start, start + int(n), nil
}

// skip returns the end of the field whose tag starts at b[i], as gogo's
// skipTypes does, groups included.
func skip(b []byte, i int) (int, error) {
	depth := 0
	for i < len(b) {
		v, next, err := uvarint(b, i)
		if err != nil {
			return 0, err
		}
		switch wire := int(v & 7); wire {
		case wireVarint:
			_, next, err = uvarint(b, next)
			if err != nil {
				return 0, err
			}
		case wireFixed64:
			next += 8
		case wireBytes:
			_, next, err = lengthDelimited(b, "unknown field", wire, i, next)
			if err != nil {
				return 0, err
			}
		case wireStartGroup:
			depth++
		case wireEndGroup:
			if depth == 0 {
				return 0, malformed("unexpected end of group", i)
			}
			depth--
		case wireFixed32:
			next += 4
		default:
			return 0, malformed("illegal wire type %d", i, wire)
		}
		if next > len(b) {
			return 0, malformed("field past the end of the message", i)
		}
		i = next
		if depth == 0 {
			return i, nil
		}
	}
	return 0, malformed("unterminated group", i)
}

func wrongWire(name string, wire, off int) error {
	return malformed("wire type %d for field %s", off, wire, name)
}

// str returns b[start:end] as a string sharing b's memory.
func str(b []byte, start, end int) string {
	if start == end {
		return ""
	}
	return unsafe.String(&b[start], end-start)
}

func (d *Decoder) writeRequest(b []byte) error {
	for i := 0; i < len(b); {
		field, wire, next, err := tag(b, i)
		if err != nil {
			return err
		}
		switch field {
		case fieldWriteRequestTimeseries:
			start, end, err := lengthDelimited(b, "WriteRequest.timeseries", wire, i, next)
			if err != nil {
				return err
			}
			if len(d.req.Timeseries) == d.caps.series {
				return tooMany("series", d.caps.series)
			}
			if err := d.caps.take(seriesSize); err != nil {
				return err
			}
			ts := extend(&d.req.Timeseries, d.caps.room/seriesSize+1)
			*ts = TimeSeries{
				labelsStart:  int32(len(d.labels)),
				samplesStart: int32(len(d.samples)),
				histStart:    int32(len(d.hist.hists)),
				exStart:      int32(len(d.ex)),
			}
			if err := d.timeSeries(ts, b[:end], start, i); err != nil {
				return err
			}
			i = end
		case fieldWriteRequestMetadata:
			start, end, err := lengthDelimited(b, "WriteRequest.metadata", wire, i, next)
			if err != nil {
				return err
			}
			if err := d.caps.take(metadataSize); err != nil {
				return err
			}
			if err := metricMetadata(push(&d.req.Metadata, d.caps.room/metadataSize+1), b[:end], start); err != nil {
				return err
			}
			i = end
		default:
			if i, err = skip(b, i); err != nil {
				return err
			}
		}
	}
	return nil
}

// timeSeries decodes the TimeSeries in b[i:], whose tag is at b[at], into
// ts. Offsets in errors stay relative to the whole request since b is not
// re-based.
func (d *Decoder) timeSeries(ts *TimeSeries, b []byte, i, at int) error {
	labelFields, deferred, first := 0, 0, i
	// Where the Label fields start and end in b, while they follow one
	// another (rawStart -1 once another field came between two).
	rawStart, rawEnd := -2, 0
	// The labels' strings are inside their Label messages: when these
	// are all ASCII, so are the names and values (a conservative check:
	// a length of 128 or more fails it), which Validator then need not
	// check for UTF-8.
	ascii := true
	for i < len(b) {
		field, wire, next, err := tag(b, i)
		if err != nil {
			return err
		}
		switch field {
		case fieldTimeSeriesLabels:
			start, end, err := lengthDelimited(b, "TimeSeries.labels", wire, i, next)
			if err != nil {
				return err
			}
			if len(d.labels)+d.nDeferred == d.caps.labels {
				return tooMany("labels", d.caps.labels)
			}
			if start == end && d.Limits.Strict {
				return empty("label without name or value", i)
			}
			labelFields++
			switch {
			case rawStart == -2:
				rawStart = i
			case rawStart >= 0 && rawEnd != i:
				rawStart = -1
			}
			rawEnd = end
			if d.deferLabels {
				deferred++
				d.nDeferred++
				i = end
				if err := d.caps.take(labelSize); err != nil {
					return err
				}
				continue
			}
			ascii = ascii && isASCII(b[start:end])
			d.labels = append(d.labels, Label{})
			if err := label(&d.labels[len(d.labels)-1], b[:end], start); err != nil {
				return err
			}
			i = end
			if d.Limits.Strict && d.labels[len(d.labels)-1].Value == "" {
				// A label with an empty value is no label (Prometheus
				// drops them, and so does the Validator): not kept.
				d.labels = d.labels[:len(d.labels)-1]
				continue
			}
			if err := d.caps.take(labelSize); err != nil {
				return err
			}
		case fieldTimeSeriesSamples:
			start, end, err := lengthDelimited(b, "TimeSeries.samples", wire, i, next)
			if err != nil {
				return err
			}
			if err := d.caps.checkSample(start, end, d.Limits.Strict, i); err != nil {
				return err
			}
			d.samples = append(d.samples, Sample{})
			if err := sample(&d.samples[len(d.samples)-1], b[:end], start, false); err != nil {
				return err
			}
			i = end
		case fieldTimeSeriesHistograms:
			start, end, err := lengthDelimited(b, "TimeSeries.histograms", wire, i, next)
			if err != nil {
				return err
			}
			if err := d.caps.countSample(); err != nil {
				return err
			}
			if err := d.hist.histogram(&d.caps, b[:end], start, i, d.Limits.Strict, false); err != nil {
				return err
			}
			i = end
		case fieldTimeSeriesExemplars:
			start, end, err := lengthDelimited(b, "TimeSeries.exemplars", wire, i, next)
			if err != nil {
				return err
			}
			if err := d.exemplar(b[:end], start, i); err != nil {
				return err
			}
			i = end
		default:
			if i, err = skip(b, i); err != nil {
				return err
			}
		}
	}
	if d.Limits.Strict && labelFields == 0 {
		return empty("series without labels", at)
	}
	contiguous := rawStart >= 0 && rawEnd <= math.MaxInt32
	if contiguous {
		ts.rawStart, ts.rawEnd = int32(rawStart), int32(rawEnd)
	}
	switch {
	case deferred == 0:
		ts.validUTF8 = ascii
	case contiguous:
		ts.deferred = true
	default: // apart: parse them now (they are counted and charged)
		d.nDeferred -= deferred
		var err error
		if ts.validUTF8, err = d.labelFields(b, first); err != nil {
			return err
		}
	}
	return nil
}

// labelFields parses the Label fields among the TimeSeries fields of
// b[i:] into d.labels, as timeSeries does but without counting them, and
// reports whether they are all ASCII.
func (d *Decoder) labelFields(b []byte, i int) (ascii bool, err error) {
	ascii = true
	for i < len(b) {
		field, wire, next, err := tag(b, i)
		if err != nil {
			return false, err
		}
		if field != fieldTimeSeriesLabels {
			if i, err = skip(b, i); err != nil {
				return false, err
			}
			continue
		}
		start, end, err := lengthDelimited(b, "TimeSeries.labels", wire, i, next)
		if err != nil {
			return false, err
		}
		ascii = ascii && isASCII(b[start:end])
		d.labels = append(d.labels, Label{})
		if err := label(&d.labels[len(d.labels)-1], b[:end], start); err != nil {
			return false, err
		}
		if d.Limits.Strict && d.labels[len(d.labels)-1].Value == "" {
			d.labels = d.labels[:len(d.labels)-1] // no label, as in timeSeries
		}
		i = end
	}
	return ascii, nil
}

// ReserveLabels makes room in the labels' arena for every label left
// unparsed, before ParseLabels parses some: one allocation at most, and no
// series left pointing into an arena the next one outgrew.
func (d *Decoder) ReserveLabels() {
	d.labels = slices.Grow(d.labels, d.nDeferred)
}

// ParseLabels parses the labels of ts, a series of the request d decoded
// last, if it left them unparsed (deferLabels): Labels is set when it
// returns without an error. An error is the request's, as Decode would
// have returned it.
func (d *Decoder) ParseLabels(ts *TimeSeries) error {
	if !ts.deferred {
		return nil
	}
	start := len(d.labels)
	ascii, err := d.labelFields(d.data[:ts.rawEnd], int(ts.rawStart))
	if err != nil {
		return err
	}
	ts.Labels = d.labels[start:len(d.labels):len(d.labels)]
	ts.validUTF8, ts.deferred = ascii, false
	return nil
}

// isASCII reports whether every byte of b is below 0x80.
func isASCII(b []byte) bool {
	var acc uint64
	for len(b) >= 8 {
		acc |= binary.LittleEndian.Uint64(b)
		b = b[8:]
	}
	for _, c := range b {
		acc |= uint64(c)
	}
	return acc&0x8080808080808080 == 0
}

// checkSample refuses the sample message b[start:end], whose tag starts
// at b[at], when the request already holds its limit of samples, or when
// strict and it is empty (value 0 at 1970-01-01: no sender sends it).
func (c *caps) checkSample(start, end int, strict bool, at int) error {
	if err := c.countSample(); err != nil {
		return err
	}
	if start == end && strict {
		return empty("sample without value or timestamp", at)
	}
	return c.take(sampleSize)
}

// countSample counts one float or histogram sample against the limit.
func (c *caps) countSample() error {
	if c.nsamples == c.samples {
		return tooMany("samples", c.samples)
	}
	c.nsamples++
	return nil
}

// exemplar decodes the prometheus.Exemplar in b[i:], whose tag is at
// b[at]. Its labels go to an arena of their own, so that the series'
// labels stay contiguous.
func (d *Decoder) exemplar(b []byte, i, at int) error {
	if i == len(b) && d.Limits.Strict {
		return empty("exemplar without any field", at)
	}
	if err := d.caps.take(exemplarSize); err != nil {
		return err
	}
	more := d.caps.room/exemplarSize + 1
	e := push(&d.ex, more)
	*push(&d.exStarts, more) = len(d.exLabels)
	for i < len(b) {
		field, wire, next, err := tag(b, i)
		if err != nil {
			return err
		}
		if field == fieldExemplarLabels {
			start, end, err := lengthDelimited(b, "Exemplar.labels", wire, i, next)
			if err != nil {
				return err
			}
			if err := d.caps.take(labelSize); err != nil {
				return err
			}
			if err := label(push(&d.exLabels, d.caps.room/labelSize+1), b[:end], start); err != nil {
				return err
			}
			i = end
			continue
		}
		end, ok, err := exemplarScalar(e, b, field, wire, i, next)
		switch {
		case err != nil:
			return err
		case ok:
			i = end
		default:
			if i, err = skip(b, i); err != nil {
				return err
			}
		}
	}
	return nil
}

// metricMetadata decodes the prometheus.MetricMetadata in b[i:] into m.
func metricMetadata(m *Metadata, b []byte, i int) error {
	for i < len(b) {
		field, wire, next, err := tag(b, i)
		if err != nil {
			return err
		}
		switch field {
		case fieldMetadataType:
			v, end, err := varintField(b, "MetricMetadata.type", wire, i, next)
			if err != nil {
				return err
			}
			m.Type = int32(v)
			i = end
		case fieldMetadataFamilyName, fieldMetadataHelp, fieldMetadataUnit:
			start, end, err := lengthDelimited(b, "MetricMetadata.metric_family_name/help/unit", wire, i, next)
			if err != nil {
				return err
			}
			switch field {
			case fieldMetadataFamilyName:
				m.FamilyName = str(b, start, end)
			case fieldMetadataHelp:
				m.Help = str(b, start, end)
			default:
				m.Unit = str(b, start, end)
			}
			i = end
		default:
			if i, err = skip(b, i); err != nil {
				return err
			}
		}
	}
	return nil
}

func label(l *Label, b []byte, i int) error {
	for i < len(b) {
		// The name or value as senders write them: a one-byte tag and a
		// one-byte length, inside b.
		if c := b[i]; (c == fieldLabelName<<3|wireBytes || c == fieldLabelValue<<3|wireBytes) && i+1 < len(b) && b[i+1] < 0x80 {
			if start, end := i+2, i+2+int(b[i+1]); end <= len(b) {
				if c>>3 == fieldLabelName {
					l.Name = str(b, start, end)
				} else {
					l.Value = str(b, start, end)
				}
				i = end
				continue
			}
		}
		field, wire, next, err := tag(b, i)
		if err != nil {
			return err
		}
		switch field {
		case fieldLabelName, fieldLabelValue:
			start, end, err := lengthDelimited(b, "Label.name/value", wire, i, next)
			if err != nil {
				return err
			}
			if field == fieldLabelName {
				l.Name = str(b, start, end)
			} else {
				l.Value = str(b, start, end)
			}
			i = end
		default:
			if i, err = skip(b, i); err != nil {
				return err
			}
		}
	}
	return nil
}

// sample decodes the Sample in b[i:] into s. The start timestamp (field
// 3) is read only from remote write 2.0 samples (v2); prometheus.Sample has
// no such field.
func sample(s *Sample, b []byte, i int, v2 bool) error {
	for i < len(b) {
		field, wire, next, err := tag(b, i)
		if err != nil {
			return err
		}
		switch field {
		case fieldSampleValue:
			if wire != wireFixed64 {
				return wrongWire("Sample.value", wire, i)
			}
			if len(b)-next < 8 {
				return malformed("truncated double", next)
			}
			s.Value = math.Float64frombits(binary.LittleEndian.Uint64(b[next:]))
			i = next + 8
		case fieldSampleTimestamp:
			if wire != wireVarint {
				return wrongWire("Sample.timestamp", wire, i)
			}
			v, end, err := uvarint(b, next)
			if err != nil {
				return err
			}
			s.Timestamp = int64(v)
			i = end
		case fieldSampleStartTimestamp:
			if !v2 {
				if i, err = skip(b, i); err != nil {
					return err
				}
				continue
			}
			if wire != wireVarint {
				return wrongWire("Sample.start_timestamp", wire, i)
			}
			v, end, err := uvarint(b, next)
			if err != nil {
				return err
			}
			s.StartTimestamp = int64(v)
			i = end
		default:
			if i, err = skip(b, i); err != nil {
				return err
			}
		}
	}
	return nil
}
