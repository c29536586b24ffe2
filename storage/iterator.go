package storage

import (
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// FloatIterator is the chunkenc.Iterator backends hand out over float
// samples they decoded themselves: timestamps ts, in order, values vs and
// start timestamps sts (nil when no sample has one). The zero value
// iterates nothing; Reset points it at samples.
type FloatIterator struct {
	ts  []int64
	vs  []float64
	sts []int64
	i   int
}

// Reset makes it iterate ts, vs and sts (nil: every start timestamp 0)
// from the start. It keeps the slices, not copies.
func (it *FloatIterator) Reset(ts []int64, vs []float64, sts []int64) {
	it.ts, it.vs, it.sts, it.i = ts, vs, sts, -1
}

func (it *FloatIterator) Next() chunkenc.ValueType {
	if it.i+1 >= len(it.ts) {
		it.i = len(it.ts)
		return chunkenc.ValNone
	}
	it.i++
	return chunkenc.ValFloat
}

func (it *FloatIterator) Seek(t int64) chunkenc.ValueType {
	it.i = max(it.i, 0)
	if it.i >= len(it.ts) {
		return chunkenc.ValNone
	}
	if it.ts[it.i] < t {
		j, _ := slices.BinarySearch(it.ts[it.i:], t)
		if it.i += j; it.i >= len(it.ts) {
			return chunkenc.ValNone
		}
	}
	return chunkenc.ValFloat
}

// Index is the current sample's position in the slices Reset was given,
// for iterators that keep more of a sample beside them.
func (it *FloatIterator) Index() int { return it.i }

func (it *FloatIterator) At() (int64, float64) { return it.ts[it.i], it.vs[it.i] }

func (it *FloatIterator) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	panic("storage.FloatIterator holds floats only")
}

func (it *FloatIterator) AtFloatHistogram(*histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	panic("storage.FloatIterator holds floats only")
}

func (it *FloatIterator) AtT() int64 { return it.ts[it.i] }

func (it *FloatIterator) AtST() int64 {
	if it.sts == nil {
		return 0
	}
	return it.sts[it.i]
}

func (it *FloatIterator) Err() error { return nil }

// ErrChunkIterator returns a chunks.Iterator that fails with err at once.
func ErrChunkIterator(err error) chunks.Iterator { return errChunkIterator{err} }

type errChunkIterator struct{ err error }

func (errChunkIterator) At() chunks.Meta { return chunks.Meta{} }
func (errChunkIterator) Next() bool      { return false }
func (e errChunkIterator) Err() error    { return e.err }
