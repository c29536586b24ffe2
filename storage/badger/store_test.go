package badger

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

func openTest(t testing.TB, dir string, mod func(*Config)) *Store {
	t.Helper()
	cfg := Config{Path: dir}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	return s
}

type tsample struct {
	t int64
	v float64
}

func readAll(t testing.TB, s *Store, id tenancy.ID, ms ...*labels.Matcher) map[string][]tsample {
	t.Helper()
	q, err := s.ForTenant(id).Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	if len(ms) == 0 {
		ms = []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")}
	}
	set := q.Select(context.Background(), true, nil, ms...)
	out := map[string][]tsample{}
	var it chunkenc.Iterator
	for set.Next() {
		ser := set.At()
		it = ser.Iterator(it)
		var got []tsample
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			got = append(got, tsample{ts, v})
		}
		require.NoError(t, it.Err())
		out[ser.Labels().String()] = got
	}
	require.NoError(t, set.Err())
	return out
}

func TestOutOfOrderAcrossSealedChunks(t *testing.T) {
	s := openTest(t, t.TempDir(), func(c *Config) { c.ChunkSamples = 10 })
	defer s.Close()
	ts := s.ForTenant("a")
	lset := labels.FromStrings("__name__", "m", "job", "x")
	app := ts.AppenderV2(context.Background())
	for i := int64(100); i < 150; i++ { // five sealed chunks
		_, err := app.Append(0, lset, 0, i*1000, float64(i), nil, nil, promstorage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	app = ts.AppenderV2(context.Background())
	// Older than everything, inside a sealed chunk (replacing), inside the head, and a duplicate.
	for _, smp := range []tsample{{5000, 5}, {120000, -120}, {148500, 148.5}, {149000, 149}} {
		_, err := app.Append(0, lset, 0, smp.t, smp.v, nil, nil, promstorage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	got := readAll(t, s, "a")[lset.String()]
	want := []tsample{{5000, 5}}
	for i := int64(100); i < 150; i++ {
		v := float64(i)
		if i == 120 {
			v = -120
		}
		want = append(want, tsample{i * 1000, v})
		if i == 148 {
			want = append(want, tsample{148500, 148.5})
		}
	}
	require.Equal(t, want, got)
}

// TestKillDurability runs the store in a child process, kills it with
// SIGKILL while it ingests, and checks that every acknowledged commit is
// there after reopening.
func TestKillDurability(t *testing.T) {
	if dir := os.Getenv("LUMINATE_BADGER_CHILD_DIR"); dir != "" {
		crashChild(dir)
		return
	}
	dir, acked := killChild(t, "TestKillDurability")
	s := openTest(t, dir, nil)
	defer s.Close()
	got := readAll(t, s, "crash")
	require.Len(t, got, 50)
	for i := 0; i < 50; i++ {
		lset := labels.FromStrings("__name__", "crash_metric", "series", strconv.Itoa(i))
		samples := got[lset.String()]
		// Every acknowledged batch b wrote t=b*1000 with value b+i.
		require.GreaterOrEqual(t, len(samples), acked+1, "series %d lost acknowledged samples", i)
		for b := 0; b <= acked; b++ {
			require.Equal(t, tsample{int64(b) * 1000, float64(b + i)}, samples[b])
		}
	}
}

// crashHistogram is what the child of TestKillDurabilityHistograms writes
// in batch b to series i: integer histograms to even series, float ones to
// odd series, with a stale marker now and then.
func crashHistogram(b, i int) sample {
	h := testHistogram(testSchemas[i%len(testSchemas)], b+i)
	if b%37 == 36 {
		h = staleHistogram()
	}
	return histSample(int64(b)*1000, h, i%2 == 1)
}

// TestKillDurabilityHistograms is TestKillDurability with native
// histograms: every acknowledged histogram is there, bit for bit, after a
// SIGKILL.
func TestKillDurabilityHistograms(t *testing.T) {
	if dir := os.Getenv("LUMINATE_BADGER_CHILD_DIR"); dir != "" {
		crashChild(dir)
		return
	}
	dir, acked := killChild(t, "TestKillDurabilityHistograms", "LUMINATE_BADGER_CHILD_HIST=1")
	s := openTest(t, dir, nil)
	defer s.Close()
	got := readSamples(t, s, "crash")
	require.Len(t, got, 50)
	for i := 0; i < 50; i++ {
		lset := labels.FromStrings("__name__", "crash_metric", "series", strconv.Itoa(i))
		samples := got[lset.String()]
		require.GreaterOrEqual(t, len(samples), acked+1, "series %d lost acknowledged samples", i)
		var want []sample
		for b := 0; b <= acked; b++ {
			want = append(want, crashHistogram(b, i))
		}
		requireSamples(t, want, samples[:acked+1], false, lset.String())
	}
}

// killChild runs test in a child process writing to a new directory with
// crashChild, kills it with SIGKILL once it acknowledged 300 batches, and
// returns the directory and the last batch acknowledged.
func killChild(t *testing.T, test string, env ...string) (string, int) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.v")
	cmd.Env = append(append(os.Environ(), env...), "LUMINATE_BADGER_CHILD_DIR="+dir)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	acked := -1
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if n, ok := strings.CutPrefix(line, "ack "); ok {
			acked, err = strconv.Atoi(n)
			require.NoError(t, err)
			if acked >= 300 {
				break
			}
		}
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	go func() { _, _ = io.Copy(io.Discard, out) }()
	_ = cmd.Wait()
	require.GreaterOrEqual(t, acked, 300, "child did not get far enough")
	return dir, acked
}

func crashChild(dir string) {
	s, err := New(Config{Path: dir, ChunkSamples: 30, CheckpointInterval: 50 * time.Millisecond}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	ts := s.ForTenant("crash")
	hist := os.Getenv("LUMINATE_BADGER_CHILD_HIST") != ""
	for b := 0; ; b++ {
		app := ts.AppenderV2(context.Background())
		for i := 0; i < 50; i++ {
			lset := labels.FromStrings("__name__", "crash_metric", "series", strconv.Itoa(i))
			smp := sample{t: int64(b) * 1000, v: float64(b + i)}
			if hist {
				smp = crashHistogram(b, i)
			}
			if _, err := app.Append(0, lset, 0, smp.t, smp.v, smp.h, smp.fh, promstorage.AOptions{}); err != nil {
				fmt.Println("append:", err)
				os.Exit(1)
			}
		}
		if err := app.Commit(); err != nil {
			fmt.Println("commit:", err)
			os.Exit(1)
		}
		fmt.Printf("ack %d\n", b)
	}
}

func TestSecondOpenFailsClearly(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	defer s.Close()
	_, err := New(Config{Path: dir}, nil, nil)
	require.ErrorIs(t, err, ErrLocked)
}

func TestRetentionDeletesOldChunks(t *testing.T) {
	s := openTest(t, t.TempDir(), func(c *Config) { c.ChunkSamples = 5 })
	defer s.Close()
	ts := s.ForTenant("a")
	old := labels.FromStrings("__name__", "old")
	recent := labels.FromStrings("__name__", "recent")
	app := ts.AppenderV2(context.Background())
	for i := int64(0); i < 10; i++ {
		_, err := app.Append(0, old, 0, i, 1, nil, nil, promstorage.AOptions{})
		require.NoError(t, err)
		_, err = app.Append(0, recent, 0, 1000+i, 2, nil, nil, promstorage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	require.NoError(t, s.deleteBefore(500))
	got := readAll(t, s, "a")
	require.NotContains(t, got, old.String())
	require.Len(t, got[recent.String()], 10)
}

func TestIdleHeadsAreSealedAndDropped(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	ts := s.ForTenant("a")
	app := ts.AppenderV2(context.Background())
	lset := labels.FromStrings("__name__", "idle")
	for i := int64(0); i < 3; i++ {
		_, err := app.Append(0, lset, 0, i, float64(i), nil, nil, promstorage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	tn, _ := s.tenantFor("a", false)
	require.EqualValues(t, 1, tn.active.Load())
	s.sealIdle(time.Now().Add(time.Hour))
	require.EqualValues(t, 0, tn.active.Load())
	ser := tn.all[0]
	require.Nil(t, ser.head)
	require.Empty(t, ser.unflushed)
	require.Len(t, readAll(t, s, "a")[lset.String()], 3)
}

var timeFar = time.Now().Add(100 * 365 * 24 * time.Hour)

func TestIntersects(t *testing.T) {
	mk := func(ids ...uint64) []*series {
		out := make([]*series, len(ids))
		for i, id := range ids {
			out[i] = &series{id: id}
		}
		return out
	}
	for _, tc := range []struct {
		a, b []*series
		want bool
	}{
		{mk(), mk(1), false},
		{mk(1, 3, 5), mk(2, 4, 6), false},
		{mk(1, 3, 5), mk(5), true},
		{mk(7), mk(1, 2, 3, 4, 5, 6, 7), true},
		{mk(8), mk(1, 2, 3, 4, 5, 6, 7), false},
		{mk(2, 9), mk(1, 3, 5, 7, 9), true},
	} {
		require.Equal(t, tc.want, intersects(tc.a, tc.b), "%v %v", tc.a, tc.b)
		require.Equal(t, tc.want, intersects(tc.b, tc.a))
	}
}

// crash stops s the way kill -9 does as far as the store is concerned: no
// checkpoint, no final flush of heads; Badger keeps what it was given.
func crash(t testing.TB, s *Store) {
	t.Helper()
	s.closed.Store(true)
	s.cancel()
	<-s.done
	require.NoError(t, s.wal.close())
	require.NoError(t, s.db.Close())
	s.unlock() // the kernel releases it when the process dies
}

// TestCrashBeforeCheckpointWithSealedChunks: a new series' 'S' record is
// left to the next checkpoint, but its chunks sealed before that go to
// Badger at once. After a crash before any checkpoint, recovery must know
// those chunks, or the WAL replay rebuilds them into the head a second
// time.
func TestCrashBeforeCheckpointWithSealedChunks(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, func(c *Config) { c.ChunkSamples = 10; c.CheckpointInterval = time.Hour })
	lset := labels.FromStrings("__name__", "m")
	for i := int64(0); i < 35; i++ { // three sealed chunks and an open head
		app := s.ForTenant("a").AppenderV2(context.Background())
		_, err := app.Append(0, lset, 0, i*1000, float64(i), nil, nil, promstorage.AOptions{})
		require.NoError(t, err)
		require.NoError(t, app.Commit())
	}
	crash(t, s)

	// Reopen with larger chunks and write on, so that whatever replay put
	// in the head is sealed and read next to the chunks already on disk.
	s = openTest(t, dir, nil)
	defer s.Close()
	for i := int64(35); i < 200; i++ {
		app := s.ForTenant("a").AppenderV2(context.Background())
		_, err := app.Append(0, lset, 0, i*1000, float64(i), nil, nil, promstorage.AOptions{})
		require.NoError(t, err)
		require.NoError(t, app.Commit())
	}
	var want []tsample
	for i := int64(0); i < 200; i++ {
		want = append(want, tsample{i * 1000, float64(i)})
	}
	require.Equal(t, want, readAll(t, s, "a")[lset.String()])
}
