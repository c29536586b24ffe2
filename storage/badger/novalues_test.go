package badger

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
)

// TestSelectWithoutValues reads sealed packed chunks and XOR chunks with
// hints of functions that only count samples: the same samples at the
// same times, the packed chunks' values left 0, every other value (a
// stale marker among them) as stored; other hints read every value.
func TestSelectWithoutValues(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	app := s.ForTenant("t").AppenderV2(context.Background())
	packed := labels.FromStrings("__name__", "packed")
	xor := labels.FromStrings("__name__", "xor")
	for i := range 500 {
		ts := int64(i) * 15_000
		_, err := app.Append(0, packed, 0, ts, float64(i)*1.25, nil, nil, promstorage.AOptions{})
		require.NoError(t, err)
		v := math.Pi * float64(i)
		if i == 300 {
			v = math.Float64frombits(0x7ff0000000000002) // StaleNaN
		}
		_, err = app.Append(0, xor, 0, ts, v, nil, nil, promstorage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	s.sealIdle(time.Now().Add(24 * time.Hour))
	require.NoError(t, s.Close())
	s = openTest(t, dir, nil)
	defer s.Close()

	read := func(hints *promstorage.SelectHints, name string) (ts []int64, vs []float64) {
		q, err := s.ForTenant("t").Querier(math.MinInt64, math.MaxInt64)
		require.NoError(t, err)
		defer q.Close()
		set := q.Select(context.Background(), false, hints, labels.MustNewMatcher(labels.MatchEqual, "__name__", name))
		require.True(t, set.Next())
		it := set.At().Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			t, v := it.At()
			ts, vs = append(ts, t), append(vs, v)
		}
		require.NoError(t, it.Err())
		return ts, vs
	}
	for _, fn := range []string{"count", "count_over_time", "group"} {
		hints := &promstorage.SelectHints{Start: math.MinInt64 + 1, End: math.MaxInt64 - 1, Func: fn}
		if fn == "count_over_time" {
			hints.Range = 300_000
		}
		wantTs, wantVs := read(nil, "packed")
		ts, vs := read(hints, "packed")
		require.Equal(t, wantTs, ts, fn)
		require.Len(t, wantTs, 500)
		for i, v := range vs {
			require.Zero(t, v, "%s %d", fn, i)
		}
		wantTs, wantVs = read(nil, "xor")
		ts, vs = read(hints, "xor")
		require.Equal(t, wantTs, ts, fn)
		for i := range vs {
			require.Equal(t, math.Float64bits(wantVs[i]), math.Float64bits(vs[i]), "%s %d", fn, i)
		}
	}
	wantTs, wantVs := read(nil, "packed")
	ts, vs := read(&promstorage.SelectHints{Func: "sum"}, "packed")
	require.Equal(t, wantTs, ts)
	require.Equal(t, wantVs, vs)
	require.Equal(t, 1.25, vs[1])
}
