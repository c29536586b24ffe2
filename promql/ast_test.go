package promql_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/promql"
)

// Selectors that recur in the expected trees below.
const (
	upJSON = `{"anchored":false,"matchers":[{"name":"__name__","type":"=","value":"up"}],"name":"up",` +
		`"offset":0,"offsetExpr":null,"smoothed":false,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"}`
	xRangeJSON = `{"anchored":false,"matchers":[{"name":"__name__","type":"=","value":"x"}],"name":"x",` +
		`"offset":0,"offsetExpr":null,"range":300000,"rangeExpr":null,"smoothed":false,"startOrEnd":null,"timestamp":null,"type":"matrixSelector"}`
	noMatching = `"matching":null`
)

// TestParseQueryTree checks the syntax tree parse_query returns for every
// kind of node, byte for byte: the Prometheus UI and Grafana read these
// field names, key order and null/empty-list conventions.
func TestParseQueryTree(t *testing.T) {
	e := newEnv(t, promql.DefaultConfig(), nil)

	cases := []struct {
		name, query, want string
	}{
		// Aggregations.
		{
			"aggregation", `sum(up)`,
			`{"expr":` + upJSON + `,"grouping":[],"op":"sum","param":null,"type":"aggregation","without":false}`,
		},
		{
			"aggregation with param", `topk(3, up)`,
			`{"expr":` + upJSON + `,"grouping":[],"op":"topk","param":{"type":"numberLiteral","val":"3"},"type":"aggregation","without":false}`,
		},
		{
			"aggregation by", `sum by (job, instance) (up)`,
			`{"expr":` + upJSON + `,"grouping":["job","instance"],"op":"sum","param":null,"type":"aggregation","without":false}`,
		},
		{
			"aggregation without, string param", `count_values without (instance) ("v", up)`,
			`{"expr":` + upJSON + `,"grouping":["instance"],"op":"count_values","param":{"type":"stringLiteral","val":"v"},"type":"aggregation","without":true}`,
		},
		{
			"aggregation by nothing", `quantile(0.9, up) by ()`,
			`{"expr":` + upJSON + `,"grouping":[],"op":"quantile","param":{"type":"numberLiteral","val":"0.9"},"type":"aggregation","without":false}`,
		},

		// Binary expressions.
		{
			"binary scalars", `1 + 2`,
			`{"bool":false,"lhs":{"type":"numberLiteral","val":"1"},` + noMatching + `,"op":"+","rhs":{"type":"numberLiteral","val":"2"},"type":"binaryExpr"}`,
		},
		{
			"binary bool", `up > bool 0`,
			`{"bool":true,"lhs":` + upJSON + `,` + noMatching + `,"op":"\u003e","rhs":{"type":"numberLiteral","val":"0"},"type":"binaryExpr"}`,
		},
		{
			"binary one-to-one", `up * up`,
			`{"bool":false,"lhs":` + upJSON + `,"matching":{"card":"one-to-one","fillValues":{"lhs":null,"rhs":null},"include":[],"labels":[],"on":false},` +
				`"op":"*","rhs":` + upJSON + `,"type":"binaryExpr"}`,
		},
		{
			"binary on group_left", `up + on(job) group_left(instance) http_requests_total`,
			`{"bool":false,"lhs":` + upJSON + `,"matching":{"card":"many-to-one","fillValues":{"lhs":null,"rhs":null},"include":["instance"],"labels":["job"],"on":true},` +
				`"op":"+","rhs":{"anchored":false,"matchers":[{"name":"__name__","type":"=","value":"http_requests_total"}],"name":"http_requests_total",` +
				`"offset":0,"offsetExpr":null,"smoothed":false,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"type":"binaryExpr"}`,
		},
		{
			"binary ignoring group_right", `up - ignoring(instance) group_right up`,
			`{"bool":false,"lhs":` + upJSON + `,"matching":{"card":"one-to-many","fillValues":{"lhs":null,"rhs":null},"include":[],"labels":["instance"],"on":false},` +
				`"op":"-","rhs":` + upJSON + `,"type":"binaryExpr"}`,
		},
		{
			"binary set operator", `up and on() up`,
			`{"bool":false,"lhs":` + upJSON + `,"matching":{"card":"many-to-many","fillValues":{"lhs":null,"rhs":null},"include":[],"labels":[],"on":true},` +
				`"op":"and","rhs":` + upJSON + `,"type":"binaryExpr"}`,
		},
		{
			"binary fill", `up + fill_left(1) fill_right(-0.5) up`,
			`{"bool":false,"lhs":` + upJSON + `,"matching":{"card":"one-to-one","fillValues":{"lhs":1,"rhs":-0.5},"include":[],"labels":[],"on":false},` +
				`"op":"+","rhs":` + upJSON + `,"type":"binaryExpr"}`,
		},

		// Function calls.
		{
			"call without args", `time()`,
			`{"args":[],"func":{"argTypes":[],"name":"time","returnType":"scalar","variadic":0},"type":"call"}`,
		},
		{
			"call with range arg", `rate(x[5m])`,
			`{"args":[` + xRangeJSON + `],"func":{"argTypes":["matrix"],"name":"rate","returnType":"vector","variadic":0},"type":"call"}`,
		},
		{
			"call variadic", `round(up, 0.5)`,
			`{"args":[` + upJSON + `,{"type":"numberLiteral","val":"0.5"}],` +
				`"func":{"argTypes":["vector","scalar"],"name":"round","returnType":"vector","variadic":1},"type":"call"}`,
		},
		{
			"call string args", `label_replace(up, "a", "$1", "b", "(.*)")`,
			`{"args":[` + upJSON + `,{"type":"stringLiteral","val":"a"},{"type":"stringLiteral","val":"$1"},` +
				`{"type":"stringLiteral","val":"b"},{"type":"stringLiteral","val":"(.*)"}],` +
				`"func":{"argTypes":["vector","string","string","string","string"],"name":"label_replace","returnType":"vector","variadic":0},"type":"call"}`,
		},

		// Matrix selectors.
		{"matrix selector", `x[5m]`, xRangeJSON},
		{
			"matrix selector modifiers", `x{a="b"}[1h30m] offset -2m @ end()`,
			`{"anchored":false,"matchers":[{"name":"a","type":"=","value":"b"},{"name":"__name__","type":"=","value":"x"}],"name":"x",` +
				`"offset":-120000,"offsetExpr":null,"range":5400000,"rangeExpr":null,"smoothed":false,"startOrEnd":"end","timestamp":null,"type":"matrixSelector"}`,
		},
		{
			"matrix selector anchored", `x[5m] offset 1m anchored`,
			`{"anchored":true,"matchers":[{"name":"__name__","type":"=","value":"x"}],"name":"x",` +
				`"offset":60000,"offsetExpr":null,"range":300000,"rangeExpr":null,"smoothed":false,"startOrEnd":null,"timestamp":null,"type":"matrixSelector"}`,
		},
		{
			"matrix selector range expression", `x[1m*5] @ 100`,
			`{"anchored":false,"matchers":[{"name":"__name__","type":"=","value":"x"}],"name":"x","offset":0,"offsetExpr":null,"range":0,` +
				`"rangeExpr":{"lhs":{"duration":true,"type":"numberLiteral","val":"60"},"op":"*","rhs":{"duration":false,"type":"numberLiteral","val":"5"},"type":"durationExpr","wrapped":false},` +
				`"smoothed":false,"startOrEnd":null,"timestamp":100000,"type":"matrixSelector"}`,
		},

		// Subqueries.
		{
			"subquery", `rate(x[5m])[30m:1m]`,
			`{"expr":{"args":[` + xRangeJSON + `],"func":{"argTypes":["matrix"],"name":"rate","returnType":"vector","variadic":0},"type":"call"},` +
				`"offset":0,"offsetExpr":null,"range":1800000,"rangeExpr":null,"startOrEnd":null,"step":60000,"stepExpr":null,"timestamp":null,"type":"subquery"}`,
		},
		{
			"subquery default step, offset, @ end()", `up[30m:] offset 5m @ end()`,
			`{"expr":` + upJSON + `,"offset":300000,"offsetExpr":null,"range":1800000,"rangeExpr":null,"startOrEnd":"end","step":0,"stepExpr":null,"timestamp":null,"type":"subquery"}`,
		},
		{
			"subquery @ timestamp", `up[1h:5m] @ 1700000000.5`,
			`{"expr":` + upJSON + `,"offset":0,"offsetExpr":null,"range":3600000,"rangeExpr":null,"startOrEnd":null,"step":300000,"stepExpr":null,"timestamp":1700000000500,"type":"subquery"}`,
		},
		{
			"subquery duration expressions", `up[1m+1m:step()] offset -(1m)`,
			`{"expr":` + upJSON + `,"offset":0,` +
				`"offsetExpr":{"lhs":null,"op":"-","rhs":{"lhs":null,"op":"+","rhs":{"duration":true,"type":"numberLiteral","val":"60"},"type":"durationExpr","wrapped":true},"type":"durationExpr","wrapped":false},` +
				`"range":0,"rangeExpr":{"lhs":{"duration":true,"type":"numberLiteral","val":"60"},"op":"+","rhs":{"duration":true,"type":"numberLiteral","val":"60"},"type":"durationExpr","wrapped":false},` +
				`"startOrEnd":null,"step":0,"stepExpr":{"lhs":null,"op":"step","rhs":null,"type":"durationExpr","wrapped":false},"timestamp":null,"type":"subquery"}`,
		},

		// Literals: numbers are strings, in plain decimal notation.
		{"number", `1.5`, `{"type":"numberLiteral","val":"1.5"}`},
		{"number hex", `0x10`, `{"type":"numberLiteral","val":"16"}`},
		{"number tiny", `1e-7`, `{"type":"numberLiteral","val":"0.0000001"}`},
		{"number huge", `1e21`, `{"type":"numberLiteral","val":"1000000000000000000000"}`},
		{"number duration", `5m`, `{"type":"numberLiteral","val":"300"}`},
		{"number negative", `-1`, `{"type":"numberLiteral","val":"-1"}`},
		{"number negative zero", `-0`, `{"type":"numberLiteral","val":"-0"}`},
		{"number Inf", `Inf`, `{"type":"numberLiteral","val":"+Inf"}`},
		{"number -Inf", `-Inf`, `{"type":"numberLiteral","val":"-Inf"}`},
		{"number NaN", `NaN`, `{"type":"numberLiteral","val":"NaN"}`},
		{"string", `"a\"b<&>"`, `{"type":"stringLiteral","val":"a\"b\u003c\u0026\u003e"}`},
		{"string raw", "`raw\\`", `{"type":"stringLiteral","val":"raw\\"}`},

		// Parentheses and unary operators.
		{"paren", `(up)`, `{"expr":` + upJSON + `,"type":"parenExpr"}`},
		{"nested paren", `((1))`, `{"expr":{"expr":{"type":"numberLiteral","val":"1"},"type":"parenExpr"},"type":"parenExpr"}`},
		{"unary", `-up`, `{"expr":` + upJSON + `,"op":"-","type":"unaryExpr"}`},
		{"unary of paren", `-(1)`, `{"expr":{"expr":{"type":"numberLiteral","val":"1"},"type":"parenExpr"},"op":"-","type":"unaryExpr"}`},

		// Vector selectors.
		{"vector selector", `up`, upJSON},
		{
			"vector selector matchers", `up{job="a",instance!="b",x=~"c.*",y!~"d"}`,
			`{"anchored":false,"matchers":[{"name":"job","type":"=","value":"a"},{"name":"instance","type":"!=","value":"b"},` +
				`{"name":"x","type":"=~","value":"c.*"},{"name":"y","type":"!~","value":"d"},{"name":"__name__","type":"=","value":"up"}],` +
				`"name":"up","offset":0,"offsetExpr":null,"smoothed":false,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"}`,
		},
		{
			"vector selector without name", `{__name__=~"u.*"}`,
			`{"anchored":false,"matchers":[{"name":"__name__","type":"=~","value":"u.*"}],"name":"",` +
				`"offset":0,"offsetExpr":null,"smoothed":false,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"}`,
		},
		{
			"vector selector offset", `up offset -5m`,
			`{"anchored":false,"matchers":[{"name":"__name__","type":"=","value":"up"}],"name":"up",` +
				`"offset":-300000,"offsetExpr":null,"smoothed":false,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"}`,
		},
		{
			"vector selector @ start()", `up offset 1m @ start()`,
			`{"anchored":false,"matchers":[{"name":"__name__","type":"=","value":"up"}],"name":"up",` +
				`"offset":60000,"offsetExpr":null,"smoothed":false,"startOrEnd":"start","timestamp":null,"type":"vectorSelector"}`,
		},
		{
			"vector selector @ end()", `up @ end()`,
			`{"anchored":false,"matchers":[{"name":"__name__","type":"=","value":"up"}],"name":"up",` +
				`"offset":0,"offsetExpr":null,"smoothed":false,"startOrEnd":"end","timestamp":null,"type":"vectorSelector"}`,
		},
		{
			"vector selector @ timestamp", `up @ 1700000000.123`,
			`{"anchored":false,"matchers":[{"name":"__name__","type":"=","value":"up"}],"name":"up",` +
				`"offset":0,"offsetExpr":null,"smoothed":false,"startOrEnd":null,"timestamp":1700000000123,"type":"vectorSelector"}`,
		},
		{
			"vector selector smoothed", `up smoothed`,
			`{"anchored":false,"matchers":[{"name":"__name__","type":"=","value":"up"}],"name":"up",` +
				`"offset":0,"offsetExpr":null,"smoothed":true,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"}`,
		},
		{
			"vector selector offset expression", `up offset (2 * 1m)`,
			`{"anchored":false,"matchers":[{"name":"__name__","type":"=","value":"up"}],"name":"up","offset":0,` +
				`"offsetExpr":{"lhs":{"duration":false,"type":"numberLiteral","val":"2"},"op":"*","rhs":{"duration":true,"type":"numberLiteral","val":"60"},"type":"durationExpr","wrapped":true},` +
				`"smoothed":false,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"}`,
		},
		{
			"vector selector offset step()", `up offset -step()`,
			`{"anchored":false,"matchers":[{"name":"__name__","type":"=","value":"up"}],"name":"up","offset":0,` +
				`"offsetExpr":{"lhs":null,"op":"-","rhs":{"lhs":null,"op":"step","rhs":null,"type":"durationExpr","wrapped":false},"type":"durationExpr","wrapped":false},` +
				`"smoothed":false,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"}`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.post(acme, "/api/v1/parse_query", vals("query", c.query))
			require.Equal(t, http.StatusOK, r.status, r.body)
			require.Equal(t, `{"status":"success","data":`+c.want+`}`, r.body)
		})
	}
}
