package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
	"github.com/luminate-io/luminate/tenancy"
)

// TestServeLongMatcherBothBackends sends what Grafana sends for a
// multi-value variable set to All (i=~"0|1|...|149999", about a megabyte)
// to luminate on Badger and on ClickHouse: the queries and the series
// listing (POST: label values are GET only, and a megabyte is past any
// server's URL limit) answer alike on both. A select wider than
// --limits.max-series-per-query fails alike on both, naming the setting,
// and no answer quotes SQL. The selector is past the default
// --query.max-length (256 KiB), raised here as an operator whose
// dashboards send such variables would.
func TestServeLongMatcherBothBackends(t *testing.T) {
	dsn := chtest.Start(t)
	const nSeries, maxSeries = 600, 1000 // of each of two metrics
	backends := map[string][]string{
		"badger":     nil,
		"clickhouse": {"--storage.backend=clickhouse", "--storage.clickhouse.dsn=" + dsn, "--storage.clickhouse.database=longmatcher"},
	}
	now := time.Now().Add(-time.Minute).UnixMilli()
	var wr prompb.WriteRequest
	for _, metric := range []string{"long_matcher", "other"} {
		for i := range nSeries {
			wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{
				Labels:  []prompb.Label{{Name: "__name__", Value: metric}, {Name: "i", Value: strconv.Itoa(i)}},
				Samples: []prompb.Sample{{Timestamp: now, Value: float64(i)}},
			})
		}
	}
	raw, err := wr.Marshal()
	require.NoError(t, err)
	body := snappy.Encode(nil, raw)
	var alt strings.Builder
	for i := range 150_000 {
		if i > 0 {
			alt.WriteByte('|')
		}
		alt.WriteString(strconv.Itoa(i))
	}
	selector := `long_matcher{i=~"` + alt.String() + `"}`
	at := strconv.FormatFloat(float64(now)/1000, 'f', 3, 64)
	answers := map[string][]string{}
	for name, flags := range backends {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			secret := filepath.Join(dir, "hmac.secret")
			_, err := tenancy.EnsureDevSecret(secret)
			require.NoError(t, err)
			args := append([]string{"serve", "--log.format=json", "--http.listen-address=127.0.0.1:0",
				"--storage.badger.path=" + filepath.Join(dir, "data"), "--auth.jwt.hmac-secret-file=" + secret,
				"--limits.max-series-per-query=" + strconv.Itoa(maxSeries),
				"--query.max-length=2097152"}, flags...)
			p := start(t, args...)
			require.NotEmpty(t, p.addr, p.stderr())
			token := e2eToken(t, secret, "acme", "metrics:read,metrics:write")
			resp, err := http.DefaultClient.Do(newRemoteWrite(t, p.url("/api/v1/write"), token, bytes.NewReader(body)))
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusNoContent, resp.StatusCode, string(b))

			post := func(path string, form url.Values) (int, string) {
				req, err := http.NewRequest(http.MethodPost, p.url(path), strings.NewReader(form.Encode()))
				require.NoError(t, err)
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				return resp.StatusCode, string(b)
			}
			var got []string
			for _, c := range []struct {
				path string
				form url.Values
			}{
				{"/api/v1/query", url.Values{"query": {"count(" + selector + ")"}, "time": {at}}},
				{"/api/v1/query", url.Values{"query": {"sum(" + selector + ")"}, "time": {at}}},
				{"/api/v1/series", url.Values{"match[]": {selector}, "start": {at}, "end": {at}}},
			} {
				code, b := post(c.path, c.form)
				require.Equal(t, http.StatusOK, code, "%s: %.500s", c.path, b)
				var env struct {
					Status string          `json:"status"`
					Data   json.RawMessage `json:"data"`
				}
				require.NoError(t, json.Unmarshal([]byte(b), &env))
				got = append(got, string(env.Data))
			}
			require.Contains(t, got[0], `"`+strconv.Itoa(nSeries)+`"`, "count")

			code, wide := post("/api/v1/query", url.Values{"query": {`{__name__=~".+"}`}, "time": {at}})
			require.Equal(t, http.StatusUnprocessableEntity, code, wide)
			require.Contains(t, wide, "max_series_per_query")
			got = append(got, wide)

			code, rb := remoteRead(t, p, token, now, &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: "i", Value: alt.String()},
				&prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "long_matcher"})
			require.Equal(t, http.StatusOK, code, "%.500s", rb)
			var rr prompb.ReadResponse
			require.NoError(t, rr.Unmarshal(rb))
			require.Len(t, rr.Results[0].Timeseries, nSeries, "remote read")
			code, rb = remoteRead(t, p, token, now, &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: "__name__", Value: ".+"})
			require.Equal(t, http.StatusBadRequest, code, "%.500s", rb)
			require.Contains(t, string(rb), "max_series_per_query")
			got = append(got, string(rb))
			for _, s := range got {
				require.NotContains(t, s, "SELECT")
			}
			answers[name] = got

			if name != "clickhouse" {
				return
			}
			// A query ClickHouse fails: 5xx, no SQL, no table, no server message.
			opts, err := ch.ParseDSN(dsn)
			require.NoError(t, err)
			conn, err := ch.Open(opts)
			require.NoError(t, err)
			defer conn.Close()
			require.NoError(t, conn.Exec(t.Context(), "DROP TABLE longmatcher.series"))
			code, failed := post("/api/v1/query", url.Values{"query": {selector}, "time": {at}})
			require.Equal(t, http.StatusInternalServerError, code, failed)
			code, rb = remoteRead(t, p, token, now, &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "long_matcher"})
			require.Equal(t, http.StatusInternalServerError, code, string(rb))
			for _, s := range []string{failed, string(rb)} {
				for _, leak := range []string{"SELECT", "longmatcher", "`", "Code", "code:", "Exception", "exist"} {
					require.NotContains(t, s, leak)
				}
			}
			require.Contains(t, p.stderr(), "doesn't exist", "the server's message is logged")
		})
	}
	require.Equal(t, answers["badger"], answers["clickhouse"])
}

// remoteRead sends one remote-read query of the minute around now and
// returns the status and the body (decompressed when it is the answer).
func remoteRead(t *testing.T, p *proc, token string, now int64, ms ...*prompb.LabelMatcher) (int, []byte) {
	t.Helper()
	rr := &prompb.ReadRequest{Queries: []*prompb.Query{{StartTimestampMs: now - 30_000, EndTimestampMs: now + 30_000, Matchers: ms}}}
	raw, err := rr.Marshal()
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, p.url("/api/v1/read"), bytes.NewReader(snappy.Encode(nil, raw)))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Read-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.StatusCode == http.StatusOK {
		b, err = snappy.Decode(nil, b)
		require.NoError(t, err)
	}
	return resp.StatusCode, b
}
