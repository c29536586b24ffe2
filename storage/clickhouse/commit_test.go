package clickhouse

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// TestGroupCommit commits from many appenders at once and requires them to
// share inserts, each Commit returning only once its rows are readable.
func TestGroupCommit(t *testing.T) {
	cfg := testConfig(t)
	cfg.FlushInterval = 50 * time.Millisecond
	reg := prometheus.NewRegistry()
	s, err := New(cfg, nil, reg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	ts := s.ForTenant("g")

	const commits = 20
	var wg sync.WaitGroup
	errs := make(chan error, commits)
	for i := range commits {
		wg.Add(1)
		go func() {
			defer wg.Done()
			app := ts.AppenderV2(context.Background())
			for j := range 10 {
				if _, err := app.Append(0, labels.FromStrings("__name__", "g", "c", fmt.Sprint(i)), 0, int64(j)*1000, float64(i), nil, nil, promstorage.AOptions{}); err != nil {
					errs <- err
					return
				}
			}
			if err := app.Commit(); err != nil {
				errs <- err
				return
			}
			// Acknowledged means inserted: readable at once.
			got := readAll(t, ts, "g")
			if len(got) < 10 {
				errs <- fmt.Errorf("commit %d acknowledged but %d samples readable", i, len(got))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, readAll(t, ts, "g"), commits*10)

	families, err := reg.Gather()
	require.NoError(t, err)
	var h *dto.Histogram
	for _, f := range families {
		if f.GetName() == "luminate_clickhouse_commits_per_insert" {
			h = f.GetMetric()[0].GetHistogram()
		}
	}
	require.NotNil(t, h)
	require.Equal(t, float64(commits), h.GetSampleSum(), "every commit inserted once")
	require.Less(t, h.GetSampleCount(), uint64(commits/2), "concurrent commits share inserts")
}

func TestRowsDeduplicatedPerInsert(t *testing.T) {
	for _, decimals := range []bool{false, true} {
		t.Run(fmt.Sprint("decimals=", decimals), func(t *testing.T) {
			w := &insertWorker{}
			a, b := "a", "b"
			batch := []*commitReq{
				{tenant: a, fps: []uint64{2, 1, 2, 1}, tss: []int64{10, 10, 10, 5}, vals: []float64{1, 2, 3, 4}},
				{tenant: b, fps: []uint64{1}, tss: []int64{10}, vals: []float64{5}},
				{tenant: a, fps: []uint64{1}, tss: []int64{10}, vals: []float64{6}},
			}
			if decimals {
				// Digits and scale say which row each is.
				for _, r := range batch {
					for _, v := range r.vals {
						r.digits = append(r.digits, int64(v)*10)
						r.scales = append(r.scales, int8(v))
					}
				}
			}
			w.sortBatch(batch, decimals)
			var tenants []string
			for _, p := range w.tenants {
				tenants = append(tenants, *p)
			}
			require.Equal(t, []string{"a", "a", "a", "b"}, tenants)
			require.Equal(t, []uint64{1, 1, 2, 1}, w.fps)
			require.Equal(t, []int64{5, 10, 10, 10}, w.tss)
			require.Equal(t, []float64{4, 6, 3, 5}, w.vals, "of one key the later commit's, or the later append's, value")
			if decimals {
				require.Equal(t, []int64{40, 60, 30, 50}, w.digits)
				require.Equal(t, []int8{4, 6, 3, 5}, w.scales)
			} else {
				require.Empty(t, w.digits)
				require.Empty(t, w.scales)
			}
		})
	}
}

func FuzzParseVersion(f *testing.F) {
	for _, v := range []string{"18.16.1", "24.8.4.13", "26.5.1.1", "", "x.y", "1", "-1.2", "1.+2", "99999999999.1"} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		major, minor, err := parseVersion(v)
		if err != nil {
			return
		}
		require.GreaterOrEqual(t, major, 0)
		require.GreaterOrEqual(t, minor, 0)
		// The numbers read are the first two dot-separated fields.
		fields := strings.SplitN(v, ".", 3)
		m, _ := strconv.Atoi(fields[0])
		n, _ := strconv.Atoi(fields[1])
		require.Equal(t, [2]int{m, n}, [2]int{major, minor})
	})
}

func TestParseVersion(t *testing.T) {
	for v, want := range map[string][2]int{"18.16.1": {18, 16}, "24.8.4.13": {24, 8}, "26.5.1.1": {26, 5}, "20.3": {20, 3}} {
		major, minor, err := parseVersion(v)
		require.NoError(t, err, v)
		require.Equal(t, want, [2]int{major, minor}, v)
	}
	for _, v := range []string{"", "18", "x.y", "-1.2", "1.+2", "99999999999.1"} {
		_, _, err := parseVersion(v)
		require.Error(t, err, v)
	}
}

// BenchmarkSortBatch sorts a group commit of 8 remote-write requests of
// 2,000 samples each (one tenant, random series).
func BenchmarkSortBatch(b *testing.B) {
	rnd := rand.New(rand.NewPCG(1, 2))
	var batch []*commitReq
	for range 8 {
		r := &commitReq{tenant: "bench"}
		for range 2000 {
			r.fps = append(r.fps, rnd.Uint64())
			r.tss = append(r.tss, 1_700_000_000_000)
			r.vals = append(r.vals, rnd.Float64())
		}
		batch = append(batch, r)
	}
	w := &insertWorker{}
	b.ReportAllocs()
	for b.Loop() {
		w.sortBatch(batch, false)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*16_000), "ns/row")
}
