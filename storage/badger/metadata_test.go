package badger

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

func metadataOf(typ, help string) metadata.Metadata {
	return metadata.Metadata{Type: model.MetricType(typ), Help: help, Unit: "seconds"}
}

func readMetadata(t testing.TB, s *Store, id tenancy.ID, metric string, limit int) map[string]metadata.Metadata {
	t.Helper()
	md, err := s.ForTenant(id).Metadata(context.Background(), metric, limit)
	require.NoError(t, err)
	return md
}

func TestMetadataLatestWins(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	ts := s.ForTenant("t")
	app := ts.AppenderV2(context.Background())
	put := func(lset labels.Labels, family string, m metadata.Metadata) {
		_, err := app.Append(0, lset, 0, 1000, 1, nil, nil, promstorage.AppendV2Options{MetricFamilyName: family, Metadata: m})
		require.NoError(t, err)
	}
	// The family name when given, else __name__; within a commit and
	// across commits, the latest written wins.
	put(labels.FromStrings("__name__", "http_duration_seconds_bucket", "le", "1"), "http_duration_seconds", metadataOf("histogram", "first"))
	put(labels.FromStrings("__name__", "http_duration_seconds_bucket", "le", "2"), "http_duration_seconds", metadataOf("histogram", "second"))
	put(labels.FromStrings("__name__", "up"), "", metadataOf("gauge", "up help"))
	put(labels.FromStrings("__name__", "empty"), "", metadata.Metadata{}) // nothing to store
	require.NoError(t, app.Commit())
	require.Equal(t, map[string]metadata.Metadata{
		"http_duration_seconds": metadataOf("histogram", "second"),
		"up":                    metadataOf("gauge", "up help"),
	}, readMetadata(t, s, "t", "", 0))

	app = ts.AppenderV2(context.Background())
	put(labels.FromStrings("__name__", "up", "job", "x"), "", metadataOf("gauge", "up help, revised"))
	require.NoError(t, app.Commit())
	require.Equal(t, metadataOf("gauge", "up help, revised"), readMetadata(t, s, "t", "up", 0)["up"])

	// A rolled back appender stores nothing.
	app = ts.AppenderV2(context.Background())
	put(labels.FromStrings("__name__", "up"), "", metadataOf("gauge", "rolled back"))
	require.NoError(t, app.Rollback())
	require.Equal(t, metadataOf("gauge", "up help, revised"), readMetadata(t, s, "t", "up", 0)["up"])
}

func TestMetadataFilterAndLimit(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	app := s.ForTenant("t").AppenderV2(context.Background())
	for _, name := range []string{"c", "a", "d", "b"} {
		_, err := app.Append(0, labels.FromStrings("__name__", name), 0, 1000, 1, nil, nil, promstorage.AppendV2Options{Metadata: metadataOf("gauge", name)})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	require.Len(t, readMetadata(t, s, "t", "", 0), 4)
	require.Equal(t, map[string]metadata.Metadata{"a": metadataOf("gauge", "a"), "b": metadataOf("gauge", "b")}, readMetadata(t, s, "t", "", 2))
	require.Equal(t, map[string]metadata.Metadata{"d": metadataOf("gauge", "d")}, readMetadata(t, s, "t", "d", 0))
	require.Empty(t, readMetadata(t, s, "t", "nope", 0))
}

func TestMetadataBound(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(Config{Path: t.TempDir(), MetadataLimits: func(tenancy.ID) int { return 2 }}, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	defer s.Close()
	ts := s.ForTenant("t")
	for i, name := range []string{"a", "b", "c", "a"} {
		app := ts.AppenderV2(context.Background())
		_, err := app.Append(0, labels.FromStrings("__name__", name), 0, int64(i)*1000, 1, nil, nil, promstorage.AppendV2Options{Metadata: metadataOf("gauge", name+" "+string(rune('0'+i)))})
		require.NoError(t, err, "the sample is kept when its metadata is not")
		require.NoError(t, app.Commit())
	}
	// c is beyond the bound; a, known, is still updated.
	require.Equal(t, map[string]metadata.Metadata{"a": metadataOf("gauge", "a 3"), "b": metadataOf("gauge", "b 1")}, readMetadata(t, s, "t", "", 0))
	require.Len(t, readAll(t, s, "t")[`{__name__="c"}`], 1)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP luminate_badger_metadata_dropped_total Metadata of new metric families not stored because their tenant is at --limits.max-metadata (or its max_metadata override), counted once per family and commit; the samples are stored.
# TYPE luminate_badger_metadata_dropped_total counter
luminate_badger_metadata_dropped_total 1
`), "luminate_badger_metadata_dropped_total"))
}

func TestMetadataRestartAndIsolation(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	for _, id := range []tenancy.ID{"acme", "acme-1"} {
		app := s.ForTenant(id).AppenderV2(context.Background())
		_, err := app.Append(0, labels.FromStrings("__name__", "m"), 0, 1000, 1, nil, nil, promstorage.AppendV2Options{Metadata: metadataOf("counter", string(id))})
		require.NoError(t, err)
		require.NoError(t, app.Commit())
	}
	check := func(s *Store) {
		t.Helper()
		require.Equal(t, map[string]metadata.Metadata{"m": metadataOf("counter", "acme")}, readMetadata(t, s, "acme", "", 0))
		require.Equal(t, map[string]metadata.Metadata{"m": metadataOf("counter", "acme-1")}, readMetadata(t, s, "acme-1", "", 0))
		require.Empty(t, readMetadata(t, s, "bravo", "", 0))
	}
	check(s)
	require.NoError(t, s.Close())
	s = openTest(t, dir, nil)
	check(s)
	require.NoError(t, s.aux.compact())
	crash(t, s)
	require.NoError(t, s.aux.close())
	s = openTest(t, dir, nil)
	defer s.Close()
	check(s)
}
