package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// sender posts encoded requests to a remote-write URL.
type sender struct {
	url      string
	token    string // bearer token; none when empty
	protocol string // protoV1 or protoV2
	otlp     bool   // OTLP/HTTP protobuf requests, not remote write
	gzip     bool   // OTLP: the bodies are gzip-compressed
	client   *http.Client
}

func newSender(url, token, protocol string, workers int, timeout time.Duration) *sender {
	return &sender{url: url, token: token, protocol: protocol, client: &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: workers,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}}
}

// send posts one request of samples samples (or histograms) and returns
// an error for anything but a 2xx and, with remote write 2.0, for a 2xx
// whose written-count headers do not count them all; with OTLP, for a 2xx
// whose partial_success rejected data points.
func (s *sender) send(ctx context.Context, body []byte, samples int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	switch {
	case s.otlp:
		req.Header.Set("Content-Type", "application/x-protobuf")
		if s.gzip {
			req.Header.Set("Content-Encoding", "gzip")
		}
	case s.protocol == protoV2:
		req.Header.Set("Content-Encoding", "snappy")
		req.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	default:
		req.Header.Set("Content-Encoding", "snappy")
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	}
	req.Header.Set("User-Agent", "luminate-bench")
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_, _ = io.Copy(io.Discard, resp.Body) // reuse the connection
	if resp.StatusCode/100 != 2 {
		return &statusError{code: resp.StatusCode, body: string(bytes.TrimSpace(msg))}
	}
	if s.otlp {
		return otlpRejected(resp, msg)
	}
	if s.protocol == protoV2 {
		written := 0
		for _, h := range []string{"X-Prometheus-Remote-Write-Samples-Written", "X-Prometheus-Remote-Write-Histograms-Written"} {
			n, err := strconv.Atoi(resp.Header.Get(h))
			if err != nil {
				return &writtenError{fmt.Sprintf("HTTP %d without a valid %s header", resp.StatusCode, h)}
			}
			written += n
		}
		if written != samples {
			return &writtenError{fmt.Sprintf("HTTP %d: %d of %d samples written", resp.StatusCode, written, samples)}
		}
	}
	return nil
}

// writtenError is a 2xx response to a 2.0 request that does not count what
// was sent as written.
type writtenError struct{ msg string }

func (e *writtenError) Error() string { return e.msg }

// statusError is a response other than 2xx.
type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.code, e.body) }

// tally is what the workers of a run observed.
type tally struct {
	mu        sync.Mutex
	latencies []time.Duration // of every request, successful or not
	samples   int64           // in acknowledged requests
	requests  int
	failed    int
	errors    map[string]int // failed requests by reason
	firstErr  string
}

func (t *tally) record(d time.Duration, samples int, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.latencies = append(t.latencies, d)
	t.requests++
	if err == nil {
		t.samples += int64(samples)
		return
	}
	t.failed++
	reason := "transport error"
	switch e := err.(type) {
	case *statusError:
		reason = fmt.Sprintf("HTTP %d", e.code)
	case *writtenError:
		reason = "not all written"
	}
	if t.errors == nil {
		t.errors = map[string]int{}
	}
	t.errors[reason]++
	if t.firstErr == "" {
		t.firstErr = err.Error()
	}
}

// run sends every worker's requests in order, the workers concurrently,
// until they are all sent or ctx is done (a --duration ends a run that
// way). It returns what was observed and how long it took.
func (s *sender) run(ctx context.Context, perWorker [][]request) (*tally, time.Duration) {
	t := &tally{}
	var wg sync.WaitGroup
	begin := time.Now()
	for _, reqs := range perWorker {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, r := range reqs {
				if ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				err := s.send(ctx, r.body, r.samples)
				if err != nil && ctx.Err() != nil {
					return // cut short by the end of the run, not a failure
				}
				t.record(time.Since(t0), r.samples, err)
			}
		}()
	}
	wg.Wait()
	return t, time.Since(begin)
}

// result is the report of a run, printed as text or JSON.
type result struct {
	Mode             string         `json:"mode"`
	Kind             string         `json:"kind"`
	Values           string         `json:"values"`
	Protocol         string         `json:"protocol"`
	URL              string         `json:"url"`
	Series           int            `json:"series"`
	Workers          int            `json:"workers"`
	Batch            int            `json:"batch"`
	Rounds           int            `json:"rounds"`
	Requests         int            `json:"requests"`
	Failed           int            `json:"failed"`
	Samples          int64          `json:"samples"`
	DurationSeconds  float64        `json:"durationSeconds"`
	SamplesPerSecond float64        `json:"samplesPerSecond"`
	LatencyMs        latencies      `json:"latencyMs"`
	Errors           map[string]int `json:"errors,omitempty"`
	FirstError       string         `json:"firstError,omitempty"`
	// ServerCPUSeconds is the receiver's user+system CPU time over the
	// measured rounds (with --server-pid), and ServerCPUPerSampleUs that
	// per acknowledged sample, in microseconds.
	ServerCPUSeconds     float64 `json:"serverCpuSeconds,omitempty"`
	ServerCPUPerSampleUs float64 `json:"serverCpuPerSampleUs,omitempty"`
}

// latencies are request latency percentiles in milliseconds.
type latencies struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// percentile is the nearest-rank p-th percentile (0 < p <= 100) of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

func summarize(t *tally, elapsed time.Duration) (l latencies, rate float64) {
	sorted := slices.Clone(t.latencies)
	slices.Sort(sorted)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	l = latencies{
		P50: ms(percentile(sorted, 50)),
		P90: ms(percentile(sorted, 90)),
		P99: ms(percentile(sorted, 99)),
		Max: ms(percentile(sorted, 100)),
	}
	if elapsed > 0 {
		rate = float64(t.samples) / elapsed.Seconds()
	}
	return l, rate
}
