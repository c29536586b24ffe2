package clickhouse

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
)

// TestDeleteTarget is issue 14's target on ClickHouse: a deletion of
// 100,000 series on one pod is invisible at once to reads on another pod
// (a second Store on the same database), and cleaning reclaims its disk.
// It writes LUMINATE_DELETE_TARGET_SERIES victim series (skipped when
// unset; the target is 100000) and a tenth as many kept ones, 120 samples
// each, logging times and the bytes of the tables' parts at each step:
//
//	LUMINATE_DELETE_TARGET_SERIES=100000 go test -count=1 -run TestDeleteTarget -v ./storage/clickhouse/
func TestDeleteTarget(t *testing.T) {
	victims, _ := strconv.Atoi(os.Getenv("LUMINATE_DELETE_TARGET_SERIES"))
	if victims <= 0 {
		t.Skip("set LUMINATE_DELETE_TARGET_SERIES (100000 for the target)")
	}
	const samples = 120
	kept := victims / 10
	s := newTestStore(t)
	ts := s.ForTenant("acme")
	ctx := context.Background()
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
		for lo := 0; lo < len(lsets); lo += 20_000 {
			app := ts.AppenderV2(ctx)
			for i, l := range lsets[lo:min(lo+20_000, len(lsets))] {
				values[lo+i] += math.Round((rng.Float64()-0.5)*1000) / 100
				_, err := app.Append(0, l, 0, base+int64(r)*15_000, values[lo+i], nil, nil, promstorage.AOptions{})
				require.NoError(t, err)
			}
			require.NoError(t, app.Commit())
		}
	}
	t.Logf("wrote %d series x %d samples in %s", len(lsets), samples, time.Since(start).Round(time.Millisecond))
	err := s.conn.Exec(ctx, "OPTIMIZE TABLE "+s.schema.table(samplesTable)) // merge the inserts' parts, for a stable size
	require.NoError(t, err)
	parts := func(when string) {
		for _, active := range []int{1, 0} {
			v, err := s.queryStringsKind(ctx, "parts", fmt.Sprintf("SELECT concat(toString(sum(bytes)), ' bytes in ', toString(count()), ' parts') FROM system.parts WHERE database = %s AND table IN ('samples', 'series') AND active = %d", quote(s.schema.db), active))
			require.NoError(t, err)
			kind := "active"
			if active == 0 {
				kind = "inactive (removed after old_parts_lifetime)"
			}
			t.Logf("%s: samples and series tables: %s %s", when, v[0], kind)
		}
	}
	parts("after writing")

	other := openStore(t, s.cfg) // another pod
	requireSeen := func(st *Store, victim, kept int) {
		t.Helper()
		tsv := st.ForTenant("acme")
		q, err := tsv.Querier(math.MinInt64/2, math.MaxInt64/2)
		require.NoError(t, err)
		defer q.Close()
		for name, want := range map[string]int{"victim": victim, "kept": kept} {
			n := 0
			set := q.Select(ctx, false, &promstorage.SelectHints{Func: "series"}, labels.MustNewMatcher(labels.MatchEqual, "__name__", name))
			for set.Next() {
				n++
			}
			require.NoError(t, set.Err())
			require.Equal(t, want, n, "%s series listed", name)
		}
		names, _, err := q.LabelValues(ctx, "__name__", nil)
		require.NoError(t, err)
		if victim == 0 {
			require.Equal(t, []string{"kept"}, names)
		}
		card, err := tsv.Cardinality(ctx, storage.CardinalityRequest{Limit: 10})
		require.NoError(t, err)
		require.Equal(t, uint64(victim+kept), card.NumSeries)
	}
	start = time.Now()
	requireSeen(other, victims, kept)
	t.Logf("the same reads before the deletion (no tombstones): %s", time.Since(start).Round(time.Millisecond))
	selectAll := func(st *Store) (int, time.Duration) {
		q, err := st.ForTenant("acme").Querier(base, base+samples*15_000)
		require.NoError(t, err)
		defer q.Close()
		start := time.Now()
		n := 0
		set := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "kept"))
		for set.Next() {
			it := set.At().Iterator(nil)
			for it.Next() != 0 {
			}
			require.NoError(t, it.Err())
			n++
		}
		require.NoError(t, set.Err())
		return n, time.Since(start)
	}
	n, d := selectAll(other)
	t.Logf("Select of every sample of the %d kept series before the deletion: %s", n, d.Round(time.Millisecond))

	start = time.Now()
	res, err := ts.DeleteSeries(ctx, storage.DeleteRequest{
		Matchers: [][]*labels.Matcher{{labels.MustNewMatcher(labels.MatchEqual, "__name__", "victim")}},
		Start:    math.MinInt64, End: math.MaxInt64, MaxSeries: 1_000_000,
	})
	require.NoError(t, err)
	t.Logf("delete_series of %d series (%d whole): %s", res.Series, res.Whole, time.Since(start).Round(time.Millisecond))
	require.Equal(t, victims, res.Series)
	start = time.Now()
	requireSeen(other, 0, kept)
	t.Logf("reads on the other pod right after: no victim in series listing, LabelValues, Cardinality: checked in %s", time.Since(start).Round(time.Millisecond))
	q, err := other.ForTenant("acme").Querier(base, base+samples*15_000)
	require.NoError(t, err)
	start = time.Now()
	set := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", "victim|kept"))
	n = 0
	for set.Next() {
		require.Equal(t, "kept", set.At().Labels().Get("__name__"))
		n++
	}
	require.NoError(t, set.Err())
	require.Equal(t, kept, n)
	t.Logf("Select of every sample on the other pod: %d kept series, no victim, in %s", n, time.Since(start).Round(time.Millisecond))
	n, d = selectAll(other)
	t.Logf("Select of every sample of the %d kept series after the deletion (100,000 tombstones): %s", n, d.Round(time.Millisecond))
	parts("after delete_series")

	start = time.Now()
	require.NoError(t, other.ForTenant("acme").CleanTombstones(ctx))
	t.Logf("clean_tombstones (on the other pod; mutations waited for): %s", time.Since(start).Round(time.Millisecond))
	parts("right after clean_tombstones")
	start = time.Now()
	requireSeen(s, 0, kept)
	t.Logf("the same reads after cleaning (no tombstones): %s", time.Since(start).Round(time.Millisecond))
}
