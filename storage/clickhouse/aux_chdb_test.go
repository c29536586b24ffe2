//go:build chdb

package clickhouse

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
	"github.com/luminate-io/luminate/tenancy"
)

// TestModernAux runs the exemplar and metadata tables and every query the
// store sends for them on chDB: the tables are created by the migrations
// (with codecs), the rows the store wrote on 18.16 are copied over, and
// each query (the bound's cutoff, the exemplar selects, the cache loads,
// the metadata reads, the cleanup's counts and mutation) gives the same
// answer on both.
func TestModernAux(t *testing.T) {
	ctx := t.Context()
	modern := openChDB(t)
	info, err := detectServer(ctx, modern)
	require.NoError(t, err)

	cfg := testConfig(t)
	cfg.ExemplarLimits = func(tenancy.ID) int { return 5 } // 7 written: within the cleanup's slack
	cfg.MetadataLimits = func(tenancy.ID) int { return 3 }
	legacy := openStore(t, cfg)
	var queries []string
	seen := map[string]bool{}
	legacy.queryLog = func(_, sql string) {
		if !seen[sql] {
			seen[sql] = true
			queries = append(queries, sql)
		}
	}
	sc := schema{db: legacy.schema.db, info: info, retention: 90 * 24 * time.Hour}
	_, err = sc.migrate(ctx, modern)
	require.NoError(t, err)
	for _, table := range []string{exemplarsTable, metadataTable} {
		create, err := modern.query("SHOW CREATE TABLE " + sc.table(table))
		require.NoError(t, err)
		t.Logf("modern %s table: %s", table, create)
		require.Contains(t, create, "ReplacingMergeTree")
	}

	// The workload on 18.16: two tenants, exemplars over the bound,
	// metadata over the bound and updated, a label with a quote.
	for _, id := range []tenancy.ID{"a", "b"} {
		ts := legacy.ForTenant(id)
		for i := range 7 {
			lset := labels.FromStrings("__name__", "aux_total", "job", []string{"api", "we'b"}[i%2], "i", fmt.Sprint(i%3))
			e := exemplar.Exemplar{Labels: labels.FromStrings("trace_id", fmt.Sprintf("%s%d", id, i)), Value: float64(i) / 3, Ts: int64(1000 * i), HasTs: true}
			md := metadata.Metadata{Type: model.MetricTypeCounter, Help: fmt.Sprintf("Family %d of %s.", i%5, id)}
			require.NoError(t, appendV2(t, ts, lset, int64(1000*i), 1, promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{e}, Metadata: md, MetricFamilyName: fmt.Sprint("fam", i%5)}))
		}
	}
	reads := func(s *Store) {
		for _, id := range []tenancy.ID{"a", "b", "c"} {
			ts := s.ForTenant(id)
			for _, sets := range [][][]*labels.Matcher{
				{{eqm("__name__", "aux_total")}},
				{{eqm("job", "we'b")}, {labels.MustNewMatcher(labels.MatchRegexp, "i", "1|2")}},
				{{labels.MustNewMatcher(labels.MatchNotRegexp, "job", "a.*"), eqm("__name__", "aux_total")}},
			} {
				for _, r := range [][2]int64{{math.MinInt64, math.MaxInt64}, {2000, 5000}} {
					selectEx(t, ts, r[0], r[1], sets...)
				}
			}
			for _, m := range []string{"", "fam1", "nothing"} {
				for _, limit := range []int{0, 2} {
					_, err := ts.Metadata(ctx, m, limit)
					require.NoError(t, err)
				}
			}
		}
	}
	reads(legacy)
	require.NoError(t, legacy.aux.trimExemplars(ctx, time.Now())) // records the counts query, deletes nothing

	// The rows, copied to chDB as they are on 18.16.
	base := chtest.Shared(t).HTTPURL()
	for _, c := range []struct{ table, cols, structure string }{
		{exemplarsTable, "tenant, ts, fingerprint, value, exemplar_hash, has_ts, exemplar_names, exemplar_values, metric_name, label_names, label_values",
			"tenant String, ts Int64, fingerprint UInt64, value Float64, exemplar_hash UInt64, has_ts UInt8, exemplar_names Array(String), exemplar_values Array(String), metric_name String, label_names Array(String), label_values Array(String)"},
		{metadataTable, "tenant, family, metric_type, unit, help, version", "tenant String, family String, metric_type String, unit String, help String, version UInt64"},
	} {
		data := httpQuery(t, base, "SELECT "+c.cols+" FROM "+sc.table(c.table))
		require.NotEmpty(t, data)
		path := filepath.Join(t.TempDir(), c.table+".tsv")
		require.NoError(t, os.WriteFile(path, []byte(data), 0o644))
		require.NoError(t, modern.exec(ctx, fmt.Sprintf("INSERT INTO %s (%s) SELECT * FROM file(%s, 'TSV', %s)", sc.table(c.table), c.cols, quote(path), quote(c.structure))))
	}
	// The cache loads run on a restarted store's first write.
	reopened := openStore(t, cfg)
	reopened.queryLog = legacy.queryLog
	// (An older exemplar, refused; metadata of a family over the bound,
	// dropped: the tables stay as copied.)
	err = appendV2(t, reopened.ForTenant("a"), labels.FromStrings("__name__", "aux_total", "job", "api", "i", "0"), 9000, 1,
		promstorage.AppendV2Options{Exemplars: []exemplar.Exemplar{{Labels: labels.FromStrings("trace_id", "late"), Value: 1, Ts: 500, HasTs: true}}, Metadata: metadata.Metadata{Type: model.MetricTypeGauge}})
	requirePartial(t, err, promstorage.ErrOutOfOrderExemplar, 0)

	kinds := 0
	for _, sql := range queries {
		want := httpQuery(t, base, sql)
		got, err := modern.query(sql)
		require.NoError(t, err, "modern engine rejects: %s", sql)
		require.Equal(t, sortedLines(want), sortedLines(got), "answers differ:\n%s", sql)
		kinds++
	}
	t.Logf("%d distinct aux queries", kinds)
	require.Greater(t, kinds, 20)

	// The cleanup's mutation on chDB: tenant a down to its newest 5.
	cts, cfp, ok, err := legacy.exemplarCutoff(ctx, "a", 5)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, modern.exec(ctx, sc.exemplarDeleteSQL([]string{fmt.Sprintf("(tenant = 'a' AND (NOT %s))", keptCond(cts, cfp))})))
	require.Eventually(t, func() bool {
		n, err := modern.queryString(ctx, "SELECT toString(count()) FROM "+sc.table(exemplarsTable)+" WHERE tenant = 'a'")
		require.NoError(t, err)
		return n == "5"
	}, 20*time.Second, 50*time.Millisecond)
	n, err := modern.queryString(ctx, "SELECT toString(count()) FROM "+sc.table(exemplarsTable)+" WHERE tenant = 'b'")
	require.NoError(t, err)
	require.Equal(t, "7", n, "another tenant's rows are untouched")
}
