package main

// Helpers for the end-to-end tests that run Debian's prometheus and
// promtool next to a luminate process started with start(), and read the
// Prometheus HTTP API of either (the processes are internal/proctest's).

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/internal/proctest"
)

// writeFile writes content to dir/name and returns the path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// promProc is a prometheus child process of the test t.
type promProc struct {
	*proctest.Prometheus
	t testing.TB
}

// startPrometheus starts Debian's prometheus on addr with the
// configuration config (a YAML document); see proctest.StartPrometheus.
// Call waitReady before using it.
func startPrometheus(t testing.TB, name, addr, config string, flags ...string) *promProc {
	t.Helper()
	return startPrometheusBin(t, proctest.Tool(t, "prometheus", proctest.InstallPrometheus), name, addr, config, flags...)
}

// startPrometheusBin is startPrometheus with the prometheus binary bin
// (prometheus3 gives the 3.x one).
func startPrometheusBin(t testing.TB, bin, name, addr, config string, flags ...string) *promProc {
	t.Helper()
	return &promProc{Prometheus: proctest.StartPrometheus(t, bin, name, addr, config, flags...), t: t}
}

// waitReady waits until /-/ready answers 200.
func (p *promProc) waitReady() {
	p.t.Helper()
	p.WaitReady(p.t, waitTimeout)
}

func (p *promProc) url(path string) string { return p.URL(path) }

// apiGet sends GET base+path with an optional bearer token and returns the
// status and body.
func apiGet(t testing.TB, base, path, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// apiResponse is the envelope of the Prometheus HTTP API.
type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
}

// queryResult is the data of a query answer.
type queryResult struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

// instantQuery runs expr at now on a Prometheus HTTP API at base (a
// luminate or a prometheus) and returns the vector it answers.
func instantQuery(t testing.TB, base, token, expr string) model.Vector {
	t.Helper()
	status, body := apiGet(t, base, "/api/v1/query?query="+url.QueryEscape(expr), token)
	require.Equal(t, http.StatusOK, status, "%s: %s", expr, body)
	var r apiResponse
	require.NoError(t, json.Unmarshal(body, &r), string(body))
	require.Equal(t, "success", r.Status, string(body))
	var qr queryResult
	require.NoError(t, json.Unmarshal(r.Data, &qr))
	require.Equal(t, "vector", qr.ResultType, string(body))
	var v model.Vector
	require.NoError(t, json.Unmarshal(qr.Result, &v))
	return v
}

// seriesOf runs /api/v1/series with match on base and returns the label
// sets.
func seriesOf(t testing.TB, base, token, match string) []model.Metric {
	t.Helper()
	status, body := apiGet(t, base, "/api/v1/series?match[]="+url.QueryEscape(match), token)
	require.Equal(t, http.StatusOK, status, "%s: %s", match, body)
	var r apiResponse
	require.NoError(t, json.Unmarshal(body, &r), string(body))
	var ms []model.Metric
	require.NoError(t, json.Unmarshal(r.Data, &ms))
	return ms
}

// metricValue is the sum of the samples of family name exposed at
// metricsURL whose labels include want. found is false when no sample
// matches.
func metricValue(t testing.TB, metricsURL, name string, want map[string]string) (sum float64, found bool) {
	t.Helper()
	resp, err := http.Get(metricsURL)
	require.NoError(t, err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	fam, ok := fams[name]
	if !ok {
		return 0, false
	}
	vec, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.Now()}, fam)
	require.NoError(t, err)
next:
	for _, s := range vec {
		for k, v := range want {
			if string(s.Metric[model.LabelName(k)]) != v {
				continue next
			}
		}
		sum += float64(s.Value)
		found = true
	}
	return sum, found
}

// runTool runs a short-lived program and returns its stdout, failing t
// with its stderr if it does not exit 0.
func runTool(t testing.TB, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, err, "%s %s\nstdout: %s\nstderr: %s", filepath.Base(bin), strings.Join(args, " "), stdout.String(), stderr.String())
	return stdout.String()
}
