package grafana

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/luminate-io/luminate/promql"
	"github.com/luminate-io/luminate/tenancy"
)

const (
	dataSourceFile = "provisioning/datasources/luminate.yaml"
	providerFile   = "provisioning/dashboards/luminate.yaml"
)

// dataSources is Grafana's data source provisioning file, with the fields
// Luminate's file may use: decoding is strict, so a misspelt key fails.
type dataSources struct {
	APIVersion  int          `yaml:"apiVersion"`
	DataSources []dataSource `yaml:"datasources"`
}

type dataSource struct {
	Name           string            `yaml:"name"`
	UID            string            `yaml:"uid"`
	Type           string            `yaml:"type"`
	Access         string            `yaml:"access"`
	URL            string            `yaml:"url"`
	IsDefault      bool              `yaml:"isDefault"`
	Editable       bool              `yaml:"editable"`
	JSONData       map[string]any    `yaml:"jsonData"`
	SecureJSONData map[string]string `yaml:"secureJsonData"`
}

// dashboardProviders is Grafana's dashboard provisioning file.
type dashboardProviders struct {
	APIVersion int        `yaml:"apiVersion"`
	Providers  []provider `yaml:"providers"`
}

type provider struct {
	Name                  string `yaml:"name"`
	OrgID                 int    `yaml:"orgId"`
	Folder                string `yaml:"folder"`
	Type                  string `yaml:"type"`
	DisableDeletion       bool   `yaml:"disableDeletion"`
	AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
	UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
	Options               struct {
		Path                      string `yaml:"path"`
		FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
	} `yaml:"options"`
}

func decodeYAMLFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(v), path)
}

// grafanaExpand expands environment variables in a provisioning value as
// Grafana does (pkg/services/provisioning/values): $VAR and ${VAR} from
// env, "$$" for a literal "$", no default values.
func grafanaExpand(s string, env map[string]string) string {
	parts := strings.Split(s, "$$")
	for i, p := range parts {
		parts[i] = os.Expand(p, func(k string) string { return env[k] })
	}
	return strings.Join(parts, "$")
}

func TestGrafanaExpand(t *testing.T) {
	env := map[string]string{"A": "x", "B": "y"}
	for _, tc := range []struct{ in, want string }{
		{"$A", "x"},
		{"${A}/${B}", "x/y"},
		{"Bearer ${A}", "Bearer x"},
		{"$$A", "$A"},
		{"${C}", ""},
		{"${A:-default}", ""}, // no default-value syntax: the whole text is the name
	} {
		require.Equal(t, tc.want, grafanaExpand(tc.in, env), tc.in)
	}
}

func loadDataSource(t *testing.T) dataSource {
	t.Helper()
	var f dataSources
	decodeYAMLFile(t, dataSourceFile, &f)
	require.Equal(t, 1, f.APIVersion)
	require.Len(t, f.DataSources, 1)
	return f.DataSources[0]
}

func TestDataSourceProvisioning(t *testing.T) {
	ds := loadDataSource(t)
	require.Equal(t, "prometheus", ds.Type)
	require.Equal(t, DataSourceUID, ds.UID)
	require.Equal(t, "proxy", ds.Access, "Grafana's server, not the browser, talks to Luminate: the token stays on the server")
	require.NotEmpty(t, ds.Name)

	t.Run("url from the environment", func(t *testing.T) {
		require.NotEmpty(t, ds.URL)
		require.Empty(t, grafanaExpand(ds.URL, nil), "the url is %s and nothing else", EnvURL)
		got := grafanaExpand(ds.URL, map[string]string{EnvURL: DefaultURL})
		require.Equal(t, DefaultURL, got)
		u, err := url.Parse(got)
		require.NoError(t, err)
		require.Contains(t, []string{"http", "https"}, u.Scheme)
		require.NotEmpty(t, u.Host)
	})

	t.Run("bearer token from the environment", func(t *testing.T) {
		require.Equal(t, "Authorization", ds.JSONData["httpHeaderName1"])
		v, ok := ds.SecureJSONData["httpHeaderValue1"]
		require.True(t, ok, "secureJsonData.httpHeaderValue1 carries the token")
		require.Equal(t, "Bearer ", grafanaExpand(v, nil), "no token is committed: the value is Bearer $%s", EnvToken)
		require.Equal(t, "Bearer abc.def.ghi", grafanaExpand(v, map[string]string{EnvToken: "abc.def.ghi"}))
		// Every custom header has its value, and only secure values
		// reference the token.
		for k, name := range ds.JSONData {
			if n, ok := strings.CutPrefix(k, "httpHeaderName"); ok {
				require.Contains(t, ds.SecureJSONData, "httpHeaderValue"+n, "header %v has no value", name)
			}
			if s, ok := name.(string); ok {
				require.NotContains(t, s, EnvToken, "jsonData.%s is not encrypted: the token belongs in secureJsonData", k)
			}
		}
	})

	t.Run("prometheus settings", func(t *testing.T) {
		require.Equal(t, "POST", ds.JSONData["httpMethod"])
		require.Equal(t, "Prometheus", ds.JSONData["prometheusType"])
		require.Equal(t, promql.PrometheusVersion, ds.JSONData["prometheusVersion"],
			"the version Luminate's /api/v1/status/buildinfo reports")
		ti, ok := ds.JSONData["timeInterval"].(string)
		require.True(t, ok, "timeInterval is a duration string")
		d, err := model.ParseDuration(ti)
		require.NoError(t, err)
		require.Equal(t, model.Duration(15*time.Second), d)
	})

	t.Run("dashboard defaults to it", func(t *testing.T) {
		d := loadDashboard(t)
		for _, v := range d.Templating.List {
			if v.Name == "datasource" {
				require.Equal(t, DataSourceUID, v.Current.Value, "the dashboard's datasource variable starts on the provisioned data source")
				return
			}
		}
		t.Fatal("the dashboard has no datasource variable")
	})
}

func TestDashboardProvider(t *testing.T) {
	var f dashboardProviders
	decodeYAMLFile(t, providerFile, &f)
	require.Equal(t, 1, f.APIVersion)
	require.Len(t, f.Providers, 1)
	p := f.Providers[0]
	require.Equal(t, "file", p.Type)
	require.NotEmpty(t, p.Name)
	require.NotEmpty(t, p.Folder)
	require.Positive(t, p.UpdateIntervalSeconds)
	require.False(t, p.AllowUIUpdates, "the dashboard is changed in the repository, not in Grafana")

	// The provider reads the container path deployments mount dashboards/
	// on; that directory holds the dashboard.
	require.Equal(t, DashboardsDir, p.Options.Path)
	require.True(t, filepath.IsAbs(p.Options.Path))
	st, err := os.Stat("dashboards")
	require.NoError(t, err)
	require.True(t, st.IsDir())
	_, err = os.Stat(filepath.Join("dashboards", filepath.Base(dashboardFile)))
	require.NoError(t, err, "the provider's directory holds %s", dashboardFile)
	require.False(t, strings.HasPrefix(DashboardsDir, ProvisioningDir+"/"),
		"Grafana would read dashboards under the provisioning directory as provisioning files")
}

// TestDataSourceAgainstLuminate makes the calls Grafana makes when it
// tests the provisioned data source (an instant query of 1+1 with the
// configured method, then buildinfo), with the URL and headers the
// provisioning file gives once its environment variables are expanded,
// against a Luminate server assembled from the real components.
func TestDataSourceAgainstLuminate(t *testing.T) {
	ds := loadDataSource(t)
	l := newBadgerLuminate(t)
	srv := httptest.NewServer(l.handler)
	t.Cleanup(srv.Close)
	token, err := tenancy.Mint(l.secret, "", "grafana", []tenancy.Scope{tenancy.ScopeRead}, time.Hour, "", "", time.Now())
	require.NoError(t, err)
	env := map[string]string{EnvURL: srv.URL, EnvToken: token}

	base := grafanaExpand(ds.URL, env)
	headers := http.Header{}
	for k, name := range ds.JSONData {
		if n, ok := strings.CutPrefix(k, "httpHeaderName"); ok {
			headers.Set(fmt.Sprint(name), grafanaExpand(ds.SecureJSONData["httpHeaderValue"+n], env))
		}
	}
	call := func(method, path string, form url.Values) map[string]any {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, base+path, body)
		require.NoError(t, err)
		req.Header = headers.Clone()
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s %s: %s", method, path, b)
		var out map[string]any
		require.NoError(t, json.Unmarshal(b, &out))
		require.Equal(t, "success", out["status"], "%s", b)
		return out
	}

	method, _ := ds.JSONData["httpMethod"].(string)
	res := call(method, "/api/v1/query", url.Values{"query": {"1+1"}, "time": {fmt.Sprint(time.Now().Unix())}})
	require.Equal(t, "scalar", res["data"].(map[string]any)["resultType"])
	bi := call(http.MethodGet, "/api/v1/status/buildinfo", nil)
	require.Equal(t, ds.JSONData["prometheusVersion"], bi["data"].(map[string]any)["version"])

	// Without the header, Luminate refuses: the header is what grants access.
	resp, err := srv.Client().Get(base + "/api/v1/status/buildinfo")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}
