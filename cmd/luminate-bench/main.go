// Command luminate-bench is a remote-write and OTLP load generator: it
// sends realistic Prometheus remote-write 1.0 or 2.0 requests, of float
// samples or native histograms (--kind=histogram), to any receiver
// (Luminate, Prometheus with --web.enable-remote-write-receiver, ...), or
// OTLP/HTTP metrics requests (--kind=otlp, --kind=otlp-histogram) to any
// OTLP receiver (Luminate's /otlp/v1/metrics, Prometheus 3 with
// --web.enable-otlp-receiver at /api/v1/otlp/v1/metrics), and prints the
// samples (data points)/s acknowledged and the request latency percentiles.
//
// Every request is built and snappy-encoded before the clock starts, so
// the measurement is of the receiver, not of the generator. It is not a
// correctness checker: it counts 2xx responses and reports the others.
//
//	luminate-bench --url=http://127.0.0.1:9201/api/v1/write --token-file=token \
//	  --series=100000 --workers=2 --mode=steady
//
// With --protocol=2.0 a 2xx response must carry the written-count headers
// of remote write 2.0 and count every sample sent, else the request is
// counted as failed, as Prometheus 3 counts it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is what a run is configured with.
type config struct {
	url       string
	tokenFile string
	series    int
	workers   int
	rounds    int
	duration  time.Duration
	batch     int
	mode      string
	interval  time.Duration
	timeout   time.Duration
	output    string
	seed      uint64
	kind      string
	protocol  string
	gzip      bool
	histogram string
	values    string
	cpuPid    int
}

func (c *config) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", "http://127.0.0.1:9201/api/v1/write", "Remote-write URL to send to.")
	fs.StringVar(&c.tokenFile, "token-file", "", "File holding a bearer token to send (none when empty).")
	fs.IntVar(&c.series, "series", 100_000, "Series per round (each with 8 labels; half counters, half gauges).")
	fs.IntVar(&c.workers, "workers", 2, "Concurrent senders; request j of every round goes to worker j%workers, so each series' samples stay in order.")
	fs.IntVar(&c.rounds, "rounds", 5, "Measured rounds: each sends one sample of every series (one scrape). All are encoded before the clock starts.")
	fs.DurationVar(&c.duration, "duration", 0, "Stop measuring after this long even if rounds remain (0: send every round).")
	fs.IntVar(&c.batch, "batch", 2000, "Samples per request.")
	fs.StringVar(&c.mode, "mode", modeSteady, "steady: the series exist (an unmeasured warm-up round creates them); create: every round brings new series (first scrapes).")
	fs.DurationVar(&c.interval, "scrape-interval", 15*time.Second, "How far timestamps advance from one round to the next.")
	fs.DurationVar(&c.timeout, "timeout", time.Minute, "Timeout of one request.")
	fs.StringVar(&c.output, "output", "text", "Report format: text or json.")
	fs.StringVar(&c.kind, "kind", kindFloat, "Samples: float (half counters, half gauges) or histogram (integer native histograms, schema 3, 20 populated buckets each), remote write; otlp (OTLP sums and gauges, half each) or otlp-histogram (OTLP cumulative histograms, see --otlp-histogram), OTLP/HTTP protobuf to an OTLP --url.")
	fs.BoolVar(&c.gzip, "gzip", false, "With an OTLP --kind: gzip-compress the requests (Content-Encoding: gzip), as OTLP exporters with compression=gzip send them.")
	fs.StringVar(&c.histogram, "otlp-histogram", histExplicit, "With --kind=otlp-histogram: explicit (11 bounds: classic _bucket series) or exponential (scale 3, 20 populated buckets: native histograms).")
	fs.StringVar(&c.values, "values", valuesInteger, "Float values (float and OTLP sums and gauges): integer (counters grow by whole numbers, gauges jump among 2-decimal values) or random-walk (every sample changes by a random 2-decimal step: float counters and wandering gauges).")
	fs.IntVar(&c.cpuPid, "server-pid", 0, "Linux: the receiver's process id, when it runs on this machine: the report adds its user+system CPU time over the measured rounds (from /proc/PID/stat), per sample.")
	fs.StringVar(&c.protocol, "protocol", protoV1, "Remote-write protocol: 1.0 (prometheus.WriteRequest) or 2.0 (io.prometheus.write.v2.Request).")
	fs.Uint64Var(&c.seed, "seed", 0, "Seed of the pod label values; runs with different seeds write different series (0: a new seed every run).")
}

func (c *config) validate() error {
	var errs []error
	if !strings.HasPrefix(c.url, "http://") && !strings.HasPrefix(c.url, "https://") {
		errs = append(errs, fmt.Errorf("--url=%q: want an http:// or https:// URL", c.url))
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"series", c.series}, {"workers", c.workers}, {"rounds", c.rounds}, {"batch", c.batch}} {
		if f.v <= 0 {
			errs = append(errs, fmt.Errorf("--%s=%d: must be positive", f.name, f.v))
		}
	}
	if c.mode != modeSteady && c.mode != modeCreate {
		errs = append(errs, fmt.Errorf("--mode=%q: want %s or %s", c.mode, modeSteady, modeCreate))
	}
	if c.kind != kindFloat && c.kind != kindHistogram && !isOTLP(c.kind) {
		errs = append(errs, fmt.Errorf("--kind=%q: want %s, %s, %s or %s", c.kind, kindFloat, kindHistogram, kindOTLP, kindOTLPHistogram))
	}
	if c.values != valuesInteger && c.values != valuesRandomWalk {
		errs = append(errs, fmt.Errorf("--values=%q: want %s or %s", c.values, valuesInteger, valuesRandomWalk))
	}
	if c.histogram != histExplicit && c.histogram != histExponential {
		errs = append(errs, fmt.Errorf("--otlp-histogram=%q: want %s or %s", c.histogram, histExplicit, histExponential))
	}
	if c.gzip && !isOTLP(c.kind) {
		errs = append(errs, fmt.Errorf("--gzip is for the OTLP kinds (remote write is snappy-compressed), not --kind=%s", c.kind))
	}
	if c.protocol != protoV1 && c.protocol != protoV2 {
		errs = append(errs, fmt.Errorf("--protocol=%q: want %s or %s", c.protocol, protoV1, protoV2))
	}
	if c.interval <= 0 {
		errs = append(errs, fmt.Errorf("--scrape-interval=%v: must be positive", c.interval))
	}
	if c.duration < 0 || c.timeout <= 0 {
		errs = append(errs, errors.New("--duration must not be negative and --timeout must be positive"))
	}
	if c.output != "text" && c.output != "json" {
		errs = append(errs, fmt.Errorf("--output=%q: want text or json", c.output))
	}
	return errors.Join(errs...)
}

// run executes the command and returns its exit code: 0 when every request
// was acknowledged, 1 when some were not or the run could not start, 2 for
// usage errors.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &config{}
	fs := flag.NewFlagSet("luminate-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.registerFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "luminate-bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := c.validate(); err != nil {
		fmt.Fprintf(stderr, "luminate-bench: %v\n", err)
		return 2
	}
	res, err := bench(ctx, c, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "luminate-bench: %v\n", err)
		return 1
	}
	if c.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(stderr, "luminate-bench: %v\n", err)
			return 1
		}
	} else {
		printText(stdout, res)
	}
	if res.Failed > 0 {
		fmt.Fprintf(stderr, "luminate-bench: %d of %d requests failed; first: %s\n", res.Failed, res.Requests, res.FirstError)
		return 1
	}
	return 0
}

// bench builds the requests, sends the warm-up round in steady mode, then
// measures.
func bench(ctx context.Context, c *config, progress io.Writer) (*result, error) {
	var token string
	if c.tokenFile != "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("read --token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	// Timestamps end about now, so no receiver takes them for the future.
	warmups := 0
	if c.mode == modeSteady {
		warmups = 1
	}
	total := warmups + c.rounds
	w := workload{
		series: c.series, batch: c.batch, workers: c.workers, mode: c.mode, interval: c.interval,
		start: time.Now().Add(-time.Duration(total) * c.interval), seed: c.seed,
		kind: c.kind, protocol: c.protocol, gzip: c.gzip, histogram: c.histogram, values: c.values,
	}
	if w.seed == 0 {
		w.seed = uint64(time.Now().UnixNano())
	}

	t0 := time.Now()
	measured, err := w.build(warmups, total)
	if err != nil {
		return nil, err
	}
	var warmup [][]request
	if warmups > 0 {
		if warmup, err = w.build(0, warmups); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(progress, "luminate-bench: encoded %d requests of up to %d samples in %s\n",
		(warmups+c.rounds)*w.requestsPerRound(), c.batch, time.Since(t0).Round(time.Millisecond))

	s := newSender(c.url, token, c.protocol, c.workers, c.timeout)
	s.otlp, s.gzip = isOTLP(c.kind), c.gzip
	if warmup != nil {
		t, d := s.run(ctx, warmup)
		if t.failed > 0 {
			return nil, fmt.Errorf("warm-up: %d of %d requests failed; first: %s", t.failed, t.requests, t.firstErr)
		}
		fmt.Fprintf(progress, "luminate-bench: warm-up round (%d series) took %s\n", c.series, d.Round(time.Millisecond))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	runCtx := ctx
	if c.duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, c.duration)
		defer cancel()
	}
	var cpu0 time.Duration
	if c.cpuPid > 0 {
		if cpu0, err = processCPU(c.cpuPid); err != nil {
			return nil, err
		}
	}
	t, elapsed := s.run(runCtx, measured)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var serverCPU float64
	if c.cpuPid > 0 {
		cpu1, err := processCPU(c.cpuPid)
		if err != nil {
			return nil, err
		}
		serverCPU = (cpu1 - cpu0).Seconds()
	}
	lat, rate := summarize(t, elapsed)
	proto := c.protocol
	if isOTLP(c.kind) {
		proto = "otlp/http"
	}
	return &result{
		Mode: c.mode, Kind: c.kind, Values: c.values, Protocol: proto, URL: c.url, Series: c.series, Workers: c.workers, Batch: c.batch, Rounds: c.rounds,
		Requests: t.requests, Failed: t.failed, Samples: t.samples,
		DurationSeconds: elapsed.Seconds(), SamplesPerSecond: rate, LatencyMs: lat,
		Errors: t.errors, FirstError: t.firstErr,
		ServerCPUSeconds: serverCPU, ServerCPUPerSampleUs: perSampleUs(serverCPU, t.samples),
	}, nil
}

func printText(w io.Writer, r *result) {
	fmt.Fprintf(w, "mode=%s kind=%s values=%s protocol=%s series=%d workers=%d batch=%d rounds=%d url=%s\n", r.Mode, r.Kind, r.Values, r.Protocol, r.Series, r.Workers, r.Batch, r.Rounds, r.URL)
	fmt.Fprintf(w, "requests=%d failed=%d samples=%d duration=%.3fs\n", r.Requests, r.Failed, r.Samples, r.DurationSeconds)
	fmt.Fprintf(w, "samples/s=%.0f\n", r.SamplesPerSecond)
	fmt.Fprintf(w, "latency p50=%.1fms p90=%.1fms p99=%.1fms max=%.1fms\n", r.LatencyMs.P50, r.LatencyMs.P90, r.LatencyMs.P99, r.LatencyMs.Max)
	if r.ServerCPUSeconds > 0 {
		fmt.Fprintf(w, "server CPU %.2fs = %.3fus/sample\n", r.ServerCPUSeconds, r.ServerCPUPerSampleUs)
	}
	for reason, n := range r.Errors {
		fmt.Fprintf(w, "errors %s: %d\n", reason, n)
	}
}

// processCPU is the user plus system CPU time process pid has used, from
// /proc/PID/stat (Linux; clock ticks of 1/100 s).
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("--server-pid: %w", err)
	}
	// The command name (field 2) may hold spaces: count from its ")".
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("--server-pid: unexpected /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("--server-pid: /proc/%d/stat: %w", pid, err)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// perSampleUs is cpu seconds per sample, in microseconds.
func perSampleUs(cpu float64, samples int64) float64 {
	if samples == 0 {
		return 0
	}
	return cpu / float64(samples) * 1e6
}
