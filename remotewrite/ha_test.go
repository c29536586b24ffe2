package remotewrite

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

// TestWriteHA writes as the two Prometheus of an HA pair (remote write
// 1.0 and 2.0): the elected replica's samples are stored without the
// replica label, the other's are answered 202 and not stored, writes
// without both labels and tenants without accept_ha_samples pass as they
// are.
func TestWriteHA(t *testing.T) {
	store := openStore(t, nil)
	reg := prometheus.NewRegistry()
	g := NewIngester(testConfig(t), nil, nil, reg)
	limits := func(id tenancy.ID) tenancy.HALimits {
		h := tenancy.DefaultHALimits()
		h.AcceptHASamples = id == writer.Tenant
		return h
	}
	tr, err := tenancy.NewHATracker(tenancy.DefaultHAConfig(), tenancy.NewMemoryHAStore(), limits, nil, nil)
	require.NoError(t, err)
	g.SetHATracker(tr)
	h := route(NewHandler(g), store)
	now := time.Now().Truncate(time.Millisecond)

	write := func(p *tenancy.Principal, replica string, at time.Time, v float64) *http.Response {
		kv := []string{"job", "node", "cluster", "c1"}
		if replica != "" {
			kv = append(kv, "__replica__", replica)
		}
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			{Labels: series(append([]string{"__name__", "up"}, kv...)...), Samples: samplesAt(at, v)},
			{Labels: series(append(kv, "__name__", "scrape_samples")...), Samples: samplesAt(at, v)},
		}}
		w := post(h, p, encode(t, req), nil)
		return w.Result()
	}
	require.Equal(t, http.StatusNoContent, write(&writer, "r1", now, 1).StatusCode)
	require.Equal(t, http.StatusAccepted, write(&writer, "r2", now.Add(time.Second), 2).StatusCode)
	require.Equal(t, http.StatusNoContent, write(&writer, "r1", now.Add(15*time.Second), 3).StatusCode)

	// Remote write 2.0: the replica not elected gets 202 with its counts
	// as written.
	v2 := newV2Request()
	v2.add("__name__", "up", "job", "node", "cluster", "c1", "__replica__", "r2").Samples = samplesV2At(now.Add(16*time.Second), 4)
	w := postV2(h, &writer, v2.encode(t), nil)
	require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
	requireWritten(t, w, 1)
	v2 = newV2Request()
	v2.add("__name__", "up", "job", "node", "cluster", "c1", "__replica__", "r1").Samples = samplesV2At(now.Add(30*time.Second), 5)
	w = postV2(h, &writer, v2.encode(t), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	requireWritten(t, w, 1)

	// No replica label: stored as it is, whatever the election.
	require.Equal(t, http.StatusNoContent, write(&writer, "", now.Add(45*time.Second), 6).StatusCode)
	// Another tenant, not accepting HA samples: both replicas stored, labels kept.
	other := tenancy.Principal{Tenant: "other", Scopes: writer.Scopes}
	require.Equal(t, http.StatusNoContent, write(&other, "r1", now, 7).StatusCode)
	require.Equal(t, http.StatusNoContent, write(&other, "r2", now, 8).StatusCode)

	at := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	require.Equal(t, map[string][]tsample{
		`{__name__="up", cluster="c1", job="node"}`:             {{at(0), 1}, {at(15 * time.Second), 3}, {at(30 * time.Second), 5}, {at(45 * time.Second), 6}},
		`{__name__="scrape_samples", cluster="c1", job="node"}`: {{at(0), 1}, {at(15 * time.Second), 3}, {at(45 * time.Second), 6}},
	}, readBack(t, store, writer.Tenant))
	require.Equal(t, map[string][]tsample{
		`{__name__="up", __replica__="r1", cluster="c1", job="node"}`:             {{at(0), 7}},
		`{__name__="up", __replica__="r2", cluster="c1", job="node"}`:             {{at(0), 8}},
		`{__name__="scrape_samples", __replica__="r1", cluster="c1", job="node"}`: {{at(0), 7}},
		`{__name__="scrape_samples", __replica__="r2", cluster="c1", job="node"}`: {{at(0), 8}},
	}, readBack(t, store, "other"))
	require.Equal(t, 2.0, counter(t, reg, "luminate_ingest_requests_total", "tenant", "acme", "code", "202"))
}

// TestWriteHAMaxClusters: a write of one HA cluster more than the
// tenant's ha_max_clusters is a 400 naming the setting.
func TestWriteHAMaxClusters(t *testing.T) {
	store := openStore(t, nil)
	g := NewIngester(testConfig(t), nil, nil, nil)
	limits := func(tenancy.ID) tenancy.HALimits {
		h := tenancy.DefaultHALimits()
		h.AcceptHASamples, h.MaxClusters = true, 1
		return h
	}
	tr, err := tenancy.NewHATracker(tenancy.DefaultHAConfig(), tenancy.NewMemoryHAStore(), limits, nil, nil)
	require.NoError(t, err)
	g.SetHATracker(tr)
	h := route(NewHandler(g), store)
	now := time.Now()
	write := func(cluster string) *http.Response {
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			{Labels: series("__name__", "up", "cluster", cluster, "__replica__", "r1"), Samples: samplesAt(now, 1)},
		}}
		return post(h, &writer, encode(t, req), nil).Result()
	}
	require.Equal(t, http.StatusNoContent, write("c1").StatusCode)
	resp := write("c2")
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, string(body))
	require.Contains(t, string(body), "--limits.ha-max-clusters")
	require.Contains(t, string(body), "ha_max_clusters")
}
