package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/internal/proctest"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/badger"
	"github.com/luminate-io/luminate/storage/clickhouse"
	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
	"github.com/luminate-io/luminate/tenancy"
)

// The test binary doubles as the luminate binary: run with
// LUMINATE_TEST_MAIN=1 it executes its arguments as luminate would, so the
// end-to-end tests start real processes and send them real signals.
func TestMain(m *testing.M) {
	if os.Getenv("LUMINATE_TEST_MAIN") == "1" {
		os.Exit(execute(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// waitTimeout bounds waiting for a child process; generous because the
// test machine may be busy. It is a deadline, not a measurement.
const waitTimeout = 60 * time.Second

// proc is a luminate child process.
type proc struct {
	*proctest.Proc
	t    *testing.T
	addr string // where it listens, once started
}

// start runs `luminate args...` and returns once it exited or logged that
// its storage is open (it listens before that: see startListening).
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := startListening(t, args...)
	if p.addr != "" {
		p.waitLog(`"msg":"storage open"`)
	}
	return p
}

// startListening runs `luminate args...` and returns once it exited or
// logged the address it listens on.
func startListening(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "LUMINATE_TEST_MAIN=1")
	cmd.Stdout = io.Discard // the tests read its log, on stderr
	p := &proc{Proc: proctest.Start(t, "luminate "+strings.Join(args, " "), cmd), t: t}
	if line := p.waitLog(`"msg":"listening"`); line != "" {
		var l struct{ Address string }
		require.NoError(t, json.Unmarshal([]byte(line), &l))
		p.addr = l.Address
	}
	return p
}

// stderr is its log so far: the lines it completed (all, once it exited).
func (p *proc) stderr() string {
	return strings.Join(proctest.Lines(p.Out.String(), p.Exited()), "\n")
}

// waitLog returns the first stderr line containing s, or "" if the process
// exited without logging it.
func (p *proc) waitLog(s string) string {
	p.t.Helper()
	find := func(all bool) string {
		for _, l := range proctest.Lines(p.Out.String(), all) {
			if strings.Contains(l, s) {
				return l
			}
		}
		return ""
	}
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		if l := find(false); l != "" {
			return l
		}
		select {
		case <-p.Done():
			return find(true) // its last lines may have come with its exit
		case <-time.After(10 * time.Millisecond):
		}
	}
	p.t.Fatalf("no log line containing %s within %s", s, waitTimeout)
	return ""
}

// wait returns the exit code of the process.
func (p *proc) wait() int {
	p.t.Helper()
	return p.Wait(p.t, waitTimeout)
}

func (p *proc) url(path string) string { return "http://" + p.addr + path }

// runCLI runs a short command in-process.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = execute(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func remoteWriteBody(t *testing.T, name string, ts int64, v float64) []byte {
	t.Helper()
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: name}, {Name: "job", Value: "e2e"}},
		Samples: []prompb.Sample{{Timestamp: ts, Value: v}},
	}}}
	raw, err := req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, raw)
}

// e2eToken mints a token with the luminate token command.
func e2eToken(t *testing.T, secret string, tenant tenancy.ID, scopes string) string {
	t.Helper()
	code, out, errOut := runCLI("token", "--auth.jwt.hmac-secret-file="+secret, "--tenant="+string(tenant), "--scopes="+scopes)
	require.Equal(t, 0, code, errOut)
	return strings.TrimSpace(out)
}

func newRemoteWrite(t *testing.T, url, token string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

// openTestStore opens the Badger store in dataDir, closed at the end of the test.
func openTestStore(t *testing.T, dataDir string) *badger.Store {
	t.Helper()
	cfg := badger.DefaultConfig()
	cfg.Path = dataDir
	s, err := badger.New(cfg, nil, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// samples reads tenant's samples of metric name straight from the store.
func samples(t *testing.T, s storage.MetricsStore, tenant tenancy.ID, name string) map[int64]float64 {
	t.Helper()
	q, err := s.ForTenant(tenant).Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", name))
	out := map[int64]float64{}
	for set.Next() {
		it := set.At().Iterator(nil)
		for it.Next() != 0 {
			ts, v := it.At()
			out[ts] = v
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, set.Err())
	return out
}

func TestServeEndToEnd(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	secret := filepath.Join(data, "dev-hmac.secret")
	args := []string{"serve", "--log.format=json", "--http.listen-address=127.0.0.1:0",
		"--storage.badger.path=" + data, "--auth.jwt.hmac-secret-file=" + secret, "--auth.jwt.create-dev-secret"}
	p := start(t, args...)
	require.NotEmpty(t, p.addr, p.stderr())
	require.Contains(t, p.stderr(), "token --auth.jwt.hmac-secret-file="+secret+" --tenant=dev")

	resp, err := http.Get(p.url("/-/ready"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	code, token, errOut := runCLI("token", "--auth.jwt.hmac-secret-file="+secret, "--tenant=acme", "--scopes=metrics:read,metrics:write", "--ttl=1h")
	require.Equal(t, 0, code, errOut)
	require.Empty(t, errOut)
	require.Equal(t, 2, strings.Count(token, "."), "a compact JWS: %q", token)
	require.True(t, strings.HasSuffix(token, "\n") && strings.Count(token, "\n") == 1, "only the token on stdout: %q", token)
	token = strings.TrimSpace(token)

	now := time.Now().UnixMilli()
	t.Run("remote write without a token is refused", func(t *testing.T) {
		resp, err := http.DefaultClient.Do(newRemoteWrite(t, p.url("/api/v1/write"), "", bytes.NewReader(remoteWriteBody(t, "e2e_refused", now, 1))))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		require.True(t, strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer"))
	})
	t.Run("remote write and push are stored", func(t *testing.T) {
		for i, path := range []string{"/api/v1/write", "/api/v1/push"} {
			resp, err := http.DefaultClient.Do(newRemoteWrite(t, p.url(path), token, bytes.NewReader(remoteWriteBody(t, "e2e_rw", now+int64(i), float64(i)))))
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
		}
	})
	t.Run("native write is stored", func(t *testing.T) {
		body := fmt.Sprintf(`{"metrics":[{"name":"e2e_native","dimensions":{"job":"e2e"},"value":2.5,"timestamp":%d}]}`, now)
		req, err := http.NewRequest(http.MethodPost, p.url("/api/v1/metrics"), strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		require.Contains(t, string(b), `"accepted":1`)
	})
	t.Run("the query API reads back, for the tenant only", func(t *testing.T) {
		readOnly := e2eToken(t, secret, "acme", "metrics:read")
		other := e2eToken(t, secret, "other", "metrics:read")
		writeOnly := e2eToken(t, secret, "acme", "metrics:write")
		q := fmt.Sprintf("/api/v1/query?query=e2e_rw&time=%.3f", float64(now+1)/1000)
		for _, tc := range []struct {
			path, token string
			status      int
			want        string
		}{
			{q, readOnly, http.StatusOK, `"value":[` + fmt.Sprintf("%.3f", float64(now+1)/1000) + `,"1"]`},
			{"/prometheus" + q, readOnly, http.StatusOK, `"__name__":"e2e_rw"`},
			{q, other, http.StatusOK, `"result":[]`},
			{q, "", http.StatusUnauthorized, ""},
			{q, writeOnly, http.StatusForbidden, ""},
			{"/api/v1/label/job/values", readOnly, http.StatusOK, `"data":["e2e"]`},
		} {
			req, err := http.NewRequest(http.MethodGet, p.url(tc.path), nil)
			require.NoError(t, err)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, tc.status, resp.StatusCode, "%s: %s", tc.path, b)
			require.Contains(t, string(b), tc.want, tc.path)
			require.NotContains(t, string(b), tenancy.Label)
		}
	})
	t.Run("remote read reads back", func(t *testing.T) {
		code, dec := remoteRead(t, p, token, now, &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "e2e_rw"})
		require.Equal(t, http.StatusOK, code, string(dec))
		var out prompb.ReadResponse
		require.NoError(t, out.Unmarshal(dec))
		require.Len(t, out.Results, 1)
		require.Len(t, out.Results[0].Timeseries, 1)
		require.Equal(t, []prompb.Sample{{Timestamp: now, Value: 0}, {Timestamp: now + 1, Value: 1}}, out.Results[0].Timeseries[0].Samples)
	})
	operator := e2eToken(t, secret, "ops", "operator")
	t.Run("metrics count the requests", func(t *testing.T) {
		code, b := apiGet(t, p.url(""), "/metrics", operator)
		require.Equal(t, http.StatusOK, code, string(b))
		require.Contains(t, string(b), `luminate_http_requests_total{code="204",route="/api/v1/write"} 1`)
		require.Contains(t, string(b), `luminate_http_requests_total{code="401",route="/api/v1/write"} 1`)
		require.Contains(t, string(b), "luminate_build_info{")
		require.Contains(t, string(b), "go_goroutines ")
		require.Contains(t, string(b), "process_resident_memory_bytes ")
	})
	t.Run("a second server on the same data directory fails clearly", func(t *testing.T) {
		second := start(t, args...)
		require.Equal(t, 1, second.wait())
		require.Contains(t, second.stderr(), "data directory is in use by another luminate process")
		require.Contains(t, second.stderr(), data)
	})
	t.Run("the token is never logged", func(t *testing.T) {
		require.NotContains(t, p.stderr(), token[strings.LastIndexByte(token, '.')+1:])
	})

	// A request still streaming its body when SIGTERM arrives completes
	// before the server exits, and what it carried is stored.
	pr, pw := io.Pipe()
	type result struct {
		status int
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(newRemoteWrite(t, p.url("/api/v1/write"), token, pr))
		if err != nil {
			inflight <- result{err: err}
			return
		}
		resp.Body.Close()
		inflight <- result{status: resp.StatusCode}
	}()
	body := remoteWriteBody(t, "e2e_inflight", now, 42)
	_, err = pw.Write(body[:len(body)/2])
	require.NoError(t, err)
	// The server has the request once it counts it in flight (the scrape
	// counts itself too); before that, a SIGTERM could beat it to the
	// accept and the test would check nothing.
	proctest.Eventually(t, waitTimeout, func() (bool, string) {
		_, b := apiGet(t, p.url(""), "/metrics", operator)
		return strings.Contains(string(b), "\nluminate_http_requests_in_flight 2\n"), "not counted in flight yet"
	}, "the streaming request is in flight")
	require.NoError(t, p.Cmd.Process.Signal(syscall.SIGTERM))
	require.NotEmpty(t, p.waitLog("shutting down"))
	_, err = pw.Write(body[len(body)/2:])
	require.NoError(t, err)
	require.NoError(t, pw.Close())
	r := <-inflight
	require.NoError(t, r.err)
	require.Equal(t, http.StatusNoContent, r.status)

	require.Equal(t, 0, p.wait(), p.stderr())
	require.Contains(t, p.stderr(), "luminate stopped")

	// Everything acknowledged is in the store, for the tenant that wrote it only.
	store := openTestStore(t, data)
	require.Equal(t, map[int64]float64{now: 0, now + 1: 1}, samples(t, store, "acme", "e2e_rw"))
	require.Equal(t, map[int64]float64{now: 2.5}, samples(t, store, "acme", "e2e_native"))
	require.Equal(t, map[int64]float64{now: 42}, samples(t, store, "acme", "e2e_inflight"))
	require.Empty(t, samples(t, store, "dev", "e2e_rw"))
	require.Empty(t, samples(t, store, "acme", "e2e_refused"))
}

func TestServeRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"no key and auth not disabled", nil, []string{"no key to verify tokens", "--auth.disabled", "luminate token"}},
		{"unknown backend", []string{"--auth.disabled", "--storage.backend=cassandra"}, []string{`--storage.backend="cassandra"`}},
		{"bad log level", []string{"--auth.disabled", "--log.level=loud"}, []string{`--log.level="loud"`}},
		{"bad retention", []string{"--auth.disabled", "--storage.retention=forever"}, []string{"storage.retention"}},
		{"dev secret without a file", []string{"--auth.jwt.create-dev-secret"}, []string{"--auth.jwt.create-dev-secret needs --auth.jwt.hmac-secret-file"}},
		{"positional argument", []string{"--auth.disabled", "extra"}, []string{`unexpected argument "extra"`}},
		{"unknown flag", []string{"--no-such-flag"}, []string{"flag provided but not defined: -no-such-flag"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--storage.badger.path=" + filepath.Join(dir, "never")}, tc.args...)
			code, stdout, stderr := runCLI(args...)
			require.Equal(t, 2, code, stderr)
			require.Empty(t, stdout)
			for _, w := range tc.want {
				require.Contains(t, stderr, w)
			}
			require.NoDirExists(t, filepath.Join(dir, "never"), "nothing is created before the configuration is valid")
		})
	}
}

func TestServeConfigFile(t *testing.T) {
	dir := t.TempDir()
	fromFile, fromFlag := filepath.Join(dir, "from-file"), filepath.Join(dir, "from-flag")
	cfgPath := filepath.Join(dir, "luminate.yml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
http:
  listen-address: 127.0.0.1:0
storage:
  retention: 2w
  badger:
    path: %s
auth.disabled: true
log.format: json
`, fromFile)), 0o600))

	t.Run("file applies", func(t *testing.T) {
		p := start(t, "serve", "--config.file="+cfgPath)
		require.NotEmpty(t, p.addr, p.stderr())
		require.DirExists(t, fromFile)
		require.NoError(t, p.Cmd.Process.Signal(syscall.SIGINT))
		require.Equal(t, 0, p.wait(), p.stderr())
	})
	t.Run("flags win", func(t *testing.T) {
		p := start(t, "serve", "--config.file="+cfgPath, "--storage.badger.path="+fromFlag)
		require.NotEmpty(t, p.addr, p.stderr())
		require.DirExists(t, fromFlag)
		require.NoError(t, p.Cmd.Process.Signal(syscall.SIGTERM))
		require.Equal(t, 0, p.wait(), p.stderr())
	})
	t.Run("unknown key is an error naming it", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.yml")
		require.NoError(t, os.WriteFile(bad, []byte("storage:\n  badger:\n    pathh: /x\n"), 0o600))
		code, _, stderr := runCLI("serve", "--config.file="+bad)
		require.Equal(t, 2, code)
		require.Contains(t, stderr, `unknown key "storage.badger.pathh"`)
	})
	t.Run("missing file", func(t *testing.T) {
		code, _, stderr := runCLI("serve", "--config.file="+filepath.Join(dir, "missing.yml"))
		require.Equal(t, 2, code)
		require.Contains(t, stderr, "missing.yml")
	})
}

func TestToken(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	_, err := tenancy.EnsureDevSecret(secretFile)
	require.NoError(t, err)
	short := filepath.Join(dir, "short")
	require.NoError(t, os.WriteFile(short, []byte("too short\n"), 0o600))
	verifier, err := tenancy.NewVerifier(tenancy.AuthConfig{HMACSecretFile: secretFile, Issuer: "luminate-test"}, nil, nil)
	require.NoError(t, err)

	for _, tc := range []struct {
		name       string
		args       []string
		wantCode   int
		wantErr    string
		wantTenant tenancy.ID
		wantScopes []tenancy.Scope
	}{
		{"default scopes", []string{"--tenant=acme"}, 0, "", "acme", []tenancy.Scope{tenancy.ScopeWrite, tenancy.ScopeRead}},
		{"given scopes", []string{"--tenant=team.a-1", "--scopes=metrics:read"}, 0, "", "team.a-1", []tenancy.Scope{tenancy.ScopeRead}},
		{"missing tenant", nil, 2, "--tenant is required", "", nil},
		{"invalid tenant", []string{"--tenant=a b"}, 2, "invalid tenant id", "", nil},
		{"unknown scope", []string{"--tenant=acme", "--scopes=metrics:delete"}, 1, `unknown scope "metrics:delete"`, "", nil},
		{"negative ttl", []string{"--tenant=acme", "--ttl=-1h"}, 1, "must be positive", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"token", "--auth.jwt.hmac-secret-file=" + secretFile, "--auth.jwt.issuer=luminate-test"}, tc.args...)
			code, stdout, stderr := runCLI(args...)
			require.Equal(t, tc.wantCode, code, stderr)
			if tc.wantCode != 0 {
				require.Empty(t, stdout)
				require.Contains(t, stderr, tc.wantErr)
				return
			}
			require.Empty(t, stderr)
			p, err := verifier.Verify(strings.TrimSuffix(stdout, "\n"))
			require.NoError(t, err)
			require.Equal(t, tc.wantTenant, p.Tenant)
			require.ElementsMatch(t, tc.wantScopes, p.Scopes)
		})
	}

	t.Run("no key", func(t *testing.T) {
		code, _, stderr := runCLI("token", "--tenant=acme")
		require.Equal(t, 2, code)
		require.Contains(t, stderr, "--auth.jwt.hmac-secret-file")
	})
	t.Run("secret too short", func(t *testing.T) {
		code, _, stderr := runCLI("token", "--tenant=acme", "--auth.jwt.hmac-secret-file="+short)
		require.Equal(t, 1, code)
		require.Contains(t, stderr, "need at least 32")
	})
}

func TestCommands(t *testing.T) {
	code, stdout, _ := runCLI("version")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "luminate, version")

	code, _, stderr := runCLI("frobnicate")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, `unknown command "frobnicate"`)

	code, _, stderr = runCLI()
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "luminate serve")

	code, stdout, _ = runCLI("help")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "luminate token")

	code, _, stderr = runCLI("serve", "--help")
	require.Equal(t, 0, code)
	require.Contains(t, stderr, "-storage.badger.path")
}

// TestServeClickHouse runs serve on the ClickHouse backend against a real
// clickhouse-server: a remote write is acknowledged and, after a graceful
// shutdown, found in ClickHouse for its tenant.
func TestServeClickHouse(t *testing.T) {
	dsn := chtest.Start(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "hmac.secret")
	_, err := tenancy.EnsureDevSecret(secret)
	require.NoError(t, err)
	p := start(t, "serve", "--log.format=json", "--http.listen-address=127.0.0.1:0",
		"--storage.backend=clickhouse", "--storage.clickhouse.dsn="+dsn, "--storage.clickhouse.database=e2e",
		"--auth.jwt.hmac-secret-file="+secret)
	require.NotEmpty(t, p.addr, p.stderr())

	resp, err := http.Get(p.url("/-/ready"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	code, token, errOut := runCLI("token", "--auth.jwt.hmac-secret-file="+secret, "--tenant=acme")
	require.Equal(t, 0, code, errOut)
	now := time.Now().UnixMilli()
	resp, err = http.DefaultClient.Do(newRemoteWrite(t, p.url("/api/v1/write"), strings.TrimSpace(token), bytes.NewReader(remoteWriteBody(t, "e2e_ch", now, 7))))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))

	require.NoError(t, p.Cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.wait(), p.stderr())

	cfg := clickhouse.DefaultConfig()
	cfg.DSN, cfg.Database = dsn, "e2e"
	store, err := clickhouse.New(cfg, nil, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, store.Close()) }()
	require.Equal(t, map[int64]float64{now: 7}, samples(t, store, "acme", "e2e_ch"))
	require.Empty(t, samples(t, store, "other", "e2e_ch"))
}

// TestServeClickHouseOutage kills the ClickHouse server under a running
// luminate: remote writes are answered 503 with Retry-After (senders
// retry), the health report says the storage is down and /-/ready is not
// ready; once ClickHouse is back, luminate reconnects by itself and writes
// are acknowledged again, with nothing acknowledged lost.
func TestServeClickHouseOutage(t *testing.T) {
	srv := chtest.New(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "hmac.secret")
	_, err := tenancy.EnsureDevSecret(secret)
	require.NoError(t, err)
	p := start(t, "serve", "--log.format=json", "--http.listen-address=127.0.0.1:0",
		"--storage.backend=clickhouse", "--storage.clickhouse.dsn="+srv.DSN(), "--storage.clickhouse.database=outage",
		"--auth.jwt.hmac-secret-file="+secret)
	require.NotEmpty(t, p.addr, p.stderr())
	token := e2eToken(t, secret, "acme", "metrics:read,metrics:write")
	write := func(ts int64, v float64) *http.Response {
		resp, err := http.DefaultClient.Do(newRemoteWrite(t, p.url("/api/v1/write"), token, bytes.NewReader(remoteWriteBody(t, "outage", ts, v))))
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	status := func(path string) int {
		resp, err := http.Get(p.url(path))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	now := time.Now().UnixMilli()
	require.Equal(t, http.StatusNoContent, write(now, 1).StatusCode)

	srv.Kill() // a crashed server: a graceful stop waits for luminate's idle connections
	resp := write(now+1000, 2)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
	require.Equal(t, http.StatusServiceUnavailable, status("/-/ready"))
	require.Equal(t, http.StatusServiceUnavailable, status("/api/v1/status/health"))
	require.Equal(t, http.StatusOK, status("/-/healthy"), "the process itself is alive")

	srv.Start()
	require.Eventually(t, func() bool { return write(now+2000, 3).StatusCode == http.StatusNoContent }, time.Minute, 200*time.Millisecond)
	require.Equal(t, http.StatusOK, status("/-/ready"))

	require.NoError(t, p.Cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.wait(), p.stderr())
	cfg := clickhouse.DefaultConfig()
	cfg.DSN, cfg.Database = srv.DSN(), "outage"
	store, err := clickhouse.New(cfg, nil, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, store.Close()) }()
	got := samples(t, store, "acme", "outage")
	require.Equal(t, 1.0, got[now])
	require.Equal(t, 3.0, got[now+2000])
}

// TestServePprof: --debug.pprof serves the runtime's profiles to operator
// tokens only, not to a tenant's admin; without it there is no
// /debug/pprof/.
func TestServePprof(t *testing.T) {
	on, secret := startAuthLuminate(t, "--debug.pprof")
	operator := e2eToken(t, secret, "ops", "operator")
	code, body := apiGet(t, on.url(""), "/debug/pprof/", operator)
	require.Equal(t, http.StatusOK, code, string(body))
	require.Contains(t, string(body), "goroutine")
	code, body = apiGet(t, on.url(""), "/debug/pprof/goroutine?debug=1", operator)
	require.Equal(t, http.StatusOK, code, string(body))
	require.Contains(t, string(body), "goroutine profile:")
	for _, scopes := range []string{"admin", "metrics:write,metrics:read"} {
		code, _ = apiGet(t, on.url(""), "/debug/pprof/", e2eToken(t, secret, "acme", scopes))
		require.Equal(t, http.StatusForbidden, code, "a tenant's %s is not enough", scopes)
	}
	code, _ = apiGet(t, on.url(""), "/debug/pprof/", "")
	require.Equal(t, http.StatusUnauthorized, code)

	off, secret := startAuthLuminate(t)
	code, _ = apiGet(t, off.url(""), "/debug/pprof/", e2eToken(t, secret, "ops", "operator"))
	require.Equal(t, http.StatusNotFound, code, "off by default")
}

// TestServeWhatStrangersSee: on the public address /metrics (which names
// every tenant) wants an operator token and the health endpoints say only
// ok, degraded or down; --http.internal-listen-address serves /metrics,
// the detailed health and the profiles without a token, and nothing else.
func TestServeWhatStrangersSee(t *testing.T) {
	lum, secret := startAuthLuminate(t, "--http.internal-listen-address=127.0.0.1:0", "--debug.pprof")
	line := lum.waitLog(`"msg":"listening internally"`)
	require.NotEmpty(t, line, lum.stderr())
	var l struct{ Address string }
	require.NoError(t, json.Unmarshal([]byte(line), &l))
	internal := "http://" + l.Address
	require.NotEqual(t, lum.url(""), internal)

	writer := e2eToken(t, secret, "tenant-x9", "metrics:write")
	resp, err := http.DefaultClient.Do(newRemoteWrite(t, lum.url("/api/v1/write"), writer, bytes.NewReader(remoteWriteBody(t, "strangers", time.Now().UnixMilli(), 1))))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)

	code, body := apiGet(t, lum.url(""), "/metrics", "")
	require.Equal(t, http.StatusUnauthorized, code)
	require.NotContains(t, string(body), "tenant-x9")
	code, body = apiGet(t, lum.url(""), "/metrics", e2eToken(t, secret, "other", "admin"))
	require.Equal(t, http.StatusForbidden, code)
	require.NotContains(t, string(body), "tenant-x9")
	code, body = apiGet(t, lum.url(""), "/metrics", e2eToken(t, secret, "ops", "operator"))
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(body), `tenant="tenant-x9"`)

	code, body = apiGet(t, lum.url(""), "/api/v1/status/health", "")
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"status":"ok"}`, string(body))

	code, body = apiGet(t, internal, "/metrics", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(body), `tenant="tenant-x9"`)
	code, body = apiGet(t, internal, "/api/v1/status/health", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(body), `"storage_write"`)
	code, _ = apiGet(t, internal, "/debug/pprof/goroutine?debug=1", "")
	require.Equal(t, http.StatusOK, code)
	code, _ = apiGet(t, internal, "/api/v1/labels", "")
	require.Equal(t, http.StatusNotFound, code, "no tenant data on the internal listener")

	require.NoError(t, lum.Cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, lum.wait(), lum.stderr())
}

// TestServeSlowBody: --http.read-timeout cuts off a request whose body
// does not arrive in time: 408, connection closed.
func TestServeSlowBody(t *testing.T) {
	lum, secret := startAuthLuminate(t, "--http.read-timeout=500ms")
	token := e2eToken(t, secret, "acme", "metrics:write,metrics:read")
	// Remote read sets a body deadline of its own (30s by default): it
	// must not outlast the server's.
	for _, tc := range []struct {
		path, headers string
		status        int
		want          string
	}{
		{"/api/v1/write", "Content-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\n", http.StatusRequestTimeout, "--http.read-timeout"},
		{"/api/v1/metrics", "Content-Type: application/json\r\n", http.StatusRequestTimeout, "--http.read-timeout"},
		{"/api/v1/read", "Content-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\n", http.StatusBadRequest, "--remote-read.body-timeout"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			conn, err := net.Dial("tcp", lum.addr)
			require.NoError(t, err)
			defer conn.Close()
			start := time.Now()
			_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: luminate\r\nAuthorization: Bearer %s\r\n%sContent-Length: 4096\r\n\r\nxx",
				tc.path, token, tc.headers)
			require.NoError(t, err)
			require.NoError(t, conn.SetReadDeadline(time.Now().Add(waitTimeout)))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			require.Equal(t, tc.status, resp.StatusCode, string(b))
			require.Contains(t, string(b), tc.want)
			require.Less(t, time.Since(start), 10*time.Second)
		})
	}
}

// TestServeRefusalEnvelopes: requests the router refuses before they reach
// an API get that API's error envelope: Prometheus' on the query API
// (Grafana and promtool read errorType and error), the native one on
// native JSON queries.
func TestServeRefusalEnvelopes(t *testing.T) {
	lum, secret := startAuthLuminate(t)
	writer := e2eToken(t, secret, "acme", "metrics:write")
	for _, tc := range []struct {
		name, method, path, contentType, body, token string
		status                                       int
		prometheus                                   bool
	}{
		{"query_range without token", http.MethodGet, "/api/v1/query_range?query=up&start=0&end=1&step=1", "", "", "", http.StatusUnauthorized, true},
		{"labels without the read scope", http.MethodGet, "/api/v1/labels", "", "", writer, http.StatusForbidden, true},
		{"query form post without token", http.MethodPost, "/api/v1/query", "application/x-www-form-urlencoded", "query=up", "", http.StatusUnauthorized, true},
		{"prefixed series without token", http.MethodGet, "/prometheus/api/v1/series?match[]=up", "", "", "", http.StatusUnauthorized, true},
		{"native query without token", http.MethodPost, "/api/v1/query", "application/json", `{"queryType":"metrics"}`, "", http.StatusUnauthorized, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, lum.url(tc.path), strings.NewReader(tc.body))
			require.NoError(t, err)
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			raw, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, tc.status, resp.StatusCode, string(raw))
			var body map[string]any
			require.NoError(t, json.Unmarshal(raw, &body), string(raw))
			require.Equal(t, "error", body["status"])
			if tc.prometheus {
				require.NotEmpty(t, body["errorType"], string(raw))
				require.IsType(t, "", body["error"], string(raw))
			} else {
				require.Nil(t, body["errorType"], string(raw))
				require.IsType(t, map[string]any{}, body["error"], string(raw))
			}
		})
	}
}
