package promql

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	pql "github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/tenancy"
)

// Every PromQL text that enters the API (query, query_range, the native
// API's Exec, format_query, parse_query, query_exemplars, match[]) is
// bounded before it is parsed, and every query's subqueries before it is
// evaluated:
//
//   - its length (--query.max-length, per tenant max_query_length);
//   - the depth of its syntax tree (--query.max-depth) and its terms
//     (--query.max-terms), measured by scanQuery in one linear pass over
//     the text, because the upstream parser's type check, the positions of
//     its nodes and the engine's evaluation recurse over the tree and cost
//     its size times its depth: abs(abs(...)) 100,000 deep overflows the
//     stack, and a million unary minus signs take minutes;
//   - the steps each subquery evaluates (--query.max-subquery-steps, per
//     tenant max_subquery_steps) and the points all of them feed into the
//     functions over them (--query.max-subquery-total-steps, per tenant
//     max_subquery_total_steps), because the engine allocates per step of
//     a subquery before any samples limit applies.

// boundedParser is the parser of the API and of its engines: it refuses a
// text that exceeds the bounds of every tenant before the upstream parser
// sees it.
type boundedParser struct {
	parser.Parser
	maxLength, maxDepth, maxTerms, maxSelectors int
}

func (p *boundedParser) ParseExpr(input string) (parser.Expr, error) {
	if err := p.check(input); err != nil {
		return nil, err
	}
	return p.Parser.ParseExpr(input)
}

func (p *boundedParser) ParseMetric(input string) (labels.Labels, error) {
	if err := p.check(input); err != nil {
		return labels.EmptyLabels(), err
	}
	return p.Parser.ParseMetric(input)
}

func (p *boundedParser) ParseMetricSelector(input string) ([]*labels.Matcher, error) {
	if err := p.check(input); err != nil {
		return nil, err
	}
	return p.Parser.ParseMetricSelector(input)
}

// ParseMetricSelectors bounds the selectors together, as one text: their
// number, their total length and their total terms.
func (p *boundedParser) ParseMetricSelectors(selectors []string) ([][]*labels.Matcher, error) {
	if len(selectors) > p.maxSelectors {
		return nil, apierror.Limit(apierror.InvalidArgument, tenancy.Global("--query.max-match-selectors"), "%d match[] selectors, more than the %d allowed", len(selectors), p.maxSelectors)
	}
	length, terms := 0, 0
	for _, s := range selectors {
		length += len(s)
		if length > p.maxLength {
			return nil, tooLong("match[] selectors are", length, p.maxLength, tenancy.Global("--query.max-length"))
		}
		shape := scanQuery(s, p.maxDepth, p.maxTerms-terms)
		if err := p.checkShape(shape, p.maxTerms-terms); err != nil {
			return nil, err
		}
		terms += shape.terms
	}
	return p.Parser.ParseMetricSelectors(selectors)
}

func (p *boundedParser) ParseSeriesDesc(input string) (labels.Labels, []parser.SequenceValue, error) {
	if err := p.check(input); err != nil {
		return labels.EmptyLabels(), nil, err
	}
	return p.Parser.ParseSeriesDesc(input)
}

// check refuses input if it is longer than maxLength, nests deeper than
// maxDepth or has more than maxTerms terms.
func (p *boundedParser) check(input string) error {
	if len(input) > p.maxLength {
		return tooLong("query is", len(input), p.maxLength, tenancy.Global("--query.max-length"))
	}
	return p.checkShape(scanQuery(input, p.maxDepth, p.maxTerms), p.maxTerms)
}

func (p *boundedParser) checkShape(s textShape, maxTerms int) error {
	switch {
	case s.depth > p.maxDepth:
		return apierror.Limit(apierror.InvalidArgument, tenancy.Global("--query.max-depth"), "query nests more than %d levels deep, counting brackets and chained operators", p.maxDepth)
	case s.terms > maxTerms:
		return apierror.Limit(apierror.InvalidArgument, tenancy.Global("--query.max-terms"), "query has more than %d terms (names, numbers, strings, operators, brackets)", p.maxTerms)
	}
	return nil
}

// tooLong is the error for what ("query is") of n bytes over limit.
func tooLong(what string, n, limit int, setting tenancy.Setting) error {
	return apierror.Limit(apierror.InvalidArgument, setting, "%s %d bytes long, more than the %d allowed", what, n, limit)
}

// textShape is what scanQuery measures of a text.
type textShape struct {
	// depth is an upper bound of the depth of the syntax tree the text
	// parses to; terms counts its names, numbers, strings, operators and
	// opening brackets, an upper bound of the tree's nodes.
	depth, terms int
}

// scanFrame is one bracket level of scanQuery: its comma-separated
// segments are independent subtrees (function arguments, matchers).
type scanFrame struct {
	ops     int // operators in the current segment
	operand int // the deepest finished operand of the segment
	cur     int // the depth of the operand being read (its bracket groups)
	seg     int // the deepest finished segment
}

// bound is an upper bound of the depth of the frame's subtrees: in one
// segment each operator (unary or binary) is one node on any path from
// the segment's root to an operand, and an operand is a name or literal
// (depth 1) followed by bracket groups (a call's arguments, matchers, a
// range), each at most one node above its contents.
func (f *scanFrame) bound() int { return max(f.seg, f.ops+max(f.operand, f.cur, 1)) }

// scanQuery measures q in one pass, with the PromQL lexer's rules for
// strings and comments. It stops early, with a depth or terms above the
// bound, once q exceeds maxDepth or maxTerms, so its cost and memory are
// linear in the bytes it reads and its stack of brackets is at most
// maxDepth+1 deep.
func scanQuery(q string, maxDepth, maxTerms int) textShape {
	stack := make([]scanFrame, 1, 16)
	var shape textShape
	over := func() textShape { return textShape{depth: maxDepth + 1, terms: shape.terms} }
	for i := 0; i < len(q); i++ {
		c := q[i]
		top := &stack[len(stack)-1]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		case c == '#': // a comment, to the end of the line (\r or \n)
			for i+1 < len(q) && q[i+1] != '\n' && q[i+1] != '\r' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			shape.terms++
			for i++; i < len(q) && q[i] != c; i++ {
				if c != '`' && q[i] == '\\' {
					i++
				} else if c != '`' && q[i] == '\n' {
					break // unterminated: the parser stops here
				}
			}
		case isWordByte(c):
			shape.terms++
			start := i
			for i+1 < len(q) && isWordByte(q[i+1]) {
				i++
			}
			if w := q[start : i+1]; len(w) <= 6 && isKeywordOp(w) {
				top.operand, top.cur = max(top.operand, top.cur), 0
				top.ops++
			}
		case c == '(' || c == '[' || c == '{':
			shape.terms++ // a group may be a node of its own (parentheses)
			if len(stack) > maxDepth {
				return over()
			}
			stack = append(stack, scanFrame{})
		case c == ')' || c == ']' || c == '}':
			if len(stack) > 1 { // an unopened bracket is the parser's error
				b := 1 + top.bound()
				stack = stack[:len(stack)-1]
				stack[len(stack)-1].cur += b
			}
		case c == ',':
			top.seg, top.ops, top.operand, top.cur = top.bound(), 0, 0, 0
		case c == '@':
			shape.terms++
		case isOpByte(c):
			shape.terms++
			top.operand, top.cur = max(top.operand, top.cur), 0
			top.ops++
		}
		if shape.terms > maxTerms {
			return shape
		}
		if top := &stack[len(stack)-1]; top.ops > maxDepth || top.cur > maxDepth {
			return over()
		}
	}
	// Unclosed brackets close at the end (the parser will refuse them).
	for len(stack) > 1 {
		b := 1 + stack[len(stack)-1].bound()
		stack = stack[:len(stack)-1]
		stack[len(stack)-1].cur += b
	}
	shape.depth = stack[0].bound()
	return shape
}

// isWordByte reports whether c is part of a name, number or duration
// (bytes of UTF-8 letters included, as unquoted UTF-8 names allow).
func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == ':' || c == '.' || c >= 0x80
}

// isOpByte reports whether c is (part of) an operator; each byte counts as
// one, which overcounts two-byte operators and matchers, never undercounts.
func isOpByte(c byte) bool {
	switch c {
	case '+', '-', '*', '/', '%', '^', '=', '!', '<', '>', '~':
		return true
	}
	return false
}

// isKeywordOp reports whether w is a binary operator spelt as a word, in
// any case, as the lexer reads keywords.
func isKeywordOp(w string) bool {
	var b [6]byte
	for i := range len(w) {
		c := w[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	switch string(b[:len(w)]) {
	case "and", "or", "unless", "atan2":
		return true
	}
	return false
}

// textBound returns the bound of tenant id among a global one (its flag
// named by globalFlag) and the tenant's own (field of TenantLimits, flag
// and override key), the lower of the two, and the setting that raises it.
func (a *API) textBound(id tenancy.ID, global int, globalFlag string, tenant func(tenancy.TenantLimits) int, tenantFlag, key string) (int, tenancy.Setting) {
	limit, setting := global, tenancy.Global(globalFlag)
	if a.limits != nil {
		if t := tenant(a.limits.For(id)); t > 0 && t < limit {
			limit, setting = t, tenancy.PerTenant(tenantFlag, key)
		}
	}
	return limit, setting
}

// checkLength refuses a query text (or the match[] selectors of one
// request, together) longer than tenant id may send. The bounds of every
// tenant are checked by the parser itself.
func (a *API) checkLength(id tenancy.ID, what string, texts ...string) error {
	limit, setting := a.textBound(id, a.cfg.MaxQueryLength, "--query.max-length",
		func(tl tenancy.TenantLimits) int { return tl.MaxQueryLength }, "--limits.max-query-length", "max_query_length")
	n := 0
	for _, s := range texts {
		n += len(s)
	}
	if n > limit {
		return tooLong(what, n, limit, setting)
	}
	return nil
}

// prepare builds one query of tenant id with build, under ctx: it checks
// the text's length first, and its subqueries before it returns the
// query. Its errors are classified: a refused text or subquery is an
// invalid parameter "query", as the engine's syntax errors.
func (a *API) prepare(ctx context.Context, id tenancy.ID, q string, timeout time.Duration, build func(context.Context, string) (pql.Query, error)) (pql.Query, error) {
	if err := a.checkLength(id, "query is", q); err != nil {
		return nil, invalidParam(err, "query")
	}
	if err := ctx.Err(); err != nil {
		return nil, a.queryError(engineContextError(err), timeout)
	}
	qry, err := build(ctx, q)
	if err != nil {
		return nil, a.constructionError(err, timeout)
	}
	if err := ctx.Err(); err != nil { // the parse is bounded, not interruptible
		qry.Close()
		return nil, a.queryError(engineContextError(err), timeout)
	}
	if stmt, ok := qry.Statement().(*parser.EvalStmt); ok {
		if err := a.checkSubqueries(id, stmt); err != nil {
			qry.Close()
			return nil, invalidParam(err, "query")
		}
	}
	return qry, nil
}

// engineContextError is the engine's error for a context done: the same
// message whether the query was in construction or execution.
func engineContextError(err error) error {
	if errors.Is(err, context.Canceled) {
		return pql.ErrQueryCanceled("query execution")
	}
	return pql.ErrQueryTimeout("query execution")
}

// subqueryCheck walks a query's tree as the engine evaluates it.
type subqueryCheck struct {
	defaultStep                int64 // ms
	maxSteps, maxTotal         int
	stepsSetting, totalSetting tenancy.Setting
	total                      float64 // points fed into functions so far
}

// evalGrid is the steps of one evaluator of the engine, in milliseconds.
type evalGrid struct{ start, end, interval int64 }

func (g evalGrid) steps() int64 { return (g.end-g.start)/g.interval + 1 }

// checkSubqueries refuses a query one of whose subqueries would evaluate
// more steps than tenant id may, or whose subqueries together would feed
// more points into the functions over them.
func (a *API) checkSubqueries(id tenancy.ID, stmt *parser.EvalStmt) error {
	c := &subqueryCheck{defaultStep: a.cfg.SubqueryStep.Milliseconds()}
	c.maxSteps, c.stepsSetting = a.textBound(id, a.cfg.MaxSubquerySteps, "--query.max-subquery-steps",
		func(tl tenancy.TenantLimits) int { return tl.MaxSubquerySteps }, "--limits.max-subquery-steps", "max_subquery_steps")
	c.maxTotal, c.totalSetting = a.textBound(id, a.cfg.MaxSubqueryTotalSteps, "--query.max-subquery-total-steps",
		func(tl tenancy.TenantLimits) int { return tl.MaxSubqueryTotalSteps }, "--limits.max-subquery-total-steps", "max_subquery_total_steps")
	g := evalGrid{start: stmt.Start.UnixMilli(), end: stmt.End.UnixMilli(), interval: stmt.Interval.Milliseconds()}
	if g.interval <= 0 { // an instant query: one step, as the engine runs it
		g.end, g.interval = g.start, 1
	}
	return c.walk(stmt.Expr, g)
}

// walk checks the subqueries under n, evaluated on grid g. Its recursion
// is as deep as the tree, which the parser's bounds keep small.
func (c *subqueryCheck) walk(n parser.Node, g evalGrid) error {
	switch e := n.(type) {
	case *parser.SubqueryExpr:
		step := e.Step.Milliseconds()
		switch {
		case e.Step == 0:
			step = c.defaultStep
		case step <= 0: // the engine would divide by zero
			return fmt.Errorf("subquery step %s is shorter than 1ms", e.Step)
		}
		rng := e.Range.Milliseconds()
		start, end := subqueryEvaluationTimes(g.start, g.end, g.interval, e.Offset.Milliseconds(), rng, step, e.Timestamp != nil)
		child := evalGrid{start, end, step}
		if s := child.steps(); s > int64(c.maxSteps) {
			return apierror.Limit(apierror.InvalidArgument, c.stepsSetting, "subquery [%s:%s] would evaluate %d steps, more than the %d allowed",
				model.Duration(e.Range), model.Duration(time.Duration(step)*time.Millisecond), s, c.maxSteps)
		}
		// The function over the subquery reads range/step points at each
		// step of the evaluation the subquery is part of.
		c.total += float64(g.steps()) * math.Max(1, math.Ceil(float64(rng)/float64(step)))
		if c.total > float64(c.maxTotal) {
			return apierror.Limit(apierror.InvalidArgument, c.totalSetting, "the subqueries of the query would feed more than %d points into the functions over them, the steps of each evaluation times the steps in its subquery's range",
				c.maxTotal)
		}
		return c.walk(e.Expr, child)
	case *parser.StepInvariantExpr:
		return c.walk(e.Expr, evalGrid{g.start, g.start, g.interval}) // evaluated once
	}
	for child := range parser.ChildrenIter(n) {
		if err := c.walk(child, g); err != nil {
			return err
		}
	}
	return nil
}

// subqueryEvaluationTimes is the engine's own (promql/engine.go of
// v0.316.0): the start and end of the evaluator of a subquery of range
// rangeMillis, offset and step subqInterval, in an evaluator from start to
// end every interval; fixed when the subquery has an @ modifier.
func subqueryEvaluationTimes(start, end, interval, offset, rangeMillis, subqInterval int64, fixed bool) (int64, int64) {
	if fixed {
		end = start
	} else if interval > 0 {
		end = start + ((end-start)/interval)*interval
	}
	subqStart := subqInterval * ((start - offset - rangeMillis) / subqInterval)
	if subqStart <= start-offset-rangeMillis {
		subqStart += subqInterval
	}
	return subqStart, end - offset
}
