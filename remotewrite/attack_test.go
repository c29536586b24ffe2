package remotewrite

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/badger"
	"github.com/luminate-io/luminate/tenancy"
)

// The other attacks of issue #10: many requests at once, slow bodies,
// requests that can never pass a limit.

// heldStore is a Badger store whose commits wait until release is closed,
// counting the appenders waiting: it holds write requests in flight for as
// long as a test needs.
type heldStore struct {
	*badger.Store
	waiting *atomic.Int64
	release chan struct{}
}

func (s heldStore) ForTenant(id tenancy.ID) storage.TenantStore {
	return heldTenant{s.Store.ForTenant(id), s}
}

type heldTenant struct {
	storage.TenantStore
	s heldStore
}

func (t heldTenant) AppenderV2(ctx context.Context) promstorage.AppenderV2 {
	return heldAppenderV2{t.TenantStore.AppenderV2(ctx), t.s}
}

type heldAppenderV2 struct {
	promstorage.AppenderV2
	s heldStore
}

func (a heldAppenderV2) Commit() error {
	a.s.waiting.Add(1)
	defer a.s.waiting.Add(-1)
	<-a.s.release
	return a.AppenderV2.Commit()
}

// serve runs h on a loopback server, as principal p.
func serve(t *testing.T, h http.Handler, p tenancy.Principal) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(tenancy.NewContext(r.Context(), p)))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func postTo(t *testing.T, url string, body []byte) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// realRequest is a 1.0 request of n series shaped as Prometheus sends
// them, named name.
func realRequest(t testing.TB, name string, n int) []byte {
	t.Helper()
	now := time.Now()
	req := &prompb.WriteRequest{}
	for i := range n {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels: series("__name__", name, "instance", fmt.Sprintf("10.0.%d.%d:9090", i/250, i%250),
				"job", "node", "pod", fmt.Sprintf("node-exporter-%d", i)),
			Samples: samplesAt(now, float64(i)),
		})
	}
	return encode(t, req)
}

// Sixteen large writes at once, over the in-flight budget: those that do
// not fit are refused at once with 503 and Retry-After, before they are
// decompressed, and the heap grows by about the budget, not by sixteen
// decoded requests.
func TestInflightBudget(t *testing.T) {
	held := heldStore{Store: openStore(t, nil), waiting: new(atomic.Int64), release: make(chan struct{})}
	cfg := testConfig(t)
	body := realRequest(t, "big", 20_000)
	n, err := snappy.DecodedLen(body)
	require.NoError(t, err)
	perRequest := int64(len(body)+n) + NewIngester(cfg, nil, nil, nil).decodedBound(rw1, n)
	cfg.MaxInflightBytes = perRequest * 5 / 2
	g := NewIngester(cfg, nil, nil, prometheus.NewRegistry())
	srv := serve(t, route(NewHandler(g), held), writer)

	const parallel = 16
	type answer struct {
		code       int
		retryAfter string
		body       string
	}
	answers := make(chan answer, parallel)
	var wg sync.WaitGroup
	grew := peakHeapGrowth(func() {
		for range parallel {
			wg.Go(func() {
				resp, msg := postTo(t, srv.URL, body)
				answers <- answer{resp.StatusCode, resp.Header.Get("Retry-After"), msg}
			})
		}
		// Every request is either refused or held in its commit.
		require.Eventually(t, func() bool { return len(answers)+int(held.waiting.Load()) == parallel },
			10*time.Second, time.Millisecond)
	})
	inFlight := int(held.waiting.Load())
	t.Logf("%d requests of %d bytes (%d decompressed), budget %d: %d in flight, %d refused; heap grew by %d",
		parallel, len(body), n, cfg.MaxInflightBytes, inFlight, len(answers), grew)
	require.GreaterOrEqual(t, inFlight, 2, "the budget holds two requests before decoding")
	require.Less(t, inFlight, parallel)
	require.LessOrEqual(t, g.inflight.inUse(), cfg.MaxInflightBytes)
	for range parallel - inFlight {
		a := <-answers
		require.Equal(t, http.StatusServiceUnavailable, a.code, a.body)
		require.Equal(t, "1", a.retryAfter)
		require.Contains(t, a.body, "--ingest.max-inflight-bytes")
	}
	require.Less(t, grew, uint64(cfg.MaxInflightBytes)+parallel*uint64(len(body))+16<<20,
		"the heap grows by the budget, the bodies and little more")

	close(held.release)
	wg.Wait()
	for range inFlight {
		a := <-answers
		require.Equal(t, http.StatusNoContent, a.code, a.body)
	}
	require.Zero(t, g.inflight.inUse(), "everything reserved is released")
	require.Len(t, readBack(t, held.Store, writer.Tenant), 20_000)
}

// A write that does not fit the in-flight budget is refused before its
// body is decompressed: the refusal costs nothing of its decompressed size.
// (native's TestWriteSharesBudget: the native write shares the budget.)
func TestInflightRefusedBeforeDecompressing(t *testing.T) {
	store := openStore(t, nil)
	cfg := testConfig(t)
	cfg.MaxInflightBytes = 64 << 20
	g := NewIngester(cfg, nil, nil, prometheus.NewRegistry())
	h := route(NewHandler(g), store)
	all, err := g.inflight.acquire(writer.Tenant, cfg.MaxInflightBytes)
	require.NoError(t, err)

	body := snappy.Encode(nil, repeat(pb{}.bytes(1, nil), 32<<20)) // 32 MiB decompressed, 1.5 MB sent
	var w *httptest.ResponseRecorder
	grew := peakHeapGrowth(func() { w = post(h, &writer, body, nil) })
	require.Equal(t, http.StatusServiceUnavailable, w.Code, w.Body.String())
	require.Equal(t, "1", w.Header().Get("Retry-After"))
	require.Less(t, grew, uint64(4<<20), "refused without decompressing")

	g.inflight.release(all)
	w = post(h, &writer, realRequest(t, "up", 10), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Zero(t, g.inflight.inUse())
}

// Slow uploads hold nothing shared while their bodies trickle in: neither
// in-flight budget nor memory for what they claim to send. Another
// tenant's write goes through meanwhile. (The router cuts them off at
// --http.read-timeout: api's TestSlowBodyCutOff.)
func TestSlowUploads(t *testing.T) {
	store := openStore(t, nil)
	cfg := testConfig(t)
	ok := realRequest(t, "up", 100)
	cfg.MaxInflightBytes = 1 << 20 // room for one small request at a time
	g := NewIngester(cfg, nil, nil, prometheus.NewRegistry())
	h := route(NewHandler(g), store)
	slowSrv := serve(t, h, tenancy.Principal{Tenant: "slow", Scopes: writer.Scopes})
	fastSrv := serve(t, h, writer)

	const slow = 8
	var conns []net.Conn
	grew := peakHeapGrowth(func() {
		for range slow {
			c, err := net.Dial("tcp", slowSrv.Listener.Addr().String())
			require.NoError(t, err)
			conns = append(conns, c)
			// Claims 8 MiB, sends 100 bytes.
			_, err = fmt.Fprintf(c, "POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"+
				"Content-Encoding: snappy\r\nContent-Length: %d\r\n\r\n%s", 8<<20, strings.Repeat("x", 100))
			require.NoError(t, err)
		}
		time.Sleep(100 * time.Millisecond) // let the handlers start reading
		require.Zero(t, g.inflight.inUse(), "a body still arriving reserves nothing")
	})
	t.Logf("%d slow uploads claiming 8 MiB each: heap grew by %d bytes", slow, grew)
	require.Less(t, grew, uint64(slow*2*maxBodyPrealloc+4<<20), "memory for what arrived, not for what was claimed")

	start := time.Now()
	resp, msg := postTo(t, fastSrv.URL, ok)
	require.Equal(t, http.StatusNoContent, resp.StatusCode, msg)
	require.Less(t, time.Since(start), time.Second, "another tenant is not held up")

	for _, c := range conns {
		require.NoError(t, c.Close())
	}
	require.Zero(t, g.inflight.inUse())
}

// A request over a per-request limit can never pass: 413 naming the flag,
// no Retry-After, nothing stored. At the limit it passes.
func TestRequestLimits(t *testing.T) {
	now := time.Now()
	one := func(name string, labels, samples int) prompb.TimeSeries {
		kv := []string{"__name__", name}
		for i := 1; i < labels; i++ {
			kv = append(kv, fmt.Sprintf("l%d", i), "v")
		}
		vs := make([]float64, samples)
		return prompb.TimeSeries{Labels: series(kv...), Samples: samplesAt(now, vs...)}
	}
	for _, tc := range []struct {
		name    string
		atLimit []prompb.TimeSeries
		over    []prompb.TimeSeries
		flag    string
	}{
		{"series", []prompb.TimeSeries{one("a", 1, 1), one("b", 1, 1), one("c", 1, 1)},
			[]prompb.TimeSeries{one("a", 1, 1), one("b", 1, 1), one("c", 1, 1), one("d", 1, 1)}, "--ingest.max-series-per-request"},
		{"labels", []prompb.TimeSeries{one("a", 3, 1), one("b", 2, 1)},
			[]prompb.TimeSeries{one("a", 3, 1), one("b", 3, 1)}, "--ingest.max-labels-per-request"},
		{"samples", []prompb.TimeSeries{one("a", 1, 4)},
			[]prompb.TimeSeries{one("a", 1, 2), one("b", 1, 3)}, "--ingest.max-samples-per-request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.MaxSeriesPerRequest, cfg.MaxLabelsPerRequest, cfg.MaxSamplesPerRequest = 3, 5, 4
			for _, v2 := range []bool{false, true} {
				store := openStore(t, nil)
				h := newWrite(cfg, store, nil, nil, prometheus.NewRegistry())
				send := func(ts []prompb.TimeSeries) *httptest.ResponseRecorder {
					if !v2 {
						return post(h, &writer, encode(t, &prompb.WriteRequest{Timeseries: ts}), nil)
					}
					b := newV2Request()
					for _, s := range ts {
						var kv []string
						for _, l := range s.Labels {
							kv = append(kv, l.Name, l.Value)
						}
						b.add(kv...).Samples = samplesV2At(now, make([]float64, len(s.Samples))...)
					}
					return postV2(h, &writer, b.encode(t), nil)
				}
				w := send(tc.over)
				require.Equal(t, http.StatusRequestEntityTooLarge, w.Code, w.Body.String())
				require.Contains(t, w.Body.String(), tc.flag)
				require.Empty(t, w.Header().Get("Retry-After"))
				require.Empty(t, readBack(t, store, writer.Tenant))
				w = send(tc.atLimit)
				require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
			}
		})
	}
}

// A 2.0 write larger than the tenant's ingestion burst is refused as too
// large (413), not as rate limited (429).
func TestWriteV2OverBurst(t *testing.T) {
	store := openStore(t, nil)
	limits, err := tenancy.NewLimits(tenancy.LimitsConfig{TenantLimits: tenancy.TenantLimits{
		IngestionRate: 10, IngestionBurst: 5,
	}}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	h := newWrite(testConfig(t), store, limits, nil, prometheus.NewRegistry())
	b := newV2Request()
	b.add("__name__", "big").Samples = samplesV2At(time.Now(), 1, 2, 3, 4, 5, 6)
	w := postV2(h, &writer, b.encode(t), nil)
	require.Equal(t, http.StatusRequestEntityTooLarge, w.Code, w.Body.String())
	require.Empty(t, w.Header().Get("Retry-After"))
	require.Contains(t, w.Body.String(), "--limits.ingestion-burst")
	requireWritten(t, w, 0)
}

// A pooled writeState does not keep the buffers of a huge request.
func TestPooledBuffersCapped(t *testing.T) {
	g := NewIngester(testConfig(t), nil, nil, prometheus.NewRegistry())
	st := g.getState()
	_, err := st.dec.Decode(realRequest(t, "big", 40_000), 64<<20)
	require.NoError(t, err)
	st.body = make([]byte, 8<<20)
	small := make([]Sample, 10)
	st.decV2.samples = small
	require.Greater(t, cap(st.dec.buf), maxPooledBytes)
	st.trim()
	require.Nil(t, st.body)
	require.Nil(t, st.dec.buf)
	require.Nil(t, st.dec.labels, "40,000 series of 4 labels: 5.1 MB of labels")
	require.NotNil(t, st.decV2.samples, "small buffers are kept")
	g.putState(st)
}

// No tenant takes more than half of the in-flight budget while others
// hold some of it: a tenant's burst leaves room for the others.
func TestInflightShared(t *testing.T) {
	g := newInflightBytes(100)
	b, err := g.acquire("b", 10)
	require.NoError(t, err)
	a, err := g.acquire("a", 40)
	require.NoError(t, err)
	_, err = g.acquire("a", 20)
	require.ErrorContains(t, err, "over half of the limit of 100 bytes")
	require.Equal(t, http.StatusServiceUnavailable, apierror.Classify(err).Status)
	b2, err := g.acquire("b", 20)
	require.NoError(t, err, "the other tenant still fits")
	_, err = g.acquire("c", 40)
	require.ErrorContains(t, err, "over the limit of 100 bytes; retry later (raise --ingest.max-inflight-bytes)")
	g.release(b)
	g.release(b2)
	a2, err := g.acquire("a", 60)
	require.NoError(t, err, "alone, a tenant may take all of it")
	a = g.shrink(a, 5)
	require.Equal(t, int64(65), g.inUse())
	g.release(a)
	g.release(a2)
	require.Zero(t, g.inUse())
	require.Empty(t, g.byTenant)
}

// inUse is how many bytes are reserved.
func (g *inflightBytes) inUse() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.used
}
