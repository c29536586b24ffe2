package clickhouse

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
	"github.com/luminate-io/luminate/tenancy"
)

// appendV2 appends one float sample with opts through AppenderV2 in a
// transaction of its own and returns Append's error (Commit must succeed).
func appendV2(t testing.TB, ts storage.TenantStore, lset labels.Labels, tt int64, v float64, opts promstorage.AppendV2Options) error {
	t.Helper()
	app := ts.AppenderV2(t.Context())
	_, err := app.Append(0, lset, 0, tt, v, nil, nil, opts)
	require.NoError(t, app.Commit())
	return err
}

func exWith(ts int64, v float64, nv ...string) exemplar.Exemplar {
	return exemplar.Exemplar{Labels: labels.FromStrings(nv...), Value: v, Ts: ts, HasTs: true}
}

func selectEx(t testing.TB, ts storage.TenantStore, start, end int64, sets ...[]*labels.Matcher) []exemplar.QueryResult {
	t.Helper()
	q, err := ts.ExemplarQuerier(t.Context())
	require.NoError(t, err)
	res, err := q.Select(start, end, sets...)
	require.NoError(t, err)
	return res
}

func eqm(n, v string) *labels.Matcher { return labels.MustNewMatcher(labels.MatchEqual, n, v) }

// requirePartial requires err to be an AppendPartialError refusing the
// exemplars at idx, each for a reason wrapping want.
func requirePartial(t testing.TB, err error, want error, idx ...int) {
	t.Helper()
	var pe *promstorage.AppendPartialError
	require.True(t, errors.As(err, &pe), "want a partial error, got %v", err)
	var got []int
	for _, e := range pe.ExemplarErrors {
		require.ErrorIs(t, e.Err, want)
		got = append(got, e.Index)
	}
	require.Equal(t, idx, got)
}

func tableCount(t testing.TB, s *Store, table, where string) uint64 {
	t.Helper()
	var n uint64
	require.NoError(t, testConn(t).QueryRow(t.Context(), "SELECT count() FROM "+s.schema.table(table)+" WHERE "+where).Scan(&n))
	return n
}

// TestExemplars stores exemplars of two series and reads them back with
// matcher sets (OR'ed) and time ranges; checks Prometheus' rules
// (duplicate of the newest dropped silently, older refused, labels too
// long refused) with the sample appended either way, and that they hold
// after a restart.
func TestExemplars(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	ts := s.ForTenant("ex")
	api := labels.FromStrings("__name__", "req_total", "job", "api")
	web := labels.FromStrings("__name__", "req_total", "job", "web")
	e1, e2 := exWith(1000, 1, "trace_id", "a"), exWith(2000, 2, "trace_id", "b", "span_id", "s")
	w1 := exWith(1500, math.Inf(1), "trace_id", "w")
	require.NoError(t, appendV2(t, ts, api, 1000, 1, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{e1, e2}}))
	require.NoError(t, appendV2(t, ts, web, 1000, 1, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{w1}}))

	all := []exemplar.QueryResult{{SeriesLabels: api, Exemplars: []exemplar.Exemplar{e1, e2}}, {SeriesLabels: web, Exemplars: []exemplar.Exemplar{w1}}}
	require.Equal(t, all, selectEx(t, ts, math.MinInt64, math.MaxInt64, []*labels.Matcher{eqm("__name__", "req_total")}))
	require.Equal(t, all, selectEx(t, ts, 0, 5000, []*labels.Matcher{eqm("job", "web")}, []*labels.Matcher{eqm("job", "api")}), "matcher sets are OR'ed")
	require.Equal(t, all[1:], selectEx(t, ts, 0, 5000, []*labels.Matcher{eqm("job", "web")}))
	require.Equal(t, []exemplar.QueryResult{{SeriesLabels: api, Exemplars: []exemplar.Exemplar{e2}}, {SeriesLabels: web, Exemplars: []exemplar.Exemplar{w1}}},
		selectEx(t, ts, 1001, 2000, []*labels.Matcher{eqm("__name__", "req_total")}))
	require.Empty(t, selectEx(t, ts, 2001, 9000, []*labels.Matcher{eqm("__name__", "req_total")}))
	require.Empty(t, selectEx(t, ts, math.MinInt64, math.MaxInt64), "no matcher set, no series")
	require.Empty(t, selectEx(t, ts, math.MinInt64, math.MaxInt64, []*labels.Matcher{eqm("__name__", "req_total"), eqm(tenancy.Label, "ex")}),
		"the tenant is not a label of the series")

	// Duplicates of the newest: dropped silently, in one Append, in one
	// transaction, and re-sent.
	app := ts.AppenderV2(t.Context())
	_, err := app.Append(0, api, 0, 3000, 3, nil, nil, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{e2, e2}})
	require.NoError(t, err)
	_, err = app.Append(0, api, 0, 3001, 3, nil, nil, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{e2}})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
	// Older than the newest: refused, the sample and the newer exemplar kept.
	e3 := exWith(4000, 4, "trace_id", "c")
	err = appendV2(t, ts, api, 4000, 4, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{exWith(1500, 9, "trace_id", "old"), e3}})
	requirePartial(t, err, promstorage.ErrOutOfOrderExemplar, 0)
	// Same time, smaller value: out of order too (Prometheus' rule).
	err = appendV2(t, ts, api, 4001, 4, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{exWith(4000, 3, "trace_id", "c")}})
	requirePartial(t, err, promstorage.ErrOutOfOrderExemplar, 0)
	// Labels over 128 runes: refused.
	long := exWith(5000, 5, "trace_id", strings.Repeat("é", 121))
	err = appendV2(t, ts, web, 5000, 5, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{long}})
	requirePartial(t, err, promstorage.ErrExemplarLabelLength, 0)
	want := []exemplar.QueryResult{{SeriesLabels: api, Exemplars: []exemplar.Exemplar{e1, e2, e3}}, {SeriesLabels: web, Exemplars: []exemplar.Exemplar{w1}}}
	require.Equal(t, want, selectEx(t, ts, math.MinInt64, math.MaxInt64, []*labels.Matcher{eqm("__name__", "req_total")}))
	require.ElementsMatch(t, []sample{{1000, 1}, {3000, 3}, {3001, 3}, {4000, 4}, {4001, 4}, {1000, 1}, {5000, 5}}, readAll(t, ts, "req_total"), "samples of refused exemplars are kept")
	require.Equal(t, uint64(4), tableCount(t, s, exemplarsTable, "tenant = 'ex'"), "duplicates are not inserted")

	// After a restart the newest exemplar of each series is known.
	require.NoError(t, s.Close())
	s = openStore(t, cfg)
	ts = s.ForTenant("ex")
	require.NoError(t, appendV2(t, ts, api, 6000, 6, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{e3}}), "re-sent newest is a duplicate")
	err = appendV2(t, ts, web, 6000, 6, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{exWith(1400, 1, "trace_id", "old")}})
	requirePartial(t, err, promstorage.ErrOutOfOrderExemplar, 0)
	require.Equal(t, want, selectEx(t, ts, math.MinInt64, math.MaxInt64, []*labels.Matcher{eqm("__name__", "req_total")}))
	require.Equal(t, uint64(4), tableCount(t, s, exemplarsTable, "tenant = 'ex'"))
}

// TestExemplarTenants: tenants whose IDs share a prefix, writing the same
// series, each read their own exemplars only.
func TestExemplarTenants(t *testing.T) {
	s := newTestStore(t)
	lset := labels.FromStrings("__name__", "shared")
	own := map[tenancy.ID]exemplar.Exemplar{}
	for i, id := range []tenancy.ID{"t", "t1", "u"} {
		e := exWith(int64(1000+i), float64(i), "trace_id", string(id))
		require.NoError(t, appendV2(t, s.ForTenant(id), lset, 1000, 1, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{e}}))
		own[id] = e
	}
	for _, id := range []tenancy.ID{"t", "t1", "u"} {
		got := selectEx(t, s.ForTenant(id), math.MinInt64, math.MaxInt64, []*labels.Matcher{eqm("__name__", "shared")})
		require.Equal(t, []exemplar.QueryResult{{SeriesLabels: lset, Exemplars: []exemplar.Exemplar{own[id]}}}, got, "tenant %s", id)
	}
	require.Empty(t, selectEx(t, s.ForTenant("v"), math.MinInt64, math.MaxInt64, []*labels.Matcher{eqm("__name__", "shared")}))
}

// TestExemplarBound: with ExemplarLimits each tenant's newest exemplars
// are returned, at most the bound; the cleanup deletes the older ones of
// tenants well over it, and only theirs.
func TestExemplarBound(t *testing.T) {
	cfg := testConfig(t)
	cfg.ExemplarLimits = func(tenancy.ID) int { return 5 }
	s := openStore(t, cfg)
	all := []*labels.Matcher{eqm("__name__", "bound")}
	series := []labels.Labels{labels.FromStrings("__name__", "bound", "i", "0"), labels.FromStrings("__name__", "bound", "i", "1")}
	written := map[tenancy.ID][]exemplar.Exemplar{}
	for _, c := range []struct {
		id tenancy.ID
		n  int
	}{{"big", 12}, {"small", 6}} {
		for i := range c.n {
			e := exWith(int64(1000*i), float64(i), "trace_id", fmt.Sprint(i))
			require.NoError(t, appendV2(t, s.ForTenant(c.id), series[i%2], int64(1000*i), 1, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{e}}))
			written[c.id] = append(written[c.id], e)
		}
	}
	newest := func(id tenancy.ID) []exemplar.Exemplar {
		var out []exemplar.Exemplar
		for _, r := range selectEx(t, s.ForTenant(id), math.MinInt64, math.MaxInt64, all) {
			out = append(out, r.Exemplars...)
		}
		return out
	}
	sortByTs := func(es []exemplar.Exemplar) []exemplar.Exemplar {
		out := append([]exemplar.Exemplar(nil), es...)
		for i := range out {
			for j := i + 1; j < len(out); j++ {
				if out[j].Ts < out[i].Ts {
					out[i], out[j] = out[j], out[i]
				}
			}
		}
		return out
	}
	check := func() {
		t.Helper()
		for _, id := range []tenancy.ID{"big", "small"} {
			w := written[id]
			require.Equal(t, w[len(w)-5:], sortByTs(newest(id)), "tenant %s", id)
		}
	}
	check()
	require.Equal(t, uint64(12), tableCount(t, s, exemplarsTable, "tenant = 'big'"))
	require.NoError(t, s.aux.trimExemplars(t.Context(), time.Now()))
	// The mutation runs in the background (18.16 has no mutations_sync).
	require.Eventually(t, func() bool { return tableCount(t, s, exemplarsTable, "tenant = 'big'") == 5 }, 20*time.Second, 50*time.Millisecond)
	require.Equal(t, uint64(6), tableCount(t, s, exemplarsTable, "tenant = 'small'"), "6 rows for a bound of 5: within the slack, not deleted")
	check()
	require.Len(t, readAll(t, s.ForTenant("big"), "bound"), 12, "samples are all kept")
}

// TestMetadata: latest wins per family (MetricFamilyName, else the metric
// name), filter and limit, and a write that changes nothing inserts
// nothing; after a restart too.
func TestMetadata(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	ts := s.ForTenant("md")
	counter := metadata.Metadata{Type: model.MetricTypeCounter, Help: "Requests."}
	hist := metadata.Metadata{Type: model.MetricTypeHistogram, Unit: "seconds", Help: "Latency."}
	app := ts.AppenderV2(t.Context())
	for i := range 3 {
		for _, a := range []struct {
			lset   labels.Labels
			family string
			md     metadata.Metadata
		}{
			{labels.FromStrings("__name__", "req_total", "i", fmt.Sprint(i)), "", counter},
			{labels.FromStrings("__name__", "lat_bucket", "le", fmt.Sprint(i)), "lat", hist},
			{labels.FromStrings("__name__", "lat_count"), "lat", hist},
			{labels.FromStrings("__name__", "bare"), "", metadata.Metadata{}},
		} {
			_, err := app.Append(0, a.lset, 0, int64(1000+i), 1, nil, nil, promstorage.AppendV2Options{MetricFamilyName: a.family, Metadata: a.md})
			require.NoError(t, err)
		}
	}
	require.NoError(t, app.Commit())
	want := map[string]metadata.Metadata{"req_total": counter, "lat": hist}
	got, err := ts.Metadata(t.Context(), "", 0)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, uint64(2), tableCount(t, s, metadataTable, "tenant = 'md'"), "one row per family for a whole transaction")

	// Unchanged metadata, as 2.0 sends it with every series: nothing inserted.
	for i := range 3 {
		require.NoError(t, appendV2(t, ts, labels.FromStrings("__name__", "req_total", "i", "0"), int64(2000+i), 1, promstorage.AppendV2Options{Metadata: counter}))
	}
	require.Equal(t, uint64(2), tableCount(t, s, metadataTable, "tenant = 'md'"))
	// A change: latest wins.
	counter2 := metadata.Metadata{Type: model.MetricTypeCounter, Unit: "requests", Help: "All requests."}
	require.NoError(t, appendV2(t, ts, labels.FromStrings("__name__", "req_total", "i", "1"), 3000, 1, promstorage.AppendV2Options{Metadata: counter2}))
	want["req_total"] = counter2
	for _, c := range []struct {
		metric string
		limit  int
		want   map[string]metadata.Metadata
	}{
		{"", 0, want},
		{"", 5, want},
		{"lat", 0, map[string]metadata.Metadata{"lat": hist}},
		{"lat_bucket", 0, map[string]metadata.Metadata{}},
		{"req", 0, map[string]metadata.Metadata{}},
		{"", 1, map[string]metadata.Metadata{"lat": hist}}, // first by name
	} {
		got, err := ts.Metadata(t.Context(), c.metric, c.limit)
		require.NoError(t, err)
		require.Equal(t, c.want, got, "Metadata(%q, %d)", c.metric, c.limit)
	}
	other, err := s.ForTenant("md2").Metadata(t.Context(), "", 0)
	require.NoError(t, err)
	require.Empty(t, other, "another tenant")

	// After a restart: the cache is loaded, unchanged metadata inserts nothing.
	require.NoError(t, s.Close())
	s = openStore(t, cfg)
	ts = s.ForTenant("md")
	n := tableCount(t, s, metadataTable, "tenant = 'md'")
	require.NoError(t, appendV2(t, ts, labels.FromStrings("__name__", "lat_sum"), 4000, 1, promstorage.AppendV2Options{MetricFamilyName: "lat", Metadata: hist}))
	require.Equal(t, n, tableCount(t, s, metadataTable, "tenant = 'md'"))
	got, err = ts.Metadata(t.Context(), "", 0)
	require.NoError(t, err)
	require.Equal(t, want, got)
}

// TestMetadataBound: with MetadataLimits the first families keep their
// metadata (and its updates), new ones beyond the bound are dropped with
// their samples stored; across a restart too.
func TestMetadataBound(t *testing.T) {
	cfg := testConfig(t)
	cfg.MetadataLimits = func(tenancy.ID) int { return 2 }
	s := openStore(t, cfg)
	ts := s.ForTenant("mb")
	md := func(i int) metadata.Metadata {
		return metadata.Metadata{Type: model.MetricTypeGauge, Help: fmt.Sprint("Family ", i)}
	}
	for i := range 4 {
		require.NoError(t, appendV2(t, ts, labels.FromStrings("__name__", fmt.Sprint("fam", i)), 1000, 1, promstorage.AppendV2Options{Metadata: md(i)}))
	}
	want := map[string]metadata.Metadata{"fam0": md(0), "fam1": md(1)}
	check := func() {
		t.Helper()
		got, err := ts.Metadata(t.Context(), "", 0)
		require.NoError(t, err)
		require.Equal(t, want, got)
		for i := range 4 {
			require.Len(t, readAll(t, ts, fmt.Sprint("fam", i)), 1)
		}
	}
	check()
	require.NoError(t, appendV2(t, ts, labels.FromStrings("__name__", "fam1"), 1000, 1, promstorage.AppendV2Options{Metadata: md(10)}))
	want["fam1"] = md(10)
	check()
	require.NoError(t, s.Close())
	s = openStore(t, cfg)
	ts = s.ForTenant("mb")
	require.NoError(t, appendV2(t, ts, labels.FromStrings("__name__", "fam3"), 1000, 1, promstorage.AppendV2Options{Metadata: md(3)}))
	check()
	got, err := s.ForTenant("other").Metadata(t.Context(), "", 0)
	require.NoError(t, err)
	require.Empty(t, got)
	require.NoError(t, appendV2(t, s.ForTenant("other"), labels.FromStrings("__name__", "fam3"), 1000, 1, promstorage.AppendV2Options{Metadata: md(3)}))
	got, err = s.ForTenant("other").Metadata(t.Context(), "", 0)
	require.NoError(t, err)
	require.Equal(t, map[string]metadata.Metadata{"fam3": md(3)}, got, "each tenant has a bound of its own")
}

// TestAuxMigration opens a store on a database created before the
// exemplar and metadata tables (migrations before 4 only): the migration
// adds them, the old samples stay readable, exemplars and metadata work.
func TestAuxMigration(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	sc := s.schema
	write(t, s.ForTenant("m"), labels.FromStrings("__name__", "before"), 1000, 1)
	require.NoError(t, s.Close())
	conn := testConn(t)
	ctx := t.Context()
	// The database as a release before migration 4 left it.
	require.NoError(t, conn.Exec(ctx, "DROP TABLE "+sc.table(exemplarsTable)))
	require.NoError(t, conn.Exec(ctx, "DROP TABLE "+sc.table(metadataTable)))
	require.NoError(t, conn.Exec(ctx, "TRUNCATE TABLE "+sc.table(migrationsTable)))
	for _, m := range migrations {
		if m.version < 4 {
			require.NoError(t, conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s (version, name, applied_at) SELECT %d, %s, now()", sc.table(migrationsTable), m.version, quote(m.name))))
		}
	}
	var n uint64
	require.NoError(t, conn.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM system.tables WHERE database = %s AND name IN ('exemplars', 'metadata')", quote(cfg.Database))).Scan(&n))
	require.Zero(t, n)

	s = openStore(t, cfg)
	require.NoError(t, conn.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM system.tables WHERE database = %s AND name IN ('exemplars', 'metadata')", quote(cfg.Database))).Scan(&n))
	require.Equal(t, uint64(2), n, "migration 4 creates the tables")
	ts := s.ForTenant("m")
	require.Equal(t, []sample{{1000, 1}}, readAll(t, ts, "before"))
	e := exWith(2000, 2, "trace_id", "x")
	md := metadata.Metadata{Type: model.MetricTypeGauge, Help: "Before."}
	require.NoError(t, appendV2(t, ts, labels.FromStrings("__name__", "before"), 2000, 2, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{e}, Metadata: md}))
	require.Equal(t, []exemplar.QueryResult{{SeriesLabels: labels.FromStrings("__name__", "before"), Exemplars: []exemplar.Exemplar{e}}},
		selectEx(t, ts, math.MinInt64, math.MaxInt64, []*labels.Matcher{eqm("__name__", "before")}))
	got, err := ts.Metadata(ctx, "", 0)
	require.NoError(t, err)
	require.Equal(t, map[string]metadata.Metadata{"before": md}, got)
}

// TestAuxGroupCommit: concurrent commits with exemplars and metadata
// share inserts, and every acknowledged exemplar is stored.
func TestAuxGroupCommit(t *testing.T) {
	cfg := testConfig(t)
	cfg.FlushInterval = 20 * time.Millisecond
	s := openStore(t, cfg)
	ts := s.ForTenant("gc")
	const writers, commits = 8, 4
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			lset := labels.FromStrings("__name__", "gc", "w", fmt.Sprint(w))
			for i := range commits {
				app := ts.AppenderV2(t.Context())
				e := exWith(int64(i), float64(w), "trace_id", fmt.Sprint(w, "-", i))
				md := metadata.Metadata{Type: model.MetricTypeGauge, Help: fmt.Sprint("Writer ", w, " commit ", i)}
				if _, err := app.Append(0, lset, 0, int64(i), 1, nil, nil, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{e}, Metadata: md, MetricFamilyName: fmt.Sprint("gc", w)}); err != nil {
					errs <- err
					return
				}
				if err := app.Commit(); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		require.NoError(t, <-errs)
	}
	res := selectEx(t, ts, math.MinInt64, math.MaxInt64, []*labels.Matcher{eqm("__name__", "gc")})
	require.Len(t, res, writers)
	for _, r := range res {
		require.Len(t, r.Exemplars, commits)
	}
	got, err := ts.Metadata(t.Context(), "", 0)
	require.NoError(t, err)
	require.Len(t, got, writers)
	for w := range writers {
		require.Equal(t, fmt.Sprint("Writer ", w, " commit ", commits-1), got[fmt.Sprint("gc", w)].Help, "latest wins")
	}
	inserts := s.aux.inserts.Load()
	t.Logf("%d commits in %d inserts", writers*commits, inserts)
	require.Less(t, inserts, int64(writers*commits), "commits share inserts")
}

// BenchmarkAppendMetadata is the cost of an Append carrying metadata that
// did not change (remote write 2.0 sends it with every series) against an
// Append without, commits aside.
func BenchmarkAppendMetadata(b *testing.B) {
	s := newTestStore(b)
	ts := s.ForTenant("bench")
	const n = 1000
	lsets := make([]labels.Labels, n)
	for i := range lsets {
		lsets[i] = labels.FromStrings("__name__", fmt.Sprint("m", i%50), "i", fmt.Sprint(i))
	}
	md := metadata.Metadata{Type: model.MetricTypeCounter, Help: "Some help text of a usual length."}
	// Series and metadata known to the caches.
	app := ts.AppenderV2(b.Context())
	for i, l := range lsets {
		_, err := app.Append(0, l, 0, int64(i), 1, nil, nil, promstorage.AppendV2Options{Metadata: md})
		require.NoError(b, err)
	}
	require.NoError(b, app.Commit())
	for _, c := range []struct {
		name string
		md   metadata.Metadata
	}{{"none", metadata.Metadata{}}, {"unchanged", md}} {
		b.Run(c.name, func(b *testing.B) {
			app := ts.AppenderV2(b.Context())
			i := 0
			for b.Loop() {
				_, err := app.Append(0, lsets[i%n], 0, int64(i), 1, nil, nil, promstorage.AppendV2Options{Metadata: c.md})
				if err != nil {
					b.Fatal(err)
				}
				i++
				if i%n == 0 {
					b.StopTimer()
					require.NoError(b, app.Rollback())
					app = ts.AppenderV2(b.Context())
					b.StartTimer()
				}
			}
			require.NoError(b, app.Rollback())
		})
	}
}

// TestClusterAux runs exemplars and metadata over two 18.16 shards behind
// Distributed tables: exemplars spread over both, the bound's cutoff and
// the selects merge them, the cleanup deletes on every node.
func TestClusterAux(t *testing.T) {
	nodes := chtest.NewCluster(t, 2)
	cfg := testConfig(t)
	cfg.DSN = nodes[0].DSN()
	cfg.Cluster = chtest.ClusterName
	cfg.ExemplarLimits = func(tenancy.ID) int { return 5 }
	s := openStore(t, cfg)
	ts := s.ForTenant("c")
	const n = 40
	var want []exemplar.QueryResult
	for i := range n {
		lset := labels.FromStrings("__name__", "spread", "i", fmt.Sprintf("%02d", i))
		e := exWith(int64(1000*i), float64(i), "trace_id", fmt.Sprint(i))
		md := metadata.Metadata{Type: model.MetricTypeGauge, Help: fmt.Sprint("Family ", i%3)}
		require.NoError(t, appendV2(t, ts, lset, int64(1000*i), 1, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{e}, Metadata: md, MetricFamilyName: fmt.Sprint("fam", i%3)}))
		if i >= n-5 {
			want = append(want, exemplar.QueryResult{SeriesLabels: lset, Exemplars: []exemplar.Exemplar{e}})
		}
	}
	local := func() (total uint64, perShard []uint64) {
		for _, node := range nodes {
			opts, err := ch.ParseDSN(node.DSN())
			require.NoError(t, err)
			conn, err := ch.Open(opts)
			require.NoError(t, err)
			var rows uint64
			require.NoError(t, conn.QueryRow(t.Context(), "SELECT count() FROM "+s.schema.table(exemplarsTable+localSuffix)).Scan(&rows))
			conn.Close()
			total += rows
			perShard = append(perShard, rows)
		}
		return total, perShard
	}
	total, perShard := local()
	require.Equal(t, uint64(n), total)
	for k, rows := range perShard {
		require.Positive(t, rows, "shard %d holds exemplars", k+1)
	}
	all := []*labels.Matcher{eqm("__name__", "spread")}
	require.Equal(t, want, selectEx(t, ts, math.MinInt64, math.MaxInt64, all))
	got, err := ts.Metadata(t.Context(), "", 0)
	require.NoError(t, err)
	require.Len(t, got, 3)
	require.Equal(t, "Family 1", got["fam1"].Help)

	require.NoError(t, s.aux.trimExemplars(t.Context(), time.Now()))
	require.Eventually(t, func() bool { total, _ := local(); return total == 5 }, 30*time.Second, 100*time.Millisecond)
	require.Equal(t, want, selectEx(t, ts, math.MinInt64, math.MaxInt64, all))
}
