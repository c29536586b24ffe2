package remotewrite

import (
	"net/http"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

// TestSeriesCache: the steady state of remote write, the same series in
// request after request, appends by the series cache's handles, to the
// right series of the right tenant and store, with the same rejections and
// counts as the labels' path.
func TestSeriesCache(t *testing.T) {
	store := openStore(t, nil)
	reg := prometheus.NewRegistry()
	g := NewIngester(testConfig(t), nil, nil, reg)
	h := route(NewHandler(g), store)
	other := tenancy.Principal{Tenant: "other", Scopes: []tenancy.Scope{tenancy.ScopeWrite}}
	now := time.Now().Truncate(time.Millisecond)
	at := func(round int) int64 { return now.Add(time.Duration(round-10) * 15 * time.Second).UnixMilli() }
	write := func(p tenancy.Principal, round int, extra ...prompb.TimeSeries) int {
		// The same series in every round, one of them with its labels in
		// another order in odd rounds (other bytes, the same series).
		b := series("__name__", "b", "job", "x")
		if round%2 == 1 {
			b = series("job", "x", "__name__", "b")
		}
		req := &prompb.WriteRequest{Timeseries: append([]prompb.TimeSeries{
			{Labels: series("__name__", "a", "job", "x"), Samples: []prompb.Sample{{Timestamp: at(round), Value: float64(round)}}},
			{Labels: b, Samples: []prompb.Sample{{Timestamp: at(round), Value: float64(100 + round)}}},
		}, extra...)}
		return post(h, &p, encode(t, req), nil).Code
	}
	for round := range 6 {
		require.Equal(t, http.StatusNoContent, write(writer, round))
		require.Equal(t, http.StatusNoContent, write(other, round))
	}
	require.Equal(t, 6, g.series.len(), "three byte forms of series, two tenants")

	// A cached series with a sample outside the time window: rejected as
	// on the labels' path; the others stored.
	old := prompb.TimeSeries{Labels: series("__name__", "a", "job", "x"), Samples: []prompb.Sample{
		{Timestamp: now.Add(-365 * 24 * time.Hour).UnixMilli(), Value: 1}, {Timestamp: at(6) + 1, Value: 6.5}}}
	require.Equal(t, http.StatusBadRequest, write(writer, 6, old))
	require.Equal(t, 1.0, counter(t, reg, "luminate_ingest_samples_rejected_total", "tenant", "acme", "reason", string(ReasonTooOld)))

	want := func(base float64, rounds int) []tsample {
		var out []tsample
		for r := range rounds {
			out = append(out, tsample{at(r), base + float64(r)})
		}
		return out
	}
	a := append(want(0, 7), tsample{at(6) + 1, 6.5})
	got := readBack(t, store, writer.Tenant)
	require.Equal(t, map[string][]tsample{`{__name__="a", job="x"}`: a, `{__name__="b", job="x"}`: want(100, 7)}, got)
	got = readBack(t, store, other.Tenant)
	require.Equal(t, map[string][]tsample{`{__name__="a", job="x"}`: want(0, 6), `{__name__="b", job="x"}`: want(100, 6)}, got)
	require.Equal(t, 15.0, counter(t, reg, "luminate_ingest_samples_accepted_total", "tenant", "acme"))

	// Another store behind the same Ingester (a store reopened): its
	// handles are another owner's, so the cache finds none of the first
	// store's, and the samples land in the new store.
	store2 := openStore(t, nil)
	h2 := route(NewHandler(g), store2)
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: series("__name__", "a", "job", "x"), Samples: []prompb.Sample{{Timestamp: at(7), Value: 7}}}}}
	for range 2 {
		require.Equal(t, http.StatusNoContent, post(h2, &writer, encode(t, req), nil).Code)
	}
	require.Equal(t, map[string][]tsample{`{__name__="a", job="x"}`: {{at(7), 7}}}, readBack(t, store2, writer.Tenant))
	require.Len(t, readBack(t, store, writer.Tenant)[`{__name__="a", job="x"}`], 8)
}

// TestSeriesCacheOff: --ingest.series-cache-size=0 turns the cache off.
func TestSeriesCacheOff(t *testing.T) {
	store := openStore(t, nil)
	cfg := testConfig(t)
	cfg.SeriesCacheSize = 0
	g := NewIngester(cfg, nil, nil, nil)
	require.Nil(t, g.series)
	h := route(NewHandler(g), store)
	now := time.Now().Truncate(time.Millisecond)
	for i := range 3 {
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			{Labels: series("__name__", "a"), Samples: []prompb.Sample{{Timestamp: now.Add(time.Duration(i) * time.Second).UnixMilli(), Value: 1}}}}}
		require.Equal(t, http.StatusNoContent, post(h, &writer, encode(t, req), nil).Code)
	}
	require.Len(t, readBack(t, store, writer.Tenant)[`{__name__="a"}`], 3)
}

// TestSeriesCacheBounded: the cache holds at most its size, and keeps
// what is in use across a rotation.
func TestSeriesCacheBounded(t *testing.T) {
	const size = 4 * cacheShards
	c := newSeriesCache(size)
	handle := unsafe.Pointer(new(int))
	keys := make([]cacheKey, 0, 10*size)
	for i := range 10 * size {
		k := c.key(1, []byte{byte(i), byte(i >> 8), byte(i >> 16)})
		keys = append(keys, k)
		c.put(k, handle)
		require.LessOrEqual(t, c.len(), size)
	}
	require.Equal(t, handle, c.get(keys[len(keys)-1]))
	require.Nil(t, c.get(c.key(2, []byte{0, 0, 0})), "another owner's key")
	c.forget(keys[len(keys)-1])
	require.Nil(t, c.get(keys[len(keys)-1]))
}
