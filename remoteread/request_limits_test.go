package remoteread

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// The attack of issue #10, scaled down: one small request of manyQueries
// queries, each matching all manySeries series of the tenant, so that the
// request as a whole asks for manyQueries*manySeries series.
const (
	manySeries  = 2_100
	manySamples = 5
	manyQueries = 100
)

// loadMany loads manySeries series of manySamples samples named "many"
// for tenant id.
func (e *env) loadMany(id tenancy.ID) {
	e.t.Helper()
	app := e.store.ForTenant(id).AppenderV2(context.Background())
	for i := range manySeries {
		ls := labels.FromStrings("__name__", "many", "job", "bulk", "i", fmt.Sprintf("%05d", i))
		for j := range manySamples {
			_, err := app.Append(0, ls, 0, t0+int64(j)*step, float64(i*j), nil, nil, promstorage.AOptions{})
			require.NoError(e.t, err)
		}
	}
	require.NoError(e.t, app.Commit())
}

func manyRequest(accepted []prompb.ReadRequest_ResponseType) *prompb.ReadRequest {
	req := &prompb.ReadRequest{AcceptedResponseTypes: accepted}
	for range manyQueries {
		req.Queries = append(req.Queries, query(t0, t0+manySamples*step, eq("__name__", "many")))
	}
	return req
}

// allocated returns the bytes allocated by the whole process while f ran:
// an upper bound of how much the heap grew, whatever the GC did.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func newTenantLimits(t *testing.T, f func(*tenancy.TenantLimits)) *tenancy.Limits {
	t.Helper()
	tl := tenancy.DefaultTenantLimits()
	f(&tl)
	l, err := tenancy.NewLimits(tenancy.LimitsConfig{TenantLimits: tl}, nil, nil)
	require.NoError(t, err)
	return l
}

// TestRequestTotals checks that the series and samples of all the queries
// of one request count together against the tenant's limits, so that many
// queries each within the limits cannot add up to an unbounded response,
// and that the number of queries and matchers is bounded.
func TestRequestTotals(t *testing.T) {
	const seriesLimit = 10 * manySeries / 2 // 5 queries' worth; 50x less than the request asks
	limits := newTenantLimits(t, func(tl *tenancy.TenantLimits) { tl.MaxSeriesPerQuery = seriesLimit })
	e := newEnv(t, DefaultConfig(), limits)
	e.loadMany(acme)
	// One query is within the limits.
	got := e.read(acme, samples, query(t0, t0+manySamples*step, eq("__name__", "many")))
	require.Len(t, got[0], manySeries)

	t.Run("series of a samples response", func(t *testing.T) {
		var resp *http.Response
		alloc := allocated(func() { resp = e.post(acme, manyRequest(samples)) })
		t.Logf("allocated %.1f MB", float64(alloc)/(1<<20))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, fmt.Sprintf("remote-read request exceeded the series limit (%d) over all its queries (raise --limits.max-series-per-query or its per-tenant override max_series_per_query)\n", seriesLimit), body(t, resp))
		// The response held at most seriesLimit series: a few MB, where
		// the whole answer (210,000 series) takes well over 100 MB.
		require.Less(t, alloc, uint64(48<<20), "allocated %d MB", alloc>>20)
	})

	t.Run("series of a streamed response", func(t *testing.T) {
		req := manyRequest(streamed)
		resp := e.post(acme, req)
		got, _, err := readStream(t, resp, req.Queries)
		require.Error(t, err, "the stream is cut off")
		n := 0
		for _, q := range got {
			n += len(q)
		}
		require.LessOrEqual(t, n, seriesLimit)
	})

	t.Run("samples", func(t *testing.T) {
		const sampleLimit = 3 * manySeries * manySamples
		e.h.limits = newTenantLimits(t, func(tl *tenancy.TenantLimits) { tl.MaxSamplesPerQuery = sampleLimit })
		defer func() { e.h.limits = limits }()
		resp := e.post(acme, manyRequest(samples))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, fmt.Sprintf("remote-read request exceeded the sample limit (%d) over all its queries (raise --limits.max-samples-per-query or its per-tenant override max_samples_per_query)\n", sampleLimit), body(t, resp))
	})

	t.Run("queries", func(t *testing.T) {
		e.h.cfg.MaxQueriesPerRequest = manyQueries - 1
		defer func() { e.h.cfg.MaxQueriesPerRequest = DefaultConfig().MaxQueriesPerRequest }()
		resp := e.post(acme, manyRequest(samples))
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
		require.Equal(t, fmt.Sprintf("remote-read request has %d queries, more than %d (raise --remote-read.max-queries-per-request)\n", manyQueries, manyQueries-1), body(t, resp))
	})

	t.Run("matchers", func(t *testing.T) {
		e.h.cfg.MaxMatchersPerRequest = 5
		defer func() { e.h.cfg.MaxMatchersPerRequest = DefaultConfig().MaxMatchersPerRequest }()
		q := query(t0, t0+step, eq("__name__", "up"), eq("job", "api"), re("instance", "a|b"))
		resp := e.post(acme, &prompb.ReadRequest{Queries: []*prompb.Query{q, q}})
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
		require.Equal(t, "remote-read request has 6 matchers, more than 5 (raise --remote-read.max-matchers-per-request)\n", body(t, resp))
		require.Len(t, e.read(acme, samples, q)[0], 2)
	})
}

// TestSamplesResponseBudget checks that a SAMPLES response, which is built
// in memory, is refused once its encoding would exceed
// --remote-read.max-response-bytes, exactly at that size, even when no
// per-tenant limit applies; and that a streamed response counts its
// frames against the same budget.
func TestSamplesResponseBudget(t *testing.T) {
	e := newEnv(t, DefaultConfig(), nil)
	e.loadMany(acme)
	q := query(t0, t0+manySamples*step, eq("__name__", "many"))
	several := &prompb.ReadRequest{Queries: []*prompb.Query{q, query(t0, t0+step, eq("__name__", "none")), query(t0, t0+10*step, eq("__name__", "up"))}}

	// The encoded size of the whole response, decoded by the reference
	// (gogo) decoder and re-encoded by its encoder.
	resp := e.post(acme, several)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	raw := readRaw(t, resp)
	var rr prompb.ReadResponse
	require.NoError(t, rr.Unmarshal(raw))
	ref, err := rr.Marshal()
	require.NoError(t, err)
	require.Equal(t, ref, raw, "the response is what gogo's encoder writes")
	size := len(raw)

	e.h.cfg.MaxResponseBytes = size
	resp = e.post(acme, several)
	require.Equal(t, http.StatusOK, resp.StatusCode, "a response of exactly the budget fits")
	require.Equal(t, raw, readRaw(t, resp))

	e.h.cfg.MaxResponseBytes = size - 1
	resp = e.post(acme, several)
	require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
	require.Equal(t, fmt.Sprintf("remote-read response would exceed %d bytes (a streamed response type is not held in memory) (raise --remote-read.max-response-bytes)\n", size-1), body(t, resp))

	// The attack: held to about the budget.
	const budget = 1 << 20
	e.h.cfg.MaxResponseBytes = budget
	alloc := allocated(func() { resp = e.post(acme, manyRequest(samples)) })
	t.Logf("allocated %.1f MB", float64(alloc)/(1<<20))
	require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
	require.Contains(t, body(t, resp), "(raise --remote-read.max-response-bytes")
	require.Less(t, alloc, uint64(24<<20), "allocated %d MB", alloc>>20)

	// A streamed response is cut off after about the budget.
	req := manyRequest(streamed)
	resp = e.post(acme, req)
	_, sizes, err := readStream(t, resp, req.Queries)
	require.Error(t, err)
	total := 0
	for _, n := range sizes {
		total += n
	}
	require.LessOrEqual(t, total, budget)
	require.Greater(t, total, budget/2)
}

func readRaw(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	raw, err := snappy.Decode(nil, b)
	require.NoError(t, err)
	return raw
}

// slowUpload opens a connection and sends the headers of a remote-read
// request of tenant id with a body of n bytes, of which it then sends one
// byte a second until the test ends. It returns the connection.
func slowUpload(t *testing.T, e *env, id tenancy.ID, n int) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	require.NoError(t, err)
	done := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() {
		close(done)
		conn.Close()
		wg.Wait()
	})
	_, err = fmt.Fprintf(conn, "POST /api/v1/read HTTP/1.1\r\nHost: luminate\r\n%s: %s\r\nContent-Encoding: snappy\r\nContent-Type: application/x-protobuf\r\nContent-Length: %d\r\n\r\n", tenantHeader, id, n)
	require.NoError(t, err)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for range n {
			if _, err := conn.Write([]byte{0}); err != nil {
				return
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return conn
}

// TestSlowUploadsDoNotBlockOthers checks that requests whose bodies trickle
// in hold no slot: more of them than there are slots leave other tenants',
// and their own tenant's, remote reads to succeed at once.
func TestSlowUploadsDoNotBlockOthers(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ConcurrentLimit = 2
	cfg.BodyTimeout = 20 * time.Second // the uploads stay pending throughout
	e := newEnv(t, cfg, newTenantLimits(t, func(*tenancy.TenantLimits) {}))
	const uploads = 4
	var conns []net.Conn
	alloc := allocated(func() {
		for range uploads {
			// Each claims the largest body allowed.
			conns = append(conns, slowUpload(t, e, acme, cfg.MaxRequestBytes))
		}
		time.Sleep(300 * time.Millisecond) // the handlers are running
	})
	require.Less(t, alloc, uint64(cfg.MaxRequestBytes), "memory for the bodies claimed, not received")

	client := &http.Client{Timeout: 10 * time.Second}
	q := query(t0, t0+int64(nSmp)*step, eq("__name__", "up"))
	for _, id := range []tenancy.ID{other, acme} {
		start := time.Now()
		r, err := http.NewRequest(http.MethodPost, e.srv.URL+"/api/v1/read", bytes.NewReader(mustSnappy(t, &prompb.ReadRequest{Queries: []*prompb.Query{q}})))
		require.NoError(t, err)
		r.Header.Set(tenantHeader, string(id))
		resp, err := client.Do(r)
		require.NoError(t, err, "the read of tenant %s waits behind the slow uploads", id)
		got := readSamples(t, resp)
		resp.Body.Close()
		require.Equal(t, e.wantSeries(id, q.StartTimestampMs, q.EndTimestampMs, all), got[0])
		require.Less(t, time.Since(start), 5*time.Second)
	}
	// The uploads are still waiting for their bodies: no response yet.
	for _, c := range conns {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Millisecond)))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		require.ErrorAs(t, err, &ne)
		require.True(t, ne.Timeout(), "no response to a slow upload yet: %v", err)
	}
}

// TestBodyTimeout checks that a body that trickles in is refused with 400
// naming --remote-read.body-timeout once the timeout has passed.
func TestBodyTimeout(t *testing.T) {
	t.Parallel() // it waits; tests that measure allocations do not run meanwhile
	cfg := DefaultConfig()
	cfg.BodyTimeout = time.Second
	e := newEnv(t, cfg, nil)
	start := time.Now()
	conn := slowUpload(t, e, acme, 1000)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(6*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "no response within 6s")
	defer resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Equal(t, "request body not received within 1s (raise --remote-read.body-timeout)\n", body(t, resp))
	require.Less(t, time.Since(start), 5*time.Second)
}

// failingStore is the real store with the chunk reads of every query
// failing as a broken disk would make them fail.
type failingStore struct{ storage.MetricsStore }

func (s failingStore) ForTenant(id tenancy.ID) storage.TenantStore {
	return failingTenant{s.MetricsStore.ForTenant(id)}
}

type failingTenant struct{ storage.TenantStore }

var errDisk = fmt.Errorf("read value log /var/lib/luminate/badger/000042.vlog at offset 1234: %w", io.ErrUnexpectedEOF)

func (t failingTenant) Querier(mint, maxt int64) (promstorage.Querier, error) {
	return nil, errDisk
}

func (t failingTenant) ChunkQuerier(mint, maxt int64) (promstorage.ChunkQuerier, error) {
	return nil, errDisk
}

// TestStorageErrorMasked checks that a storage failure reaches the client
// as "internal error", its details only in the log.
func TestStorageErrorMasked(t *testing.T) {
	e := newEnv(t, DefaultConfig(), nil)
	var logs bytes.Buffer
	h, err := New(DefaultConfig(), nil, slog.New(slog.NewTextHandler(&logs, nil)), prometheus.NewRegistry())
	require.NoError(t, err)
	srv := httptest.NewServer(newRouter(t, h, failingStore{e.store}, nil, slog.New(slog.NewTextHandler(&logs, nil))))
	defer srv.Close()
	e.srv = srv
	for _, accepted := range [][]prompb.ReadRequest_ResponseType{samples, streamed} {
		resp := e.post(acme, &prompb.ReadRequest{Queries: []*prompb.Query{query(t0, t0+step, eq("__name__", "up"))}, AcceptedResponseTypes: accepted})
		require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
		require.Regexp(t, "^internal error; the server log has the details under request_id [0-9A-Z]+\n$", body(t, resp))
	}
	require.Contains(t, logs.String(), "000042.vlog")
}

// TestSlotShares checks that a tenant holds at most its share of the
// slots: its next request waits for its share, and is refused with 429 and
// Retry-After after --remote-read.slot-timeout, while another tenant's
// request runs at once; and that when all slots are busy a request is
// refused with 503 and Retry-After after the same timeout.
func TestSlotShares(t *testing.T) {
	t.Parallel() // it waits; tests that measure allocations do not run meanwhile
	cfg := DefaultConfig()
	cfg.ConcurrentLimit = 3 // a share of 1
	cfg.SlotTimeout = time.Second
	e := newEnv(t, cfg, nil)
	q := query(t0, t0+int64(nSmp)*step, eq("__name__", "up"))
	req := &prompb.ReadRequest{Queries: []*prompb.Query{q}}

	// acme runs a request; it has its share.
	release, err := e.h.slots.acquire(context.Background(), acme)
	require.NoError(t, err)
	start := time.Now()
	resp := e.post(acme, req)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	require.Equal(t, "tenant acme already holds its share of 1 remote-read slots (by default half of --remote-read.concurrent-limit); none became free within 1s (raise --remote-read.tenant-concurrent-limit)\n", body(t, resp))
	require.GreaterOrEqual(t, time.Since(start), cfg.SlotTimeout)
	// Another tenant is not held up (or it would get a 503).
	require.Len(t, e.read(other, samples, q)[0], 1)

	// A request waiting for its share gets it when it frees.
	done := make(chan []map[string][]prompb.Sample)
	go func() { done <- e.read(acme, samples, q) }()
	time.Sleep(50 * time.Millisecond)
	release()
	require.Len(t, (<-done)[0], 2)

	// All slots busy: 503.
	var releases []func()
	for _, id := range []tenancy.ID{"t1", "t2", "t3"} {
		r, err := e.h.slots.acquire(context.Background(), id)
		require.NoError(t, err)
		releases = append(releases, r)
	}
	resp = e.post(other, req)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
	require.Equal(t, "all 3 remote-read slots stayed busy for 1s (raise --remote-read.concurrent-limit)\n", body(t, resp))
	for _, r := range releases {
		r()
		r() // safe twice
	}
	require.Len(t, e.read(other, samples, q)[0], 1)
	require.Empty(t, e.h.slots.tenants, "no tenant left behind")
}

// TestSlowReaderFreesSlot checks that a client that does not read its
// response holds its slot for at most --remote-read.timeout.
func TestSlowReaderFreesSlot(t *testing.T) {
	t.Parallel() // it waits; tests that measure allocations do not run meanwhile
	cfg := DefaultConfig()
	cfg.Timeout = time.Second
	e := newEnv(t, cfg, nil)
	e.loadMany(acme)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	// Far more than the socket buffers hold: about 20 MB of frames.
	b := mustSnappy(t, manyRequest(streamed))
	_, err = fmt.Fprintf(conn, "POST /api/v1/read HTTP/1.1\r\nHost: luminate\r\n%s: %s\r\nContent-Length: %d\r\n\r\n%s", tenantHeader, acme, len(b), b)
	require.NoError(t, err)
	// The request runs, then stops within the timeout, its slot freed,
	// though the client still has not read a byte.
	running := func() bool { return testutil.ToFloat64(e.h.queries) > 0 }
	require.Eventually(t, running, 2*time.Second, 5*time.Millisecond)
	start := time.Now()
	require.Eventually(t, func() bool { return !running() }, cfg.Timeout+3*time.Second, 10*time.Millisecond)
	t.Logf("slot freed %s after the request was seen running", time.Since(start))
}

// TestBodyDeadlineEndsWithTheBody checks that the body deadline does not
// outlive the body: a request that runs for longer than it succeeds, and so
// does the next one on the same connection after both deadlines passed.
func TestBodyDeadlineEndsWithTheBody(t *testing.T) {
	t.Parallel() // it waits; tests that measure allocations do not run meanwhile
	cfg := DefaultConfig()
	cfg.BodyTimeout, cfg.Timeout = 20*time.Millisecond, 10*time.Second
	e := newEnv(t, cfg, nil)
	e.loadMany(acme)
	var dials atomic.Int64
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
	defer client.CloseIdleConnections()
	req := manyRequest(samples)
	req.Queries = req.Queries[:20]
	for range 2 {
		r, err := http.NewRequest(http.MethodPost, e.srv.URL+"/api/v1/read", bytes.NewReader(mustSnappy(t, req)))
		require.NoError(t, err)
		r.Header.Set(tenantHeader, string(acme))
		start := time.Now()
		resp, err := client.Do(r)
		require.NoError(t, err)
		got := readSamples(t, resp)
		resp.Body.Close()
		require.Len(t, got, len(req.Queries))
		require.Len(t, got[len(got)-1], manySeries)
		require.Greater(t, time.Since(start), 5*cfg.BodyTimeout, "the request outlasts the body deadline")
		time.Sleep(2 * cfg.BodyTimeout)
	}
	require.Equal(t, int64(1), dials.Load(), "both requests on one connection")
}
