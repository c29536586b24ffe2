package deploy

// Tests of the operator guide (docs/operations.md) and its snippets
// (docs/snippets): the snippets run as pasted, with only addresses and file
// paths replaced, and what the guide names exists.

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	promconfig "github.com/prometheus/prometheus/config"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/luminate-io/luminate/grafana"
	"github.com/luminate-io/luminate/internal/proctest"
)

var (
	docsDir       = filepath.Join(repoRoot, "docs")
	operationsDoc = filepath.Join(docsDir, "operations.md")
	snippetsDir   = filepath.Join(docsDir, "snippets")
)

// The placeholders of docs/snippets/prometheus.yml a user replaces.
const (
	snippetLuminate          = "luminate.example.com:9201"
	snippetTokenFile         = "/etc/prometheus/luminate.token"
	snippetOperatorTokenFile = "/etc/prometheus/luminate-operator.token"
	snippetPrometheus        = "localhost:9090"
)

// TestPrometheusSnippet runs docs/snippets/prometheus.yml: promtool check
// config, the Prometheus 3 configuration parser, and a real Prometheus that
// remote-writes to and remote-reads from a real Luminate.
func TestPrometheusSnippet(t *testing.T) {
	snippet := string(readFile(t, filepath.Join(snippetsDir, "prometheus.yml")))
	for _, s := range []string{snippetLuminate, snippetTokenFile, snippetOperatorTokenFile, snippetPrometheus} {
		require.Contains(t, snippet, s)
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "luminate.token")
	operatorTokenFile := filepath.Join(dir, "luminate-operator.token")
	// paste returns the snippet with the addresses and the token paths
	// replaced: what a user edits.
	paste := func(luminate, prometheus string) string {
		return strings.NewReplacer(snippetLuminate, luminate, snippetTokenFile, tokenFile,
			snippetOperatorTokenFile, operatorTokenFile, snippetPrometheus, prometheus).Replace(snippet)
	}

	t.Run("prometheus 3 parser", func(t *testing.T) {
		cfg, err := promconfig.Load(paste(snippetLuminate, snippetPrometheus), slog.New(slog.DiscardHandler))
		require.NoError(t, err)
		require.Len(t, cfg.RemoteWriteConfigs, 1)
		require.Len(t, cfg.RemoteReadConfigs, 1)
		require.Equal(t, "/api/v1/write", cfg.RemoteWriteConfigs[0].URL.Path)
		require.Equal(t, "/api/v1/read", cfg.RemoteReadConfigs[0].URL.Path)
		require.Equal(t, tokenFile, cfg.RemoteWriteConfigs[0].HTTPClientConfig.Authorization.CredentialsFile)
		require.Equal(t, tokenFile, cfg.RemoteReadConfigs[0].HTTPClientConfig.Authorization.CredentialsFile)
	})

	promtool := proctest.Tool(t, "promtool", proctest.InstallPrometheus)
	prometheus := proctest.Tool(t, "prometheus", proctest.InstallPrometheus)

	// A Luminate, and a token for the snippet's file.
	secret := filepath.Join(dir, "hmac.secret")
	writeFile(t, secret, []byte(newHMACSecret(t)), 0o400)
	lum := startLuminate(t, "serve", "--storage.badger.path="+filepath.Join(dir, "data"), "--auth.jwt.hmac-secret-file="+secret)
	lum.waitReady()
	token := mintToken(t, secret, "snippet", "metrics:write,metrics:read")
	writeFile(t, tokenFile, []byte(token+"\n"), 0o600)
	writeFile(t, operatorTokenFile, []byte(mintToken(t, secret, "prometheus", "operator")+"\n"), 0o600)

	promAddr := proctest.FreeAddr(t)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	writeFile(t, cfgFile, []byte(paste(lum.addr, promAddr)), 0o644)

	t.Run("promtool check config", func(t *testing.T) {
		out, err := exec.Command(promtool, "check", "config", cfgFile).CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Contains(t, string(out), "SUCCESS")
	})

	// A series only Luminate has, half an hour old: Prometheus can only
	// answer it through remote_read.
	history := time.Now().Add(-30 * time.Minute).UnixMilli()
	body := fmt.Sprintf(`{"metrics":[{"name":"deploy_snippet_history","dimensions":{"case":"remote_read"},"value":42,"timestamp":%d}]}`, history)
	code, resp := httpDo(t, http.MethodPost, lum.url("/api/v1/metrics"), token, "application/json", []byte(body))
	require.Equal(t, http.StatusOK, code, "%s", resp)

	prom := proctest.Start(t, "prometheus", exec.Command(prometheus, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "prometheus"),
		"--web.listen-address="+promAddr))
	prom.Grace = 30 * time.Second
	promURL := "http://" + promAddr
	prom.WaitReady(t, promURL+"/-/ready", waitTimeout)

	t.Run("remote_write", func(t *testing.T) {
		// Prometheus scrapes itself; its samples arrive in Luminate, under
		// the token's tenant.
		proctest.Eventually(t, waitTimeout, func() (bool, string) {
			v := queryValues(t, lum.url(""), token, `up{job="prometheus"}`, time.Now().UnixMilli())
			return len(v) == 1 && v[0] == 1.0, fmt.Sprint(v)
		}, "Prometheus's up series in Luminate")
	})

	t.Run("scrape of Luminate with the operator token", func(t *testing.T) {
		// up is 1 only if the scrape got 200: without the operator token
		// /metrics answers 401.
		proctest.Eventually(t, waitTimeout, func() (bool, string) {
			v := queryValues(t, lum.url(""), token, `up{job="luminate"}`, time.Now().UnixMilli())
			return len(v) == 1 && v[0] == 1.0, fmt.Sprint(v)
		}, "Luminate's own up series, scraped and written back")
		v := queryValues(t, lum.url(""), token, `luminate_build_info{job="luminate"}`, time.Now().UnixMilli())
		require.Len(t, v, 1, "Luminate's own metrics were scraped")
	})

	t.Run("remote_read", func(t *testing.T) {
		v := queryValues(t, promURL, "", "deploy_snippet_history", history)
		require.Equal(t, []any{42.0}, v, "Prometheus reads the series from Luminate")
	})
	lum.stop()
}

// TestGrafanaSnippet checks docs/snippets/grafana.yml: Grafana with the
// provisioning and dashboards of grafana/, mounted where the provisioning
// files expect them, and the two variables they read.
func TestGrafanaSnippet(t *testing.T) {
	var c composeFile
	require.NoError(t, yaml.Unmarshal(readFile(t, filepath.Join(snippetsDir, "grafana.yml")), &c))
	g, ok := c.Services["grafana"]
	require.True(t, ok)
	require.Equal(t, loadCompose(t).Services["grafana"].Image, g.Image, "the same Grafana as the compose stack")

	source := func(target string) string {
		m := g.mountOf(t, target)
		require.True(t, m.bind)
		require.True(t, m.readOnly)
		return filepath.Clean(filepath.Join(snippetsDir, m.source))
	}
	require.Equal(t, filepath.Join(repoRoot, "grafana", "provisioning"), source(grafana.ProvisioningDir))
	require.Equal(t, filepath.Join(repoRoot, "grafana", "dashboards"), source(grafana.DashboardsDir))
	require.DirExists(t, source(grafana.ProvisioningDir))

	// Compose's ${VAR:-default} and ${VAR:?error}: set from the caller's
	// environment, LUMINATE_URL with Grafana's default URL.
	require.Equal(t, "${"+grafana.EnvURL+":-"+grafana.DefaultURL+"}", g.Environment[grafana.EnvURL])
	require.True(t, strings.HasPrefix(g.Environment[grafana.EnvToken], "${"+grafana.EnvToken+":?"), "the token is required")

	ds := string(readFile(t, filepath.Join(repoRoot, "grafana", "provisioning", "datasources", "luminate.yaml")))
	require.Contains(t, ds, "${"+grafana.EnvURL+"}")
	require.Contains(t, ds, "${"+grafana.EnvToken+"}")
}

// TestBadgerBackupRestore runs the guide's stopped-copy backup: write,
// stop with SIGTERM, copy <path>/badger and <path>/wal, start a new
// Luminate on the copy and read everything back.
func TestBadgerBackupRestore(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "hmac.secret")
	writeFile(t, secret, []byte(newHMACSecret(t)), 0o400)
	data := filepath.Join(dir, "data")

	p := startLuminate(t, "serve", "--storage.badger.path="+data, "--auth.jwt.hmac-secret-file="+secret)
	p.waitReady()
	token := mintToken(t, secret, "backup", "metrics:write,metrics:read")
	now := time.Now().Add(-time.Minute).UnixMilli()
	const n = 50
	var items []string
	for i := range n {
		items = append(items, fmt.Sprintf(`{"name":"deploy_backup","dimensions":{"i":"%d"},"value":%d,"timestamp":%d}`, i, i, now))
	}
	code, resp := httpDo(t, http.MethodPost, p.url("/api/v1/metrics"), token, "application/json",
		[]byte(`{"metrics":[`+strings.Join(items, ",")+`]}`))
	require.Equal(t, http.StatusOK, code, "%s", resp)
	p.stop()

	entries, err := os.ReadDir(data)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if e.Name() != "LOCK" { // the running store's lock, not data
			names = append(names, e.Name())
		}
	}
	require.ElementsMatch(t, []string{"auxlog", "badger", "wal"}, names, "the data directory holds auxlog, badger, wal and LOCK, as the guide says")

	restored := filepath.Join(dir, "restored")
	for _, sub := range names {
		copyTree(t, filepath.Join(data, sub), filepath.Join(restored, sub))
	}
	require.NoError(t, os.RemoveAll(data), "the original is gone; only the backup remains")

	r := startLuminate(t, "serve", "--storage.badger.path="+restored, "--auth.jwt.hmac-secret-file="+secret)
	r.waitReady()
	v := queryValues(t, r.url(""), token, "sum(deploy_backup)", now)
	require.Equal(t, []any{float64(n * (n - 1) / 2)}, v, "every sample is in the restored store")
	v = queryValues(t, r.url(""), token, "count(deploy_backup)", now)
	require.Equal(t, []any{float64(n)}, v)

	// Only one Luminate may open a directory.
	code2, out := runLuminate(t, "serve", "--storage.badger.path="+restored, "--auth.jwt.hmac-secret-file="+secret, "--http.listen-address=127.0.0.1:0")
	require.NotEqual(t, 0, code2)
	require.Contains(t, out, "in use")
	r.stop()
}

// copyTree copies the regular files and directories under src to dst.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		require.True(t, d.Type().IsRegular(), "%s is a regular file", p)
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	}))
}

// TestOperationsGuide checks that what docs/operations.md names exists:
// links, files, tests and benchmarks, the snippets, every alert, and the
// Badger numbers it quotes from docs/architecture.md.
func TestOperationsGuide(t *testing.T) {
	guide := string(readFile(t, operationsDoc))

	t.Run("links", func(t *testing.T) {
		links := regexp.MustCompile(`\]\(([^)#]+)(#[^)]*)?\)`).FindAllStringSubmatch(guide, -1)
		require.NotEmpty(t, links)
		for _, l := range links {
			require.FileExists(t, filepath.Join(docsDir, l[1]), "link %s", l[1])
		}
		require.Contains(t, guide, "](configuration.md)", "the configuration reference is linked")
	})

	t.Run("paths", func(t *testing.T) {
		paths := regexp.MustCompile("`((?:deploy|docs|grafana|storage|cmd)/[A-Za-z0-9_./-]+)`").FindAllStringSubmatch(guide, -1)
		require.NotEmpty(t, paths)
		for _, p := range paths {
			path := strings.TrimSuffix(p[1], "/")
			_, err := os.Stat(filepath.Join(repoRoot, path))
			require.NoError(t, err, "the guide names %s", path)
		}
	})

	t.Run("tests and benchmarks", func(t *testing.T) {
		names := regexp.MustCompile("`((?:Test|Benchmark)[A-Z][A-Za-z0-9]*)`").FindAllStringSubmatch(guide, -1)
		require.NotEmpty(t, names)
		defined := map[string]bool{}
		require.NoError(t, filepath.WalkDir(repoRoot, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			if !strings.HasSuffix(p, "_test.go") {
				return nil
			}
			for _, m := range regexp.MustCompile(`(?m)^func ((?:Test|Benchmark)[A-Za-z0-9_]*)\(`).FindAllStringSubmatch(string(readFile(t, p)), -1) {
				defined[m[1]] = true
			}
			return nil
		}))
		for _, n := range names {
			require.True(t, defined[n[1]], "the guide names %s", n[1])
		}
	})

	t.Run("snippets", func(t *testing.T) {
		entries, err := os.ReadDir(snippetsDir)
		require.NoError(t, err)
		for _, e := range entries {
			require.Contains(t, guide, "snippets/"+e.Name(), "the guide uses %s", e.Name())
		}
	})

	t.Run("alerts", func(t *testing.T) {
		for _, r := range loadRules(t) {
			require.Contains(t, guide, "`"+r.name+"`", "the guide lists %s", r.name)
		}
	})

	t.Run("badger numbers", func(t *testing.T) {
		arch := string(readFile(t, filepath.Join(docsDir, "architecture.md")))
		_, section, ok := strings.Cut(guide, "### Badger\n")
		require.True(t, ok)
		section, _, _ = strings.Cut(section, "\n### ")
		for _, line := range strings.Split(section, "\n") {
			if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| what") {
				continue
			}
			for _, num := range regexp.MustCompile(`\d[\d,]*(?:\.\d+)?`).FindAllString(line, -1) {
				require.Contains(t, arch, num, "the guide's Badger figure %s (%q) is the one measured in docs/architecture.md", num, line)
			}
		}
	})
}
