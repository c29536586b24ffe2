package clickhouse

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
)

// TestSetsQuerierEqualsPerSet: for many matcher sets (overlapping, exact,
// a regular expression too long to push down, one set of a deleted
// series), SelectSeriesSets, LabelNamesSets and LabelValuesSets answer
// what one call per set, merged, answers; and in few queries.
func TestSetsQuerierEqualsPerSet(t *testing.T) {
	s := newTestStore(t)
	ts := s.ForTenant("acme")
	other := s.ForTenant("other")
	ctx := t.Context()
	for _, st := range []storage.TenantStore{ts, other} {
		app := st.AppenderV2(ctx)
		for i := range 300 {
			lset := labels.FromStrings("__name__", fmt.Sprintf("m_%d", i%3), "i", fmt.Sprint(i), "job", fmt.Sprintf("j%d", i%7))
			if i%5 == 0 {
				lset = labels.NewBuilder(lset).Set("extra", fmt.Sprint(i)).Labels()
			}
			_, err := app.Append(0, lset, 0, 1000+int64(i), float64(i), nil, nil, promstorage.AOptions{})
			require.NoError(t, err)
		}
		require.NoError(t, app.Commit())
	}
	res, err := ts.DeleteSeries(ctx, storage.DeleteRequest{Matchers: [][]*labels.Matcher{{labels.MustNewMatcher(labels.MatchEqual, "i", "7")}}, Start: math.MinInt64, End: math.MaxInt64})
	require.NoError(t, err)
	require.Equal(t, 1, res.Series)

	long := make([]string, 2000)
	for i := range long {
		long[i] = fmt.Sprintf("x%d", i)
	}
	var sets [][]*labels.Matcher
	for i := range 250 {
		switch {
		case i%50 == 0:
			sets = append(sets, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", fmt.Sprintf("j%d", i%7))})
		case i == 201:
			sets = append(sets, []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "i", strings.Join(append(long, "11", "12"), "|"))})
		case i == 202:
			sets = append(sets, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "i", "7")}) // deleted
		default:
			sets = append(sets, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", fmt.Sprintf("m_%d", i%3)), labels.MustNewMatcher(labels.MatchEqual, "i", fmt.Sprint(i%400))})
		}
	}
	groups := matcherGroups(sets)
	require.Less(t, len(groups), 5, "queries for 250 sets")
	require.Greater(t, len(groups), 1, "the test needs several groups")

	q, err := ts.Querier(0, 10_000)
	require.NoError(t, err)
	sq, ok := q.(storage.SetsQuerier)
	require.True(t, ok, "the tenant querier is a storage.SetsQuerier")

	// What one call per set answers, merged (each limited answer is the
	// start of the unlimited one).
	var per []promstorage.SeriesSet
	for _, ms := range sets {
		per = append(per, q.Select(ctx, true, &promstorage.SelectHints{Start: 0, End: 10_000, Func: "series"}, ms...))
	}
	wantSeries := seriesStrings(t, promstorage.NewMergeSeriesSet(per, 0, promstorage.ChainedSeriesMerge))
	require.Greater(t, len(wantSeries), 200)
	require.NotContains(t, wantSeries, `{__name__="m_1", i="7", job="j0"}`, "the deleted series")
	wantNames := union(t, func(ms []*labels.Matcher) ([]string, error) {
		v, _, err := q.LabelNames(ctx, nil, ms...)
		return v, err
	}, sets)
	wantValues := map[string][]string{}
	for _, name := range []string{"i", "extra"} {
		wantValues[name] = union(t, func(ms []*labels.Matcher) ([]string, error) {
			v, _, err := q.LabelValues(ctx, name, nil, ms...)
			return v, err
		}, sets)
	}
	for _, limit := range []int{0, 17} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			hints := &promstorage.SelectHints{Start: 0, End: 10_000, Func: "series", Limit: limit}
			require.Equal(t, first(wantSeries, limit), seriesStrings(t, sq.SelectSeriesSets(ctx, hints, sets)), "SelectSeriesSets")
			lh := &promstorage.LabelHints{Limit: limit}
			names, _, err := sq.LabelNamesSets(ctx, lh, sets)
			require.NoError(t, err)
			require.Equal(t, first(wantNames, limit), names, "LabelNamesSets")
			for name, want := range wantValues {
				vals, _, err := sq.LabelValuesSets(ctx, name, lh, sets)
				require.NoError(t, err)
				require.Equal(t, first(want, limit), vals, "LabelValuesSets(%s)", name)
			}
		})
	}
}

// first is the first limit of list (all of it for 0).
func first(list []string, limit int) []string {
	if limit > 0 && len(list) > limit {
		return list[:limit]
	}
	return list
}

// seriesStrings lists set's label sets.
func seriesStrings(t *testing.T, set promstorage.SeriesSet) []string {
	t.Helper()
	var out []string
	for set.Next() {
		out = append(out, set.At().Labels().String())
	}
	require.NoError(t, set.Err())
	return out
}

// union is the sorted union of get of each set.
func union(t *testing.T, get func([]*labels.Matcher) ([]string, error), sets [][]*labels.Matcher) []string {
	t.Helper()
	seen := map[string]bool{}
	for _, ms := range sets {
		vals, err := get(ms)
		require.NoError(t, err)
		for _, v := range vals {
			seen[v] = true
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}
