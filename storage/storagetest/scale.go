package storagetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
)

// manySeries is the number of series ManySeries writes.
const manySeries = 10_000

// testManySeries writes 10,000 series of 8 labels in batches of 2,000 and
// reads them back whole and through selective matchers.
func testManySeries(t *testing.T, b Backend) {
	ts := b.Open(t).ForTenant(tenantA)
	data := make([]series, manySeries)
	ids := make([]string, manySeries)
	for i := range data {
		ids[i] = fmt.Sprintf("%05d", i)
		data[i] = series{
			ls("__name__", "many_series", "id", ids[i], "shard", fmt.Sprint(i%10), "job", "load",
				"instance", fmt.Sprintf("host-%d:9100", i/100), "region", []string{"eu", "us", "ap"}[i%3],
				"pod", fmt.Sprintf("pod-%x", i*7919), "env", "prod"),
			steps(baseTime, step, 4, linear(float64(i), 0.5)),
		}
	}
	for i := 0; i < len(data); i += 2000 {
		write(t, ts, data[i:i+2000]...)
	}
	want := merge(data)
	const mint, maxt = 0, math.MaxInt64

	t.Run("all", func(t *testing.T) {
		requireSelect(t, ts, want, mint, maxt, eq("__name__", "many_series"))
	})
	selections := [][]*labels.Matcher{
		ms(eq("shard", "3")),
		ms(re("id", "0000.*")),
		ms(eq("__name__", "many_series"), re("id", "09.*"), neq("shard", "9")),
		ms(eq("region", "ap"), eq("instance", "host-42:9100")),
		ms(re("pod", "pod-1.*"), nre("region", "eu|us")),
		ms(eq("id", "09999")),
	}
	for _, sel := range selections {
		t.Run(fmtMatchers(sel), func(t *testing.T) {
			requireSelect(t, ts, filter(want, mint, maxt, sel...), mint, maxt, sel...)
		})
	}
	t.Run("last sample only", func(t *testing.T) {
		last := baseTime + 3*step
		requireSelect(t, ts, filter(want, last, maxt), last, maxt, eq("job", "load"))
	})
	t.Run("label values", func(t *testing.T) {
		require.Equal(t, ids, labelValues(t, ts, mint, maxt, "id", nil))
		for _, c := range []struct {
			name string
			ms   []*labels.Matcher
		}{
			{"shard", ms(re("id", "01.*"))},
			{"shard", ms(re("id", "0.*1"), neq("region", "eu"))},
			{"id", ms(eq("shard", "7"), re("id", "000.*"))},
			{"id", ms(eq("instance", "host-99:9100"), nre("pod", "pod-[0-9].*"))},
			{"region", ms(re("pod", "pod-1.*"))},
		} {
			require.Equal(t, valuesOf(filter(want, mint, maxt, c.ms...), c.name), labelValues(t, ts, mint, maxt, c.name, nil, c.ms...))
		}
		require.Equal(t, []string{"__name__", "env", "id", "instance", "job", "pod", "region", "shard"}, labelNames(t, ts, mint, maxt, nil))
	})
	t.Run("series listing with limit", func(t *testing.T) {
		got := listSeries(t, ts, mint, maxt, 500, eq("__name__", "many_series"))
		requireLimited(t, lsetStrings(lsets(want)), lsetStrings(got), 500, "series listing Limit")
	})
}

// valueModel generates the values of one long series.
type valueModel struct {
	name string
	next func(r *rand.Rand, prev float64) float64
}

var valueModels = []valueModel{
	{"counter", func(r *rand.Rand, prev float64) float64 { return prev + float64(r.IntN(5)) }},
	{"gauge", func(r *rand.Rand, prev float64) float64 {
		return math.Round((prev+float64(r.IntN(201)-100)/100)*100) / 100
	}},
	{"constant", func(_ *rand.Rand, _ float64) float64 { return 1 }},
}

// testLongSeries writes series of lengths around common chunk sizes (120
// samples in Prometheus) and up to 12 hours at 15 s, whole in one
// transaction or scrape by scrape, and reads windows of them back, also
// through iterator Seek.
func testLongSeries(t *testing.T, b Backend) {
	lengths := []int{1, 2, 119, 120, 121, 240, 241, 480, 1000, 2881}
	r := rand.New(rand.NewPCG(1, 2))
	gen := func(name string, n int, m valueModel, extra ...string) series {
		s := series{lset: ls(append([]string{"__name__", name, "model", m.name, "length", fmt.Sprint(n)}, extra...)...)}
		v := float64(r.IntN(1000))
		for i := range n {
			v = m.next(r, v)
			s.samples = append(s.samples, sample{baseTime + int64(i)*step, v})
		}
		return s
	}

	t.Run("one transaction per series", func(t *testing.T) {
		ts := b.Open(t).ForTenant(tenantA)
		var data []series
		for _, n := range lengths {
			for _, m := range valueModels {
				s := gen("long_series", n, m)
				write(t, ts, s)
				data = append(data, s)
			}
		}
		requireLongSeries(t, ts, merge(data))
	})

	t.Run("one transaction per scrape", func(t *testing.T) {
		ts := b.Open(t).ForTenant(tenantA)
		var data []series
		for i := range 10 {
			data = append(data, gen("scraped", 480, valueModels[i%len(valueModels)], "target", fmt.Sprint(i)))
		}
		writeScrapes(t, ts, data...)
		requireLongSeries(t, ts, merge(data))
	})
}

// requireLongSeries reads want back whole, in windows around chunk-size
// boundaries and at random, and seeks through every series.
func requireLongSeries(t *testing.T, ts storage.TenantStore, want []series) {
	all := re("__name__", ".+")
	requireSelect(t, ts, want, 0, math.MaxInt64, all)

	r := rand.New(rand.NewPCG(3, 4))
	for _, s := range want {
		n := len(s.samples)
		at := func(i int) int64 { return s.samples[min(max(i, 0), n-1)].T }
		windows := [][2]int64{
			{at(0), at(0)}, {at(n - 1), at(n - 1)}, {at(1), at(n - 2)},
			{at(119), at(120)}, {at(120), at(239)}, {at(118) + 1, at(121) - 1}, {at(n / 2), at(n-1) + step},
		}
		for range 3 {
			i := r.IntN(n)
			j := i + r.IntN(n-i)
			windows = append(windows, [2]int64{at(i) - 1, at(j) + 1})
		}
		for _, w := range windows {
			sel := labelsEqual(s.lset)
			requireSelect(t, ts, filter([]series{s}, w[0], w[1]), w[0], w[1], sel...)
		}
	}
	t.Run("seek", func(t *testing.T) {
		for _, s := range want {
			requireSeek(t, ts, s)
		}
	})
}

// requireSeek seeks through s with the Querier's iterator: each Seek must
// land on the first sample at or after its target, Seek backwards must not
// move, and Next must continue from there.
func requireSeek(t testing.TB, ts storage.TenantStore, s series) {
	t.Helper()
	q, err := ts.Querier(0, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(t.Context(), false, nil, labelsEqual(s.lset)...)
	require.True(t, set.Next(), "Select %s", s.lset)
	it := set.At().Iterator(nil)
	first := s.samples[0].T
	last := s.samples[len(s.samples)-1].T
	targets := []int64{first - 1, first, first + 1, first + step*50, first + step*50, first + step*121 + 7, last - 1, last}
	pos := -1 // index of the sample the iterator is at
	for _, target := range targets {
		i := sort.Search(len(s.samples), func(i int) bool { return s.samples[i].T >= target })
		if pos >= 0 && s.samples[pos].T >= target {
			i = pos // already there: Seek must not move
		}
		vt := it.Seek(target)
		if i == len(s.samples) {
			require.Equal(t, chunkenc.ValNone, vt, "%s: Seek(%d) past the end", s.lset, target)
			return
		}
		require.Equal(t, chunkenc.ValFloat, vt, "%s: Seek(%d)", s.lset, target)
		gt, gv := it.At()
		requireSameSeries(t, []series{{s.lset, s.samples[i : i+1]}}, []series{{s.lset, []sample{{gt, gv}}}}, fmt.Sprintf("Seek(%d)", target))
		pos = i
		if i+1 < len(s.samples) {
			require.Equal(t, chunkenc.ValFloat, it.Next(), "%s: Next after Seek(%d)", s.lset, target)
			gt, gv = it.At()
			requireSameSeries(t, []series{{s.lset, s.samples[i+1 : i+2]}}, []series{{s.lset, []sample{{gt, gv}}}}, fmt.Sprintf("Next after Seek(%d)", target))
			pos = i + 1
		}
	}
	vt := it.Seek(last + 1)
	require.Equal(t, chunkenc.ValNone, vt, "%s: Seek past the last sample", s.lset)
	require.NoError(t, it.Err())
	require.False(t, set.Next(), "Select %s returned more than one series", s.lset)
}

// valuesOf returns the sorted distinct values of label name in ss.
func valuesOf(ss []series, name string) []string {
	set := map[string]bool{}
	for _, s := range ss {
		if v := s.lset.Get(name); v != "" {
			set[v] = true
		}
	}
	return sortedKeys(set)
}
