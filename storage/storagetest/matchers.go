package storagetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// matcherData is the series the matcher cases select from, by key.
func matcherData() map[string]series {
	lsets := map[string]labels.Labels{
		"a": ls("__name__", "http_requests_total", "job", "api", "method", "GET", "code", "200"),
		"b": ls("__name__", "http_requests_total", "job", "api", "method", "POST", "code", "500"),
		"c": ls("__name__", "http_requests_total", "job", "web", "method", "GET"), // no code
		"d": ls("__name__", "cpu_seconds_total", "job", "api", "instance", "a:9100"),
		"e": ls("__name__", "cpu_seconds_total", "job", "web", "instance", "b:9100", "path", "/a.b|c"),
		"f": ls("__name__", "up", "job", "apiserver", "instance", "c:443"),
		"g": ls("job", "nameless", "instance", "x"), // no metric name
		"h": ls("__name__", "http.server.duration", "service.name", "checkout", "job", "otel"),
	}
	out := map[string]series{}
	i := 0
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		i++
		out[k] = series{lsets[k], steps(1000, 1000, 3, linear(float64(i*10), 1))}
	}
	return out
}

// testMatchers checks every matcher type, Prometheus' empty-value rules (a
// missing label has the empty value), regex anchoring and combinations.
// Every selection holds at least one matcher that does not match the empty
// string, as PromQL requires.
func testMatchers(t *testing.T, b Backend) {
	ts := b.Open(t).ForTenant(tenantA)
	data := matcherData()
	keys := []string{"a", "b", "c", "d", "e", "f", "h"}
	var batch []series
	for _, k := range keys {
		batch = append(batch, data[k])
	}
	write(t, ts, batch...)
	// A series without __name__ is valid in Prometheus' data model; written
	// apart so that a refusal fails one check, not every case.
	tx := begin(t.Context(), ts)
	g := data["g"]
	var gErr error
	for _, s := range g.samples {
		if _, gErr = tx.add(0, g.lset, s.T, s.F); gErr != nil {
			break
		}
	}
	if gErr == nil {
		gErr = tx.Commit()
	} else {
		_ = tx.Rollback()
	}
	if gErr != nil {
		t.Errorf("appending %s (a series without __name__, which Prometheus stores) failed: %v; cases selecting it will fail", g.lset, gErr)
	}
	keys = append(keys, "g")
	slices.Sort(keys)
	var all []series
	for _, k := range keys {
		all = append(all, data[k])
	}
	all = merge(all)

	anyJob := re("job", ".+") // every series has a job; anchors matchers that match empty
	cases := []struct {
		name string
		ms   []*labels.Matcher
		want []string
	}{
		{"name equal", ms(eq("__name__", "http_requests_total")), keysOf("abc")},
		{"name not equal", ms(neq("__name__", "http_requests_total"), anyJob), keysOf("defgh")},
		{"name regex", ms(re("__name__", "http_.*")), keysOf("abc")},
		{"name regex dot matches dot", ms(re("__name__", "http.*")), keysOf("abch")},
		{"name not regex", ms(nre("__name__", "http.*|up"), anyJob), keysOf("deg")},
		{"name empty selects nameless", ms(eq("__name__", ""), anyJob), keysOf("g")},
		{"name not empty", ms(neq("__name__", "")), keysOf("abcdefh")},
		{"name regex non-empty", ms(re("__name__", ".+")), keysOf("abcdefh")},
		{"equal", ms(eq("job", "api")), keysOf("abd")},
		{"equal is not prefix", ms(eq("job", "ap")), nil},
		{"regex is anchored at both ends", ms(re("job", "ap")), nil},
		{"regex is anchored at the end", ms(re("job", "api")), keysOf("abd")},
		{"regex is anchored at the start", ms(re("job", "pi.*")), nil},
		{"regex prefix", ms(re("job", "api.*")), keysOf("abdf")},
		{"regex suffix", ms(re("job", ".*server")), keysOf("f")},
		{"regex is case sensitive", ms(re("job", "API")), nil},
		{"regex case insensitive flag", ms(re("job", "(?i)API")), keysOf("abd")},
		{"regex alternation", ms(re("job", "api|web")), keysOf("abcde")},
		{"not regex alternation", ms(nre("job", "api|web"), anyJob), keysOf("fgh")},
		{"not equal", ms(neq("job", "api"), anyJob), keysOf("cefgh")},
		{"missing label equals empty", ms(eq("__name__", "http_requests_total"), eq("code", "")), keysOf("c")},
		{"not empty requires the label", ms(neq("code", "")), keysOf("ab")},
		{"regex empty matches missing label", ms(eq("__name__", "http_requests_total"), re("code", "")), keysOf("c")},
		{"regex .* matches missing label", ms(eq("__name__", "http_requests_total"), re("code", ".*")), keysOf("abc")},
		{"regex .+ requires the label", ms(re("code", ".+")), keysOf("ab")},
		{"not regex matches missing label", ms(eq("__name__", "http_requests_total"), nre("code", "2..")), keysOf("bc")},
		{"not regex .* matches nothing", ms(nre("code", ".*"), anyJob), nil},
		{"not regex .+ selects missing label", ms(eq("__name__", "http_requests_total"), nre("code", ".+")), keysOf("c")},
		{"regex with empty alternative", ms(re("method", "GET|"), anyJob), keysOf("acdefgh")},
		{"label nobody has, equal empty", ms(eq("__name__", "up"), eq("nonexistent", "")), keysOf("f")},
		{"label nobody has, not empty", ms(neq("nonexistent", "")), nil},
		{"label nobody has, regex non-empty", ms(re("nonexistent", ".+")), nil},
		{"label nobody has, regex .*", ms(re("nonexistent", ".*"), eq("job", "api")), keysOf("abd")},
		{"label nobody has, not equal value", ms(neq("nonexistent", "x"), eq("job", "web")), keysOf("ce")},
		{"equal with regex metacharacters is literal", ms(eq("path", "/a.b|c")), keysOf("e")},
		{"regex metacharacters are regex", ms(re("path", "/a.b|c")), nil},
		{"escaped regex", ms(re("path", `/a\.b\|c`)), keysOf("e")},
		{"dot in regex matches any character", ms(re("path", `/a.b\|.`)), keysOf("e")},
		{"character class", ms(re("instance", "[ab]:9100")), keysOf("de")},
		{"alternation of literals", ms(re("instance", "a:9100|c:443")), keysOf("df")},
		{"dotted label name", ms(eq("service.name", "checkout")), keysOf("h")},
		{"two names and a job", ms(re("__name__", "http_requests_total|cpu_seconds_total"), eq("job", "web")), keysOf("ce")},
		{"all four types", ms(re("job", "api|web"), nre("__name__", "cpu.*"), neq("method", "POST"), eq("code", "200")), keysOf("a")},
		{"three matchers with empty semantics", ms(re("job", "api|web"), nre("__name__", "cpu.*"), neq("method", "POST")), keysOf("ac")},
		{"contradiction", ms(eq("job", "api"), eq("job", "web")), nil},
		{"same label twice narrows", ms(re("job", "a.*"), neq("job", "apiserver")), keysOf("abd")},
		{"all equal", ms(eq("__name__", "up"), eq("job", "apiserver"), eq("instance", "c:443")), keysOf("f")},
		{"one equal matches nothing", ms(eq("__name__", "up"), eq("instance", "nope")), nil},
	}
	for _, c := range cases {
		t.Run(c.name+" "+fmtMatchers(c.ms), func(t *testing.T) {
			var want []series
			for _, k := range c.want {
				want = append(want, data[k])
			}
			want = merge(want)
			// The table is the specification; Prometheus' own matching
			// must agree with it, or the table is wrong.
			require.Equal(t, render(want), render(filter(all, 0, 10000, c.ms...)), "table row disagrees with labels.Matcher")
			requireSelect(t, ts, want, 0, 10000, c.ms...)
		})
	}

	// What Grafana sends for a multi-value variable set to All: an
	// alternation of 150,000 values, a matcher of about a megabyte, far
	// past what a backend may send its database as one query. It must
	// select as any other matcher does.
	t.Run("long alternation", func(t *testing.T) {
		var b strings.Builder
		for i := range 150_000 {
			fmt.Fprintf(&b, "v%d|", i)
		}
		long := b.String() + "api|web"
		q, err := ts.Querier(0, 10000)
		require.NoError(t, err)
		defer q.Close()
		for _, c := range []struct {
			name string
			ms   []*labels.Matcher
			want []string
		}{
			{"regex", ms(re("job", long)), keysOf("abcde")},
			{"not regex", ms(nre("job", long), anyJob), keysOf("fgh")},
			{"with a name", ms(eq("__name__", "http_requests_total"), re("job", long), nre("method", long)), keysOf("abc")},
		} {
			var want []series
			for _, k := range c.want {
				want = append(want, data[k])
			}
			want = merge(want)
			require.Equal(t, render(want), render(filter(all, 0, 10000, c.ms...)), "%s: table row disagrees with labels.Matcher", c.name)
			set := q.Select(t.Context(), true, &promstorage.SelectHints{Start: 0, End: 10000}, c.ms...)
			requireSameSeries(t, want, readSeriesSet(t, set, c.name), c.name)
			var jobs []string
			for _, s := range want {
				jobs = append(jobs, s.lset.Get("job"))
			}
			slices.Sort(jobs)
			jobs = slices.Compact(jobs)
			got, _, err := q.LabelValues(t.Context(), "job", nil, c.ms...)
			require.NoError(t, err, "%s: label values", c.name)
			require.Equal(t, jobs, got, "%s: label values", c.name)
		}
	})

	// Every single matcher over every label name and a set of values,
	// against Prometheus' own matching of the written series.
	t.Run("exhaustive", func(t *testing.T) {
		names := []string{"__name__", "job", "method", "code", "instance", "path", "service.name", "nonexistent"}
		values := []string{"", "api", "GET", "200", "http_requests_total", "a.*", ".*", ".+", "ap", "(?i)get", "2..|5..", "/a.b|c", "c:443|x", "[ab]:9100", "a:9100"}
		types := []labels.MatchType{labels.MatchEqual, labels.MatchNotEqual, labels.MatchRegexp, labels.MatchNotRegexp}
		for _, n := range names {
			for _, v := range values {
				for _, typ := range types {
					m := labels.MustNewMatcher(typ, n, v)
					t.Run(m.String(), func(t *testing.T) {
						sel := ms(m)
						if m.Matches("") {
							sel = append(sel, anyJob)
						}
						requireSelect(t, ts, filter(all, 0, 10000, sel...), 0, 10000, sel...)
					})
				}
			}
		}
	})
}

func ms(m ...*labels.Matcher) []*labels.Matcher { return m }

// keysOf splits "abc" into keys "a", "b", "c".
func keysOf(s string) []string {
	out := make([]string, len(s))
	for i := range s {
		out[i] = s[i : i+1]
	}
	return out
}
