package remotewrite

import (
	"net/http"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
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

// TestDecodeDeferredLabels: with deferLabels, the decoder leaves the
// labels of a series unparsed when they are next to one another (counted
// against the limits all the same), ParseLabels gives what decoding them
// at once gives, labels apart are parsed at once, and a malformed label
// is reported by ParseLabels as Decode reports it.
func TestDecodeDeferredLabels(t *testing.T) {
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: series("__name__", "a", "job", "x", "empty", ""), Samples: []prompb.Sample{{Timestamp: 1, Value: 1}}},
		{Labels: series("__name__", "b", "région", "ü"), Samples: []prompb.Sample{{Timestamp: 2, Value: 2}}},
	}}
	data, err := req.Marshal()
	require.NoError(t, err)
	// A third series whose labels have a sample between them, by hand:
	// TimeSeries{labels: {name: __name__, value: c}, samples: {value: 3,
	// timestamp: 3}, labels: {name: job, value: y}}.
	lbl := func(n, v string) []byte {
		b := []byte{0x0a, byte(len(n))}
		b = append(b, n...)
		b = append(b, 0x12, byte(len(v)))
		return append(b, v...)
	}
	field := func(tag byte, b []byte) []byte { return append([]byte{tag, byte(len(b))}, b...) }
	smp := []byte{0x09, 0, 0, 0, 0, 0, 0, 0x08, 0x40, 0x10, 0x03}
	ts3 := append(append(field(0x0a, lbl("__name__", "c")), field(0x12, smp)...), field(0x0a, lbl("job", "y"))...)
	data = append(data, field(0x0a, ts3)...)

	plain := Decoder{Limits: DecodeLimits{Strict: true}}
	want, err := plain.Unmarshal(data)
	require.NoError(t, err)
	wantLabels := [][]Label{}
	for _, ts := range want.Timeseries {
		wantLabels = append(wantLabels, slices.Clone(ts.Labels))
	}

	d := Decoder{Limits: DecodeLimits{Strict: true}, deferLabels: true}
	got, err := d.Unmarshal(data)
	require.NoError(t, err)
	require.Len(t, got.Timeseries, 3)
	require.True(t, got.Timeseries[0].deferred)
	require.Empty(t, got.Timeseries[0].Labels)
	require.True(t, got.Timeseries[1].deferred)
	require.False(t, got.Timeseries[2].deferred, "labels apart are parsed at once")
	require.Nil(t, d.RawLabels(&got.Timeseries[2]))
	require.Equal(t, wantLabels[2], got.Timeseries[2].Labels)
	for i := range got.Timeseries {
		require.NoError(t, d.ParseLabels(&got.Timeseries[i]))
		require.Equal(t, wantLabels[i], got.Timeseries[i].Labels, "series %d", i)
		require.Equal(t, want.Timeseries[i].validUTF8, got.Timeseries[i].validUTF8, "series %d", i)
		require.Equal(t, want.Timeseries[i].Samples, got.Timeseries[i].Samples)
	}
	// The labels stay counted: a limit of 6 labels refuses the request
	// (7 label fields, the empty-valued one included).
	d = Decoder{Limits: DecodeLimits{Strict: true, MaxLabels: 6}, deferLabels: true}
	_, err = d.Unmarshal(data)
	var tm *TooManyError
	require.ErrorAs(t, err, &tm)

	// A Label field that is no Label message: Decode fails at once;
	// deferred, ParseLabels does, with the same error.
	bad := field(0x0a, append(field(0x0a, []byte{0x0a, 0x05, 'a'}), field(0x12, smp)...))
	_, werr := plain.Unmarshal(bad)
	require.ErrorIs(t, werr, ErrMalformed)
	d = Decoder{Limits: DecodeLimits{Strict: true}, deferLabels: true}
	got, err = d.Unmarshal(bad)
	require.NoError(t, err)
	require.Equal(t, werr, d.ParseLabels(&got.Timeseries[0]))
}

// TestWriteDeferredLabelsMalformed: a request with a malformed label is
// refused whole, the series cache on, as without it.
func TestWriteDeferredLabelsMalformed(t *testing.T) {
	store := openStore(t, nil)
	h := newWrite(testConfig(t), store, nil, nil, prometheus.NewRegistry())
	now := time.Now().UnixMilli()
	good := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("__name__", "ok"), Samples: []prompb.Sample{{Timestamp: now, Value: 1}}}}}
	data, err := good.Marshal()
	require.NoError(t, err)
	smp, err := (&prompb.Sample{Timestamp: now, Value: 2}).Marshal()
	require.NoError(t, err)
	field := func(tag byte, b []byte) []byte { return append([]byte{tag, byte(len(b))}, b...) }
	data = append(data, field(0x0a, append(field(0x0a, []byte{0x0a, 0x05, 'a'}), field(0x12, smp)...))...)
	w := post(h, &writer, snappy.Encode(nil, data), nil)
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), "decode remote write request")
	require.Empty(t, readBack(t, store, writer.Tenant))
}

// TestSeriesCacheV2: remote write 2.0, whose label references change from
// request to request with the symbols table, finds its series in the
// cache by their labels, for float samples and for integer, float and
// custom-bucket histograms alike; the histograms appended by handle read
// back bit for bit, an invalid or too old one is rejected as on the labels'
// path, a 1.0 series of the same labels shares the 2.0 series' key, and
// the tenant's usage counts what the handles appended.
func TestSeriesCacheV2(t *testing.T) {
	store := openStore(t, nil)
	reg := prometheus.NewRegistry()
	g := NewIngester(testConfig(t), nil, nil, reg)
	usage := tenancy.NewUsage()
	h := routeUsage(NewHandler(g), store, usage)
	now := time.Now().Truncate(time.Millisecond)
	at := func(round int) int64 { return now.Add(time.Duration(round-10) * 15 * time.Second).UnixMilli() }
	exp, fexp, custom, _ := testHistograms()
	// The histograms of round r: every count r+1 times the test's.
	scaled := func(r int) (*histogram.Histogram, *histogram.FloatHistogram, *histogram.Histogram) {
		k := int64(r + 1)
		e, c := exp.Copy(), custom.Copy()
		for _, x := range []*histogram.Histogram{e, c} {
			x.Count *= uint64(k)
			x.ZeroCount *= uint64(k)
			x.Sum *= float64(k)
			for i := range x.PositiveBuckets {
				x.PositiveBuckets[i] *= k
			}
			for i := range x.NegativeBuckets {
				x.NegativeBuckets[i] *= k
			}
		}
		return e, fexp.Copy().Mul(float64(k)), c
	}
	request := func(round int, extra func(*v2Request)) []byte {
		b := newV2Request()
		if round%2 == 1 { // other symbol references for the same series
			b.add("__name__", "other", "job", "y").Samples = []writev2.Sample{{Timestamp: at(round), Value: 1}}
		}
		e, fe, c := scaled(round)
		b.add("__name__", "lat", "job", "x").Histograms = []writev2.Histogram{writev2.FromIntHistogram(0, at(round), e)}
		b.add("__name__", "q", "job", "x").Histograms = []writev2.Histogram{writev2.FromFloatHistogram(0, at(round), fe)}
		b.add("__name__", "c", "job", "x").Histograms = []writev2.Histogram{writev2.FromIntHistogram(0, at(round), c)}
		b.add("__name__", "f", "job", "x").Samples = []writev2.Sample{{Timestamp: at(round), Value: float64(round)}}
		if extra != nil {
			extra(b)
		}
		return b.encode(t)
	}
	const rounds = 6
	for round := range rounds {
		w := postV2(h, &writer, request(round, nil), nil)
		require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
		s, hw, e := writtenHeaders(t, w)
		require.Equal(t, [3]int{1 + round%2, 3, 0}, [3]int{s, hw, e})
	}
	require.Equal(t, 5, g.series.len(), "every series, by its labels")

	// A cached series with an invalid histogram and one too old, beside a
	// valid one: 400, the valid ones stored.
	bad := exp.Copy()
	bad.Count = 99
	w := postV2(h, &writer, request(rounds, func(b *v2Request) {
		b.add("__name__", "lat", "job", "x").Histograms = []writev2.Histogram{
			writev2.FromIntHistogram(0, now.Add(-365*24*time.Hour).UnixMilli(), exp),
			writev2.FromIntHistogram(0, at(rounds)+1, bad),
		}
	}), nil)
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), "2 samples rejected")
	s, hw, e := writtenHeaders(t, w)
	require.Equal(t, [3]int{1, 3, 0}, [3]int{s, hw, e})
	require.Equal(t, 1.0, counter(t, reg, "luminate_ingest_samples_rejected_total", "tenant", "acme", "reason", string(ReasonTooOld)))
	require.Equal(t, 1.0, counter(t, reg, "luminate_ingest_samples_rejected_total", "tenant", "acme", "reason", string(ReasonInvalidHistogram)))

	// Remote write 1.0 with the labels of f: the same key.
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: series("__name__", "f", "job", "x"), Samples: []prompb.Sample{{Timestamp: at(rounds + 1), Value: rounds + 1}}}}}
	require.Equal(t, http.StatusNoContent, post(h, &writer, encode(t, req), nil).Code)
	require.Equal(t, 5, g.series.len(), "the 1.0 series found under the 2.0 key")

	got := readPoints(t, store, writer.Tenant)
	require.Len(t, got[`{__name__="lat", job="x"}`], rounds+1)
	require.Len(t, got[`{__name__="q", job="x"}`], rounds+1)
	require.Len(t, got[`{__name__="c", job="x"}`], rounds+1)
	for r := range rounds + 1 {
		e, fe, c := scaled(r)
		for name, want := range map[string]*histogram.Histogram{"lat": e, "c": c} {
			p := got[`{__name__="`+name+`", job="x"}`][r]
			require.Equal(t, at(r), p.T)
			require.True(t, want.Equals(p.H), "%s round %d: want %v, got %v", name, r, want, p.H)
		}
		p := got[`{__name__="q", job="x"}`][r]
		require.Equal(t, at(r), p.T)
		require.True(t, fe.Equals(p.FH), "q round %d: want %v, got %v", r, fe, p.FH)
	}
	f := got[`{__name__="f", job="x"}`]
	require.Len(t, f, rounds+2)
	for r, p := range f {
		require.Equal(t, point{T: at(r), V: float64(r)}, p)
	}
	require.Equal(t, float64(4*(rounds+1)+rounds/2+1), counter(t, reg, "luminate_ingest_samples_accepted_total", "tenant", "acme"))
	require.Equal(t, uint64(4*(rounds+1)+rounds/2+1), usage.Counts(writer.Tenant).SamplesIngested)
}

// TestSeriesCacheV1Histograms: remote write 1.0 histogram series are
// cached by their raw labels as float series are, and read back bit for
// bit.
func TestSeriesCacheV1Histograms(t *testing.T) {
	store := openStore(t, nil)
	g := NewIngester(testConfig(t), nil, nil, prometheus.NewRegistry())
	h := route(NewHandler(g), store)
	now := time.Now().Truncate(time.Millisecond)
	exp, _, _, _ := testHistograms()
	var want []*histogram.Histogram
	for round := range 5 {
		hh := exp.Copy()
		hh.Count += uint64(2 * round)
		hh.ZeroCount += uint64(2 * round)
		want = append(want, hh)
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels:     series("__name__", "lat", "job", "x"),
			Histograms: []prompb.Histogram{prompb.FromIntHistogram(now.Add(time.Duration(round-5)*15*time.Second).UnixMilli(), hh)},
		}}}
		w := post(h, &writer, encode(t, req), nil)
		require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	}
	require.Equal(t, 1, g.series.len())
	got := readPoints(t, store, writer.Tenant)[`{__name__="lat", job="x"}`]
	require.Len(t, got, len(want))
	for i, p := range got {
		require.True(t, want[i].Equals(p.H), "round %d: want %v, got %v", i, want[i], p.H)
	}
}
