package clickhouse

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// TestExactTimeRanges writes series with samples scattered over three
// hours, in random order over several commits (so hours get rows whose
// min_ts is later lowered by out-of-order samples), and checks that label
// values and series listing over random ranges name exactly the series
// with a sample in the range.
func TestExactTimeRanges(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { testExactTimeRanges(t, seed) })
	}
}

func testExactTimeRanges(t *testing.T, seed uint64) {
	s := newTestStore(t)
	ts := s.ForTenant("exact")
	rnd := rand.New(rand.NewPCG(seed, 7))
	h0 := int64(400_000) * msPerHour
	const nSeries = 30
	samples := map[string][]int64{}
	type write struct {
		series string
		t      int64
	}
	var writes []write
	for i := range nSeries {
		name := fmt.Sprintf("s%02d", i)
		for range 1 + rnd.IntN(6) {
			tt := h0 + rnd.Int64N(3*msPerHour)
			samples[name] = append(samples[name], tt)
			writes = append(writes, write{name, tt})
		}
	}
	rnd.Shuffle(len(writes), func(i, j int) { writes[i], writes[j] = writes[j], writes[i] })
	for len(writes) > 0 {
		n := min(len(writes), 1+rnd.IntN(10))
		app := ts.AppenderV2(t.Context())
		for _, w := range writes[:n] {
			_, err := app.Append(0, labels.FromStrings("__name__", "m", "s", w.series), 0, w.t, 1, nil, nil, promstorage.AOptions{})
			require.NoError(t, err)
		}
		require.NoError(t, app.Commit())
		writes = writes[n:]
	}
	ranges := [][2]int64{{h0, h0 + 3*msPerHour}, {h0 + msPerHour, h0 + 2*msPerHour - 1}}
	for range 40 {
		a, b := h0-msPerHour/2+rnd.Int64N(4*msPerHour), h0+rnd.Int64N(3*msPerHour)
		ranges = append(ranges, [2]int64{min(a, b), max(a, b)})
	}
	for _, r := range ranges {
		var want []string
		for name, times := range samples {
			if slices.ContainsFunc(times, func(tt int64) bool { return tt >= r[0] && tt <= r[1] }) {
				want = append(want, name)
			}
		}
		slices.Sort(want)
		q, err := ts.Querier(r[0], r[1])
		require.NoError(t, err)
		got, _, err := q.LabelValues(t.Context(), "s", nil)
		require.NoError(t, err)
		if !slices.Equal(got, want) {
			for _, name := range want {
				if !slices.Contains(got, name) {
					t.Logf("missing %s: samples %v", name, samples[name])
					rows, _ := s.conn.Query(t.Context(), "SELECT hour, min_ts FROM "+s.schema.table(seriesTable)+" WHERE label_values[indexOf(label_names, 's')] = "+quote(name))
					for rows.Next() {
						var h int32
						var m int64
						_ = rows.Scan(&h, &m)
						t.Logf("row hour %d min_ts %d", int64(h)-h0/msPerHour, m-h0)
					}
				}
			}
		}
		require.Equal(t, append([]string{}, want...), got, "label values over [%d, %d]", r[0]-h0, r[1]-h0)
		set := q.Select(t.Context(), true, &promstorage.SelectHints{Start: r[0], End: r[1], Func: "series"})
		var listed []string
		for set.Next() {
			listed = append(listed, set.At().Labels().Get("s"))
		}
		require.NoError(t, set.Err())
		require.Equal(t, want, listed, "series over [%d, %d]", r[0]-h0, r[1]-h0)
		require.NoError(t, q.Close())
	}
}
