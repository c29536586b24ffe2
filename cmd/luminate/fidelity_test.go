package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/internal/proctest"
	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
	"github.com/luminate-io/luminate/tenancy"
)

// fidelityData is how long Prometheus scrapes the target before the
// answers are compared: enough for rate(x[1m]) over 30 s of data and a
// range query over that.
const fidelityData = 40 * time.Second

// fidelitySink is one remote_write section of the Prometheus: a luminate
// (on one backend) and a tenant written with one protocol.
type fidelitySink struct {
	name      string // the remote_write name: backend-protocol
	lum       *proc
	token     string // read token of the tenant
	tokenFile string // write token of the tenant
	message   string // protobuf_message
}

// v1 tells whether the sink gets remote write 1.0, which cannot carry
// custom-bucket histograms (NHCB): Prometheus drops them (and we drop
// their series, exemplars included, with write_relabel_configs).
func (s fidelitySink) v1() bool { return s.message == "prometheus.WriteRequest" }

// TestFidelityPrometheus3 runs Prometheus 3.x scraping a client_golang
// target with native, classic and mixed histograms, exemplars and metadata,
// remote-writing all of it with remote write 2.0 and 1.0 into a luminate
// on Badger and one on ClickHouse (a tenant per protocol), then asks the
// same PromQL queries, exemplar queries and metadata of the Prometheus and
// of every tenant, and requires the same answers.
func TestFidelityPrometheus3(t *testing.T) {
	bin := prometheus3(t)
	begin := time.Now()
	target := startFidelityTarget(t)
	dsn := chtest.Start(t)

	var sinks []fidelitySink
	for _, backend := range []struct {
		name  string
		flags []string
	}{
		{"badger", nil},
		{"clickhouse", []string{"--storage.backend=clickhouse", "--storage.clickhouse.dsn=" + dsn, "--storage.clickhouse.database=fidelity"}},
	} {
		lum, secret := startAuthLuminate(t, backend.flags...)
		dir := t.TempDir()
		for _, proto := range []struct{ tenant, message string }{
			{"rw2", "io.prometheus.write.v2.Request"},
			{"rw1", "prometheus.WriteRequest"},
		} {
			now := time.Now()
			_, writeFile := e2eTokenFile(t, secret, dir, proto.tenant+".write.token", tenancy.ID(proto.tenant), now, time.Hour, tenancy.ScopeWrite)
			read, _ := e2eTokenFile(t, secret, dir, proto.tenant+".read.token", tenancy.ID(proto.tenant), now, time.Hour, tenancy.ScopeRead)
			sinks = append(sinks, fidelitySink{name: backend.name + "-" + proto.tenant, lum: lum, token: read, tokenFile: writeFile, message: proto.message})
		}
	}

	addr := proctest.FreeAddr(t)
	prom := startPrometheusBin(t, bin, "fidelity", addr, fidelityConfig(target.addr, sinks),
		"--enable-feature=exemplar-storage,metadata-wal-records")
	prom.waitReady()
	info := promData(t, prom.url(""), "/api/v1/status/buildinfo", "")
	require.True(t, strings.HasPrefix(fmt.Sprint(info.(map[string]any)["version"]), "3."), "Prometheus 3.x: %v", info)
	t.Logf("Prometheus %v, two luminates and the target up after %s", info.(map[string]any)["version"], time.Since(begin).Round(100*time.Millisecond))

	// The first scrape with a native histogram starts the data.
	var first time.Time
	proctest.Eventually(t, 30*time.Second, func() (bool, string) {
		v := instantQuery(t, prom.url(""), "", `timestamp(fid_native_seconds)`)
		if len(v) == 0 {
			return false, "no native histogram scraped yet"
		}
		first = v[0].Timestamp.Time()
		return true, ""
	}, "the first scrape")
	for waited := time.Since(first); waited < fidelityData; waited = time.Since(first) {
		t.Logf("collecting data: %s of %s", waited.Round(time.Second), fidelityData)
		time.Sleep(min(10*time.Second, fidelityData-waited))
	}

	// end is safely in the past of both stores: every remote_write queue
	// has sent samples newer than end (and its exemplars, which are
	// observed before the scrape that carries them).
	end := time.Now().Add(-3 * time.Second).Truncate(time.Second)
	start := end.Add(-30 * time.Second)
	proctest.Eventually(t, 30*time.Second, func() (bool, string) {
		var behind []string
		for _, s := range sinks {
			sent, _ := metricValue(t, prom.url("/metrics"), "prometheus_remote_storage_queue_highest_sent_timestamp_seconds", map[string]string{"remote_name": s.name})
			if sent < float64(end.Unix()+3) {
				behind = append(behind, fmt.Sprintf("%s at %v", s.name, sent))
			}
		}
		return len(behind) == 0, fmt.Sprintf("queues behind %d: %v", end.Unix()+3, behind)
	}, "remote write caught up")
	t.Logf("comparing answers from %s to %s (data from %s)", start.Format(time.TimeOnly), end.Format(time.TimeOnly), first.Format(time.TimeOnly))

	sec := func(tm time.Time) string { return strconv.FormatInt(tm.Unix(), 10) }
	// A question is asked of Prometheus, and its answer is what every sink
	// must answer; v1 is the question whose answer remote write 1.0 sinks
	// must give (without the NHCB series).
	type question struct{ name, path, v1 string }
	var questions []question
	for _, q := range fidelityQueries {
		q1 := withoutNHCB(t, q)
		for _, at := range []struct {
			name   string
			params url.Values
		}{
			{"instant", url.Values{"time": {sec(end)}}},
			{"instant -17s", url.Values{"time": {sec(end.Add(-17 * time.Second))}}},
			{"range", url.Values{"start": {sec(start)}, "end": {sec(end)}, "step": {"2"}}},
		} {
			path := "/api/v1/query?"
			if at.name == "range" {
				path = "/api/v1/query_range?"
			}
			at.params.Set("query", q)
			p := path + at.params.Encode()
			at.params.Set("query", q1)
			questions = append(questions, question{at.name + " " + q, p, path + at.params.Encode()})
		}
	}
	exemplarsFrom := sec(first.Add(-time.Minute))
	for _, q := range []string{`{__name__=~"fid_.+"}`, `fid_requests_total{code="500"}`, `fid_native_seconds{path="/api"}`} {
		path := "/api/v1/query_exemplars?" + url.Values{"query": {q}, "start": {exemplarsFrom}, "end": {sec(end)}}.Encode()
		questions = append(questions, question{"exemplars " + q, path, path})
	}

	// Prometheus' answers, checked to hold what the test is about.
	want, want1 := map[string]any{}, map[string]any{}
	for _, q := range questions {
		want[q.name] = promData(t, prom.url(""), q.path, "")
		require.NotEmpty(t, want[q.name], "Prometheus has no answer to %s: is the target scraped as it should be?", q.name)
		want1[q.name] = want[q.name]
		if q.v1 != q.path {
			want1[q.name] = promData(t, prom.url(""), q.v1, "")
		}
		if strings.HasPrefix(q.name, "exemplars ") {
			want1[q.name] = withoutNHCBExemplars(want[q.name].([]any))
		}
	}
	withExemplars := map[string]bool{}
	for _, s := range want[`exemplars {__name__=~"fid_.+"}`].([]any) {
		withExemplars[fmt.Sprint(s.(map[string]any)["seriesLabels"].(map[string]any)["__name__"])] = true
	}
	for _, name := range []string{"fid_native_seconds", "fid_classic_seconds_bucket", "fid_requests_total"} {
		require.True(t, withExemplars[name], "Prometheus holds exemplars of %s: %v", name, withExemplars)
	}
	require.Contains(t, fmt.Sprint(want["instant fid_native_seconds"]), "histogram:", "native histograms scraped")
	require.Contains(t, fmt.Sprint(want["instant fid_classic_seconds"]), "histogram:", "classic histograms converted to custom buckets (NHCB)")
	wantMeta := fidelityMetadata(t, prom.url(""), "")
	require.Len(t, wantMeta, 5, "metadata of the target's five families: %v", wantMeta)
	require.Contains(t, fmt.Sprint(wantMeta["fid_native_seconds"]), "unit:seconds", "units are scraped")

	for _, s := range sinks {
		t.Run(s.name, func(t *testing.T) {
			base := s.lum.url("/prometheus")
			t.Run("queries", func(t *testing.T) {
				for _, q := range questions {
					got := promData(t, base, q.path, s.token)
					w := want[q.name]
					if s.v1() {
						w = want1[q.name]
					}
					if d := diffAPI("", normalizeAPI(w), normalizeAPI(got)); d != "" {
						t.Errorf("%s: luminate differs from Prometheus: %s", q.name, d)
					}
				}
			})
			t.Run("metadata", func(t *testing.T) {
				got := fidelityMetadata(t, base, s.token)
				if d := diffAPI("", wantMeta, got); d != "" {
					t.Errorf("/api/v1/metadata differs from Prometheus': %s\nprometheus: %v\nluminate: %v", d, wantMeta, got)
				}
				one := promData(t, base, "/api/v1/metadata?metric=fid_classic_seconds", s.token)
				require.Equal(t, map[string]any{"fid_classic_seconds": wantMeta["fid_classic_seconds"]}, one)
			})
		})
	}

	// What Prometheus says of its sends: every kind went out, and the 2.0
	// written headers (a shortfall counts as failed) account for all of it.
	for _, s := range sinks {
		labels := map[string]string{"remote_name": s.name}
		for _, kind := range []string{"samples", "histograms", "exemplars"} {
			sent, _ := metricValue(t, prom.url("/metrics"), "prometheus_remote_storage_"+kind+"_total", labels)
			require.Positive(t, sent, "%s: %s sent", s.name, kind)
		}
		for _, kind := range []string{"samples", "histograms", "exemplars", "metadata"} {
			failed, _ := metricValue(t, prom.url("/metrics"), "prometheus_remote_storage_"+kind+"_failed_total", labels)
			require.Zero(t, failed, "%s: %s failed", s.name, kind)
		}
	}
	t.Logf("whole test %s", time.Since(begin).Round(100*time.Millisecond))
}

// fidelityQueries are asked of Prometheus and of every tenant. job
// "fidelity" keeps classic histograms next to native ones; job
// "fidelity-nhcb" turns classic histograms into custom-bucket ones.
var fidelityQueries = []string{
	`fid_native_seconds`,
	`fid_classic_seconds`,
	`fid_mixed_bytes`,
	`histogram_quantile(0.9, rate(fid_native_seconds[1m]))`,
	`histogram_quantile(0.9, rate(fid_classic_seconds_bucket[1m]))`,
	`histogram_quantile(0.9, sum by (le) (rate(fid_classic_seconds_bucket[1m])))`,
	`histogram_quantile(0.9, rate(fid_classic_seconds[1m]))`,
	`histogram_quantile(0.5, rate(fid_mixed_bytes[1m]))`,
	`histogram_quantile(0.5, rate(fid_mixed_bytes_bucket[1m]))`,
	`histogram_count(rate(fid_native_seconds[1m]))`,
	`histogram_sum(rate(fid_native_seconds[1m]))`,
	`histogram_count(fid_mixed_bytes)`,
	`histogram_sum(fid_mixed_bytes)`,
	`histogram_avg(rate(fid_native_seconds[1m]))`,
	`histogram_fraction(0, 0.1, rate(fid_native_seconds[1m]))`,
	`histogram_stddev(rate(fid_native_seconds[1m]))`,
	`sum by (path) (rate(fid_native_seconds[1m]))`,
	`sum by (job) (increase(fid_classic_seconds[1m]))`,
	`rate(fid_requests_total[1m])`,
	`sum by (code) (rate(fid_requests_total[1m]))`,
	`fid_classic_seconds_count`,
	`rate(fid_mixed_bytes_sum[1m])`,
	`fid_temperature_celsius`,
	`avg_over_time(fid_temperature_celsius[30s])`,
}

// fidelityConfig is the Prometheus configuration: scrape the target every
// second over protobuf, twice (as is, and with classic histograms as
// custom buckets), and remote-write to every sink.
func fidelityConfig(target string, sinks []fidelitySink) string {
	var b strings.Builder
	fmt.Fprintf(&b, `
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  scrape_protocols: [PrometheusProto, OpenMetricsText1.0.0, PrometheusText0.0.4]
  scrape_native_histograms: true
  always_scrape_classic_histograms: true
scrape_configs:
  - job_name: fidelity
    static_configs:
      - targets: [%[1]q]
  - job_name: %[2]s
    always_scrape_classic_histograms: false
    convert_classic_histograms_to_nhcb: true
    static_configs:
      - targets: [%[1]q]
remote_write:
`, target, fidelityNHCBJob)
	for _, s := range sinks {
		relabel := ""
		if s.v1() {
			relabel = "    write_relabel_configs:\n" +
				"      - source_labels: [__name__, job]\n" +
				"        regex: " + fidelityNHCB + ";" + fidelityNHCBJob + "\n" +
				"        action: drop\n"
		}
		fmt.Fprintf(&b, `  - name: %q
    url: %q
    protobuf_message: %s
    send_exemplars: true
    send_native_histograms: true
    authorization:
      credentials_file: %q
%s    metadata_config:
      send: %t
      send_interval: 1s
    queue_config:
      max_shards: 1
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
`, s.name, s.lum.url("/api/v1/write"), s.message, s.tokenFile, relabel, s.v1())
	}
	return b.String()
}

// The series that are custom-bucket histograms: fid_classic_seconds of
// the job that converts classic histograms (the other job has none by that
// name, only _bucket, _sum and _count).
const (
	fidelityNHCB    = "fid_classic_seconds"
	fidelityNHCBJob = "fidelity-nhcb"
)

// withoutNHCB returns query q with the NHCB series left out of its
// selectors.
func withoutNHCB(t testing.TB, q string) string {
	t.Helper()
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(q)
	require.NoError(t, err, q)
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && vs.Name == fidelityNHCB {
			vs.LabelMatchers = append(vs.LabelMatchers, labels.MustNewMatcher(labels.MatchNotEqual, "job", fidelityNHCBJob))
		}
		return nil
	})
	return expr.String()
}

// withoutNHCBExemplars is an exemplar answer without the NHCB series.
func withoutNHCBExemplars(series []any) []any {
	var out []any
	for _, s := range series {
		ls, _ := s.(map[string]any)["seriesLabels"].(map[string]any)
		if ls["__name__"] == fidelityNHCB && ls["job"] == fidelityNHCBJob {
			continue
		}
		out = append(out, s)
	}
	if out == nil {
		out = []any{}
	}
	return out
}

// promData sends GET base+path and returns the data of the Prometheus API
// answer, decoded, requiring success.
func promData(t testing.TB, base, path, token string) any {
	t.Helper()
	status, body := apiGet(t, base, path, token)
	require.Equal(t, http.StatusOK, status, "%s%s: %s", base, path, body)
	var r struct {
		Status string `json:"status"`
		Data   any    `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &r), string(body))
	require.Equal(t, "success", r.Status, string(body))
	if qr, ok := r.Data.(map[string]any); ok && qr["resultType"] != nil {
		return qr["result"]
	}
	return r.Data
}

// fidelityMetadata is the /api/v1/metadata answer of base, the target's
// families only.
func fidelityMetadata(t testing.TB, base, token string) map[string]any {
	t.Helper()
	all, ok := promData(t, base, "/api/v1/metadata", token).(map[string]any)
	require.True(t, ok, "metadata is an object")
	out := map[string]any{}
	for k, v := range all {
		if strings.HasPrefix(k, "fid_") {
			out[k] = v
		}
	}
	return out
}

// normalizeAPI turns the lists of series in an API answer (objects with
// "metric" or "seriesLabels") into objects keyed by the series' labels, so
// that answers compare whatever the order of their series.
func normalizeAPI(v any) any {
	switch x := v.(type) {
	case []any:
		keyed := map[string]any{}
		for _, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				keyed = nil
				break
			}
			k, ok := m["metric"]
			if !ok {
				k, ok = m["seriesLabels"]
			}
			if !ok {
				keyed = nil
				break
			}
			kb, _ := json.Marshal(k)
			keyed[string(kb)] = normalizeAPI(m)
		}
		if keyed != nil && len(x) > 0 {
			return keyed
		}
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalizeAPI(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalizeAPI(e)
		}
		return out
	}
	return v
}

// diffAPI describes the first difference between two decoded API answers,
// "" when there is none. Numbers (timestamps) must be equal; strings that
// are numbers (sample values) may differ by 1e-9 relative.
func diffAPI(path string, a, b any) string {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: %v vs %v", path, short(a), short(b))
		}
		keys := make([]string, 0, len(x)+len(y))
		for k := range x {
			keys = append(keys, k)
		}
		for k := range y {
			if _, ok := x[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			xv, inX := x[k]
			yv, inY := y[k]
			switch {
			case !inY:
				return fmt.Sprintf("%s/%s: only in prometheus: %v", path, k, short(xv))
			case !inX:
				return fmt.Sprintf("%s/%s: only in luminate: %v", path, k, short(yv))
			}
			if d := diffAPI(path+"/"+k, xv, yv); d != "" {
				return d
			}
		}
		return ""
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return fmt.Sprintf("%s: %d items vs %v", path, len(x), short(b))
		}
		for i := range x {
			if d := diffAPI(fmt.Sprintf("%s[%d]", path, i), x[i], y[i]); d != "" {
				return d
			}
		}
		return ""
	case string:
		y, ok := b.(string)
		if ok && x == y {
			return ""
		}
		if ok {
			xf, err1 := strconv.ParseFloat(x, 64)
			yf, err2 := strconv.ParseFloat(y, 64)
			if err1 == nil && err2 == nil && math.Abs(xf-yf) <= 1e-9*math.Max(math.Abs(xf), math.Abs(yf)) {
				return ""
			}
		}
		return fmt.Sprintf("%s: %q vs %v", path, x, short(b))
	}
	if !reflect.DeepEqual(a, b) {
		return fmt.Sprintf("%s: %v vs %v", path, short(a), short(b))
	}
	return ""
}

// short renders v for a message, cut to a few hundred characters.
func short(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}
