package main

// The OTLP part of `make bench` (issue 13): the same OTLP/HTTP protobuf
// requests into a luminate (/otlp/v1/metrics) and into Prometheus 3.x's
// OTLP receiver (/api/v1/otlp/v1/metrics, --web.enable-otlp-receiver) in
// the same run; data points/s and server CPU per million data points.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/internal/proctest"
)

const (
	envBenchOTLPSeries = "BENCH_OTLP_SERIES" // series of the OTLP comparison (100000; 0 skips it)
	envBenchOTLPRounds = "BENCH_OTLP_ROUNDS" // measured rounds, one data point per series each (10)
	envBenchOTLPCases  = "BENCH_OTLP_CASES"  // the cases to run, by number from 1 and comma separated (all)
)

// otlpBenchCase is one row of the OTLP comparison: luminate-bench flags.
type otlpBenchCase struct {
	name  string
	flags []string
	// names are the Prometheus names of the case's series, one query each
	// to count the samples stored.
	names func(m int) string
}

var otlpBenchCases = []otlpBenchCase{
	{"sums and gauges", []string{"--kind=otlp"}, func(m int) string {
		if m%2 == 0 {
			return fmt.Sprintf("bench_otlp_%03d_total", m)
		}
		return fmt.Sprintf("bench_otlp_%03d", m)
	}},
	{"sums and gauges, gzip", []string{"--kind=otlp", "--gzip"}, func(m int) string {
		if m%2 == 0 {
			return fmt.Sprintf("bench_otlp_%03d_total", m)
		}
		return fmt.Sprintf("bench_otlp_%03d", m)
	}},
	{"histograms, explicit buckets (11 bounds), gzip", []string{"--kind=otlp-histogram", "--otlp-histogram=explicit", "--gzip"}, func(m int) string {
		return fmt.Sprintf("bench_otlp_histogram_%03d_seconds_count", m)
	}},
	{"histograms, exponential (native), gzip", []string{"--kind=otlp-histogram", "--otlp-histogram=exponential", "--gzip"}, func(m int) string {
		return fmt.Sprintf("bench_otlp_histogram_%03d_seconds", m)
	}},
}

// benchOTLP sends BENCH_OTLP_SERIES series for BENCH_OTLP_ROUNDS rounds of
// each case to a fresh luminate and a fresh Prometheus 3.x, alternating,
// BENCH_REPEAT times, and writes the medians to tw.
func benchOTLP(t *testing.T, tw *tabwriter.Writer, series int) {
	prom3 := prometheus3(t)
	bench := buildBench(t)
	rounds := envInt(t, envBenchOTLPRounds, 10)
	repeat := envInt(t, envBenchRepeat, 3)
	fmt.Fprintf(tw, "OTLP/HTTP protobuf (%d series x %d rounds)\tluminate points/s\tprometheus 3 points/s\tratio\tluminate CPU s/M\tprometheus CPU s/M\tCPU ratio\truns\t\n", series, rounds)
	only := strings.Split(os.Getenv(envBenchOTLPCases), ",")
	for ci, c := range otlpBenchCases {
		if only[0] != "" && !slices.Contains(only, strconv.Itoa(ci+1)) {
			continue
		}
		rates := map[string][]float64{}
		cpus := map[string][]float64{}
		for i := range repeat {
			order := []string{"luminate", "prometheus"}
			if i%2 == 1 {
				slices.Reverse(order)
			}
			for _, server := range order {
				t.Run(fmt.Sprintf("otlp/%s/%s/%d", c.name, server, i+1), func(t *testing.T) {
					var target benchTarget
					var url, tokenFile string
					if server == "luminate" {
						target, tokenFile = startBenchLuminate(t)
						url = target.base + otlpPath
					} else {
						p := startPrometheusBin(t, prom3, "bench-otlp", proctest.FreeAddr(t), "global:\n  scrape_interval: 1m\n", "--web.enable-otlp-receiver")
						p.waitReady()
						target = benchTarget{name: "prometheus", base: p.url(""), pid: p.Cmd.Process.Pid}
						url = target.base + otlpAPIPath
					}
					args := append([]string{"--url=" + url, "--output=json", "--mode=steady", "--seed=13",
						"--series=" + strconv.Itoa(series), "--rounds=" + strconv.Itoa(rounds),
						"--workers=" + strconv.Itoa(benchWorkers()), "--batch=2000"}, c.flags...)
					if tokenFile != "" {
						args = append(args, "--token-file="+tokenFile)
					}
					cmd := exec.Command(bench, args...)
					var stderr bytes.Buffer
					cmd.Stderr = &stderr
					cpu0 := processCPU(t, target.pid)
					out, err := cmd.Output()
					time.Sleep(2 * time.Second)
					cpu := processCPU(t, target.pid) - cpu0
					require.NoError(t, err, "luminate-bench %s\n%s%s", strings.Join(args, " "), out, stderr.String())
					var r benchReport
					require.NoError(t, json.Unmarshal(out, &r), string(out))
					require.Zero(t, r.Failed)
					sent := float64(r.Samples + int64(series)) // and the warm-up round
					// Every data point sent is stored, name by name.
					stored := 0.0
					for m := range 100 {
						v := instantQuery(t, target.base, target.token, fmt.Sprintf(`sum(count_over_time(%s[1d]))`, c.names(m)))
						if len(v) == 1 {
							stored += float64(v[0].Value)
						}
					}
					require.Equal(t, sent, stored, "%s holds every data point sent", server)
					t.Logf("otlp %s %s: %.0f points/s over %.2fs, p99 %.1fms, server CPU %.2fs/M points",
						c.name, server, r.SamplesPerSecond, r.DurationSeconds, r.LatencyMs["p99"], cpu.Seconds()/sent*1e6)
					rates[server] = append(rates[server], r.SamplesPerSecond)
					cpus[server] = append(cpus[server], cpu.Seconds()/sent*1e6)
				})
			}
		}
		l, p := median(rates["luminate"]), median(rates["prometheus"])
		lc, pc := median(cpus["luminate"]), median(cpus["prometheus"])
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2fx\t%.2f\t%.2f\t%.2fx\t%d\t\n", c.name, l, p, l/p, lc, pc, pc/lc, len(rates["luminate"]))
	}
}
