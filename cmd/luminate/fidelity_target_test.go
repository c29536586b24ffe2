package main

// The scrape target of the full-fidelity end-to-end test: a client_golang
// registry served over HTTP on loopback, with native, classic and mixed
// histograms, a counter with exemplars, a gauge, help and units, its
// values advancing every fidelityTick by a fixed rule.

import (
	"fmt"
	"math"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/internal/proctest"
)

// envPrometheus3 names the environment variable holding the path of a
// Prometheus 3.x server binary; `make test` sets it from
// scripts/prometheus3.sh.
const envPrometheus3 = "LUMINATE_PROMETHEUS3"

// prometheus3 returns the path of the Prometheus 3.x binary: $LUMINATE_PROMETHEUS3,
// else where scripts/prometheus3.sh caches the build for go.mod's
// prometheus module. Without one the test is skipped, or fails under
// CI=true, where scripts/test-deps.sh builds it.
func prometheus3(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(envPrometheus3); p != "" {
		if !proctest.FileExists(p) {
			t.Fatalf("%s=%s: no such file (run scripts/prometheus3.sh)", envPrometheus3, p)
		}
		return p
	}
	if p := cachedPrometheus3(); p != "" && proctest.FileExists(p) {
		return p
	}
	msg := "Prometheus 3.x not found: set " + envPrometheus3 + "=$(scripts/prometheus3.sh) (it builds it once, a few minutes) or run make test"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// cachedPrometheus3 is where scripts/prometheus3.sh puts the binary for
// the prometheus module this test binary is built with, "" when it cannot
// tell.
func cachedPrometheus3() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var modver string
	for _, d := range info.Deps {
		if d.Path == "github.com/prometheus/prometheus" {
			modver = d.Version
		}
	}
	// Module v0.MMM.P is Prometheus 3.(MMM-300).P.
	var minor, patch int
	if _, err := fmt.Sscanf(modver, "v0.%d.%d", &minor, &patch); err != nil || minor < 300 {
		return ""
	}
	dir := os.Getenv("LUMINATE_CACHE_DIR")
	if dir == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return ""
			}
			base = filepath.Join(home, ".cache")
		}
		dir = filepath.Join(base, "luminate")
	}
	return filepath.Join(dir, fmt.Sprintf("prometheus-3.%d.%d", minor-300, patch), "prometheus")
}

// fidelityTick is how often the target's values advance.
const fidelityTick = 100 * time.Millisecond

// fidelityPaths and fidelityCodes are the label values of the target's
// series.
var (
	fidelityPaths = []string{"/api", "/static"}
	fidelityCodes = []string{"200", "500"}
)

// fidelityTarget is the scrape target.
type fidelityTarget struct {
	addr string // host:port

	native  *prometheus.HistogramVec // native buckets only, exemplars
	mixed   *prometheus.HistogramVec // classic and native buckets
	classic *prometheus.HistogramVec // classic buckets only, exemplars
	reqs    *prometheus.CounterVec   // exemplars
	temp    *prometheus.GaugeVec
}

// startFidelityTarget serves the target on loopback until the end of t.
func startFidelityTarget(t *testing.T) *fidelityTarget {
	t.Helper()
	reg := prometheus.NewRegistry()
	f := &fidelityTarget{
		native: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fid_native_seconds", Help: "Request latency, native buckets only.", Unit: "seconds",
			NativeHistogramBucketFactor: 1.1, NativeHistogramZeroThreshold: 0.0001,
			NativeHistogramMaxBucketNumber: 160, NativeHistogramMaxExemplars: 4,
		}, []string{"path"}),
		mixed: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fid_mixed_bytes", Help: "Response size, classic and native buckets.", Unit: "bytes",
			Buckets:                     prometheus.ExponentialBuckets(64, 4, 6),
			NativeHistogramBucketFactor: 1.5, NativeHistogramMaxExemplars: -1,
		}, []string{"path"}),
		classic: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fid_classic_seconds", Help: "Backend latency, classic buckets only.", Unit: "seconds",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
		}, []string{"path"}),
		reqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fid_requests_total", Help: "Requests served.",
		}, []string{"path", "code"}),
		temp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fid_temperature_celsius", Help: "Room temperature.", Unit: "celsius",
		}, []string{"room"}),
	}
	reg.MustRegister(f.native, f.mixed, f.classic, f.reqs, f.temp)
	f.advance(0)

	srv := httptest.NewUnstartedServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv.Listener = l
	srv.Start()
	f.addr = strings.TrimPrefix(srv.URL, "http://")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(fidelityTick)
		defer tick.Stop()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				f.advance(i)
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		wg.Wait()
		srv.Close()
	})
	return f
}

// advance makes step i's observations. The values depend on i alone:
// latencies spread over three decades, some zero and (on the native
// histogram) some negative, so zero and negative buckets are populated.
func (f *fidelityTarget) advance(i int) {
	for p, path := range fidelityPaths {
		for k := range 5 {
			n := i*5 + k
			u := float64(fidMix(uint64(n*2+p))%10000) / 10000   // [0, 1)
			latency := 0.001 * math.Pow(1000, u) * float64(1+p) // 1ms .. 2s
			trace := prometheus.Labels{"trace_id": fmt.Sprintf("%016x", fidMix(uint64(n)))}
			switch {
			case n%17 == 0:
				f.native.WithLabelValues(path).(prometheus.ExemplarObserver).ObserveWithExemplar(0, trace)
			case n%23 == 0:
				f.native.WithLabelValues(path).Observe(-latency)
			default:
				f.native.WithLabelValues(path).(prometheus.ExemplarObserver).ObserveWithExemplar(latency, trace)
			}
			f.mixed.WithLabelValues(path).Observe(float64(64 + fidMix(uint64(n))%20000))
			if k == 0 {
				f.classic.WithLabelValues(path).(prometheus.ExemplarObserver).ObserveWithExemplar(latency, trace)
			} else {
				f.classic.WithLabelValues(path).Observe(latency)
			}
			code := fidelityCodes[0]
			if n%7 == 0 {
				code = fidelityCodes[1]
			}
			f.reqs.WithLabelValues(path, code).(prometheus.ExemplarAdder).AddWithExemplar(float64(1+n%3), trace)
		}
	}
	f.temp.WithLabelValues("lab").Set(20 + 5*math.Sin(float64(i)/50))
	f.temp.WithLabelValues("server-room").Set(30 + float64(i%40)/8)
}

// fidMix is SplitMix64's finalizer: a cheap, well-spread hash.
func fidMix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
