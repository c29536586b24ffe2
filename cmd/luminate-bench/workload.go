package main

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// Shape of the generated series, like the pods of a Kubernetes cluster
// scraped by Prometheus: every target exposes metricsPerTarget series, half
// of them counters and half gauges, each with labelsPerSeries labels
// (__name__ included).
const (
	metricsPerTarget = 100
	labelsPerSeries  = 8
)

// Modes of a run.
const (
	// modeSteady writes to series that exist: one unmeasured warm-up round
	// creates them, the measured rounds append to them.
	modeSteady = "steady"
	// modeCreate brings new series in every request: the first scrape of
	// new targets.
	modeCreate = "create"
)

// Kinds of samples.
const (
	// kindFloat: float samples, half counters, half gauges.
	kindFloat = "float"
	// kindHistogram: integer native histograms (counters), schema 3, with
	// histogramBuckets populated buckets in two spans, as a latency
	// histogram of client_golang exposes them.
	kindHistogram = "histogram"
)

// Value models of float samples.
const (
	// valuesInteger: counters grow by a small whole number per round,
	// gauges take values of 2 decimals that jump at random; node-exporter
	// like, and the cheap case for XOR chunks (integer deltas repeat).
	valuesInteger = "integer"
	// valuesRandomWalk: every sample changes, by a random step of 2
	// decimals: counters are floats growing by 0.01-10.00 per round,
	// gauges wander up or down by 0.01-1.00. The harder case (issue 15):
	// no two consecutive values are equal and their deltas do not repeat.
	valuesRandomWalk = "random-walk"
)

// Remote-write protocols.
const (
	protoV1 = "1.0" // prometheus.WriteRequest
	protoV2 = "2.0" // io.prometheus.write.v2.Request
)

// histogramBuckets is the number of populated buckets of every histogram
// sample.
const histogramBuckets = 20

// workload describes the requests of a run. Series id i belongs to target
// i/metricsPerTarget and is metric i%metricsPerTarget of it.
type workload struct {
	series    int           // series per round
	batch     int           // samples per request
	workers   int           // requests of a round are dealt to this many workers
	mode      string        // modeSteady or modeCreate
	interval  time.Duration // timestamps advance by this much per round
	start     time.Time     // timestamp of round 0
	seed      uint64        // part of every series' pod label: runs with different seeds have different series
	kind      string        // kindFloat (when empty) or kindHistogram
	protocol  string        // protoV1 (when empty) or protoV2
	gzip      bool          // OTLP kinds: gzip the requests
	histogram string        // kindOTLPHistogram: histExplicit or histExponential
	values    string        // valuesInteger (when empty) or valuesRandomWalk
}

// value is the float sample of series id in round under w's value model.
func (w workload) value(id, round int) float64 {
	if w.values == valuesRandomWalk {
		return randomWalkValue(id, round)
	}
	return sampleValue(id, round)
}

// request is one encoded remote-write request: a snappy-compressed
// prompb.WriteRequest or, with protocol 2.0, writev2.Request.
type request struct {
	body    []byte
	samples int
}

// requestsPerRound is how many requests carry one round.
func (w workload) requestsPerRound() int { return (w.series + w.batch - 1) / w.batch }

// firstSeries is the id of the first series of round r: in create mode
// every round has its own series.
func (w workload) firstSeries(round int) int {
	if w.mode == modeCreate {
		return round * w.series
	}
	return 0
}

// timestamp is the timestamp, in milliseconds, of the samples of round r.
func (w workload) timestamp(round int) int64 {
	return w.start.Add(time.Duration(round) * w.interval).UnixMilli()
}

// build encodes rounds [from, to) and deals the requests to the workers:
// the result has one list per worker, in the order it sends them. Request
// j of every round covers the same series (in steady mode) and always goes
// to worker j % workers, so each series' samples arrive in order, as
// Prometheus' shards send them. The encoding runs on every CPU.
func (w workload) build(from, to int) ([][]request, error) {
	perRound := w.requestsPerRound()
	out := make([][]request, w.workers)
	for k := range out {
		out[k] = make([]request, 0, (to-from)*((perRound+w.workers-1)/w.workers))
	}
	type job struct{ round, index int }
	type done struct {
		job
		req request
		err error
	}
	jobs := make(chan job)
	results := make([][]request, to-from)
	for r := range results {
		results[r] = make([]request, perRound)
	}
	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		firstEr error
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			enc := newEncoder()
			for j := range jobs {
				req, err := enc.encode(w, j.round, j.index)
				if err != nil {
					errOnce.Do(func() { firstEr = err })
					continue
				}
				results[j.round-from][j.index] = req
			}
		}()
	}
	for r := from; r < to; r++ {
		for j := range perRound {
			jobs <- job{r, j}
		}
	}
	close(jobs)
	wg.Wait()
	if firstEr != nil {
		return nil, firstEr
	}
	for _, round := range results {
		for j, req := range round {
			out[j%w.workers] = append(out[j%w.workers], req)
		}
	}
	return out, nil
}

// encoder builds requests, reusing its buffers from one to the next.
type encoder struct {
	req    prompb.WriteRequest
	labels []prompb.Label
	sample []prompb.Sample
	hist   []prompb.Histogram
	raw    []byte

	// Remote write 2.0.
	req2    writev2.Request
	symbols writev2.SymbolsTable
	refs    []uint32
	sample2 []writev2.Sample
	hist2   []writev2.Histogram

	names  [metricsPerTarget]string // metric names by metric index
	target int                      // the target whose labels are in targetLabels
	tl     []prompb.Label           // labels of target, without __name__
}

func newEncoder() *encoder {
	e := &encoder{target: -1, symbols: writev2.NewSymbolTable()}
	for m := range e.names {
		e.names[m] = metricName(m)
	}
	return e
}

// appendSeriesLabels appends the labelsPerSeries labels of series id to
// dst, sorted by name as Prometheus sends them.
func (e *encoder) appendSeriesLabels(dst []prompb.Label, w workload, id int) []prompb.Label {
	if t := id / metricsPerTarget; t != e.target {
		e.target = t
		e.tl = appendTargetLabels(e.tl[:0], t, w.seed)
	}
	name := e.names[id%metricsPerTarget]
	if w.kind == kindHistogram {
		name = histogramName(id)
	}
	dst = append(dst, prompb.Label{Name: "__name__", Value: name})
	return append(dst, e.tl...)
}

// encode builds request index of round.
func (e *encoder) encode(w workload, round, index int) (request, error) {
	if isOTLP(w.kind) {
		return e.encodeOTLP(w, round, index)
	}
	lo := index * w.batch
	hi := min(lo+w.batch, w.series)
	n := hi - lo
	ts := w.timestamp(round)
	first := w.firstSeries(round)

	e.labels = e.labels[:0]
	for i := range n {
		e.labels = e.appendSeriesLabels(e.labels, w, first+lo+i)
	}
	var (
		raw []byte
		err error
	)
	if w.protocol == protoV2 {
		raw, err = e.marshalV2(w, round, first+lo, n, ts)
	} else {
		raw, err = e.marshalV1(w, round, first+lo, n, ts)
	}
	if err != nil {
		return request{}, fmt.Errorf("encode request %d of round %d: %w", index, round, err)
	}
	return request{body: snappy.Encode(nil, raw), samples: n}, nil
}

// seriesLabels are the labels of the i-th series of the request being
// encoded.
func (e *encoder) seriesLabels(i int) []prompb.Label {
	return e.labels[i*labelsPerSeries : (i+1)*labelsPerSeries : (i+1)*labelsPerSeries]
}

// marshalV1 encodes series first..first+n-1 as a prompb.WriteRequest.
func (e *encoder) marshalV1(w workload, round, first, n int, ts int64) ([]byte, error) {
	e.sample = e.sample[:0]
	e.hist = e.hist[:0]
	e.req.Timeseries = e.req.Timeseries[:0]
	for i := range n {
		if w.kind == kindHistogram {
			e.hist = append(e.hist, prompb.FromIntHistogram(ts, histogramValue(first+i, round)))
		} else {
			e.sample = append(e.sample, prompb.Sample{Timestamp: ts, Value: w.value(first+i, round)})
		}
	}
	for i := range n {
		s := prompb.TimeSeries{Labels: e.seriesLabels(i)}
		if w.kind == kindHistogram {
			s.Histograms = e.hist[i : i+1 : i+1]
		} else {
			s.Samples = e.sample[i : i+1 : i+1]
		}
		e.req.Timeseries = append(e.req.Timeseries, s)
	}
	return e.marshal(&e.req)
}

// marshalV2 encodes series first..first+n-1 as a writev2.Request, without
// metadata, as Prometheus 3 sends it by default (it sends metadata only
// with --enable-feature=metadata-wal-records).
func (e *encoder) marshalV2(w workload, round, first, n int, ts int64) ([]byte, error) {
	e.symbols.Reset()
	e.refs = e.refs[:0]
	e.sample2 = e.sample2[:0]
	e.hist2 = e.hist2[:0]
	e.req2.Timeseries = e.req2.Timeseries[:0]
	for i := range n {
		for _, l := range e.seriesLabels(i) {
			e.refs = append(e.refs, e.symbols.Symbolize(l.Name), e.symbols.Symbolize(l.Value))
		}
		if w.kind == kindHistogram {
			e.hist2 = append(e.hist2, writev2.FromIntHistogram(0, ts, histogramValue(first+i, round)))
		} else {
			e.sample2 = append(e.sample2, writev2.Sample{Timestamp: ts, Value: w.value(first+i, round)})
		}
	}
	for i := range n {
		s := writev2.TimeSeries{LabelsRefs: e.refs[i*2*labelsPerSeries : (i+1)*2*labelsPerSeries : (i+1)*2*labelsPerSeries]}
		if w.kind == kindHistogram {
			s.Histograms = e.hist2[i : i+1 : i+1]
		} else {
			s.Samples = e.sample2[i : i+1 : i+1]
		}
		e.req2.Timeseries = append(e.req2.Timeseries, s)
	}
	e.req2.Symbols = e.symbols.Symbols()
	return e.marshal(&e.req2)
}

// marshaler is a gogo-protobuf message.
type marshaler interface {
	Size() int
	MarshalToSizedBuffer([]byte) (int, error)
}

// marshal encodes m into the encoder's buffer and returns it.
func (e *encoder) marshal(m marshaler) ([]byte, error) {
	size := m.Size()
	if cap(e.raw) < size {
		e.raw = make([]byte, size)
	}
	k, err := m.MarshalToSizedBuffer(e.raw[:size])
	if err != nil {
		return nil, err
	}
	return e.raw[size-k : size], nil
}

// isCounter tells whether series id is a counter (else a gauge).
func isCounter(id int) bool { return id%metricsPerTarget%2 == 0 }

// metricName is the name of series id.
func metricName(id int) string {
	m := id % metricsPerTarget
	if isCounter(m) {
		return fmt.Sprintf("bench_metric_%03d_total", m)
	}
	return fmt.Sprintf("bench_metric_%03d", m)
}

// appendTargetLabels appends the labels every series of target t has,
// sorted by name; with __name__ first they are all of a series' labels.
// The pod name, like a real pod's, is different in every run (seed).
func appendTargetLabels(dst []prompb.Label, t int, seed uint64) []prompb.Label {
	return append(dst,
		prompb.Label{Name: "cluster", Value: fmt.Sprintf("cluster-%d", t%3)},
		prompb.Label{Name: "container", Value: fmt.Sprintf("app-%d", t%7)},
		prompb.Label{Name: "instance", Value: fmt.Sprintf("10.%d.%d.%d:9100", t>>16&0xff, t>>8&0xff, t&0xff)},
		prompb.Label{Name: "job", Value: fmt.Sprintf("job-%d", t%20)},
		prompb.Label{Name: "namespace", Value: fmt.Sprintf("namespace-%d", t%50)},
		prompb.Label{Name: "pod", Value: fmt.Sprintf("app-%d-%08x", t%7, mix(uint64(t)^seed)&0xffffffff)},
		prompb.Label{Name: "service", Value: fmt.Sprintf("service-%d", t%100)},
	)
}

// sampleValue is the value of series id in round: counters grow by a
// small whole number per round, gauges wander.
func sampleValue(id, round int) float64 {
	h := mix(uint64(id))
	if isCounter(id) {
		return float64(h%1000) + float64(round)*float64(1+h%17)
	}
	return float64(mix(h^uint64(round))%100000) / 100
}

// randomWalkValue is the value of series id in round of the random-walk
// model, in whole hundredths so that it has exactly 2 decimals: a counter
// starts anywhere in 0-999.99 and grows by 0.01-10.00 every round, a gauge
// starts in 100-1099.99 and steps by 0.01-1.00 up or down. Every step is
// drawn from the series and the round, so any round can be encoded on its
// own (the cost is one hash per round before it).
func randomWalkValue(id, round int) float64 {
	h := mix(uint64(id) ^ 0x5eed)
	cents := int64(h % 100_000)
	if isCounter(id) {
		for r := 1; r <= round; r++ {
			cents += 1 + int64(mix(h+uint64(r))%1000)
		}
	} else {
		cents += 10_000
		for r := 1; r <= round; r++ {
			step := int64(mix(h+uint64(r)) % 200) // 0..199
			if step < 100 {
				cents -= 1 + step // -1..-100
			} else {
				cents += step - 99 // 1..100
			}
		}
	}
	return float64(cents) / 100
}

// histogramName is the name of series id in histogram runs.
func histogramName(id int) string {
	return fmt.Sprintf("bench_histogram_%03d_seconds", id%metricsPerTarget)
}

// histogramValue is the native histogram of series id in round: a
// cumulative latency histogram, schema 3, with histogramBuckets populated
// buckets in two spans (12 and 8 buckets, a gap of 3) whose place depends
// on the series, every count growing by a whole number of observations
// per round, and a few observations in the zero bucket.
func histogramValue(id, round int) *histogram.Histogram {
	h := mix(uint64(id))
	const first = 12
	buckets := make([]int64, histogramBuckets)
	var count uint64
	prev := int64(0)
	sum := 0.0
	for i := range buckets {
		hi := mix(h + uint64(i))
		c := 1 + int64(hi%50) + int64(round)*int64(1+hi%9)
		buckets[i] = c - prev // deltas, as Prometheus encodes integer buckets
		prev = c
		count += uint64(c)
		sum += float64(c) * float64(i+1) * 0.001
	}
	zero := uint64(h%5) + uint64(round)*(h%2)
	return &histogram.Histogram{
		CounterResetHint: histogram.UnknownCounterReset,
		Schema:           3,
		ZeroThreshold:    2.938735877055719e-39,
		ZeroCount:        zero,
		Count:            count + zero,
		Sum:              sum,
		PositiveSpans: []histogram.Span{
			{Offset: -40 + int32(h%16), Length: first},
			{Offset: 3, Length: histogramBuckets - first},
		},
		PositiveBuckets: buckets,
	}
}

// mix is SplitMix64's finalizer: a cheap, well-spread hash.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
