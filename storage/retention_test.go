package storage_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

type policy struct {
	def  time.Duration
	over map[tenancy.ID]time.Duration
}

func (p policy) Retention(id tenancy.ID) time.Duration {
	if r, ok := p.over[id]; ok {
		return r
	}
	return p.def
}
func (p policy) Retentions() (time.Duration, map[tenancy.ID]time.Duration) { return p.def, p.over }

func TestLongestRetention(t *testing.T) {
	d := 24 * time.Hour
	for _, c := range []struct {
		p       policy
		longest time.Duration
		shorter bool
	}{
		{policy{def: d}, d, false},
		{policy{def: d, over: map[tenancy.ID]time.Duration{"a": d}}, d, false},
		{policy{def: d, over: map[tenancy.ID]time.Duration{"a": time.Hour}}, d, true},
		{policy{def: d, over: map[tenancy.ID]time.Duration{"a": 2 * d}}, 2 * d, true},
		{policy{def: d, over: map[tenancy.ID]time.Duration{"a": 0}}, 0, true},
		{policy{def: 0, over: map[tenancy.ID]time.Duration{"a": d}}, 0, true},
		{policy{def: 0}, 0, false},
	} {
		l, s := storage.LongestRetention(c.p)
		require.Equal(t, c.longest, l, "%+v", c.p)
		require.Equal(t, c.shorter, s, "%+v", c.p)
	}
	require.Equal(t, int64(math.MinInt64), storage.RetentionCutoff(0, time.Now()))
	require.Equal(t, int64(1000), storage.RetentionCutoff(time.Second, time.UnixMilli(2000)))
}

// chunkQuerier serves fixed chunk series.
type chunkQuerier struct{ series []promstorage.ChunkSeries }

func (q chunkQuerier) Select(context.Context, bool, *promstorage.SelectHints, ...*labels.Matcher) promstorage.ChunkSeriesSet {
	return &chunkSet{list: q.series, i: -1}
}
func (chunkQuerier) LabelValues(context.Context, string, *promstorage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}
func (chunkQuerier) LabelNames(context.Context, *promstorage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}
func (chunkQuerier) Close() error { return nil }

type chunkSet struct {
	list []promstorage.ChunkSeries
	i    int
}

func (s *chunkSet) Next() bool                        { s.i++; return s.i < len(s.list) }
func (s *chunkSet) At() promstorage.ChunkSeries       { return s.list[s.i] }
func (s *chunkSet) Err() error                        { return nil }
func (s *chunkSet) Warnings() annotations.Annotations { return nil }

// TestRetainedChunks: chunks before the cutoff are left out, one across
// it is re-encoded from the cutoff (floats and histograms), later ones
// pass as they are.
func TestRetainedChunks(t *testing.T) {
	floats := func(from, to int64) chunks.Meta {
		c := chunkenc.NewXORChunk()
		app, err := c.Appender()
		require.NoError(t, err)
		for ts := from; ts <= to; ts++ {
			app.Append(0, ts, float64(ts))
		}
		return chunks.Meta{MinTime: from, MaxTime: to, Chunk: c}
	}
	hists := func(from, to int64) chunks.Meta {
		c := chunkenc.NewHistogramChunk()
		app, err := c.Appender()
		require.NoError(t, err)
		for ts := from; ts <= to; ts++ {
			h := &histogram.Histogram{Count: uint64(ts), Sum: float64(ts), Schema: 0, PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{ts}}
			_, _, app, err = app.AppendHistogram(nil, 0, ts, h, false)
			require.NoError(t, err)
		}
		return chunks.Meta{MinTime: from, MaxTime: to, Chunk: c}
	}
	lsF, lsH := labels.FromStrings("__name__", "f"), labels.FromStrings("__name__", "h")
	q := chunkQuerier{[]promstorage.ChunkSeries{
		&promstorage.ChunkSeriesEntry{Lset: lsF, ChunkIteratorFn: func(chunks.Iterator) chunks.Iterator {
			return promstorage.NewListChunkSeriesIterator(floats(0, 9), floats(10, 19), floats(20, 29))
		}},
		&promstorage.ChunkSeriesEntry{Lset: lsH, ChunkIteratorFn: func(chunks.Iterator) chunks.Iterator {
			return promstorage.NewListChunkSeriesIterator(hists(0, 9), hists(10, 19))
		}},
	}}
	set := storage.RetainedChunks(q, 15).Select(context.Background(), true, nil)
	var got [][]int64
	for set.Next() {
		var ts []int64
		it := set.At().Iterator(nil)
		for it.Next() {
			m := it.At()
			require.GreaterOrEqual(t, m.MinTime, int64(15), "chunk starts at the cutoff")
			ci := m.Chunk.Iterator(nil)
			for typ := ci.Next(); typ != chunkenc.ValNone; typ = ci.Next() {
				tt := ci.AtT()
				if typ == chunkenc.ValHistogram {
					_, h := ci.AtHistogram(nil)
					require.Equal(t, uint64(tt), h.Count)
				}
				ts = append(ts, tt)
			}
		}
		require.NoError(t, it.Err())
		got = append(got, ts)
	}
	want := []int64{15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29}
	require.Equal(t, [][]int64{want, want[:5]}, got)
	require.Equal(t, promstorage.ChunkQuerier(q), storage.RetainedChunks(q, math.MinInt64), "no cutoff: q itself")
}
