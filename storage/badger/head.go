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
	lastAppend int64       // unix nanoseconds of the last append, for idleness
	// prevApp is the appender of the histogram chunk sealed for its size
	// just before the head was cut, until the head's first append: the
	// histogram appender compares the new chunk's first sample with it to
	// set the chunk's counter reset header, as Prometheus' head does.
	prevApp chunkenc.Appender
}

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
	enc        byte   // encXOR, encPacked, encHistogram or encFloatHistogram
	data       []byte // chunk bytes in that encoding
}

// sample is one sample of any kind: a float (h and fh nil), an integer
// histogram (h) or a float histogram (fh). The histograms are the store's
// own: nothing else holds them, and the chunk appenders may rewrite their
// spans and buckets when they recode a chunk.
type sample struct {
	t  int64
	v  float64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

// enc is the chunk encoding that holds the sample's kind.
func (s sample) enc() byte {
	switch {
	case s.h != nil:
		return encHistogram
	case s.fh != nil:
		return encFloatHistogram
	}
	return encXOR
}

// sameSample reports whether two samples are the same kind and the same
// bits (so a re-sent StaleNaN or NaN counts as a duplicate, -0 differs from
// 0, and two histogram stale markers are the same whatever their buckets).
func sameSample(a, b sample) bool {
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
// chunk for histograms.
type headChunk struct {
	chunk      chunkenc.Chunk
	app        chunkenc.Appender
	enc        byte
	mint, maxt int64
	n          int // samples, as chunk.NumSamples() without reading the chunk
}

func newHeadChunk(enc byte) *headChunk {
	var c chunkenc.Chunk
	switch enc {
	case encHistogram:
		c = chunkenc.NewHistogramChunk()
	case encFloatHistogram:
		c = chunkenc.NewFloatHistogramChunk()
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
	case encXOR:
		samples, err := decodeChunk(nil, data)
		if err != nil {
			return nil, nil, err
		}
		h := newHeadChunk(encXOR)
		for _, smp := range samples {
			h.append(smp.t, smp.v)
		}
		return h, nil, nil
	case encHistogram, encFloatHistogram:
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
		if b := h.chunk.Bytes(); len(cut) == 0 && len(b) > histogramFlagPos && len(data) > histogramFlagPos {
			hdr := data[histogramFlagPos] & chunkenc.CounterResetHeaderMask
			b[histogramFlagPos] = b[histogramFlagPos]&^chunkenc.CounterResetHeaderMask | hdr
		}
		return h, cut, nil
	}
	return nil, nil, fmt.Errorf("head chunk encoding %#x: %w", enc, errCorrupt)
}

// histogramFlagPos is where a histogram chunk keeps its counter reset
// header (chunkenc's own constant is not exported).
const histogramFlagPos = 2

func (h *headChunk) numSamples() int { return h.n }

// append adds a float to an XOR head.
func (h *headChunk) append(t int64, v float64) {
	h.app.Append(0, t, v)
	h.n++
	h.mint = min(h.mint, t)
	h.maxt = t
}

// add appends smp, of the head's kind and newer than its samples. A
// histogram the chunk cannot take (a counter reset, or a change of schema
// or zero threshold) makes the appender start a new chunk: add then returns
// the old one, sealed, and the head goes on in the new one. A histogram
// with new buckets makes it recode the chunk, which stays the head's.
// prev is the appender of the chunk before the head, or nil.
func (h *headChunk) add(smp sample, prev chunkenc.Appender) (sealed *memChunk) {
	var c chunkenc.Chunk
	var recoded bool
	var app chunkenc.Appender
	switch h.enc {
	case encHistogram:
		c, recoded, app, _ = h.app.AppendHistogram(prev, 0, smp.t, smp.h, false) // cannot fail unless appendOnly
	case encFloatHistogram:
		c, recoded, app, _ = h.app.AppendFloatHistogram(prev, 0, smp.t, smp.fh, false)
	default:
		h.append(smp.t, smp.v)
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
	return h.enc != encXOR && h.n >= chunkenc.MinSamplesPerHistogramChunk && len(h.chunk.Bytes()) >= maxHistogramChunkBytes
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

// decodeChunk appends the samples of an XOR chunk to dst.
func decodeChunk(dst []sample, data []byte) ([]sample, error) {
	c := chunkenc.NewXORChunk()
	c.Reset(data)
	it := c.Iterator(nil)
	for it.Next() == chunkenc.ValFloat {
		t, v := it.At()
		dst = append(dst, sample{t: t, v: v})
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
	default:
		return dst, fmt.Errorf("chunk encoding %#x: %w", enc, errCorrupt)
	}
	for {
		switch it.Next() {
		case chunkenc.ValHistogram:
			t, h := it.AtHistogram(nil)
			dst = append(dst, sample{t: t, h: h})
		case chunkenc.ValFloatHistogram:
			t, fh := it.AtFloatHistogram(nil)
			dst = append(dst, sample{t: t, fh: fh})
		default:
			return dst, it.Err()
		}
	}
}

// chunkWriter cuts sorted samples into chunks as the head would: at most n
// samples (or maxHistogramChunkBytes) each, a new chunk at every change of
// kind and wherever a histogram appender asks for one.
type chunkWriter struct {
	n    int
	out  []memChunk
	cur  *headChunk
	prev chunkenc.Appender // appender of the last chunk cut for its size
}

func (w *chunkWriter) add(smp sample) {
	enc := smp.enc()
	if w.cur != nil && (w.cur.enc != enc || w.cur.full(w.n)) {
		w.prev = nil
		if w.cur.enc == enc {
			w.prev = w.cur.app
		}
		w.out = append(w.out, w.cur.seal())
		w.cur = nil
	}
	if w.cur == nil {
		w.cur = newHeadChunk(enc)
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
	if h != nil && h.enc != enc && (h.numSamples() == 0 || t > h.maxt) {
		if h.numSamples() > 0 {
			s.sealLocked()
			res = sealed
		}
		s.head, s.prevApp, h = nil, nil, nil
	}
	if h == nil {
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
	case enc == encXOR:
		h.append(t, smp.v)
	default:
		if old := h.add(smp, s.prevApp); old != nil {
			s.pushSealedLocked(*old)
			res = sealed
		}
		s.prevApp = nil
	}
	if h := s.head; h.full(chunkSamples) {
		if h.enc != encXOR {
			s.prevApp = h.app
		}
		s.sealLocked()
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
	h := s.head
	if h == nil || h.numSamples() == 0 {
		return
	}
	s.pushSealedLocked(h.seal())
	s.head = nil
}
