package promql

import (
	"strconv"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// /parse_query answers with the query's syntax tree in the JSON shape that
// the Prometheus UI's tree view and Grafana read. The shape is a contract
// with those clients, so it is spelled out here as one struct per node kind:
//
//   - every node is an object whose "type" names its kind;
//   - child nodes nest under the role they play ("expr", "lhs", "args", ...);
//   - offsets, ranges, steps and @ timestamps are integer milliseconds;
//   - number literals are decimal strings, so NaN and ±Inf survive JSON;
//   - a missing optional part is null, a missing list is [].
//
// Struct fields are declared in the alphabetical order of their JSON names:
// that is the key order clients have always been sent, and the encoder keeps
// declaration order.

// Node kinds, the "type" of each node object.
const (
	kindAggregation    = "aggregation"
	kindBinaryExpr     = "binaryExpr"
	kindCall           = "call"
	kindDurationExpr   = "durationExpr"
	kindMatrixSelector = "matrixSelector"
	kindNumberLiteral  = "numberLiteral"
	kindParenExpr      = "parenExpr"
	kindStringLiteral  = "stringLiteral"
	kindSubquery       = "subquery"
	kindUnaryExpr      = "unaryExpr"
	kindVectorSelector = "vectorSelector"
)

type aggregationNode struct {
	Expr     any      `json:"expr"`
	Grouping []string `json:"grouping"`
	Op       string   `json:"op"`
	Param    any      `json:"param"` // null for aggregations without a parameter
	Type     string   `json:"type"`
	Without  bool     `json:"without"`
}

type binaryNode struct {
	Bool     bool          `json:"bool"`
	LHS      any           `json:"lhs"`
	Matching *matchingNode `json:"matching"` // null unless both sides are vectors
	Op       string        `json:"op"`
	RHS      any           `json:"rhs"`
	Type     string        `json:"type"`
}

// matchingNode is how a binary operation pairs up the series of its sides.
type matchingNode struct {
	Card       string   `json:"card"`
	FillValues fillNode `json:"fillValues"`
	Include    []string `json:"include"` // the group_left/group_right labels
	Labels     []string `json:"labels"`  // the on/ignoring labels
	On         bool     `json:"on"`
}

// fillNode holds the fill/fill_left/fill_right values; null means no fill.
type fillNode struct {
	LHS *float64 `json:"lhs"`
	RHS *float64 `json:"rhs"`
}

type callNode struct {
	Args []any        `json:"args"`
	Func functionNode `json:"func"`
	Type string       `json:"type"`
}

// functionNode describes the called function's signature.
type functionNode struct {
	ArgTypes   []parser.ValueType `json:"argTypes"`
	Name       string             `json:"name"`
	ReturnType parser.ValueType   `json:"returnType"`
	Variadic   int                `json:"variadic"`
}

type vectorSelectorNode struct {
	Anchored   bool          `json:"anchored"`
	Matchers   []matcherNode `json:"matchers"`
	Name       string        `json:"name"`
	Offset     int64         `json:"offset"`
	OffsetExpr any           `json:"offsetExpr"`
	Smoothed   bool          `json:"smoothed"`
	StartOrEnd *string       `json:"startOrEnd"`
	Timestamp  *int64        `json:"timestamp"`
	Type       string        `json:"type"`
}

// matrixSelectorNode is a vector selector's fields plus its range; the
// range keys sort between the selector's, hence a struct of its own.
type matrixSelectorNode struct {
	Anchored   bool          `json:"anchored"`
	Matchers   []matcherNode `json:"matchers"`
	Name       string        `json:"name"`
	Offset     int64         `json:"offset"`
	OffsetExpr any           `json:"offsetExpr"`
	Range      int64         `json:"range"`
	RangeExpr  any           `json:"rangeExpr"`
	Smoothed   bool          `json:"smoothed"`
	StartOrEnd *string       `json:"startOrEnd"`
	Timestamp  *int64        `json:"timestamp"`
	Type       string        `json:"type"`
}

type matcherNode struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"`
}

type subqueryNode struct {
	Expr       any     `json:"expr"`
	Offset     int64   `json:"offset"`
	OffsetExpr any     `json:"offsetExpr"`
	Range      int64   `json:"range"`
	RangeExpr  any     `json:"rangeExpr"`
	StartOrEnd *string `json:"startOrEnd"`
	Step       int64   `json:"step"` // 0 when the query leaves the step to the engine
	StepExpr   any     `json:"stepExpr"`
	Timestamp  *int64  `json:"timestamp"`
	Type       string  `json:"type"`
}

type literalNode struct {
	Type string `json:"type"`
	Val  string `json:"val"`
}

// durationNumberNode is a number inside a duration expression, which also
// tells whether it was written as a duration ("5m") or a plain number.
type durationNumberNode struct {
	Duration bool   `json:"duration"`
	Type     string `json:"type"`
	Val      string `json:"val"`
}

// durationNode is an arithmetic duration expression (offset (1m*2)), a
// step() or range() call (Op "step", "range", no operands), or a unary
// sign (no LHS). The parser keeps parentheses as a wrapped unary "+".
type durationNode struct {
	LHS     any    `json:"lhs"`
	Op      string `json:"op"`
	RHS     any    `json:"rhs"`
	Type    string `json:"type"`
	Wrapped bool   `json:"wrapped"`
}

type parenNode struct {
	Expr any    `json:"expr"`
	Type string `json:"type"`
}

type unaryNode struct {
	Expr any    `json:"expr"`
	Op   string `json:"op"`
	Type string `json:"type"`
}

// translateAST returns expr as a tree of values that encode to the
// parse_query JSON. A nil expr, and any node the parser does not produce,
// becomes nil (JSON null).
func translateAST(expr parser.Expr) any {
	switch e := expr.(type) {
	case *parser.AggregateExpr:
		return aggregationNode{
			Expr:     translateAST(e.Expr),
			Grouping: nonNil(e.Grouping),
			Op:       e.Op.String(),
			Param:    translateAST(e.Param),
			Type:     kindAggregation,
			Without:  e.Without,
		}
	case *parser.BinaryExpr:
		return binaryNode{
			Bool:     e.ReturnBool,
			LHS:      translateAST(e.LHS),
			Matching: matching(e.VectorMatching),
			Op:       e.Op.String(),
			RHS:      translateAST(e.RHS),
			Type:     kindBinaryExpr,
		}
	case *parser.Call:
		args := make([]any, len(e.Args))
		for i, a := range e.Args {
			args[i] = translateAST(a)
		}
		return callNode{
			Args: args,
			Func: functionNode{
				ArgTypes:   nonNil(e.Func.ArgTypes),
				Name:       e.Func.Name,
				ReturnType: e.Func.ReturnType,
				Variadic:   e.Func.Variadic,
			},
			Type: kindCall,
		}
	case *parser.DurationExpr:
		return duration(e)
	case *parser.MatrixSelector:
		vs, ok := e.VectorSelector.(*parser.VectorSelector)
		if !ok {
			return nil // the parser never builds one without a selector
		}
		v := vectorSelector(vs)
		return matrixSelectorNode{
			Anchored:   v.Anchored,
			Matchers:   v.Matchers,
			Name:       v.Name,
			Offset:     v.Offset,
			OffsetExpr: v.OffsetExpr,
			Range:      e.Range.Milliseconds(),
			RangeExpr:  duration(e.RangeExpr),
			Smoothed:   v.Smoothed,
			StartOrEnd: v.StartOrEnd,
			Timestamp:  v.Timestamp,
			Type:       kindMatrixSelector,
		}
	case *parser.NumberLiteral:
		return literalNode{Type: kindNumberLiteral, Val: formatNumber(e.Val)}
	case *parser.ParenExpr:
		return parenNode{Expr: translateAST(e.Expr), Type: kindParenExpr}
	case *parser.StepInvariantExpr:
		// An engine-internal wrapper; show what it wraps.
		return translateAST(e.Expr)
	case *parser.StringLiteral:
		return literalNode{Type: kindStringLiteral, Val: e.Val}
	case *parser.SubqueryExpr:
		return subqueryNode{
			Expr:       translateAST(e.Expr),
			Offset:     e.OriginalOffset.Milliseconds(),
			OffsetExpr: duration(e.OriginalOffsetExpr),
			Range:      e.Range.Milliseconds(),
			RangeExpr:  duration(e.RangeExpr),
			StartOrEnd: atKeyword(e.StartOrEnd),
			Step:       e.Step.Milliseconds(),
			StepExpr:   duration(e.StepExpr),
			Timestamp:  e.Timestamp,
			Type:       kindSubquery,
		}
	case *parser.UnaryExpr:
		return unaryNode{Expr: translateAST(e.Expr), Op: e.Op.String(), Type: kindUnaryExpr}
	case *parser.VectorSelector:
		return vectorSelector(e)
	}
	return nil
}

// vectorSelector renders a selector with its offset and @ modifiers, as
// written in the query (not as adjusted for evaluation).
func vectorSelector(vs *parser.VectorSelector) vectorSelectorNode {
	return vectorSelectorNode{
		Anchored:   vs.Anchored,
		Matchers:   matchers(vs.LabelMatchers),
		Name:       vs.Name,
		Offset:     vs.OriginalOffset.Milliseconds(),
		OffsetExpr: duration(vs.OriginalOffsetExpr),
		Smoothed:   vs.Smoothed,
		StartOrEnd: atKeyword(vs.StartOrEnd),
		Timestamp:  vs.Timestamp,
		Type:       kindVectorSelector,
	}
}

// matchers keeps the parser's order, which puts the metric name last.
func matchers(ms []*labels.Matcher) []matcherNode {
	out := make([]matcherNode, len(ms))
	for i, m := range ms {
		out[i] = matcherNode{Name: m.Name, Type: m.Type.String(), Value: m.Value}
	}
	return out
}

func matching(vm *parser.VectorMatching) *matchingNode {
	if vm == nil {
		return nil
	}
	return &matchingNode{
		Card:       vm.Card.String(),
		FillValues: fillNode{LHS: vm.FillValues.LHS, RHS: vm.FillValues.RHS},
		Include:    nonNil(vm.Include),
		Labels:     nonNil(vm.MatchingLabels),
		On:         vm.On,
	}
}

// duration renders a duration expression; nil stays nil so that it
// encodes as null rather than as an empty object.
func duration(d *parser.DurationExpr) any {
	if d == nil {
		return nil
	}
	return durationNode{
		LHS:     durationOperand(d.LHS),
		Op:      d.Op.String(),
		RHS:     durationOperand(d.RHS),
		Type:    kindDurationExpr,
		Wrapped: d.Wrapped,
	}
}

func durationOperand(expr parser.Expr) any {
	switch e := expr.(type) {
	case *parser.NumberLiteral:
		return durationNumberNode{Duration: e.Duration, Type: kindNumberLiteral, Val: formatNumber(e.Val)}
	case *parser.DurationExpr:
		return duration(e)
	}
	return translateAST(expr)
}

// atKeyword names the @ start() or @ end() modifier, or is nil without one.
func atKeyword(t parser.ItemType) *string {
	var s string
	switch t {
	case parser.START:
		s = "start"
	case parser.END:
		s = "end"
	default:
		return nil
	}
	return &s
}

// formatNumber writes v in plain decimal notation, without an exponent;
// NaN and infinities come out as "NaN", "+Inf" and "-Inf".
func formatNumber(v float64) string {
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// nonNil turns a nil list into an empty one, which encodes as [] not null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
