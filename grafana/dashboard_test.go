package grafana

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
)

const dashboardFile = "dashboards/luminate.json"

// dashboard is the part of Grafana's dashboard model the tests read.
type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int      `json:"id"`
	Type       string   `json:"type"`
	Title      string   `json:"title"`
	Datasource *dsRef   `json:"datasource"`
	Targets    []target `json:"targets"`
	Panels     []panel  `json:"panels"` // of a collapsed row
	GridPos    struct {
		X int `json:"x"`
		Y int `json:"y"`
		W int `json:"w"`
		H int `json:"h"`
	} `json:"gridPos"`
}

type target struct {
	RefID      string `json:"refId"`
	Expr       string `json:"expr"`
	Datasource *dsRef `json:"datasource"`
}

type variable struct {
	Type       string          `json:"type"`
	Name       string          `json:"name"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	Datasource *dsRef          `json:"datasource"`
	Current    struct {
		Value any `json:"value"` // a string, or a list for multi-value variables
	} `json:"current"`
}

// queryText is the variable's query: a string, or the query field of the
// object newer Grafana versions write.
func (v variable) queryText() (string, error) {
	var s string
	if err := json.Unmarshal(v.Query, &s); err == nil {
		return s, nil
	}
	var o struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &o); err != nil {
		return "", fmt.Errorf("variable %s: query is neither a string nor an object with a query: %w", v.Name, err)
	}
	return o.Query, nil
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(b, &d), dashboardFile)
	return d
}

// allPanels flattens the rows.
func (d dashboard) allPanels() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// builtinValues are examples of the values Grafana gives its built-in
// variables in a Prometheus query.
var builtinValues = map[string]string{
	"__interval":         "15s",
	"__interval_ms":      "15000",
	"__rate_interval":    "1m",
	"__rate_interval_ms": "60000",
	"__range":            "3600s",
	"__range_s":          "3600",
	"__range_ms":         "3600000",
}

// grafanaVariable matches $var, ${var} and ${var:format}.
var grafanaVariable = regexp.MustCompile(`\$(?:\{(\w+)(?::\w+)?\}|(\w+))`)

// interpolate replaces the Grafana variables in expr as Grafana does before
// it sends a query: built-ins get an example value, the dashboard's own
// variables (vars) the value sentinel(name), so that a test can tell where
// they were used. An undefined variable is an error.
func interpolate(expr string, vars map[string]bool) (string, error) {
	var errs []string
	out := grafanaVariable.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVariable.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		if v, ok := builtinValues[name]; ok {
			return v
		}
		if vars[name] {
			return sentinel(name)
		}
		errs = append(errs, fmt.Sprintf("undefined variable %s", m))
		return m
	})
	if len(errs) > 0 {
		return "", fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return out, nil
}

// sentinel is the value a dashboard variable takes in interpolated
// queries: a valid label value and regular expression.
func sentinel(name string) string { return "grafana_var_" + name }

// query is one PromQL expression of the dashboard.
type query struct {
	where string // panel title and refId, or variable name
	raw   string
	expr  parser.Expr
}

// dashboardQueries parses every panel target and every query variable's
// metric selector; parse errors fail t.
func dashboardQueries(t *testing.T, d dashboard) []query {
	t.Helper()
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	p := parser.NewParser(parser.Options{})
	var out []query
	for _, pn := range d.allPanels() {
		for _, tg := range pn.Targets {
			where := fmt.Sprintf("panel %q target %s", pn.Title, tg.RefID)
			s, err := interpolate(tg.Expr, vars)
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			e, err := p.ParseExpr(s)
			if err != nil {
				t.Errorf("%s: %q does not parse: %v", where, tg.Expr, err)
				continue
			}
			out = append(out, query{where: where, raw: tg.Expr, expr: e})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, err := v.queryText()
		if err != nil {
			t.Error(err)
			continue
		}
		where := fmt.Sprintf("variable %s", v.Name)
		sel, label, ok := labelValuesQuery(q)
		if !ok {
			t.Errorf("%s: query %q is not label_values(selector, label)", where, q)
			continue
		}
		s, err := interpolate(sel, vars)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		e, err := p.ParseExpr(s)
		if err != nil {
			t.Errorf("%s: selector %q does not parse: %v", where, sel, err)
			continue
		}
		// by (label) checks that the label exists, like the groupings of
		// panel queries.
		out = append(out, query{where: where, raw: q, expr: &parser.AggregateExpr{Op: parser.COUNT, Expr: e, Grouping: []string{label}}})
	}
	return out
}

var labelValuesCall = regexp.MustCompile(`^\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*$`)

// labelValuesQuery splits Grafana's label_values(selector, label).
func labelValuesQuery(q string) (selector, label string, ok bool) {
	m := labelValuesCall.FindStringSubmatch(q)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

func TestDashboardModel(t *testing.T) {
	d := loadDashboard(t)
	require.Equal(t, DashboardUID, d.UID)
	require.NotEmpty(t, d.Title)

	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		require.NotContains(t, vars, v.Name, "variable %s defined twice", v.Name)
		vars[v.Name] = v
	}
	require.Contains(t, vars, "datasource")
	require.Equal(t, "datasource", vars["datasource"].Type)
	var dsQuery string
	require.NoError(t, json.Unmarshal(vars["datasource"].Query, &dsQuery))
	require.Equal(t, "prometheus", dsQuery, "the datasource variable lists Prometheus-type data sources")
	for _, name := range []string{"job", "instance", "tenant"} {
		require.Contains(t, vars, name)
	}

	wantDS := dsRef{Type: "prometheus", UID: "${datasource}"}
	ids := map[int]string{}
	for _, p := range d.allPanels() {
		t.Run(fmt.Sprintf("%d %s", p.ID, p.Title), func(t *testing.T) {
			require.NotEmpty(t, p.Title)
			require.NotContains(t, ids, p.ID, "panel id %d also used by %q", p.ID, ids[p.ID])
			ids[p.ID] = p.Title
			require.True(t, p.GridPos.X >= 0 && p.GridPos.W > 0 && p.GridPos.X+p.GridPos.W <= 24 && p.GridPos.H > 0,
				"gridPos %+v does not fit Grafana's 24 columns", p.GridPos)
			if p.Type == "row" {
				require.Empty(t, p.Targets)
				return
			}
			require.NotEmpty(t, p.Targets, "a panel without queries")
			require.NotNil(t, p.Datasource)
			require.Equal(t, wantDS, *p.Datasource, "panels use the ${datasource} variable")
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				require.NotEmpty(t, tg.Expr, "target %s", tg.RefID)
				require.False(t, refs[tg.RefID], "refId %s used twice", tg.RefID)
				refs[tg.RefID] = true
				require.NotNil(t, tg.Datasource, "target %s", tg.RefID)
				require.Equal(t, wantDS, *tg.Datasource, "target %s", tg.RefID)
			}
		})
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			require.NotNil(t, v.Datasource, "variable %s", v.Name)
			require.Equal(t, wantDS, *v.Datasource, "variable %s", v.Name)
		}
	}
}

// TestDashboardQueriesParse parses every query with Prometheus' PromQL
// parser after Grafana's variable interpolation, and checks that each one
// filters by the job and instance variables.
func TestDashboardQueriesParse(t *testing.T) {
	d := loadDashboard(t)
	qs := dashboardQueries(t, d)
	require.NotEmpty(t, qs)
	for _, q := range qs {
		for _, vs := range selectors(q.expr) {
			name := metricName(vs)
			if name == "" {
				t.Errorf("%s: selector %s does not name its metric", q.where, vs)
				continue
			}
			if !strings.HasPrefix(q.where, "panel ") {
				continue // variables narrow each other: job, then instance, then tenant
			}
			for _, l := range []string{"job", "instance"} {
				if !hasVariableMatcher(vs, l) {
					t.Errorf("%s: selector %s does not filter by %s=~\"$%s\"", q.where, vs, l, l)
				}
			}
		}
	}
}

func TestInterpolate(t *testing.T) {
	vars := map[string]bool{"tenant": true, "job": true}
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: `rate(x{job=~"$job"}[$__rate_interval])`, want: `rate(x{job=~"grafana_var_job"}[1m])`},
		{in: `x{tenant=~"${tenant}"}`, want: `x{tenant=~"grafana_var_tenant"}`},
		{in: `x{tenant=~"${tenant:regex}"} offset $__interval`, want: `x{tenant=~"grafana_var_tenant"} offset 15s`},
		{in: `x{a="b$"}`, want: `x{a="b$"}`},
		{in: `x{a=~"$tenat"}`, err: "undefined variable $tenat"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := interpolate(tc.in, vars)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// selectors returns the vector selectors of e.
func selectors(e parser.Expr) []*parser.VectorSelector {
	var out []*parser.VectorSelector
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			out = append(out, vs)
		}
		return nil
	})
	return out
}

// metricName is the metric a selector reads: its name, or the value of an
// equality matcher on __name__; "" when it names none.
func metricName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

func hasVariableMatcher(vs *parser.VectorSelector, label string) bool {
	for _, m := range vs.LabelMatchers {
		if m.Name == label && m.Type == labels.MatchRegexp && m.Value == sentinel(label) {
			return true
		}
	}
	return false
}

// exported is the set of metric families a Luminate server serves, with
// their label names.
type exported map[string]*exportedFamily

type exportedFamily struct {
	typ    dto.MetricType
	labels map[string]bool
}

func (ex exported) add(fams map[string]family) {
	for name, f := range fams {
		ef := ex[name]
		if ef == nil {
			ef = &exportedFamily{typ: f.typ, labels: map[string]bool{}}
			ex[name] = ef
		}
		for l := range f.labels {
			ef.labels[l] = true
		}
	}
}

// resolve returns the family a series name belongs to: the family itself,
// or for name_bucket a histogram and for name_sum and name_count a
// histogram or summary; "" when Luminate exports no such series.
func (ex exported) resolve(series string) string {
	if _, ok := ex[series]; ok {
		return series
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(series, suffix)
		if !ok {
			continue
		}
		f, ok := ex[base]
		if !ok {
			continue
		}
		switch {
		case f.typ == dto.MetricType_HISTOGRAM || f.typ == dto.MetricType_GAUGE_HISTOGRAM:
			return base
		case f.typ == dto.MetricType_SUMMARY && suffix != "_bucket":
			return base
		}
	}
	return ""
}

// seriesLabels are the labels a series of family f (read as series) can
// carry once Prometheus has scraped it.
func (ex exported) seriesLabels(f, series string) map[string]bool {
	ls := map[string]bool{labels.MetricName: true, "job": true, "instance": true}
	for l := range ex[f].labels {
		ls[l] = true
	}
	switch {
	case strings.HasSuffix(series, "_bucket") && series != f:
		ls["le"] = true
	case ex[f].typ == dto.MetricType_SUMMARY && series == f:
		ls["quantile"] = true
	}
	return ls
}

// checkQuery returns what is wrong with q against what Luminate exports:
// metrics it does not export, label matchers and groupings on labels those
// metrics do not have, and tenant-labelled metrics not filtered by the
// tenant variable. It also returns the families q reads.
func (ex exported) checkQuery(q query) (problems []string, read []string) {
	// Labels of the selectors under each node, for groupings.
	for _, vs := range selectors(q.expr) {
		name := metricName(vs)
		f := ex.resolve(name)
		if f == "" {
			problems = append(problems, fmt.Sprintf("%s: metric %s is not exported by Luminate", q.where, name))
			continue
		}
		read = append(read, f)
		ls := ex.seriesLabels(f, name)
		for _, m := range vs.LabelMatchers {
			if !ls[m.Name] {
				problems = append(problems, fmt.Sprintf("%s: %s has no label %s (matcher %s)", q.where, name, m.Name, m))
			}
		}
		if ls["tenant"] && strings.HasPrefix(q.where, "panel ") && !hasVariableMatcher(vs, "tenant") {
			problems = append(problems, fmt.Sprintf("%s: %s has a tenant label but the selector does not filter by tenant=~\"$tenant\"", q.where, name))
		}
	}
	parser.Inspect(q.expr, func(n parser.Node, _ []parser.Node) error {
		agg, ok := n.(*parser.AggregateExpr)
		if !ok || agg.Without {
			return nil
		}
		avail := map[string]bool{}
		for _, vs := range selectors(agg.Expr) {
			name := metricName(vs)
			if f := ex.resolve(name); f != "" {
				for l := range ex.seriesLabels(f, name) {
					avail[l] = true
				}
			}
		}
		for _, l := range agg.Grouping {
			if !avail[l] {
				problems = append(problems, fmt.Sprintf("%s: %s by (%s): no metric aggregated has a label %s", q.where, agg.Op, l, l))
			}
		}
		return nil
	})
	return problems, read
}

// TestDashboardMetricsExported checks the dashboard against the /metrics of
// Luminate servers assembled from the real components (one on Badger, one
// on ClickHouse) after serving writes, queries, remote reads, refused
// tokens and rate-limited requests: every metric a query reads is exported
// (histogram and summary series by their family), with the labels the
// query filters and groups by, and every luminate_* metric exported is on
// the dashboard.
func TestDashboardMetricsExported(t *testing.T) {
	d := loadDashboard(t)
	qs := dashboardQueries(t, d)
	require.NotEmpty(t, qs)

	ex := exported{}
	badgerOK := t.Run("badger", func(t *testing.T) {
		l := newBadgerLuminate(t)
		l.exercise()
		// luminate_active_series is set by the idle sweep (every second
		// with the short idle timeout), luminate_badger_series by the
		// checkpoint.
		ex.add(l.scrapeWhen("luminate_active_series and luminate_badger_series", func(fams map[string]family) bool {
			return fams["luminate_active_series"].n > 0 && fams["luminate_badger_series"].n > 0
		}))
	})
	clickhouseScraped := false
	clickhouseOK := t.Run("clickhouse", func(t *testing.T) {
		l, srv := newClickHouseLuminate(t)
		l.exercise()
		// A read while the server is down counts a query error.
		srv.Kill()
		resp := l.do("team-a", http.MethodGet, "/api/v1/query?query=dashboard_test_metric", "", nil)
		require.GreaterOrEqual(t, resp.StatusCode, 500, "a query with ClickHouse down")
		srv.Start()
		ex.add(l.scrape())
		clickhouseScraped = true
	})
	if !badgerOK || !clickhouseOK {
		return
	}
	if _, ok := ex["luminate_badger_commit_duration_seconds"]; !ok {
		t.Fatal("the Badger server's /metrics has no luminate_badger_commit_duration_seconds: the harness is broken")
	}

	onDashboard := map[string]bool{}
	var problems []string
	for _, q := range qs {
		ps, read := ex.checkQuery(q)
		for _, f := range read {
			onDashboard[f] = true
		}
		for _, p := range ps {
			if !clickhouseScraped && strings.Contains(p, "luminate_clickhouse_") {
				t.Logf("not checked without a ClickHouse server: %s", p)
				continue
			}
			problems = append(problems, p)
		}
	}
	for name := range ex {
		if strings.HasPrefix(name, "luminate_") && !onDashboard[name] {
			problems = append(problems, fmt.Sprintf("metric %s is exported by Luminate but on no panel of %s: add it", name, dashboardFile))
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		t.Errorf("%d problems:\n%s", len(problems), strings.Join(problems, "\n"))
	}
	// The check can fail: a metric Luminate does not export is reported.
	ps, _ := ex.checkQuery(query{where: "probe", expr: mustParse(t, `rate(luminate_no_such_metric_total[1m])`)})
	require.Equal(t, []string{"probe: metric luminate_no_such_metric_total is not exported by Luminate"}, ps)
}

func mustParse(t *testing.T, s string) parser.Expr {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(s)
	require.NoError(t, err)
	return e
}

// TestDashboardFiles checks that the dashboards directory holds only
// dashboards with distinct uids.
func TestDashboardFiles(t *testing.T) {
	entries, err := os.ReadDir("dashboards")
	require.NoError(t, err)
	uids := map[string]string{}
	for _, e := range entries {
		require.True(t, strings.HasSuffix(e.Name(), ".json") && !e.IsDir(), "dashboards/%s: only dashboard JSON files belong here", e.Name())
		b, err := os.ReadFile(filepath.Join("dashboards", e.Name()))
		require.NoError(t, err)
		var d dashboard
		require.NoError(t, json.Unmarshal(b, &d), e.Name())
		require.NotEmpty(t, d.UID, e.Name())
		require.NotContains(t, uids, d.UID, "%s and %s share uid %s", e.Name(), uids[d.UID], d.UID)
		uids[d.UID] = e.Name()
	}
	require.Equal(t, filepath.Base(dashboardFile), uids[DashboardUID])
}
