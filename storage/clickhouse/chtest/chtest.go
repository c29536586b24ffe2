// Package chtest starts real ClickHouse servers for tests: Debian's
// clickhouse-server on free loopback ports, with a generated configuration
// and its data under t.TempDir(), stopped when the test ends.
//
// Tests that need a server call Start (one server, its DSN) or New (a handle
// with Stop and Start for outage tests) or NewCluster (several servers that
// know each other as the shards of one cluster). When the server binary is
// missing the test is skipped, except under CI=true, where it fails.
//
// It is not a ClickHouse client and not a mock: it only runs the server.
package chtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// EnvServer names an environment variable that, when set, is the path of the
// clickhouse-server binary to run.
const EnvServer = "LUMINATE_CLICKHOUSE_SERVER"

// ClusterName is the name under which NewCluster's servers know their
// cluster (remote_servers in each server's configuration).
const ClusterName = "luminate_test"

// readyTimeout bounds how long a server may take to answer /ping.
const readyTimeout = 30 * time.Second

// Server is one clickhouse-server process owned by a test. Its methods are
// safe for concurrent use.
type Server struct {
	t       testing.TB
	binary  string
	dir     string
	config  string
	tcpPort int
	http    int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd exits
}

// Start starts one server for t and returns its DSN
// (clickhouse://127.0.0.1:PORT/default).
func Start(t testing.TB) string {
	t.Helper()
	return New(t).DSN()
}

// New starts one server for t and returns its handle. The server is stopped
// when t ends.
func New(t testing.TB) *Server {
	t.Helper()
	return NewCluster(t, 1)[0]
}

// NewCluster starts n servers for t. Each server's configuration names all n
// as the single-replica shards of cluster ClusterName, in order, so a
// Distributed table over ClusterName spreads rows across them. No ZooKeeper
// is configured: ON CLUSTER DDL and replicated tables are unavailable.
func NewCluster(t testing.TB, n int) []*Server {
	t.Helper()
	return NewReplicatedCluster(t, n, 1, "")
}

// NewReplicatedCluster starts shards x replicas servers for t, shard by
// shard, as cluster ClusterName with internal replication. With zooKeeper
// (host:port, see StartZooKeeper) every server uses it, has the macros
// {shard} (01, 02, ...) and {replica} (r1, r2, ...), and runs distributed
// DDL, so ON CLUSTER statements and ReplicatedMergeTree tables work.
func NewReplicatedCluster(t testing.TB, shards, replicas int, zooKeeper string) []*Server {
	t.Helper()
	bin := Binary(t)
	n := shards * replicas
	ports, err := freePorts(3 * n)
	if err != nil {
		t.Fatalf("chtest: pick ports: %v", err)
	}
	servers := make([]*Server, n)
	for i := range servers {
		servers[i] = &Server{t: t, binary: bin, dir: t.TempDir(), tcpPort: ports[3*i], http: ports[3*i+1]}
	}
	for i, s := range servers {
		d := configData{
			Dir: s.dir, TCPPort: s.tcpPort, HTTPPort: s.http, InterserverPort: ports[3*i+2], Cluster: ClusterName,
			ZooKeeper: zooKeeper, Shard: fmt.Sprintf("%02d", i/replicas+1), Replica: fmt.Sprintf("r%d", i%replicas+1),
			InternalReplication: replicas > 1,
		}
		for sh := range shards {
			var reps []int
			for r := range replicas {
				reps = append(reps, servers[sh*replicas+r].tcpPort)
			}
			d.Shards = append(d.Shards, reps)
		}
		if err := s.writeConfig(d); err != nil {
			t.Fatalf("chtest: write config: %v", err)
		}
	}
	for _, s := range servers {
		t.Cleanup(s.stopForCleanup)
		s.Start()
	}
	return servers
}

// StartZooKeeper starts a standalone ZooKeeper (Debian package zookeeper)
// on a free loopback port for t and returns its host:port. It skips t when
// ZooKeeper or java is not installed, and fails it in CI (CI=true).
func StartZooKeeper(t testing.TB) string {
	t.Helper()
	jar := "/usr/share/java/zookeeper.jar"
	java, err := exec.LookPath("java")
	if _, statErr := os.Stat(jar); statErr != nil || err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ZooKeeper not installed: scripts/test-deps.sh installs the Debian package zookeeper")
		}
		t.Skip("ZooKeeper not installed (apt-get install -y zookeeper)")
	}
	ports, err := freePorts(1)
	if err != nil {
		t.Fatalf("chtest: pick port: %v", err)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf("tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir=%s/data\nclientPort=%d\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=ruok,srvr\n", dir, ports[0])
	if err := os.WriteFile(filepath.Join(dir, "zoo.cfg"), []byte(cfg), 0o644); err != nil {
		t.Fatalf("chtest: %v", err)
	}
	out, err := os.Create(filepath.Join(dir, "zookeeper.log"))
	if err != nil {
		t.Fatalf("chtest: %v", err)
	}
	classpath := jar
	if _, err := os.Stat("/usr/share/java/slf4j-simple.jar"); err == nil {
		classpath += ":/usr/share/java/slf4j-simple.jar" // logs to zookeeper.log
	}
	cmd := exec.Command(java, "-Xmx256m", "-cp", classpath, "org.apache.zookeeper.server.ZooKeeperServerMain", filepath.Join(dir, "zoo.cfg"))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("chtest: start zookeeper: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(done)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(dir, "zookeeper.log")); err == nil {
				if len(log) > 6000 {
					log = log[len(log)-6000:]
				}
				t.Logf("chtest: zookeeper log tail:\n%s", log)
			}
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	deadline := time.Now().Add(readyTimeout)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			// "ruok" answers before the server serves sessions; "srvr"
			// reports a Mode only once it does (clickhouse 18.x crashes
			// when its first ZooKeeper session is refused).
			_ = c.SetDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte("srvr"))
			reply, _ := io.ReadAll(c)
			c.Close()
			if strings.Contains(string(reply), "Mode:") {
				return addr
			}
		}
		select {
		case <-done:
			t.Fatalf("chtest: zookeeper exited; see %s", filepath.Join(dir, "zookeeper.log"))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("chtest: zookeeper not ready in %s", readyTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Binary returns the path of the clickhouse-server binary, or skips t (fails
// it under CI=true) when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvServer); p != "" {
		return p
	}
	if p, err := exec.LookPath("clickhouse-server"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	const msg = "clickhouse-server not found (install it: apt-get install -y clickhouse-server, or set " + EnvServer + ")"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// DSN is the native-protocol address of the server, with database default.
func (s *Server) DSN() string {
	return fmt.Sprintf("clickhouse://127.0.0.1:%d/default", s.tcpPort)
}

// Addr is the server's native-protocol host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.tcpPort)) }

// HTTPURL is the base URL of the server's HTTP interface (plain SQL over
// HTTP works on every version; only the Go driver's HTTP protocol does not
// on 18.x).
func (s *Server) HTTPURL() string { return fmt.Sprintf("http://127.0.0.1:%d/", s.http) }

// Dir is the directory holding the server's configuration, data and logs.
func (s *Server) Dir() string { return s.dir }

// Pid is the process id of the running server, 0 when it is stopped.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Start starts the server if it is not running and waits until it answers.
// It fails the test if the server does not come up.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	// Ports of a server just stopped may still be held for a moment.
	deadline := time.Now().Add(readyTimeout)
	for {
		err := s.startLocked(deadline)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("chtest: start clickhouse-server: %v\n%s", err, s.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *Server) startLocked(deadline time.Time) error {
	cmd := exec.Command(s.binary, "--config-file="+s.config)
	cmd.Dir = s.dir
	out, err := os.OpenFile(filepath.Join(s.dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	client := &http.Client{Timeout: time.Second}
	url := fmt.Sprintf("http://127.0.0.1:%d/ping", s.http)
	for {
		select {
		case <-done:
			return fmt.Errorf("exited: %s", cmd.ProcessState)
		default:
		}
		if resp, err := client.Get(url); err == nil {
			ok := resp.StatusCode == http.StatusOK
			resp.Body.Close()
			if ok && s.nativeUp() {
				s.cmd, s.done = cmd, done
				return nil
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return errors.New("not ready in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nativeUp reports whether the native port accepts connections.
func (s *Server) nativeUp() bool {
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Stop stops the server (SIGTERM, then SIGKILL after 10 s) and waits for it
// to exit. Its data stays; Start brings it back on the same ports.
func (s *Server) Stop() {
	s.t.Helper()
	if err := s.stop(); err != nil {
		s.t.Errorf("chtest: stop clickhouse-server: %v", err)
	}
}

// Kill stops the server with SIGKILL, as a crash would.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}

func (s *Server) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	defer func() { s.cmd, s.done = nil, nil }()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-s.done:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	return errors.New("did not exit within 10s of SIGTERM; killed")
}

func (s *Server) stopForCleanup() {
	if err := s.stop(); err != nil {
		s.t.Logf("chtest: %v", err)
	}
	if s.t.Failed() {
		s.t.Logf("chtest: server log tail (%s):\n%s", s.dir, s.logTail())
	}
}

// logTail returns the end of the server's error log and stdout.
func (s *Server) logTail() string {
	var b strings.Builder
	for _, name := range []string{"server.err.log", "stdout.log"} {
		data, err := os.ReadFile(filepath.Join(s.dir, name))
		if err != nil {
			continue
		}
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", name, data)
	}
	return b.String()
}

// freePorts returns n distinct loopback ports free at the time of the call.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

type configData struct {
	Dir                 string
	TCPPort             int
	HTTPPort            int
	InterserverPort     int
	Cluster             string
	Shards              [][]int // native ports of each shard's replicas
	InternalReplication bool
	ZooKeeper           string // host:port, "" for none
	Shard, Replica      string // macros
}

func (d configData) ZooKeeperHost() string { h, _, _ := net.SplitHostPort(d.ZooKeeper); return h }
func (d configData) ZooKeeperPort() string { _, p, _ := net.SplitHostPort(d.ZooKeeper); return p }

func (s *Server) writeConfig(d configData) error {
	for name, tmpl := range map[string]*template.Template{"config.xml": configTemplate, "users.xml": usersTemplate} {
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, d); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(s.dir, name), buf.Bytes(), 0o644); err != nil {
			return err
		}
	}
	s.config = filepath.Join(s.dir, "config.xml")
	return nil
}

// configTemplate is a small server configuration: loopback only, small
// caches, logs to files in the server's directory, UTC.
var configTemplate = template.Must(template.New("config").Parse(`<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>{{.Dir}}/server.log</log>
    <errorlog>{{.Dir}}/server.err.log</errorlog>
    <size>10M</size>
    <count>1</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>{{.TCPPort}}</tcp_port>
  <http_port>{{.HTTPPort}}</http_port>
  <interserver_http_port>{{.InterserverPort}}</interserver_http_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <path>{{.Dir}}/data/</path>
  <tmp_path>{{.Dir}}/tmp/</tmp_path>
  <user_files_path>{{.Dir}}/user_files/</user_files_path>
  <format_schema_path>{{.Dir}}/format_schemas/</format_schema_path>
  <users_config>{{.Dir}}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <max_concurrent_queries>200</max_concurrent_queries>
  <mlock_executable>false</mlock_executable>
  <remote_servers>
    <{{.Cluster}}>
{{- range .Shards}}
      <shard>
        <internal_replication>{{$.InternalReplication}}</internal_replication>
{{- range .}}
        <replica>
          <host>127.0.0.1</host>
          <port>{{.}}</port>
        </replica>
{{- end}}
      </shard>
{{- end}}
    </{{.Cluster}}>
  </remote_servers>
{{- if .ZooKeeper}}
  <zookeeper>
    <node>
      <host>{{.ZooKeeperHost}}</host>
      <port>{{.ZooKeeperPort}}</port>
    </node>
    <session_timeout_ms>10000</session_timeout_ms>
  </zookeeper>
  <macros>
    <shard>{{.Shard}}</shard>
    <replica>{{.Replica}}</replica>
  </macros>
  <distributed_ddl>
    <path>/clickhouse/task_queue/ddl</path>
  </distributed_ddl>
{{- end}}
</yandex>
`))

// usersTemplate holds the default user's profile. LowCardinality is
// experimental in 18.x and must be allowed here, by the server: modern
// servers reject the setting, so clients never send it.
var usersTemplate = template.Must(template.New("users").Parse(`<?xml version="1.0"?>
<yandex>
  <profiles>
    <default>
      <allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type>
      <max_memory_usage>4000000000</max_memory_usage>
      <max_threads>2</max_threads>
    </default>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks>
        <ip>127.0.0.1</ip>
        <ip>::1</ip>
      </networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas>
    <default></default>
  </quotas>
</yandex>
`))

// shared is the server Shared starts once per test binary.
var shared struct {
	mu     sync.Mutex
	server *Server
	dir    string
}

// sharedTB lets a server outlive the test that started it: its cleanups
// are run by RunMain, and it fails through the test that asked first.
type sharedTB struct {
	testing.TB
	cleanups []func()
}

func (s *sharedTB) Cleanup(f func()) { s.cleanups = append(s.cleanups, f) }
func (s *sharedTB) TempDir() string {
	d, err := os.MkdirTemp(shared.dir, "server")
	if err != nil {
		s.TB.Fatalf("chtest: %v", err)
	}
	return d
}

// Shared returns one server shared by every test of the binary, started
// on first use and stopped by RunMain. Tests sharing it isolate themselves
// by database.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.server != nil {
		shared.server.t = t
		return shared.server
	}
	Binary(t) // skip or fail before creating anything
	dir, err := os.MkdirTemp("", "chtest")
	if err != nil {
		t.Fatalf("chtest: %v", err)
	}
	shared.dir = dir
	tb := &sharedTB{TB: t}
	shared.server = New(tb)
	sharedCleanups = tb.cleanups
	shared.server.t = t
	return shared.server
}

var sharedCleanups []func()

// RunMain runs the tests of m and then stops the shared server. Call it
// from TestMain: os.Exit(chtest.RunMain(m)).
func RunMain(m *testing.M) int {
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.server != nil {
		shared.server.t = nopTB{}
		for i := len(sharedCleanups) - 1; i >= 0; i-- {
			sharedCleanups[i]()
		}
		os.RemoveAll(shared.dir)
		shared.server = nil
	}
	return code
}

// nopTB stands in for a test once the tests have ended.
type nopTB struct{ testing.TB }

func (nopTB) Helper()                        {}
func (nopTB) Failed() bool                   { return false }
func (nopTB) Logf(format string, a ...any)   { fmt.Fprintf(os.Stderr, format+"\n", a...) }
func (nopTB) Errorf(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
func (nopTB) Fatalf(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
