package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
)

// decode undoes what encode did.
func decode(t *testing.T, r request) *prompb.WriteRequest {
	t.Helper()
	raw, err := snappy.Decode(nil, r.body)
	require.NoError(t, err)
	var wr prompb.WriteRequest
	require.NoError(t, wr.Unmarshal(raw))
	return &wr
}

func TestBuild(t *testing.T) {
	start := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name                   string
		w                      workload
		from, to               int
		wantRequestsPerWorker  []int
		wantSeries             int // distinct series over all rounds
		wantSamplesLastRequest int
	}{
		{"steady, even", workload{series: 1000, batch: 250, workers: 2, mode: modeSteady}, 1, 4, []int{6, 6}, 1000, 250},
		{"steady, ragged last request", workload{series: 1050, batch: 500, workers: 2, mode: modeSteady}, 0, 2, []int{4, 2}, 1050, 50},
		{"create, every round new", workload{series: 600, batch: 200, workers: 3, mode: modeCreate}, 0, 3, []int{3, 3, 3}, 1800, 200},
		{"one worker, one request", workload{series: 10, batch: 2000, workers: 1, mode: modeSteady}, 0, 1, []int{1}, 10, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.w.interval, tc.w.start = 15*time.Second, start
			perWorker, err := tc.w.build(tc.from, tc.to)
			require.NoError(t, err)
			require.Len(t, perWorker, tc.w.workers)

			series := map[string][]int64{} // timestamps by series
			var sb labels.ScratchBuilder
			total := 0
			for k, reqs := range perWorker {
				require.Len(t, reqs, tc.wantRequestsPerWorker[k], "worker %d", k)
				for _, r := range reqs {
					wr := decode(t, r)
					require.Len(t, wr.Timeseries, r.samples)
					require.LessOrEqual(t, r.samples, tc.w.batch)
					for _, ts := range wr.Timeseries {
						require.Len(t, ts.Labels, labelsPerSeries)
						ls := ts.ToLabels(&sb, nil)
						require.Equal(t, labelsPerSeries, ls.Len())
						require.True(t, isSorted(ts.Labels), "labels sorted as Prometheus sends them: %v", ts.Labels)
						name := ls.Get("__name__")
						require.Regexp(t, `^bench_metric_\d{3}(_total)?$`, name)
						for _, l := range ts.Labels {
							require.NotEmpty(t, l.Value, l.Name)
						}
						require.Len(t, ts.Samples, 1)
						series[ls.String()] = append(series[ls.String()], ts.Samples[0].Timestamp)
						total++
					}
				}
			}
			require.Equal(t, (tc.to-tc.from)*tc.w.series, total, "one sample per series per round")
			require.Len(t, series, tc.wantSeries)
			for s, tss := range series {
				// Each worker sends its requests in order, and a series is
				// always in the same worker's requests: its timestamps rise
				// by the interval from round to round.
				for i := 1; i < len(tss); i++ {
					require.Equal(t, int64(15000), tss[i]-tss[i-1], s)
				}
				if tc.w.mode == modeSteady {
					require.Len(t, tss, tc.to-tc.from, s)
					require.Equal(t, start.Add(time.Duration(tc.from)*15*time.Second).UnixMilli(), tss[0], s)
				} else {
					require.Len(t, tss, 1, "a series of create mode is in one round only: %s", s)
				}
			}
			last := perWorker[(tc.w.requestsPerRound()-1)%tc.w.workers]
			require.Equal(t, tc.wantSamplesLastRequest, last[len(last)-1].samples)
		})
	}
}

func isSorted(ls []prompb.Label) bool {
	for i := 1; i < len(ls); i++ {
		if ls[i-1].Name >= ls[i].Name {
			return false
		}
	}
	return true
}

func TestCountersAndGauges(t *testing.T) {
	w := workload{series: 200, batch: 200, workers: 1, mode: modeSteady, interval: time.Second, start: time.Unix(0, 0)}
	perWorker, err := w.build(0, 3)
	require.NoError(t, err)
	values := map[string][]float64{}
	for _, r := range perWorker[0] {
		for _, ts := range decode(t, r).Timeseries {
			name := ts.Labels[0].Value + "/" + ts.Labels[3].Value
			values[name] = append(values[name], ts.Samples[0].Value)
		}
	}
	counters, gauges := 0, 0
	for name, vs := range values {
		require.Len(t, vs, 3)
		if strings.HasSuffix(strings.SplitN(name, "/", 2)[0], "_total") {
			counters++
			require.Less(t, vs[0], vs[1], name)
			require.Less(t, vs[1], vs[2], name)
		} else {
			gauges++
		}
	}
	require.Equal(t, 100, counters)
	require.Equal(t, 100, gauges)
}

// TestHistograms decodes the histogram workload in both protocols: every
// sample is a valid integer native histogram with histogramBuckets
// populated buckets, the same in 1.0 and 2.0, and none of its counts
// decreases from round to round (a counter, no resets).
func TestHistograms(t *testing.T) {
	const rounds = 3
	decoded := map[string]map[string][]*histogram.Histogram{} // protocol -> series -> by round
	for _, proto := range []string{protoV1, protoV2} {
		w := workload{series: 150, batch: 100, workers: 1, mode: modeSteady, interval: time.Second, start: time.Unix(1000, 0), kind: kindHistogram, protocol: proto}
		perWorker, err := w.build(0, rounds)
		require.NoError(t, err)
		got := map[string][]*histogram.Histogram{}
		var sb labels.ScratchBuilder
		for _, r := range perWorker[0] {
			raw, err := snappy.Decode(nil, r.body)
			require.NoError(t, err)
			if proto == protoV1 {
				var wr prompb.WriteRequest
				require.NoError(t, wr.Unmarshal(raw))
				require.Len(t, wr.Timeseries, r.samples)
				for _, ts := range wr.Timeseries {
					require.Empty(t, ts.Samples)
					require.Len(t, ts.Histograms, 1)
					require.False(t, ts.Histograms[0].IsFloatHistogram())
					ls := ts.ToLabels(&sb, nil)
					got[ls.String()] = append(got[ls.String()], ts.Histograms[0].ToIntHistogram())
				}
				continue
			}
			var wr writev2.Request
			require.NoError(t, wr.Unmarshal(raw))
			require.Len(t, wr.Timeseries, r.samples)
			for _, ts := range wr.Timeseries {
				require.Empty(t, ts.Samples)
				require.Len(t, ts.Histograms, 1)
				ls, err := ts.ToLabels(&sb, wr.Symbols)
				require.NoError(t, err)
				require.Equal(t, labelsPerSeries, ls.Len())
				require.Regexp(t, `^bench_histogram_\d{3}_seconds$`, ls.Get("__name__"))
				got[ls.String()] = append(got[ls.String()], ts.Histograms[0].ToIntHistogram())
			}
		}
		require.Len(t, got, 150)
		decoded[proto] = got
	}
	require.Equal(t, decoded[protoV1], decoded[protoV2], "the same histograms in both protocols")
	for s, hs := range decoded[protoV1] {
		require.Len(t, hs, rounds, s)
		for i, h := range hs {
			require.NoError(t, h.Validate(), s)
			populated := 0
			for it := h.PositiveBucketIterator(); it.Next(); {
				if it.At().Count > 0 {
					populated++
				}
			}
			require.Equal(t, histogramBuckets, populated, s)
			if i > 0 {
				require.False(t, h.ToFloat(nil).DetectReset(hs[i-1].ToFloat(nil)), "%s: no counter reset from round %d to %d", s, i-1, i)
				require.Greater(t, h.Count, hs[i-1].Count, s)
			}
		}
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {90, 90 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0.1, time.Millisecond}} {
		require.Equal(t, tc.want, percentile(ds, tc.p), "p%v", tc.p)
	}
	require.Equal(t, time.Duration(0), percentile(nil, 50))
	require.Equal(t, 7*time.Millisecond, percentile([]time.Duration{7 * time.Millisecond}, 99))
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--mode=burst"}, `--mode="burst"`},
		{[]string{"--series=0"}, "--series=0: must be positive"},
		{[]string{"--url=localhost:9201"}, "want an http://"},
		{[]string{"--output=xml"}, `--output="xml"`},
		{[]string{"--kind=summary"}, `--kind="summary"`},
		{[]string{"--protocol=3"}, `--protocol="3"`},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			var out, errb bytes.Buffer
			require.Equal(t, 2, run(context.Background(), tc.args, &out, &errb))
			require.Empty(t, out.String())
			require.Contains(t, errb.String(), tc.want)
		})
	}
}

func TestResultJSON(t *testing.T) {
	tl := &tally{}
	tl.record(10*time.Millisecond, 2000, nil)
	tl.record(30*time.Millisecond, 2000, &statusError{code: 400, body: "bad"})
	lat, rate := summarize(tl, time.Second)
	require.Equal(t, 2000.0, rate, "only acknowledged samples count")
	require.Equal(t, 30.0, lat.Max)
	b, err := json.Marshal(result{Samples: tl.samples, Failed: tl.failed, Errors: tl.errors, LatencyMs: lat})
	require.NoError(t, err)
	require.Contains(t, string(b), `"errors":{"HTTP 400":1}`)
	require.Contains(t, string(b), `"latencyMs":{"p50":10,"p90":30,"p99":30,"max":30}`)
}

// TestRandomWalk decodes the random-walk value model: every sample has at
// most 2 decimals and differs from the one before, counters only grow, and
// the steps of consecutive rounds differ (no constant deltas).
func TestRandomWalk(t *testing.T) {
	const rounds = 6
	w := workload{series: 200, batch: 200, workers: 1, mode: modeSteady, interval: time.Second, start: time.Unix(0, 0), values: valuesRandomWalk}
	perWorker, err := w.build(0, rounds)
	require.NoError(t, err)
	values := map[string][]float64{}
	for _, r := range perWorker[0] {
		for _, ts := range decode(t, r).Timeseries {
			name := ts.Labels[0].Value + "/" + ts.Labels[3].Value
			values[name] = append(values[name], ts.Samples[0].Value)
		}
	}
	require.Len(t, values, 200)
	sameDeltas, counters := 0, 0
	for name, vs := range values {
		require.Len(t, vs, rounds)
		for i, v := range vs {
			require.InDelta(t, math.Round(v*100)/100, v, 1e-9, "%s: %v has 2 decimals", name, v)
			if i == 0 {
				continue
			}
			require.NotEqual(t, vs[i-1], v, "%s: every sample changes", name)
			if strings.HasSuffix(strings.SplitN(name, "/", 2)[0], "_total") {
				require.Less(t, vs[i-1], v, "%s: a counter grows", name)
			}
			if i >= 2 && math.Abs((v-vs[i-1])-(vs[i-1]-vs[i-2])) < 1e-9 {
				sameDeltas++
			}
		}
		if strings.HasSuffix(strings.SplitN(name, "/", 2)[0], "_total") {
			counters++
		}
	}
	require.Equal(t, 100, counters)
	require.Less(t, sameDeltas, 200*(rounds-2)/20, "deltas rarely repeat")
	// The integer model, by contrast, keeps a counter's step constant.
	require.Equal(t, sampleValue(0, 2)-sampleValue(0, 1), sampleValue(0, 1)-sampleValue(0, 0))
}
