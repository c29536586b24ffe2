package otlp

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/luminate-io/luminate/remotewrite"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/badger"
	"github.com/luminate-io/luminate/tenancy"
)

// discard is an AppenderV2 that keeps nothing.
type discard struct{ n int }

func (d *discard) Append(promstorage.SeriesRef, labels.Labels, int64, int64, float64, *histogram.Histogram, *histogram.FloatHistogram, promstorage.AOptions) (promstorage.SeriesRef, error) {
	d.n++
	return 0, nil
}
func (d *discard) Commit() error   { return nil }
func (d *discard) Rollback() error { return nil }

// benchBody is 1000 series (100 metrics, half gauges and half cumulative
// sums, of 10 series each) of 10 points, with 3 resource attributes and
// 5 point attributes.
func benchBody(b testing.TB) ([]byte, int) {
	return benchBodyAt(b, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 15*time.Second)
}

// benchBodyAt is benchBody with points from t0 on, step apart.
func benchBodyAt(b testing.TB, t0 time.Time, step time.Duration) ([]byte, int) {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	ra := rm.Resource().Attributes()
	ra.PutStr("service.name", "checkout")
	ra.PutStr("service.instance.id", "pod-7f9c")
	ra.PutStr("host.name", "node-12.example.internal")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("go.opentelemetry.io/otel/sdk/metric")
	sm.Scope().SetVersion("1.47.0")
	for m := range 100 {
		metric := sm.Metrics().AppendEmpty()
		metric.SetName(fmt.Sprintf("app.requests.handled.%d", m))
		metric.SetDescription("Requests handled")
		var ps pmetric.NumberDataPointSlice
		if m%2 == 0 {
			metric.SetUnit("ms")
			ps = metric.SetEmptyGauge().DataPoints()
		} else {
			metric.SetUnit("{request}")
			s := metric.SetEmptySum()
			s.SetIsMonotonic(true)
			s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			ps = s.DataPoints()
		}
		for series := range 10 {
			for i := range 10 {
				p := ps.AppendEmpty()
				a := p.Attributes()
				a.PutStr("http.method", "GET")
				a.PutStr("http.route", fmt.Sprintf("/api/v1/items/%d", series))
				a.PutInt("http.status_code", 200)
				a.PutStr("net.peer.name", "frontend")
				a.PutStr("region", "eu-west-1")
				p.SetStartTimestamp(pcommon.NewTimestampFromTime(t0))
				p.SetTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Duration(i) * step)))
				if m%2 == 0 {
					p.SetDoubleValue(float64(i) * 1.5)
				} else {
					p.SetIntValue(int64(i * 7))
				}
			}
		}
	}
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		b.Fatal(err)
	}
	return body, md.DataPointCount()
}

func benchSettings() prometheusremotewrite.Settings {
	return prometheusremotewrite.Settings{AddMetricSuffixes: true}
}

// BenchmarkFastConvert: go test -run '^$' -bench 'FastConvert|UpstreamConvert' -benchmem ./otlp/
func BenchmarkFastConvert(b *testing.B) {
	body, points := benchBody(b)
	fc := newFastConverter()
	app := &discard{}
	s := benchSettings()
	if _, ok, err := fc.convert(context.Background(), body, s, app); !ok || err != nil { // warm the state up
		b.Fatal(ok, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime(b)
	for b.Loop() {
		if _, ok, err := fc.convert(context.Background(), body, s, app); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
	reportPoints(b, points, cpu)
}

func BenchmarkUpstreamConvert(b *testing.B) {
	body, points := benchBody(b)
	app := &discard{}
	s := benchSettings()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime(b)
	for b.Loop() {
		req := pmetricotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			b.Fatal(err)
		}
		if _, err := prometheusremotewrite.NewPrometheusConverter(app).FromMetrics(context.Background(), req.Metrics(), s); err != nil {
			b.Fatal(err)
		}
	}
	reportPoints(b, points, cpu)
}

// cpuTime returns the process's CPU time so far (all threads: the
// garbage collector's work counts), which a loaded machine disturbs less
// than the wall clock.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportPoints reports the time per data point, on the wall clock and in
// CPU time since cpu (a cpuTime).
func reportPoints(b *testing.B, points int, cpu time.Duration) {
	n := float64(b.N) * float64(points)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/point")
	b.ReportMetric(float64((cpuTime(b)-cpu).Nanoseconds())/n, "cpu-ns/point")
}

// TestFastConvertAllocs checks the fast path's steady state: converting
// the benchmark's 10,000 gauge and sum points allocates nothing.
func TestFastConvertAllocs(t *testing.T) {
	if !fastBuilderCopies {
		t.Skip("the labels build clones every string")
	}
	body, _ := benchBody(t)
	fc := newFastConverter()
	app := &discard{}
	s := benchSettings()
	s.PromoteResourceAttributes = prometheusremotewrite.NewPromoteResourceAttributes(config.OTLPConfig{PromoteResourceAttributes: []string{"host.name"}})
	s.PromoteScopeMetadata = true
	s.EnableTypeAndUnitLabels = true
	allocs := testing.AllocsPerRun(5, func() {
		if _, ok, err := fc.convert(context.Background(), body, s, app); !ok || err != nil {
			t.Fatal(ok, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per request of 10,000 points", allocs)
	}
}

// TestFastConvertAllocsSettings checks the steady state when, as the
// handler does, the settings (and their promoted attributes) are built
// anew for each request: a few allocations per request, none per point.
func TestFastConvertAllocsSettings(t *testing.T) {
	if !fastBuilderCopies {
		t.Skip("the labels build clones every string")
	}
	body, _ := benchBody(t)
	fc := newFastConverter()
	app := &discard{}
	o := tenancy.DefaultOTLPTranslation()
	o.PromoteResourceAttributes = []string{"host.name", "k8s.pod.name"}
	allocs := testing.AllocsPerRun(5, func() {
		if _, ok, err := fc.convert(context.Background(), body, Settings(o, 5*time.Minute), app); !ok || err != nil {
			t.Fatal(ok, err)
		}
	})
	if allocs > 10 {
		t.Fatalf("%v allocations per request of 10,000 points", allocs)
	}
	t.Logf("%v allocations per request of 10,000 points", allocs)
}

// BenchmarkHandlerBadger measures the whole receiver on Badger (body
// read, decoding, conversion, validation, the store's append and commit)
// with the fast converter and with pdata and the upstream converter,
// over bodies of 10,000 points as the benchmark's (fresh timestamps, so
// that every sample is stored). Run:
// go test -run '^$' -bench HandlerBadger -benchmem ./otlp/
func BenchmarkHandlerBadger(b *testing.B) {
	for _, c := range []struct {
		name string
		fast bool
	}{{"fast", true}, {"upstream", false}} {
		b.Run(c.name, func(b *testing.B) {
			store, err := badger.New(badger.Config{Path: b.TempDir()}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = store.Close() })
			var cfg remotewrite.Config
			fs := flag.NewFlagSet("bench", flag.ContinueOnError)
			cfg.RegisterFlags(fs)
			if err := fs.Parse(nil); err != nil {
				b.Fatal(err)
			}
			cfg.Retention = 30 * 24 * time.Hour
			cfg.MaxSamplesPerRequest = max(cfg.MaxSamplesPerRequest, 10_000)
			if err := cfg.Validate(); err != nil {
				b.Fatal(err)
			}
			h := NewHandler(remotewrite.NewIngester(cfg, nil, nil, prometheus.NewRegistry()), DefaultConfig(), nil, nil)
			h.fast = nil
			if c.fast {
				h.fast = newFastConverter()
			}
			principal := tenancy.Principal{Tenant: "bench", Scopes: []tenancy.Scope{tenancy.ScopeWrite}}
			tenant := storage.Tenant{Principal: principal, Store: store.ForTenant(principal.Tenant)}
			// Each body's points follow the last one's, 1 s apart, from an
			// hour ago: no sample is out of order.
			start := time.Now().Add(-time.Hour)
			var points int
			b.ReportAllocs()
			cpu := cpuTime(b)
			var stopped time.Duration // the CPU time spent building bodies
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				c0 := cpuTime(b)
				body, n := benchBodyAt(b, start.Add(time.Duration(i)*10*time.Second), time.Second)
				points = n
				r := httptest.NewRequest(http.MethodPost, "/otlp/v1/metrics", bytes.NewReader(body))
				r.Header.Set("Content-Type", "application/x-protobuf")
				stopped += cpuTime(b) - c0
				b.StartTimer()
				resp, err := h.Serve(r, tenant)
				if err != nil {
					b.Fatal(err)
				}
				if rr, ok := resp.(*Response); !ok || rr.Rejected > 0 {
					b.Fatalf("%+v", resp)
				}
			}
			reportPoints(b, points, cpu+stopped)
			b.ReportMetric(float64(b.N*points)/b.Elapsed().Seconds(), "points/s")
		})
	}
}

// histogramBody is 100 series of classic histograms (11 bounds) and 100
// of summaries (3 quantiles), 5 points each, with 3 resource attributes
// and 5 point attributes.
func histogramBody(t testing.TB) []byte {
	return histogramBodyAt(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
}

// histogramBodyAt is histogramBody with points from t0 on, 15 s apart.
func histogramBodyAt(t testing.TB, t0 time.Time) []byte {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	ra := rm.Resource().Attributes()
	ra.PutStr("service.name", "checkout")
	ra.PutStr("service.instance.id", "pod-7f9c")
	ra.PutStr("host.name", "node-12.example.internal")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("go.opentelemetry.io/otel/sdk/metric")
	bounds := []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	hm := sm.Metrics().AppendEmpty()
	hm.SetName("http.server.request.duration")
	hm.SetUnit("s")
	h := hm.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	qm := sm.Metrics().AppendEmpty()
	qm.SetName("rpc.latency")
	qm.SetUnit("ms")
	q := qm.SetEmptySummary()
	for series := range 100 {
		for i := range 5 {
			at := pcommon.NewTimestampFromTime(t0.Add(time.Duration(i) * 15 * time.Second))
			p := h.DataPoints().AppendEmpty()
			p.Attributes().PutStr("http.route", fmt.Sprintf("/api/v1/items/%d", series))
			p.Attributes().PutStr("http.method", "GET")
			p.SetStartTimestamp(pcommon.NewTimestampFromTime(t0.Add(-time.Hour)))
			p.SetTimestamp(at)
			p.ExplicitBounds().FromRaw(bounds)
			counts := make([]uint64, len(bounds)+1)
			for k := range counts {
				counts[k] = uint64(i + k)
			}
			p.BucketCounts().FromRaw(counts)
			p.SetCount(uint64(12*i + 66))
			p.SetSum(1.5)
			sp := q.DataPoints().AppendEmpty()
			sp.Attributes().PutStr("rpc.method", fmt.Sprintf("Get%d", series))
			sp.SetTimestamp(at)
			sp.SetCount(10)
			sp.SetSum(2)
			for _, qv := range []float64{0.5, 0.9, 0.99} {
				v := sp.QuantileValues().AppendEmpty()
				v.SetQuantile(qv)
				v.SetValue(qv * 10)
			}
		}
	}
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// TestFastConvertAllocsHistograms checks the steady state of classic
// histograms and summaries, a series per bucket or quantile: nothing
// allocated either.
func TestFastConvertAllocsHistograms(t *testing.T) {
	if !fastBuilderCopies {
		t.Skip("the labels build clones every string")
	}
	body := histogramBody(t)
	fc := newFastConverter()
	app := &discard{}
	s := benchSettings()
	allocs := testing.AllocsPerRun(5, func() {
		if _, ok, err := fc.convert(context.Background(), body, s, app); !ok || err != nil {
			t.Fatal(ok, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per request of 1,000 histogram and summary points", allocs)
	}
}
