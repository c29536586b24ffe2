package badger

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// series is one series of one tenant: its labels, its open head chunk and
// the sealed chunks not yet written to Badger.
type series struct {
	id         uint64
	lset       labels.Labels // without _tenant_id
	nextInHash *series       // collision chain, guarded by tenant.mu

	// minT and maxT bound the samples of the series; they may over-cover
	// (after retention) but never under-cover. Read without s.mu.
	minT, maxT atomic.Int64

	mu         sync.Mutex
	head       *headChunk  // nil when the series is idle
	unflushed  []memChunk  // sealed chunks not yet in Badger, oldest first
	inflight   int         // flushes in progress for unflushed chunks
	diskMaxT   int64       // last timestamp of any sealed chunk (disk or unflushed)
	diskKnown  bool        // diskMaxT has been read from Badger
	diskSeq    uint64      // Store.diskSeq after this series' last Badger write
	snapshot   bool        // an 'H' key may hold a copy of the head
	persisted  bool        // the 'S' record is in Badger
	active     bool        // appended to within the idle timeout
	logged     atomic.Bool // a WAL record defines the series
	removed    atomic.Bool // dropped from the index (retention, deletion): handles to it are stale
	lastAppend int64       // unix nanoseconds of the last append, for idleness
}

// noHead reports whether the series has no samples in a head. (A head
// without samples is the one cut after a histogram chunk sealed for its
// size, waiting for its first sample.) Callers hold s.mu.
func (s *series) noHead() bool { return s.head == nil || s.head.n == 0 }

func newSeries(id uint64, lset labels.Labels) *series {
	s := &series{id: id, lset: lset, diskMaxT: math.MinInt64}
	s.minT.Store(math.MaxInt64)
	s.maxT.Store(math.MinInt64)
	return s
}

func (s *series) extendRange(t int64) {
	for {
		cur := s.minT.Load()
		if t >= cur || s.minT.CompareAndSwap(cur, t) {
			break
		}
	}
	for {
		cur := s.maxT.Load()
		if t <= cur || s.maxT.CompareAndSwap(cur, t) {
			break
		}
	}
}

func (s *series) overlaps(mint, maxt int64) bool {
	return s.minT.Load() <= maxt && s.maxT.Load() >= mint
}

// memChunk is an immutable encoded chunk with its time range.
type memChunk struct {
	mint, maxt int64
	enc        byte   // encXOR, encPacked, encHistogram, encFloatHistogram or a start-timestamp encoding (packed.go)
	data       []byte // chunk bytes in that encoding
}

// sample is one sample of any kind: a float (h and fh nil), an integer
// histogram (h) or a float histogram (fh). The histograms are the store's
// own: nothing else holds them, and the chunk appenders may rewrite their
// spans and buckets when they recode a chunk. st is the sample's start
// timestamp, 0 when unknown.
type sample struct {
	st int64
	t  int64
	v  float64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

// enc is the chunk encoding without start timestamps that holds the
// sample's kind.
func (s sample) enc() byte {
	switch {
	case s.h != nil:
		return encHistogram
	case s.fh != nil:
		return encFloatHistogram
	}
	return encXOR
}

// sameSample reports whether two samples are the same kind, start
// timestamp and bits (so a re-sent StaleNaN or NaN counts as a duplicate,
// -0 differs from 0, and two histogram stale markers are the same whatever
// their buckets).
func sameSample(a, b sample) bool {
	if a.st != b.st {
		return false
	}
	switch {
	case a.h != nil:
		if b.h == nil {
			return false
		}
		if value.IsStaleNaN(a.h.Sum) || value.IsStaleNaN(b.h.Sum) {
			return value.IsStaleNaN(a.h.Sum) && value.IsStaleNaN(b.h.Sum)
		}
		return sameHint(a.h.CounterResetHint, b.h.CounterResetHint) && a.h.Equals(b.h)
	case a.fh != nil:
		if b.fh == nil {
			return false
		}
		if value.IsStaleNaN(a.fh.Sum) || value.IsStaleNaN(b.fh.Sum) {
			return value.IsStaleNaN(a.fh.Sum) && value.IsStaleNaN(b.fh.Sum)
		}
		return sameHint(a.fh.CounterResetHint, b.fh.CounterResetHint) && a.fh.Equals(b.fh)
	}
	return b.h == nil && b.fh == nil && sameValue(a.v, b.v)
}

// sameHint compares counter reset hints as far as a chunk keeps them: a
// gauge stays a gauge, but the other hints are what the chunk's appender
// made of them (a reset it detected, or not), so a replayed or re-sent
// histogram equals the one in the chunk whatever it said.
func sameHint(a, b histogram.CounterResetHint) bool {
	return (a == histogram.GaugeType) == (b == histogram.GaugeType)
}

// maxHistogramChunkBytes is the size at which a histogram chunk is sealed
// once it has chunkenc.MinSamplesPerHistogramChunk samples, whatever
// ChunkSamples says: the upper bound Prometheus' head cuts histogram
// chunks at.
const maxHistogramChunkBytes = 2 * chunkenc.TargetBytesPerHistogramChunk

// headChunk is the open, appendable chunk of an active series, of the kind
// of its samples: XOR for floats, Prometheus' histogram or float histogram
// chunk for histograms; their start-timestamp variants (XOR2, histogram ST,
// float histogram ST) once a sample has a start timestamp (see toST).
//
// A histogram head cut after a chunk sealed for its size starts without a
// chunk, app holding the sealed chunk's appender until the first sample:
// the histogram appender compares the new chunk's first sample with the
// previous chunk's last to set the new chunk's counter reset header, as
// Prometheus' head does. (It is kept there rather than in a field of its
// own so that float series pay no memory for it.)
type headChunk struct {
	chunk      chunkenc.Chunk // nil while n is 0 in a head cut after a sealed histogram chunk
	app        chunkenc.Appender
	enc        byte
	mint, maxt int64
	n          int // samples, as chunk.NumSamples() without reading the chunk
}

// nextHead returns the head that follows h, sealed for its size.
// Its encoding, with start timestamps or not, is chosen by its first
// sample.
func nextHead(h *headChunk) *headChunk {
	if kindOf(h.enc) == encXOR {
		return nil // made on the next sample
	}
	return &headChunk{app: h.app, enc: kindOf(h.enc), mint: math.MaxInt64, maxt: math.MinInt64}
}

// newHeadChunk returns an empty head in enc; a float head without start
// timestamps unless enc says otherwise.
func newHeadChunk(enc byte) *headChunk {
	var c chunkenc.Chunk
	switch enc {
	case encHistogram:
		c = chunkenc.NewHistogramChunk()
	case encFloatHistogram:
		c = chunkenc.NewFloatHistogramChunk()
	case encXOR2:
		c = chunkenc.NewXOR2Chunk()
	case encHistogramST:
		c = chunkenc.NewHistogramSTChunk()
	case encFloatHistogramST:
		c = chunkenc.NewFloatHistogramSTChunk()
	default:
		c, enc = chunkenc.NewXORChunk(), encXOR
	}
	app, _ := c.Appender() // cannot fail on an empty chunk
	return &headChunk{chunk: c, app: app, enc: enc, mint: math.MaxInt64, maxt: math.MinInt64}
}

// headFromData restores a head from its encoded bytes. The samples are
// re-appended to a fresh chunk: an appender cannot continue a bit stream
// restored from bytes, whose last byte's free bits it does not know
// (Prometheus' head cuts a new chunk after loading a snapshot for that
// reason). A histogram chunk keeps its counter reset header. Should the
// histogram appender cut the samples into several chunks (it does not for
// the samples of one chunk), all but the last are returned sealed.
func headFromData(enc byte, data []byte) (*headChunk, []memChunk, error) {
	switch enc {
	case encXOR, encXOR2:
		samples, err := decodeFloatChunk(nil, enc, data)
		if err != nil {
			return nil, nil, err
		}
		h := newHeadChunk(enc)
		for _, smp := range samples {
			h.append(smp.st, smp.t, smp.v)
		}
		return h, nil, nil
	case encHistogram, encFloatHistogram, encHistogramST, encFloatHistogramST:
		samples, err := decodeHistogramChunk(nil, enc, data)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", errCorrupt, err)
		}
		h := newHeadChunk(enc)
		var cut []memChunk
		for _, smp := range samples {
			if old := h.add(smp, nil); old != nil {
				cut = append(cut, *old)
			}
		}
		if len(cut) == 0 {
			copyResetHeader(h.enc, h.chunk.Bytes(), enc, data)
		}
		return h, cut, nil
	}
	return nil, nil, fmt.Errorf("head chunk encoding %#x: %w", enc, errCorrupt)
}

// resetHeaderPos returns where a histogram chunk in enc keeps its counter
// reset header (chunkenc's own constants are not exported): byte 2 in the
// histogram encodings, byte 0 (the top bits of the sample count) in their
// start-timestamp variants.
func resetHeaderPos(enc byte) int {
	if hasST(enc) {
		return 0
	}
	return 2
}

// copyResetHeader sets the counter reset header of the histogram chunk dst
// (in dstEnc) to that of src (in srcEnc).
func copyResetHeader(dstEnc byte, dst []byte, srcEnc byte, src []byte) {
	dp, sp := resetHeaderPos(dstEnc), resetHeaderPos(srcEnc)
	if kindOf(dstEnc) == encXOR || len(dst) <= dp || len(src) <= sp {
		return
	}
	hdr := src[sp] & chunkenc.CounterResetHeaderMask
	dst[dp] = dst[dp]&^chunkenc.CounterResetHeaderMask | hdr
}

// toST returns h re-encoded in the start-timestamp variant of its
// encoding, for a sample with a start timestamp; its samples keep theirs
// (0) and the chunk its counter reset header. Chunks the histogram
// appender cuts (it does not for the samples of one chunk) are returned
// sealed. h is not to be used afterwards.
func (h *headChunk) toST() (*headChunk, []memChunk) {
	data := h.chunk.Bytes()
	samples, err := decodeAny(make([]sample, 0, h.n), h.enc, data)
	if err != nil {
		samples = samples[:0] // the head's own encoding cannot fail to decode
	}
	next := newHeadChunk(withST(h.enc))
	var cut []memChunk
	for _, smp := range samples {
		if old := next.add(smp, nil); old != nil {
			cut = append(cut, *old)
		}
	}
	if len(cut) == 0 {
		copyResetHeader(next.enc, next.chunk.Bytes(), h.enc, data)
	}
	return next, cut
}

func (h *headChunk) numSamples() int { return h.n }

// append adds a float to an XOR or XOR2 head (which alone keeps st).
func (h *headChunk) append(st, t int64, v float64) {
	h.app.Append(st, t, v)
	h.n++
	h.mint = min(h.mint, t)
	h.maxt = t
}

// add appends smp, of the head's kind and newer than its samples. A
// histogram the chunk cannot take (a counter reset, or a change of schema
// or zero threshold) makes the appender start a new chunk: add then returns
// the old one, sealed, and the head goes on in the new one. A histogram
// with new buckets makes it recode the chunk, which stays the head's.
// prev is the appender of the chunk before the head, or nil. A sample with
// a start timestamp goes only to a head in a start-timestamp encoding
// (toST), except to a head still without a chunk, which add makes in one.
func (h *headChunk) add(smp sample, prev chunkenc.Appender) (sealed *memChunk) {
	if h.chunk == nil { // cut after a sealed chunk, whose appender app is
		enc := h.enc
		if smp.st != 0 {
			enc = withST(enc)
		}
		next := newHeadChunk(enc)
		prev, h.chunk, h.app, h.enc = h.app, next.chunk, next.app, next.enc
	}
	var c chunkenc.Chunk
	var recoded bool
	var app chunkenc.Appender
	switch h.enc {
	case encHistogram, encHistogramST:
		c, recoded, app, _ = h.app.AppendHistogram(prev, smp.st, smp.t, smp.h, false) // cannot fail unless appendOnly
	case encFloatHistogram, encFloatHistogramST:
		c, recoded, app, _ = h.app.AppendFloatHistogram(prev, smp.st, smp.t, smp.fh, false)
	default:
		h.append(smp.st, smp.t, smp.v)
		return nil
	}
	if c != nil {
		if !recoded {
			old := h.seal()
			sealed = &old
			h.n, h.mint = 0, smp.t
		}
		h.chunk = c
	}
	h.app = app
	h.n++
	h.mint = min(h.mint, smp.t)
	h.maxt = smp.t
	return sealed
}

// full reports whether the head is to be sealed for its size.
func (h *headChunk) full(chunkSamples int) bool {
	if h.n >= chunkSamples {
		return true
	}
	return kindOf(h.enc) != encXOR && h.n >= chunkenc.MinSamplesPerHistogramChunk && len(h.chunk.Bytes()) >= maxHistogramChunkBytes
}

// seal compacts the head's chunk and returns it; the head is not to be
// appended to afterwards.
func (h *headChunk) seal() memChunk {
	h.chunk.Compact()
	return memChunk{mint: h.mint, maxt: h.maxt, enc: h.enc, data: h.chunk.Bytes()}
}

// bytesCopy returns a copy of the encoded head; the appender mutates the
// last byte in place, so readers never share the live slice.
func (h *headChunk) bytesCopy() []byte {
	return append([]byte(nil), h.chunk.Bytes()...)
}

// decodeFloatChunk appends the samples of an XOR or XOR2 chunk to dst.
func decodeFloatChunk(dst []sample, enc byte, data []byte) ([]sample, error) {
	var it chunkenc.Iterator
	if enc == encXOR2 {
		c := chunkenc.NewXOR2Chunk()
		c.Reset(data)
		it = c.Iterator(nil)
	} else {
		c := chunkenc.NewXORChunk()
		c.Reset(data)
		it = c.Iterator(nil)
	}
	for it.Next() == chunkenc.ValFloat {
		t, v := it.At()
		dst = append(dst, sample{st: it.AtST(), t: t, v: v})
	}
	return dst, it.Err()
}

// decodeHistogramChunk appends the samples of a histogram or float
// histogram chunk to dst, with the counter reset hints the chunk gives
// them.
func decodeHistogramChunk(dst []sample, enc byte, data []byte) ([]sample, error) {
	var it chunkenc.Iterator
	switch enc {
	case encHistogram:
		c := chunkenc.NewHistogramChunk()
		c.Reset(data)
		it = c.Iterator(nil)
	case encFloatHistogram:
		c := chunkenc.NewFloatHistogramChunk()
		c.Reset(data)
		it = c.Iterator(nil)
	case encHistogramST:
		c := chunkenc.NewHistogramSTChunk()
		c.Reset(data)
		it = c.Iterator(nil)
	case encFloatHistogramST:
		c := chunkenc.NewFloatHistogramSTChunk()
		c.Reset(data)
		it = c.Iterator(nil)
	default:
		return dst, fmt.Errorf("chunk encoding %#x: %w", enc, errCorrupt)
	}
	for {
		switch it.Next() {
		case chunkenc.ValHistogram:
			t, h := it.AtHistogram(nil)
			dst = append(dst, sample{st: it.AtST(), t: t, h: h})
		case chunkenc.ValFloatHistogram:
			t, fh := it.AtFloatHistogram(nil)
			dst = append(dst, sample{st: it.AtST(), t: t, fh: fh})
		default:
			return dst, it.Err()
		}
	}
}

// chunkWriter cuts sorted samples into chunks as the head would: at most n
// samples (or maxHistogramChunkBytes) each, a new chunk at every change of
// kind and wherever a histogram appender asks for one. A chunk is in a
// start-timestamp encoding when one of its samples has a start timestamp.
type chunkWriter struct {
	n    int
	out  []memChunk
	cur  *headChunk
	prev chunkenc.Appender // appender of the last chunk cut for its size
}

func (w *chunkWriter) add(smp sample) {
	enc := smp.enc()
	if w.cur != nil && (kindOf(w.cur.enc) != enc || w.cur.full(w.n)) {
		w.prev = nil
		if kindOf(w.cur.enc) == enc {
			w.prev = w.cur.app
		}
		w.out = append(w.out, w.cur.seal())
		w.cur = nil
	}
	if w.cur == nil {
		if smp.st != 0 {
			enc = withST(enc)
		}
		w.cur = newHeadChunk(enc)
	} else if smp.st != 0 && !hasST(w.cur.enc) {
		var cut []memChunk
		w.cur, cut = w.cur.toST()
		w.out = append(w.out, cut...)
	}
	if old := w.cur.add(smp, w.prev); old != nil {
		w.out = append(w.out, *old)
	}
	w.prev = nil
}

// finish returns every chunk, the last one sealed too.
func (w *chunkWriter) finish() []memChunk {
	if w.cur != nil && w.cur.n > 0 {
		w.out = append(w.out, w.cur.seal())
	}
	w.cur = nil
	return w.out
}

// encodeChunks cuts sorted samples into chunks of at most n samples.
func encodeChunks(samples []sample, n int) []memChunk {
	w := chunkWriter{n: n}
	for _, s := range samples {
		w.add(s)
	}
	return w.finish()
}

// mergeSamples merges sorted, duplicate-free newer samples into sorted,
// duplicate-free older ones. At equal timestamps the newer sample wins,
// whatever the kinds.
func mergeSamples(older, newer []sample) []sample {
	out := make([]sample, 0, len(older)+len(newer))
	i, j := 0, 0
	for i < len(older) || j < len(newer) {
		switch {
		case j == len(newer) || i < len(older) && older[i].t < newer[j].t:
			out = append(out, older[i])
			i++
		case i == len(older) || newer[j].t < older[i].t:
			out = append(out, newer[j])
			j++
		default:
			out = append(out, newer[j])
			i++
			j++
		}
	}
	return out
}

// sameValue reports whether two values are the same bits (so a re-sent
// StaleNaN or NaN counts as a duplicate, and -0 differs from 0).
func sameValue(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

// appendResult says what appendLocked did with a sample.
type appendResult uint8

const (
	appended   appendResult = iota
	duplicate               // identical sample already stored: nothing to do
	sealed                  // appended, and a chunk was sealed into unflushed
	outOfOrder              // older than a sealed chunk: merge into sealed chunks
)

// appendLocked adds one sample to the head. Samples newer than every sealed
// chunk go to the head, in order or not (the small head is re-encoded for an
// insert); older ones are reported as outOfOrder for a sealed-chunk merge.
// A sample of another kind than the head's seals the head first, as
// Prometheus' head cuts a chunk when the encoding changes. Callers hold
// s.mu and have loaded diskMaxT.
func (s *series) appendLocked(smp sample, chunkSamples int, now int64) appendResult {
	s.lastAppend = now
	t := smp.t
	if t <= s.diskMaxT {
		return outOfOrder
	}
	res := appended
	h := s.head
	enc := smp.enc()
	if h != nil && kindOf(h.enc) != enc && (h.numSamples() == 0 || t > h.maxt) {
		if h.numSamples() > 0 {
			s.sealLocked()
			res = sealed
		}
		s.head, h = nil, nil
	}
	if h == nil {
		if smp.st != 0 {
			enc = withST(enc)
		}
		h = newHeadChunk(enc)
		s.head = h
	}
	s.extendRange(t)
	switch {
	case h.numSamples() > 0 && t <= h.maxt:
		changed, cut := s.rewriteHeadLocked(smp, chunkSamples)
		if !changed {
			return duplicate
		}
		if cut {
			res = sealed
		}
	case smp.st != 0 && h.numSamples() > 0 && !hasST(h.enc):
		// The first start timestamp of the head: re-encode it in the
		// start-timestamp variant, then append.
		var cut []memChunk
		h, cut = h.toST()
		for _, c := range cut {
			s.pushSealedLocked(c)
			res = sealed
		}
		s.head = h
		if old := h.add(smp, nil); old != nil {
			s.pushSealedLocked(*old)
			res = sealed
		}
	case h.enc == encXOR && smp.st == 0:
		h.append(0, t, smp.v) // the float fast path
	default:
		if old := h.add(smp, nil); old != nil {
			s.pushSealedLocked(*old)
			res = sealed
		}
	}
	if h := s.head; h.full(chunkSamples) {
		s.sealLocked()
		s.head = nextHead(h)
		return sealed
	}
	return res
}

// rewriteHeadLocked inserts or replaces one sample inside the head's range
// by re-encoding the head. It reports whether anything changed (not when
// the identical sample is already there) and whether the re-encoding cut
// chunks, which it seals into unflushed.
func (s *series) rewriteHeadLocked(smp sample, chunkSamples int) (changed, cut bool) {
	old, err := decodeAny(make([]sample, 0, s.head.numSamples()+1), s.head.enc, s.head.chunk.Bytes())
	if err != nil {
		old = old[:0]
	}
	for _, o := range old {
		if o.t == smp.t && sameSample(o, smp) {
			return false, false
		}
	}
	merged := mergeSamples(old, []sample{smp})
	w := chunkWriter{n: chunkSamples} // the caller seals the last chunk when it is full
	for _, m := range merged {
		w.add(m)
	}
	for _, c := range w.out {
		s.pushSealedLocked(c)
	}
	s.head = w.cur
	return true, len(w.out) > 0
}

// pushSealedLocked adds a sealed chunk, newer than every other, to
// unflushed.
func (s *series) pushSealedLocked(c memChunk) {
	s.unflushed = append(s.unflushed, c)
	s.diskMaxT = max(s.diskMaxT, c.maxt)
}

// sealLocked moves the head into unflushed.
func (s *series) sealLocked() {
	if h := s.head; h != nil && h.numSamples() > 0 {
		s.pushSealedLocked(h.seal())
	}
	s.head = nil
}
