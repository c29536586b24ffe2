package clickhouse

import (
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
)

// TestHistogramRegression is issue 11's regression test on the public API
// only (it fails on the code before histograms, which refused them): an
// integer and a float histogram appended through AppenderV2, and an
// integer one in a later commit, read back through Select and the
// ChunkQuerier.
func TestHistogramRegression(t *testing.T) {
	ts := newTestStore(t).ForTenant("regression")
	h := &histogram.Histogram{Schema: 1, ZeroThreshold: 0.01, ZeroCount: 1, Count: 4, Sum: 2.5,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{1, 1}}
	fh := h.ToFloat(nil)
	lset := labels.FromStrings("__name__", "regression")
	app := ts.AppenderV2(t.Context())
	_, err := app.Append(0, lset, 0, 1000, 0, h, nil, promstorage.AppendV2Options{})
	require.NoError(t, err)
	_, err = app.Append(0, lset, 0, 2000, 0, nil, fh, promstorage.AppendV2Options{})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
	app = ts.AppenderV2(t.Context())
	_, err = app.Append(0, lset, 0, 3000, 0, h, nil, promstorage.AppendV2Options{})
	require.NoError(t, err)
	require.NoError(t, app.Commit())

	q, err := ts.Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	set := q.Select(t.Context(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "regression"))
	require.True(t, set.Next())
	it := set.At().Iterator(nil)
	require.Equal(t, chunkenc.ValHistogram, it.Next())
	_, got := it.AtHistogram(nil)
	require.Equal(t, h.String(), got.String())
	require.Equal(t, chunkenc.ValFloatHistogram, it.Next())
	_, gotF := it.AtFloatHistogram(nil)
	require.Equal(t, fh.String(), gotF.String())
	require.Equal(t, chunkenc.ValHistogram, it.Next())
	require.Equal(t, chunkenc.ValNone, it.Next())
	require.NoError(t, set.Err())

	cq, err := ts.ChunkQuerier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	cset := cq.Select(t.Context(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "regression"))
	require.True(t, cset.Next())
	var encs []chunkenc.Encoding
	for cit := cset.At().Iterator(nil); cit.Next(); {
		encs = append(encs, cit.At().Chunk.Encoding())
	}
	require.Equal(t, []chunkenc.Encoding{chunkenc.EncHistogram, chunkenc.EncFloatHistogram, chunkenc.EncHistogram}, encs)
}
