package badger_test

import (
	"context"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage/badger"
)

// TestHistogramsAreStored is the regression test of issue 11: the Badger
// appenders refused native histograms (ErrHistogramsUnsupported).
// AppenderV2 stores integer and float histograms now, and Select returns
// them as histograms.
func TestHistogramsAreStored(t *testing.T) {
	s, err := badger.New(badger.Config{Path: t.TempDir()}, nil, nil)
	require.NoError(t, err)
	defer s.Close()
	ts := s.ForTenant("a")
	h := &histogram.Histogram{
		Schema: 3, ZeroThreshold: 0.001, ZeroCount: 1, Count: 6, Sum: 12.5,
		PositiveSpans: []histogram.Span{{Offset: 1, Length: 2}}, PositiveBuckets: []int64{2, 1},
		NegativeSpans: []histogram.Span{{Offset: 0, Length: 1}}, NegativeBuckets: []int64{0},
	}
	fh := &histogram.FloatHistogram{
		Schema: histogram.CustomBucketsSchema, Count: 3.5, Sum: 1.25, CustomValues: []float64{0.5, 1},
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 3}}, PositiveBuckets: []float64{1, 2, 0.5},
	}
	v2 := ts.AppenderV2(context.Background())
	_, err = v2.Append(0, labels.FromStrings("__name__", "v2"), 0, 1000, 0, h, nil, promstorage.AOptions{})
	require.NoError(t, err)
	_, err = v2.Append(0, labels.FromStrings("__name__", "v2"), 0, 2000, 0, nil, fh, promstorage.AOptions{})
	require.NoError(t, err)
	require.NoError(t, v2.Commit())

	q, err := ts.Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", "v.*"))
	n := 0
	for set.Next() {
		n++
		it := set.At().Iterator(nil)
		require.Equal(t, chunkenc.ValHistogram, it.Next())
		gt, gh := it.AtHistogram(nil)
		require.EqualValues(t, 1000, gt)
		require.True(t, h.Equals(gh), "%s: %v", set.At().Labels(), gh)
		require.Equal(t, chunkenc.ValFloatHistogram, it.Next())
		gt, gfh := it.AtFloatHistogram(nil)
		require.EqualValues(t, 2000, gt)
		require.True(t, fh.Equals(gfh), "%s: %v", set.At().Labels(), gfh)
		require.Equal(t, chunkenc.ValNone, it.Next())
		require.NoError(t, it.Err())
	}
	require.NoError(t, set.Err())
	require.Equal(t, 1, n)
}
