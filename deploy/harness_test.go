package deploy

// The programs the tests run for real: a luminate binary built from this
// repository, promtool and prometheus (Debian's), all on internal/proctest,
// and how a container's view of its files is recreated under a temporary
// directory.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/luminate-io/luminate/internal/proctest"
)

// repoRoot is the repository's top directory (this package is deploy/).
const repoRoot = ".."

// Luminate's real endpoints that probes and health checks may use (the
// live tests also request each one from a running server).
const (
	pathHealthy = "/-/healthy"
	pathReady   = "/-/ready"
	pathMetrics = "/metrics"
)

// waitTimeout bounds waiting for a process to come up or go down. The
// machine running the tests may be busy; nothing here measures speed.
const waitTimeout = 90 * time.Second

// built is the luminate binary built once for all tests of the run,
// removed by TestMain.
var built proctest.Built

func TestMain(m *testing.M) {
	code := m.Run()
	built.Remove()
	os.Exit(code)
}

// luminateBinary builds ./cmd/luminate the way deploy/Dockerfile does
// (static, CGO_ENABLED=0, -trimpath, version set by -ldflags) and returns
// its path.
func luminateBinary(t testing.TB) string {
	t.Helper()
	return built.Luminate(t, repoRoot, "deploy-test")
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return data
}

func writeFile(t testing.TB, path string, data []byte, perm os.FileMode) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, data, perm))
}

// newHMACSecret writes a fresh 32-byte hex secret, as
// `openssl rand -hex 32` makes one, and returns its contents.
func newHMACSecret(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	f, err := os.Open("/dev/urandom")
	require.NoError(t, err)
	defer f.Close()
	_, err = io.ReadFull(f, b)
	require.NoError(t, err)
	return fmt.Sprintf("%x", b)
}

// luminateProc is a `luminate serve` child process.
type luminateProc struct {
	*proctest.Proc
	t    testing.TB
	addr string // host:port it listens on, once known
	// internalAddr is where it serves /metrics and the detailed health
	// without a token (--http.internal-listen-address).
	internalAddr string
}

// listeningRE finds the address in Luminate's "listening" log line, in
// logfmt (msg=listening address=...) or JSON ("msg":"listening","address":...).
var listeningRE = regexp.MustCompile(`listening"?[ ,]"?address"?[=:]"?(127\.0\.0\.1:[0-9]+)`)

// internalListeningRE finds the address of its "listening internally" line.
var internalListeningRE = regexp.MustCompile(`listening internally"?[ ,]"?address"?[=:]"?(127\.0\.0\.1:[0-9]+)`)

// startLuminate runs `luminate serve args...` on ports of the system's
// choosing (--http.listen-address=127.0.0.1:0 and
// --http.internal-listen-address=127.0.0.1:0 are appended: the command
// line wins over a config file) and waits until it listens. It is stopped
// at the end of the test if it still runs.
func startLuminate(t testing.TB, args ...string) *luminateProc {
	t.Helper()
	bin := luminateBinary(t)
	args = append(slices.Clone(args), "--http.listen-address=127.0.0.1:0", "--http.internal-listen-address=127.0.0.1:0")
	p := &luminateProc{t: t, Proc: proctest.Start(t, fmt.Sprintf("luminate %v", args), exec.Command(bin, args...))}
	proctest.Eventually(t, waitTimeout, func() (bool, string) {
		if p.Exited() {
			t.Fatalf("luminate %v exited: %s", args, p.Out.String())
		}
		out := p.Out.String()
		m := listeningRE.FindStringSubmatch(out)
		mi := internalListeningRE.FindStringSubmatch(out)
		if m == nil || mi == nil {
			return false, "no listening lines yet"
		}
		p.addr, p.internalAddr = m[1], mi[1]
		return true, ""
	}, "luminate listening")
	return p
}

func (p *luminateProc) url(path string) string { return "http://" + p.addr + path }

// internalURL is path on the internal listener.
func (p *luminateProc) internalURL(path string) string { return "http://" + p.internalAddr + path }

// waitReady waits until /-/ready answers 200.
func (p *luminateProc) waitReady() {
	p.t.Helper()
	p.WaitReady(p.t, p.url("/-/ready"), waitTimeout)
}

// stop sends SIGTERM and requires a clean exit (status 0), as the kubelet
// and Docker stop it.
func (p *luminateProc) stop() {
	p.t.Helper()
	if !p.Stop(waitTimeout) {
		p.t.Fatalf("luminate did not stop within %s of SIGTERM", waitTimeout)
	}
	require.Equal(p.t, 0, p.Cmd.ProcessState.ExitCode(), "exit status after SIGTERM; output:\n%s", p.Out.String())
}

// runLuminate runs the luminate binary to completion and returns its exit
// code and output.
func runLuminate(t testing.TB, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, luminateBinary(t), args...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run luminate %v: %v", args, err)
	}
	require.NoError(t, ctx.Err(), "luminate %v did not finish", args)
	return cmd.ProcessState.ExitCode(), string(out)
}

// mintToken mints a token for tenant with the secret in secretFile.
func mintToken(t testing.TB, secretFile, tenant, scopes string) string {
	t.Helper()
	code, out := runLuminate(t, "token", "--auth.jwt.hmac-secret-file="+secretFile, "--tenant="+tenant, "--scopes="+scopes, "--ttl=1h")
	require.Equal(t, 0, code, out)
	return strings.TrimSpace(out)
}

func httpDo(t testing.TB, method, u, token, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, bytes.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, data
}

func httpGet(t testing.TB, u, token string) (int, []byte) {
	t.Helper()
	return httpDo(t, http.MethodGet, u, token, "", nil)
}

// writeAndRead stores one sample of metric (labels case=name) through the
// native JSON write with a token of tenant, then reads it back with the
// Prometheus query API: what a deployment is for.
func writeAndRead(t testing.TB, p *luminateProc, secretFile, tenant, metric string, value float64) {
	t.Helper()
	token := mintToken(t, secretFile, tenant, "metrics:write,metrics:read")
	ts := time.Now().Add(-time.Minute).UnixMilli()
	body := fmt.Sprintf(`{"metrics":[{"name":%q,"dimensions":{"case":"deploy"},"value":%g,"timestamp":%d}]}`, metric, value, ts)
	code, resp := httpDo(t, http.MethodPost, p.url("/api/v1/metrics"), token, "application/json", []byte(body))
	require.Equal(t, http.StatusOK, code, "native write: %s", resp)
	require.Equal(t, []any{value}, queryValues(t, p.url(""), token, metric, ts), "read back %s", metric)
}

// queryValues evaluates query at ts (Unix ms) with the Prometheus query API
// under base and returns the values of the resulting vector.
func queryValues(t testing.TB, base, token, query string, ts int64) []any {
	t.Helper()
	q := url.Values{"query": {query}, "time": {strconv.FormatFloat(float64(ts)/1000, 'f', 3, 64)}}
	code, body := httpGet(t, base+"/api/v1/query?"+q.Encode(), token)
	require.Equal(t, http.StatusOK, code, "query %s: %s", query, body)
	var resp struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &resp), "%s", body)
	require.Equal(t, "success", resp.Status)
	var out []any
	for _, r := range resp.Data.Result {
		f, err := strconv.ParseFloat(r.Value[1].(string), 64)
		require.NoError(t, err)
		out = append(out, f)
	}
	return out
}

// rootfs recreates the files a container sees under a temporary directory:
// each mount point is a directory under dir, and paths inside a mount are
// translated with host.
type rootfs struct {
	dir    string
	mounts []string // container paths, longest first
}

func newRootfs(t testing.TB) *rootfs { return &rootfs{dir: t.TempDir()} }

// mount makes containerPath a mount point and returns its directory.
func (r *rootfs) mount(t testing.TB, containerPath string) string {
	t.Helper()
	require.True(t, filepath.IsAbs(containerPath), "mount path %q is not absolute", containerPath)
	containerPath = filepath.Clean(containerPath)
	r.mounts = append(r.mounts, containerPath)
	sort.Slice(r.mounts, func(i, j int) bool { return len(r.mounts[i]) > len(r.mounts[j]) })
	dir := filepath.Join(r.dir, containerPath)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// host translates a container path inside a mount to the file under dir;
// ok is false for a path in no mount.
func (r *rootfs) host(containerPath string) (string, bool) {
	for _, m := range r.mounts {
		if containerPath == m || strings.HasPrefix(containerPath, m+"/") {
			return filepath.Join(r.dir, containerPath), true
		}
	}
	return "", false
}

// hostArgs translates the values of --flag=VALUE arguments that are
// paths inside a mount.
func (r *rootfs) hostArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if name, value, ok := strings.Cut(a, "="); ok && strings.HasPrefix(name, "--") {
			if h, ok := r.host(value); ok {
				out[i] = name + "=" + h
			}
		}
	}
	return out
}

// hostConfig rewrites a luminate YAML config file in place so that every
// value that is a path inside a mount names the file under dir. Keys and
// all other values stay as they are; the real loader parses the result.
func (r *rootfs) hostConfig(t testing.TB, path string) {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal(readFile(t, path), &doc))
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c)
			}
		case yaml.MappingNode:
			for i := 1; i < len(n.Content); i += 2 {
				walk(n.Content[i])
			}
		case yaml.ScalarNode:
			if h, ok := r.host(n.Value); ok {
				n.Value = h
			}
		}
	}
	walk(&doc)
	out, err := yaml.Marshal(&doc)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, out, 0o644))
}

// flagValue returns the value of --name=VALUE in args.
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// configValues flattens a luminate YAML config into dotted keys, as the
// loader does (nested or dotted keys; lists joined with commas).
func configValues(t testing.TB, data []byte) map[string]string {
	t.Helper()
	var m map[string]any
	require.NoError(t, yaml.Unmarshal(data, &m))
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				key := k
				if prefix != "" {
					key = prefix + "." + k
				}
				walk(key, c)
			}
		case []any:
			parts := make([]string, len(v))
			for i, c := range v {
				parts[i] = fmt.Sprint(c)
			}
			out[prefix] = strings.Join(parts, ",")
		default:
			out[prefix] = fmt.Sprint(v)
		}
	}
	walk("", m)
	return out
}
