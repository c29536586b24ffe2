package remotewrite

import (
	"fmt"
	"math"
	"unicode/utf8"
	"unsafe"
)

// RequestV2 is one decoded io.prometheus.write.v2.Request (remote write
// 2.0), its series' label references resolved through the symbols table
// into Labels, its exemplars' and metadata's references into strings.
type RequestV2 struct {
	Timeseries []TimeSeries
	Symbols    []string
}

// Samples returns how many float samples and native histogram samples r
// holds.
func (r *RequestV2) Samples() (floats, histograms int) {
	return countSamples(r.Timeseries)
}

// DecoderV2 decodes snappy-compressed remote write 2.0 requests, reusing
// its buffers from one request to the next: in steady state it allocates
// nothing. It is not safe for concurrent use; keep one per goroutine, or in
// a sync.Pool.
//
// It accepts what github.com/prometheus/prometheus/prompb/io/prometheus/write/v2's
// Request.Unmarshal accepts, with the leniencies of gogo/protobuf, and
// also reads the created_timestamp (field 6) of series from senders older
// than the 2.0-rc.4 spec. Unlike it, it refuses requests whose label
// references cannot be resolved: an odd number of references in a series,
// a reference past the symbols table, or a table whose first symbol is not
// the empty string, as the spec requires; and the same of the references
// of exemplars (their labels) and metadata (help and unit).
type DecoderV2 struct {
	// Limits bound each request; the zero value decodes like writev2.
	// A request may hold twice as many symbols as labels (a name and a
	// value each), and as many label references.
	Limits DecodeLimits

	buf      []byte // the decompressed request
	req      RequestV2
	refs     []uint32
	labels   []Label
	samples  []Sample
	hist     histArenas
	ex       []Exemplar
	exStarts []int        // where each exemplar's references start in exRefs
	exRefs   []uint32     // the exemplars' label references
	exLabels []Label      // and the labels they resolve to
	meta     []seriesMeta // one per series
	caps     caps         // of Limits, for the request being decoded
	maxRefs  int          // 2 * caps.labels
}

// seriesMeta is the metadata of a series, and its references.
type seriesMeta struct {
	m          Metadata
	help, unit uint32
}

// DecodedBytes is how many bytes of decoded structures (series, symbols,
// label references and the labels they resolve to, samples) the last
// request took, as DecodeLimits.MaxBytesPerByte counts them.
func (d *DecoderV2) DecodedBytes() int { return d.caps.used() }

// Trim drops the buffers that grew beyond maxBytes each, so that a
// pooled decoder does not keep the memory of its largest request.
func (d *DecoderV2) Trim(maxBytes int) {
	trim(&d.buf, maxBytes)
	trim(&d.req.Timeseries, maxBytes)
	trim(&d.req.Symbols, maxBytes)
	trim(&d.refs, maxBytes)
	trim(&d.labels, maxBytes)
	trim(&d.samples, maxBytes)
	d.hist.trim(maxBytes)
	trim(&d.ex, maxBytes)
	trim(&d.exStarts, maxBytes)
	trim(&d.exRefs, maxBytes)
	trim(&d.exLabels, maxBytes)
	trim(&d.meta, maxBytes)
}

// Field numbers, from prompb/io/prometheus/write/v2/types.proto.
const (
	fieldRequestSymbols    = 4
	fieldRequestTimeseries = 5

	fieldSeriesV2LabelsRefs       = 1
	fieldSeriesV2Samples          = 2
	fieldSeriesV2Histograms       = 3
	fieldSeriesV2Exemplars        = 4
	fieldSeriesV2Metadata         = 5
	fieldSeriesV2CreatedTimestamp = 6 // reserved since 2.0-rc.4; still sent by older senders
)

// metaRefsSize is what a series' seriesMeta costs.
const metaRefsSize = int(unsafe.Sizeof(seriesMeta{}))

// Decode decompresses a snappy block of at most maxDecompressed bytes and
// decodes the io.prometheus.write.v2.Request in it. The result, and the
// strings in it, are valid until the next call on d.
func (d *DecoderV2) Decode(compressed []byte, maxDecompressed int) (*RequestV2, error) {
	buf, err := decompress(d.buf, compressed, maxDecompressed)
	if err != nil {
		return nil, err
	}
	d.buf = buf
	return d.Unmarshal(d.buf)
}

// Unmarshal decodes an uncompressed io.prometheus.write.v2.Request.
// Strings in the result point into data; the result is valid until the
// next call on d and while data is not modified.
func (d *DecoderV2) Unmarshal(data []byte) (*RequestV2, error) {
	d.req.Timeseries = d.req.Timeseries[:0]
	d.req.Symbols = d.req.Symbols[:0]
	d.refs = d.refs[:0]
	d.labels = d.labels[:0]
	d.samples = d.samples[:0]
	d.hist.reset()
	d.ex, d.exStarts, d.exRefs, d.exLabels = d.ex[:0], d.exStarts[:0], d.exRefs[:0], d.exLabels[:0]
	d.meta = d.meta[:0]
	d.caps = d.Limits.caps(len(data))
	d.maxRefs = math.MaxInt
	if d.caps.labels < math.MaxInt/2 {
		d.maxRefs = 2 * d.caps.labels
	}
	if err := d.request(data); err != nil {
		return nil, err
	}
	if d.Limits.Strict && len(data) > 0 && len(d.req.Timeseries) == 0 && len(d.req.Symbols) == 0 {
		return nil, fmt.Errorf("%w: %w: %d bytes without any symbols or series of an io.prometheus.write.v2.Request",
			ErrMalformed, ErrWrongMessage, len(data))
	}
	if err := d.resolve(); err != nil {
		return nil, err
	}
	return &d.req, nil
}

// resolve turns each series' label references into Labels, once the whole
// request (whose symbols may follow its series) is read, and points the
// series at their final place in the arenas, capping each slice so
// in-place edits stay inside it.
func (d *DecoderV2) resolve() error {
	syms := d.req.Symbols
	if len(syms) > 0 && syms[0] != "" {
		return fmt.Errorf("%w: the first symbol is %s, not the empty string", ErrMalformed, quoteShort(syms[0]))
	}
	// Every label name and value is a symbol: checking each symbol once
	// spares Validator checking each label of each series.
	validUTF8 := true
	for _, s := range syms {
		if !utf8.ValidString(s) {
			validUTF8 = false
			break
		}
	}
	ts := d.req.Timeseries
	for i := range ts {
		ts[i].validUTF8 = validUTF8
		re, se := len(d.refs), len(d.samples)
		if i+1 < len(ts) {
			re, se = int(ts[i+1].refsStart), int(ts[i+1].samplesStart)
		}
		refs := d.refs[ts[i].refsStart:re]
		if len(refs)%2 != 0 {
			return fmt.Errorf("%w: series %d has an odd number (%d) of label references", ErrMalformed, i, len(refs))
		}
		start := len(d.labels)
		for j := 0; j < len(refs); j += 2 {
			n, v := refs[j], refs[j+1]
			if uint64(n) >= uint64(len(syms)) || uint64(v) >= uint64(len(syms)) {
				return fmt.Errorf("%w: series %d references symbol %d, past the %d symbols of the request",
					ErrMalformed, i, max(n, v), len(syms))
			}
			d.labels = append(d.labels, Label{Name: syms[n], Value: syms[v]})
		}
		ts[i].labelsStart = int32(start)
		ts[i].Samples = d.samples[ts[i].samplesStart:se:se]
		// References 0 without symbols are no metadata: a request of
		// series without labels, refused when strict.
		m := &d.meta[i]
		if m.help|m.unit != 0 {
			if uint64(m.help) >= uint64(len(syms)) || uint64(m.unit) >= uint64(len(syms)) {
				return fmt.Errorf("%w: the metadata of series %d references symbol %d, past the %d symbols of the request",
					ErrMalformed, i, max(m.help, m.unit), len(syms))
			}
			m.m.Help, m.m.Unit = syms[m.help], syms[m.unit]
		}
		if m.m.Type != 0 || m.m.Help != "" || m.m.Unit != "" {
			ts[i].Metadata = &m.m
		}
	}
	for i := range ts {
		le := len(d.labels)
		if i+1 < len(ts) {
			le = int(ts[i+1].labelsStart)
		}
		ts[i].Labels = d.labels[ts[i].labelsStart:le:le]
	}
	if len(d.ex) == 0 && len(d.hist.hists) == 0 {
		return nil
	}
	// The exemplars' labels, in an arena of their own.
	for i := range d.ex {
		refs := spanOf(d.exRefs, d.exStarts, i)
		if len(refs)%2 != 0 {
			return fmt.Errorf("%w: exemplar %d has an odd number (%d) of label references", ErrMalformed, i, len(refs))
		}
		start := len(d.exLabels)
		for j := 0; j < len(refs); j += 2 {
			n, v := refs[j], refs[j+1]
			if uint64(n) >= uint64(len(syms)) || uint64(v) >= uint64(len(syms)) {
				return fmt.Errorf("%w: exemplar %d references symbol %d, past the %d symbols of the request",
					ErrMalformed, i, max(n, v), len(syms))
			}
			d.exLabels = append(d.exLabels, Label{Name: syms[n], Value: syms[v]})
		}
		d.exStarts[i] = start
	}
	for i := range d.ex {
		d.ex[i].Labels = spanOf(d.exLabels, d.exStarts, i)
	}
	d.hist.finish()
	finishSeries(ts, d.hist.hists, d.ex)
	return nil
}

func (d *DecoderV2) request(b []byte) error {
	for i := 0; i < len(b); {
		field, wire, next, err := tag(b, i)
		if err != nil {
			return err
		}
		switch field {
		case fieldRequestSymbols:
			start, end, err := lengthDelimited(b, "Request.symbols", wire, i, next)
			if err != nil {
				return err
			}
			if len(d.req.Symbols) == d.maxRefs {
				return tooMany("symbols", d.maxRefs)
			}
			if start == end && len(d.req.Symbols) > 0 && d.Limits.Strict {
				// The table starts with the empty string, and is
				// deduplicated: it holds no other.
				return empty("empty symbol after the first", i)
			}
			if err := d.caps.take(symbolSize); err != nil {
				return err
			}
			d.req.Symbols = append(d.req.Symbols, str(b, start, end))
			i = end
		case fieldRequestTimeseries:
			start, end, err := lengthDelimited(b, "Request.timeseries", wire, i, next)
			if err != nil {
				return err
			}
			if len(d.req.Timeseries) == d.caps.series {
				return tooMany("series", d.caps.series)
			}
			if err := d.caps.take(seriesSize + metaRefsSize); err != nil {
				return err
			}
			more := d.caps.room/seriesSize + 1
			ts := extend(&d.req.Timeseries, more)
			*ts = TimeSeries{
				refsStart:    int32(len(d.refs)),
				samplesStart: int32(len(d.samples)),
				histStart:    int32(len(d.hist.hists)),
				exStart:      int32(len(d.ex)),
			}
			*extend(&d.meta, more) = seriesMeta{}
			if err := d.timeSeries(ts, b[:end], start); err != nil {
				return err
			}
			if d.Limits.Strict && len(d.refs) == int(d.req.Timeseries[len(d.req.Timeseries)-1].refsStart) {
				return empty("series without label references", i)
			}
			i = end
		case 1, 2, 3:
			// Reserved by io.prometheus.write.v2.Request so that a 1.0
			// body read as 2.0 is told apart: 1.0's timeseries and
			// metadata are fields 1 and 3.
			if d.Limits.Strict {
				return fmt.Errorf("%w: %w: field %d at byte %d is reserved in io.prometheus.write.v2.Request: "+
					"the body is a remote write 1.0 prometheus.WriteRequest (send it with Content-Type proto=%s)",
					ErrMalformed, ErrWrongMessage, field, i, protoV1)
			}
			if i, err = skip(b, i); err != nil {
				return err
			}
		default:
			if i, err = skip(b, i); err != nil {
				return err
			}
		}
	}
	return nil
}

// timeSeries decodes the TimeSeries in b[i:] into ts. Offsets in errors
// stay relative to the whole request since b is not re-based.
func (d *DecoderV2) timeSeries(ts *TimeSeries, b []byte, i int) error {
	for i < len(b) {
		field, wire, next, err := tag(b, i)
		if err != nil {
			return err
		}
		switch {
		case field == fieldSeriesV2LabelsRefs && wire == wireVarint:
			v, end, err := uvarint(b, next)
			if err != nil {
				return err
			}
			if len(d.refs) == d.maxRefs {
				return tooMany("labels", d.caps.labels)
			}
			if err := d.caps.take(refSize); err != nil {
				return err
			}
			d.refs = append(d.refs, uint32(v))
			i = end
		case field == fieldSeriesV2LabelsRefs && wire == wireBytes:
			start, end, err := lengthDelimited(b, "TimeSeries.labels_refs", wire, i, next)
			if err != nil {
				return err
			}
			// Like gogo/protobuf, read varints while they start inside
			// the packed field, bounded by the series rather than the
			// field, and go on from where the last one ended. It holds at
			// most one reference a byte: when that many fit the limits,
			// they are charged once, after.
			fits := len(d.refs) <= d.maxRefs-(end-start) && (end-start) <= d.caps.room/refSize
			before := len(d.refs)
			for i = start; i < end; {
				v, next, err := uvarint(b, i)
				if err != nil {
					return err
				}
				if !fits {
					if len(d.refs) == d.maxRefs {
						return tooMany("labels", d.caps.labels)
					}
					if err := d.caps.take(refSize); err != nil {
						return err
					}
				}
				d.refs = append(d.refs, uint32(v))
				i = next
			}
			if fits {
				d.caps.room -= (len(d.refs) - before) * refSize
			}
		case field == fieldSeriesV2LabelsRefs:
			return wrongWire("TimeSeries.labels_refs", wire, i)
		case field == fieldSeriesV2Samples:
			start, end, err := lengthDelimited(b, "TimeSeries.samples", wire, i, next)
			if err != nil {
				return err
			}
			if err := d.caps.checkSample(start, end, d.Limits.Strict, i); err != nil {
				return err
			}
			d.samples = append(d.samples, Sample{})
			if err := sample(&d.samples[len(d.samples)-1], b[:end], start, true); err != nil {
				return err
			}
			i = end
		case field == fieldSeriesV2Histograms:
			start, end, err := lengthDelimited(b, "TimeSeries.histograms", wire, i, next)
			if err != nil {
				return err
			}
			if err := d.caps.countSample(); err != nil {
				return err
			}
			if err := d.hist.histogram(&d.caps, b[:end], start, i, d.Limits.Strict, true); err != nil {
				return err
			}
			i = end
		case field == fieldSeriesV2Exemplars:
			start, end, err := lengthDelimited(b, "TimeSeries.exemplars", wire, i, next)
			if err != nil {
				return err
			}
			if err := d.exemplar(b[:end], start, i); err != nil {
				return err
			}
			i = end
		case field == fieldSeriesV2Metadata:
			start, end, err := lengthDelimited(b, "TimeSeries.metadata", wire, i, next)
			if err != nil {
				return err
			}
			// A message field sent twice is merged, as gogo/protobuf does.
			if err := seriesMetadata(&d.meta[len(d.meta)-1], b[:end], start); err != nil {
				return err
			}
			i = end
		case field == fieldSeriesV2CreatedTimestamp && wire == wireVarint:
			v, end, err := uvarint(b, next)
			if err != nil {
				return err
			}
			ts.CreatedTimestamp = int64(v)
			i = end
		default:
			if i, err = skip(b, i); err != nil {
				return err
			}
		}
	}
	return nil
}

// exemplar decodes the io.prometheus.write.v2.Exemplar in b[i:], whose
// tag is at b[at]. Its label references go to an arena of their own,
// resolved with the series'.
func (d *DecoderV2) exemplar(b []byte, i, at int) error {
	if i == len(b) && d.Limits.Strict {
		return empty("exemplar without any field", at)
	}
	if err := d.caps.take(exemplarSize); err != nil {
		return err
	}
	more := d.caps.room/exemplarSize + 1
	e := push(&d.ex, more)
	*push(&d.exStarts, more) = len(d.exRefs)
	for i < len(b) {
		field, wire, next, err := tag(b, i)
		if err != nil {
			return err
		}
		switch {
		case field == fieldExemplarLabels && wire == wireVarint:
			v, end, err := uvarint(b, next)
			if err != nil {
				return err
			}
			if err := d.caps.take(refSize); err != nil {
				return err
			}
			d.exRefs = append(d.exRefs, uint32(v))
			i = end
		case field == fieldExemplarLabels:
			start, end, err := lengthDelimited(b, "Exemplar.labels_refs", wire, i, next)
			if err != nil {
				return err
			}
			// As for a series' references, read while they start inside
			// the field, bounded by the exemplar.
			for i = start; i < end; {
				v, next, err := uvarint(b, i)
				if err != nil {
					return err
				}
				if err := d.caps.take(refSize); err != nil {
					return err
				}
				d.exRefs = append(d.exRefs, uint32(v))
				i = next
			}
		default:
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
	}
	return nil
}

// seriesMetadata decodes the io.prometheus.write.v2.Metadata in b[i:]
// into m: its type, and its references to resolve.
func seriesMetadata(m *seriesMeta, b []byte, i int) error {
	for i < len(b) {
		// Every series of a 2.0 request carries its metadata: the usual
		// one-byte tags and varints, read without the general path.
		if i+1 < len(b) && b[i+1] < 0x80 {
			switch b[i] {
			case fieldMetadataType<<3 | wireVarint:
				m.m.Type, i = int32(b[i+1]), i+2
				continue
			case fieldMetadataV2HelpRef<<3 | wireVarint:
				m.help, i = uint32(b[i+1]), i+2
				continue
			case fieldMetadataV2UnitRef<<3 | wireVarint:
				m.unit, i = uint32(b[i+1]), i+2
				continue
			}
		}
		field, wire, next, err := tag(b, i)
		if err != nil {
			return err
		}
		var v uint64
		switch field {
		case fieldMetadataType:
			if v, i, err = varintField(b, "Metadata.type", wire, i, next); err != nil {
				return err
			}
			m.m.Type = int32(v)
		case fieldMetadataV2HelpRef:
			if v, i, err = varintField(b, "Metadata.help_ref", wire, i, next); err != nil {
				return err
			}
			m.help = uint32(v)
		case fieldMetadataV2UnitRef:
			if v, i, err = varintField(b, "Metadata.unit_ref", wire, i, next); err != nil {
				return err
			}
			m.unit = uint32(v)
		default:
			if i, err = skip(b, i); err != nil {
				return err
			}
		}
	}
	return nil
}
