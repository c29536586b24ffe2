package promql

import (
	"context"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
)

// The engine hands every native histogram sample over as a float histogram,
// integer or not. A kindQueryable, under the engine, records which samples
// the store yielded as integer histograms (chunkenc.ValHistogram), so that
// the native API can tell them apart (ExecRequest.HistogramKinds).

// histogramKinds records, per series (by its labels), the timestamps of
// the samples read as integer histograms.
type histogramKinds struct {
	mu     sync.Mutex
	series map[string]map[int64]struct{}
}

// integer reports whether the sample of ls at t was an integer histogram.
func (k *histogramKinds) integer(ls labels.Labels, t int64) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.series[ls.String()][t]
	return ok
}

// of returns the set of ls, created on first use.
func (k *histogramKinds) of(ls labels.Labels) map[int64]struct{} {
	key := ls.String()
	k.mu.Lock()
	defer k.mu.Unlock()
	set := k.series[key]
	if set == nil {
		set = map[int64]struct{}{}
		k.series[key] = set
	}
	return set
}

type kindQueryable struct {
	promstorage.Queryable
	kinds *histogramKinds
}

func (q kindQueryable) Querier(mint, maxt int64) (promstorage.Querier, error) {
	inner, err := q.Queryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return kindQuerier{Querier: inner, kinds: q.kinds}, nil
}

type kindQuerier struct {
	promstorage.Querier
	kinds *histogramKinds
}

func (q kindQuerier) Select(ctx context.Context, sortSeries bool, hints *promstorage.SelectHints, ms ...*labels.Matcher) promstorage.SeriesSet {
	return &kindSeriesSet{SeriesSet: q.Querier.Select(ctx, sortSeries, hints, ms...), kinds: q.kinds}
}

type kindSeriesSet struct {
	promstorage.SeriesSet
	kinds *histogramKinds
}

func (s *kindSeriesSet) At() promstorage.Series {
	return kindSeries{Series: s.SeriesSet.At(), kinds: s.kinds}
}

func (s *kindSeriesSet) Warnings() annotations.Annotations { return s.SeriesSet.Warnings() }

type kindSeries struct {
	promstorage.Series
	kinds *histogramKinds
}

func (s kindSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	if k, ok := it.(*kindIterator); ok {
		it = k.Iterator
	}
	return &kindIterator{Iterator: s.Series.Iterator(it), ints: s.kinds.of(s.Labels())}
}

// kindIterator records the integer histogram samples it passes.
type kindIterator struct {
	chunkenc.Iterator
	ints map[int64]struct{}
}

func (it *kindIterator) Next() chunkenc.ValueType { return it.record(it.Iterator.Next()) }

func (it *kindIterator) Seek(t int64) chunkenc.ValueType { return it.record(it.Iterator.Seek(t)) }

func (it *kindIterator) record(vt chunkenc.ValueType) chunkenc.ValueType {
	if vt == chunkenc.ValHistogram {
		it.ints[it.Iterator.AtT()] = struct{}{}
	}
	return vt
}
