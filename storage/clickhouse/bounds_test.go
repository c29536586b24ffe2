package clickhouse

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
	"github.com/luminate-io/luminate/tenancy"
)

// writeNumbered writes n series {__name__=name, i="0".."n-1"}, one sample
// each at t=1000.
func writeNumbered(t *testing.T, ts storage.TenantStore, name string, n int) []labels.Labels {
	t.Helper()
	app := ts.AppenderV2(t.Context())
	out := make([]labels.Labels, n)
	for i := range n {
		out[i] = labels.FromStrings("__name__", name, "i", strconv.Itoa(i))
		_, err := app.Append(0, out[i], 0, 1000, float64(i), nil, nil, promstorage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	return out
}

// alternation is the regex "0|1|...|n-1" over the numbers i with keep(i).
func alternation(n int, keep func(int) bool) string {
	var b strings.Builder
	for i := range n {
		if !keep(i) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		b.WriteString(strconv.Itoa(i))
	}
	return b.String()
}

// selectNames returns the series a select returns, as strings, sorted.
func selectNames(t *testing.T, set promstorage.SeriesSet) []string {
	t.Helper()
	var out []string
	for set.Next() {
		out = append(out, set.At().Labels().String())
	}
	require.NoError(t, set.Err())
	slices.Sort(out)
	return out
}

// TestLongAlternation selects with what Grafana sends for a multi-value
// variable set to All, i=~"0|1|...|149999": a matcher whose SQL is far
// past ClickHouse's max_query_size. Every read must answer as Prometheus'
// matching does: samples, series listing, label names and values.
func TestLongAlternation(t *testing.T) {
	s := newTestStore(t)
	ts := s.ForTenant("alt")
	const nSeries = 3000
	lsets := writeNumbered(t, ts, "alt", nSeries)
	lsets = append(lsets, writeNumbered(t, ts, "other", 10)...)
	all := alternation(150_000, func(int) bool { return true })
	even := alternation(150_000, func(i int) bool { return i%2 == 0 })
	require.Greater(t, len(all), 3*(256<<10), "past max_query_size")
	mm := labels.MustNewMatcher
	name := mm(labels.MatchEqual, "__name__", "alt")
	cases := map[string][]*labels.Matcher{
		"all":                 {name, mm(labels.MatchRegexp, "i", all)},
		"even":                {name, mm(labels.MatchRegexp, "i", even)},
		"not even":            {name, mm(labels.MatchNotRegexp, "i", even)},
		"alone":               {mm(labels.MatchRegexp, "i", even)},
		"two long":            {mm(labels.MatchRegexp, "i", even), mm(labels.MatchRegexp, "i", all)},
		"pushed, 1000 values": {name, mm(labels.MatchRegexp, "i", alternation(1000, func(i int) bool { return i%3 == 0 }))},
	}
	q, err := ts.Querier(0, 10_000)
	require.NoError(t, err)
	defer q.Close()
	for cname, ms := range cases {
		t.Run(cname, func(t *testing.T) {
			var want, wantValues []string
			for _, l := range lsets {
				if matchesAll(l, ms) {
					want = append(want, l.String())
					wantValues = append(wantValues, l.Get("i"))
				}
			}
			slices.Sort(want)
			slices.Sort(wantValues)
			wantValues = slices.Compact(wantValues)
			require.NotEmpty(t, want)
			for _, sorted := range []bool{false, true} {
				got := selectNames(t, q.Select(t.Context(), sorted, &promstorage.SelectHints{Start: 0, End: 10_000}, ms...))
				require.Equal(t, want, got, "select, sorted=%v", sorted)
			}
			got := selectNames(t, q.Select(t.Context(), true, &promstorage.SelectHints{Start: 0, End: 10_000, Func: "series"}, ms...))
			require.Equal(t, want, got, "series listing")
			values, _, err := q.LabelValues(t.Context(), "i", nil, ms...)
			require.NoError(t, err)
			require.Equal(t, wantValues, values, "label values")
			values, _, err = q.LabelValues(t.Context(), "i", &promstorage.LabelHints{Limit: 5}, ms...)
			require.NoError(t, err)
			require.Equal(t, wantValues[:5], values, "label values, limit 5")
			names, _, err := q.LabelNames(t.Context(), nil, ms...)
			require.NoError(t, err)
			require.Equal(t, []string{"__name__", "i"}, names, "label names")
		})
	}
}

// TestReadErrorsMasked fails reads on the server (the tables are gone)
// and checks that no error text holds SQL, table names or the server's
// message, that the status is a 5xx, and that the server's message is
// logged instead.
func TestReadErrorsMasked(t *testing.T) {
	cfg := testConfig(t)
	var logBuf syncBuffer
	s, err := New(cfg, slog.New(slog.NewTextHandler(&logBuf, nil)), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	ts := s.ForTenant("masked")
	writeNumbered(t, ts, "m", 3)
	require.NoError(t, s.conn.Exec(t.Context(), "DROP TABLE "+s.schema.table(seriesTable)))
	require.NoError(t, s.conn.Exec(t.Context(), "DROP TABLE "+s.schema.table(statsTable))) // cardinality reads the statistics

	q, err := ts.Querier(0, 10_000)
	require.NoError(t, err)
	defer q.Close()
	ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "m")}
	errs := map[string]error{}
	set := q.Select(t.Context(), false, nil, ms...)
	require.False(t, set.Next())
	errs["select"] = set.Err()
	set = q.Select(t.Context(), true, &promstorage.SelectHints{Func: "series"}, ms...)
	require.False(t, set.Next())
	errs["series"] = set.Err()
	_, _, errs["label values"] = q.LabelValues(t.Context(), "i", nil, ms...)
	_, _, errs["label names"] = q.LabelNames(t.Context(), nil, ms...)
	_, errs["cardinality"] = ts.Cardinality(t.Context(), storage.CardinalityRequest{Limit: 10})
	for name, err := range errs {
		require.Error(t, err, name)
		text := fmt.Sprintf("%v %s", err, fmt.Errorf("wrapped: %w", err))
		for _, leak := range []string{"SELECT", "FROM", "WHERE", cfg.Database, s.schema.table(seriesTable), s.schema.table(samplesTable), "doesn't exist", "code:", "Exception", "127.0.0.1"} {
			require.NotContains(t, text, leak, "%s: error text %q", name, text)
		}
		info := apierror.Classify(err)
		require.Equal(t, apierror.Internal, info.Kind, "%s: %v", name, err)
		var ex *ch.Exception
		require.True(t, errors.As(err, &ex), "%s: the cause stays in the chain", name)
		require.Equal(t, int32(60), ex.Code, "UNKNOWN_TABLE")
	}
	require.Contains(t, logBuf.String(), "doesn't exist", "the server's message is logged")
}

// syncBuffer is a bytes.Buffer safe for the store's concurrent logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestWideSelectBounded selects more series than the tenant may load in
// one query: the store must hand over at most one series more than the
// limit (so the caller's count fails the query) and then fail itself,
// without reading every series row of the selection first.
func TestWideSelectBounded(t *testing.T) {
	cfg := testConfig(t)
	const limit, nSeries = 100, 2000
	cfg.MaxSeriesPerQuery = func(id tenancy.ID) int {
		if id == "wide" {
			return limit
		}
		return 0
	}
	s := openStore(t, cfg)
	ts := s.ForTenant("wide")
	writeNumbered(t, ts, "w", nSeries)
	var sqls []string
	s.queryLog = func(kind, sql string) {
		if kind == "series" {
			sqls = append(sqls, sql)
		}
	}
	q, err := ts.Querier(0, 10_000)
	require.NoError(t, err)
	defer q.Close()
	mm := labels.MustNewMatcher
	long := alternation(50_000, func(i int) bool { return i%2 == 0 })
	for cname, ms := range map[string][]*labels.Matcher{
		"every series":  {mm(labels.MatchRegexp, "__name__", ".+")},
		"long matcher":  {mm(labels.MatchRegexp, "__name__", ".+"), mm(labels.MatchRegexp, "i", long)},
		"exact matcher": {mm(labels.MatchEqual, "__name__", "w")},
	} {
		for _, hints := range []*promstorage.SelectHints{nil, {Start: 0, End: 10_000}, {Start: 0, End: 10_000, Func: "series"}} {
			for _, sorted := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%v/sorted=%v", cname, hints, sorted), func(t *testing.T) {
					sqls = nil
					set := q.Select(t.Context(), sorted, hints, ms...)
					n := 0
					for set.Next() {
						n++
						require.LessOrEqual(t, n, limit+1)
					}
					require.Equal(t, limit+1, n, "one series past the limit, for the caller's count")
					err := set.Err()
					require.Error(t, err)
					require.Contains(t, err.Error(), "max_series_per_query")
					require.Equal(t, apierror.Execution, apierror.Classify(err).Kind)
					if cname != "long matcher" {
						require.Len(t, sqls, 1)
						require.Contains(t, sqls[0], fmt.Sprintf("LIMIT %d", limit+1), "the limit is sent with the series query")
					}
				})
			}
		}
	}
	t.Run("first series in label order", func(t *testing.T) {
		var all []string
		for i := range nSeries {
			all = append(all, labels.FromStrings("__name__", "w", "i", strconv.Itoa(i)).String())
		}
		slices.Sort(all)
		for _, f := range []string{"", "series"} {
			for _, sorted := range []bool{false, true} {
				sqls = nil
				set := q.Select(t.Context(), sorted, &promstorage.SelectHints{Start: 0, End: 10_000, Func: f, Limit: 10}, mm(labels.MatchRegexp, "__name__", ".+"))
				require.Equal(t, all[:10], selectNames(t, set), "func %q, sorted=%v", f, sorted)
				require.Contains(t, sqls[0], "LIMIT 10")
			}
			// More than the limit asked for: the first limit+1, then the error.
			set := q.Select(t.Context(), true, &promstorage.SelectHints{Start: 0, End: 10_000, Func: f, Limit: 2 * limit}, mm(labels.MatchRegexp, "__name__", ".+"))
			var got []string
			for set.Next() {
				got = append(got, set.At().Labels().String())
			}
			require.Equal(t, all[:limit+1], got)
			require.ErrorContains(t, set.Err(), "max_series_per_query")
		}
	})
	t.Run("label values", func(t *testing.T) {
		_, _, err := q.LabelValues(t.Context(), "i", nil, mm(labels.MatchRegexp, "i", long))
		require.Error(t, err)
		require.Contains(t, err.Error(), "max_series_per_query")
	})
	t.Run("within the limit", func(t *testing.T) {
		ms := []*labels.Matcher{mm(labels.MatchRegexp, "i", alternation(limit, func(int) bool { return true }))}
		require.Len(t, selectNames(t, q.Select(t.Context(), true, nil, ms...)), limit)
		values, _, err := q.LabelValues(t.Context(), "i", nil, mm(labels.MatchRegexp, "i", alternation(15_000, func(i int) bool { return i < limit || i >= 10_000 })))
		require.NoError(t, err)
		require.Len(t, values, limit)
	})
}

// TestSelectSamplesBounded selects more samples than the tenant may load
// in one query: the store reads no batch after the one that crosses the
// limit, and fails.
func TestSelectSamplesBounded(t *testing.T) {
	cfg := testConfig(t)
	const budget, nSeries = 2500, 4500
	cfg.MaxSamplesPerQuery = func(tenancy.ID) int { return budget }
	s := openStore(t, cfg)
	ts := s.ForTenant("samples")
	writeNumbered(t, ts, "s", nSeries)
	var loaded int
	q, err := ts.Querier(0, 10_000)
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(t.Context(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "s"))
	n := 0
	for set.Next() {
		n++
		for it := set.At().Iterator(nil); it.Next() != 0; {
			loaded++
		}
	}
	err = set.Err()
	require.Error(t, err)
	require.Contains(t, err.Error(), "max_samples_per_query")
	require.Equal(t, apierror.Execution, apierror.Classify(err).Kind)
	require.Greater(t, loaded, budget, "the batch crossing the limit is handed over")
	require.Less(t, n, nSeries, "no batch is read past it")
}

// TestDenseBatchSplit reads series far denser than the batch estimate
// assumes: a batch is cut short at its row bound and read again in
// smaller batches, and every sample still arrives once.
func TestDenseBatchSplit(t *testing.T) {
	s := newTestStore(t)
	ts := s.ForTenant("dense")
	const nSeries, perSeries = 40, 500
	app := ts.AppenderV2(t.Context())
	for i := range nSeries {
		for j := range perSeries {
			_, err := app.Append(0, labels.FromStrings("__name__", "d", "i", strconv.Itoa(i)), 0, int64(j), float64(i*perSeries+j), nil, nil, promstorage.AOptions{})
			require.NoError(t, err)
		}
	}
	require.NoError(t, app.Commit())
	var queries int
	s.queryLog = func(kind, _ string) {
		if kind == "samples" {
			queries++
		}
	}
	q, err := ts.Querier(0, perSeries)
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(t.Context(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "d"))
	set.(*sampleSet).rowsMax = 3 * perSeries
	got := 0
	for set.Next() {
		i, err := strconv.Atoi(set.At().Labels().Get("i"))
		require.NoError(t, err)
		j := 0
		for it := set.At().Iterator(nil); it.Next() != 0; j++ {
			tt, v := it.At()
			require.Equal(t, int64(j), tt)
			require.Equal(t, float64(i*perSeries+j), v)
		}
		require.Equal(t, perSeries, j)
		got++
	}
	require.NoError(t, set.Err())
	require.Equal(t, nSeries, got)
	require.Greater(t, queries, nSeries/3, "batches of at most 3 series")
}

// TestDownErrorsMasked stops the server: readiness, health (both public)
// and a failed commit say ClickHouse is unavailable without naming the
// server's address or quoting the driver.
func TestDownErrorsMasked(t *testing.T) {
	srv := chtest.New(t)
	cfg := testConfig(t)
	cfg.DSN = srv.DSN()
	cfg.Timeout = 5 * time.Second
	s := openStore(t, cfg)
	ts := s.ForTenant("down")
	writeNumbered(t, ts, "d", 1)
	srv.Kill()
	leaks := []string{srv.Addr(), "127.0.0.1", "dial", "connection refused", "EOF"}
	err := s.Ready(t.Context())
	require.ErrorIs(t, err, storage.ErrUnavailable)
	h := s.Health(t.Context())
	app := ts.AppenderV2(t.Context())
	_, aerr := app.Append(0, labels.FromStrings("__name__", "d", "i", "new"), 0, 2000, 1, nil, nil, promstorage.AOptions{})
	if aerr == nil {
		aerr = app.Commit()
	}
	require.ErrorIs(t, aerr, storage.ErrUnavailable)
	q, qerr := ts.Querier(0, 10_000)
	require.NoError(t, qerr)
	set := q.Select(t.Context(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "d"))
	require.False(t, set.Next())
	require.ErrorIs(t, set.Err(), storage.ErrUnavailable)
	require.Equal(t, apierror.Unavailable, apierror.Classify(set.Err()).Kind)
	for _, text := range []string{err.Error(), h.Read.Message, h.Write.Message, aerr.Error(), set.Err().Error()} {
		for _, leak := range leaks {
			require.NotContains(t, text, leak)
		}
	}
}
