package badger

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// TestSeriesHandles: a series appended to with its labels hands out a
// handle, good for its tenant's appenders only, that appends to it; once
// retention removes the series, the handle is refused and the labels
// create the series again; another store (or the same reopened) has
// another owner.
func TestSeriesHandles(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, func(c *Config) { c.ChunkSamples = 5 })
	lset := labels.FromStrings("__name__", "up", "job", "a")
	other := labels.FromStrings("__name__", "up", "job", "b")

	app := s.ForTenant("a").AppenderV2(context.Background()).(appenderV2)
	owner := app.HandleOwner()
	require.NotZero(t, owner)
	_, err := app.Append(0, lset, 0, 1, 1, nil, nil, promstorage.AOptions{})
	require.NoError(t, err)
	require.Nil(t, app.SeriesHandle(), "a series new in the batch has no handle before it commits")
	require.NoError(t, app.Commit())

	app = s.ForTenant("a").AppenderV2(context.Background()).(appenderV2)
	require.Equal(t, owner, app.HandleOwner(), "one owner per tenant index")
	_, err = app.Append(0, lset, 0, 2, 2, nil, nil, promstorage.AOptions{})
	require.NoError(t, err)
	h := app.SeriesHandle()
	require.NotNil(t, h)
	_, err = app.Append(0, other, 0, 2, 7, nil, nil, promstorage.AOptions{})
	require.NoError(t, err)
	require.Nil(t, app.SeriesHandle(), "the handle is of the last append's series")
	require.NoError(t, app.Commit())

	app = s.ForTenant("a").AppenderV2(context.Background()).(appenderV2)
	require.NotZero(t, app.HandleOwner())
	for ts := int64(3); ts <= 10; ts++ {
		require.True(t, app.AppendHandle(h, 0, ts, float64(ts)))
	}
	require.NoError(t, app.Commit())
	got := readAll(t, s, "a")
	require.Len(t, got[lset.String()], 10)
	require.Equal(t, tsample{10, 10}, got[lset.String()][9])
	require.Len(t, got[other.String()], 1)

	otherTenant := s.ForTenant("b").AppenderV2(context.Background()).(appenderV2)
	require.NotEqual(t, owner, otherTenant.HandleOwner())
	require.NoError(t, otherTenant.Rollback())

	// Retention removes the series (its data is all before the cutoff):
	// the handle is refused, and the labels bring the series back.
	s.sealIdle(timeFar)
	require.NoError(t, s.deleteBefore(1000))
	require.Empty(t, readAll(t, s, "a"))
	app = s.ForTenant("a").AppenderV2(context.Background()).(appenderV2)
	app.HandleOwner()
	require.False(t, app.AppendHandle(h, 0, 2000, 1))
	_, err = app.Append(0, lset, 0, 2000, 1, nil, nil, promstorage.AOptions{})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
	require.Equal(t, []tsample{{2000, 1}}, readAll(t, s, "a")[lset.String()])
	require.NoError(t, s.Close())

	s = openTest(t, dir, nil)
	defer s.Close()
	app = s.ForTenant("a").AppenderV2(context.Background()).(appenderV2)
	require.NotEqual(t, owner, app.HandleOwner(), "a reopened store's index is another owner")
	require.NoError(t, app.Rollback())
}

// TestKillDurabilityHandles is TestKillDurability with the samples
// appended by series handles, as remote write's series cache appends the
// steady state: every acknowledged batch survives kill -9.
func TestKillDurabilityHandles(t *testing.T) {
	if dir := os.Getenv("LUMINATE_BADGER_CHILD_DIR"); dir != "" {
		handleCrashChild(dir)
		return
	}
	dir, acked := killChild(t, "TestKillDurabilityHandles")
	s := openTest(t, dir, nil)
	defer s.Close()
	got := readAll(t, s, "crash")
	require.Len(t, got, 50)
	for i := range 50 {
		lset := labels.FromStrings("__name__", "crash_metric", "series", strconv.Itoa(i))
		samples := got[lset.String()]
		require.GreaterOrEqual(t, len(samples), acked+1, "series %d lost acknowledged samples", i)
		for b := 0; b <= acked; b++ {
			require.Equal(t, tsample{int64(b) * 1000, float64(b + i)}, samples[b])
		}
	}
}

// handleCrashChild writes as crashChild does, by labels for two batches
// (the first creates the series, the second hands out their handles), by
// handle after, acknowledging each committed batch, until killed.
func handleCrashChild(dir string) {
	s, err := New(Config{Path: dir, ChunkSamples: 30, CheckpointInterval: 50 * time.Millisecond}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	ts := s.ForTenant("crash")
	handles := make([]unsafe.Pointer, 50)
	for b := 0; ; b++ {
		app := ts.AppenderV2(context.Background()).(appenderV2)
		app.HandleOwner()
		for i := range 50 {
			t, v := int64(b)*1000, float64(b+i)
			if handles[i] != nil && app.AppendHandle(handles[i], 0, t, v) {
				continue
			}
			lset := labels.FromStrings("__name__", "crash_metric", "series", strconv.Itoa(i))
			if _, err := app.Append(0, lset, 0, t, v, nil, nil, promstorage.AOptions{}); err != nil {
				fmt.Println("append:", err)
				os.Exit(1)
			}
			handles[i] = app.SeriesHandle()
		}
		if err := app.Commit(); err != nil {
			fmt.Println("commit:", err)
			os.Exit(1)
		}
		fmt.Printf("ack %d\n", b)
	}
}
