package storage_test

import (
	"errors"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
)

func TestFloatIterator(t *testing.T) {
	var it storage.FloatIterator
	require.Equal(t, chunkenc.ValNone, it.Next(), "zero value")
	require.Equal(t, chunkenc.ValNone, it.Seek(0), "zero value")

	ts, vs := []int64{10, 20, 30, 40}, []float64{1, 2, 3, 4}
	it.Reset(ts, vs, nil)
	require.Equal(t, chunkenc.ValFloat, it.Next())
	gt, gv := it.At()
	require.Equal(t, []any{int64(10), 1.0, int64(0)}, []any{gt, gv, it.AtST()})
	require.Equal(t, chunkenc.ValFloat, it.Seek(5), "Seek never goes back")
	require.EqualValues(t, 10, it.AtT())
	require.Equal(t, chunkenc.ValFloat, it.Seek(25))
	require.EqualValues(t, 30, it.AtT())
	require.Equal(t, chunkenc.ValFloat, it.Next())
	require.EqualValues(t, 40, it.AtT())
	require.Equal(t, chunkenc.ValNone, it.Next())
	require.Equal(t, chunkenc.ValNone, it.Seek(0), "exhausted")
	require.NoError(t, it.Err())

	// Seek first, with start timestamps; Reset rewinds.
	it.Reset(ts, vs, []int64{5, 15, 25, 35})
	require.Equal(t, chunkenc.ValFloat, it.Seek(40))
	require.EqualValues(t, 35, it.AtST())
	require.Equal(t, chunkenc.ValNone, it.Seek(41))
	it.Reset(ts, vs, nil)
	require.Equal(t, chunkenc.ValFloat, it.Seek(20))
	require.EqualValues(t, 20, it.AtT())
	require.Panics(t, func() { it.AtHistogram(nil) })
}

func TestErrChunkIterator(t *testing.T) {
	err := errors.New("boom")
	it := storage.ErrChunkIterator(err)
	require.False(t, it.Next())
	require.Equal(t, err, it.Err())
}
