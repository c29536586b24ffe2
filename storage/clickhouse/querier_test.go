package clickhouse

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

func TestSampleRowsGroup(t *testing.T) {
	negZero := math.Copysign(0, -1)
	nanPayload := math.Float64frombits(0x7ff8_0000_0000_0bad)
	stale := math.Float64frombits(value.StaleNaN)
	type row struct {
		pos  int32
		t    int64
		v    float64
		part uint64
	}
	type want struct {
		pos  int
		ts   []int64
		vals []float64
	}
	for _, c := range []struct {
		name   string
		series int
		rows   []row
		want   []want // series with samples, in batch order
	}{
		{"empty", 2, nil, nil},
		{"in order", 1, []row{{0, 1, 10, 0}, {0, 2, 20, 0}}, []want{{0, []int64{1, 2}, []float64{10, 20}}}},
		{
			"series interleaved and out of order", 3,
			[]row{{2, 5, 5, 1}, {0, 2, 2, 0}, {2, 4, 4, 0}, {0, 1, 1, 1}},
			[]want{{0, []int64{1, 2}, []float64{1, 2}}, {2, []int64{4, 5}, []float64{4, 5}}},
		},
		{
			"runs out of series order", 3,
			[]row{{2, 1, 21, 0}, {2, 2, 22, 0}, {1, 1, 11, 0}, {0, 1, 1, 0}, {0, 2, 2, 0}},
			[]want{{0, []int64{1, 2}, []float64{1, 2}}, {1, []int64{1}, []float64{11}}, {2, []int64{1, 2}, []float64{21, 22}}},
		},
		{
			"one series split across blocks of one part", 2,
			[]row{{0, 1, 1, 3}, {1, 1, 11, 3}, {0, 2, 2, 3}},
			[]want{{0, []int64{1, 2}, []float64{1, 2}}, {1, []int64{1}, []float64{11}}},
		},
		{
			"newest part wins whatever the row order", 1,
			[]row{{0, 7, 3, 2}, {0, 7, 1, 0}, {0, 8, 8, 0}, {0, 7, 2, 1}},
			[]want{{0, []int64{7, 8}, []float64{3, 8}}},
		},
		{
			"one run out of time order", 1,
			[]row{{0, 3, 3, 0}, {0, 1, 1, 0}, {0, 2, 2, 0}},
			[]want{{0, []int64{1, 2, 3}, []float64{1, 2, 3}}},
		},
		{
			"special values bit-exact", 1,
			[]row{{0, 1, stale, 1}, {0, 1, 5, 0}, {0, 2, negZero, 0}, {0, 3, nanPayload, 0}},
			[]want{{0, []int64{1, 2, 3}, []float64{stale, negZero, nanPayload}}},
		},
		{
			"special values bit-exact in one run", 1,
			[]row{{0, 1, stale, 0}, {0, 2, negZero, 0}, {0, 3, nanPayload, 0}},
			[]want{{0, []int64{1, 2, 3}, []float64{stale, negZero, nanPayload}}},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			batch := make([]resolved, c.series)
			for i := range batch {
				batch[i].lset = labels.FromStrings("i", fmt.Sprint(i))
			}
			r := newSampleRows(0)
			for _, x := range c.rows {
				r.add(x.pos, x.t, x.v, 0, x.part)
			}
			got := r.group(batch, nil)
			require.Len(t, got, len(c.want))
			for i, w := range c.want {
				require.Equal(t, batch[w.pos].lset, got[i].lset)
				require.Equal(t, w.ts, got[i].ts)
				require.Equal(t, len(w.vals), len(got[i].vals))
				for j := range w.vals {
					require.Equal(t, math.Float64bits(w.vals[j]), math.Float64bits(got[i].vals[j]), "sample %d", j)
				}
				require.Equal(t, len(got[i].ts), cap(got[i].ts), "capacity cut: appending must not reach the next series")
				require.Equal(t, len(got[i].vals), cap(got[i].vals))
			}
		})
	}
}

// TestSelectBatches reads more series than one samples query takes, with
// samples overwritten across parts, sorted and unsorted, and checks every
// series against what was written.
func TestSelectBatches(t *testing.T) {
	s := newTestStore(t)
	ts := s.ForTenant("batches")
	rnd := rand.New(rand.NewPCG(5, 5))
	h0 := int64(450_000) * msPerHour
	const nSeries = inListMax/2 + 300
	type key struct {
		series int
		t      int64
	}
	type write struct {
		key
		v float64
	}
	var writes, overwrites []write
	for i := range nSeries {
		for h := range int64(3) {
			tt := h0 + h*msPerHour + rnd.Int64N(msPerHour)
			writes = append(writes, write{key{i, tt}, float64(i)})
			if rnd.IntN(4) == 0 {
				overwrites = append(overwrites, write{key{i, tt}, -float64(i)})
			}
		}
	}
	// Overwrites after all writes, commits holding random stretches: many
	// parts, overwritten samples in other parts than their overwrites.
	writes = append(writes, overwrites...)
	want := map[key]float64{}
	for len(writes) > 0 {
		n := min(len(writes), 1+rnd.IntN(2000))
		app := ts.AppenderV2(t.Context())
		for _, w := range writes[:n] {
			_, err := app.Append(0, labels.FromStrings("__name__", "b", "i", fmt.Sprintf("%05d", w.series)), 0, w.t, w.v, nil, nil, promstorage.AOptions{})
			require.NoError(t, err)
			want[w.key] = w.v
		}
		require.NoError(t, app.Commit())
		writes = writes[n:]
	}
	var queries int
	s.queryLog = func(kind, _ string) {
		if kind == "samples" {
			queries++
		}
	}
	q, err := ts.Querier(h0, h0+3*msPerHour)
	require.NoError(t, err)
	defer q.Close()
	for _, sorted := range []bool{true, false} {
		t.Run(fmt.Sprint("sorted=", sorted), func(t *testing.T) {
			queries = 0
			set := q.Select(t.Context(), sorted, &promstorage.SelectHints{Start: h0, End: h0 + 3*msPerHour}, labels.MustNewMatcher(labels.MatchEqual, "__name__", "b"))
			// All series first, then their samples, as PromQL does.
			var series []promstorage.Series
			for set.Next() {
				series = append(series, set.At())
			}
			require.NoError(t, set.Err())
			got := map[key]float64{}
			var names []string
			for _, sr := range series {
				lset := sr.Labels()
				names = append(names, lset.Get("i"))
				i, err := strconv.Atoi(lset.Get("i"))
				require.NoError(t, err)
				it := sr.Iterator(nil)
				last := int64(math.MinInt64)
				for it.Next() != 0 {
					tt, v := it.At()
					require.Greater(t, tt, last, "series %d: samples in time order, each once", i)
					last = tt
					got[key{i, tt}] = v
				}
			}
			require.Len(t, names, nSeries)
			if sorted {
				require.True(t, slices.IsSorted(names), "sorted by labels")
			}
			require.Equal(t, want, got)
			require.Greater(t, queries, 1, "more than one batch")
		})
	}
}

// encodeLabelPairs is labelPairsExpr in Go.
func encodeLabelPairs(lset labels.Labels) string {
	var b strings.Builder
	lset.Range(func(l labels.Label) {
		fmt.Fprintf(&b, "%d:%s%d:%s", len(l.Name), l.Name, len(l.Value), l.Value)
	})
	return b.String()
}

func TestDecodeLabelPairs(t *testing.T) {
	for _, c := range []struct {
		name string
		in   string
		want labels.Labels
		err  bool
	}{
		{"empty", "", labels.EmptyLabels(), false},
		{"two", "8:__name__2:up3:job4:node", labels.FromStrings("__name__", "up", "job", "node"), false},
		{"unsorted in, sorted out", "1:z1:a1:a1:z", labels.FromStrings("a", "z", "z", "a"), false},
		{"separators and digits in values", "1:a5:1:2:3", labels.FromStrings("a", "1:2:3"), false},
		{"empty value", "1:a0:", labels.FromStrings("a", ""), false},
		{"not UTF-8", "1:a2:\xff\xfe", labels.FromStrings("a", "\xff\xfe"), false},
		{"name without value", "1:a", labels.EmptyLabels(), true},
		{"length past the end", "1:a9:x", labels.EmptyLabels(), true},
		{"no length", ":a", labels.EmptyLabels(), true},
		{"negative length", "-1:a", labels.EmptyLabels(), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b labels.ScratchBuilder
			err := decodeLabelPairs(c.in, &b)
			if c.err {
				require.ErrorIs(t, err, errLabelPairs)
				return
			}
			require.NoError(t, err)
			require.Equal(t, c.want, b.Labels())
		})
	}
}

func FuzzDecodeLabelPairs(f *testing.F) {
	f.Add("8:__name__2:up3:job4:node")
	f.Add("1:a5:1:2:3")
	f.Add("1:a9:x")
	f.Fuzz(func(t *testing.T, s string) {
		var b labels.ScratchBuilder
		if err := decodeLabelPairs(s, &b); err != nil {
			return
		}
		// What decodes encodes back to the same labels.
		lset := b.Labels()
		require.NoError(t, decodeLabelPairs(encodeLabelPairs(lset), &b))
		require.Equal(t, lset, b.Labels())
	})
}
