package main

// Helpers for the end-to-end tests that run Debian's prometheus and
// promtool next to a luminate process started with start().

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// tool returns the path of program (prometheus, promtool), or skips t
// (fails it under CI=true, where scripts/test-deps.sh installs them) when
// it is not installed.
func tool(t testing.TB, program string) string {
	t.Helper()
	if p, err := exec.LookPath(program); err == nil {
		return p
	}
	if p := "/usr/bin/" + program; fileExists(p) {
		return p
	}
	msg := program + " not found (install Debian's prometheus package: apt-get install -y prometheus, or run scripts/test-deps.sh)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// freeAddr returns a loopback address nothing listens on right now, for a
// program that cannot report the port it picked itself.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// writeFile writes content to dir/name and returns the path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// promProc is a prometheus child process.
type promProc struct {
	t    testing.TB
	name string
	addr string
	dir  string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

// startPrometheus starts prometheus on addr with the configuration
// config (a YAML document) and its TSDB in a directory of its own. It is
// stopped at the end of the test. It returns at once, so several can start
// together: call waitReady before using it.
func startPrometheus(t testing.TB, name, addr, config string, flags ...string) *promProc {
	t.Helper()
	return startPrometheusBin(t, tool(t, "prometheus"), name, addr, config, flags...)
}

// startPrometheusBin is startPrometheus with the prometheus binary bin
// (prometheus3 gives the 3.x one).
func startPrometheusBin(t testing.TB, bin, name, addr, config string, flags ...string) *promProc {
	t.Helper()
	dir := t.TempDir()
	cfg := writeFile(t, dir, "prometheus.yml", config)
	args := append([]string{
		"--config.file=" + cfg,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--log.level=info",
	}, flags...)
	p := &promProc{t: t, name: name, addr: addr, dir: dir, out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("prometheus %s (%s) output:\n%s", name, addr, p.out.String())
		}
	})
	return p
}

// waitReady waits until /-/ready answers 200.
func (p *promProc) waitReady() {
	p.t.Helper()
	eventually(p.t, waitTimeout, func() (bool, string) {
		select {
		case <-p.done:
			p.t.Fatalf("prometheus %s exited: %s", p.name, p.out.String())
		default:
		}
		resp, err := http.Get(p.url("/-/ready"))
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	}, "prometheus %s ready", p.name)
}

// stop sends SIGTERM and waits, killing it if it does not exit in time.
func (p *promProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *promProc) url(path string) string { return "http://" + p.addr + path }

// lockedBuffer is a bytes.Buffer a child process writes to while the test
// reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// eventually polls cond every 100ms until it holds, failing t with cond's
// last explanation after timeout. It bounds waiting for processes that
// work asynchronously (scrapes, remote-write queues); it measures nothing.
func eventually(t testing.TB, timeout time.Duration, cond func() (bool, string), format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", fmt.Sprintf(format, args...), timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// apiGet sends GET base+path with an optional bearer token and returns the
// status and body.
func apiGet(t testing.TB, base, path, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// apiResponse is the envelope of the Prometheus HTTP API.
type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
}

// queryResult is the data of a query answer.
type queryResult struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

// instantQuery runs expr at now on a Prometheus HTTP API at base (a
// luminate or a prometheus) and returns the vector it answers.
func instantQuery(t testing.TB, base, token, expr string) model.Vector {
	t.Helper()
	status, body := apiGet(t, base, "/api/v1/query?query="+url.QueryEscape(expr), token)
	require.Equal(t, http.StatusOK, status, "%s: %s", expr, body)
	var r apiResponse
	require.NoError(t, json.Unmarshal(body, &r), string(body))
	require.Equal(t, "success", r.Status, string(body))
	var qr queryResult
	require.NoError(t, json.Unmarshal(r.Data, &qr))
	require.Equal(t, "vector", qr.ResultType, string(body))
	var v model.Vector
	require.NoError(t, json.Unmarshal(qr.Result, &v))
	return v
}

// seriesOf runs /api/v1/series with match on base and returns the label
// sets.
func seriesOf(t testing.TB, base, token, match string) []model.Metric {
	t.Helper()
	status, body := apiGet(t, base, "/api/v1/series?match[]="+url.QueryEscape(match), token)
	require.Equal(t, http.StatusOK, status, "%s: %s", match, body)
	var r apiResponse
	require.NoError(t, json.Unmarshal(body, &r), string(body))
	var ms []model.Metric
	require.NoError(t, json.Unmarshal(r.Data, &ms))
	return ms
}

// metricValue is the sum of the samples of family name exposed at
// metricsURL whose labels include want. found is false when no sample
// matches.
func metricValue(t testing.TB, metricsURL, name string, want map[string]string) (sum float64, found bool) {
	t.Helper()
	resp, err := http.Get(metricsURL)
	require.NoError(t, err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	fam, ok := fams[name]
	if !ok {
		return 0, false
	}
	vec, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.Now()}, fam)
	require.NoError(t, err)
next:
	for _, s := range vec {
		for k, v := range want {
			if string(s.Metric[model.LabelName(k)]) != v {
				continue next
			}
		}
		sum += float64(s.Value)
		found = true
	}
	return sum, found
}

// runTool runs a short-lived program and returns its stdout, failing t
// with its stderr if it does not exit 0.
func runTool(t testing.TB, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, err, "%s %s\nstdout: %s\nstderr: %s", filepath.Base(bin), strings.Join(args, " "), stdout.String(), stderr.String())
	return stdout.String()
}
