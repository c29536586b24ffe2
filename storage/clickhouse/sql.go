package clickhouse

import (
	"fmt"
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
