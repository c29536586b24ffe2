package promql_test

import (
	"context"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/promql"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/badger"
	"github.com/luminate-io/luminate/tenancy"
)

// splitData loads 12 hours of awkward data: a counter that resets, one
// that goes stale and comes back, a series that ends where another with
// the same labels but its name begins, a gauge every 30 s and native
// histograms.
func splitData(t *testing.T, store *badger.Store) {
	t.Helper()
	const hour = int64(3_600_000)
	app := store.ForTenant(acme).AppenderV2(context.Background())
	add := func(s string, ts int64, v float64) {
		ls, err := parserMetric(s)
		require.NoError(t, err)
		_, err = app.Append(0, ls, 0, ts, v, nil, nil, promstorage.AOptions{})
		require.NoError(t, err)
	}
	for i := int64(0); i <= 12*60; i++ {
		ts := t0 + i*60_000
		if ts < t0+6*hour {
			add(`c{job="a",i="1"}`, ts, float64(i%300)*1.5)
		}
		if ts > t0+6*hour+10*60_000 {
			add(`other{job="a",i="1"}`, ts, float64(i)*2)
		}
		switch {
		case ts >= t0+3*hour && ts < t0+6*hour:
			add(`c{job="a",i="2"}`, ts, float64(i))
		case ts == t0+6*hour:
			add(`c{job="a",i="2"}`, ts, math.Float64frombits(value.StaleNaN))
		case ts >= t0+7*hour:
			add(`c{job="a",i="2"}`, ts, float64(i)/3)
		}
		add(`g{job="b",i="1"}`, ts, math.Sin(float64(i)/10)*100)
		add(`g{job="b",i="1"}`, ts+30_000, math.Cos(float64(i)/7)*100)
		if ts >= t0+2*hour && ts < t0+9*hour {
			ls, err := parserMetric(`h{job="a"}`)
			require.NoError(t, err)
			h := &histogram.Histogram{
				Count: uint64(10 * i), Sum: float64(i) * 3.5, Schema: 0, ZeroThreshold: 0.001, ZeroCount: uint64(i),
				PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}},
				PositiveBuckets: []int64{int64(4 * i), int64(i)},
				NegativeSpans:   []histogram.Span{{Offset: 0, Length: 1}},
				NegativeBuckets: []int64{int64(i)},
			}
			h.Count = h.ZeroCount + uint64(4*i) + uint64(5*i) + uint64(i)
			_, err = app.Append(0, ls, 0, ts, 0, h, nil, promstorage.AOptions{})
			require.NoError(t, err)
		}
	}
	require.NoError(t, app.Commit())
}

// sameResponse fails unless two responses are the same, their warnings
// and infos in any order (they come from a map).
func sameResponse(t *testing.T, q string, a, b response) {
	t.Helper()
	require.Equal(t, a.status, b.status, q)
	ea, eb := a.envelope(t), b.envelope(t)
	slices.Sort(ea.Warnings)
	slices.Sort(eb.Warnings)
	slices.Sort(ea.Infos)
	slices.Sort(eb.Infos)
	if !reflect.DeepEqual(ea, eb) {
		t.Fatalf("%s: split answers differ:\n%.2000s\n%.2000s", q, a.body, b.body)
	}
}

// TestSplitRangeQueries checks that range queries split in time answer
// exactly what the whole query answers, body for body, errors and limits
// included.
func TestSplitRangeQueries(t *testing.T) {
	store, err := badger.New(badger.Config{Path: t.TempDir()}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	splitData(t, store)

	queries := []string{
		`sum(rate(c[5m]))`, `sum by (job) (rate(c[5m]))`, `count({__name__=~".+"})`, `count({__name__=~"c|g|other"})`,
		`rate({__name__=~"c|other",i="1"}[5m])`, `c`, `g`, `h`, `-c`, `{i="1"}`,
		`histogram_quantile(0.9, rate(h[5m]))`, `sum(h)`, `histogram_count(h)`, `rate(h[10m])`,
		`max_over_time(g[1h:5m])`, `rate(c[5m:1m])`, `deriv(g[10m])`, `g offset 1h`, `topk(1, g)`,
		`absent(nonexistent)`, `absent(c)`, `time()`, `1`, `vector(1)`, `label_replace(c, "x", "$1", "i", "(.*)")`,
		`resets(c[1h])`, `increase(c[2h])`, `sum(rate(c[5m])) > 0`, `changes(g[30m])`, `rate(g[5m])`,
		`quantile_over_time(0.5, g[30m])`, `count_over_time(c[10m])`, `c and on(job) g`, `c or g`,
		`c @ end()`, `g @ start()`, `c + on(job) c`, `sum(c) / sum(g)`, `timestamp(c)`, `last_over_time(c[1h])`,
		`sort_desc(g)`, `avg(g) by (i)`, `stddev_over_time(g[1h])`, `predict_linear(g[1h], 600)`,
		`sum by (__name__) ({i="1"})`, `rate({i="1"}[5m])`, `c{i="2"} offset -30m`,
	}
	ranges := []struct{ start, end, step string }{
		{strconv.FormatInt(t0/1000, 10), strconv.FormatInt(t0/1000+12*3600, 10), "60"},
		{strconv.FormatInt(t0/1000+37, 10), strconv.FormatInt(t0/1000+11*3600+5, 10), "180"},
		{strconv.FormatInt(t0/1000-3600, 10), strconv.FormatInt(t0/1000+14*3600, 10), "15"},
	}
	run := func(t *testing.T, cfg promql.Config, check func(t *testing.T, q string, r0, r1 response)) {
		one, split := cfg, cfg
		one.RangeParallelism, split.RangeParallelism = 1, 4
		e1, e4 := newEnvOn(t, store, one, nil), newEnvOn(t, store, split, nil)
		parts := 0
		for _, rg := range ranges {
			start, _ := strconv.ParseInt(rg.start, 10, 64)
			end, _ := strconv.ParseInt(rg.end, 10, 64)
			step, _ := strconv.Atoi(rg.step)
			n, err := e4.api.RangeParts(`sum(rate(c[5m]))`, time.Unix(start, 0), time.Unix(end, 0), time.Duration(step)*time.Second)
			require.NoError(t, err)
			parts += n
			n, err = e4.api.RangeParts(`c @ end()`, time.Unix(start, 0), time.Unix(end, 0), time.Duration(step)*time.Second)
			require.NoError(t, err)
			require.Equal(t, 1, n)
		}
		require.Equal(t, 12, parts) // every range is split in 4
		for _, q := range queries {
			for _, rg := range ranges {
				p := vals("query", q, "start", rg.start, "end", rg.end, "step", rg.step)
				check(t, q, e1.get(acme, "/api/v1/query_range", p), e4.get(acme, "/api/v1/query_range", p))
			}
		}
	}
	t.Run("answers", func(t *testing.T) {
		ok := 0
		run(t, promql.DefaultConfig(), func(t *testing.T, q string, r1, r4 response) {
			sameResponse(t, q, r1, r4)
			if r1.status == http.StatusOK {
				ok++
			}
		})
		require.Greater(t, ok, len(queries)*2) // most queries answer
	})
	t.Run("exec", func(t *testing.T) {
		one, split := promql.DefaultConfig(), promql.DefaultConfig()
		one.RangeParallelism, split.RangeParallelism = 1, 4
		e1, e4 := newEnvOn(t, store, one, nil), newEnvOn(t, store, split, nil)
		tenant := storage.Tenant{Principal: tenancy.Principal{Tenant: acme}, Store: store.ForTenant(acme)}
		for _, q := range queries {
			req := promql.ExecRequest{Query: q, Start: time.UnixMilli(t0), End: time.UnixMilli(t0 + 12*3_600_000), Step: time.Minute}
			r1, err1 := e1.api.Exec(context.Background(), tenant, req)
			r4, err4 := e4.api.Exec(context.Background(), tenant, req)
			require.Equal(t, err1, err4, q)
			if err1 != nil {
				continue
			}
			require.Equal(t, r1.Value.String(), r4.Value.String(), q)
			require.Equal(t, r1.SeriesScanned, r4.SeriesScanned, q)
			r1.Close()
			r4.Close()
		}
	})
	t.Run("without delayed name removal", func(t *testing.T) {
		cfg := promql.DefaultConfig()
		cfg.DelayedNameRemoval = false
		run(t, cfg, func(t *testing.T, q string, r1, r4 response) {
			sameResponse(t, q, r1, r4)
		})
	})
	// A series limit the parts each stay under: {i="1"} is c and g in the
	// first half, g and other in the second.
	t.Run("series limit", func(t *testing.T) {
		cfg := promql.DefaultConfig()
		cfg.MaxSeries = 2
		failed := 0
		run(t, cfg, func(t *testing.T, q string, r1, r4 response) {
			sameResponse(t, q, r1, r4)
			if r1.status != http.StatusOK {
				failed++
			}
		})
		require.Positive(t, failed)
	})
	// A samples limit the whole query stays under and a part's share of
	// it not, and one both exceed.
	for _, n := range []int{3000, 500} {
		t.Run("samples limit "+strconv.Itoa(n), func(t *testing.T) {
			cfg := promql.DefaultConfig()
			cfg.MaxSamples = n
			run(t, cfg, func(t *testing.T, q string, r1, r4 response) {
				sameResponse(t, q, r1, r4)
			})
		})
	}
}
