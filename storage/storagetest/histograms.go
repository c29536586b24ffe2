package storagetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

// bucket is one histogram bucket: its index and absolute count.
type bucket struct {
	idx int32
	n   uint64
}

// newHistogram builds a valid integer histogram from absolute bucket
// counts (sorted by index; a zero count is an empty bucket inside a span).
// Count is the sum of all counts; custom values make it a custom bucket
// (schema -53) histogram.
func newHistogram(schema int32, zt float64, zc uint64, pos, neg []bucket, cv []float64, sum float64, hint histogram.CounterResetHint) *histogram.Histogram {
	h := &histogram.Histogram{
		CounterResetHint: hint,
		Schema:           schema,
		ZeroThreshold:    zt,
		ZeroCount:        zc,
		Count:            zc,
		Sum:              sum,
		CustomValues:     slices.Clone(cv),
	}
	h.PositiveSpans, h.PositiveBuckets = spansOf(pos, &h.Count)
	h.NegativeSpans, h.NegativeBuckets = spansOf(neg, &h.Count)
	return h
}

// spansOf returns the spans and delta-encoded counts of bs, adding the
// counts to count.
func spansOf(bs []bucket, count *uint64) ([]histogram.Span, []int64) {
	var spans []histogram.Span
	var deltas []int64
	var prev int64
	for i, b := range bs {
		switch gap := int32(0); {
		case i == 0:
			spans = append(spans, histogram.Span{Offset: b.idx, Length: 1})
		default:
			gap = b.idx - bs[i-1].idx - 1
			if gap == 0 {
				spans[len(spans)-1].Length++
			} else {
				spans = append(spans, histogram.Span{Offset: gap, Length: 1})
			}
		}
		deltas = append(deltas, int64(b.n)-prev)
		prev = int64(b.n)
		*count += b.n
	}
	return spans, deltas
}

// Histogram shapes of the round trip, one series each per schema and kind.
const (
	shapeCounter       = "counter"        // growing, unknown hints, layout widening
	shapeReset         = "reset"          // NotCounterReset hints, a real reset with the CounterReset hint
	shapeExplicitReset = "explicit_reset" // CounterReset hints on growing data
	shapeGauge         = "gauge"          // gauge histograms going up and down
)

var (
	histogramShapes  = []string{shapeCounter, shapeReset, shapeExplicitReset, shapeGauge}
	histogramSchemas = []int32{-4, 0, 8, histogram.CustomBucketsSchema}
	customValues     = []float64{0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 10} // bucket indexes 0 to 8 (+Inf)
)

// histogramAt returns sample i of a series of the given schema and shape:
// an integer histogram, or a stale marker at the indexes the shape puts
// one.
func histogramAt(schema int32, shape string, i int) *histogram.Histogram {
	hint := histogram.UnknownCounterReset
	c := uint64(i + 1) // grows with i: a counter
	wide := i >= 5     // a second span appears
	wider := i >= 12   // a bucket is added to the first span
	switch shape {
	case shapeReset:
		if i > 0 {
			hint = histogram.NotCounterReset
		}
		if i >= 10 {
			// Counts drop at 10: a counter reset, and the layout narrows.
			c, wide, wider = uint64(i-9), false, false
			if i == 10 {
				hint = histogram.CounterReset
			}
		}
	case shapeExplicitReset:
		if i%5 == 0 {
			hint = histogram.CounterReset
		}
	case shapeGauge:
		hint = histogram.GaugeType
		c = uint64(10 + i%4*3 - i%3*2) // up and down
		wide, wider = i%2 == 0, i%3 == 0
	}
	base := int32(-2) // bucket indexes around 1 (exponential), or from 0 (custom)
	switch schema {
	case 8:
		base = 500 // values around 2^(500/256): schema 8 has 256 buckets per power of two
	case -4:
		base = -1
	case histogram.CustomBucketsSchema:
		base = 0
	}
	pos := []bucket{{base, c}, {base + 1, 2 * c}, {base + 2, 3 * c}}
	if wider {
		extra := uint64(i - 11) // from 1 at 12, growing
		if shape == shapeGauge {
			extra = c
		}
		pos = append(pos, bucket{base + 3, extra})
	}
	if wide {
		// After a gap; one empty bucket inside the span.
		pos = append(pos, bucket{base + 5, c}, bucket{base + 6, 0}, bucket{base + 7, c + 1})
	}
	sum := float64(c)*1.75 + 0.1 // not a binary fraction: every bit counts
	if histogram.IsCustomBucketsSchema(schema) {
		return newHistogram(schema, 0, 0, pos, nil, customValues, sum, hint)
	}
	neg := []bucket{{base, c}, {base + 1, 1}}
	if shape == shapeGauge {
		sum = -sum
	}
	zt := 0.001
	if schema == 8 {
		zt = 1e-128
	}
	return newHistogram(schema, zt, c, pos, neg, nil, sum, hint)
}

// histogramSeries returns the 20 samples of a round-trip series from
// start every step: integer histograms, or float histograms (the integer
// ones scaled by 0.1, so that counts are not whole) when float is true.
// Shape counter has a stale marker at 15 (and continues), shape reset ends
// with one.
func histogramSeries(schema int32, shape string, float bool, start int64) []hsample {
	out := make([]hsample, 20)
	for i := range out {
		t := start + int64(i)*step
		stale := shape == shapeCounter && i == 15 || shape == shapeReset && i == 19
		switch {
		case stale && float:
			out[i] = staleFH(t)
		case stale:
			out[i] = staleH(t)
		case float:
			out[i] = fhsmp(t, histogramAt(schema, shape, i).ToFloat(nil).Mul(0.1))
		default:
			out[i] = hsmp(t, histogramAt(schema, shape, i))
		}
	}
	return out
}

func kindName(float bool) string {
	if float {
		return "float"
	}
	return "integer"
}

// roundTripHistograms is every schema, shape and kind as one series each
// under metric name.
func roundTripHistograms(name string, start int64) []hseries {
	var out []hseries
	for _, schema := range histogramSchemas {
		for _, shape := range histogramShapes {
			for _, float := range []bool{false, true} {
				lset := ls("__name__", name, "kind", kindName(float), "schema", fmt.Sprint(schema), "shape", shape)
				out = append(out, hseries{lset, histogramSeries(schema, shape, float, start)})
			}
		}
	}
	return out
}

// testHistogramRoundTrip writes integer and float histograms of schemas
// -4, 0, 8 and -53 (custom buckets) with zero, negative and empty buckets,
// changing layouts, every counter reset hint and stale markers, and reads
// them back through Querier (AtHistogram, AtFloatHistogram) and
// ChunkQuerier (decoded chunks): every field of every sample, sums bit
// for bit, stale markers as value.StaleNaN.
func testHistogramRoundTrip(t *testing.T, b Backend) {
	all := eq("__name__", "hist_rt")
	t.Run("one transaction", func(t *testing.T) {
		ts := b.Open(t).ForTenant(tenantA)
		data := roundTripHistograms("hist_rt", baseTime)
		for _, s := range data {
			for _, smp := range s.samples {
				if smp.H != nil {
					require.NoError(t, smp.H.Validate(), "test data %s @%d", s.lset, smp.T)
				}
				if smp.FH != nil {
					require.NoError(t, smp.FH.Validate(), "test data %s @%d", s.lset, smp.T)
				}
			}
		}
		hwrite(t, ts, data...)
		want := hmerge(data)
		requireSelectH(t, ts, want, true, math.MinInt64, math.MaxInt64, all)
		t.Run("one series", func(t *testing.T) {
			ms := []*labels.Matcher{all, eq("schema", "-53"), eq("shape", shapeReset), eq("kind", "float")}
			requireSelectH(t, ts, hfilter(want, 0, math.MaxInt64, ms...), true, 0, math.MaxInt64, ms...)
		})
		t.Run("part of the range", func(t *testing.T) {
			// Bounds on samples, inside the layout changes and the reset.
			mint, maxt := baseTime+4*step, baseTime+13*step
			requireSelectH(t, ts, hfilter(want, mint, maxt, all), false, mint, maxt, all)
			requireSelectH(t, ts, hfilter(want, mint+1, maxt-1, all), false, mint+1, maxt-1, all)
			requireSelectH(t, ts, nil, false, baseTime+20*step, baseTime+30*step, all)
		})
	})
	t.Run("transactions of 3 timestamps", func(t *testing.T) {
		ts := b.Open(t).ForTenant(tenantA)
		data := roundTripHistograms("hist_rt", baseTime)
		hwriteByTime(t, ts, 3, data...)
		requireSelectH(t, ts, hmerge(data), true, math.MinInt64, math.MaxInt64, all)
	})
	t.Run("one sample per series", func(t *testing.T) {
		ts := b.Open(t).ForTenant(tenantA)
		var data []hseries
		for _, s := range roundTripHistograms("hist_rt", baseTime) {
			data = append(data, hseries{s.lset, s.samples[13:14]})
		}
		hwrite(t, ts, data...)
		requireSelectH(t, ts, hmerge(data), true, math.MinInt64, math.MaxInt64, all)
	})
	t.Run("hints of a continued counter", func(t *testing.T) {
		// What the upstream PromQL suite expects (range_queries.test,
		// native_histograms.test): a counter histogram that continues the
		// previous sample of its series, written with the unknown hint,
		// reads back NotCounterReset as from Prometheus' chunks, also
		// when the previous sample is outside the queried range.
		ts := b.Open(t).ForTenant(tenantA)
		var data []hseries
		for _, float := range []bool{false, true} {
			var smp []hsample
			for i := range 6 {
				h := newHistogram(0, 0.001, uint64(i), []bucket{{0, uint64(i)}, {1, uint64(2 * i)}}, nil, nil, float64(i), histogram.UnknownCounterReset)
				if float {
					smp = append(smp, fhsmp(baseTime+int64(i)*step, h.ToFloat(nil)))
				} else {
					smp = append(smp, hsmp(baseTime+int64(i)*step, h))
				}
			}
			data = append(data, hseries{ls("__name__", "hist_rt", "kind", kindName(float)), smp})
		}
		hwrite(t, ts, data...)
		want := hmerge(data)
		for _, mint := range []int64{baseTime, baseTime + step, baseTime + 3*step} {
			got, chunked := selectH(t, ts, mint, math.MaxInt64, all)
			requireSameHSeries(t, hfilter(want, mint, math.MaxInt64), got, "continued counter")
			for _, read := range [][]hseries{got, chunked} {
				for _, s := range read {
					for _, smp := range s.samples {
						if smp.T == baseTime {
							continue // the first sample of the series
						}
						require.Equal(t, fmtHint(histogram.NotCounterReset), fmtHint(smp.hint()),
							"%s @%d read over [%d, ...]: a counter histogram continuing the previous sample", s.lset, smp.T, mint)
					}
				}
			}
		}
	})
	t.Run("special sums and empty histograms", func(t *testing.T) {
		ts := b.Open(t).ForTenant(tenantA)
		var data []hseries
		for _, f := range specialFloats {
			h := &histogram.Histogram{Schema: 0, ZeroThreshold: 0.001, Sum: f.v, Count: 0}
			data = append(data,
				hseries{ls("__name__", "hist_rt", "sum", f.name, "kind", "integer"), []hsample{
					hsmp(baseTime, h), hsmp(baseTime+step, histogramAt(0, shapeCounter, 3)), hsmp(baseTime+2*step, h),
				}},
				hseries{ls("__name__", "hist_rt", "sum", f.name, "kind", "float"), []hsample{
					fhsmp(baseTime, h.ToFloat(nil)), fhsmp(baseTime+step, histogramAt(0, shapeCounter, 3).ToFloat(nil)), fhsmp(baseTime+2*step, h.ToFloat(nil)),
				}},
			)
		}
		// Only a zero bucket; a zero threshold of 0; a negative zero count
		// in a float histogram bucket.
		data = append(data,
			hseries{ls("__name__", "hist_rt", "sum", "zero bucket only"), []hsample{
				hsmp(baseTime, newHistogram(3, 0.5, 7, nil, nil, nil, 1.25, histogram.UnknownCounterReset)),
				hsmp(baseTime+step, newHistogram(3, 0, 8, nil, nil, nil, 1.5, histogram.UnknownCounterReset)),
			}},
			hseries{ls("__name__", "hist_rt", "sum", "float gauge with an empty bucket"), []hsample{
				fhsmp(baseTime, newHistogram(1, 0.01, 0, []bucket{{0, 1}, {1, 0}, {2, 1}}, nil, nil, 3, histogram.GaugeType).ToFloat(nil)),
			}},
		)
		hwrite(t, ts, data...)
		requireSelectH(t, ts, hmerge(data), true, math.MinInt64, math.MaxInt64, all)
	})
}

// testHistogramOutOfOrder: histograms written out of order (within a
// transaction, older than the newest, older than all) come back in order;
// at a timestamp the later write wins whatever the kinds (float, integer
// histogram, float histogram, either way round, in one transaction or
// across transactions); a series may switch between floats and histograms.
func testHistogramOutOfOrder(t *testing.T, b Backend) {
	all := re("__name__", ".+")
	t.Run("out of order", func(t *testing.T) {
		ts := b.Open(t).ForTenant(tenantA)
		r := rand.New(rand.NewPCG(11, 12))
		var batches [][]hseries
		for _, float := range []bool{false, true} {
			for _, schema := range []int32{0, histogram.CustomBucketsSchema} {
				lset := ls("__name__", "hist_ooo", "kind", kindName(float), "schema", fmt.Sprint(schema))
				smp := histogramSeries(schema, shapeCounter, float, baseTime)
				// Every third sample held back; the rest shuffled in one
				// transaction.
				var first, held []hsample
				for i, s := range smp {
					if i%3 == 1 {
						held = append(held, s)
					} else {
						first = append(first, s)
					}
				}
				r.Shuffle(len(first), func(i, j int) { first[i], first[j] = first[j], first[i] })
				slices.Reverse(held)
				older := histogramSeries(schema, shapeGauge, float, baseTime-30*step)[:3]
				batches = append(batches, []hseries{{lset, first}}, []hseries{{lset, held}}, []hseries{{lset, older}})
			}
		}
		for _, batch := range batches {
			hwrite(t, ts, batch...)
		}
		requireSelectH(t, ts, hmerge(batches...), true, math.MinInt64, math.MaxInt64, all)
	})

	t.Run("last write wins across kinds", func(t *testing.T) {
		ts := b.Open(t).ForTenant(tenantA)
		h1, h2 := histogramAt(0, shapeCounter, 2), histogramAt(0, shapeCounter, 7)
		fh1, fh2 := histogramAt(8, shapeGauge, 1).ToFloat(nil), histogramAt(histogram.CustomBucketsSchema, shapeCounter, 4).ToFloat(nil)
		at := func(i int) int64 { return baseTime + int64(i)*step }
		// Each case: what is written at one timestamp, in order; sep
		// writes each in a transaction of its own.
		cases := []struct {
			name   string
			writes []hsample
		}{
			{"histogram then histogram", []hsample{hsmp(0, h1), hsmp(0, h2)}},
			{"float histogram then float histogram", []hsample{fhsmp(0, fh1), fhsmp(0, fh2)}},
			{"float then histogram", []hsample{fsmp(0, 1), hsmp(0, h1)}},
			{"histogram then float", []hsample{hsmp(0, h1), fsmp(0, 2)}},
			{"float then float histogram", []hsample{fsmp(0, 3), fhsmp(0, fh1)}},
			{"float histogram then float", []hsample{fhsmp(0, fh1), fsmp(0, 4)}},
			{"histogram then float histogram", []hsample{hsmp(0, h2), fhsmp(0, fh2)}},
			{"float histogram then histogram", []hsample{fhsmp(0, fh2), hsmp(0, h2)}},
			{"histogram then stale marker", []hsample{hsmp(0, h1), staleH(0)}},
			{"stale marker then float histogram", []hsample{staleH(0), fhsmp(0, fh1)}},
			{"float, histogram, float histogram, float", []hsample{fsmp(0, 5), hsmp(0, h1), fhsmp(0, fh2), fsmp(0, 6)}},
		}
		for _, sep := range []bool{true, false} {
			name := "one transaction"
			if sep {
				name = "separate transactions"
			}
			t.Run(name, func(t *testing.T) {
				for ci, c := range cases {
					lset := ls("__name__", "hist_lww", "case", fmt.Sprint(ci), "sep", fmt.Sprint(sep))
					// Neighbours before and after, written first: the
					// overwritten sample is in the middle of the series.
					around := hseries{lset, []hsample{hsmp(at(0), histogramAt(0, shapeCounter, 0)), fsmp(at(1), 1), hsmp(at(3), histogramAt(0, shapeCounter, 9))}}
					hwrite(t, ts, around)
					batches := [][]hseries{{around}}
					var writes []hsample
					for _, w := range c.writes {
						w.T = at(2)
						writes = append(writes, w)
					}
					if sep {
						for _, w := range writes {
							batch := []hseries{{lset, []hsample{w}}}
							hwrite(t, ts, batch...)
							batches = append(batches, batch)
						}
					} else {
						batch := []hseries{{lset, writes}}
						hwrite(t, ts, batch...)
						batches = append(batches, batch)
					}
					want := hmerge(batches...)
					require.Equal(t, c.writes[len(c.writes)-1].describe(), want[0].samples[2].describe(), "the test's own merge")
					requireSelectH(t, ts, want, true, math.MinInt64, math.MaxInt64, eq("__name__", "hist_lww"), eq("case", fmt.Sprint(ci)), eq("sep", fmt.Sprint(sep)))
				}
			})
		}
		t.Run("old timestamp overwritten by another kind", func(t *testing.T) {
			lset := ls("__name__", "hist_lww_old")
			long := hseries{lset, histogramSeries(0, shapeCounter, false, baseTime)}
			hwrite(t, ts, long)
			over := hseries{lset, []hsample{fsmp(baseTime+2*step, 42), fhsmp(baseTime+8*step, fh1), hsmp(baseTime+15*step, h2)}}
			hwrite(t, ts, over)
			requireSelectH(t, ts, hmerge([]hseries{long}, []hseries{over}), true, math.MinInt64, math.MaxInt64, eq("__name__", "hist_lww_old"))
		})
	})

	t.Run("series switching kinds", func(t *testing.T) {
		ts := b.Open(t).ForTenant(tenantA)
		switching := func(start int64) []hsample {
			var out []hsample
			i := 0
			next := func() int64 { i++; return start + int64(i-1)*step }
			for k := range 5 {
				out = append(out, fsmp(next(), float64(k)))
			}
			for k := range 5 {
				out = append(out, hsmp(next(), histogramAt(0, shapeCounter, k)))
			}
			for k := range 5 {
				out = append(out, fsmp(next(), float64(100+k)))
			}
			for k := range 5 {
				out = append(out, fhsmp(next(), histogramAt(-4, shapeCounter, k).ToFloat(nil)))
			}
			out = append(out, hsmp(next(), histogramAt(-53, shapeGauge, 0)), fsmp(next(), -1), fhsmp(next(), histogramAt(8, shapeGauge, 1).ToFloat(nil)), hsmp(next(), histogramAt(8, shapeCounter, 1)))
			return out
		}
		one := hseries{ls("__name__", "hist_switch", "write", "one transaction"), switching(baseTime)}
		hwrite(t, ts, one)
		each := hseries{ls("__name__", "hist_switch", "write", "one transaction per sample"), switching(baseTime)}
		for _, smp := range each.samples {
			hwrite(t, ts, hseries{each.lset, []hsample{smp}})
		}
		reversed := hseries{ls("__name__", "hist_switch", "write", "newest first"), switching(baseTime)}
		for _, smp := range slices.Backward(reversed.samples) {
			hwrite(t, ts, hseries{reversed.lset, []hsample{smp}})
		}
		want := hmerge([]hseries{one, each, reversed})
		requireSelectH(t, ts, want, true, math.MinInt64, math.MaxInt64, eq("__name__", "hist_switch"))
		mint, maxt := baseTime+7*step, baseTime+16*step
		requireSelectH(t, ts, hfilter(want, mint, maxt), false, mint, maxt, eq("__name__", "hist_switch"))
	})
}

// testHistogramPersistence: histograms, stale markers, kind switches and
// overwrites survive Reopen, and series continue after it.
func testHistogramPersistence(t *testing.T, b Backend) {
	st := b.Open(t)
	all := re("__name__", "hist_.*")
	var written [][]hseries
	commit := func(ss ...hseries) {
		hwrite(t, st.ForTenant(tenantA), ss...)
		written = append(written, ss)
	}
	check := func(t *testing.T) {
		requireSelectH(t, st.ForTenant(tenantA), hmerge(written...), true, math.MinInt64, math.MaxInt64, all)
	}
	rt := roundTripHistograms("hist_persist", baseTime)
	for i := 0; i < 20; i += 5 {
		var batch []hseries
		for _, s := range rt {
			batch = append(batch, hseries{s.lset, s.samples[i : i+5]})
		}
		commit(batch...)
	}
	mixed := ls("__name__", "hist_mixed")
	commit(hseries{mixed, []hsample{fsmp(baseTime, 1), hsmp(baseTime+step, histogramAt(0, shapeCounter, 1)), fsmp(baseTime+2*step, 2)}})
	commit(hseries{mixed, []hsample{fhsmp(baseTime+step, histogramAt(0, shapeCounter, 2).ToFloat(nil))}})
	t.Run("before reopen", check)
	st = b.Reopen(t, st)
	t.Run("after reopen", check)

	// Continue every series, go back before them, overwrite across kinds.
	var more []hseries
	for _, s := range rt {
		next := histogramSeries(histogramSchemaOf(t, s.lset), s.lset.Get("shape"), s.lset.Get("kind") == "float", baseTime+20*step)
		more = append(more, hseries{s.lset, next[:4]})
	}
	commit(more...)
	commit(hseries{mixed, []hsample{hsmp(baseTime-hour, histogramAt(8, shapeGauge, 3)), fsmp(baseTime+step, 9), hsmp(baseTime+3*step, histogramAt(0, shapeCounter, 5))}})
	t.Run("writes after reopen", check)
	st = b.Reopen(t, st)
	t.Run("after second reopen", check)
}

func histogramSchemaOf(t testing.TB, l labels.Labels) int32 {
	var s int32
	_, err := fmt.Sscan(l.Get("schema"), &s)
	require.NoError(t, err, "schema of %s", l)
	return s
}

// testHistogramTenantIsolation writes the same histogram series with
// different values into tenants whose IDs share a prefix and another one;
// each sees only its own, one that wrote nothing sees none.
func testHistogramTenantIsolation(t *testing.T, b Backend) {
	st := b.Open(t)
	own := map[tenancy.ID][]hseries{}
	for n, id := range []tenancy.ID{tenantA, tenantA1, tenantB} {
		var data []hseries
		for _, s := range roundTripHistograms("hist_tenant", baseTime) {
			if s.lset.Get("schema") != "0" && s.lset.Get("schema") != "-53" {
				continue
			}
			// Shift each tenant's series in time and value.
			var smp []hsample
			for _, x := range s.samples {
				x.T += int64(n) * step
				if x.FH != nil && !math.IsNaN(x.FH.Sum) {
					x.FH = x.FH.Copy().Mul(float64(n + 1))
				}
				smp = append(smp, x)
			}
			data = append(data, hseries{s.lset, smp})
		}
		data = append(data, hseries{ls("__name__", "hist_tenant_only", "owner", string(id)), []hsample{hsmp(baseTime, histogramAt(0, shapeGauge, n))}})
		hwrite(t, st.ForTenant(id), data...)
		own[id] = hmerge(data)
	}
	for _, id := range []tenancy.ID{tenantA, tenantA1, tenantB, tenantC} {
		t.Run("viewed by "+string(id), func(t *testing.T) {
			ts := st.ForTenant(id)
			requireSelectH(t, ts, own[id], true, math.MinInt64, math.MaxInt64, re("__name__", "hist_tenant.*"))
			for _, other := range []tenancy.ID{tenantA, tenantA1, tenantB} {
				requireSelectH(t, ts, hfilter(own[id], math.MinInt64, math.MaxInt64, eq("owner", string(other))), true,
					math.MinInt64, math.MaxInt64, eq("__name__", "hist_tenant_only"), eq("owner", string(other)))
				if other != id {
					requireSelectH(t, ts, nil, true, math.MinInt64, math.MaxInt64, re("__name__", "hist_tenant.*"), eq(tenancy.Label, string(other)))
				}
			}
		})
	}
}
