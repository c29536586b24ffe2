package badger

import (
	"context"
	"testing"

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
