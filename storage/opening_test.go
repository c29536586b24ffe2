package storage_test

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/badger"
)

// TestOpening: until the store is open every call is refused with
// ErrUnavailable naming what opening does; then calls reach the store.
func TestOpening(t *testing.T) {
	dir := t.TempDir()
	release := make(chan struct{})
	o := storage.OpenInBackground(func(ctx context.Context) (storage.MetricsStore, error) {
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return badger.New(badger.Config{Path: dir}, nil, nil)
	}, func() string { return "replaying WAL: 42%" })
	ctx := context.Background()
	lset := labels.FromStrings("__name__", "m")

	err := o.Ready(ctx)
	require.ErrorIs(t, err, storage.ErrUnavailable)
	require.ErrorContains(t, err, "replaying WAL: 42%")
	h := o.Health(ctx)
	require.Equal(t, storage.StatusDown, h.Read.Status)
	require.Contains(t, h.Write.Message, "replaying WAL: 42%")
	ts := o.ForTenant("acme")
	app := ts.AppenderV2(ctx)
	_, err = app.Append(0, lset, 0, 1, 1, nil, nil, promstorage.AOptions{})
	require.ErrorIs(t, err, storage.ErrUnavailable)
	require.ErrorIs(t, app.Commit(), storage.ErrUnavailable)
	require.NoError(t, app.Rollback())
	app2 := ts.AppenderV2(ctx)
	_, err = app2.Append(0, lset, 0, 1, 1, nil, nil, promstorage.AppendV2Options{})
	require.ErrorIs(t, err, storage.ErrUnavailable)
	_, err = ts.Querier(math.MinInt64, math.MaxInt64)
	require.ErrorIs(t, err, storage.ErrUnavailable)
	_, err = ts.ChunkQuerier(math.MinInt64, math.MaxInt64)
	require.ErrorIs(t, err, storage.ErrUnavailable)
	_, err = ts.Cardinality(ctx, storage.CardinalityRequest{Limit: 10})
	require.ErrorIs(t, err, storage.ErrUnavailable)

	close(release)
	<-o.Done()
	require.NoError(t, o.Err())
	require.NoError(t, o.Ready(ctx))
	app = o.ForTenant("acme").AppenderV2(ctx)
	_, err = app.Append(0, lset, 0, 1, 1, nil, nil, promstorage.AOptions{})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
	q, err := o.ForTenant("acme").Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	set := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
	require.True(t, set.Next())
	require.NoError(t, q.Close())
	require.NoError(t, o.Close())
	require.ErrorIs(t, o.Ready(ctx), storage.ErrUnavailable, "closed")
}

// TestOpeningClose: Close stops an open in progress and waits for it; a
// failed open is reported by Err and refuses calls.
func TestOpeningClose(t *testing.T) {
	stopped := make(chan struct{})
	o := storage.OpenInBackground(func(ctx context.Context) (storage.MetricsStore, error) {
		<-ctx.Done()
		close(stopped)
		return nil, ctx.Err()
	}, nil)
	require.ErrorContains(t, o.Ready(context.Background()), "starting: opening")
	require.NoError(t, o.Close())
	<-stopped

	boom := errors.New("corrupt")
	o = storage.OpenInBackground(func(context.Context) (storage.MetricsStore, error) { return nil, boom }, nil)
	<-o.Done()
	require.ErrorIs(t, o.Err(), boom)
	err := o.Ready(context.Background())
	require.ErrorIs(t, err, storage.ErrUnavailable)
	require.ErrorIs(t, err, boom)
	require.NoError(t, o.Close())
}
