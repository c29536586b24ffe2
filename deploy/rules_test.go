package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	promparser "github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/luminate-io/luminate/internal/proctest"
)

const (
	rulesFile     = "prometheus/luminate-rules.yml"
	rulesTestFile = "prometheus/luminate-rules.test.yml"
)

// TestAlertRulesPromtool checks the rules with promtool and runs their unit
// tests (every alert fires on some input and stays silent on other).
func TestAlertRulesPromtool(t *testing.T) {
	promtool := proctest.Tool(t, "promtool", proctest.InstallPrometheus)
	for _, args := range [][]string{
		{"check", "rules", rulesFile},
		{"test", "rules", rulesTestFile},
	} {
		t.Run(strings.Join(args[:2], " "), func(t *testing.T) {
			out, err := exec.Command(promtool, args...).CombinedOutput()
			require.NoError(t, err, "promtool %v:\n%s", args, out)
			require.Contains(t, string(out), "SUCCESS")
		})
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type alertRule struct {
	name        string
	expr        promparser.Expr
	labels      map[string]string
	annotations map[string]string
}

// templateLabelRE finds the labels an annotation template reads.
var templateLabelRE = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)

func loadRules(t testing.TB) []alertRule {
	t.Helper()
	var rf ruleFile
	require.NoError(t, yaml.Unmarshal(readFile(t, rulesFile), &rf))
	var out []alertRule
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert, "group %s has only alerting rules", g.Name)
			expr, err := promparser.NewParser(promparser.Options{}).ParseExpr(r.Expr)
			require.NoError(t, err, r.Alert)
			out = append(out, alertRule{name: r.Alert, expr: expr, labels: r.Labels, annotations: r.Annotations})
		}
	}
	return out
}

// exportedMetrics finds every metric Luminate's code registers, with its
// label names: the Name of a prometheus.*Opts literal (labels from the
// New*Vec call it is passed to) and the name of a prometheus.NewDesc. It
// reads the non-test Go files of the repository.
func exportedMetrics(t testing.TB) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	fset := token.NewFileSet()
	stringLits := func(e ast.Expr) []string {
		cl, ok := e.(*ast.CompositeLit)
		if !ok {
			return nil
		}
		var s []string
		for _, el := range cl.Elts {
			if bl, ok := el.(*ast.BasicLit); ok && bl.Kind == token.STRING {
				v, _ := strconv.Unquote(bl.Value)
				s = append(s, v)
			}
		}
		return s
	}
	optsName := func(e ast.Expr) string {
		if u, ok := e.(*ast.UnaryExpr); ok {
			e = u.X
		}
		cl, ok := e.(*ast.CompositeLit)
		if !ok {
			return ""
		}
		sel, ok := cl.Type.(*ast.SelectorExpr)
		if !ok || !strings.HasSuffix(sel.Sel.Name, "Opts") {
			return ""
		}
		for _, el := range cl.Elts {
			kv, ok := el.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Name" {
				if bl, ok := kv.Value.(*ast.BasicLit); ok && bl.Kind == token.STRING {
					v, _ := strconv.Unquote(bl.Value)
					return v
				}
			}
		}
		return ""
	}
	err := filepath.WalkDir(repoRoot, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "testdata", "node_modules", "deploy":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			fn := ""
			switch f := call.Fun.(type) {
			case *ast.SelectorExpr:
				fn = f.Sel.Name
			case *ast.Ident:
				fn = f.Name
			}
			if fn == "NewDesc" && len(call.Args) >= 3 {
				if bl, ok := call.Args[0].(*ast.BasicLit); ok && bl.Kind == token.STRING {
					name, _ := strconv.Unquote(bl.Value)
					out[name] = stringLits(call.Args[2])
				}
				return true
			}
			if name := optsName(call.Args[0]); name != "" {
				var labels []string
				if strings.HasSuffix(fn, "Vec") && len(call.Args) >= 2 {
					labels = stringLits(call.Args[1])
				}
				out[name] = labels
			}
			return true
		})
		return nil
	})
	require.NoError(t, err)
	return out
}

// targetLabels are the labels Prometheus adds to every scraped series.
var targetLabels = []string{"job", "instance"}

// TestAlertRulesUseExportedMetrics checks every metric and label an alert
// uses against what Luminate's code registers, so a renamed metric or label
// breaks this test rather than silently muting an alert.
func TestAlertRulesUseExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	require.Contains(t, exported, "luminate_http_requests_total", "the scan finds Luminate's metrics")
	require.Equal(t, []string{"route", "code"}, exported["luminate_http_requests_total"])

	rules := loadRules(t)
	require.NotEmpty(t, rules)
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			require.Contains(t, []string{"critical", "warning"}, r.labels["severity"])
			require.NotEmpty(t, r.annotations["summary"])

			allowed := map[string]bool{}
			for _, l := range targetLabels {
				allowed[l] = true
			}
			promparser.Inspect(r.expr, func(n promparser.Node, _ []promparser.Node) error {
				vs, ok := n.(*promparser.VectorSelector)
				if !ok {
					return nil
				}
				own := slices.Clone(targetLabels)
				switch base, suffix := histogramBase(vs.Name, exported); {
				case vs.Name == "up":
					// Prometheus' own, for every target.
				case base != "":
					own = append(own, exported[base]...)
					if suffix == "_bucket" {
						own = append(own, "le")
					}
				default:
					labels, ok := exported[vs.Name]
					require.True(t, ok, "%s is a metric Luminate exports", vs.Name)
					own = append(own, labels...)
				}
				for _, l := range own {
					allowed[l] = true
				}
				for _, m := range vs.LabelMatchers {
					if m.Name != model.MetricNameLabel {
						require.Contains(t, own, m.Name, "%s has label %s", vs.Name, m.Name)
					}
				}
				return nil
			})
			promparser.Inspect(r.expr, func(n promparser.Node, _ []promparser.Node) error {
				var used []string
				switch n := n.(type) {
				case *promparser.AggregateExpr:
					used = n.Grouping
				case *promparser.BinaryExpr:
					if n.VectorMatching != nil {
						used = append(used, n.VectorMatching.MatchingLabels...)
						used = append(used, n.VectorMatching.Include...)
					}
				}
				for _, l := range used {
					require.True(t, allowed[l], "label %s is on a metric of the expression", l)
				}
				return nil
			})
			for _, text := range r.annotations {
				for _, m := range templateLabelRE.FindAllStringSubmatch(text, -1) {
					require.True(t, allowed[m[1]], "annotation uses $labels.%s", m[1])
				}
			}
		})
	}
}

// histogramBase returns the histogram a _bucket, _sum or _count series
// belongs to, if Luminate exports it.
func histogramBase(name string, exported map[string][]string) (string, string) {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if _, ok := exported[base]; ok {
				return base, suffix
			}
		}
	}
	return "", ""
}

// TestAlertRulesMatchRealRoutes serves real requests on a running luminate
// and checks that the route values the alerts select are the ones its
// /metrics reports.
func TestAlertRulesMatchRealRoutes(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "hmac.secret")
	writeFile(t, secret, []byte(newHMACSecret(t)), 0o400)
	p := startLuminate(t, "serve", "--storage.badger.path="+filepath.Join(dir, "data"), "--auth.jwt.hmac-secret-file="+secret)
	p.waitReady()
	token := mintToken(t, secret, "rules", "metrics:read,metrics:write")
	for _, path := range []string{
		"/api/v1/query?query=up",
		"/api/v1/query_range?" + url.Values{"query": {"up"}, "start": {"0"}, "end": {"60"}, "step": {"15"}}.Encode(),
		"/prometheus/api/v1/query?query=up",
	} {
		code, body := httpGet(t, p.url(path), token)
		require.Equal(t, http.StatusOK, code, "%s: %s", path, body)
	}
	// An empty remote-read request: refused, but counted under its route.
	code, _ := httpDo(t, http.MethodPost, p.url("/api/v1/read"), token, "application/x-protobuf", nil)
	require.Equal(t, http.StatusBadRequest, code)

	code, body := httpGet(t, p.url(pathMetrics), mintToken(t, secret, "prometheus", "operator"))
	require.Equal(t, http.StatusOK, code)
	tp := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := tp.TextToMetricFamilies(strings.NewReader(string(body)))
	require.NoError(t, err)
	routes := map[string]bool{}
	for _, m := range mfs["luminate_http_requests_total"].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "route" {
				routes[lp.GetValue()] = true
			}
		}
	}
	require.Contains(t, routes, pathReady)

	checked := 0
	for _, r := range loadRules(t) {
		promparser.Inspect(r.expr, func(n promparser.Node, _ []promparser.Node) error {
			vs, ok := n.(*promparser.VectorSelector)
			if !ok {
				return nil
			}
			for _, m := range vs.LabelMatchers {
				if m.Name != "route" {
					continue
				}
				var matched []string
				for route := range routes {
					if m.Matches(route) {
						matched = append(matched, route)
					}
				}
				sort.Strings(matched)
				require.NotEmpty(t, matched, "%s: %s matches a route Luminate reports (%v)", r.name, m, routes)
				if r.name == "LuminateHighQueryLatency" {
					require.Equal(t, []string{"/api/v1/query", "/api/v1/query_range", "/api/v1/read", "/prometheus/api/v1/query"}, matched,
						"the query latency alert covers the query API and remote read, and nothing else served here")
				}
				checked++
			}
			return nil
		})
	}
	require.Positive(t, checked)
	p.stop()
}
