package storage

import (
	"context"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// Interval is a closed time range in milliseconds.
type Interval struct{ Mint, Maxt int64 }

// Intervals are sorted, disjoint, non-adjacent intervals: the deleted
// ranges of one series.
type Intervals []Interval

// Add returns iv with n merged in.
func (iv Intervals) Add(n Interval) Intervals {
	out := make(Intervals, 0, len(iv)+1)
	for _, c := range iv {
		switch {
		case c.Maxt < n.Mint && c.Maxt+1 < n.Mint, n.Maxt < c.Mint && n.Maxt+1 < c.Mint:
			out = append(out, c) // apart
		default:
			n = Interval{min(n.Mint, c.Mint), max(n.Maxt, c.Maxt)}
		}
	}
	out = append(out, n)
	slices.SortFunc(out, func(a, b Interval) int {
		switch {
		case a.Mint < b.Mint:
			return -1
		case a.Mint > b.Mint:
			return 1
		}
		return 0
	})
	return out
}

// Covers reports whether t is deleted.
func (iv Intervals) Covers(t int64) bool {
	for _, c := range iv {
		if t < c.Mint {
			return false
		}
		if t <= c.Maxt {
			return true
		}
	}
	return false
}

// CoversRange reports whether all of [mint, maxt] is deleted.
func (iv Intervals) CoversRange(mint, maxt int64) bool {
	for _, c := range iv {
		if c.Mint <= mint && c.Maxt >= maxt {
			return true
		}
	}
	return false
}

// Overlapping returns the intervals of iv that overlap [mint, maxt].
func (iv Intervals) Overlapping(mint, maxt int64) Intervals {
	var out Intervals
	for _, c := range iv {
		if c.Maxt >= mint && c.Mint <= maxt {
			out = append(out, c)
		}
	}
	return out
}

// All is the interval of every timestamp.
var All = Interval{math.MinInt64, math.MaxInt64}

// DeletedOf returns the deleted intervals of a series (nil: none).
type DeletedOf func(lset labels.Labels) Intervals

// WithoutDeleted wraps ss: the samples of each series in its deleted
// intervals are hidden, and a series with no sample left in [mint, maxt] is
// dropped. With peek unset (a labels-only select, whose series carry no
// samples) a series is dropped only when its deletions cover the whole
// range.
func WithoutDeleted(ss promstorage.SeriesSet, of DeletedOf, mint, maxt int64, peek bool) promstorage.SeriesSet {
	return &deletedSet{SeriesSet: ss, of: of, mint: mint, maxt: maxt, peek: peek}
}

type deletedSet struct {
	promstorage.SeriesSet
	of         DeletedOf
	mint, maxt int64
	peek       bool
	cur        promstorage.Series
	err        error
	it         chunkenc.Iterator
}

func (s *deletedSet) Next() bool {
	for s.SeriesSet.Next() {
		ser := s.SeriesSet.At()
		iv := s.of(ser.Labels()).Overlapping(s.mint, s.maxt)
		if len(iv) == 0 {
			s.cur = ser
			return true
		}
		if iv.CoversRange(s.mint, s.maxt) {
			continue
		}
		d := &deletedSeries{Series: ser, iv: iv}
		if s.peek {
			s.it = d.Iterator(s.it)
			if s.it.Next() == chunkenc.ValNone {
				if err := s.it.Err(); err != nil {
					s.err = err
					return false
				}
				continue
			}
		}
		s.cur = d
		return true
	}
	return false
}

func (s *deletedSet) At() promstorage.Series { return s.cur }

func (s *deletedSet) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.SeriesSet.Err()
}

func (s *deletedSet) Warnings() annotations.Annotations { return s.SeriesSet.Warnings() }

// deletedSeries is a series without its samples in iv.
type deletedSeries struct {
	promstorage.Series
	iv Intervals
}

func (s *deletedSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	d, ok := it.(*deletedIterator)
	if !ok {
		d = &deletedIterator{}
	}
	d.it, d.iv = s.Series.Iterator(d.it), s.iv
	return d
}

// deletedIterator skips the samples of it in iv.
type deletedIterator struct {
	it chunkenc.Iterator
	iv Intervals
}

func (d *deletedIterator) Next() chunkenc.ValueType {
	for {
		vt := d.it.Next()
		if vt == chunkenc.ValNone || !d.iv.Covers(d.it.AtT()) {
			return vt
		}
	}
}

func (d *deletedIterator) Seek(t int64) chunkenc.ValueType {
	vt := d.it.Seek(t)
	for vt != chunkenc.ValNone && d.iv.Covers(d.it.AtT()) {
		vt = d.it.Next()
	}
	return vt
}

func (d *deletedIterator) At() (int64, float64) { return d.it.At() }
func (d *deletedIterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	return d.it.AtHistogram(h)
}
func (d *deletedIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return d.it.AtFloatHistogram(fh)
}
func (d *deletedIterator) AtT() int64  { return d.it.AtT() }
func (d *deletedIterator) AtST() int64 { return d.it.AtST() }
func (d *deletedIterator) Err() error  { return d.it.Err() }

// ChunksWithoutDeleted wraps cs as WithoutDeleted wraps a SeriesSet: the
// chunks of a series with deletions in range are decoded, filtered and
// encoded again.
func ChunksWithoutDeleted(cs promstorage.ChunkSeriesSet, of DeletedOf, mint, maxt int64) promstorage.ChunkSeriesSet {
	return &deletedChunkSet{ss: WithoutDeleted(&chunksAsSeries{cs}, of, mint, maxt, true)}
}

type deletedChunkSet struct{ ss promstorage.SeriesSet }

func (s *deletedChunkSet) Next() bool { return s.ss.Next() }
func (s *deletedChunkSet) At() promstorage.ChunkSeries {
	ser := s.ss.At()
	if c, ok := ser.(*chunkSeriesAsSeries); ok {
		return c.cs // untouched
	}
	return promstorage.NewSeriesToChunkEncoder(ser)
}
func (s *deletedChunkSet) Err() error                        { return s.ss.Err() }
func (s *deletedChunkSet) Warnings() annotations.Annotations { return s.ss.Warnings() }

// chunksAsSeries presents a ChunkSeriesSet as a SeriesSet.
type chunksAsSeries struct{ cs promstorage.ChunkSeriesSet }

func (c *chunksAsSeries) Next() bool { return c.cs.Next() }
func (c *chunksAsSeries) At() promstorage.Series {
	return &chunkSeriesAsSeries{cs: c.cs.At()}
}
func (c *chunksAsSeries) Err() error                        { return c.cs.Err() }
func (c *chunksAsSeries) Warnings() annotations.Annotations { return c.cs.Warnings() }

type chunkSeriesAsSeries struct{ cs promstorage.ChunkSeries }

func (c *chunkSeriesAsSeries) Labels() labels.Labels { return c.cs.Labels() }
func (c *chunkSeriesAsSeries) Iterator(chunkenc.Iterator) chunkenc.Iterator {
	return &chunkSamples{chks: c.cs.Iterator(nil)}
}

// chunkSamples iterates the samples of a series' chunks in order.
type chunkSamples struct {
	chks chunks.Iterator
	cur  chunkenc.Iterator
	err  error
}

func (c *chunkSamples) Next() chunkenc.ValueType {
	for {
		if c.cur != nil {
			if vt := c.cur.Next(); vt != chunkenc.ValNone {
				return vt
			}
			if err := c.cur.Err(); err != nil {
				c.err = err
				return chunkenc.ValNone
			}
		}
		if !c.chks.Next() {
			c.err = c.chks.Err()
			return chunkenc.ValNone
		}
		c.cur = c.chks.At().Chunk.Iterator(c.cur)
	}
}

func (c *chunkSamples) Seek(t int64) chunkenc.ValueType {
	if c.cur != nil && c.cur.AtT() >= t {
		return c.cur.Seek(t)
	}
	for {
		vt := c.Next()
		if vt == chunkenc.ValNone || c.cur.AtT() >= t {
			return vt
		}
	}
}

func (c *chunkSamples) At() (int64, float64) { return c.cur.At() }
func (c *chunkSamples) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	return c.cur.AtHistogram(h)
}
func (c *chunkSamples) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return c.cur.AtFloatHistogram(fh)
}
func (c *chunkSamples) AtT() int64  { return c.cur.AtT() }
func (c *chunkSamples) AtST() int64 { return c.cur.AtST() }
func (c *chunkSamples) Err() error  { return c.err }

// DeletedQuerier wraps a Querier's Select with WithoutDeleted; label names
// and values are the wrapped querier's (the backend keeps deleted series
// out of them).
type DeletedQuerier struct {
	promstorage.Querier
	Of         DeletedOf
	Mint, Maxt int64
}

// Select selects as the wrapped querier, without the deleted samples.
func (q *DeletedQuerier) Select(ctx context.Context, sortSeries bool, hints *promstorage.SelectHints, ms ...*labels.Matcher) promstorage.SeriesSet {
	mint, maxt := q.Mint, q.Maxt
	if hints != nil && (hints.Start != 0 || hints.End != 0) {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	peek := hints == nil || hints.Func != "series"
	return WithoutDeleted(q.Querier.Select(ctx, sortSeries, hints, ms...), q.Of, mint, maxt, peek)
}

// DeletedChunkQuerier is DeletedQuerier for chunks.
type DeletedChunkQuerier struct {
	promstorage.ChunkQuerier
	Of         DeletedOf
	Mint, Maxt int64
}

// Select selects as the wrapped querier, without the deleted samples.
func (q *DeletedChunkQuerier) Select(ctx context.Context, sortSeries bool, hints *promstorage.SelectHints, ms ...*labels.Matcher) promstorage.ChunkSeriesSet {
	return ChunksWithoutDeleted(q.ChunkQuerier.Select(ctx, sortSeries, hints, ms...), q.Of, q.Mint, q.Maxt)
}
