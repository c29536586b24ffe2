package otlp_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/luminate-io/luminate/remotewrite"
	"github.com/luminate-io/luminate/tenancy"
)

// cacheExport is an export at t of gauges, cumulative sums and classic
// histograms (with and without a sum) of a few series each, round r
// giving the values; stale marks every point of the second series stale.
func cacheExport(at time.Time, r int, stale bool) pmetric.Metrics {
	md := pmetric.NewMetrics()
	sm := newResource(md)
	g := sm.Metrics().AppendEmpty()
	g.SetName("queue.depth")
	g.SetUnit("{item}")
	gp := g.SetEmptyGauge().DataPoints()
	sum := sm.Metrics().AppendEmpty()
	sum.SetName("requests")
	s := sum.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	h := sm.Metrics().AppendEmpty()
	h.SetName("latency")
	h.SetUnit("s")
	hs := h.SetEmptyHistogram()
	hs.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	for series := range 3 {
		flags := pmetric.DefaultDataPointFlags
		if stale && series == 1 {
			flags = flags.WithNoRecordedValue(true)
		}
		p := gp.AppendEmpty()
		p.SetTimestamp(ts(at))
		p.SetDoubleValue(float64(10*r + series))
		p.Attributes().PutStr("queue", fmt.Sprint(series))
		p.SetFlags(flags)
		q := s.DataPoints().AppendEmpty()
		q.SetStartTimestamp(ts(start))
		q.SetTimestamp(ts(at))
		q.SetIntValue(int64(100*r + series))
		q.Attributes().PutStr("code", fmt.Sprint(200+series))
		q.Attributes().PutInt("attempt", int64(series))
		q.SetFlags(flags)
		hp := hs.DataPoints().AppendEmpty()
		hp.SetStartTimestamp(ts(start))
		hp.SetTimestamp(ts(at))
		hp.Attributes().PutStr("route", fmt.Sprintf("/r%d", series))
		hp.ExplicitBounds().FromRaw([]float64{0.1, 1, 10})
		hp.BucketCounts().FromRaw([]uint64{uint64(r), 1, 2, uint64(series)})
		hp.SetCount(uint64(r + 3 + series))
		if series != 2 {
			hp.SetSum(float64(r) + 0.5)
		}
		hp.SetFlags(flags)
	}
	return md
}

// The series cache (the store's handles of the series of the points the
// fast path appended) stores what the labels' path stores: the same
// exports, to a receiver with the cache and to one without, leave the
// same series, samples, stale markers and metadata, with the same
// answers, for two tenants.
func TestSeriesCacheSameAsLabels(t *testing.T) {
	cached := newEnv(t, envOptions{})
	plain := newEnv(t, envOptions{ingest: func(c *remotewrite.Config) { c.SeriesCacheSize = 0 }})
	other := tenancy.Principal{Tenant: "other", Scopes: []tenancy.Scope{tenancy.ScopeWrite}}
	for r := range 5 {
		at := start.Add(time.Duration(r+1) * 15 * time.Second)
		body := protoBody(t, cacheExport(at, r, r == 3))
		for _, p := range []*tenancy.Principal{&writer, &other} {
			a := exportResponse(t, cached.post(body, post{principal: p}))
			b := exportResponse(t, plain.post(body, post{principal: p}))
			require.Equal(t, b.PartialSuccess().RejectedDataPoints(), a.PartialSuccess().RejectedDataPoints())
			require.Zero(t, a.PartialSuccess().RejectedDataPoints(), a.PartialSuccess().ErrorMessage())
		}
	}
	for _, id := range []tenancy.ID{"acme", "other"} {
		want, got := readPoints(t, plain.store, id), readPoints(t, cached.store, id)
		require.Len(t, got, 3+3+2+3+3*4+1, keys(got)) // gauges, sums, _sum, _count, buckets, target_info
		require.Equal(t, len(want), len(got))
		for k, w := range want {
			g := got[k]
			require.Len(t, g, len(w), k)
			for i := range w {
				require.Equal(t, w[i].T, g[i].T, k)
				if value.IsStaleNaN(w[i].V) {
					require.True(t, value.IsStaleNaN(g[i].V), "%s at %d: %v, want a stale marker", k, g[i].T, g[i].V)
					continue
				}
				require.False(t, math.IsNaN(g[i].V), k)
				require.Equal(t, w[i].V, g[i].V, k)
			}
		}
		require.Equal(t, readMetadata(t, plain.store, id), readMetadata(t, cached.store, id))
	}
	for _, name := range []string{"luminate_ingest_samples_accepted_total", "luminate_ingest_samples_received_total"} {
		require.Equal(t, counter(t, plain.reg, name, "tenant", "acme"), counter(t, cached.reg, name, "tenant", "acme"), name)
	}
}
