package storage

import (
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/stretchr/testify/require"
)

func TestIntervals(t *testing.T) {
	var iv Intervals
	iv = iv.Add(Interval{10, 20})
	iv = iv.Add(Interval{30, 40})
	require.Equal(t, Intervals{{10, 20}, {30, 40}}, iv)
	require.Equal(t, Intervals{{10, 40}}, iv.Add(Interval{21, 29}), "adjacent intervals merge")
	require.Equal(t, Intervals{{5, 45}}, iv.Add(Interval{5, 45}))
	require.Equal(t, Intervals{{10, 20}, {25, 26}, {30, 40}}, iv.Add(Interval{25, 26}))
	all := Intervals{}.Add(All).Add(Interval{0, 1})
	require.Equal(t, Intervals{All}, all, "no overflow at the ends")
	for _, c := range []struct {
		t    int64
		want bool
	}{{9, false}, {10, true}, {20, true}, {21, false}, {35, true}, {41, false}, {math.MinInt64, false}} {
		require.Equal(t, c.want, iv.Covers(c.t), "Covers(%d)", c.t)
	}
	require.True(t, iv.CoversRange(11, 19))
	require.False(t, iv.CoversRange(15, 35), "a gap inside")
	require.Equal(t, Intervals{{30, 40}}, iv.Overlapping(25, 30))
}

// TestWithoutDeleted filters a series set and a chunk series set by the
// same deletions: samples in them are skipped, a series without samples
// left is dropped, and Seek lands past deleted samples.
func TestWithoutDeleted(t *testing.T) {
	a, b, c := labels.FromStrings("s", "a"), labels.FromStrings("s", "b"), labels.FromStrings("s", "c")
	samples := func(ts ...int64) []chunks.Sample {
		var out []chunks.Sample
		for _, t := range ts {
			out = append(out, fsample{t, float64(t)})
		}
		return out
	}
	data := map[string][]chunks.Sample{"a": samples(1, 2, 3, 4, 5), "b": samples(2, 3), "c": samples(7)}
	deleted := map[string]Intervals{"a": {{2, 3}}, "b": {{1, 4}}}
	of := func(l labels.Labels) Intervals { return deleted[l.Get("s")] }
	read := func(ss promstorage.SeriesSet) map[string][]int64 {
		out := map[string][]int64{}
		for ss.Next() {
			it := ss.At().Iterator(nil)
			var ts []int64
			for it.Next() != chunkenc.ValNone {
				ts = append(ts, it.AtT())
			}
			require.NoError(t, it.Err())
			out[ss.At().Labels().Get("s")] = ts
		}
		require.NoError(t, ss.Err())
		return out
	}
	list := func() []promstorage.Series {
		var out []promstorage.Series
		for _, l := range []labels.Labels{a, b, c} {
			out = append(out, promstorage.NewListSeries(l, data[l.Get("s")]))
		}
		return out
	}
	want := map[string][]int64{"a": {1, 4, 5}, "c": {7}}
	require.Equal(t, want, read(WithoutDeleted(&listSet{list: list(), i: -1}, of, 0, 10, true)))

	var chunked []promstorage.ChunkSeries
	for _, l := range []labels.Labels{a, b, c} {
		chunked = append(chunked, promstorage.NewListChunkSeriesFromSamples(l, data[l.Get("s")][:1], data[l.Get("s")][1:]))
	}
	cs := ChunksWithoutDeleted(&listChunkSet{list: chunked, i: -1}, of, 0, 10)
	require.Equal(t, want, read(promstorage.NewSeriesSetFromChunkSeriesSet(cs)))

	// Seek onto a deleted sample moves past it.
	s := &deletedSeries{Series: promstorage.NewListSeries(a, data["a"]), iv: deleted["a"]}
	it := s.Iterator(nil)
	require.Equal(t, chunkenc.ValFloat, it.Seek(2))
	require.Equal(t, int64(4), it.AtT())
}

type fsample struct {
	t int64
	f float64
}

func (s fsample) T() int64                      { return s.t }
func (s fsample) F() float64                    { return s.f }
func (s fsample) ST() int64                     { return 0 }
func (s fsample) H() *histogram.Histogram       { return nil }
func (s fsample) FH() *histogram.FloatHistogram { return nil }
func (s fsample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s fsample) Copy() chunks.Sample           { return s }

type listSet struct {
	list []promstorage.Series
	i    int
}

func (l *listSet) Next() bool                        { l.i++; return l.i < len(l.list) }
func (l *listSet) At() promstorage.Series            { return l.list[l.i] }
func (l *listSet) Err() error                        { return nil }
func (l *listSet) Warnings() annotations.Annotations { return nil }

type listChunkSet struct {
	list []promstorage.ChunkSeries
	i    int
}

func (l *listChunkSet) Next() bool                        { l.i++; return l.i < len(l.list) }
func (l *listChunkSet) At() promstorage.ChunkSeries       { return l.list[l.i] }
func (l *listChunkSet) Err() error                        { return nil }
func (l *listChunkSet) Warnings() annotations.Annotations { return nil }
