package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
	"unicode/utf8"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
)

// testConn connects to the shared test server.
func testConn(t testing.TB) driver.Conn {
	t.Helper()
	opts, err := ch.ParseDSN(chtest.Shared(t).DSN())
	require.NoError(t, err)
	conn, err := ch.Open(opts)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestQuoteRoundTrip(t *testing.T) {
	conn := testConn(t)
	for _, s := range []string{"", "plain", "it's", `back\slash`, `\'`, "new\nline", "tab\t", "nul\x00byte", "\x7f\x01", "ünïcødé ✓", "\xff\xfe invalid utf8", "?", "{x}", "$1", "--", "/*"} {
		t.Run(fmt.Sprintf("%q", s), func(t *testing.T) {
			var got string
			require.NoError(t, conn.QueryRow(t.Context(), "SELECT "+quote(s)).Scan(&got))
			require.Equal(t, s, got)
		})
	}
}

// FuzzQuote checks that any string, quoted, reads back from ClickHouse as
// itself: label values and matcher values reach SQL only through quote.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "a", "'", `\`, "\x00", "\xff", `\'); DROP TABLE x; --`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		conn := testConn(t)
		var got string
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, conn.QueryRow(ctx, "SELECT "+quote(s)).Scan(&got))
		require.Equal(t, s, got)
	})
}

// FuzzRegexMatcher checks that ClickHouse's match() on the anchored
// pattern agrees with Prometheus' regex matcher. Patterns RE2 in
// ClickHouse rejects are skipped (the query fails; it cannot return wrong
// series).
func FuzzRegexMatcher(f *testing.F) {
	for _, c := range [][2]string{{"a.*", "abc"}, {"a|b", "b"}, {".", "\n"}, {"(?i)ABC", "abc"}, {"x+", ""}, {"[0-9]{2,3}", "123"}, {"a\\.b", "a.b"}, {".*", "x\ny"}, {"^x$", "x"}} {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, re, value string) {
		if !utf8.ValidString(re) || !utf8.ValidString(value) || len(re) > 200 {
			t.Skip()
		}
		m, err := labels.NewMatcher(labels.MatchRegexp, "l", re)
		if err != nil {
			t.Skip()
		}
		conn := testConn(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var got uint8
		if err := conn.QueryRow(ctx, "SELECT match("+quote(value)+", "+quote(anchoredRegex(re))+")").Scan(&got); err != nil {
			t.Skip()
		}
		require.Equal(t, m.Matches(value), got == 1, "regex %q on %q", re, value)
	})
}

// TestMatcherSQL runs every matcher translation against rows of a real
// series table and compares the series selected with Prometheus' matching.
func TestMatcherSQL(t *testing.T) {
	st := newTestStore(t)
	ts := st.ForTenant("m")
	lsets := []labels.Labels{
		labels.FromStrings("__name__", "up", "job", "api", "instance", "a:1"),
		labels.FromStrings("__name__", "up", "job", "web", "instance", "b:2"),
		labels.FromStrings("__name__", "up", "job", "", "instance", "c:3"),
		labels.FromStrings("__name__", "down", "job", "api"),
		labels.FromStrings("__name__", "down", "instance", "x'y\\z"),
		labels.FromStrings("__name__", "weird", "job", "multi\nline"),
	}
	app := ts.AppenderV2(t.Context())
	for _, l := range lsets {
		_, err := app.Append(0, l, 0, 1000, 1, nil, nil, promstorage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())

	mm := func(typ labels.MatchType, n, v string) *labels.Matcher { return labels.MustNewMatcher(typ, n, v) }
	cases := [][]*labels.Matcher{
		{mm(labels.MatchEqual, "__name__", "up")},
		{mm(labels.MatchNotEqual, "__name__", "up")},
		{mm(labels.MatchEqual, "job", "")},
		{mm(labels.MatchNotEqual, "job", "")},
		{mm(labels.MatchRegexp, "job", "")},
		{mm(labels.MatchRegexp, "job", ".*")},
		{mm(labels.MatchRegexp, "job", ".+")},
		{mm(labels.MatchNotRegexp, "job", ".+")},
		{mm(labels.MatchNotRegexp, "job", ".*")},
		{mm(labels.MatchRegexp, "job", "api|web")},
		{mm(labels.MatchNotRegexp, "job", "api|web")},
		{mm(labels.MatchRegexp, "job", "a.*")},
		{mm(labels.MatchRegexp, "job", "A.*")},
		{mm(labels.MatchRegexp, "job", "(?i)A.*")},
		{mm(labels.MatchRegexp, "job", "multi.line")},
		{mm(labels.MatchRegexp, "instance", "[a-c]:[0-9]+")},
		{mm(labels.MatchEqual, "instance", "x'y\\z")},
		{mm(labels.MatchRegexp, "instance", `x'y\\z`)},
		{mm(labels.MatchRegexp, "__name__", "u.|do.*"), mm(labels.MatchNotEqual, "instance", "")},
		{mm(labels.MatchEqual, "nonexistent", "")},
		{mm(labels.MatchNotEqual, "nonexistent", "")},
		{mm(labels.MatchEqual, "_tenant_id", "m")},
		{mm(labels.MatchEqual, "_tenant_id", "")},
	}
	for _, ms := range cases {
		t.Run(fmt.Sprint(ms), func(t *testing.T) {
			var want []string
			for _, l := range lsets {
				l = labels.NewBuilder(l).Del("job").Set("job", l.Get("job")).Labels() // drop empty values as the store does
				if matchesAll(l, ms) {
					want = append(want, l.String())
				}
			}
			sql := fmt.Sprintf("SELECT label_names, label_values FROM %s WHERE tenant = 'm' AND %s", st.schema.table(seriesTable), matchersSQL(ms))
			rows, err := st.conn.Query(t.Context(), sql)
			require.NoError(t, err, sql)
			var got []string
			for rows.Next() {
				var names, values []string
				require.NoError(t, rows.Scan(&names, &values))
				b := labels.NewScratchBuilder(len(names))
				for i := range names {
					b.Add(names[i], values[i])
				}
				got = append(got, b.Labels().String())
			}
			require.NoError(t, rows.Err())
			rows.Close()
			slices.Sort(want)
			slices.Sort(got)
			require.Equal(t, want, got, sql)
		})
	}
}

func TestFingerprint(t *testing.T) {
	a := labels.FromStrings("__name__", "up", "job", "api")
	fa, _ := fingerprint("t1", a, nil)
	fb, _ := fingerprint("t1", labels.FromStrings("__name__", "up", "job", "web"), nil)
	fc, _ := fingerprint("t2", a, nil)
	fd, _ := fingerprint("t1", labels.FromStrings("__name__", "up", "job", "api", "empty", ""), nil)
	fe, _ := fingerprint("t1", labels.FromStrings("__name__", "down", "job", "api"), nil)
	require.NotEqual(t, fa, fb)
	require.NotEqual(t, fa, fc, "the tenant is part of the identity")
	require.Equal(t, fa, fd, "empty labels are not")
	require.Equal(t, fa&metricBits, fb&metricBits, "series of one metric share the high bits")
	require.NotEqual(t, fa&metricBits, fe&metricBits)
	require.NotEqual(t, fa&metricBits, fc&metricBits)
	// Pinned: fingerprints are stored.
	require.Equal(t, uint64(0xc2422c866b4bb292), fa, "fingerprint of %s changed: stored data would split", a)
}
