package storagetest

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// withMetadata returns a float sample at t appended with metadata md under
// family (empty: the metric name).
func withMetadata(lset labels.Labels, t int64, family string, md metadata.Metadata) appendOne {
	return appendOne{lset: lset, smp: fsmp(t, 1), opts: promstorage.AOptions{MetricFamilyName: family, Metadata: md}}
}

func md(typ model.MetricType, unit, help string) metadata.Metadata {
	return metadata.Metadata{Type: typ, Unit: unit, Help: help}
}

// readMetadata returns Metadata(metric, limit), copied.
func readMetadata(t testing.TB, ts storage.TenantStore, metric string, limit int) map[string]metadata.Metadata {
	t.Helper()
	got, err := ts.Metadata(t.Context(), metric, limit)
	require.NoError(t, err, "Metadata(%q, %d)", metric, limit)
	out := make(map[string]metadata.Metadata, len(got))
	for k, v := range got {
		out[k] = v
	}
	return out
}

// requireMetadata requires Metadata(metric, limit) to return exactly
// want (nil and empty alike).
func requireMetadata(t testing.TB, ts storage.TenantStore, want map[string]metadata.Metadata, metric string, limit int) {
	t.Helper()
	if want == nil {
		want = map[string]metadata.Metadata{}
	}
	require.Equal(t, want, readMetadata(t, ts, metric, limit), "Metadata(%q, %d)", metric, limit)
}

// testMetadata: the latest metadata of each family is kept, under
// MetricFamilyName or the metric name; an Append without metadata keeps
// what is there; Metadata filters by metric and limits the families.
func testMetadata(t *testing.T, b Backend) {
	ts := b.Open(t).ForTenant(tenantA)
	reqs := ls("__name__", "http_requests_total", "job", "api")
	reqsWeb := ls("__name__", "http_requests_total", "job", "web")
	bucket := ls("__name__", "latency_seconds_bucket", "le", "0.5")
	count := ls("__name__", "latency_seconds_count")
	temp := ls("__name__", "temperature_celsius")

	appendOK(t, ts,
		withMetadata(reqs, 1000, "", md(model.MetricTypeCounter, "", "Requests.")),
		withMetadata(bucket, 1000, "latency_seconds", md(model.MetricTypeHistogram, "seconds", "Latency.")),
		withMetadata(count, 1000, "latency_seconds", md(model.MetricTypeHistogram, "seconds", "Latency.")),
		withMetadata(temp, 1000, "", md(model.MetricTypeGauge, "celsius", "Temperature.")),
	)
	want := map[string]metadata.Metadata{
		"http_requests_total": md(model.MetricTypeCounter, "", "Requests."),
		"latency_seconds":     md(model.MetricTypeHistogram, "seconds", "Latency."),
		"temperature_celsius": md(model.MetricTypeGauge, "celsius", "Temperature."),
	}
	t.Run("stored", func(t *testing.T) { requireMetadata(t, ts, want, "", 0) })

	// Later writes win, from another series of the family too; an Append
	// without metadata changes nothing.
	appendOK(t, ts, withMetadata(reqsWeb, 2000, "", md(model.MetricTypeCounter, "requests", "All requests.")))
	appendOK(t, ts, withMetadata(reqs, 3000, "", metadata.Metadata{}), withMetadata(temp, 3000, "", metadata.Metadata{}))
	appendOK(t, ts, withMetadata(bucket, 3000, "latency_seconds", md(model.MetricTypeHistogram, "seconds", "Request latency.")))
	want["http_requests_total"] = md(model.MetricTypeCounter, "requests", "All requests.")
	want["latency_seconds"] = md(model.MetricTypeHistogram, "seconds", "Request latency.")
	t.Run("latest wins", func(t *testing.T) { requireMetadata(t, ts, want, "", 0) })

	t.Run("metric filter", func(t *testing.T) {
		for name, m := range want {
			requireMetadata(t, ts, map[string]metadata.Metadata{name: m}, name, 0)
			requireMetadata(t, ts, map[string]metadata.Metadata{name: m}, name, 1)
		}
		requireMetadata(t, ts, nil, "latency_seconds_bucket", 0) // stored under the family
		requireMetadata(t, ts, nil, "nothing", 0)
		requireMetadata(t, ts, nil, "http_requests", 0) // a prefix is not a match
	})
	t.Run("limit", func(t *testing.T) {
		for _, limit := range []int{1, 2} {
			got := readMetadata(t, ts, "", limit)
			require.Len(t, got, limit, "Metadata(\"\", %d)", limit)
			for name, m := range got {
				require.Equal(t, want[name], m, "Metadata(\"\", %d)[%q]", limit, name)
			}
		}
		requireMetadata(t, ts, want, "", 3)
		requireMetadata(t, ts, want, "", 100)
	})
	t.Run("samples stored", func(t *testing.T) {
		requireSelectH(t, ts, hmerge([]hseries{
			{reqs, []hsample{fsmp(1000, 1), fsmp(3000, 1)}}, {reqsWeb, []hsample{fsmp(2000, 1)}},
			{bucket, []hsample{fsmp(1000, 1), fsmp(3000, 1)}}, {count, []hsample{fsmp(1000, 1)}},
			{temp, []hsample{fsmp(1000, 1), fsmp(3000, 1)}},
		}), true, math.MinInt64, math.MaxInt64, re("__name__", ".+"))
	})
}

// testMetadataBound: a store opened with Limited(0, 2) keeps metadata of
// each tenant's first 2 families only, updates them, and stores the
// samples of the others; across Reopen too.
func testMetadataBound(t *testing.T, b Backend) {
	st := b.Limited(t, 0, 2)
	fam := func(i int) string { return fmt.Sprintf("bounded_%d_total", i) }
	want := map[tenancy.ID]map[string]metadata.Metadata{tenantA: {}, tenantB: {}}
	var samples []hseries
	for i := range 4 {
		m := md(model.MetricTypeCounter, "", fmt.Sprintf("Family %d.", i))
		appendOK(t, st.ForTenant(tenantA), withMetadata(ls("__name__", fam(i)), baseTime+int64(i), "", m))
		samples = append(samples, hseries{ls("__name__", fam(i)), []hsample{fsmp(baseTime+int64(i), 1)}})
		if i < 2 {
			want[tenantA][fam(i)] = m
		}
	}
	// Another tenant has a bound of its own.
	for i := 3; i >= 2; i-- {
		m := md(model.MetricTypeGauge, "", fmt.Sprintf("B's family %d.", i))
		appendOK(t, st.ForTenant(tenantB), withMetadata(ls("__name__", fam(i)), baseTime, "", m))
		want[tenantB][fam(i)] = m
	}
	check := func(t *testing.T) {
		for id, w := range want {
			requireMetadata(t, st.ForTenant(id), w, "", 0)
		}
		requireSelectH(t, st.ForTenant(tenantA), hmerge(samples), true, math.MinInt64, math.MaxInt64, re("__name__", "bounded_.*"))
	}
	t.Run("bound reached", check)

	// A family within the bound is still updated; a new one still dropped.
	m := md(model.MetricTypeCounter, "requests", "Family 0, updated.")
	appendOK(t, st.ForTenant(tenantA), withMetadata(ls("__name__", fam(0)), baseTime+10, "", m),
		withMetadata(ls("__name__", fam(5)), baseTime+10, "", md(model.MetricTypeGauge, "", "Family 5.")))
	want[tenantA][fam(0)] = m
	samples = append(samples, hseries{ls("__name__", fam(0)), []hsample{fsmp(baseTime+10, 1)}}, hseries{ls("__name__", fam(5)), []hsample{fsmp(baseTime+10, 1)}})
	t.Run("updated within the bound", check)
	st = b.Reopen(t, st)
	t.Run("after reopen", check)
	appendOK(t, st.ForTenant(tenantA), withMetadata(ls("__name__", fam(6)), baseTime+20, "", md(model.MetricTypeGauge, "", "Family 6.")))
	samples = append(samples, hseries{ls("__name__", fam(6)), []hsample{fsmp(baseTime+20, 1)}})
	t.Run("new family after reopen", check)
}

// testMetadataPersistence: metadata survives Reopen, and is updated after
// it.
func testMetadataPersistence(t *testing.T, b Backend) {
	st := b.Open(t)
	want := map[string]metadata.Metadata{}
	for i := range 5 {
		name := fmt.Sprintf("persisted_%d", i)
		m := md(model.MetricTypeGauge, "bytes", fmt.Sprintf("Persisted %d.", i))
		appendOK(t, st.ForTenant(tenantA), withMetadata(ls("__name__", name), baseTime, "", m))
		want[name] = m
	}
	st = b.Reopen(t, st)
	requireMetadata(t, st.ForTenant(tenantA), want, "", 0)
	m := md(model.MetricTypeSummary, "", "Persisted 2, updated.")
	appendOK(t, st.ForTenant(tenantA), withMetadata(ls("__name__", "persisted_2"), baseTime+1, "", m))
	want["persisted_2"] = m
	requireMetadata(t, st.ForTenant(tenantA), want, "", 0)
	st = b.Reopen(t, st)
	requireMetadata(t, st.ForTenant(tenantA), want, "", 0)
	requireMetadata(t, st.ForTenant(tenantB), nil, "", 0)
}

// testMetadataTenantIsolation: tenants whose IDs share a prefix, writing
// the same families, each read their own.
func testMetadataTenantIsolation(t *testing.T, b Backend) {
	st := b.Open(t)
	own := map[tenancy.ID]map[string]metadata.Metadata{}
	for _, id := range []tenancy.ID{tenantA, tenantA1, tenantB} {
		m := md(model.MetricTypeCounter, "", "Requests of "+string(id)+".")
		only := md(model.MetricTypeGauge, "", "Only "+string(id)+".")
		appendOK(t, st.ForTenant(id),
			withMetadata(ls("__name__", "shared_total"), baseTime, "", m),
			withMetadata(ls("__name__", "only_"+string(id)), baseTime, "", only))
		own[id] = map[string]metadata.Metadata{"shared_total": m, "only_" + string(id): only}
	}
	for _, id := range []tenancy.ID{tenantA, tenantA1, tenantB, tenantC} {
		t.Run("viewed by "+string(id), func(t *testing.T) {
			ts := st.ForTenant(id)
			requireMetadata(t, ts, own[id], "", 0)
			for _, other := range slices.Sorted(maps.Keys(own)) {
				if other != id {
					requireMetadata(t, ts, nil, "only_"+string(other), 0)
				}
			}
		})
	}
}
