package remoteread

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/prometheus/prometheus/prompb"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/tenancy"
)

// budget is what one request may still return: the series and samples of
// all its queries together (the tenant's max_series_per_query and
// max_samples_per_query: a remote-read request is one query for the
// tenant's limits, as for its query rate and concurrency), the samples of
// each query of a SAMPLES response (--remote-read.sample-limit, as in
// Prometheus) and the bytes of the response (--remote-read.max-response-bytes).
// 0 means no limit.
type budget struct {
	maxSeries, maxSamples, maxQuerySamples, maxBytes int

	series, samples, querySamples, bytes int // counted so far
}

// startQuery starts counting the samples of the next query.
func (b *budget) startQuery() { b.querySamples = 0 }

// addSeries counts one more series.
func (b *budget) addSeries() error {
	b.series++
	if b.maxSeries > 0 && b.series > b.maxSeries {
		return apierror.Limit(apierror.InvalidArgument, tenancy.PerTenant("--limits.max-series-per-query", "max_series_per_query"),
			"remote-read request exceeded the series limit (%d) over all its queries", b.maxSeries)
	}
	return nil
}

// addSamples counts n more samples of the current query.
func (b *budget) addSamples(n int) error {
	b.samples += n
	b.querySamples += n
	if b.maxQuerySamples > 0 && b.querySamples > b.maxQuerySamples {
		return apierror.Limit(apierror.InvalidArgument, tenancy.Global("--remote-read.sample-limit"), "exceeded sample limit (%d)", b.maxQuerySamples)
	}
	if b.maxSamples > 0 && b.samples > b.maxSamples {
		return apierror.Limit(apierror.InvalidArgument, tenancy.PerTenant("--limits.max-samples-per-query", "max_samples_per_query"),
			"remote-read request exceeded the sample limit (%d) over all its queries", b.maxSamples)
	}
	return nil
}

// addFrame counts a frame of n bytes of a streamed response.
func (b *budget) addFrame(n int) error {
	b.bytes += n
	if b.bytes > b.maxBytes {
		return apierror.Limit(apierror.Execution, maxResponseBytes(), "remote-read stream would exceed %d bytes", b.maxBytes)
	}
	return nil
}

func (b *budget) responseTooLarge() error {
	return apierror.Limit(apierror.Execution, maxResponseBytes(),
		"remote-read response would exceed %d bytes (a streamed response type is not held in memory)", b.maxBytes)
}

func maxResponseBytes() tenancy.Setting { return tenancy.Global("--remote-read.max-response-bytes") }

// sov is the size of the protobuf varint of x.
func sov(x int) int { return (bits.Len64(uint64(x)|1) + 6) / 7 }

// fieldSize is the size of a length-delimited field of a field number
// below 16 whose content is n bytes.
func fieldSize(n int) int { return 1 + sov(n) + n }

// tagLengthDelimited1 is the tag of field 1, length-delimited: the
// results of a ReadResponse and the timeseries of a QueryResult.
const tagLengthDelimited1 = 1<<3 | 2

// samplesEncoder writes a prompb.ReadResponse as its queries' series come,
// exactly as its gogo Marshal would, and refuses to grow it beyond
// maxBytes: a SAMPLES response is one snappy block, so it is held whole,
// but as its encoding only, at most maxBytes (plus a few bytes of length).
//
// Each QueryResult is written after its tag and reserve bytes left for its
// length, which is unknown until its last series; endQuery writes the
// length and moves the content back over the bytes it did not need.
type samplesEncoder struct {
	buf     []byte
	b       *budget
	reserve int // sov(maxBytes): room for any length the budget allows
	base    int // size of the results before the current one
}

func newSamplesEncoder(b *budget) *samplesEncoder {
	return &samplesEncoder{b: b, reserve: sov(b.maxBytes)}
}

// total is the size of the response if the current result had content
// bytes and ended there.
func (e *samplesEncoder) total(content int) int { return e.base + fieldSize(content) }

// content is the size of the current result so far.
func (e *samplesEncoder) content() int { return len(e.buf) - e.base - 1 - e.reserve }

// fits reports whether n more bytes of the current result would keep the
// response within the budget.
func (e *samplesEncoder) fits(n int) bool { return e.total(e.content()+n) <= e.b.maxBytes }

// grow makes room for n more bytes, without growing the buffer beyond the
// most the budget lets it hold.
func (e *samplesEncoder) grow(n int) {
	need := len(e.buf) + n
	if need <= cap(e.buf) {
		return
	}
	c := max(need, min(2*cap(e.buf), e.b.maxBytes+e.reserve), 4096)
	buf := make([]byte, len(e.buf), c)
	copy(buf, e.buf)
	e.buf = buf
}

// beginQuery starts the result of the next query.
func (e *samplesEncoder) beginQuery() error {
	e.base = len(e.buf)
	if e.total(0) > e.b.maxBytes {
		return e.b.responseTooLarge()
	}
	e.grow(1 + e.reserve)
	e.buf = append(e.buf, tagLengthDelimited1)
	e.buf = e.buf[:len(e.buf)+e.reserve] // written by endQuery
	return nil
}

// addSeries appends ts to the current result.
func (e *samplesEncoder) addSeries(ts *prompb.TimeSeries) error {
	n := ts.Size()
	if !e.fits(fieldSize(n)) {
		return e.b.responseTooLarge()
	}
	e.grow(fieldSize(n))
	e.buf = append(e.buf, tagLengthDelimited1)
	e.buf = binary.AppendUvarint(e.buf, uint64(n))
	off := len(e.buf)
	e.buf = e.buf[:off+n]
	if _, err := ts.MarshalToSizedBuffer(e.buf[off:]); err != nil {
		return fmt.Errorf("marshal remote-read series: %w", err)
	}
	return nil
}

// endQuery ends the current result.
func (e *samplesEncoder) endQuery() {
	c := e.content()
	at := e.base + 1
	k := binary.PutUvarint(e.buf[at:at+e.reserve], uint64(c))
	copy(e.buf[at+k:], e.buf[at+e.reserve:])
	e.buf = e.buf[:at+k+c]
}
