package api_test

import (
	"context"
	"log/slog"
	"testing"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/api"
	"github.com/luminate-io/luminate/storage/badger"
	"github.com/luminate-io/luminate/tenancy"
)

// The usage-counting views keep the Badger appender's series handles
// (which remotewrite's and otlp's series caches need: hidden, every
// sample took the labels' path) and count the samples appended by handle.
func TestCountingTenantsKeepHandles(t *testing.T) {
	store, err := badger.New(badger.Config{Path: t.TempDir()}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	u := tenancy.NewUsage()
	view := api.CountingTenants(store, u).ForTenant("acme")
	type handles interface {
		HandleOwner() uint64
		SeriesHandle() unsafe.Pointer
		AppendHandle(h unsafe.Pointer, st, t int64, v float64) bool
		HistogramsValidated()
	}
	ls := labels.FromStrings("__name__", "up", "job", "a")
	app := view.AppenderV2(context.Background())
	_, err = app.Append(0, ls, 0, 1000, 1, nil, nil, promstorage.AOptions{})
	require.NoError(t, err)
	require.NoError(t, app.Commit())

	app = view.AppenderV2(context.Background())
	h, ok := app.(handles)
	require.True(t, ok, "%T hides the store's handles", app)
	require.NotZero(t, h.HandleOwner())
	_, err = app.Append(0, ls, 0, 2000, 2, nil, nil, promstorage.AOptions{})
	require.NoError(t, err)
	ser := h.SeriesHandle()
	require.NotNil(t, ser)
	require.True(t, h.AppendHandle(ser, 0, 3000, 3))
	require.NoError(t, app.Commit())
	require.Equal(t, uint64(3), u.Counts("acme").SamplesIngested)
}
