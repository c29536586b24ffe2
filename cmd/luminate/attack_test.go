package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
	"github.com/luminate-io/luminate/tenancy"
)

// The bounds TestAttack holds luminate to; see its comment.
const (
	attackAnswerDeadline = 5 * time.Second
	attackSlowBodyCutoff = 15 * time.Second // the server may wait this long for a trickling body (it runs with --remote-read.body-timeout=10s)
	attackPromptRead     = 2 * time.Second  // tenant A's remote read, while B attacks
	// One OTLP request of 1,000,001 points (20 MB inflated) took 944 MiB
	// to be refused until its points were counted before decoding
	// (otlp/decoded.go). The single cases now stay under 640 MiB; the
	// mixed run, every refused attack at once (two 64 MiB decompression
	// bombs and sixteen 8 MiB ones among them, within
	// --ingest.max-inflight-bytes and --http.max-body-bytes-in-flight),
	// peaked at 757 MiB in one run and 1,052 MiB in another on the same
	// code, so the bound leaves it that margin.
	attackPeakRSS = 1280 << 20
	attackKillRSS = 2 << 30
	attackIdleCPU = 250 * time.Millisecond
	// Measured here during the mixed run: A's p99 55 to 92 ms against 1 to
	// 7 ms quiet (the attacker's 320 MiB of bombs, its load generator and
	// luminate share 2 cores), so 2x the quiet p99 itself cannot hold on
	// this machine; the floor keeps the bound at 150 ms.
	attackLatencyFloor = 75 * time.Millisecond
	// How long a case that left luminate busy may take to settle before
	// the next one; only failing cases wait.
	attackSettle = 5 * time.Second

	attackTenantA = tenancy.ID("attack-quiet-a")
	attackTenantB = tenancy.ID("attack-noisy-b")
	attackSeriesA = 200    // tenant A's series, its normal queries read them all
	attackSeriesB = 21_000 // tenant B's series, its remote reads ask for all of them 100 times
	attackBurstB  = 25_000 // tenant B's ingestion_burst override
	// More slow remote reads than --remote-read.concurrent-limit (10).
	attackSlowUploads = 12
	attackQueriesA    = 100 // so that p99 is the second slowest, not the slowest
	attackReadsA      = 5
)

// userHZ is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100 on
// every Linux architecture Go supports).
const userHZ = 100

// attackServer is the luminate under attack: the process, restarted on the
// same data after the watchdog (or a crash) ended it, and the tokens of
// both tenants.
type attackServer struct {
	args           []string
	dataDir        string
	p              *proc
	watch          *rssWatchdog
	tokenA, tokenB string
	tokenAdmin     string // reads /metrics, should it need a token
	tokenBAdmin    string // tenant B with the admin scope (delete_series)
	client         *http.Client
	now            int64 // ms, the timestamp the seeded samples end at
}

// TestAttack checks that no tenant can take Luminate down (issue #10), on
// both backends. A real `luminate serve`, on Badger and then on ClickHouse, is attacked by tenant B over HTTP on loopback,
// one attack class at a time and then all at once, while tenant A uses it
// normally.
//
// What "pass" means, for every attack:
//   - every request is answered within attackAnswerDeadline with a status
//     its case accepts (400..599, or exactly 413/400 where the right answer
//     is known); a slow body may instead be cut off by the server (status
//     or closed connection) within attackSlowBodyCutoff;
//   - the same process (same PID) still answers /-/healthy 200 afterwards;
//   - its peak RSS (VmHWM, reset through /proc/PID/clear_refs before each
//     case) stays under attackPeakRSS;
//   - one second after the last answer it is idle: it uses less than
//     attackIdleCPU of CPU (utime+stime) in the following second.
//
// While tenant B trickles the bodies of more remote reads than
// --remote-read.concurrent-limit, tenant A's remote reads succeed (200 with
// its series) within attackPromptRead. In the mixed run every attack is
// sent at the same moment, with those slow uploads, while tenant A runs
// attackQueriesA instant queries 20ms apart and attackReadsA remote reads:
// every attack gets its answer as above, A's remote reads succeed within
// attackAnswerDeadline, and (on Badger) A's query p99 stays within 2x its quiet p99,
// counting a quiet p99 below attackLatencyFloor as the floor (so the bound
// is never under 150ms: the machine has 2 busy cores).
//
// The machine is protected by a watchdog that kills luminate once its RSS
// passes attackKillRSS (and fails the case); luminate is then restarted on
// the same data so that the remaining cases still run and the log names
// every failing case. GOMEMLIMIT is not set: it would turn a blow-up into a
// garbage collector spin instead of showing it.
//
// Run it with: go test -count=1 -run TestAttack -v ./cmd/luminate/
func TestAttack(t *testing.T) {
	if testing.Short() {
		t.Skip("attack test: starts luminate and attacks it for about a minute")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		msg := "attack test needs Linux /proc to measure luminate: " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dsn := chtest.Start(t)
	for _, backend := range []struct {
		name  string
		flags []string
		// latency: whether A's query p99 is held to its bound. On
		// ClickHouse, A's queries and B's remote reads share one
		// clickhouse-server on the same 2 cores, which schedules them
		// without regard to tenants: A's p99 there is logged only
		// (84 to 320 ms in the runs of issue 10).
		latency bool
	}{
		{"badger", nil, true},
		{"clickhouse", []string{"--storage.backend=clickhouse", "--storage.clickhouse.dsn=" + dsn, "--storage.clickhouse.database=attack"}, false},
	} {
		t.Run(backend.name, func(t *testing.T) { attack(t, backend.flags, backend.latency) })
	}
}

// attack runs every attack against a luminate started with flags; latency
// says whether the mixed run holds A's query p99 to its bound.
func attack(t *testing.T, flags []string, latency bool) {
	s := newAttackServer(t, flags)
	s.seed(t)
	s.waitIdle(t)

	t.Run("visibility/metrics", s.metricsHidesTenants)
	t.Run("visibility/health", s.healthHidesDataPath)

	quiet := s.queriesA(t, attackQueriesA, 0)
	quietP99 := p99(quiet.latencies)
	require.Empty(t, quiet.failures, "tenant A's queries fail on a quiet server")
	t.Logf("tenant A quiet: %d queries, p99 %s", len(quiet.latencies), quietP99)

	cases := append(attackCases(t, s), fidelityAttackCases(t, s)...)
	cases = append(cases, operatorAttackCases(s)...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { s.runCase(t, c) })
		s.ensureUp(t)
	}
	t.Run("isolation/delete_series", s.deletionIsolated)
	t.Run("remote read slow uploads", s.slowUploads)
	s.ensureUp(t)
	t.Run("remote write stalled uploads", s.stalledWrites)
	s.ensureUp(t)
	// The mixed run sends the attacks that must be refused; the heavy
	// writes a tenant may legitimately make (anyAnswer) are held to their
	// bounds one at a time above.
	var refused []attackCase
	for _, c := range cases {
		if c.accept.lo >= 400 {
			refused = append(refused, c)
		}
	}
	t.Run("mixed", func(t *testing.T) { s.mixed(t, refused, quietP99, latency) })
}

func newAttackServer(t *testing.T, flags []string) *attackServer {
	dir := t.TempDir()
	secret := filepath.Join(dir, "hmac.secret")
	_, err := tenancy.EnsureDevSecret(secret)
	require.NoError(t, err)
	overrides := writeFile(t, dir, "overrides.yml", fmt.Sprintf("overrides:\n  %s:\n    ingestion_burst: %d\n    max_delete_series: %d\n", attackTenantB, attackBurstB, attackDeleteLimitB))
	s := &attackServer{
		dataDir: filepath.Join(dir, "data"),
		client:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		now:     time.Now().UnixMilli(),
	}
	s.args = []string{"serve", "--log.format=json", "--http.listen-address=127.0.0.1:0",
		"--storage.badger.path=" + s.dataDir, "--auth.jwt.hmac-secret-file=" + secret, "--limits.overrides-file=" + overrides}
	// A body deadline shorter than the default 30s, for a shorter test.
	s.args = append(s.args, "--remote-read.body-timeout=10s")
	s.args = append(s.args, flags...)
	s.tokenA = e2eToken(t, secret, attackTenantA, "metrics:read,metrics:write")
	s.tokenB = e2eToken(t, secret, attackTenantB, "metrics:read,metrics:write")
	s.tokenAdmin = e2eToken(t, secret, "attack-ops", "admin")
	s.tokenBAdmin = e2eToken(t, secret, attackTenantB, "metrics:read,admin")
	s.start(t)
	return s
}

// start starts luminate under a new watchdog. Only the top-level test
// calls it: the process lives as long as TestAttack.
func (s *attackServer) start(t *testing.T) {
	p := start(t, s.args...)
	require.NotEmpty(t, p.addr, p.stderr())
	s.p = p
	s.watch = newRSSWatchdog(p, attackKillRSS)
	t.Logf("luminate pid %d listens on %s", p.Cmd.Process.Pid, p.addr)
}

// ensureUp restarts luminate if the last case ended it; that case has
// already failed.
func (s *attackServer) ensureUp(t *testing.T) {
	if s.alive() {
		return
	}
	t.Logf("restarting luminate on the same data for the next cases")
	s.start(t)
}

func (s *attackServer) alive() bool {
	select {
	case <-s.p.Done():
		return false
	default:
		return true
	}
}

func (s *attackServer) pid() int { return s.p.Cmd.Process.Pid }

// deathReport says how the process ended: the watchdog's RSS, or its
// fatal error or panic and the first Luminate frames of its stack.
func (s *attackServer) deathReport() string {
	if rss := s.watch.killedAt.Load(); rss > 0 {
		return fmt.Sprintf("killed by the watchdog at %d MiB RSS (ceiling %d MiB)", rss>>20, attackKillRSS>>20)
	}
	lines := strings.Split(s.p.stderr(), "\n")
	var report []string
	for i, l := range lines {
		if !strings.HasPrefix(l, "fatal error:") && !strings.HasPrefix(l, "panic:") {
			continue
		}
		report = append(report, l)
		for _, f := range lines[i+1:] {
			if len(report) == 4 {
				break
			}
			if strings.HasPrefix(f, "github.com/luminate-io/") {
				if i := strings.LastIndexByte(f, '('); i > 0 {
					f = f[:i]
				}
				report = append(report, "in "+f)
			}
		}
		break
	}
	if len(report) == 0 {
		report = append(report, "no fatal error or panic logged")
	}
	return fmt.Sprintf("exited by itself (%v): %s", s.p.Err(), strings.Join(report, "; "))
}

// rssWatchdog kills a process whose RSS passes a ceiling, so that a
// failing run cannot take the machine down.
type rssWatchdog struct {
	killedAt atomic.Int64 // RSS at which it killed, 0 if it did not
}

func newRSSWatchdog(p *proc, ceiling int64) *rssWatchdog {
	w := &rssWatchdog{}
	pid := p.Cmd.Process.Pid
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.Done():
				return
			case <-tick.C:
			}
			rss, err := procStatusBytes(pid, "VmRSS")
			if err != nil {
				continue // it is exiting
			}
			if rss > ceiling {
				w.killedAt.Store(rss)
				_ = p.Cmd.Process.Kill()
				return
			}
		}
	}()
	return w
}

// procStatusBytes reads a "kB" field (VmRSS, VmHWM) of /proc/PID/status.
func procStatusBytes(pid int, field string) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// procCPU is the CPU time (utime+stime) pid has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields after it do not.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, b)
	}
	// f[0] is field 3 (state): utime and stime are fields 14 and 15.
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// resetPeak sets VmHWM back to the current RSS, so that it measures the
// next case only.
func (s *attackServer) resetPeak(t testing.TB) {
	if err := os.WriteFile("/proc/"+strconv.Itoa(s.pid())+"/clear_refs", []byte("5"), 0); err != nil {
		t.Logf("cannot reset the peak RSS (VmHWM then covers the process' life): %v", err)
	}
}

// idleCPU waits until one second after answered, then returns the CPU
// luminate uses in the next second.
func (s *attackServer) idleCPU(answered time.Time) (time.Duration, error) {
	time.Sleep(time.Until(answered.Add(time.Second)))
	c1, err := procCPU(s.pid())
	if err != nil {
		return 0, err
	}
	time.Sleep(time.Second)
	c2, err := procCPU(s.pid())
	return c2 - c1, err
}

// waitIdle waits, at most 20 s, for luminate to settle after seeding
// (Badger flushes), so that the first case's CPU is the attack's.
func (s *attackServer) waitIdle(t *testing.T) {
	for i := 0; i < 20; i++ {
		cpu, err := s.idleCPU(time.Now().Add(-time.Second))
		require.NoError(t, err)
		if cpu < attackIdleCPU {
			return
		}
		t.Logf("luminate still busy after seeding: %s CPU in 1s", cpu)
	}
	t.Fatalf("luminate does not settle after seeding")
}

// get GETs path with an optional token, bounded by attackAnswerDeadline.
func (s *attackServer) get(path, token string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), attackAnswerDeadline)
	defer cancel()
	resp, err := s.client.Do(s.request(ctx, http.MethodGet, path, token, nil))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// healthy asks /-/healthy.
func (s *attackServer) healthy() error {
	code, _, err := s.get("/-/healthy", "")
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("/-/healthy answered %d", code)
	}
	return err
}

// checkSurvived checks what every case must leave behind: the same process,
// healthy, its peak RSS under attackPeakRSS, and idle one second after
// answered.
func (s *attackServer) checkSurvived(t *testing.T, answered time.Time) {
	t.Helper()
	if !s.alive() {
		t.Errorf("luminate pid %d died: %s", s.pid(), s.deathReport())
		return
	}
	if err := s.healthy(); err != nil {
		t.Errorf("luminate pid %d is not healthy: %v", s.pid(), err)
	}
	peak, err := procStatusBytes(s.pid(), "VmHWM")
	if err == nil && peak >= attackPeakRSS {
		t.Errorf("peak RSS %d MiB, want under %d MiB", peak>>20, attackPeakRSS>>20)
	}
	cpu, cerr := s.idleCPU(answered)
	if !s.alive() {
		t.Errorf("luminate pid %d died after answering: %s", s.pid(), s.deathReport())
		return
	}
	t.Logf("pid %d alive, peak RSS %d MiB, %s CPU in the second after the answer", s.pid(), peak>>20, cpu)
	if cerr == nil && cpu >= attackIdleCPU {
		t.Errorf("still busy a second after the answer: %s of CPU in the next second, want under %s", cpu, attackIdleCPU)
		s.settle(t)
	}
}

// settle waits, at most attackSettle, for luminate to finish the work a
// failed case left running, so that the next case is measured alone and a
// crash it leads to is reported in the case that caused it.
func (s *attackServer) settle(t *testing.T) {
	t.Helper()
	start := time.Now()
	for time.Since(start) < attackSettle {
		cpu, err := s.idleCPU(time.Now().Add(-time.Second))
		switch {
		case !s.alive():
			t.Errorf("luminate pid %d died %s after the answer, still busy with the attack: %s", s.pid(), time.Since(start).Round(time.Second), s.deathReport())
			return
		case err != nil:
			return
		case cpu < attackIdleCPU:
			t.Logf("settled %s after the answer", time.Since(start).Round(time.Second))
			return
		}
	}
	t.Logf("still busy %s after the answer; going on", attackSettle)
}

// statuses is the set of statuses a case accepts.
type statuses struct {
	lo, hi int // inclusive
	also   int // one more status accepted, 0 for none
}

func (a statuses) ok(code int) bool {
	return code >= a.lo && code <= a.hi || a.also != 0 && code == a.also
}

func (a statuses) String() string {
	s := fmt.Sprintf("%d..%d", a.lo, a.hi)
	if a.lo == a.hi {
		s = strconv.Itoa(a.lo)
	}
	if a.also != 0 {
		s += " or " + strconv.Itoa(a.also)
	}
	return s
}

var (
	anyError    = statuses{lo: 400, hi: 599}
	clientError = statuses{lo: 400, hi: 499}
	// clientErrorOrBusy is a client error, or 503 from the global bound
	// on write bytes in flight, which parallel bombs may reach together.
	clientErrorOrBusy = statuses{lo: 400, hi: 499, also: 503}
)

// attackCase is one attack: copies requests from build sent at once, each
// to be answered with a status in accept within attackAnswerDeadline.
type attackCase struct {
	name   string
	copies int // 1 when 0
	build  func(ctx context.Context) *http.Request
	accept statuses
}

// outcome is what one attack request got.
type outcome struct {
	status int
	body   string // its start
	err    error
	took   time.Duration
}

func (o outcome) String() string {
	if o.err != nil {
		return fmt.Sprintf("no answer after %s: %v", o.took.Round(time.Millisecond), o.err)
	}
	return fmt.Sprintf("%d after %s: %s", o.status, o.took.Round(time.Millisecond), strings.TrimSpace(o.body))
}

// send sends req, bounded by attackAnswerDeadline, and reads its answer.
func (s *attackServer) send(build func(context.Context) *http.Request) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), attackAnswerDeadline)
	defer cancel()
	start := time.Now()
	resp, err := s.client.Do(build(ctx))
	if err != nil {
		return outcome{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	head, err := io.ReadAll(io.LimitReader(resp.Body, 300))
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	return outcome{status: resp.StatusCode, body: string(head), err: err, took: time.Since(start)}
}

// sendAll sends the copies of c at once and returns their outcomes.
func (s *attackServer) sendAll(c attackCase) []outcome {
	n := max(c.copies, 1)
	out := make([]outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { out[i] = s.send(c.build) })
	}
	wg.Wait()
	return out
}

// checkOutcomes fails t for every outcome that is not an accepted answer.
func checkOutcomes(t *testing.T, name string, accept statuses, outs []outcome) {
	t.Helper()
	bad := 0
	for _, o := range outs {
		if o.err != nil || !accept.ok(o.status) {
			if bad++; bad <= 3 {
				t.Errorf("%s: want %s within %s, got %s", name, accept, attackAnswerDeadline, o)
			}
		}
	}
	if bad > 3 {
		t.Errorf("%s: %d of %d requests in all got no accepted answer", name, bad, len(outs))
	}
}

func (s *attackServer) runCase(t *testing.T, c attackCase) {
	s.resetPeak(t)
	outs := s.sendAll(c)
	answered := time.Now()
	checkOutcomes(t, c.name, c.accept, outs)
	t.Logf("%s: first answer %s", c.name, outs[0])
	s.checkSurvived(t, answered)
}

// attackCases are tenant B's attacks that each expect an error answer.
func attackCases(t *testing.T, s *attackServer) []attackCase {
	query := func(expr string) func(context.Context) *http.Request {
		return func(ctx context.Context) *http.Request {
			return s.request(ctx, http.MethodGet, "/api/v1/query?query="+url.QueryEscape(expr), s.tokenB, nil)
		}
	}
	// Forms are sent unescaped, as their size says: ( ) and - need no
	// escaping in a form value.
	form := func(expr string) func(context.Context) *http.Request {
		body := []byte("query=" + expr)
		return func(ctx context.Context) *http.Request {
			req := s.request(ctx, http.MethodPost, "/api/v1/query", s.tokenB, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return req
		}
	}
	write := func(contentType string, body []byte) func(context.Context) *http.Request {
		return func(ctx context.Context) *http.Request {
			req := s.request(ctx, http.MethodPost, "/api/v1/write", s.tokenB, bytes.NewReader(body))
			req.Header.Set("Content-Type", contentType)
			req.Header.Set("Content-Encoding", "snappy")
			return req
		}
	}
	const (
		rw1Type = "application/x-protobuf"
		rw2Type = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
	)
	allB := make([]*prompb.Query, 100)
	for i := range allB {
		allB[i] = &prompb.Query{StartTimestampMs: s.now - 3_600_000, EndTimestampMs: s.now + 60_000,
			Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "attack_b"}}}
	}
	readAllB := remoteReadBody(t, allB...)
	return []attackCase{
		{name: "promql count_over_time 1y:1ms", build: query("count_over_time(vector(1)[1y:1ms])"), accept: anyError},
		{name: "promql max_over_time 30d:1ms", build: query("max_over_time(vector(1)[30d:1ms])"), accept: anyError},
		{name: "promql abs nested 100000 deep", build: form(strings.Repeat("abs(", 100_000) + "vector(1)" + strings.Repeat(")", 100_000)), accept: anyError},
		{name: "promql 1000000 unary minus", build: form(strings.Repeat("-", 1_000_000) + "up"), accept: clientError},
		{name: "rw1 64MiB of empty series", build: write(rw1Type, snappy.Encode(nil, bytes.Repeat([]byte{0x0a, 0x00}, 32<<20))), accept: clientError},
		// TimeSeries{labels: [{}], samples: [{}]}, 6 bytes each.
		{name: "rw1 64MiB of series with an empty label and sample", build: write(rw1Type, snappy.Encode(nil, bytes.Repeat([]byte{0x0a, 0x04, 0x0a, 0x00, 0x12, 0x00}, (64<<20)/6))), accept: clientError},
		{name: "rw2 64MiB of label references", build: write(rw2Type, snappy.Encode(nil, rw2RefsBomb(64<<20))), accept: clientError},
		{name: "rw1 16 parallel 8MiB of empty series", copies: 16, build: write(rw1Type, snappy.Encode(nil, bytes.Repeat([]byte{0x0a, 0x00}, 4<<20))), accept: clientErrorOrBusy},
		// A request larger than the burst can never pass: 413, not a 429
		// the sender retries for ever.
		{name: "rw1 more samples than the ingestion burst", build: write(rw1Type, remoteWriteSeries(t, "attack_burst", 1, attackBurstB+5_000, s.now)), accept: statuses{lo: 413, hi: 413}},
		{name: "rw1 body sent as rw2", build: write(rw2Type, remoteWriteSeries(t, "attack_mislabelled", 10, 1, s.now)), accept: statuses{lo: 400, hi: 400}},
		{name: "remote read 100 queries of all series", build: func(ctx context.Context) *http.Request {
			return s.remoteRead(ctx, s.tokenB, bytes.NewReader(readAllB))
		}, accept: anyError},
	}
}

// rw2RefsBomb is a remote write 2.0 request of about size bytes: the
// symbol "" and one series whose packed labels_refs are all 0, each byte a
// uint32 reference and each pair a label.
func rw2RefsBomb(size int) []byte {
	refs := size - 32
	b := []byte{0x22, 0x00} // symbols: ""
	b = append(b, 0x2a)     // timeseries
	b = appendUvarint(b, uint64(refs+1+uvarintLen(uint64(refs))))
	b = append(b, 0x0a) // labels_refs, packed
	b = appendUvarint(b, uint64(refs))
	return append(b, make([]byte, refs)...)
}

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func uvarintLen(v uint64) int { return len(appendUvarint(nil, v)) }

// request builds a request to luminate; the paths are constants, so an
// error is a bug of the test.
func (s *attackServer) request(ctx context.Context, method, path, token string, body io.Reader) *http.Request {
	req, err := http.NewRequestWithContext(ctx, method, s.p.url(path), body)
	if err != nil {
		panic(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

func (s *attackServer) remoteRead(ctx context.Context, token string, body io.Reader) *http.Request {
	req := s.request(ctx, http.MethodPost, "/api/v1/read", token, body)
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Read-Version", "0.1.0")
	return req
}

func remoteReadBody(t testing.TB, queries ...*prompb.Query) []byte {
	raw, err := (&prompb.ReadRequest{Queries: queries}).Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, raw)
}

// remoteWriteSeries is a snappy remote write 1.0 body of n series of
// metric name (label i), each with perSeries samples a millisecond apart
// up to now.
func remoteWriteSeries(t testing.TB, name string, n, perSeries int, now int64) []byte {
	req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, n)}
	for i := range req.Timeseries {
		ss := make([]prompb.Sample, perSeries)
		for j := range ss {
			ss[j] = prompb.Sample{Timestamp: now - int64(perSeries-1-j), Value: float64(j)}
		}
		req.Timeseries[i] = prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: name}, {Name: "i", Value: strconv.Itoa(i)}},
			Samples: ss,
		}
	}
	raw, err := req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, raw)
}

// seed writes tenant A's and tenant B's series.
func (s *attackServer) seed(t *testing.T) {
	start := time.Now()
	write := func(token string, body []byte) {
		req := newRemoteWrite(t, s.p.url("/api/v1/write"), token, bytes.NewReader(body))
		resp, err := s.client.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusNoContent, resp.StatusCode, string(b))
	}
	write(s.tokenA, remoteWriteSeries(t, "attack_a", attackSeriesA, 10, s.now))
	// In batches under B's burst; label i repeats over batches, so each
	// batch has a label of its own.
	const batch = 5_000
	for i := 0; i < attackSeriesB; i += batch {
		n := min(batch, attackSeriesB-i)
		req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, n)}
		for j := range req.Timeseries {
			req.Timeseries[j] = prompb.TimeSeries{
				Labels:  []prompb.Label{{Name: "__name__", Value: "attack_b"}, {Name: "i", Value: strconv.Itoa(i + j)}, {Name: "pod", Value: fmt.Sprintf("pod-%08d-with-a-realistic-length", i+j)}},
				Samples: []prompb.Sample{{Timestamp: s.now, Value: float64(j)}},
			}
		}
		raw, err := req.Marshal()
		require.NoError(t, err)
		write(s.tokenB, snappy.Encode(nil, raw))
	}
	t.Logf("seeded %d series of tenant A and %d of tenant B in %s", attackSeriesA, attackSeriesB, time.Since(start).Round(time.Millisecond))
}

// metricsHidesTenants: /metrics, unauthenticated, names no tenant.
func (s *attackServer) metricsHidesTenants(t *testing.T) {
	code, body, err := s.get("/metrics", "")
	require.NoError(t, err)
	t.Logf("unauthenticated /metrics: %d, %d bytes", code, len(body))
	if code == http.StatusUnauthorized || code == http.StatusForbidden {
		return
	}
	for _, id := range []tenancy.ID{attackTenantA, attackTenantB} {
		if i := bytes.Index(body, []byte(id)); i >= 0 {
			line := body[bytes.LastIndexByte(body[:i], '\n')+1:]
			line, _, _ = bytes.Cut(line, []byte("\n"))
			t.Errorf("unauthenticated /metrics (%d) names tenant %s: %s", code, id, line)
		}
	}
}

// healthHidesDataPath: /api/v1/status/health, unauthenticated, does not
// tell where the data is.
func (s *attackServer) healthHidesDataPath(t *testing.T) {
	code, body, err := s.get("/api/v1/status/health", "")
	require.NoError(t, err)
	t.Logf("unauthenticated /api/v1/status/health: %d, %d bytes", code, len(body))
	if bytes.Contains(body, []byte(s.dataDir)) {
		t.Errorf("unauthenticated /api/v1/status/health shows the data path %s: %s", s.dataDir, body)
	}
}

// runsA is what tenant A's normal use got.
type runsA struct {
	latencies []time.Duration
	failures  []string
}

// queriesA runs n instant queries of tenant A over its series, every
// pause, and returns their latencies and failures.
func (s *attackServer) queriesA(t testing.TB, n int, pause time.Duration) runsA {
	var r runsA
	path := "/api/v1/query?query=" + url.QueryEscape("sum(attack_a)") + "&time=" + strconv.FormatFloat(float64(s.now)/1000, 'f', 3, 64)
	for range n {
		o := s.send(func(ctx context.Context) *http.Request {
			return s.request(ctx, http.MethodGet, path, s.tokenA, nil)
		})
		if o.err != nil || o.status != http.StatusOK || !strings.Contains(o.body, `"success"`) {
			r.failures = append(r.failures, o.String())
		} else {
			r.latencies = append(r.latencies, o.took)
		}
		time.Sleep(pause)
	}
	return r
}

// readsA runs n remote reads of all of tenant A's series and returns the
// failures: an error, a status but 200, the wrong series, or an answer
// slower than within.
func (s *attackServer) readsA(t testing.TB, n int, within time.Duration) []string {
	body := remoteReadBody(t, &prompb.Query{StartTimestampMs: s.now - 3_600_000, EndTimestampMs: s.now + 60_000,
		Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "attack_a"}}})
	var failures []string
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), attackAnswerDeadline)
		start := time.Now()
		resp, err := s.client.Do(s.remoteRead(ctx, s.tokenA, bytes.NewReader(body)))
		var raw []byte
		if err == nil {
			raw, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		took := time.Since(start)
		cancel()
		switch {
		case err != nil:
			failures = append(failures, fmt.Sprintf("no answer after %s: %v", took.Round(time.Millisecond), err))
			continue
		case resp.StatusCode != http.StatusOK:
			failures = append(failures, fmt.Sprintf("%d after %s: %.200s", resp.StatusCode, took.Round(time.Millisecond), raw))
			continue
		case took > within:
			failures = append(failures, fmt.Sprintf("200 after %s, want within %s", took.Round(time.Millisecond), within))
			continue
		}
		series, err := remoteReadSeries(raw)
		if err != nil || series != attackSeriesA {
			failures = append(failures, fmt.Sprintf("200 with %d series (%v), want %d", series, err, attackSeriesA))
		}
	}
	return failures
}

func remoteReadSeries(compressed []byte) (int, error) {
	raw, err := snappy.Decode(nil, compressed)
	if err != nil {
		return 0, err
	}
	var rr prompb.ReadResponse
	if err := rr.Unmarshal(raw); err != nil {
		return 0, err
	}
	n := 0
	for _, r := range rr.Results {
		n += len(r.Timeseries)
	}
	return n, nil
}

// slowUpload is a remote read of tenant B whose body trickles a byte per
// second for at most attackSlowBodyCutoff plus a margin; its outcome comes
// on done once the server answered or cut it, or the test gave up.
type slowUpload struct {
	done   chan outcome
	cancel context.CancelFunc
}

func (s *attackServer) startSlowUpload(t testing.TB) *slowUpload {
	ctx, cancel := context.WithTimeout(context.Background(), attackSlowBodyCutoff+5*time.Second)
	u := &slowUpload{done: make(chan outcome, 1), cancel: cancel}
	pr, pw := io.Pipe()
	go func() {
		defer pw.Close()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for range int(attackSlowBodyCutoff/time.Second) + 10 {
			if _, err := pw.Write([]byte{0}); err != nil {
				return // the request is over
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	req := s.remoteRead(ctx, s.tokenB, pr)
	go func() {
		start := time.Now()
		resp, err := s.client.Do(req)
		o := outcome{err: err}
		if err == nil {
			head, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
			resp.Body.Close()
			o.status, o.body = resp.StatusCode, string(head)
		}
		o.took = time.Since(start)
		_ = pr.CloseWithError(errors.New("request over"))
		u.done <- o
	}()
	return u
}

// waitInFlight waits, at most attackAnswerDeadline, until luminate counts
// n requests in flight besides the scrape that asks, so that they hold
// whatever they take before tenant A comes. If /metrics does not answer
// 200 even to an admin token it waits a second instead; if fewer are in
// flight in the end (luminate refused some at once), it goes on.
func (s *attackServer) waitInFlight(t *testing.T, n int) {
	t.Helper()
	last := ""
	for deadline := time.Now().Add(attackAnswerDeadline); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		code, body, err := s.get("/metrics", s.tokenAdmin)
		if err != nil || code != http.StatusOK {
			t.Logf("/metrics answers %d (%v) to an admin token; waiting a second for the slow uploads instead", code, err)
			time.Sleep(time.Second)
			return
		}
		last = "no luminate_http_requests_in_flight in /metrics"
		for line := range strings.SplitSeq(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, "luminate_http_requests_in_flight "); ok {
				last = line
				if got, err := strconv.ParseFloat(v, 64); err == nil && got >= float64(n+1) {
					return
				}
			}
		}
	}
	t.Logf("not all %d slow uploads in flight after %s (%s); going on", n, attackAnswerDeadline, last)
}

// slowUploads: tenant B trickles the bodies of more remote reads than run
// at once; tenant A's remote reads still succeed promptly, and the server
// ends the slow ones within attackSlowBodyCutoff, by an error status or by
// closing the connection.
func (s *attackServer) slowUploads(t *testing.T) {
	s.resetPeak(t)
	ups := make([]*slowUpload, attackSlowUploads)
	for i := range ups {
		ups[i] = s.startSlowUpload(t)
		defer ups[i].cancel()
	}
	s.waitInFlight(t, attackSlowUploads)
	start := time.Now()
	reportFailures(t, fmt.Sprintf("tenant A's remote read during %d slow uploads of B", attackSlowUploads),
		s.readsA(t, attackReadsA, attackPromptRead), attackReadsA)
	t.Logf("tenant A's %d remote reads took %s", attackReadsA, time.Since(start).Round(time.Millisecond))
	var failures []string
	for i, u := range ups {
		o := <-u.done // bounded by the upload's own context
		if i == 0 {
			t.Logf("first slow upload: %s", o)
		}
		switch {
		case o.took > attackSlowBodyCutoff:
			failures = append(failures, fmt.Sprintf("not cut off within %s: %s", attackSlowBodyCutoff, o))
		case o.err == nil && !anyError.ok(o.status):
			failures = append(failures, fmt.Sprintf("want %s or a closed connection within %s, got %s", anyError, attackSlowBodyCutoff, o))
		}
	}
	reportFailures(t, "slow upload", failures, len(ups))
	t.Logf("%d of %d slow uploads ended by the server", len(ups)-len(failures), len(ups))
	s.checkSurvived(t, time.Now())
}

// mixed runs every attack at once, with slow uploads, while tenant A
// queries and remote-reads.
func (s *attackServer) mixed(t *testing.T, cases []attackCase, quietP99 time.Duration, latency bool) {
	s.resetPeak(t)
	ups := make([]*slowUpload, attackSlowUploads)
	for i := range ups {
		ups[i] = s.startSlowUpload(t)
		defer ups[i].cancel()
	}
	var wg sync.WaitGroup
	outs := make([][]outcome, len(cases))
	for i, c := range cases {
		wg.Go(func() { outs[i] = s.sendAll(c) })
	}
	var a runsA
	var readFailures []string
	wg.Go(func() { a = s.queriesA(t, attackQueriesA, 20*time.Millisecond) })
	wg.Go(func() { readFailures = s.readsA(t, attackReadsA, attackAnswerDeadline) })
	wg.Wait()
	answered := time.Now()
	for i, c := range cases {
		// Together the writes may reach the global bound on write bytes
		// in flight, which is checked before a write is decoded (so
		// before its burst or protocol can be): 503 with Retry-After is
		// a fair answer to any of them.
		accept := c.accept
		accept.also = http.StatusServiceUnavailable
		checkOutcomes(t, c.name, accept, outs[i])
	}
	reportFailures(t, "tenant A's query during the attacks", a.failures, attackQueriesA)
	reportFailures(t, "tenant A's remote read during the attacks", readFailures, attackReadsA)
	limit := 2 * max(quietP99, attackLatencyFloor)
	got := p99(a.latencies)
	t.Logf("tenant A during the attacks: %d queries ok, p99 %s (quiet %s, limit %s)", len(a.latencies), got, quietP99, limit)
	if latency && got > limit {
		t.Errorf("tenant A's query p99 %s during the attacks, want at most %s (2x its quiet p99 %s, floor %s)", got, limit, quietP99, attackLatencyFloor)
	}
	for _, u := range ups {
		u.cancel()
	}
	s.checkSurvived(t, answered)
}

// reportFailures fails t with the first three of failures, and how many
// of all there were.
func reportFailures(t *testing.T, what string, failures []string, all int) {
	t.Helper()
	for i, f := range failures {
		if i == 3 {
			t.Errorf("%s: %d of %d failed in all", what, len(failures), all)
			break
		}
		t.Errorf("%s: %s", what, f)
	}
}

// p99 is the 99th percentile of ds (nearest rank), 0 for none.
func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	return s[(len(s)*99+99)/100-1]
}
