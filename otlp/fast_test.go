package otlp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/protobuf/encoding/protowire"
)

// recorder is an AppenderV2 that writes down every Append call.
type recorder struct {
	calls []string
	fail  func(n int) error // the error of the n-th call (from 0), if any
}

func (r *recorder) Append(ref promstorage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AOptions) (promstorage.SeriesRef, error) {
	var ex strings.Builder
	for _, e := range opts.Exemplars {
		fmt.Fprintf(&ex, "{%s %x ts=%d hasTs=%v}", e.Labels.String(), math.Float64bits(e.Value), e.Ts, e.HasTs)
	}
	hs := "nil"
	if h != nil {
		hs = fmt.Sprintf("{hint=%d schema=%d zt=%x zc=%d count=%x sum=%x pos=%v/%v neg=%v/%v cv=%v}", h.CounterResetHint, h.Schema, math.Float64bits(h.ZeroThreshold),
			h.ZeroCount, h.Count, math.Float64bits(h.Sum), h.PositiveSpans, h.PositiveBuckets, h.NegativeSpans, h.NegativeBuckets, h.CustomValues)
	}
	r.calls = append(r.calls, fmt.Sprintf("ref=%d %s st=%d t=%d v=%x h=%s fh=%v meta=%q/%q/%q family=%q ex=[%s]",
		ref, ls.String(), st, t, math.Float64bits(v), hs, fh, opts.Metadata.Type, opts.Metadata.Unit, opts.Metadata.Help, opts.MetricFamilyName, ex.String()))
	if r.fail != nil {
		if err := r.fail(len(r.calls) - 1); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

func (r *recorder) Commit() error   { return nil }
func (r *recorder) Rollback() error { return nil }

// upstream converts body as the reference path does: pdata, then the
// upstream converter.
func upstream(body []byte, s prometheusremotewrite.Settings, app promstorage.AppenderV2) (points int, warned bool, err error) {
	req := pmetricotlp.NewExportRequest()
	if err := req.UnmarshalProto(body); err != nil {
		return 0, false, fmt.Errorf("the fast path accepted a body pdata refuses: %w", err)
	}
	annots, err := prometheusremotewrite.NewPrometheusConverter(app).FromMetrics(context.Background(), req.Metrics(), s)
	return req.Metrics().DataPointCount(), len(annots) > 0, err
}

// differ runs both paths over body and reports whether the fast path took it.
func differ(t testing.TB, fc fastConverter, body []byte, s prometheusremotewrite.Settings) bool {
	t.Helper()
	return differCalls(t, fc, body, s) != nil
}

// differCalls is differ, returning the calls compared (nil: none).
func differCalls(t testing.TB, fc fastConverter, body []byte, s prometheusremotewrite.Settings) []string {
	t.Helper()
	calls, err := diff(fc, body, s)
	if err != nil {
		t.Fatalf("settings %+v: %v", s, err)
	}
	return calls
}

// diff runs both paths over body and returns the calls compared (nil: the
// fast path did not take the request), or how they differ.
func diff(fc fastConverter, body []byte, s prometheusremotewrite.Settings) ([]string, error) {
	var fast, ref recorder
	stats, ok, err := fc.convert(context.Background(), body, s, &fast)
	switch {
	case !ok && len(fast.calls) > 0:
		return nil, fmt.Errorf("ok=false after %d appends", len(fast.calls))
	case !ok:
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("fast: %w", err)
	}
	points, warned, uerr := upstream(body, s, &ref)
	if uerr != nil || warned {
		return nil, fmt.Errorf("the fast path took a request the converter reports (err %v, warnings %v)", uerr, warned)
	}
	if stats.Points != points || stats.Rejected != 0 {
		return nil, fmt.Errorf("stats %+v, want %d points", stats, points)
	}
	if len(fast.calls) != len(ref.calls) {
		return nil, fmt.Errorf("%d appends, upstream %d\nfast: %s\nref:  %s", len(fast.calls), len(ref.calls), strings.Join(fast.calls, "\n      "), strings.Join(ref.calls, "\n      "))
	}
	for i := range fast.calls {
		if fast.calls[i] != ref.calls[i] {
			return nil, fmt.Errorf("append %d:\nfast: %s\nref:  %s", i, fast.calls[i], ref.calls[i])
		}
	}
	return fast.calls, nil
}

var (
	genKeys = []string{
		"service.name", "service.namespace", "service.instance.id", "host.name", "k8s.pod.name",
		"http.method", "http_method", "a.b", "a_b", "a-b", "ünïcode", "9lead", "_under", "__dunder__",
		"__name__", "job", "instance", "otel_scope_name", "le", "trace_id", "span_id", "x", "", "a..b", "日本",
		"__type__", "__unit__",
	}
	// cleanKeys collide in no translation strategy.
	cleanKeys      = []string{"service.name", "service.namespace", "service.instance.id", "host.name", "k8s.pod.name", "http.method", "ünïcode", "9lead", "le", "x", "job"}
	genMetricNames = []string{
		"http.server.requests", "cpu_usage", "memory.usage", "weird-name!", "ünicode.metric", "requests_total",
		"process.runtime.go.gc.count", "system.cpu.utilization", "", "_x", "a..b", "ratio", "foo_seconds",
	}
	genUnits = []string{"", "1", "s", "ms", "By", "By/s", "{requests}", "%", "weird/unit", "1/s", "{packet}/s", "ünit"}
	genStrs  = []string{"", "v", "value with space", "ü", "a;b", "x\"y", "line\nbreak", "GET", "日本語"}
)

type gen struct {
	r *rand.Rand
	// weird: also generate what the fast path leaves to the upstream path.
	weird bool
	keys  []string
}

func (g *gen) pick(xs []string) string { return xs[g.r.IntN(len(xs))] }

func (g *gen) attrs(m pcommon.Map, n int) {
	for range n {
		k := g.pick(g.keys)
		switch g.r.IntN(10) {
		case 0:
			m.PutInt(k, g.r.Int64N(2000)-1000)
		case 1:
			d := []float64{0, 1.5, -2, 1e-7, 1e21, 3.0, math.Inf(1), math.NaN(), 123456789.125}
			m.PutDouble(k, d[g.r.IntN(len(d))])
		case 2:
			m.PutBool(k, g.r.IntN(2) == 0)
		case 3:
			m.PutEmptyBytes(k).FromRaw([]byte(g.pick(genStrs)))
		case 4:
			if g.weird && g.r.IntN(4) == 0 {
				m.PutEmptySlice(k).AppendEmpty().SetStr("s")
				continue
			}
			m.PutEmpty(k)
		default:
			m.PutStr(k, g.pick(genStrs))
		}
	}
}

func (g *gen) timestamp() pcommon.Timestamp {
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	switch g.r.IntN(8) {
	case 0:
		if g.weird || g.r.IntN(10) == 0 {
			return 0 // for a point's time: target_info from 1970, which the fast path leaves
		}
		return pcommon.Timestamp(base)
	case 1:
		return pcommon.Timestamp(base + g.r.Int64N(int64(8*time.Minute))) // several target_info samples
	}
	return pcommon.Timestamp(base + g.r.Int64N(int64(time.Minute)))
}

func (g *gen) numbers(ps pmetric.NumberDataPointSlice, exemplars bool) {
	for range g.r.IntN(4) + 1 {
		p := ps.AppendEmpty()
		g.attrs(p.Attributes(), g.r.IntN(6))
		p.SetTimestamp(g.timestamp())
		if g.r.IntN(3) > 0 {
			p.SetStartTimestamp(g.timestamp())
		}
		switch g.r.IntN(5) {
		case 0:
			p.SetIntValue(g.r.Int64N(1000) - 10)
		case 1: // no value
		default:
			p.SetDoubleValue(g.r.Float64() * 100)
		}
		if g.r.IntN(8) == 0 {
			p.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
		}
		if exemplars && g.r.IntN(3) == 0 {
			for range g.r.IntN(3) + 1 {
				e := p.Exemplars().AppendEmpty()
				e.SetTimestamp(g.timestamp())
				if g.r.IntN(2) == 0 {
					e.SetIntValue(g.r.Int64N(100))
				} else {
					e.SetDoubleValue(g.r.Float64())
				}
				if g.r.IntN(2) == 0 {
					e.SetTraceID(pcommon.TraceID{1, 2, 3, byte(g.r.IntN(256)), 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
				}
				if g.r.IntN(2) == 0 {
					e.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, byte(g.r.IntN(256))})
				}
				g.attrs(e.FilteredAttributes(), g.r.IntN(3))
				if g.r.IntN(6) == 0 {
					e.FilteredAttributes().PutStr("long", strings.Repeat("x", 130))
				}
			}
		}
	}
}

func (g *gen) histograms(ps pmetric.HistogramDataPointSlice) {
	for range g.r.IntN(3) + 1 {
		p := ps.AppendEmpty()
		g.attrs(p.Attributes(), g.r.IntN(5))
		p.SetTimestamp(g.timestamp())
		if g.r.IntN(3) > 0 {
			p.SetStartTimestamp(g.timestamp())
		}
		bounds := [][]float64{{}, {0.5}, {0.005, 0.01, 0.1, 1, 2.5, 10}, {-1, 0, 1e-9, 1e300}}[g.r.IntN(4)]
		if g.weird && g.r.IntN(4) == 0 {
			bounds = append(bounds, math.Inf(1))
		}
		p.ExplicitBounds().FromRaw(bounds)
		n := len(bounds) + 1
		if g.r.IntN(6) == 0 {
			n = g.r.IntN(n + 2) // fewer or more counts than bounds+1
		}
		var total uint64
		for range n {
			c := uint64(g.r.IntN(5))
			total += c
			p.BucketCounts().Append(c)
		}
		p.SetCount(total)
		if g.r.IntN(4) > 0 {
			p.SetSum(g.r.Float64() * 10)
		}
		if g.r.IntN(3) == 0 {
			p.SetMin(0.001)
			p.SetMax(12)
		}
		if g.r.IntN(8) == 0 {
			p.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
		}
		if g.r.IntN(3) == 0 {
			for range g.r.IntN(4) + 1 {
				e := p.Exemplars().AppendEmpty()
				e.SetTimestamp(g.timestamp())
				e.SetDoubleValue([]float64{0.001, 0.05, 0.5, 3, 100}[g.r.IntN(5)])
				if g.r.IntN(2) == 0 {
					e.SetTraceID(pcommon.TraceID{1, 2, 3, byte(g.r.IntN(256)), 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
				}
				g.attrs(e.FilteredAttributes(), g.r.IntN(2))
			}
		}
	}
}

func (g *gen) exponentials(ps pmetric.ExponentialHistogramDataPointSlice) {
	for range g.r.IntN(3) + 1 {
		p := ps.AppendEmpty()
		g.attrs(p.Attributes(), g.r.IntN(5))
		p.SetTimestamp(g.timestamp())
		if g.r.IntN(3) > 0 {
			p.SetStartTimestamp(g.timestamp())
		}
		p.SetScale(int32(g.r.IntN(18) - 4)) // -4..13: scaled down above 8
		if g.weird && g.r.IntN(5) == 0 {
			p.SetScale(-5)
		}
		var total uint64
		for _, b := range []pmetric.ExponentialHistogramDataPointBuckets{p.Positive(), p.Negative()} {
			if g.r.IntN(4) == 0 {
				continue
			}
			b.SetOffset(int32(g.r.IntN(40) - 20))
			for range g.r.IntN(12) {
				c := uint64(g.r.IntN(4))
				if g.r.IntN(3) == 0 {
					c = 0 // gaps
				}
				total += c
				b.BucketCounts().Append(c)
			}
		}
		p.SetZeroCount(uint64(g.r.IntN(3)))
		total += p.ZeroCount()
		p.SetCount(total)
		if g.r.IntN(4) > 0 && (total > 0 || g.weird) {
			p.SetSum(g.r.Float64() * 10)
		}
		if g.r.IntN(3) == 0 {
			p.SetZeroThreshold(1e-9)
		}
		if g.r.IntN(8) == 0 {
			p.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
		}
		if g.r.IntN(4) == 0 {
			e := p.Exemplars().AppendEmpty()
			e.SetTimestamp(g.timestamp())
			e.SetDoubleValue(g.r.Float64())
		}
	}
}

func (g *gen) metrics() pmetric.Metrics {
	md := pmetric.NewMetrics()
	for range g.r.IntN(3) + 1 {
		rm := md.ResourceMetrics().AppendEmpty()
		g.attrs(rm.Resource().Attributes(), g.r.IntN(7))
		if g.r.IntN(3) > 0 {
			rm.Resource().Attributes().PutStr("service.name", g.pick([]string{"api", "db", "ü svc"}))
		}
		for range g.r.IntN(2) + 1 {
			sm := rm.ScopeMetrics().AppendEmpty()
			if g.r.IntN(3) > 0 {
				sm.Scope().SetName(g.pick([]string{"io.opentelemetry.x", "lib", "ü"}))
				sm.Scope().SetVersion(g.pick([]string{"", "1.2.3"}))
				sm.SetSchemaUrl(g.pick([]string{"", "https://opentelemetry.io/schemas/1.26.0"}))
				g.attrs(sm.Scope().Attributes(), g.r.IntN(3))
			}
			for range g.r.IntN(4) + 1 {
				m := sm.Metrics().AppendEmpty()
				m.SetName(g.pick(genMetricNames))
				if !g.weird && m.Name() == "" {
					m.SetName("unnamed") // the converter refuses the empty name
				}
				m.SetUnit(g.pick(genUnits))
				m.SetDescription(g.pick([]string{"", "help text", "ü help"}))
				kind := g.r.IntN(13)
				if !g.weird {
					kind %= 12
				}
				switch kind {
				case 0, 1, 2:
					g.numbers(m.SetEmptyGauge().DataPoints(), true)
				case 3, 4, 5, 6:
					s := m.SetEmptySum()
					s.SetIsMonotonic(g.r.IntN(2) == 0)
					s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
					if g.weird && g.r.IntN(5) == 0 {
						s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
					}
					g.numbers(s.DataPoints(), true)
				case 7, 8:
					h := m.SetEmptyHistogram()
					h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
					if g.weird && g.r.IntN(5) == 0 {
						h.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
					}
					g.histograms(h.DataPoints())
				case 9, 10:
					h := m.SetEmptyExponentialHistogram()
					h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
					if g.weird && g.r.IntN(5) == 0 {
						h.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
					}
					g.exponentials(h.DataPoints())
				case 11:
					ps := m.SetEmptySummary().DataPoints()
					for range g.r.IntN(3) + 1 {
						p := ps.AppendEmpty()
						g.attrs(p.Attributes(), g.r.IntN(5))
						p.SetTimestamp(g.timestamp())
						p.SetStartTimestamp(g.timestamp())
						p.SetCount(uint64(g.r.IntN(100)))
						p.SetSum(g.r.Float64() * 100)
						for _, q := range []float64{0.5, 0.9, 0.99, 1e-3}[:g.r.IntN(5)] {
							qv := p.QuantileValues().AppendEmpty()
							qv.SetQuantile(q)
							qv.SetValue(g.r.Float64())
						}
						if g.r.IntN(8) == 0 {
							p.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
						}
					}
				case 12:
					m.SetEmptyGauge() // no points
				}
			}
		}
	}
	return md
}

// settingsCases are the translation strategies and option combinations
// the differential test runs.
func settingsCases(r *rand.Rand) prometheusremotewrite.Settings {
	var s prometheusremotewrite.Settings
	switch r.IntN(4) {
	case 0: // UnderscoreEscapingWithSuffixes
		s.AddMetricSuffixes = true
	case 1: // NoUTF8EscapingWithSuffixes
		s.AllowUTF8, s.AddMetricSuffixes = true, true
	case 2: // NoTranslation
		s.AllowUTF8 = true
	case 3: // UnderscoreEscapingWithoutSuffixes
	}
	s.DisableTargetInfo = r.IntN(4) == 0
	switch r.IntN(4) {
	case 1:
		s.PromoteResourceAttributes = prometheusremotewrite.NewPromoteResourceAttributes(config.OTLPConfig{PromoteResourceAttributes: []string{"host.name", "k8s.pod.name", "a.b", "a_b", "job", "service.name"}})
	case 2:
		s.PromoteResourceAttributes = prometheusremotewrite.NewPromoteResourceAttributes(config.OTLPConfig{PromoteAllResourceAttributes: true, IgnoreResourceAttributes: []string{"service.instance.id", "x"}})
	case 3:
		s.PromoteResourceAttributes = prometheusremotewrite.NewPromoteResourceAttributes(config.OTLPConfig{})
	}
	s.KeepIdentifyingResourceAttributes = r.IntN(3) == 0
	s.PromoteScopeMetadata = r.IntN(2) == 0
	s.EnableTypeAndUnitLabels = r.IntN(3) == 0
	if r.IntN(4) == 0 {
		s.Namespace = "ns"
	}
	if r.IntN(4) == 0 {
		s.ExternalLabels = map[string]string{"cluster": "c1", "job": "ext", "region": ""}
	}
	s.ConvertHistogramsToNHCB = r.IntN(5) == 0
	s.LabelNameUnderscoreSanitization = r.IntN(3) == 0
	s.LabelNamePreserveMultipleUnderscores = r.IntN(3) == 0
	if r.IntN(3) == 0 {
		s.LookbackDelta = time.Minute
	}
	return s
}

// quietUpstream silences the converter's log.Println about overwritten
// __name__ labels (a promoted resource attribute named __name__).
func quietUpstream(t testing.TB) {
	w := log.Writer()
	log.SetOutput(io.Discard)
	t.Cleanup(func() { log.SetOutput(w) })
}

func marshal(t testing.TB, md pmetric.Metrics) []byte {
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// TestFastConvertDifferential compares the fast path with the upstream
// converter, append for append, over random requests and settings.
func TestFastConvertDifferential(t *testing.T) {
	quietUpstream(t)
	for _, c := range []struct {
		name     string
		weird    bool
		keys     []string
		minShare float64 // of the requests the fast path must take
	}{
		{"clean", false, cleanKeys, 0.6},
		{"odd keys", false, genKeys, 0.2},
		{"weird", true, genKeys, 0.02},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(len(c.name))))
			g := gen{r: r, weird: c.weird, keys: c.keys}
			const n = 3000
			fc := newFastConverter()
			took, calls, exemplars, buckets, quantiles, natives, stale, targets := 0, 0, 0, 0, 0, 0, 0, 0
			for range n {
				md := g.metrics()
				s := settingsCases(r)
				body := marshal(t, md)
				got := differCalls(t, fc, body, s)
				if got == nil {
					continue
				}
				took++
				calls += len(got)
				for _, c := range got {
					switch {
					case strings.Contains(c, "_bucket"):
						buckets++
					case strings.Contains(c, "quantile="):
						quantiles++
					case strings.Contains(c, "target_info"):
						targets++
					case strings.Contains(c, "h={"):
						natives++
					}
					if !strings.HasSuffix(c, "ex=[]") {
						exemplars++
					}
					if strings.Contains(c, fmt.Sprintf("v=%x", value.StaleNaN)) {
						stale++
					}
				}
			}
			t.Logf("%s: the fast path took %d of %d requests: %d appends compared (%d with exemplars, %d buckets, %d quantiles, %d native histograms, %d stale, %d target_info)", c.name, took, n, calls, exemplars, buckets, quantiles, natives, stale, targets)
			if float64(took) < c.minShare*n {
				t.Errorf("%s: the fast path took only %d of %d requests", c.name, took, n)
			}
		})
	}
}

// TestFastConvertAppendErrors checks that when the appender refuses
// appends, the fast path goes on as the converter does (the rest of the
// metric's points are dropped, the next metric converts) and counts the
// refused points.
func TestFastConvertAppendErrors(t *testing.T) {
	quietUpstream(t)
	r := rand.New(rand.NewPCG(3, 3))
	g := gen{r: r, keys: cleanKeys}
	fc := newFastConverter()
	refused := errors.New("refused")
	compared := 0
	for range 500 {
		body := marshal(t, g.metrics())
		s := settingsCases(r)
		every := r.IntN(5) + 2
		fail := func(n int) error {
			if n%every == 1 {
				return refused
			}
			return nil
		}
		fast, ref := recorder{fail: fail}, recorder{fail: fail}
		stats, ok, err := fc.convert(context.Background(), body, s, &fast)
		if !ok {
			continue
		}
		_, _, uerr := upstream(body, s, &ref)
		if !slices.Equal(fast.calls, ref.calls) {
			t.Fatalf("settings %+v:\nfast: %s\nref:  %s", s, strings.Join(fast.calls, "\n      "), strings.Join(ref.calls, "\n      "))
		}
		if (err == nil) != (uerr == nil) || (err != nil && !errors.Is(err, refused)) {
			t.Fatalf("err %v, upstream %v", err, uerr)
		}
		if err != nil && (stats.Rejected > stats.Points || stats.Message != refused.Error()) { // a refused target_info rejects no point
			t.Fatalf("stats %+v after %v", stats, err)
		}
		compared++
	}
	if compared < 200 {
		t.Fatalf("only %d requests compared", compared)
	}
}

// TestFastConvertBudget checks that a body of tiny entries (empty points,
// empty attributes) is left to the upstream path rather than held at many
// times its size.
func TestFastConvertBudget(t *testing.T) {
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("tiny")
	ps := m.SetEmptyGauge().DataPoints()
	for range 100_000 {
		ps.AppendEmpty()
	}
	// A resource of 100,000 empty attributes (pdata's Map would take
	// quadratic time to build it).
	emptyKVs := bytes.Repeat([]byte{0x0a, 0x00}, 100_000)
	rm := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), emptyKVs) // ResourceMetrics.resource
	attrsBody := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), rm)
	fc := newFastConverter()
	for _, body := range [][]byte{marshal(t, md), attrsBody} {
		var rec recorder
		if _, ok, _ := fc.convert(context.Background(), body, prometheusremotewrite.Settings{}, &rec); ok || len(rec.calls) > 0 {
			t.Fatalf("body of %d bytes: ok=%v, %d appends", len(body), ok, len(rec.calls))
		}
	}
}

// TestFastConvertConcurrent converts from several goroutines through one
// converter (the handler shares one), each checking its results.
func TestFastConvertConcurrent(t *testing.T) {
	quietUpstream(t)
	fc := newFastConverter()
	var wg sync.WaitGroup
	for w := range 4 {
		r := rand.New(rand.NewPCG(uint64(w), 9))
		g := gen{r: r, keys: cleanKeys}
		bodies := make([][]byte, 50)
		settings := make([]prometheusremotewrite.Settings, len(bodies))
		for i := range bodies {
			bodies[i], settings[i] = marshal(t, g.metrics()), settingsCases(r)
		}
		wg.Go(func() {
			for i := range bodies {
				if _, err := diff(fc, bodies[i], settings[i]); err != nil {
					t.Errorf("settings %+v: %v", settings[i], err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestFastConvertWideSpan checks that a request whose points span more
// than the handler's target_info spacing allows (targetInfoLookback) is
// left to the handler's upstream path, which spaces them wider.
func TestFastConvertWideSpan(t *testing.T) {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "svc")
	rm.Resource().Attributes().PutStr("host.name", "h")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("g")
	ps := m.SetEmptyGauge().DataPoints()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, d := range []time.Duration{0, time.Hour} {
		ps.AppendEmpty().SetTimestamp(pcommon.NewTimestampFromTime(t0.Add(d)))
	}
	body := marshal(t, md)
	fc := newFastConverter()
	for _, c := range []struct {
		s  prometheusremotewrite.Settings
		ok bool
	}{
		{prometheusremotewrite.Settings{LookbackDelta: 5 * time.Minute}, false},
		{prometheusremotewrite.Settings{LookbackDelta: time.Hour}, true},
		{prometheusremotewrite.Settings{LookbackDelta: 5 * time.Minute, DisableTargetInfo: true}, true},
	} {
		if _, ok, err := fc.convert(context.Background(), body, c.s, &recorder{}); ok != c.ok || err != nil {
			t.Errorf("%+v: ok=%v, err %v", c.s, ok, err)
		}
	}
}

// TestFastConvertAdmit checks that admit sees the request's data points
// before anything is appended, and that its refusal appends nothing.
func TestFastConvertAdmit(t *testing.T) {
	body, points := benchBody(t)
	fc := newFastConverter().(*fastConv)
	refused := errors.New("too many")
	var rec recorder
	var seen int
	st, ok, err := fc.convertAdmit(context.Background(), body, prometheusremotewrite.Settings{}, &rec, func(n int) error {
		seen = n
		if len(rec.calls) > 0 {
			t.Errorf("%d appends before admit", len(rec.calls))
		}
		return refused
	})
	if !ok || !errors.Is(err, refused) || len(rec.calls) > 0 || seen != points || st.Points != points {
		t.Fatalf("ok=%v err=%v, %d appends, admit saw %d of %d points, stats %+v", ok, err, len(rec.calls), seen, points, st)
	}
	if _, ok, err := fc.convertAdmit(context.Background(), body, prometheusremotewrite.Settings{}, &rec, func(int) error { return nil }); !ok || err != nil || len(rec.calls) == 0 {
		t.Fatalf("ok=%v err=%v, %d appends", ok, err, len(rec.calls))
	}
}
