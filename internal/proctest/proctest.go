// Package proctest runs the child processes of Luminate's end-to-end tests
// (a luminate binary, Debian's prometheus and promtool; clickhouse-server
// is storage/clickhouse/chtest's): their output captured while the test
// reads it and shown when the test fails, readiness waited for with a
// deadline, a clean stop with SIGTERM and a kill when that does not come.
//
// It is for tests only: only _test.go files import it, which
// apierror's TestLayers checks.
package proctest

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// InstallPrometheus says how to get prometheus and promtool.
const InstallPrometheus = "install Debian's prometheus package: apt-get install -y prometheus, or run scripts/test-deps.sh"

// Tool returns the path of program, or skips t when it is not installed
// (fails it under CI=true, where scripts/test-deps.sh installs the tools);
// install says how to get it.
func Tool(t testing.TB, program, install string) string {
	t.Helper()
	if p, err := exec.LookPath(program); err == nil {
		return p
	}
	if p := "/usr/bin/" + program; FileExists(p) {
		return p
	}
	msg := program + " not found (" + install + ")"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// FileExists says whether p is a file (not a directory).
func FileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// FreeAddr returns a loopback address nothing listens on right now, for a
// program that cannot report the port it picked itself.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// Eventually polls cond every 100ms until it holds, failing t with cond's
// last explanation after timeout. It bounds waiting for processes that
// work asynchronously (startup, scrapes, remote-write queues); it
// measures nothing.
func Eventually(t testing.TB, timeout time.Duration, cond func() (bool, string), format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", fmt.Sprintf(format, args...), timeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Buffer collects a child process's output while the test reads it.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Proc is a child process started by Start.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	// Out is what it wrote to the streams Start captured.
	Out *Buffer
	// Grace is how long the end of the test waits for the process to
	// exit after SIGTERM before it kills it; 0 kills it at once.
	Grace time.Duration

	done chan struct{}
	err  error // of Wait, once done is closed
}

// Start starts cmd, capturing in Out whichever of its stdout and stderr
// is nil. At the end of the test the process is stopped if it still runs
// (see Grace) and, if the test failed, its output logged under name.
func Start(t testing.TB, name string, cmd *exec.Cmd) *Proc {
	t.Helper()
	p := &Proc{Name: name, Cmd: cmd, Out: &Buffer{}, done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = p.Out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = p.Out
	}
	require.NoError(t, cmd.Start(), "start %s", name)
	go func() {
		p.err = cmd.Wait() // returns once the output is copied
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.Grace > 0 {
			p.Stop(p.Grace)
		} else {
			p.Kill()
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.Out.String())
		}
	})
	return p
}

// Done is closed once the process has exited and its output is in Out.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited says whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the error of exec.Cmd.Wait, once Done is closed.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// Kill kills the process and waits for it, unless it has exited.
func (p *Proc) Kill() {
	if p.Exited() {
		return
	}
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// Stop sends SIGTERM and waits up to grace for the process to exit,
// killing it after that. It says whether the process exited by itself.
func (p *Proc) Stop(grace time.Duration) bool {
	if p.Exited() {
		return true
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return true
	case <-time.After(grace):
		p.Kill()
		return false
	}
}

// Wait waits up to timeout for the process to exit and returns its exit
// code; it fails t when it does not exit in time.
func (p *Proc) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s", p.Name, timeout)
	}
	return p.Cmd.ProcessState.ExitCode()
}

// WaitReady waits up to timeout until GET url answers 200, failing t when
// the process exits first.
func (p *Proc) WaitReady(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	Eventually(t, timeout, func() (bool, string) {
		if p.Exited() {
			t.Fatalf("%s exited: %s", p.Name, p.Out.String())
		}
		resp, err := client.Get(url)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	}, "%s ready", p.Name)
}

// Prometheus is a prometheus child process.
type Prometheus struct {
	*Proc
	Addr string // host:port it listens on
	Dir  string // its configuration and TSDB
}

// StartPrometheus starts the prometheus binary bin on addr with the
// configuration config (a YAML document) and its TSDB in a directory of
// its own. It is stopped at the end of the test (SIGTERM, killed after
// 10s). It returns at once, so several can start together: call
// WaitReady before using it.
func StartPrometheus(t testing.TB, bin, name, addr, config string, flags ...string) *Prometheus {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(config), 0o600))
	args := append([]string{
		"--config.file=" + cfg,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--log.level=info",
	}, flags...)
	p := Start(t, fmt.Sprintf("prometheus %s (%s)", name, addr), exec.Command(bin, args...))
	p.Grace = 10 * time.Second
	return &Prometheus{Proc: p, Addr: addr, Dir: dir}
}

// URL is path on its HTTP API.
func (p *Prometheus) URL(path string) string { return "http://" + p.Addr + path }

// WaitReady waits up to timeout until /-/ready answers 200.
func (p *Prometheus) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	p.Proc.WaitReady(t, p.URL("/-/ready"), timeout)
}

// Built is a luminate binary built once for all the tests of a test
// binary: declare one in the test package and Remove it in TestMain.
type Built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Luminate builds ./cmd/luminate under repoRoot the way deploy/Dockerfile
// does (static, CGO_ENABLED=0, -trimpath, the version set by -ldflags to
// version) on its first call and returns the binary's path.
func (b *Built) Luminate(t testing.TB, repoRoot, version string) string {
	t.Helper()
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "luminate-test-")
		if b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "luminate")
		cmd := exec.Command("go", "build", "-trimpath",
			"-ldflags", "-X github.com/prometheus/common/version.Version="+version,
			"-o", b.path, "./cmd/luminate")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build ./cmd/luminate: %w\n%s", err, out)
		}
	})
	require.NoError(t, b.err)
	return b.path
}

// Remove deletes the binary, if one was built.
func (b *Built) Remove() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// Lines returns out's complete lines; with all, the unterminated last one
// too (for a process that has exited).
func Lines(out string, all bool) []string {
	lines := strings.Split(out, "\n")
	last := lines[len(lines)-1]
	lines = lines[:len(lines)-1]
	if all && last != "" {
		lines = append(lines, last)
	}
	return lines
}
