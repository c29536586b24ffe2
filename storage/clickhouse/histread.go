package clickhouse

import (
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/luminate-io/luminate/storage"
)

// mixedIterator iterates a series holding histograms, floats among them
// possibly: each histogram is decoded when asked for, into the caller's
// histogram when it passes one.
type mixedIterator struct {
	storage.FloatIterator // the timestamps, values (a histogram's: the marker) and start timestamps
	hists                 []string
	err                   error
}

func (it *mixedIterator) reset(m *memSeries) {
	it.FloatIterator.Reset(m.ts, m.vals, m.sts)
	it.hists, it.err = m.hists, nil
}

// typ is the kind of the current sample, ValNone when vt is.
func (it *mixedIterator) typ(vt chunkenc.ValueType) chunkenc.ValueType {
	if vt == chunkenc.ValNone || it.err != nil {
		return chunkenc.ValNone
	}
	switch h := it.hists[it.Index()]; {
	case h == "":
		return chunkenc.ValFloat
	case histIsFloat(h):
		return chunkenc.ValFloatHistogram
	default:
		return chunkenc.ValHistogram
	}
}

func (it *mixedIterator) Next() chunkenc.ValueType { return it.typ(it.FloatIterator.Next()) }

func (it *mixedIterator) Seek(t int64) chunkenc.ValueType { return it.typ(it.FloatIterator.Seek(t)) }

func (it *mixedIterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	if h == nil {
		h = &histogram.Histogram{}
	}
	if err := decodeHistogram(it.hists[it.Index()], h); err != nil && it.err == nil {
		it.err = err
	}
	return it.AtT(), h
}

func (it *mixedIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	if fh == nil {
		fh = &histogram.FloatHistogram{}
	}
	enc := it.hists[it.Index()]
	if histIsFloat(enc) {
		if err := decodeFloatHistogram(enc, fh); err != nil && it.err == nil {
			it.err = err
		}
		return it.AtT(), fh
	}
	var h histogram.Histogram
	if err := decodeHistogram(enc, &h); err != nil && it.err == nil {
		it.err = err
	}
	return it.AtT(), h.ToFloat(fh)
}

func (it *mixedIterator) Err() error { return it.err }

// chunkSet is a ChunkSeriesSet over a querier's SeriesSet.
type chunkSet struct{ promstorage.SeriesSet }

func (c *chunkSet) Next() bool {
	return c.Err() == nil && c.SeriesSet.Next()
}

func (c *chunkSet) At() promstorage.ChunkSeries {
	s := c.SeriesSet.At()
	if m, ok := s.(*memSeries); ok && (m.hists != nil || m.sts != nil) {
		return histChunkSeries{m}
	}
	// Floats only without start timestamps: Prometheus' own encoder, as
	// before histograms. (With them, Prometheus' encoder would cut a chunk
	// where the first start timestamp comes.)
	return promstorage.NewSeriesToChunkEncoder(s)
}

func (c *chunkSet) Warnings() annotations.Annotations { return c.SeriesSet.Warnings() }

// Chunks are cut at chunkSamplesMax samples (as Prometheus' encoder
// does), at chunkBytesMax bytes for histograms, and wherever appending
// would change what a sample reads back as: a change of kind, of a
// histogram's layout (schema, zero threshold, spans, custom values: no
// chunk is recoded, so spans read back as written), an explicit counter
// reset, a switch between gauge and counter histograms, a decrease of
// a counter, a sample after a stale marker. What the chunk formats cannot
// hold reads back as in Prometheus: the first histogram of a chunk reads
// with an unknown counter reset hint (its chunk's header says CounterReset
// where it was one), later ones of a counter chunk as not a reset, and a
// stale marker as a histogram holding only the stale sum. A series whose
// range starts with a histogram continuing one before the range has that
// one first in its first chunk (outside the range, as Prometheus' own
// chunks hold samples outside it), so that it reads as continued.
const (
	chunkSamplesMax = 120
	chunkBytesMax   = 1024
)

// histChunkSeries encodes a series holding histograms or start
// timestamps into chunks.
type histChunkSeries struct{ m *memSeries }

func (s histChunkSeries) Labels() labels.Labels { return s.m.lset }

func (s histChunkSeries) Iterator(chunks.Iterator) chunks.Iterator {
	metas, err := encodeChunks(s.m)
	if err != nil {
		return storage.ErrChunkIterator(err)
	}
	return promstorage.NewListChunkSeriesIterator(metas...)
}

func encodeChunks(m *memSeries) ([]chunks.Meta, error) {
	var (
		metas []chunks.Meta
		chk   chunkenc.Chunk
		app   chunkenc.Appender
		kind  chunkenc.ValueType
		prevH *histogram.Histogram
		prevF *histogram.FloatHistogram
	)
	var starts []int // of each chunk, its first sample (-1: prevHist)
	cut := func(enc chunkenc.Chunk, t int64, i int) error {
		var err error
		chk = enc
		if app, err = chk.Appender(); err != nil {
			return err
		}
		metas = append(metas, chunks.Meta{Chunk: chk, MinTime: t, MaxTime: t})
		starts = append(starts, i)
		return nil
	}
	full := func() bool {
		return chk.NumSamples() >= chunkSamplesMax || kind != chunkenc.ValFloat && len(chk.Bytes()) >= chunkBytesMax
	}
	// The histogram before the range first, when there is one: the first
	// histogram of the range then reads back as continuing it (a chunk's
	// first sample reads with an unknown hint), as resolveHints says.
	first := 0
	if m.prevHist != "" {
		first = -1
	}
	for i := first; i < len(m.ts); i++ {
		t, enc, v := m.prevT, m.prevHist, 0.0
		if i >= 0 {
			t, v = m.ts[i], m.vals[i]
			if enc = ""; m.hists != nil {
				enc = m.hists[i]
			}
		}
		switch {
		case enc == "":
			if kind != chunkenc.ValFloat || full() {
				if err := cut(chunkenc.NewXORChunk(), t, i); err != nil {
					return nil, err
				}
				kind = chunkenc.ValFloat
			}
			app.Append(0, t, v)
		case histIsFloat(enc):
			fh := &histogram.FloatHistogram{}
			if err := decodeFloatHistogram(enc, fh); err != nil {
				return nil, err
			}
			fresh := kind != chunkenc.ValFloatHistogram || full() || !sameFloatLayout(prevF, fh) || fh.CounterResetHint == histogram.CounterReset
			if !fresh {
				newChk, recoded, _, err := app.AppendFloatHistogram(nil, 0, t, fh, true)
				fresh = err != nil || newChk != nil || recoded
			}
			if fresh {
				if err := cut(chunkenc.NewFloatHistogramChunk(), t, i); err != nil {
					return nil, err
				}
				kind = chunkenc.ValFloatHistogram
				if _, _, _, err := app.AppendFloatHistogram(nil, 0, t, fh, true); err != nil {
					return nil, err
				}
			}
			prevF = fh
		default:
			h := &histogram.Histogram{}
			if err := decodeHistogram(enc, h); err != nil {
				return nil, err
			}
			fresh := kind != chunkenc.ValHistogram || full() || !sameLayout(prevH, h) || h.CounterResetHint == histogram.CounterReset
			if !fresh {
				newChk, recoded, _, err := app.AppendHistogram(nil, 0, t, h, true)
				fresh = err != nil || newChk != nil || recoded
			}
			if fresh {
				if err := cut(chunkenc.NewHistogramChunk(), t, i); err != nil {
					return nil, err
				}
				kind = chunkenc.ValHistogram
				if _, _, _, err := app.AppendHistogram(nil, 0, t, h, true); err != nil {
					return nil, err
				}
			}
			prevH = h
		}
		metas[len(metas)-1].MaxTime = t
	}
	if m.sts == nil {
		return metas, nil
	}
	// The chunks holding a start timestamp again in the encodings that
	// keep them (XOR2, histogram ST), cut where they were: what a sample
	// reads back as does not depend on its start timestamp.
	for k := range metas {
		lo, hi := starts[k], len(m.ts)
		if k+1 < len(metas) {
			hi = starts[k+1]
		}
		if knownSTs(m.sts[max(lo, 0):hi]) == nil {
			continue
		}
		c, err := withSTs(metas[k].Chunk, m.sts, lo)
		if err != nil {
			return nil, err
		}
		metas[k].Chunk = c
	}
	return metas, nil
}

// withSTs recodes chk, whose first sample is sample first of sts (-1: one
// before them, with no start timestamp), in the encoding of its kind that
// keeps start timestamps, each sample with its own.
func withSTs(chk chunkenc.Chunk, sts []int64, first int) (chunkenc.Chunk, error) {
	var out chunkenc.Chunk
	switch chk.Encoding() {
	case chunkenc.EncXOR:
		out = chunkenc.NewXOR2Chunk()
	case chunkenc.EncHistogram:
		out = chunkenc.NewHistogramSTChunk()
	case chunkenc.EncFloatHistogram:
		out = chunkenc.NewFloatHistogramSTChunk()
	default:
		return chk, nil
	}
	app, err := out.Appender()
	if err != nil {
		return nil, err
	}
	it := chk.Iterator(nil)
	for i := first; ; i++ {
		vt := it.Next()
		if vt == chunkenc.ValNone {
			break
		}
		var st int64
		if i >= 0 {
			st = sts[i]
		}
		switch vt {
		case chunkenc.ValFloat:
			t, v := it.At()
			app.Append(st, t, v)
		case chunkenc.ValHistogram:
			t, h := it.AtHistogram(nil)
			if _, _, _, err := app.AppendHistogram(nil, st, t, h, true); err != nil {
				return nil, fmt.Errorf("recode histogram chunk with start timestamps: %w", err)
			}
		case chunkenc.ValFloatHistogram:
			t, fh := it.AtFloatHistogram(nil)
			if _, _, _, err := app.AppendFloatHistogram(nil, st, t, fh, true); err != nil {
				return nil, fmt.Errorf("recode float histogram chunk with start timestamps: %w", err)
			}
		}
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// sameLayout reports whether b can follow a in a chunk without recoding
// either.
func sameLayout(a, b *histogram.Histogram) bool {
	return a != nil && a.Schema == b.Schema && sameBits(a.ZeroThreshold, b.ZeroThreshold) &&
		slices.Equal(a.PositiveSpans, b.PositiveSpans) && slices.Equal(a.NegativeSpans, b.NegativeSpans) &&
		slices.EqualFunc(a.CustomValues, b.CustomValues, sameBits)
}

func sameFloatLayout(a, b *histogram.FloatHistogram) bool {
	return a != nil && a.Schema == b.Schema && sameBits(a.ZeroThreshold, b.ZeroThreshold) &&
		slices.Equal(a.PositiveSpans, b.PositiveSpans) && slices.Equal(a.NegativeSpans, b.NegativeSpans) &&
		slices.EqualFunc(a.CustomValues, b.CustomValues, sameBits)
}

func sameBits(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

// histHint is the counter reset hint of an encoded histogram.
func histHint(enc string) histogram.CounterResetHint {
	return histogram.CounterResetHint(enc[0]&histHintMask) >> histHintShift
}

// resolveHints gives a counter histogram written with the unknown hint
// the hint Prometheus' own chunks give it back with: NotCounterReset
// where it continues the previous sample of its series (a histogram of
// its kind, schema, zero threshold and custom values, not a staleness
// marker, with no counter reset DetectReset sees; the first sample of the
// range against the one before it, prevHist), as PromQL and the upstream
// PromQL tests expect. Other hints read back as written.
func (m *memSeries) resolveHints() {
	prevEnc := m.prevHist
	var prev *histogram.FloatHistogram
	for i, enc := range m.hists {
		if enc == "" {
			prevEnc, prev = "", nil
			continue
		}
		if histHint(enc) != histogram.UnknownCounterReset {
			prevEnc, prev = enc, nil
			continue
		}
		cur := asFloatHistogram(enc)
		if prev == nil && prevEnc != "" {
			prev = asFloatHistogram(prevEnc)
		}
		if continues(prevEnc, enc, prev, cur) {
			b := []byte(enc)
			b[0] = b[0]&^histHintMask | byte(histogram.NotCounterReset)<<histHintShift
			m.hists[i] = string(b)
		}
		prevEnc, prev = enc, cur
	}
}

// asFloatHistogram decodes enc as a float histogram (nil when malformed:
// the iterator reports that).
func asFloatHistogram(enc string) *histogram.FloatHistogram {
	if histIsFloat(enc) {
		fh := &histogram.FloatHistogram{}
		if decodeFloatHistogram(enc, fh) != nil {
			return nil
		}
		return fh
	}
	var h histogram.Histogram
	if decodeHistogram(enc, &h) != nil {
		return nil
	}
	return h.ToFloat(nil)
}

// continues reports whether the histogram cur (encoded curEnc) continues
// prev (prevEnc) without a counter reset.
func continues(prevEnc, curEnc string, prev, cur *histogram.FloatHistogram) bool {
	return prev != nil && cur != nil && histIsFloat(prevEnc) == histIsFloat(curEnc) &&
		histHint(prevEnc) != histogram.GaugeType &&
		!value.IsStaleNaN(prev.Sum) && !value.IsStaleNaN(cur.Sum) &&
		prev.Schema == cur.Schema && sameBits(prev.ZeroThreshold, cur.ZeroThreshold) &&
		slices.EqualFunc(prev.CustomValues, cur.CustomValues, sameBits) &&
		!cur.DetectReset(prev)
}
