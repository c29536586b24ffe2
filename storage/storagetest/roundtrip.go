package storagetest

import (
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

// API-wide time bounds as the Prometheus HTTP API passes them when a
// request gives no start or end (v1.MinTime and v1.MaxTime in milliseconds).
const (
	apiMinTime int64 = -9223309901257974000
	apiMaxTime int64 = 9223309901257974999
)

// testRoundTrip writes through AppenderV2 and reads back
// through Querier and ChunkQuerier over ranges whose bounds are inclusive.
func testRoundTrip(t *testing.T, b Backend) {
	t.Run("empty store", func(t *testing.T) {
		ts := b.Open(t).ForTenant(tenantA)
		requireSelect(t, ts, nil, apiMinTime, apiMaxTime, re("__name__", ".+"))
		require.Empty(t, labelNames(t, ts, apiMinTime, apiMaxTime, nil), "LabelNames of an empty store")
		require.Empty(t, labelValues(t, ts, apiMinTime, apiMaxTime, "__name__", nil), "LabelValues of an empty store")
	})

	ts := b.Open(t).ForTenant(tenantA)
	data := []series{
		{ls("__name__", "rt_gauge", "instance", "a", "job", "api"), steps(1000, 1000, 10, linear(1.5, 0.25))},
		{ls("__name__", "rt_gauge", "instance", "b", "job", "api"), steps(1000, 1000, 10, linear(-3, 1))},
		{ls("__name__", "rt_counter", "job", "web"), steps(1000, 1000, 10, linear(0, 7))},
		{ls("__name__", "rt_early", "job", "batch"), steps(1000, 1000, 3, constant(42))}, // 1000..3000
		{ls("__name__", "rt_late", "job", "batch"), steps(8000, 1000, 3, constant(7))},   // 8000..10000
	}
	write(t, ts, data...)
	want := merge(data)
	all := re("__name__", "rt_.*")

	ranges := []struct {
		name       string
		mint, maxt int64
	}{
		{"API bounds", apiMinTime, apiMaxTime},
		{"int64 extremes", math.MinInt64, math.MaxInt64},
		{"exact bounds of the data", 1000, 10000},
		{"bounds on samples are inclusive", 3000, 6000},
		{"bounds between samples", 3001, 5999},
		{"last timestamp only", 10000, 10000},
		{"first timestamp only", 1000, 1000},
		{"before all data", 0, 999},
		{"after all data", 10001, 20000},
		{"gap of the early and late series", 4000, 7000},
	}
	for _, r := range ranges {
		t.Run(r.name, func(t *testing.T) {
			requireSelect(t, ts, filter(want, r.mint, r.maxt, all), r.mint, r.maxt, all)
		})
	}
	t.Run("one series", func(t *testing.T) {
		ms := []*labels.Matcher{eq("__name__", "rt_gauge"), eq("instance", "b")}
		requireSelect(t, ts, filter(want, 0, 20000, ms...), 0, 20000, ms...)
	})
}
