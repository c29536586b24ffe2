package badger_test

import (
	"context"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/badger"
)

// TestDeleteTarget is issue 14's target: a deletion of 100,000 series is
// invisible to reads at once, and its disk space is reclaimed. It writes
// LUMINATE_DELETE_TARGET_SERIES victim series (skipped when unset; the
// target is 100000) and a tenth as many kept ones, 120 samples each (random walks),
// deletes the victims and cleans, logging the times and the directory's
// bytes at each step:
//
//	LUMINATE_DELETE_TARGET_SERIES=100000 go test -count=1 -run TestDeleteTarget -v ./storage/badger/
func TestDeleteTarget(t *testing.T) {
	victims, _ := strconv.Atoi(os.Getenv("LUMINATE_DELETE_TARGET_SERIES"))
	if victims <= 0 {
		t.Skip("set LUMINATE_DELETE_TARGET_SERIES (100000 for the target)")
	}
	const samples = 120
	kept := victims / 10
	dir := t.TempDir()
	cfg := badger.DefaultConfig()
	cfg.Path = dir
	open := func() *badger.Store {
		s, err := badger.New(cfg, nil, nil)
		require.NoError(t, err)
		return s
	}
	s := open()
	ts := s.ForTenant("acme")
	start := time.Now()
	base := time.Now().Add(-samples*15*time.Second).UnixMilli() / 1000 * 1000
	lsets := make([]labels.Labels, 0, victims+kept)
	for i := range victims {
		lsets = append(lsets, labels.FromStrings("__name__", "victim", "i", strconv.Itoa(i)))
	}
	for i := range kept {
		lsets = append(lsets, labels.FromStrings("__name__", "kept", "i", strconv.Itoa(i)))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	values := make([]float64, len(lsets))
	for r := range samples {
		for lo := 0; lo < len(lsets); lo += 10_000 {
			app := ts.AppenderV2(context.Background())
			for i, l := range lsets[lo:min(lo+10_000, len(lsets))] {
				values[lo+i] += math.Round((rng.Float64()-0.5)*1000) / 100
				_, err := app.Append(0, l, 0, base+int64(r)*15_000, values[lo+i], nil, nil, promstorage.AOptions{})
				require.NoError(t, err)
			}
			require.NoError(t, app.Commit())
		}
	}
	t.Logf("wrote %d series x %d samples in %s", len(lsets), samples, time.Since(start).Round(time.Millisecond))
	require.NoError(t, s.Close())
	t.Logf("bytes after writing (closed): %d", dirBytes(t, dir))
	s = open()
	defer func() { _ = s.Close() }()
	ts = s.ForTenant("acme")

	start = time.Now()
	res, err := ts.DeleteSeries(context.Background(), storage.DeleteRequest{
		Matchers: [][]*labels.Matcher{{labels.MustNewMatcher(labels.MatchEqual, "__name__", "victim")}},
		Start:    math.MinInt64, End: math.MaxInt64, MaxSeries: 1_000_000,
	})
	require.NoError(t, err)
	t.Logf("delete_series of %d series (%d whole): %s", res.Series, res.Whole, time.Since(start).Round(time.Millisecond))
	require.Equal(t, victims, res.Series)

	start = time.Now()
	requireGone(t, ts, kept)
	t.Logf("reads right after: no victim in Select, ChunkQuerier, LabelValues, Cardinality (%d series): checked in %s", kept, time.Since(start).Round(time.Millisecond))
	t.Logf("bytes after delete_series: %d", dirBytes(t, dir))

	start = time.Now()
	require.NoError(t, ts.CleanTombstones(context.Background()))
	t.Logf("clean_tombstones: %s; bytes right after: %d", time.Since(start).Round(time.Millisecond), dirBytes(t, dir))
	requireGone(t, ts, kept)
	for i := 1; i <= 3; i++ {
		time.Sleep(10 * time.Second)
		t.Logf("bytes %d s after clean_tombstones, open: %d", 10*i, dirBytes(t, dir))
	}
	require.NoError(t, s.Close())
	t.Logf("bytes after close: %d", dirBytes(t, dir))
	for i := range 3 {
		s = open()
		time.Sleep(10 * time.Second) // Badger compacts in the background
		require.NoError(t, s.Close())
		t.Logf("bytes after reopen %d, 10 s and close: %d", i+1, dirBytes(t, dir))
	}
	s = open()
	requireGone(t, s.ForTenant("acme"), kept)
}

func requireGone(t *testing.T, ts storage.TenantStore, kept int) {
	t.Helper()
	ctx := context.Background()
	q, err := ts.Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "victim"))
	require.False(t, set.Next(), "a victim in Select")
	require.NoError(t, set.Err())
	n := 0
	for set := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "kept")); set.Next(); n++ {
	}
	require.Equal(t, kept, n, "kept series")
	names, _, err := q.LabelValues(ctx, "__name__", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"kept"}, names)
	cq, err := ts.ChunkQuerier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer cq.Close()
	cs := cq.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "victim"))
	require.False(t, cs.Next(), "a victim in ChunkQuerier")
	card, err := ts.Cardinality(ctx, storage.CardinalityRequest{Limit: 10})
	require.NoError(t, err)
	require.Equal(t, uint64(kept), card.NumSeries)
}

// dirBytes is the size of the files under dir.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Sys().(*syscall.Stat_t).Blocks * 512 // allocated, as du counts: Badger preallocates sparse files
		}
		return err
	}))
	return n
}
