package clickhouse

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// quote returns s as a ClickHouse string literal. Backslash and quote are
// escaped, and so is every byte outside printable ASCII below 0x80, so the
// literal is plain ASCII whatever s holds (bytes >= 0x80 pass through: they
// are UTF-8 or arbitrary bytes and ClickHouse strings are bytes).
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\'':
			b.WriteString(`\'`)
		case c < 0x20 || c == 0x7f:
			const hex = "0123456789ABCDEF"
			b.WriteString(`\x`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// quoteIdent returns name as a ClickHouse identifier. Names reaching here
// are validated (Config.Validate), this only guards the syntax.
func quoteIdent(name string) string {
	return "`" + strings.ReplaceAll(strings.ReplaceAll(name, `\`, `\\`), "`", "\\`") + "`"
}

// labelExpr is the SQL expression of label name's value on a series row:
// the metric_name column for __name__, otherwise the value at the name's
// position in the label arrays, which is ” when the series lacks the label
// (arrayElement at index 0 returns the default), exactly Prometheus' view
// of a missing label.
func labelExpr(name string) string {
	if name == labels.MetricName {
		return "metric_name"
	}
	return "label_values[indexOf(label_names, " + quote(name) + ")]"
}

// anchoredRegex is the pattern ClickHouse's match() (RE2, unanchored) must
// see to behave as a Prometheus regex matcher (fully anchored, dot matches
// newline).
func anchoredRegex(re string) string { return "^(?s:" + re + ")$" }

// matcherSQL translates m to a SQL condition on a series row.
func matcherSQL(m *labels.Matcher) string {
	expr := labelExpr(m.Name)
	switch m.Type {
	case labels.MatchEqual:
		return expr + " = " + quote(m.Value)
	case labels.MatchNotEqual:
		return expr + " != " + quote(m.Value)
	case labels.MatchRegexp, labels.MatchNotRegexp:
		not := m.Type == labels.MatchNotRegexp
		switch m.Value {
		case ".*", "(?s:.*)":
			if not {
				return "0"
			}
			return "1"
		case ".+", "(?s:.+)":
			if not {
				return expr + " = ''"
			}
			return expr + " != ''"
		}
		if set := m.SetMatches(); len(set) > 0 {
			in := make([]string, len(set))
			for i, v := range set {
				in[i] = quote(v)
			}
			op := " IN ("
			if not {
				op = " NOT IN ("
			}
			return expr + op + strings.Join(in, ", ") + ")"
		}
		cond := "match(" + expr + ", " + quote(anchoredRegex(m.Value)) + ")"
		if not {
			return "NOT " + cond
		}
		return cond
	}
	return "0"
}

// matchersSQL is the conjunction of ms as SQL, "1" for none.
func matchersSQL(ms []*labels.Matcher) string {
	if len(ms) == 0 {
		return "1"
	}
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = "(" + matcherSQL(m) + ")"
	}
	return strings.Join(parts, " AND ")
}

// Matchers are sent to ClickHouse only while their SQL stays small: the
// server parses at most max_query_size (256 KiB by default) of a query,
// the series queries repeat the matchers up to three times beside a
// literal list of fingerprints, and RE2 compiles a long pattern slowly.
// A longer matcher (what Grafana sends for a multi-value variable set to
// All: i=~"0|1|...|149999") is checked in Go only, on the series rows the
// other matchers select; every matcher is checked there anyway. Raising
// max_query_size for the query would not do: 18.16 honours it, then
// cannot compile a megabyte RE2 pattern (code 427) and refuses an IN
// list of 150,000 literals (code 168, max_ast_elements is 50,000).
const (
	matcherSQLMax  = 4 << 10  // the longest one matcher's SQL sent
	matchersSQLMax = 16 << 10 // the most SQL of all matchers of a query sent
)

// pushdown returns the matchers of ms sent as SQL, the shortest first
// within the bounds above (in their order in ms), and whether that is all
// of them.
func pushdown(ms []*labels.Matcher) ([]*labels.Matcher, bool) {
	lens := make([]int, len(ms))
	total := 0
	for i, m := range ms {
		lens[i] = len(m.Value) // its SQL is at least as long: skip building a long one
		if lens[i] <= matcherSQLMax {
			lens[i] = len(matcherSQL(m))
		}
		total += lens[i]
	}
	if total <= matchersSQLMax && slices.Max(append(lens, 0)) <= matcherSQLMax {
		return ms, true
	}
	order := make([]int, len(ms))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return lens[a] - lens[b] })
	keep := make([]bool, len(ms))
	total = 0
	for _, i := range order {
		if lens[i] > matcherSQLMax || total+lens[i] > matchersSQLMax {
			break
		}
		keep[i] = true
		total += lens[i]
	}
	var out []*labels.Matcher
	for i, m := range ms {
		if keep[i] {
			out = append(out, m)
		}
	}
	return out, false
}

// uint64List renders fps as a comma separated SQL list.
func uint64List(fps []uint64) string {
	var b strings.Builder
	b.Grow(len(fps) * 20)
	for i, fp := range fps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(fp, 10))
	}
	return b.String()
}

// int64Lit renders v as an Int64 SQL literal.
func int64Lit(v int64) string { return fmt.Sprintf("toInt64(%d)", v) }
