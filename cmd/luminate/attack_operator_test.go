package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// attackDeleteLimitB is tenant B's max_delete_series override: below its
// attackSeriesB series, so that deleting all of them must be refused.
const attackDeleteLimitB = 20_000

// operatorAttackCases are tenant B's attacks on what issue 14 added (the
// cardinality statistics, deletion and usage), on the series and label
// APIs with many selectors, and on the native query API. None of them may take the
// server past the bounds of TestAttack, and none deletes anything: the
// one deletion that would (all of B's series, over its
// max_delete_series) must be refused whole.
func operatorAttackCases(s *attackServer) []attackCase {
	get := func(path, token string) func(context.Context) *http.Request {
		return func(ctx context.Context) *http.Request {
			return s.request(ctx, http.MethodGet, path, token, nil)
		}
	}
	form := func(path, token string, form url.Values) func(context.Context) *http.Request {
		body := form.Encode()
		return func(ctx context.Context) *http.Request {
			req := s.request(ctx, http.MethodPost, path, token, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return req
		}
	}
	del := func(token string, f url.Values) func(context.Context) *http.Request {
		return form("/api/v1/admin/tsdb/delete_series", token, f)
	}
	all := `{__name__=~".+"}`
	// A matcher of 200,000 alternatives, about 1.3 MiB: a regular
	// expression the server must compile within its bounds or refuse.
	alts := make([]string, 200_000)
	for i := range alts {
		alts[i] = strconv.Itoa(i)
	}
	huge := `{i=~"` + strings.Join(alts, "|") + `x"}`
	native := func(body string) func(context.Context) *http.Request {
		return func(ctx context.Context) *http.Request {
			req := s.request(ctx, http.MethodPost, "/api/v1/query", s.tokenB, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			return req
		}
	}
	century := `"start":0,"end":` + strconv.FormatInt(s.now+100*365*86400_000, 10)
	return []attackCase{
		{name: "native raw of every series over 100 years", build: native(`{"queryType":"raw","metric":"attack_b",` + century + `}`), accept: anyAnswer},
		{name: "native aggregate p99 at 1ms over 100 years", build: native(`{"queryType":"aggregate","metric":"attack_b","interval":"1ms","aggregation":"p99","groupBy":["pod"],` + century + `}`), accept: anyError},
		{name: "native dimension_values of every pod", build: native(`{"queryType":"dimension_values","metric":"attack_b","key":"pod",` + century + `}`), accept: anyAnswer},
		{name: "native query of 1000000 dimensions", build: native(`{"queryType":"raw","metric":"attack_b","dimensions":{` + manyDimensions(1_000_000) + `},` + century + `}`), accept: clientError},
		{name: "cardinality label_values of every label", build: get("/api/v1/cardinality/label_values?label_names[]=__name__&label_names[]=i&label_names[]=pod&limit=500&selector="+url.QueryEscape(all), s.tokenB), accept: anyAnswer},
		{name: "cardinality label_names of all series, active", build: get("/api/v1/cardinality/label_names?limit=500&count_method=active&selector="+url.QueryEscape(all), s.tokenB), accept: anyAnswer},
		{name: "cardinality active_series of all series", build: get("/api/v1/cardinality/active_series?limit=100000&selector="+url.QueryEscape(all), s.tokenB), accept: anyAnswer},
		{name: "status/tsdb topN 1e9 of all series", build: get("/api/v1/status/tsdb?topN=1000000000&focusLabel=pod&match[]="+url.QueryEscape(all), s.tokenB), accept: anyAnswer},
		{name: "status/tsdb over 100 years", build: get("/api/v1/status/tsdb?start=0&end="+strconv.FormatInt(s.now/1000+100*365*86400, 10), s.tokenB), accept: anyAnswer},
		{name: "usage without the operator scope", build: get("/api/v1/usage", s.tokenB), accept: statuses{lo: 403, hi: 403}},
		{name: "delete_series without the admin scope", build: del(s.tokenB, url.Values{"match[]": {all}}), accept: statuses{lo: 403, hi: 403}},
		{name: "delete_series of more series than max_delete_series", build: del(s.tokenBAdmin, url.Values{"match[]": {all}}), accept: statuses{lo: 413, hi: 413}},
		{name: "delete_series with a 1MiB matcher", build: del(s.tokenBAdmin, url.Values{"match[]": {huge}}), accept: anyAnswer},
		{name: "delete_series of 1000 matchers", build: del(s.tokenBAdmin, url.Values{"match[]": repeatMatchers(1000)}), accept: anyAnswer},
		{name: "series of 1000 match[]", build: form("/api/v1/series", s.tokenB, url.Values{"match[]": repeatMatchers(1000)}), accept: anyAnswer},
		{name: "label values of 1000 match[]", build: get("/api/v1/label/pod/values?"+url.Values{"match[]": repeatMatchers(1000)}.Encode(), s.tokenB), accept: anyAnswer},
		{name: "label names of 1000 match[]", build: form("/api/v1/labels", s.tokenB, url.Values{"match[]": repeatMatchers(1000)}), accept: anyAnswer},
		{name: "clean_tombstones, 8 at once", copies: 8, build: func(ctx context.Context) *http.Request {
			return s.request(ctx, http.MethodPost, "/api/v1/admin/tsdb/clean_tombstones", s.tokenBAdmin, nil)
		}, accept: anyAnswer},
	}
}

// manyDimensions is n JSON members "dN":"v".
func manyDimensions(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"d` + strconv.Itoa(i) + `":"v"`)
	}
	return b.String()
}

// repeatMatchers is n selectors that match no series of tenant B.
func repeatMatchers(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = `{__name__="attack_b",i="none-` + strconv.Itoa(i) + `"}`
	}
	return out
}

// deletionIsolated: tenant B, with the admin scope, deletes series named
// as tenant A's are; A keeps every one of its series and samples, and B
// keeps its own (the refused deletion above deleted none of them).
func (s *attackServer) deletionIsolated(t *testing.T) {
	countA := s.count(t, s.tokenA, "attack_a")
	require.Equal(t, attackSeriesA, countA, "tenant A's series before B's deletion")
	req := s.request(context.Background(), http.MethodPost,
		"/api/v1/admin/tsdb/delete_series?match[]="+url.QueryEscape(`{__name__="attack_a"}`), s.tokenBAdmin, nil)
	o := s.send(func(ctx context.Context) *http.Request { return req.WithContext(ctx) })
	require.NoError(t, o.err)
	require.Equal(t, http.StatusNoContent, o.status, o.body)
	require.Equal(t, attackSeriesA, s.count(t, s.tokenA, "attack_a"), "tenant A's series after B deleted attack_a in its own view")
	require.Equal(t, attackSeriesB, s.count(t, s.tokenB, "attack_b"), "tenant B's series after its refused deletions")
}

// count is the number of series of metric name in the view of token, at
// the seeded samples' time.
func (s *attackServer) count(t *testing.T, token, name string) int {
	t.Helper()
	path := "/api/v1/query?query=" + url.QueryEscape("count("+name+")") + "&time=" + strconv.FormatFloat(float64(s.now)/1000, 'f', 3, 64)
	var n int
	require.Eventually(t, func() bool {
		code, body, err := s.get(path, token)
		if err != nil || code != http.StatusOK {
			return false
		}
		var resp struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if json.Unmarshal(body, &resp) != nil {
			return false
		}
		if len(resp.Data.Result) == 0 {
			n = 0
			return true
		}
		v, ok := resp.Data.Result[0].Value[1].(string)
		if !ok {
			return false
		}
		n, err = strconv.Atoi(v)
		return err == nil
	}, 10*time.Second, 100*time.Millisecond, "count(%s)", name)
	return n
}

// attackStalledWrites is how many remote writes of tenant B send all of a
// 10 MiB body (the largest --ingest.max-request-bytes admits) but its last
// byte, then wait: a gigabyte held, without a bound on bodies in flight.
const attackStalledWrites = 100

// stalledWrites: tenant B's stalled uploads hold at most half of
// --http.max-body-bytes-in-flight; those past it are refused at once with
// 503 and Retry-After, peak RSS stays under attackPeakRSS, and tenant A's
// remote write is stored meanwhile.
func (s *attackServer) stalledWrites(t *testing.T) {
	s.resetPeak(t)
	const size = 10 << 20
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type upload struct {
		done chan outcome
		sent chan struct{} // closed once all but the last byte is written, or the write failed
	}
	ups := make([]upload, attackStalledWrites)
	chunk := make([]byte, 1<<20)
	for i := range ups {
		u := upload{done: make(chan outcome, 1), sent: make(chan struct{})}
		ups[i] = u
		pr, pw := io.Pipe()
		go func() {
			defer close(u.sent)
			for left := size - 1; left > 0; left -= len(chunk) {
				if _, err := pw.Write(chunk[:min(left, len(chunk))]); err != nil {
					return
				}
			}
		}()
		go func() {
			<-ctx.Done()
			_ = pw.CloseWithError(errors.New("test over"))
		}()
		req := newRemoteWrite(t, s.p.url("/api/v1/write"), s.tokenB, pr)
		req = req.WithContext(ctx)
		req.ContentLength = size
		go func() {
			start := time.Now()
			resp, err := s.client.Do(req)
			o := outcome{err: err}
			if err == nil {
				head, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
				resp.Body.Close()
				o.status, o.body = resp.StatusCode, string(head)
				if resp.Header.Get("Retry-After") == "" {
					o.body = "(no Retry-After) " + o.body
				}
			}
			o.took = time.Since(start)
			_ = pr.CloseWithError(errors.New("request over"))
			u.done <- o
		}()
	}
	// Until every upload sent what it will, or was refused.
	deadline := time.After(2 * attackAnswerDeadline)
	for _, u := range ups {
		select {
		case <-u.sent:
		case <-deadline:
		}
	}
	refused := 0
	for _, u := range ups {
		select {
		case o := <-u.done:
			if o.err == nil && o.status == http.StatusServiceUnavailable && !strings.HasPrefix(o.body, "(no Retry-After)") {
				refused++
			} else if refused == 0 {
				t.Logf("an upload ended otherwise: %s", o)
			}
		default: // still stalled, held by the server
		}
	}
	t.Logf("%d of %d stalled uploads of 10 MiB refused with 503 and Retry-After", refused, len(ups))
	require.GreaterOrEqual(t, refused, attackStalledWrites/2, "uploads past the body budget refused")

	body := remoteWriteSeries(t, "attack_a_stalled", 10, 1, s.now)
	o := s.send(func(ctx context.Context) *http.Request {
		return newRemoteWrite(t, s.p.url("/api/v1/write"), s.tokenA, bytes.NewReader(body)).WithContext(ctx)
	})
	require.NoError(t, o.err)
	require.Equal(t, http.StatusNoContent, o.status, "tenant A's remote write during B's stalled uploads: %s", o)
	s.checkSurvived(t, time.Now())
}
