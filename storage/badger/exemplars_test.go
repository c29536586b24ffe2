package badger

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

func ex(ts int64, v float64, kv ...string) exemplar.Exemplar {
	return exemplar.Exemplar{Labels: labels.FromStrings(kv...), Value: v, Ts: ts, HasTs: true}
}

// appendV2 appends one float sample with opts in its own commit.
func appendV2(t testing.TB, s *Store, id tenancy.ID, lset labels.Labels, ts int64, v float64, opts promstorage.AppendV2Options) error {
	t.Helper()
	app := s.ForTenant(id).AppenderV2(context.Background())
	_, err := app.Append(0, lset, 0, ts, v, nil, nil, opts)
	require.NoError(t, app.Commit())
	return err
}

func selectExemplars(t testing.TB, s *Store, id tenancy.ID, start, end int64, ms ...[]*labels.Matcher) []exemplar.QueryResult {
	t.Helper()
	q, err := s.ForTenant(id).ExemplarQuerier(context.Background())
	require.NoError(t, err)
	if len(ms) == 0 {
		ms = [][]*labels.Matcher{{labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")}}
	}
	res, err := q.Select(start, end, ms...)
	require.NoError(t, err)
	return res
}

// exemplarTimes flattens a result to "series: ts ts ...".
func exemplarTimes(res []exemplar.QueryResult) []string {
	var out []string
	for _, r := range res {
		var ts []string
		for _, e := range r.Exemplars {
			ts = append(ts, strconv.FormatInt(e.Ts, 10))
		}
		out = append(out, r.SeriesLabels.String()+": "+strings.Join(ts, " "))
	}
	return out
}

func TestExemplarsStoreAndSelect(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	a := labels.FromStrings("__name__", "req_total", "job", "api")
	b := labels.FromStrings("__name__", "req_total", "job", "db")
	c := labels.FromStrings("__name__", "other", "job", "api")
	require.NoError(t, appendV2(t, s, "t1", a, 1000, 1, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{ex(900, 0.5, "trace_id", "a1")}}))
	require.NoError(t, appendV2(t, s, "t1", b, 1000, 1, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{ex(950, 0.7, "trace_id", "b1")}}))
	require.NoError(t, appendV2(t, s, "t1", a, 2000, 2, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{ex(1900, 0.6, "trace_id", "a2"), ex(1950, 0.8, "trace_id", "a3")}}))
	require.NoError(t, appendV2(t, s, "t1", c, 2000, 2, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{ex(2000, 9, "trace_id", "c1")}}))
	// A sample without exemplars adds none.
	require.NoError(t, appendV2(t, s, "t1", b, 3000, 3, promstorage.AppendV2Options{}))

	res := selectExemplars(t, s, "t1", math.MinInt64, math.MaxInt64)
	require.Equal(t, []string{
		`{__name__="other", job="api"}: 2000`,
		`{__name__="req_total", job="api"}: 900 1900 1950`,
		`{__name__="req_total", job="db"}: 950`,
	}, exemplarTimes(res))
	require.Equal(t, ex(1900, 0.6, "trace_id", "a2"), res[1].Exemplars[1])
	require.False(t, res[1].SeriesLabels.Has(tenancy.Label))

	// Time range, inclusive at both ends.
	require.Equal(t, []string{`{__name__="req_total", job="api"}: 900 1900`, `{__name__="req_total", job="db"}: 950`},
		exemplarTimes(selectExemplars(t, s, "t1", 900, 1900, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "req_total")})))
	// Matcher sets are OR'ed, the matchers of a set AND'ed.
	require.Equal(t, []string{`{__name__="other", job="api"}: 2000`, `{__name__="req_total", job="db"}: 950`},
		exemplarTimes(selectExemplars(t, s, "t1", 0, 5000,
			[]*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "req_total"), labels.MustNewMatcher(labels.MatchEqual, "job", "db")},
			[]*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "other")})))
	require.Empty(t, selectExemplars(t, s, "t1", 0, 5000, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", "none")}))
	require.Empty(t, selectExemplars(t, s, "t1", 3000, 5000))
	// The samples are stored as usual.
	require.Len(t, readAll(t, s, "t1")[a.String()], 2)
}

func TestExemplarValidation(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	lset := labels.FromStrings("__name__", "m")
	long := ex(1000, 1, "trace_id", strings.Repeat("x", exemplar.ExemplarMaxLabelSetLength))
	err := appendV2(t, s, "t", lset, 1000, 1, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{ex(1000, 1, "trace_id", "ok"), long}})
	var perr *promstorage.AppendPartialError
	require.ErrorAs(t, err, &perr)
	require.Len(t, perr.ExemplarErrors, 1)
	require.Equal(t, 1, perr.ExemplarErrors[0].Index)
	require.ErrorIs(t, perr.ExemplarErrors[0].Err, promstorage.ErrExemplarLabelLength)

	// A duplicate of the newest is dropped silently, in the same commit or
	// a later one; an older one is refused; the samples are kept all the same.
	err = appendV2(t, s, "t", lset, 2000, 2, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{ex(1000, 1, "trace_id", "ok")}})
	require.NoError(t, err)
	err = appendV2(t, s, "t", lset, 3000, 3, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{
		ex(999, 1, "trace_id", "old"), ex(3000, 3, "trace_id", "new"), ex(3000, 3, "trace_id", "new"), ex(2999, 1, "trace_id", "older than the previous"),
	}})
	require.ErrorAs(t, err, &perr)
	require.Len(t, perr.ExemplarErrors, 2)
	require.Equal(t, 0, perr.ExemplarErrors[0].Index)
	require.ErrorIs(t, perr.ExemplarErrors[0].Err, promstorage.ErrOutOfOrderExemplar)
	require.Equal(t, 3, perr.ExemplarErrors[1].Index)
	require.ErrorIs(t, perr.ExemplarErrors[1].Err, promstorage.ErrOutOfOrderExemplar)
	// Equal timestamps with a greater value are kept (a native histogram's
	// exemplars of one scrape), a smaller value is out of order.
	err = appendV2(t, s, "t", lset, 4000, 4, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{ex(3000, 4, "trace_id", "bucket2"), ex(3000, 2, "trace_id", "bucket0")}})
	require.ErrorAs(t, err, &perr)
	require.Equal(t, 1, perr.ExemplarErrors[0].Index)

	require.Equal(t, []tsample{{1000, 1}, {2000, 2}, {3000, 3}, {4000, 4}}, readAll(t, s, "t")[lset.String()])
	res := selectExemplars(t, s, "t", math.MinInt64, math.MaxInt64)
	require.Len(t, res, 1)
	require.Equal(t, []exemplar.Exemplar{ex(1000, 1, "trace_id", "ok"), ex(3000, 3, "trace_id", "new"), ex(3000, 4, "trace_id", "bucket2")}, res[0].Exemplars)

	// A refused exemplar leaves its sample and the other exemplars stored.
	err = appendV2(t, s, "t", lset, 5000, 5, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{ex(10, 1), ex(5000, 5, "trace_id", "v1")}})
	require.ErrorAs(t, err, &perr)
	require.Len(t, perr.ExemplarErrors, 1)
	require.ErrorIs(t, perr.ExemplarErrors[0].Err, promstorage.ErrOutOfOrderExemplar)
	res = selectExemplars(t, s, "t", 5000, 5000)
	require.Equal(t, []string{`{__name__="m"}: 5000`}, exemplarTimes(res))

	// AppendExemplars, of a series with samples only.
	app2 := s.ForTenant("t").AppenderV2(context.Background())
	_, err = app2.(promstorage.ExemplarAppenderV2).AppendExemplars(0, labels.FromStrings("__name__", "nosuch"), []exemplar.Exemplar{ex(5500, 1)})
	require.ErrorIs(t, err, promstorage.ErrNotFound)
	_, err = app2.(promstorage.ExemplarAppenderV2).AppendExemplars(0, lset, []exemplar.Exemplar{ex(10, 1), ex(5500, 1)})
	require.ErrorAs(t, err, &perr)
	require.Equal(t, 0, perr.ExemplarErrors[0].Index)
	require.NoError(t, app2.Commit())
	require.Equal(t, []string{`{__name__="m"}: 5500`}, exemplarTimes(selectExemplars(t, s, "t", 5500, 5500)))

	// Stale markers carry no exemplars.
	require.NoError(t, appendV2(t, s, "t", lset, 6000, math.Float64frombits(0x7ff0000000000002), promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{ex(6000, 1)}}))
	require.Empty(t, selectExemplars(t, s, "t", 6000, 6000))
}

func TestExemplarBoundDropsOldest(t *testing.T) {
	dir := t.TempDir()
	limits := func(id tenancy.ID) int {
		if id == "small" {
			return 5
		}
		return 0
	}
	s := openTest(t, dir, func(c *Config) { c.ExemplarLimits = limits })
	a := labels.FromStrings("__name__", "m", "s", "a")
	b := labels.FromStrings("__name__", "m", "s", "b")
	for i := int64(1); i <= 8; i++ {
		lset := a
		if i%2 == 0 {
			lset = b
		}
		for _, id := range []tenancy.ID{"small", "big"} {
			require.NoError(t, appendV2(t, s, id, lset, i*1000, float64(i), promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{ex(i*1000, float64(i))}}))
		}
	}
	want := []string{`{__name__="m", s="a"}: 5000 7000`, `{__name__="m", s="b"}: 4000 6000 8000`}
	require.Equal(t, want, exemplarTimes(selectExemplars(t, s, "small", math.MinInt64, math.MaxInt64)))
	require.Equal(t, []string{`{__name__="m", s="a"}: 1000 3000 5000 7000`, `{__name__="m", s="b"}: 2000 4000 6000 8000`},
		exemplarTimes(selectExemplars(t, s, "big", math.MinInt64, math.MaxInt64)))
	// Every sample is kept.
	require.Len(t, readAll(t, s, "small")[a.String()], 4)

	// The bound holds on disk too: a snapshot holds what memory holds.
	require.NoError(t, s.aux.compact())
	require.NoError(t, s.Close())
	s = openTest(t, dir, nil) // unlimited now: nothing evicted comes back
	defer s.Close()
	require.Equal(t, want, exemplarTimes(selectExemplars(t, s, "small", math.MinInt64, math.MaxInt64)))
}

func TestExemplarsRestart(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	lset := labels.FromStrings("__name__", "m")
	put := func(s *Store, from, to int64) {
		for i := from; i < to; i++ {
			require.NoError(t, appendV2(t, s, "t", lset, i*1000, float64(i), promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{ex(i*1000, float64(i), "trace_id", strconv.FormatInt(i, 10))}}))
		}
	}
	times := func(from, to int64) []string {
		var ts []string
		for i := from; i < to; i++ {
			ts = append(ts, strconv.FormatInt(i*1000, 10))
		}
		return []string{`{__name__="m"}: ` + strings.Join(ts, " ")}
	}
	put(s, 0, 10)
	require.NoError(t, s.Close())

	s = openTest(t, dir, nil)
	require.Equal(t, times(0, 10), exemplarTimes(selectExemplars(t, s, "t", math.MinInt64, math.MaxInt64)))
	// A snapshot, then more in the log, then a crash (no Close).
	require.NoError(t, s.aux.compact())
	put(s, 10, 15)
	crash(t, s)
	require.NoError(t, s.aux.close())

	// Reloaded bounded: only the newest of the tenant's bound.
	s = openTest(t, dir, func(c *Config) { c.ExemplarLimits = func(tenancy.ID) int { return 4 } })
	require.Equal(t, times(11, 15), exemplarTimes(selectExemplars(t, s, "t", math.MinInt64, math.MaxInt64)))
	res := selectExemplars(t, s, "t", 14000, 14000)
	require.Equal(t, ex(14000, 14, "trace_id", "14"), res[0].Exemplars[0])
	// The covered segments and the older snapshot are gone.
	require.NoError(t, s.aux.compact())
	segs, err := listSegments(filepath.Join(dir, "auxlog"))
	require.NoError(t, err)
	require.Len(t, segs, 1)
	snaps, err := listSegments(filepath.Join(dir, "auxlog", "snapshots"))
	require.NoError(t, err)
	require.Len(t, snaps, 1)
	require.NoError(t, s.Close())

	s = openTest(t, dir, nil)
	defer s.Close()
	require.Equal(t, times(11, 15), exemplarTimes(selectExemplars(t, s, "t", math.MinInt64, math.MaxInt64)))
}

func TestExemplarRetention(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	lset := labels.FromStrings("__name__", "m")
	now := time.Now().UnixMilli()
	old := now - int64(48*time.Hour/time.Millisecond)
	for _, ts := range []int64{old, old + 1, now - 1000, now} {
		require.NoError(t, appendV2(t, s, "t", lset, ts, 1, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{ex(ts, 1)}}))
	}
	require.NoError(t, appendV2(t, s, "t", labels.FromStrings("__name__", "gone"), old, 1, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{ex(old, 1)}}))
	require.NoError(t, s.Close())

	// Reloading drops what retention no longer keeps.
	s = openTest(t, dir, func(c *Config) { c.Retention = 24 * time.Hour })
	want := []string{fmt.Sprintf(`{__name__="m"}: %d %d`, now-1000, now)}
	require.Equal(t, want, exemplarTimes(selectExemplars(t, s, "t", math.MinInt64, math.MaxInt64)))
	require.NoError(t, s.Close())

	// The retention job drops them in memory, and the snapshot it starts
	// from disk.
	s = openTest(t, dir, nil)
	require.Len(t, selectExemplars(t, s, "t", math.MinInt64, math.MaxInt64), 2)
	s.aux.retain(now - 1000)
	require.Equal(t, want, exemplarTimes(selectExemplars(t, s, "t", math.MinInt64, math.MaxInt64)))
	require.NoError(t, s.Close()) // waits for the snapshot
	s = openTest(t, dir, nil)
	defer s.Close()
	require.Equal(t, want, exemplarTimes(selectExemplars(t, s, "t", math.MinInt64, math.MaxInt64)))
}

func TestExemplarTenantIsolation(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	lset := labels.FromStrings("__name__", "m")
	require.NoError(t, appendV2(t, s, "acme", lset, 1000, 1, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{ex(1000, 1, "trace_id", "acme")}}))
	require.NoError(t, appendV2(t, s, "acme-1", lset, 500, 1, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{ex(500, 1, "trace_id", "acme-1")}}))
	// Each tenant's series has its own newest exemplar: acme-1's older one
	// is not out of order against acme's.
	res := selectExemplars(t, s, "acme", math.MinInt64, math.MaxInt64)
	require.Len(t, res, 1)
	require.Equal(t, []exemplar.Exemplar{ex(1000, 1, "trace_id", "acme")}, res[0].Exemplars)
	res = selectExemplars(t, s, "acme-1", math.MinInt64, math.MaxInt64)
	require.Len(t, res, 1)
	require.Equal(t, []exemplar.Exemplar{ex(500, 1, "trace_id", "acme-1")}, res[0].Exemplars)
	require.Empty(t, selectExemplars(t, s, "bravo", math.MinInt64, math.MaxInt64))
	// A matcher on the tenant label finds nothing of another tenant.
	require.Empty(t, selectExemplars(t, s, "acme", math.MinInt64, math.MaxInt64, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, tenancy.Label, "acme-1")}))
}

// TestExemplarKillDurability kills a child process that commits exemplars
// and metadata with SIGKILL and checks that everything it acknowledged is
// there after reopening.
func TestExemplarKillDurability(t *testing.T) {
	if dir := os.Getenv("LUMINATE_BADGER_EXEMPLAR_CHILD_DIR"); dir != "" {
		exemplarCrashChild(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestExemplarKillDurability$", "-test.v")
	cmd.Env = append(os.Environ(), "LUMINATE_BADGER_EXEMPLAR_CHILD_DIR="+dir)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	acked := -1
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if n, ok := strings.CutPrefix(line, "ack "); ok {
			acked, _ = strconv.Atoi(n)
			if acked >= 300 {
				break
			}
		} else if strings.HasPrefix(line, "open:") || strings.HasPrefix(line, "append:") || strings.HasPrefix(line, "commit:") {
			t.Fatal(line)
		}
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	require.GreaterOrEqual(t, acked, 300)

	s := openTest(t, dir, nil)
	defer s.Close()
	res := selectExemplars(t, s, "crash", math.MinInt64, math.MaxInt64)
	require.Len(t, res, 4)
	for i, r := range res {
		var n int
		for _, e := range r.Exemplars {
			require.Equal(t, float64(e.Ts/1000), e.Value)
			n++
		}
		// Series i got an exemplar in every commit b with b%4 == i.
		require.GreaterOrEqual(t, n, (acked+1-i+3)/4, "series %d", i)
	}
	md, err := s.ForTenant("crash").Metadata(context.Background(), "", 0)
	require.NoError(t, err)
	f := strings.Fields(md["crash_metric"].Help)
	require.GreaterOrEqual(t, len(f), 2)
	n, err := strconv.Atoi(f[1])
	require.NoError(t, err)
	require.GreaterOrEqual(t, n, acked, "metadata of the last acknowledged commit or later")
}

func exemplarCrashChild(dir string) {
	s, err := New(Config{Path: dir}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	ts := s.ForTenant("crash")
	for b := 0; ; b++ {
		app := ts.AppenderV2(context.Background())
		lset := labels.FromStrings("__name__", "crash_metric", "series", strconv.Itoa(b%4))
		opts := promstorage.AppendV2Options{
			Exemplars: []exemplar.Exemplar{ex(int64(b)*1000, float64(b), "trace_id", strings.Repeat("t", 40))},
			Metadata:  metadataOf("counter", "help "+strconv.Itoa(b)+strings.Repeat(" padding", 20)),
		}
		if _, err := app.Append(0, lset, 0, int64(b)*1000, float64(b), nil, nil, opts); err != nil {
			fmt.Println("append:", err)
			os.Exit(1)
		}
		if err := app.Commit(); err != nil {
			fmt.Println("commit:", err)
			os.Exit(1)
		}
		if b%50 == 0 {
			// Snapshots while the child runs, so the kill may land in one.
			go func() { _ = s.aux.compact() }()
		}
		fmt.Printf("ack %d\n", b)
	}
}

// BenchmarkReopenExemplars measures opening a store (after a clean Close)
// of 10,000 series x 10 samples, without exemplars and with 100,000 (one
// per sample, a trace id each), as they land on disk (snapshot plus log)
// and after a compaction (snapshot only).
//
//	go test -run '^$' -bench BenchmarkReopenExemplars -benchtime 10x ./storage/badger/
func BenchmarkReopenExemplars(b *testing.B) {
	const nseries, rounds = 10_000, 10
	series := benchSeries(nseries)
	for _, bc := range []struct {
		name      string
		exemplars bool
		compact   bool
	}{{"exemplars=0", false, false}, {"exemplars=100000", true, false}, {"exemplars=100000/compacted", true, true}} {
		b.Run(bc.name, func(b *testing.B) {
			dir := b.TempDir()
			s := openTest(b, dir, func(c *Config) { c.ExemplarLimits = func(tenancy.ID) int { return 100_000 } })
			ts := s.ForTenant("bench")
			for r := range rounds {
				for start := 0; start < nseries; start += 1000 {
					app := ts.AppenderV2(context.Background())
					for i := start; i < start+1000; i++ {
						var opts promstorage.AppendV2Options
						if bc.exemplars {
							opts.Exemplars = []exemplar.Exemplar{ex(int64(r)*15000, float64(i), "trace_id", fmt.Sprintf("%032x", r*nseries+i))}
						}
						_, err := app.Append(0, series[i], 0, int64(r)*15000, float64(i), nil, nil, opts)
						require.NoError(b, err)
					}
					require.NoError(b, app.Commit())
				}
			}
			if bc.compact {
				require.NoError(b, s.aux.compact())
			}
			require.NoError(b, s.Close())
			var size int64
			_ = filepath.Walk(filepath.Join(dir, "auxlog"), func(_ string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() {
					size += fi.Size()
				}
				return nil
			})
			var cpu time.Duration
			b.ResetTimer()
			for b.Loop() {
				c0 := cpuTime(b)
				s := openTest(b, dir, func(c *Config) { c.ExemplarLimits = func(tenancy.ID) int { return 100_000 } })
				cpu += cpuTime(b) - c0
				b.StopTimer()
				if bc.exemplars {
					require.Len(b, selectExemplars(b, s, "bench", math.MinInt64, math.MaxInt64), nseries)
				}
				require.NoError(b, s.Close())
				b.StartTimer()
			}
			b.ReportMetric(float64(size), "auxlog-bytes")
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
			if !bc.exemplars {
				return
			}
			// The exemplar log alone, and the memory it takes.
			var aux, auxCPU time.Duration
			var heap uint64
			for range 10 {
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m0)
				c0, t0 := cpuTime(b), time.Now()
				x, err := openAux(Config{Path: dir, ExemplarLimits: func(tenancy.ID) int { return 100_000 }}, slog.New(slog.DiscardHandler), nil)
				require.NoError(b, err)
				aux += time.Since(t0)
				auxCPU += cpuTime(b) - c0
				runtime.GC()
				runtime.ReadMemStats(&m1)
				heap += m1.HeapAlloc - m0.HeapAlloc
				require.NoError(b, x.close())
			}
			b.ReportMetric(float64(aux.Microseconds())/10e3, "auxlog-open-ms")
			b.ReportMetric(float64(auxCPU.Microseconds())/10e3, "auxlog-open-cpu-ms")
			b.ReportMetric(float64(heap)/10/100_000, "heap-bytes/exemplar")
		})
	}
}

// TestExemplarsConcurrentWithCompaction commits exemplars and metadata
// from several goroutines while snapshots are taken, crashes, and checks
// that every acknowledged one is back (run it with -race).
func TestExemplarsConcurrentWithCompaction(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	const workers, commits = 4, 60
	done := make(chan struct{})
	compacted := make(chan error, 1)
	go func() {
		var err error
		for {
			select {
			case <-done:
				compacted <- err
				return
			default:
			}
			if cerr := s.aux.compact(); cerr != nil {
				err = cerr
			}
			q, qerr := s.ForTenant("t0").ExemplarQuerier(context.Background())
			if qerr == nil {
				_, _ = q.Select(math.MinInt64, math.MaxInt64, []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "w", ".+")})
			}
			time.Sleep(time.Millisecond)
		}
	}()
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			id := tenancy.ID("t" + strconv.Itoa(w%2))
			for c := range commits {
				app := s.ForTenant(id).AppenderV2(context.Background())
				for k := range 5 {
					lset := labels.FromStrings("__name__", "m", "w", strconv.Itoa(w), "k", strconv.Itoa(k))
					_, err := app.Append(0, lset, 0, int64(c)*1000, 1, nil, nil, promstorage.AppendV2Options{
						Exemplars: []exemplar.Exemplar{ex(int64(c)*1000, float64(c), "trace_id", strconv.Itoa(c))},
						Metadata:  metadataOf("counter", "w"+strconv.Itoa(w)+" "+strconv.Itoa(c)),
					})
					if err != nil {
						errs <- err
						return
					}
				}
				if err := app.Commit(); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		require.NoError(t, <-errs)
	}
	close(done)
	require.NoError(t, <-compacted)
	crash(t, s)
	require.NoError(t, s.aux.close())

	s = openTest(t, dir, nil)
	defer s.Close()
	for _, id := range []tenancy.ID{"t0", "t1"} {
		res := selectExemplars(t, s, id, math.MinInt64, math.MaxInt64)
		require.Len(t, res, workers/2*5)
		for _, r := range res {
			require.Len(t, r.Exemplars, commits, r.SeriesLabels.String())
		}
		md := readMetadata(t, s, id, "m", 0)
		require.Contains(t, md["m"].Help, " "+strconv.Itoa(commits-1))
	}
}

// BenchmarkAppendV2Aux appends rounds of one sample per series to 20,000
// series through AppenderV2 in batches of 2,000, as remote write 2.0 does:
// without metadata and exemplars, with the (unchanged) metadata of every
// series' family on every sample, and with that plus an exemplar on every
// tenth sample.
//
//	go test -run '^$' -bench BenchmarkAppendV2Aux -benchtime 20x ./storage/badger/
func BenchmarkAppendV2Aux(b *testing.B) {
	const n, batch = 20_000, 2000
	series := benchSeries(n)
	metas := make([]metadata.Metadata, n)
	for i := range metas {
		metas[i] = metadataOf("counter", "Help of "+series[i].Get("__name__"))
	}
	exLabels := labels.FromStrings("trace_id", "0123456789abcdef0123456789abcdef")
	exs := make([]exemplar.Exemplar, 1)
	for _, bc := range []struct {
		name           string
		meta, exemplar bool
	}{{"plain", false, false}, {"metadata", true, false}, {"metadata+exemplars", true, true}} {
		b.Run(bc.name, func(b *testing.B) {
			s := openTest(b, b.TempDir(), nil)
			defer s.Close()
			ts := s.ForTenant("bench")
			round := func(r int) {
				for start := 0; start < n; start += batch {
					app := ts.AppenderV2(context.Background())
					for i := start; i < start+batch; i++ {
						var opts promstorage.AppendV2Options
						if bc.meta {
							opts.Metadata = metas[i]
						}
						if bc.exemplar && i%10 == 0 {
							exs[0] = exemplar.Exemplar{Labels: exLabels, Value: float64(i), Ts: int64(r) * 15000, HasTs: true}
							opts.Exemplars = exs
						}
						if _, err := app.Append(0, series[i], 0, int64(r)*15000, float64(r+i), nil, nil, opts); err != nil {
							b.Fatal(err)
						}
					}
					if err := app.Commit(); err != nil {
						b.Fatal(err)
					}
				}
			}
			round(0)
			r := 0
			b.ResetTimer()
			for b.Loop() {
				r++
				round(r)
			}
			b.ReportMetric(float64(r*n)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

func TestExemplarMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(Config{Path: t.TempDir(), ExemplarLimits: func(tenancy.ID) int { return 2 }}, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	defer s.Close()
	lset := labels.FromStrings("__name__", "m")
	for i := int64(1); i <= 3; i++ {
		require.NoError(t, appendV2(t, s, "acme", lset, i*1000, 1, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{ex(i*1000, 1)}, Metadata: metadataOf("gauge", "h")}))
	}
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP luminate_badger_exemplars Exemplars stored, by tenant (at most --limits.max-exemplars or the tenant's max_exemplars override; the oldest are dropped first).
# TYPE luminate_badger_exemplars gauge
luminate_badger_exemplars{tenant="acme"} 2
# HELP luminate_badger_metadata_families Metric families with metadata stored, by tenant (at most --limits.max-metadata or the tenant's max_metadata override).
# TYPE luminate_badger_metadata_families gauge
luminate_badger_metadata_families{tenant="acme"} 1
`), "luminate_badger_exemplars", "luminate_badger_metadata_families"))
	n, err := testutil.GatherAndCount(reg, "luminate_badger_exemplar_log_bytes")
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

// FuzzAuxRecord feeds arbitrary bytes to the exemplar log's record
// decoder: it must refuse or apply them, never panic, and leave the
// tenant within its bounds.
//
//	go test -run '^$' -fuzz FuzzAuxRecord -fuzztime 30s ./storage/badger/
func FuzzAuxRecord(f *testing.F) {
	var p auxPending
	lset := labels.FromStrings("__name__", "m", "job", "x")
	p.addSeries(lset.Hash(), lset).ex = []exemplar.Exemplar{ex(1000, 1, "trace_id", "a"), ex(2000, 2)}
	p.nex = 2
	p.meta = []pendingMeta{{family: "m", m: metadataOf("counter", "help"), changed: true}}
	f.Add(appendAuxRecord(nil, "acme", &p))
	snap := append([]byte{auxSnapshotVersion}, appendAuxRecord(nil, "acme", &p)[1:]...)
	f.Add(snap)
	f.Add([]byte{auxRecordVersion})
	f.Fuzz(func(t *testing.T, rec []byte) {
		x := &auxStore{tenants: map[tenancy.ID]*auxTenant{}, logger: slog.New(slog.DiscardHandler),
			exLimits: func(tenancy.ID) int { return 3 }, metaLimits: func(tenancy.ID) int { return 2 }}
		var table snapshotTable
		_ = x.replay(rec, math.MinInt64, &table)
		_ = x.replay(rec, math.MinInt64, &table) // a snapshot record twice: its series are indexed again
		for _, at := range x.tenants {
			require.LessOrEqual(t, at.n, 3)
			require.LessOrEqual(t, len(at.meta), 2)
			count := 0
			for _, s := range at.series {
				for ; s != nil; s = s.next {
					require.NotEmpty(t, s.ex)
					require.True(t, slices.IsSortedFunc(s.ex, func(a, b exemplar.Exemplar) int { return cmp.Compare(a.Ts, b.Ts) }))
					count += len(s.ex)
				}
			}
			require.Equal(t, at.n, count)
		}
	})
}

// TestAuxRecordRoundTrip encodes a commit's exemplars and metadata and
// replays them into an empty store.
func TestAuxRecordRoundTrip(t *testing.T) {
	var p auxPending
	a := labels.FromStrings("__name__", "m", "job", "a")
	b := labels.FromStrings("__name__", "m", "job", "b")
	p.addSeries(a.Hash(), a).ex = []exemplar.Exemplar{ex(1000, 1, "trace_id", "a"), ex(2000, math.Inf(-1))}
	p.addSeries(b.Hash(), b).ex = []exemplar.Exemplar{{Labels: labels.FromStrings("span_id", "é"), Value: -0.5, Ts: -7}}
	p.nex = 3
	p.meta = []pendingMeta{{family: "m", m: metadataOf("counter", "help"), changed: true}, {family: "unchanged", m: metadataOf("gauge", "x")}}
	x := &auxStore{tenants: map[tenancy.ID]*auxTenant{}, logger: slog.New(slog.DiscardHandler)}
	require.NoError(t, x.replay(appendAuxRecord(nil, "acme-1", &p), math.MinInt64, &snapshotTable{}))
	at := x.tenants["acme-1"]
	require.NotNil(t, at)
	res := at.selectExemplars(math.MinInt64, math.MaxInt64, [][]*labels.Matcher{{labels.MustNewMatcher(labels.MatchEqual, "__name__", "m")}})
	require.Equal(t, []exemplar.QueryResult{
		{SeriesLabels: a, Exemplars: p.series[0].ex},
		{SeriesLabels: b, Exemplars: p.series[1].ex},
	}, res)
	require.Equal(t, map[string]metadata.Metadata{"m": metadataOf("counter", "help")}, at.meta)
}
