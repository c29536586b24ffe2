package main

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
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

// workload describes the requests of a run. Series id i belongs to target
// i/metricsPerTarget and is metric i%metricsPerTarget of it.
type workload struct {
	series   int           // series per round
	batch    int           // samples per request
	workers  int           // requests of a round are dealt to this many workers
	mode     string        // modeSteady or modeCreate
	interval time.Duration // timestamps advance by this much per round
	start    time.Time     // timestamp of round 0
	seed     uint64        // part of every series' pod label: runs with different seeds have different series
}

// request is one encoded remote-write request: a snappy-compressed
// prompb.WriteRequest.
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
	raw    []byte

	names  [metricsPerTarget]string // metric names by metric index
	target int                      // the target whose labels are in targetLabels
	tl     []prompb.Label           // labels of target, without __name__
}

func newEncoder() *encoder {
	e := &encoder{target: -1}
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
	dst = append(dst, prompb.Label{Name: "__name__", Value: e.names[id%metricsPerTarget]})
	return append(dst, e.tl...)
}

// encode builds request index of round.
func (e *encoder) encode(w workload, round, index int) (request, error) {
	lo := index * w.batch
	hi := min(lo+w.batch, w.series)
	n := hi - lo
	ts := w.timestamp(round)
	first := w.firstSeries(round)

	e.labels = e.labels[:0]
	e.sample = e.sample[:0]
	e.req.Timeseries = e.req.Timeseries[:0]
	for i := range n {
		id := first + lo + i
		e.labels = e.appendSeriesLabels(e.labels, w, id)
		e.sample = append(e.sample, prompb.Sample{Timestamp: ts, Value: sampleValue(id, round)})
	}
	for i := range n {
		e.req.Timeseries = append(e.req.Timeseries, prompb.TimeSeries{
			Labels:  e.labels[i*labelsPerSeries : (i+1)*labelsPerSeries : (i+1)*labelsPerSeries],
			Samples: e.sample[i : i+1 : i+1],
		})
	}
	size := e.req.Size()
	if cap(e.raw) < size {
		e.raw = make([]byte, size)
	}
	m, err := e.req.MarshalToSizedBuffer(e.raw[:size])
	if err != nil {
		return request{}, fmt.Errorf("encode request %d of round %d: %w", index, round, err)
	}
	return request{body: snappy.Encode(nil, e.raw[size-m:size]), samples: n}, nil
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

// mix is SplitMix64's finalizer: a cheap, well-spread hash.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
