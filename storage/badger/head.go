package badger

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"
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
	enc        byte   // encXOR or encPacked
	data       []byte // chunk bytes in that encoding
}

// headChunk is the open, appendable chunk of an active series.
type headChunk struct {
	chunk      *chunkenc.XORChunk
	app        chunkenc.Appender
	mint, maxt int64
	lastV      float64
	n          int // samples, as chunk.NumSamples() without reading the chunk
}

func newHeadChunk() *headChunk {
	c := chunkenc.NewXORChunk()
	app, _ := c.Appender() // cannot fail on an empty chunk
	return &headChunk{chunk: c, app: app, mint: math.MaxInt64, maxt: math.MinInt64}
}

// headFromData restores a head from its encoded bytes. The samples are
// re-appended to a fresh chunk: an XOR appender cannot continue a stream
// restored from bytes, whose last byte's free bits it does not know.
func headFromData(data []byte) (*headChunk, error) {
	samples, err := decodeChunk(nil, data)
	if err != nil {
		return nil, err
	}
	h := newHeadChunk()
	for _, smp := range samples {
		h.append(smp.t, smp.v)
	}
	return h, nil
}

func (h *headChunk) numSamples() int { return h.n }

func (h *headChunk) append(t int64, v float64) {
	h.app.Append(0, t, v)
	h.n++
	h.mint = min(h.mint, t)
	h.maxt, h.lastV = t, v
}

// bytesCopy returns a copy of the encoded head; the appender mutates the
// last byte in place, so readers never share the live slice.
func (h *headChunk) bytesCopy() []byte {
	return append([]byte(nil), h.chunk.Bytes()...)
}

type sample struct {
	t int64
	v float64
}

// decodeChunk appends the samples of an XOR chunk to dst.
func decodeChunk(dst []sample, data []byte) ([]sample, error) {
	c := chunkenc.NewXORChunk()
	c.Reset(data)
	it := c.Iterator(nil)
	for it.Next() == chunkenc.ValFloat {
		t, v := it.At()
		dst = append(dst, sample{t, v})
	}
	return dst, it.Err()
}

// encodeChunks cuts sorted samples into chunks of at most n samples.
func encodeChunks(samples []sample, n int) []memChunk {
	var out []memChunk
	for len(samples) > 0 {
		k := min(n, len(samples))
		c := chunkenc.NewXORChunk()
		app, _ := c.Appender()
		for _, s := range samples[:k] {
			app.Append(0, s.t, s.v)
		}
		c.Compact()
		out = append(out, memChunk{mint: samples[0].t, maxt: samples[k-1].t, enc: encXOR, data: c.Bytes()})
		samples = samples[k:]
	}
	return out
}

// mergeSamples merges sorted, duplicate-free newer samples into sorted,
// duplicate-free older ones. At equal timestamps the newer sample wins.
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

// sameSample reports whether two values are the same bits (so a re-sent
// StaleNaN or NaN counts as a duplicate, and -0 differs from 0).
func sameValue(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

// appendResult says what appendLocked did with a sample.
type appendResult uint8

const (
	appended   appendResult = iota
	duplicate               // identical sample already stored: nothing to do
	sealed                  // appended, and the head was sealed into unflushed
	outOfOrder              // older than a sealed chunk: merge into sealed chunks
)

// appendLocked adds one sample to the head. Samples newer than every sealed
// chunk go to the head, in order or not (the small head is re-encoded for an
// insert); older ones are reported as outOfOrder for a sealed-chunk merge.
// Callers hold s.mu and have loaded diskMaxT.
func (s *series) appendLocked(t int64, v float64, chunkSamples int, now int64) appendResult {
	s.lastAppend = now
	if t <= s.diskMaxT {
		return outOfOrder
	}
	h := s.head
	if h == nil {
		h = newHeadChunk()
		s.head = h
	}
	s.extendRange(t)
	if h.numSamples() == 0 || t > h.maxt {
		h.append(t, v)
	} else if !s.rewriteHeadLocked(t, v) {
		return duplicate
	}
	if h := s.head; h.numSamples() >= chunkSamples {
		s.sealLocked()
		return sealed
	}
	return appended
}

// rewriteHeadLocked inserts or replaces one sample inside the head's range
// by re-encoding the head. It returns false when the identical sample is
// already there.
func (s *series) rewriteHeadLocked(t int64, v float64) bool {
	old, err := decodeChunk(make([]sample, 0, s.head.numSamples()+1), s.head.chunk.Bytes())
	if err != nil {
		old = old[:0]
	}
	for _, o := range old {
		if o.t == t && sameValue(o.v, v) {
			return false
		}
	}
	merged := mergeSamples(old, []sample{{t, v}})
	h := newHeadChunk()
	for _, m := range merged {
		h.append(m.t, m.v)
	}
	s.head = h
	return true
}

// sealLocked moves the head into unflushed.
func (s *series) sealLocked() {
	h := s.head
	if h == nil || h.numSamples() == 0 {
		return
	}
	h.chunk.Compact()
	s.unflushed = append(s.unflushed, memChunk{mint: h.mint, maxt: h.maxt, enc: encXOR, data: h.chunk.Bytes()})
	s.diskMaxT = max(s.diskMaxT, h.maxt)
	s.head = nil
}
