package remoteread

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/api"
	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/badger"
	"github.com/luminate-io/luminate/tenancy"
)

const (
	acme  tenancy.ID = "acme"
	other tenancy.ID = "other"

	t0           = int64(1_700_000_000_000)
	step         = int64(15_000)
	nSmp         = 500 // several chunks per series
	tenantHeader = "X-Test-Tenant"
	scopesHeader = "X-Test-Scopes"
)

// headerAuth, standing in for token verification, authenticates a
// request by its test headers.
type headerAuth struct{}

func (headerAuth) Authenticate(r *http.Request) (tenancy.Principal, error) {
	id := r.Header.Get(tenantHeader)
	if id == "" {
		return tenancy.Principal{}, tenancy.ErrNoTenant
	}
	p := tenancy.Principal{Tenant: tenancy.ID(id), Scopes: []tenancy.Scope{tenancy.ScopeRead}}
	if s, ok := r.Header[scopesHeader]; ok {
		p.Scopes = []tenancy.Scope{tenancy.Scope(s[0])}
	}
	return p, nil
}

// newRouter mounts h on an api router over store, as cmd/luminate does.
func newRouter(t *testing.T, h *Handler, store storage.MetricsStore, limits Limits, logger *slog.Logger) http.Handler {
	t.Helper()
	opts := api.Options{Auth: headerAuth{}, Tenants: store, Storage: store, Gatherer: prometheus.NewRegistry()}
	if q, ok := limits.(api.QueryAdmitter); ok {
		opts.Queries = q
	}
	maxBody, bodySetting := h.ReadBody()
	timeout, timeoutSetting := h.BodyTimeout()
	opts.Routes = []api.Route{{Path: "/api/v1/read", Methods: []string{http.MethodPost}, Scope: tenancy.ScopeRead, Format: apierror.Text, Query: true,
		ReadBody: maxBody, ReadBodySetting: bodySetting, ReadBodyTimeout: timeout, ReadBodyTimeoutSetting: timeoutSetting, Serve: h.Serve}}
	router, err := api.NewRouter(opts, logger, prometheus.NewRegistry())
	require.NoError(t, err)
	return router
}

type env struct {
	t     *testing.T
	store *badger.Store
	h     *Handler
	srv   *httptest.Server
	// want holds the samples loaded per tenant and series.
	want map[tenancy.ID]map[string][]prompb.Sample
}

func newEnv(t *testing.T, cfg Config, limits Limits) *env {
	t.Helper()
	store, err := badger.New(badger.Config{Path: t.TempDir()}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	h, err := New(cfg, limits, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	srv := httptest.NewServer(newRouter(t, h, store, limits, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	e := &env{t: t, store: store, h: h, srv: srv, want: map[tenancy.ID]map[string][]prompb.Sample{}}
	e.load(acme, labels.FromStrings("__name__", "up", "job", "api", "instance", "a"), func(i int) float64 { return float64(i) })
	e.load(acme, labels.FromStrings("__name__", "up", "job", "api", "instance", "b"), func(i int) float64 { return float64(i) / 3 })
	e.load(other, labels.FromStrings("__name__", "up", "job", "secret", "instance", "x"), func(int) float64 { return 42 })
	return e
}

func (e *env) load(id tenancy.ID, ls labels.Labels, f func(int) float64) {
	app := e.store.ForTenant(id).AppenderV2(context.Background())
	var smp []prompb.Sample
	for i := range nSmp {
		ts, v := t0+int64(i)*step, f(i)
		_, err := app.Append(0, ls, 0, ts, v, nil, nil, promstorage.AOptions{})
		require.NoError(e.t, err)
		smp = append(smp, prompb.Sample{Timestamp: ts, Value: v})
	}
	require.NoError(e.t, app.Commit())
	if e.want[id] == nil {
		e.want[id] = map[string][]prompb.Sample{}
	}
	e.want[id][ls.String()] = smp
}

// wantSeries is what tenant id holds of series matching filter, in
// [mint, maxt], keyed by labels.
func (e *env) wantSeries(id tenancy.ID, mint, maxt int64, filter func(string) bool) map[string][]prompb.Sample {
	out := map[string][]prompb.Sample{}
	for ls, smp := range e.want[id] {
		if !filter(ls) {
			continue
		}
		for _, s := range smp {
			if s.Timestamp >= mint && s.Timestamp <= maxt {
				out[ls] = append(out[ls], s)
			}
		}
	}
	return out
}

func query(mint, maxt int64, ms ...*prompb.LabelMatcher) *prompb.Query {
	return &prompb.Query{StartTimestampMs: mint, EndTimestampMs: maxt, Matchers: ms}
}

func eq(name, value string) *prompb.LabelMatcher {
	return &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: name, Value: value}
}

func re(name, value string) *prompb.LabelMatcher {
	return &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: name, Value: value}
}

// post sends req as tenant id and returns the raw response.
func (e *env) post(id tenancy.ID, req *prompb.ReadRequest) *http.Response {
	e.t.Helper()
	b, err := req.Marshal()
	require.NoError(e.t, err)
	return e.postRaw(id, snappy.Encode(nil, b))
}

func (e *env) postRaw(id tenancy.ID, body []byte) *http.Response {
	e.t.Helper()
	r, err := http.NewRequest(http.MethodPost, e.srv.URL+"/api/v1/read", bytes.NewReader(body))
	require.NoError(e.t, err)
	r.Header.Set("Content-Encoding", "snappy")
	r.Header.Set("Content-Type", "application/x-protobuf")
	r.Header.Set("X-Prometheus-Remote-Read-Version", "0.1.0")
	if id != "" {
		r.Header.Set(tenantHeader, string(id))
	}
	resp, err := http.DefaultClient.Do(r)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// readSamples decodes a SAMPLES response into series per query.
func readSamples(t *testing.T, resp *http.Response) []map[string][]prompb.Sample {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, "application/x-protobuf", resp.Header.Get("Content-Type"))
	require.Equal(t, "snappy", resp.Header.Get("Content-Encoding"))
	raw, err := snappy.Decode(nil, body)
	require.NoError(t, err)
	var rr prompb.ReadResponse
	require.NoError(t, rr.Unmarshal(raw))
	out := make([]map[string][]prompb.Sample, len(rr.Results))
	for i, res := range rr.Results {
		out[i] = map[string][]prompb.Sample{}
		var prev labels.Labels
		for _, ts := range res.Timeseries {
			ls := labelsOf(ts.Labels)
			require.Less(t, labels.Compare(prev, ls), 0, "series sorted and distinct")
			prev = ls
			out[i][ls.String()] = ts.Samples
		}
	}
	return out
}

// readStream decodes a STREAMED_XOR_CHUNKS response into series per query
// (samples in [mint, maxt] of each query) and the frame sizes, or returns
// the error reading it.
func readStream(t *testing.T, resp *http.Response, queries []*prompb.Query) ([]map[string][]prompb.Sample, []int, error) {
	t.Helper()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse", resp.Header.Get("Content-Type"))
	out := make([]map[string][]prompb.Sample, len(queries))
	for i := range out {
		out[i] = map[string][]prompb.Sample{}
	}
	var sizes []int
	cr := NewChunkedReader(resp.Body, 64<<20)
	lastQuery := int64(0)
	var prev labels.Labels
	for {
		b, err := cr.Next()
		if errors.Is(err, io.EOF) {
			return out, sizes, nil
		}
		if err != nil {
			return out, sizes, err
		}
		sizes = append(sizes, len(b))
		var cresp prompb.ChunkedReadResponse
		require.NoError(t, cresp.Unmarshal(b))
		require.Len(t, cresp.ChunkedSeries, 1, "one series per frame")
		require.GreaterOrEqual(t, cresp.QueryIndex, lastQuery)
		if cresp.QueryIndex != lastQuery {
			prev = labels.EmptyLabels()
		}
		lastQuery = cresp.QueryIndex
		q := queries[cresp.QueryIndex]
		cs := cresp.ChunkedSeries[0]
		ls := labelsOf(cs.Labels)
		require.LessOrEqual(t, labels.Compare(prev, ls), 0, "series sorted")
		prev = ls
		for _, c := range cs.Chunks {
			require.Equal(t, prompb.Chunk_XOR, c.Type)
			chk, err := chunkenc.FromData(chunkenc.EncXOR, c.Data)
			require.NoError(t, err)
			it := chk.Iterator(nil)
			for it.Next() == chunkenc.ValFloat {
				ts, v := it.At()
				require.GreaterOrEqual(t, ts, c.MinTimeMs)
				require.LessOrEqual(t, ts, c.MaxTimeMs)
				if ts >= q.StartTimestampMs && ts <= q.EndTimestampMs {
					out[cresp.QueryIndex][ls.String()] = append(out[cresp.QueryIndex][ls.String()], prompb.Sample{Timestamp: ts, Value: v})
				}
			}
			require.NoError(t, it.Err())
		}
	}
}

func labelsOf(pls []prompb.Label) labels.Labels {
	b := labels.NewScratchBuilder(len(pls))
	for _, l := range pls {
		b.Add(l.Name, l.Value)
	}
	return b.Labels()
}

var (
	streamed = []prompb.ReadRequest_ResponseType{prompb.ReadRequest_STREAMED_XOR_CHUNKS}
	samples  = []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES}
)

// read sends queries as tenant id with the accepted types and returns the
// series per query, whichever type the server answered with.
func (e *env) read(id tenancy.ID, accepted []prompb.ReadRequest_ResponseType, queries ...*prompb.Query) []map[string][]prompb.Sample {
	e.t.Helper()
	resp := e.post(id, &prompb.ReadRequest{Queries: queries, AcceptedResponseTypes: accepted})
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-streamed-protobuf") {
		out, _, err := readStream(e.t, resp, queries)
		require.NoError(e.t, err)
		return out
	}
	return readSamples(e.t, resp)
}

func all(string) bool { return true }

func has(s string) func(string) bool { return func(ls string) bool { return strings.Contains(ls, s) } }

// TestRead checks both response types against the data loaded: every
// sample in range, exactly, for several queries of one request.
func TestRead(t *testing.T) {
	e := newEnv(t, DefaultConfig(), nil)
	mid := t0 + 100*step
	queries := []*prompb.Query{
		query(t0, t0+int64(nSmp)*step, eq("__name__", "up")),
		query(mid, mid+200*step+7, eq("__name__", "up"), eq("instance", "b")),
		query(t0, t0+10*step, re("job", "a.*"), &prompb.LabelMatcher{Type: prompb.LabelMatcher_NEQ, Name: "instance", Value: "a"}),
		query(t0, t0+10*step, eq("__name__", "nope")),
	}
	want := []map[string][]prompb.Sample{
		e.wantSeries(acme, queries[0].StartTimestampMs, queries[0].EndTimestampMs, all),
		e.wantSeries(acme, queries[1].StartTimestampMs, queries[1].EndTimestampMs, has(`instance="b"`)),
		e.wantSeries(acme, queries[2].StartTimestampMs, queries[2].EndTimestampMs, has(`instance="b"`)),
		{},
	}
	require.Len(t, want[0], 2)
	require.Len(t, want[1][`{__name__="up", instance="b", job="api"}`], 201)
	for _, c := range []struct {
		name     string
		accepted []prompb.ReadRequest_ResponseType
	}{
		{"samples", samples},
		{"streamed", streamed},
		{"default", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := e.read(acme, c.accepted, queries...)
			require.Equal(t, want, got)
		})
	}
}

// TestNegotiation checks the response type chosen from
// accepted_response_types, as Prometheus' NegotiateResponseType does.
func TestNegotiation(t *testing.T) {
	e := newEnv(t, DefaultConfig(), nil)
	const unknown = prompb.ReadRequest_ResponseType(7)
	for _, c := range []struct {
		name     string
		accepted []prompb.ReadRequest_ResponseType
		want     string // content type, or "" for a 400
	}{
		{"none accepted: samples", nil, samplesContentType},
		{"samples", samples, samplesContentType},
		{"streamed", streamed, streamedContentType},
		{"streamed first", []prompb.ReadRequest_ResponseType{prompb.ReadRequest_STREAMED_XOR_CHUNKS, prompb.ReadRequest_SAMPLES}, streamedContentType},
		{"samples first", []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES, prompb.ReadRequest_STREAMED_XOR_CHUNKS}, samplesContentType},
		{"unknown skipped", []prompb.ReadRequest_ResponseType{unknown, prompb.ReadRequest_STREAMED_XOR_CHUNKS}, streamedContentType},
		{"only unknown", []prompb.ReadRequest_ResponseType{unknown}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp := e.post(acme, &prompb.ReadRequest{
				Queries:               []*prompb.Query{query(t0, t0+step, eq("__name__", "up"))},
				AcceptedResponseTypes: c.accepted,
			})
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			if c.want == "" {
				require.Equal(t, http.StatusBadRequest, resp.StatusCode)
				require.Equal(t, "server does not support any of the requested response types: [7]; supported: [SAMPLES STREAMED_XOR_CHUNKS]\n", string(body))
				return
			}
			require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
			require.Equal(t, c.want, resp.Header.Get("Content-Type"))
		})
	}
}

// TestStreamFrames checks that a series larger than a frame is split over
// frames of about MaxBytesInFrame, one series per frame, and reassembles
// exactly.
func TestStreamFrames(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxBytesInFrame = 200
	e := newEnv(t, cfg, nil)
	q := query(t0, t0+int64(nSmp)*step, eq("__name__", "up"))
	resp := e.post(acme, &prompb.ReadRequest{Queries: []*prompb.Query{q}, AcceptedResponseTypes: streamed})
	got, sizes, err := readStream(t, resp, []*prompb.Query{q})
	require.NoError(t, err)
	require.Equal(t, e.wantSeries(acme, q.StartTimestampMs, q.EndTimestampMs, all), got[0])
	require.Greater(t, len(sizes), 2, "each of the 2 series spans several frames")
	const maxChunkBytes = 2000 // an XOR chunk of 120 samples of these series is far smaller
	for _, n := range sizes {
		require.LessOrEqual(t, n, cfg.MaxBytesInFrame+maxChunkBytes)
	}
}

// TestTenantIsolation checks that a tenant reads only its own series,
// without the tenant label, whatever matchers it sends on _tenant_id.
func TestTenantIsolation(t *testing.T) {
	e := newEnv(t, DefaultConfig(), nil)
	mint, maxt := t0, t0+int64(nSmp)*step
	for _, accepted := range [][]prompb.ReadRequest_ResponseType{samples, streamed} {
		t.Run(accepted[0].String(), func(t *testing.T) {
			for _, id := range []tenancy.ID{acme, other} {
				foreign := map[tenancy.ID]string{acme: string(other), other: string(acme)}[id]
				got := e.read(id, accepted,
					query(mint, maxt, eq("__name__", "up")),
					query(mint, maxt, re("__name__", ".+")),
					query(mint, maxt, eq("__name__", "up"), eq(tenancy.Label, foreign)),
					query(mint, maxt, eq("__name__", "up"), re(tenancy.Label, ".+")),
					query(mint, maxt, eq("__name__", "up"), eq(tenancy.Label, string(id))),
					query(mint, maxt, re(tenancy.Label, foreign+"|"+string(id))),
				)
				mine := e.wantSeries(id, mint, maxt, all)
				require.Equal(t, mine, got[0])
				require.Equal(t, mine, got[1])
				for _, q := range got[2:] {
					require.Empty(t, q)
				}
				for _, q := range got {
					for ls := range q {
						require.NotContains(t, ls, tenancy.Label)
					}
				}
			}
		})
	}
}

// TestLimits checks the sample, series, rate and concurrency limits, each
// naming the setting that raises it.
func TestLimits(t *testing.T) {
	newLimits := func(t *testing.T, tl tenancy.TenantLimits) *tenancy.Limits {
		l, err := tenancy.NewLimits(tenancy.LimitsConfig{TenantLimits: tl}, nil, nil)
		require.NoError(t, err)
		return l
	}
	q := query(t0, t0+int64(nSmp)*step, eq("__name__", "up"))
	text := func(resp *http.Response) string {
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}

	t.Run("sample limit applies to samples responses only", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.SampleLimit = 10
		e := newEnv(t, cfg, nil)
		resp := e.post(acme, &prompb.ReadRequest{Queries: []*prompb.Query{q}})
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "exceeded sample limit (10) (raise --remote-read.sample-limit)\n", text(resp))
		got := e.read(acme, streamed, q)
		require.Len(t, got[0], 2)
	})

	t.Run("per-tenant samples", func(t *testing.T) {
		e := newEnv(t, DefaultConfig(), newLimits(t, tenancy.TenantLimits{MaxSamplesPerQuery: 10}))
		resp := e.post(acme, &prompb.ReadRequest{Queries: []*prompb.Query{q}})
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Contains(t, text(resp), "(raise --limits.max-samples-per-query or its per-tenant override max_samples_per_query)")
	})

	t.Run("per-tenant series", func(t *testing.T) {
		e := newEnv(t, DefaultConfig(), newLimits(t, tenancy.TenantLimits{MaxSeriesPerQuery: 1}))
		resp := e.post(acme, &prompb.ReadRequest{Queries: []*prompb.Query{q}})
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "remote-read request exceeded the series limit (1) over all its queries (raise --limits.max-series-per-query or its per-tenant override max_series_per_query)\n", text(resp))
		// One series is within the limit.
		require.Len(t, e.read(acme, samples, query(t0, t0+step, eq("instance", "a")))[0], 1)

		// A stream that hits the limit after its first frame is aborted,
		// so the client cannot take it for a complete answer: the
		// connection closes, before or after the first bytes arrive.
		b, err := (&prompb.ReadRequest{Queries: []*prompb.Query{q}, AcceptedResponseTypes: streamed}).Marshal()
		require.NoError(t, err)
		r, err := http.NewRequest(http.MethodPost, e.srv.URL+"/api/v1/read", bytes.NewReader(snappy.Encode(nil, b)))
		require.NoError(t, err)
		r.Header.Set(tenantHeader, string(acme))
		resp, err = http.DefaultClient.Do(r)
		if err == nil {
			defer resp.Body.Close()
			got, _, err := readStream(t, resp, []*prompb.Query{q})
			require.Error(t, err)
			require.LessOrEqual(t, len(got[0]), 1)
		}
	})

	t.Run("query rate", func(t *testing.T) {
		e := newEnv(t, DefaultConfig(), newLimits(t, tenancy.TenantLimits{QueryRate: 0.001, QueryBurst: 1}))
		require.Len(t, e.read(acme, samples, q)[0], 2)
		resp := e.post(acme, &prompb.ReadRequest{Queries: []*prompb.Query{q}})
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		require.NotEmpty(t, resp.Header.Get("Retry-After"))
		require.Contains(t, text(resp), "--limits.query-rate")
	})

	t.Run("per-tenant concurrency", func(t *testing.T) {
		limits := newLimits(t, tenancy.TenantLimits{MaxConcurrentQueries: 1})
		e := newEnv(t, DefaultConfig(), limits)
		release, err := limits.AcquireQuery(context.Background(), acme)
		require.NoError(t, err)
		resp := e.post(acme, &prompb.ReadRequest{Queries: []*prompb.Query{q}})
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		require.Contains(t, text(resp), "--limits.max-concurrent-queries")
		release()
		require.Len(t, e.read(acme, samples, q)[0], 2)
	})

	t.Run("global concurrency", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.ConcurrentLimit = 1
		e := newEnv(t, cfg, nil)
		release, err := e.h.slots.acquire(context.Background(), other) // a request holds the only slot
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // the waiting client gives up
		b, err := (&prompb.ReadRequest{Queries: []*prompb.Query{q}}).Marshal()
		require.NoError(t, err)
		r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/api/v1/read", bytes.NewReader(snappy.Encode(nil, b)))
		r.Header.Set(tenantHeader, string(acme))
		w := httptest.NewRecorder()
		newRouter(t, e.h, e.store, nil, slog.New(slog.DiscardHandler)).ServeHTTP(w, r)
		require.Equal(t, http.StatusServiceUnavailable, w.Code)
		require.Equal(t, "wait for a slot of --remote-read.concurrent-limit=1: context canceled\n", w.Body.String())
		release()
		require.Len(t, e.read(acme, samples, q)[0], 2)
	})
}

// TestRequestErrors checks refusals before any data is read.
func TestRequestErrors(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxRequestBytes = 1024
	e := newEnv(t, cfg, nil)
	valid, err := (&prompb.ReadRequest{Queries: []*prompb.Query{query(t0, t0, eq("__name__", "up"))}}).Marshal()
	require.NoError(t, err)
	big := make([]byte, 4096)
	bigReq, err := (&prompb.ReadRequest{Queries: []*prompb.Query{query(t0, t0, eq("__name__", strings.Repeat("x", 2000)))}}).Marshal()
	require.NoError(t, err)

	for _, c := range []struct {
		name   string
		tenant tenancy.ID
		scope  string
		body   []byte
		status int
		text   string
	}{
		{"no principal", "", "", snappy.Encode(nil, valid), 401, "no tenant in request context\n"},
		{"write scope only", acme, string(tenancy.ScopeWrite), snappy.Encode(nil, valid), 403, ""},
		{"not snappy", acme, "", []byte("\xff\xff\xff\xff\xff\xff"), 400, ""},
		{"not a ReadRequest", acme, "", snappy.Encode(nil, []byte("\x0a\x05hello")), 400, ""},
		{"body too large", acme, "", big, 413, "request body larger than 1024 bytes (raise --remote-read.max-request-bytes)\n"},
		{"decompresses too large", acme, "", snappy.Encode(nil, bigReq), 413, fmt.Sprintf("remote-read request decompresses to %d bytes, more than 1024 (raise --remote-read.max-request-bytes)\n", len(bigReq))},
		{"bad regexp", acme, "", mustSnappy(t, &prompb.ReadRequest{Queries: []*prompb.Query{query(t0, t0, re("job", "("))}}), 400, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := http.NewRequest(http.MethodPost, e.srv.URL+"/api/v1/read", bytes.NewReader(c.body))
			require.NoError(t, err)
			if c.tenant != "" {
				r.Header.Set(tenantHeader, string(c.tenant))
			}
			if c.scope != "" {
				r.Header.Set(scopesHeader, c.scope)
			}
			resp, err := http.DefaultClient.Do(r)
			require.NoError(t, err)
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, c.status, resp.StatusCode, string(b))
			require.Empty(t, resp.Header.Get("Content-Encoding"))
			if c.text != "" {
				require.Equal(t, c.text, string(b))
			}
		})
	}
}

func mustSnappy(t *testing.T, req *prompb.ReadRequest) []byte {
	b, err := req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, b)
}

// TestChunkedReader checks the framing against corruption and limits.
func TestChunkedReader(t *testing.T) {
	var buf bytes.Buffer
	cw := newChunkedWriter(&buf)
	for _, s := range []string{"one", "two", strings.Repeat("x", 300)} {
		require.NoError(t, cw.writeFrame([]byte(s)))
	}
	frames := buf.Bytes()

	cr := NewChunkedReader(bytes.NewReader(frames), 1024)
	for _, want := range []string{"one", "two", strings.Repeat("x", 300)} {
		b, err := cr.Next()
		require.NoError(t, err)
		require.Equal(t, want, string(b))
	}
	_, err := cr.Next()
	require.ErrorIs(t, err, io.EOF)

	_, err = NewChunkedReader(bytes.NewReader(frames), 100).Next()
	require.NoError(t, err) // "one" fits
	cr = NewChunkedReader(bytes.NewReader(frames), 100)
	for range 2 {
		_, err = cr.Next()
		require.NoError(t, err)
	}
	_, err = cr.Next()
	require.ErrorContains(t, err, "exceeds the limit of 100 bytes")

	corrupt := bytes.Clone(frames)
	corrupt[6] ^= 1 // a byte of "one"
	_, err = NewChunkedReader(bytes.NewReader(corrupt), 1024).Next()
	require.ErrorIs(t, err, ErrChecksum)

	for cut := 1; cut < 8; cut++ {
		_, err = NewChunkedReader(bytes.NewReader(frames[:cut]), 1024).Next()
		require.ErrorIs(t, err, io.ErrUnexpectedEOF, fmt.Sprint(cut))
	}
}
