package storage_test

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/badger"
)

// call is one Append that reached the store.
type call struct {
	series string
	st, t  int64
	v      float64
	h      *histogram.Histogram
}

// recorder passes appends to a real store's appender, recording them.
type recorder struct {
	promstorage.AppenderV2
	calls *[]call
}

func (r recorder) Append(ref promstorage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AOptions) (promstorage.SeriesRef, error) {
	*r.calls = append(*r.calls, call{ls.Get("__name__"), st, t, v, h})
	return r.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
}

func openBadger(t *testing.T) storage.TenantStore {
	t.Helper()
	s, err := badger.New(badger.Config{Path: t.TempDir()}, nil, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s.ForTenant("acme")
}

type point struct {
	t int64
	v float64
	h *histogram.Histogram
}

func read(t *testing.T, ts storage.TenantStore, name string) []point {
	t.Helper()
	q, err := ts.Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", name))
	var out []point
	for set.Next() {
		it := set.At().Iterator(nil)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				tt, v := it.At()
				out = append(out, point{t: tt, v: v})
			case chunkenc.ValHistogram:
				tt, h := it.AtHistogram(nil)
				out = append(out, point{t: tt, h: h})
			}
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, set.Err())
	return out
}

// batch appends the samples of one write through WithStartZero and
// commits it, returning the appends the store saw.
func batch(t *testing.T, ts storage.TenantStore, seen *storage.StartZeroCache, commit bool, f func(app promstorage.AppenderV2)) []call {
	t.Helper()
	var calls []call
	app := storage.WithStartZero(recorder{ts.AppenderV2(context.Background()), &calls}, seen, "acme")
	f(app)
	if commit {
		require.NoError(t, app.Commit())
	} else {
		require.NoError(t, app.Rollback())
	}
	return calls
}

func appendFloat(t *testing.T, app promstorage.AppenderV2, name string, st, tt int64, v float64) {
	t.Helper()
	_, err := app.Append(0, labels.FromStrings("__name__", name), st, tt, v, nil, nil, promstorage.AOptions{})
	require.NoError(t, err)
}

// A start timestamp becomes one zero sample, once: the next writes of the
// same start timestamp inject nothing, a new one (a counter reset) does.
func TestWithStartZeroOnce(t *testing.T) {
	ts := openBadger(t)
	seen := storage.NewStartZeroCache(100)
	calls := batch(t, ts, seen, true, func(app promstorage.AppenderV2) {
		appendFloat(t, app, "c", 1000, 2000, 5)
		appendFloat(t, app, "c", 1000, 3000, 6) // same batch, same st
	})
	require.Equal(t, []call{{"c", 0, 1000, 0, nil}, {"c", 1000, 2000, 5, nil}, {"c", 1000, 3000, 6, nil}}, calls)
	calls = batch(t, ts, seen, true, func(app promstorage.AppenderV2) { appendFloat(t, app, "c", 1000, 4000, 7) })
	require.Len(t, calls, 1, "steady state: nothing injected")
	calls = batch(t, ts, seen, true, func(app promstorage.AppenderV2) { appendFloat(t, app, "c", 4500, 5000, 1) })
	require.Equal(t, []call{{"c", 0, 4500, 0, nil}, {"c", 4500, 5000, 1, nil}}, calls, "a reset injects its zero")
	require.Equal(t, []point{{t: 1000}, {t: 2000, v: 5}, {t: 3000, v: 6}, {t: 4000, v: 7}, {t: 4500}, {t: 5000, v: 1}}, read(t, ts, "c"))

	// No start timestamp, one not before the sample, a stale marker:
	// nothing injected.
	calls = batch(t, ts, seen, true, func(app promstorage.AppenderV2) {
		appendFloat(t, app, "d", 0, 1000, 1)
		appendFloat(t, app, "d", 2000, 2000, 2)
		appendFloat(t, app, "d", 2500, 3000, math.Float64frombits(value.StaleNaN))
	})
	require.Len(t, calls, 3)
}

// A zero sample never goes over a sample appended before, in the same
// batch or an earlier one: as in Prometheus' head, a start timestamp at or
// before the series' newest sample is not injected (an OTel SDK's second
// point may start at the first one's millisecond).
func TestWithStartZeroNotOverASample(t *testing.T) {
	ts := openBadger(t)
	seen := storage.NewStartZeroCache(100)
	calls := batch(t, ts, seen, true, func(app promstorage.AppenderV2) {
		appendFloat(t, app, "c", 1000, 2000, 5)
		appendFloat(t, app, "c", 2000, 3000, 1) // starts at the first point
	})
	require.Equal(t, []call{{"c", 0, 1000, 0, nil}, {"c", 1000, 2000, 5, nil}, {"c", 2000, 3000, 1, nil}}, calls)
	calls = batch(t, ts, seen, true, func(app promstorage.AppenderV2) { appendFloat(t, app, "c", 2500, 4000, 2) })
	require.Equal(t, []call{{"c", 2500, 4000, 2, nil}}, calls, "before the newest sample of an earlier batch: not injected")
	calls = batch(t, ts, seen, true, func(app promstorage.AppenderV2) { appendFloat(t, app, "c", 4500, 5000, 1) })
	require.Equal(t, []call{{"c", 0, 4500, 0, nil}, {"c", 4500, 5000, 1, nil}}, calls, "after it: injected")
	require.Equal(t, []point{{t: 1000}, {t: 2000, v: 5}, {t: 3000, v: 1}, {t: 4000, v: 2}, {t: 4500}, {t: 5000, v: 1}}, read(t, ts, "c"))
}

// A batch rolled back remembers nothing: its zero samples are injected
// with the next.
func TestWithStartZeroRollback(t *testing.T) {
	ts := openBadger(t)
	seen := storage.NewStartZeroCache(100)
	calls := batch(t, ts, seen, false, func(app promstorage.AppenderV2) { appendFloat(t, app, "c", 1000, 2000, 5) })
	require.Len(t, calls, 2)
	calls = batch(t, ts, seen, true, func(app promstorage.AppenderV2) { appendFloat(t, app, "c", 1000, 2000, 5) })
	require.Len(t, calls, 2, "injected again")
	require.Equal(t, []point{{t: 1000}, {t: 2000, v: 5}}, read(t, ts, "c"))
}

// A histogram's zero is an empty histogram of its schema, zero threshold
// and custom values, marked as a counter reset, as Prometheus' head
// appender appends it.
func TestWithStartZeroHistogram(t *testing.T) {
	ts := openBadger(t)
	seen := storage.NewStartZeroCache(100)
	h := &histogram.Histogram{
		Schema: histogram.CustomBucketsSchema, Count: 3, Sum: 1.5,
		PositiveSpans: []histogram.Span{{Length: 2}}, PositiveBuckets: []int64{1, 1}, CustomValues: []float64{0.5, 1},
	}
	calls := batch(t, ts, seen, true, func(app promstorage.AppenderV2) {
		_, err := app.Append(0, labels.FromStrings("__name__", "h"), 1000, 2000, 0, h, nil, promstorage.AOptions{})
		require.NoError(t, err)
	})
	require.Len(t, calls, 2)
	zero := calls[0].h
	require.Equal(t, &histogram.Histogram{CounterResetHint: histogram.CounterReset, Schema: h.Schema, CustomValues: h.CustomValues}, zero)
	got := read(t, ts, "h")
	require.Len(t, got, 2)
	require.Equal(t, int64(1000), got[0].t)
	require.Equal(t, uint64(0), got[0].h.Count)
	require.Equal(t, h.CustomValues, got[0].h.CustomValues)
	require.True(t, h.Equals(got[1].h))
}

// The cache holds at most twice its size; a series it forgot gets its
// zero sample again, which the store keeps once.
func TestWithStartZeroBounded(t *testing.T) {
	ts := openBadger(t)
	seen := storage.NewStartZeroCache(2)
	for i := range 5 {
		calls := batch(t, ts, seen, true, func(app promstorage.AppenderV2) { appendFloat(t, app, fmt.Sprint("c", i), 1000, 2000, 1) })
		require.Len(t, calls, 2)
		require.LessOrEqual(t, seen.Len(), 4)
	}
	calls := batch(t, ts, seen, true, func(app promstorage.AppenderV2) { appendFloat(t, app, "c4", 1000, 3000, 2) })
	require.Len(t, calls, 1, "the newest are remembered")
	calls = batch(t, ts, seen, true, func(app promstorage.AppenderV2) { appendFloat(t, app, "c0", 1000, 3000, 2) })
	require.Len(t, calls, 2, "the oldest forgotten: injected again")
	require.Equal(t, []point{{t: 1000}, {t: 2000, v: 1}, {t: 3000, v: 2}}, read(t, ts, "c0"), "kept once")
}
