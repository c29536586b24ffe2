package promql

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/luminate-io/luminate/apierror"
)

// fuzzBounds are small bounds, so that the fuzzer reaches them.
const (
	fuzzMaxLength = 1 << 16
	fuzzMaxDepth  = 40
	fuzzMaxTerms  = 2000
)

// treeShape is the depth and node count of a parsed tree.
func treeShape(n parser.Node) (depth, nodes int) {
	nodes = 1
	for c := range parser.ChildrenIter(n) {
		d, k := treeShape(c)
		depth, nodes = max(depth, d), nodes+k
	}
	return depth + 1, nodes
}

// FuzzParseBounded checks the parse path with its bounds: every input is
// refused by the bounds or parsed by the upstream parser without a panic,
// within a time bound, and the pre-scan's depth and terms are upper bounds
// of the depth and node count of the tree the input parses to.
func FuzzParseBounded(f *testing.F) {
	for _, s := range []string{
		"up", `sum by (job) (rate(http_requests_total{job=~"a|b"}[5m]))`, "-1", "- - -up", "1 + 2 * 3 ^ 4 ^ 5",
		"a and b or c unless d", "x atan2 y", `max_over_time(rate(x[5m])[1h:1m] offset 5m)`, `x @ start()`,
		`((x))`, `topk(3, x)`, `count_values("v", x)`, `label_replace(x, "a", "$1", "b", "(.*)")`,
		`x[5m+1m]`, `x offset -(1h)`, `{"utf8.name"}`, "# comment (\nup", "`raw(`", `"unterminated (`,
		`histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))`, `x == bool on(a) group_left(b) y`,
		`vector(1) + on() fill(0) vector(2)`, `-(-(-x))`, `abs(abs(abs(x)))`, "x{a=\"1\",b!~\"2\"}[1m:]",
		strings.Repeat("abs(", 60) + "x" + strings.Repeat(")", 60),
		strings.Repeat("-", 100) + "up", strings.Repeat("x+", 100) + "x", strings.Repeat("(", 100),
	} {
		f.Add(s)
	}
	p := &boundedParser{
		Parser:    parser.NewParser(parser.Options{EnableExperimentalFunctions: true, EnableBinopFillModifiers: true, EnableUnquotedUTF8Names: true}),
		maxLength: fuzzMaxLength, maxDepth: fuzzMaxDepth, maxTerms: fuzzMaxTerms, maxSelectors: 10,
	}
	f.Fuzz(func(t *testing.T, q string) {
		start := time.Now()
		shape := scanQuery(q, fuzzMaxDepth, fuzzMaxTerms)
		expr, err := p.ParseExpr(q)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("parse of %d bytes took %s", len(q), d)
		}
		var ae *apierror.Error
		if errors.As(err, &ae) {
			if len(q) <= fuzzMaxLength && shape.depth <= fuzzMaxDepth && shape.terms <= fuzzMaxTerms {
				t.Fatalf("refused %q within the bounds (depth %d, terms %d): %v", q, shape.depth, shape.terms, err)
			}
			return
		}
		if len(q) > fuzzMaxLength || shape.depth > fuzzMaxDepth || shape.terms > fuzzMaxTerms {
			t.Fatalf("parsed %q beyond the bounds (depth %d, terms %d)", q, shape.depth, shape.terms)
		}
		if err != nil || expr == nil {
			return // a syntax error
		}
		depth, nodes := treeShape(expr)
		if depth > shape.depth || nodes > shape.terms {
			t.Fatalf("%q parses to a tree of depth %d and %d nodes, the scan bounds them by %d and %d", q, depth, nodes, shape.depth, shape.terms)
		}
		_, _ = p.ParseMetricSelectors([]string{q}) // no panic either
	})
}
