package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
	"github.com/luminate-io/luminate/tenancy"
)

// podsLimit is the ingestion rate of the tenant TestPodsShareTheLimit
// loads, and podsBatch the samples of each of its writes.
const (
	podsLimit = 100_000
	podsBatch = 5_000
)

// TestPodsShareTheLimit is issue #14's target for limits across pods:
// three luminate processes on one clickhouse-server, a tenant limited to
// 100,000 samples/s, and more load than that offered (senders retrying at
// once on 429), spread evenly then unevenly over the pods. The samples
// accepted (204) over a window after a warm-up must be 90,000 to 110,000
// per second, counted by the senders and in ClickHouse. Then one pod loses
// sight of ClickHouse (a proxy between them cut): it answers 503 and the
// two others take its share, the tenant still within the bounds; back,
// the three share again.
func TestPodsShareTheLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("loads three servers for a minute")
	}
	srv := chtest.New(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "hmac.secret")
	_, err := tenancy.EnsureDevSecret(secret)
	require.NoError(t, err)
	overrides := filepath.Join(dir, "overrides.yaml")
	require.NoError(t, os.WriteFile(overrides, fmt.Appendf(nil,
		"overrides:\n  acme:\n    ingestion_rate: %d\n    ingestion_burst: %d\n    request_rate: 0\n", podsLimit, podsLimit), 0o600))
	proxy := newTCPProxy(t, srv.Addr())
	var pods []*proc
	for i := range 3 {
		dsn := srv.DSN()
		if i == 2 { // the pod that will lose sight of the others
			dsn = strings.Replace(dsn, srv.Addr(), proxy.addr(), 1)
		}
		pods = append(pods, start(t, "serve", "--log.format=json", "--http.listen-address=127.0.0.1:0",
			"--storage.backend=clickhouse", "--storage.clickhouse.dsn="+dsn, "--storage.clickhouse.database=pods",
			"--storage.clickhouse.timeout=5s", "--storage.clickhouse.insert-concurrency=4",
			"--auth.jwt.hmac-secret-file="+secret, "--limits.overrides-file="+overrides,
			fmt.Sprintf("--limits.cluster.pod-id=pod%d", i)))
	}
	token := e2eToken(t, secret, "acme", "metrics:write")
	conn, err := ch.Open(&ch.Options{Addr: []string{srv.Addr()}})
	require.NoError(t, err)
	defer conn.Close()
	demand := func() string { // what the pods published last, for the log
		rows, err := conn.Query(context.Background(), "SELECT pod, toUInt64(argMax(ingest, at)) FROM pods.pods WHERE tenant = 'acme' AND seen >= now() - 2 GROUP BY pod ORDER BY pod")
		if err != nil {
			return err.Error()
		}
		defer rows.Close()
		var b strings.Builder
		for rows.Next() {
			var pod string
			var d uint64
			if err := rows.Scan(&pod, &d); err != nil {
				return err.Error()
			}
			fmt.Fprintf(&b, " %s=%d", pod, d)
		}
		return b.String()
	}
	load := newPodsLoad(t, pods, token)

	measure := func(name string, workers []int, warmup, window time.Duration) (float64, []float64) {
		t.Helper()
		load.setWorkers(workers)
		time.Sleep(warmup)
		before, offered0 := load.snapshot()
		start := time.Now()
		time.Sleep(window)
		after, offered1 := load.snapshot()
		secs := time.Since(start).Seconds()
		per := make([]float64, len(pods))
		total := 0.0
		for i := range pods {
			per[i] = float64(after[i]-before[i]) / secs
			total += per[i]
		}
		offered := float64(offered1-offered0) / secs
		t.Logf("%s (senders per pod %v): accepted %.0f samples/s, per pod %.0f; offered %.0f samples/s (so far %d answered 429, %d 503, %d failed); demand published:%s",
			name, workers, total, per, offered, load.refused.Load(), load.unavailable.Load(), load.failed.Load(), demand())
		require.Greater(t, offered, 1.2*podsLimit, "%s: the load offered must exceed the limit (is the machine too busy?)", name)
		return total, per
	}

	even, _ := measure("even spread", []int{8, 8, 8}, 8*time.Second, 10*time.Second)
	require.InDelta(t, podsLimit, even, 0.1*podsLimit, "even spread")
	uneven, per := measure("uneven spread", []int{16, 6, 2}, 4*time.Second, 10*time.Second)
	require.InDelta(t, podsLimit, uneven, 0.1*podsLimit, "uneven spread")
	require.Greater(t, per[2], 0.1*podsLimit, "the pod with one sender still gets its share")

	proxy.cut()
	lost, per := measure("pod2 lost sight of ClickHouse", []int{16, 16, 4}, 8*time.Second, 10*time.Second)
	require.InDelta(t, podsLimit, lost, 0.1*podsLimit, "pod2 cut off")
	require.Zero(t, per[2], "pod2 cannot write without ClickHouse")
	require.Positive(t, load.unavailable.Load(), "pod2 answered 503")

	proxy.restore()
	back, _ := measure("pod2 back", []int{8, 8, 8}, 8*time.Second, 10*time.Second)
	require.InDelta(t, podsLimit, back, 0.1*podsLimit, "pod2 back")
	load.stop()

	// What the senders counted as accepted is what ClickHouse holds.
	var stored uint64
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT count() FROM pods.samples WHERE tenant = 'acme'").Scan(&stored))
	// Every acknowledged sample is stored; a write cut off with the proxy
	// (answered 503) may have been stored too.
	require.GreaterOrEqual(t, int64(stored), load.acceptedTotal(), "samples acknowledged are stored")
	require.LessOrEqual(t, int64(stored), load.acceptedTotal()+load.unavailable.Load()*podsBatch, "samples stored were acknowledged, or answered 503")
	t.Logf("summary: even %.0f, uneven %.0f, one pod cut off %.0f, back %.0f samples/s (limit %d, bounds %d..%d); %d samples stored",
		even, uneven, lost, back, podsLimit, podsLimit*9/10, podsLimit*11/10, stored)
}

// podsLoad sends remote writes of podsBatch samples to the pods as fast as
// they answer, each sender to one pod, every sample with its own
// timestamp (so ClickHouse keeps every acknowledged one).
type podsLoad struct {
	t     *testing.T
	pods  []*proc
	token string

	accepted    []atomic.Int64 // samples acknowledged, per pod
	offered     atomic.Int64
	unavailable atomic.Int64
	refused     atomic.Int64 // 429s
	failed      atomic.Int64 // transport errors
	ts          atomic.Int64

	mu    sync.Mutex
	quits [][]chan struct{}
	wg    sync.WaitGroup
}

func newPodsLoad(t *testing.T, pods []*proc, token string) *podsLoad {
	l := &podsLoad{t: t, pods: pods, token: token, accepted: make([]atomic.Int64, len(pods)), quits: make([][]chan struct{}, len(pods))}
	l.ts.Store(time.Now().Add(-30 * time.Minute).UnixMilli())
	t.Cleanup(l.stop)
	return l
}

// setWorkers runs workers[i] senders against pod i.
func (l *podsLoad) setWorkers(workers []int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, n := range workers {
		for len(l.quits[i]) > n {
			last := len(l.quits[i]) - 1
			close(l.quits[i][last])
			l.quits[i] = l.quits[i][:last]
		}
		for len(l.quits[i]) < n {
			quit := make(chan struct{})
			l.quits[i] = append(l.quits[i], quit)
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				l.send(quit, i)
			}()
		}
	}
}

func (l *podsLoad) stop() {
	l.setWorkers(make([]int, len(l.pods)))
	l.wg.Wait()
}

func (l *podsLoad) snapshot() ([]int64, int64) {
	out := make([]int64, len(l.pods))
	for i := range out {
		out[i] = l.accepted[i].Load()
	}
	return out, l.offered.Load()
}

func (l *podsLoad) acceptedTotal() int64 {
	s, _ := l.snapshot()
	var n int64
	for _, v := range s {
		n += v
	}
	return n
}

// send writes to pod until quit is closed, finishing the write under way
// (so that every write the server stored is counted).
func (l *podsLoad) send(quit chan struct{}, pod int) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	url := l.pods[pod].url("/api/v1/write")
	req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, podsBatch)}
	for i := range req.Timeseries {
		req.Timeseries[i] = prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: "pods_load"}, {Name: "series", Value: fmt.Sprint(i)}},
			Samples: []prompb.Sample{{}},
		}
	}
	var raw, body []byte
	for {
		select {
		case <-quit:
			return
		default:
		}
		// One timestamp per request, distinct across all senders: every
		// acknowledged sample is a row of its own in ClickHouse.
		ts := l.ts.Add(1)
		for i := range req.Timeseries {
			req.Timeseries[i].Samples[0].Timestamp = ts
		}
		var err error
		raw, err = req.Marshal()
		if err != nil {
			l.t.Error(err)
			return
		}
		body = snappy.Encode(body[:0], raw)
		hreq, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return
		}
		hreq.Header.Set("Content-Type", "application/x-protobuf")
		hreq.Header.Set("Content-Encoding", "snappy")
		hreq.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
		hreq.Header.Set("Authorization", "Bearer "+l.token)
		l.offered.Add(podsBatch)
		resp, err := client.Do(hreq)
		if err != nil {
			l.failed.Add(1)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusNoContent, http.StatusOK:
			l.accepted[pod].Add(podsBatch)
		case http.StatusTooManyRequests:
			// Retry soon, not at once: still many times the limit
			// offered, without spending the machine's CPU on refusals.
			l.refused.Add(1)
			time.Sleep(100 * time.Millisecond)
		case http.StatusServiceUnavailable:
			l.unavailable.Add(1)
			time.Sleep(10 * time.Millisecond)
		default:
			l.t.Errorf("pod %d answered %d", pod, resp.StatusCode)
			return
		}
	}
}

// tcpProxy forwards loopback connections to a server until cut: then it
// closes every connection it carries and refuses new ones, as a network
// partition between a pod and ClickHouse would.
type tcpProxy struct {
	ln       net.Listener
	upstream string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func newTCPProxy(t *testing.T, upstream string) *tcpProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &tcpProxy{ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go p.serve()
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

func (p *tcpProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *tcpProxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.upstream)
	if err != nil || !p.track(c, up) {
		c.Close()
		if up != nil {
			up.Close()
		}
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
}

func (p *tcpProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}
