package remoteread

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

// hSamples is the number of samples of each histogram series: several
// chunks of any chunk layout.
const hSamples = 400

// hsample is one sample of any kind as the tests write and read it.
type hsample struct {
	t  int64
	f  float64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

// histogramAt returns sample i of an integer histogram series of schema:
// counts growing with i, a layout that widens at 50, a counter reset at
// 200, a stale marker at 300, scaled by k.
func histogramAt(schema int32, i int, k uint64) *histogram.Histogram {
	if i == 300 {
		return &histogram.Histogram{Sum: math.Float64frombits(value.StaleNaN)}
	}
	c := uint64(i+1) * k
	if i >= 200 {
		c = uint64(i-199) * k
	}
	h := &histogram.Histogram{
		Schema:          schema,
		Count:           6 * c,
		Sum:             float64(c)*1.75 + 0.1,
		PositiveSpans:   []histogram.Span{{Offset: -1, Length: 3}},
		PositiveBuckets: []int64{int64(c), int64(c), int64(c)}, // c, 2c, 3c
	}
	if i >= 50 && i < 200 {
		h.PositiveSpans = append(h.PositiveSpans, histogram.Span{Offset: 2, Length: 2})
		h.PositiveBuckets = append(h.PositiveBuckets, -int64(2*c), 0) // c, c
		h.Count += 2 * c
	}
	if histogram.IsCustomBucketsSchema(schema) {
		h.PositiveSpans[0].Offset = 0
		h.CustomValues = []float64{0.01, 0.1, 0.5, 1, 2.5, 5, 10}
		return h
	}
	h.ZeroThreshold, h.ZeroCount = 0.001, c
	h.NegativeSpans, h.NegativeBuckets = []histogram.Span{{Offset: 0, Length: 2}}, []int64{int64(c), -int64(c) + 1} // c, 1
	h.Count += c + c + 1
	if schema == 8 {
		h.PositiveSpans[0].Offset = 500
	}
	return h
}

// loadHistograms writes tenant id's histogram series through AppenderV2,
// with values scaled by k, and returns them as written.
func (e *env) loadHistograms(id tenancy.ID, k uint64) map[string][]hsample {
	e.t.Helper()
	out := map[string][]hsample{}
	app := e.store.ForTenant(id).AppenderV2(context.Background())
	add := func(ls labels.Labels, s hsample) {
		_, err := app.Append(0, ls, 0, s.t, s.f, s.h, s.fh, promstorage.AOptions{})
		require.NoError(e.t, err, "Append(%s, %d)", ls, s.t)
		out[ls.String()] = append(out[ls.String()], s)
	}
	for _, schema := range []int32{-4, 0, 8, histogram.CustomBucketsSchema} {
		for _, kind := range []string{"integer", "float"} {
			ls := labels.FromStrings("__name__", "rr_hist", "kind", kind, "schema", strconv.Itoa(int(schema)))
			for i := range hSamples {
				h := histogramAt(schema, i, k)
				s := hsample{t: t0 + int64(i)*step, h: h}
				if kind == "float" {
					s = hsample{t: s.t, fh: h.ToFloat(nil)}
					if !value.IsStaleNaN(h.Sum) {
						s.fh = s.fh.Mul(0.1)
					}
				}
				add(ls, s)
			}
		}
	}
	gauge := labels.FromStrings("__name__", "rr_hist_gauge")
	mixed := labels.FromStrings("__name__", "rr_mixed")
	for i := range hSamples {
		ts := t0 + int64(i)*step
		g := histogramAt(0, i%7*10, k)
		g.CounterResetHint = histogram.GaugeType
		add(gauge, hsample{t: ts, fh: g.ToFloat(nil)})
		// Floats, histograms, floats, float histograms.
		switch i / 100 {
		case 0, 2:
			add(mixed, hsample{t: ts, f: float64(i) * float64(k)})
		case 1:
			add(mixed, hsample{t: ts, h: histogramAt(0, i, k)})
		default:
			add(mixed, hsample{t: ts, fh: histogramAt(-53, i-300+1, k).ToFloat(nil)})
		}
	}
	require.NoError(e.t, app.Commit())
	return out
}

// exact renders a sample with every field, hints and span layouts
// included, floats bit for bit.
func (s hsample) exact() string {
	bits := func(f float64) string { return strconv.FormatUint(math.Float64bits(f), 16) }
	switch {
	case s.h != nil:
		h := s.h
		return fmt.Sprintf("@%d h hint=%d schema=%d zt=%s zc=%d count=%d sum=%s pos=%v %v neg=%v %v cv=%v",
			s.t, h.CounterResetHint, h.Schema, bits(h.ZeroThreshold), h.ZeroCount, h.Count, bits(h.Sum),
			h.PositiveSpans, h.PositiveBuckets, h.NegativeSpans, h.NegativeBuckets, h.CustomValues)
	case s.fh != nil:
		h := s.fh
		return fmt.Sprintf("@%d fh hint=%d schema=%d zt=%s zc=%s count=%s sum=%s pos=%v %v neg=%v %v cv=%v",
			s.t, h.CounterResetHint, h.Schema, bits(h.ZeroThreshold), bits(h.ZeroCount), bits(h.Count), bits(h.Sum),
			h.PositiveSpans, h.PositiveBuckets, h.NegativeSpans, h.NegativeBuckets, h.CustomValues)
	}
	return fmt.Sprintf("@%d f %s", s.t, bits(s.f))
}

// loose renders a sample as it must come back from what was written: the
// hint only as gauge or not (Prometheus' chunks keep no more), stale
// histograms as their kind and StaleNaN, populated buckets by index
// whatever the span layout.
func (s hsample) loose() string {
	bits := func(f float64) string { return strconv.FormatUint(math.Float64bits(f), 16) }
	var fh *histogram.FloatHistogram
	kind := "fh"
	switch {
	case s.h != nil:
		fh, kind = s.h.ToFloat(nil), "h"
	case s.fh != nil:
		fh = s.fh
	default:
		return fmt.Sprintf("@%d f %s", s.t, bits(s.f))
	}
	if value.IsStaleNaN(fh.Sum) {
		return fmt.Sprintf("@%d %s stale", s.t, kind)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "@%d %s gauge=%t schema=%d count=%s sum=%s", s.t, kind, fh.CounterResetHint == histogram.GaugeType, fh.Schema, bits(fh.Count), bits(fh.Sum))
	if histogram.IsCustomBucketsSchema(fh.Schema) {
		fmt.Fprintf(&b, " cv=%v", fh.CustomValues)
	} else {
		fmt.Fprintf(&b, " zt=%s zc=%s neg=", bits(fh.ZeroThreshold), bits(fh.ZeroCount))
		for it := fh.NegativeBucketIterator(); it.Next(); {
			if bk := it.At(); bk.Count != 0 {
				fmt.Fprintf(&b, "%d:%s,", bk.Index, bits(bk.Count))
			}
		}
	}
	b.WriteString(" pos=")
	for it := fh.PositiveBucketIterator(); it.Next(); {
		if bk := it.At(); bk.Count != 0 {
			fmt.Fprintf(&b, "%d:%s,", bk.Index, bits(bk.Count))
		}
	}
	return b.String()
}

// renderSet renders the series of set (sorted by labels, as remote read
// returns them), each sample by render, merging series that come twice in
// a row (a streamed series split over frames), keeping samples in
// [mint, maxt].
func renderSet(t *testing.T, set promstorage.SeriesSet, mint, maxt int64, render func(hsample) string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	var prev labels.Labels
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		ls := s.Labels()
		k := ls.String()
		require.True(t, labels.Compare(prev, ls) <= 0, "series %s after %s", ls, prev)
		if _, ok := out[k]; ok {
			require.Equal(t, prev.String(), k, "series %s returned twice, not in a row", k)
		}
		prev = ls.Copy()
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			var smp hsample
			switch vt {
			case chunkenc.ValFloat:
				smp.t, smp.f = it.At()
			case chunkenc.ValHistogram:
				var h *histogram.Histogram
				smp.t, h = it.AtHistogram(nil)
				smp.h = h.Copy()
			case chunkenc.ValFloatHistogram:
				var fh *histogram.FloatHistogram
				smp.t, fh = it.AtFloatHistogram(nil)
				smp.fh = fh.Copy()
			}
			if smp.t >= mint && smp.t <= maxt {
				out[k] = append(out[k], render(smp))
			}
		}
		require.NoError(t, it.Err(), "iterating %s", k)
		if len(out[k]) == 0 {
			delete(out, k)
		}
	}
	require.NoError(t, set.Err())
	return out
}

// renderWritten renders what was written of the series filter selects in
// [mint, maxt].
func renderWritten(written map[string][]hsample, mint, maxt int64, filter func(string) bool) map[string][]string {
	out := map[string][]string{}
	for k, smp := range written {
		if !filter(k) {
			continue
		}
		for _, s := range smp {
			if s.t >= mint && s.t <= maxt {
				out[k] = append(out[k], s.loose())
			}
		}
	}
	return out
}

// readSamplesWithPrometheus decodes a SAMPLES response with Prometheus'
// own remote-read client code (remote.FromQueryResult), one series set
// per query; it requires the histograms of each series to say their kind.
func readSamplesWithPrometheus(t *testing.T, resp *http.Response) []*prompb.QueryResult {
	t.Helper()
	raw := readRaw(t, resp)
	var rr prompb.ReadResponse
	require.NoError(t, rr.Unmarshal(raw))
	for _, res := range rr.Results {
		for _, ts := range res.Timeseries {
			for _, h := range ts.Histograms {
				_, isInt := h.Count.(*prompb.Histogram_CountInt)
				require.Equal(t, !h.IsFloatHistogram(), isInt, "%v: integer histograms are sent with integer counts", ts.Labels)
			}
		}
	}
	return rr.Results
}

// chunkedReadLimit is Prometheus' default chunked_read_limit (50 MB).
const chunkedReadLimit = 50 << 20

// streamWithPrometheus decodes a streamed response to one query with
// Prometheus' own remote-read client code (remote.ChunkedReader and
// remote.NewChunkedSeriesSet).
func streamWithPrometheus(t *testing.T, resp *http.Response, q *prompb.Query) promstorage.SeriesSet {
	t.Helper()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, streamedContentType, resp.Header.Get("Content-Type"))
	return remote.NewChunkedSeriesSet(remote.NewChunkedReader(resp.Body, chunkedReadLimit, nil), resp.Body,
		q.StartTimestampMs, q.EndTimestampMs, func(error) {})
}

// promReadClient is Prometheus' own remote-read client (the one its
// remote_read configuration uses) reading as tenant id, accepting typ only.
func (e *env) promReadClient(t *testing.T, id tenancy.ID, typ prompb.ReadRequest_ResponseType) remote.ReadClient {
	t.Helper()
	u, err := url.Parse(e.srv.URL + "/api/v1/read")
	require.NoError(t, err)
	c, err := remote.NewReadClient("luminate", &remote.ClientConfig{
		URL:                   &config_util.URL{URL: u},
		Timeout:               model.Duration(time.Minute),
		Headers:               map[string]string{tenantHeader: string(id)},
		ChunkedReadLimit:      chunkedReadLimit,
		AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{typ},
	})
	require.NoError(t, err)
	return c
}

// chunkTypes counts the chunk types of a streamed response by series.
func chunkTypes(t *testing.T, resp *http.Response) map[string]map[prompb.Chunk_Encoding]int {
	t.Helper()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	out := map[string]map[prompb.Chunk_Encoding]int{}
	cr := NewChunkedReader(resp.Body, 64<<20)
	for {
		var cresp prompb.ChunkedReadResponse
		err := cr.NextProto(&cresp)
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		for _, cs := range cresp.ChunkedSeries {
			k := labelsOf(cs.Labels).String()
			if out[k] == nil {
				out[k] = map[prompb.Chunk_Encoding]int{}
			}
			for _, c := range cs.Chunks {
				out[k][c.Type]++
			}
		}
	}
}

// TestReadHistograms reads integer and float histograms (schemas -4, 0, 8
// and custom buckets, a reset, a stale marker, a gauge, a series switching
// between floats and histograms) from Badger by remote read, decoded by
// Prometheus' own client code: a SAMPLES response carries them as the
// store's Querier returns them, a STREAMED_XOR_CHUNKS response carries the
// store's histogram and float histogram chunks; both are what was written.
func TestReadHistograms(t *testing.T) {
	e := newEnv(t, DefaultConfig(), nil)
	written := e.loadHistograms(acme, 1)
	otherWritten := e.loadHistograms(other, 3)
	end := t0 + hSamples*step

	queries := []struct {
		name   string
		q      *prompb.Query
		filter func(string) bool
	}{
		{"all", query(t0, end, re("__name__", "rr_.*")), has("rr_")},
		{"part of the range", query(t0+120*step, t0+310*step, re("__name__", "rr_.*")), has("rr_")},
		{"one series", query(t0, end, eq("__name__", "rr_hist"), eq("kind", "float"), eq("schema", "-53")), func(s string) bool {
			return strings.Contains(s, `rr_hist"`) && strings.Contains(s, `"float"`) && strings.Contains(s, `"-53"`)
		}},
	}
	for _, tc := range queries {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			ms, err := fromLabelMatchers(q.Matchers)
			require.NoError(t, err)
			ts := e.store.ForTenant(acme)
			want := renderWritten(written, q.StartTimestampMs, q.EndTimestampMs, tc.filter)
			require.NotEmpty(t, want)

			// What the store's Querier and ChunkQuerier return, exactly.
			querier, err := ts.Querier(q.StartTimestampMs, q.EndTimestampMs)
			require.NoError(t, err)
			fromSelect := renderSet(t, querier.Select(t.Context(), true, nil, ms...), q.StartTimestampMs, q.EndTimestampMs, hsample.exact)
			require.NoError(t, querier.Close())
			cq, err := ts.ChunkQuerier(q.StartTimestampMs, q.EndTimestampMs)
			require.NoError(t, err)
			fromChunks := renderSet(t, promstorage.NewSeriesSetFromChunkSeriesSet(cq.Select(t.Context(), true, nil, ms...)), q.StartTimestampMs, q.EndTimestampMs, hsample.exact)
			require.NoError(t, cq.Close())

			t.Run("samples", func(t *testing.T) {
				resp := e.post(acme, &prompb.ReadRequest{Queries: []*prompb.Query{q, q}, AcceptedResponseTypes: samples})
				results := readSamplesWithPrometheus(t, resp)
				require.Len(t, results, 2)
				for _, res := range results {
					require.Equal(t, fromSelect, renderSet(t, remote.FromQueryResult(true, res), math.MinInt64, math.MaxInt64, hsample.exact),
						"SAMPLES response decoded by remote.FromQueryResult = the store's Select")
					require.Equal(t, want, renderSet(t, remote.FromQueryResult(true, res), math.MinInt64, math.MaxInt64, hsample.loose),
						"SAMPLES response = what was written")
				}
			})
			t.Run("streamed", func(t *testing.T) {
				req := &prompb.ReadRequest{Queries: []*prompb.Query{q}, AcceptedResponseTypes: streamed}
				got := renderSet(t, streamWithPrometheus(t, e.post(acme, req), q), q.StartTimestampMs, q.EndTimestampMs, hsample.exact)
				require.Equal(t, fromChunks, got, "streamed response decoded by remote.NewChunkedSeriesSet = the store's ChunkQuerier")
				got = renderSet(t, streamWithPrometheus(t, e.post(acme, req), q), q.StartTimestampMs, q.EndTimestampMs, hsample.loose)
				require.Equal(t, want, got, "streamed response = what was written")
			})
			t.Run("Prometheus' read client", func(t *testing.T) {
				for _, typ := range []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES, prompb.ReadRequest_STREAMED_XOR_CHUNKS} {
					set, err := e.promReadClient(t, acme, typ).Read(t.Context(), q, true)
					require.NoError(t, err, "%s", typ)
					want := fromSelect
					if typ == prompb.ReadRequest_STREAMED_XOR_CHUNKS {
						want = fromChunks
					}
					require.Equal(t, want, renderSet(t, set, q.StartTimestampMs, q.EndTimestampMs, hsample.exact), "%s read by remote.ReadClient", typ)
				}
			})
		})
	}

	t.Run("chunk types", func(t *testing.T) {
		q := query(t0, end, re("__name__", "rr_.*"))
		types := chunkTypes(t, e.post(acme, &prompb.ReadRequest{Queries: []*prompb.Query{q}, AcceptedResponseTypes: streamed}))
		for k, byType := range types {
			var wantTypes []prompb.Chunk_Encoding
			switch {
			case strings.Contains(k, `"integer"`):
				wantTypes = []prompb.Chunk_Encoding{prompb.Chunk_HISTOGRAM}
			case strings.Contains(k, `"float"`), strings.Contains(k, "gauge"):
				wantTypes = []prompb.Chunk_Encoding{prompb.Chunk_FLOAT_HISTOGRAM}
			default: // mixed
				wantTypes = []prompb.Chunk_Encoding{prompb.Chunk_XOR, prompb.Chunk_HISTOGRAM, prompb.Chunk_FLOAT_HISTOGRAM}
			}
			require.ElementsMatch(t, wantTypes, slices.Collect(mapKeys(byType)), "chunk types of %s", k)
		}
		require.Len(t, types, 10)
	})

	t.Run("tenant isolation", func(t *testing.T) {
		q := query(t0, end, re("__name__", "rr_.*"))
		want := renderWritten(otherWritten, t0, end, all)
		for _, res := range readSamplesWithPrometheus(t, e.post(other, &prompb.ReadRequest{Queries: []*prompb.Query{q}, AcceptedResponseTypes: samples})) {
			require.Equal(t, want, renderSet(t, remote.FromQueryResult(true, res), math.MinInt64, math.MaxInt64, hsample.loose))
		}
		req := &prompb.ReadRequest{Queries: []*prompb.Query{q}, AcceptedResponseTypes: streamed}
		require.Equal(t, want, renderSet(t, streamWithPrometheus(t, e.post(other, req), q), t0, end, hsample.loose))
	})
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestHistogramBudgets checks that histograms count against every bound of
// a request: the bytes of a SAMPLES response (exactly), the bytes of a
// stream's frames (exactly), and the samples of both response types (one
// per histogram, as Prometheus counts them).
func TestHistogramBudgets(t *testing.T) {
	e := newEnv(t, DefaultConfig(), nil)
	e.loadHistograms(acme, 1)
	q := query(t0, t0+hSamples*step, eq("__name__", "rr_hist"), eq("schema", "8"))
	req := func(types []prompb.ReadRequest_ResponseType) *prompb.ReadRequest {
		return &prompb.ReadRequest{Queries: []*prompb.Query{q}, AcceptedResponseTypes: types}
	}
	const nSamples = 2 * hSamples // integer and float

	t.Run("bytes of a samples response", func(t *testing.T) {
		defer func() { e.h.cfg.MaxResponseBytes = DefaultConfig().MaxResponseBytes }()
		raw := readRaw(t, e.post(acme, req(samples)))
		size := len(raw)
		require.Greater(t, size, nSamples*40, "the response is mostly histograms")
		e.h.cfg.MaxResponseBytes = size
		require.Equal(t, raw, readRaw(t, e.post(acme, req(samples))), "a response of exactly the budget fits")
		e.h.cfg.MaxResponseBytes = size - 1
		resp := e.post(acme, req(samples))
		require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
		require.Equal(t, fmt.Sprintf("remote-read response would exceed %d bytes (a streamed response type is not held in memory) (raise --remote-read.max-response-bytes)\n", size-1), body(t, resp))
	})

	t.Run("bytes of a stream", func(t *testing.T) {
		defer func() { e.h.cfg.MaxResponseBytes = DefaultConfig().MaxResponseBytes }()
		total := streamBytes(t, e.post(acme, req(streamed)))
		e.h.cfg.MaxResponseBytes = total
		require.Equal(t, total, streamBytes(t, e.post(acme, req(streamed))), "a stream of exactly the budget is whole")
		e.h.cfg.MaxResponseBytes = total - 1
		resp := e.post(acme, req(streamed))
		_, err := io.ReadAll(resp.Body)
		require.Error(t, err, "a stream over the budget is cut off")
	})

	for _, types := range [][]prompb.ReadRequest_ResponseType{samples, streamed} {
		t.Run("samples of a "+types[0].String()+" response", func(t *testing.T) {
			defer func() { e.h.limits = nil }()
			e.h.limits = newTenantLimits(t, func(tl *tenancy.TenantLimits) { tl.MaxSamplesPerQuery = nSamples })
			ok := e.post(acme, req(types))
			require.Equal(t, http.StatusOK, ok.StatusCode)
			_, err := io.ReadAll(ok.Body)
			require.NoError(t, err, "%d histogram samples are within a limit of %d", nSamples, nSamples)

			e.h.limits = newTenantLimits(t, func(tl *tenancy.TenantLimits) { tl.MaxSamplesPerQuery = nSamples - 1 })
			resp := e.post(acme, req(types))
			if types[0] == prompb.ReadRequest_SAMPLES {
				require.Equal(t, http.StatusBadRequest, resp.StatusCode)
				require.Equal(t, fmt.Sprintf("remote-read request exceeded the sample limit (%d) over all its queries (raise --limits.max-samples-per-query or its per-tenant override max_samples_per_query)\n", nSamples-1), body(t, resp))
				return
			}
			_, err = io.ReadAll(resp.Body)
			require.Error(t, err, "a stream over the sample limit is cut off")
		})
	}

	t.Run("remote-read sample limit", func(t *testing.T) {
		defer func() { e.h.cfg.SampleLimit = DefaultConfig().SampleLimit }()
		e.h.cfg.SampleLimit = nSamples
		readRaw(t, e.post(acme, req(samples)))
		e.h.cfg.SampleLimit = nSamples - 1
		resp := e.post(acme, req(samples))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, fmt.Sprintf("exceeded sample limit (%d) (raise --remote-read.sample-limit)\n", nSamples-1), body(t, resp))
	})
}

// streamBytes reads a whole stream and returns the bytes of its frames'
// data, as the response budget counts them.
func streamBytes(t *testing.T, resp *http.Response) int {
	t.Helper()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	cr := NewChunkedReader(resp.Body, 64<<20)
	n := 0
	for {
		b, err := cr.Next()
		if errors.Is(err, io.EOF) {
			return n
		}
		require.NoError(t, err)
		n += len(b)
	}
}
