package promql_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	pql "github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/stats"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/promql"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/badger"
	"github.com/luminate-io/luminate/tenancy"
)

// Tenants of the upstream suite: the suite's data goes to suiteTenant, a
// distorted copy of it (-v-1000) to shadowTenant, so that a leak between
// tenants changes results.
const (
	suiteTenant  tenancy.ID = "promqltest"
	shadowTenant tenancy.ID = "promqltest-shadow"
)

// TestUpstreamPromQLThroughHTTP runs Prometheus' PromQL acceptance suite
// (promqltest, v0.316.0) with every query sent to /api/v1/query or
// /api/v1/query_range of an API over a real Badger store, and the JSON
// answer decoded back. The suite checks the answers against its
// expectations, and every answer is also compared with what the upstream
// engine returns when it reads the same store directly, value by value and
// byte for byte in Prometheus' JSON codec.
func TestUpstreamPromQLThroughHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("the upstream suite takes a while")
	}
	runUpstreamSuite(t, func(tb testing.TB) promstorage.Storage {
		store, err := badger.New(badger.Config{Path: tb.TempDir()}, nil, prometheus.NewRegistry())
		require.NoError(tb, err)
		return openSuiteStorage(tb, store, store.Close)
	})
}

// runUpstreamSuite runs every upstream file on the storage newStorage opens.
func runUpstreamSuite(t *testing.T, newStorage func(testing.TB) promstorage.Storage) {
	direct := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
	eng := &httpEngine{direct: direct}
	run := &countFiles{T: t}
	promqltest.RunBuiltinTestsWithStorage(run, eng, newStorage)
	require.Positive(t, run.ran, "no upstream file ran")
	require.Positive(t, eng.queries, "no query went through HTTP")
	t.Logf("%d upstream files, %d queries through HTTP, all equal to the engine's direct results", run.ran, eng.queries)
}

// countFiles counts the upstream files that ran.
type countFiles struct {
	*testing.T
	ran int
}

func (s *countFiles) Run(name string, f func(*testing.T)) bool {
	return s.T.Run(name, func(t *testing.T) {
		s.ran++
		f(t)
	})
}

// suiteStorage is the storage the suite loads: the suite tenant's view of
// a fresh store, with the API served over the same store.
type suiteStorage struct {
	storage.TenantStore
	shadow storage.TenantStore
	close  func() error
	api    *promql.API
	srv    *httptest.Server
}

func openSuiteStorage(tb testing.TB, store storage.MetricsStore, closeStore func() error) *suiteStorage {
	cfg := promql.DefaultConfig()
	cfg.MaxSamples = promqltest.DefaultMaxSamplesPerQuery
	cfg.Timeout = 100 * time.Second
	cfg.StartTimestamps = true // as promqltest.NewTestEngine, for start_timestamps.test
	api, err := promql.New(cfg, store, nil, nil, prometheus.NewRegistry())
	require.NoError(tb, err)
	return &suiteStorage{
		TenantStore: store.ForTenant(suiteTenant),
		shadow:      store.ForTenant(shadowTenant),
		close:       closeStore,
		api:         api,
		srv:         httptest.NewServer(newRouter(tb, api, store, nil)),
	}
}

func (*suiteStorage) StartTime() (int64, error) { return math.MinInt64, nil }

func (s *suiteStorage) Close() error {
	s.srv.Close()
	return errors.Join(s.api.Close(), s.close())
}

// Appender is there for promstorage.Storage only: the suite loads
// through AppenderV2, and Luminate's stores have no other appender.
func (*suiteStorage) Appender(context.Context) promstorage.Appender {
	panic("the PromQL suite appends through AppenderV2")
}

func (s *suiteStorage) AppenderV2(ctx context.Context) promstorage.AppenderV2 {
	return &shadowAppender{main: s.TenantStore.AppenderV2(ctx), shadow: s.shadow.AppenderV2(ctx)}
}

// shadowAppender writes every sample to the suite tenant and a distorted
// copy to the shadow tenant.
type shadowAppender struct{ main, shadow promstorage.AppenderV2 }

func (a *shadowAppender) Append(ref promstorage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AppendV2Options) (promstorage.SeriesRef, error) {
	ref, err := a.main.Append(ref, ls, st, t, v, h, fh, opts)
	if err != nil {
		return ref, err
	}
	if !math.IsNaN(v) {
		v = -v - 1000
	}
	_, err = a.shadow.Append(0, ls, st, t, v, nil, nil, opts)
	return ref, err
}

func (a *shadowAppender) Commit() error   { return errors.Join(a.main.Commit(), a.shadow.Commit()) }
func (a *shadowAppender) Rollback() error { return errors.Join(a.main.Rollback(), a.shadow.Rollback()) }

// httpEngine is a promql.QueryEngine that runs each query through the
// HTTP API of the suiteStorage it is given, and checks the answer against
// the direct engine reading the same storage.
type httpEngine struct {
	direct  *pql.Engine
	queries int
}

func (e *httpEngine) NewInstantQuery(ctx context.Context, q promstorage.Queryable, _ pql.QueryOpts, qs string, ts time.Time) (pql.Query, error) {
	return e.newQuery(ctx, q, qs, "/api/v1/query", url.Values{"time": {ts.UTC().Format(time.RFC3339Nano)}},
		func() (pql.Query, error) { return e.direct.NewInstantQuery(ctx, q, nil, qs, ts) })
}

func (e *httpEngine) NewRangeQuery(ctx context.Context, q promstorage.Queryable, _ pql.QueryOpts, qs string, start, end time.Time, step time.Duration) (pql.Query, error) {
	return e.newQuery(ctx, q, qs, "/api/v1/query_range", url.Values{
		"start": {start.UTC().Format(time.RFC3339Nano)},
		"end":   {end.UTC().Format(time.RFC3339Nano)},
		"step":  {model.Duration(step).String()},
	}, func() (pql.Query, error) { return e.direct.NewRangeQuery(ctx, q, nil, qs, start, end, step) })
}

// newQuery sends the query and compares the answer with the direct
// engine's; a bad_data answer is a construction error, as the engine's.
func (e *httpEngine) newQuery(ctx context.Context, q promstorage.Queryable, qs, path string, params url.Values, direct func() (pql.Query, error)) (pql.Query, error) {
	st, ok := q.(*suiteStorage)
	if !ok {
		return nil, fmt.Errorf("httpEngine needs a *suiteStorage, got %T", q)
	}
	e.queries++
	params.Set("query", qs)
	res, raw, constructErr := post(ctx, st.srv.URL+path, params)

	dq, derr := direct()
	var want *pql.Result
	if derr == nil {
		defer dq.Close()
		want = dq.Exec(ctx)
	}
	switch {
	case (constructErr == nil) != (derr == nil):
		return nil, fmt.Errorf("query %q: construction error through HTTP %v, directly %v", qs, constructErr, derr)
	case constructErr != nil:
		if constructErr.Error() != derr.Error() {
			return nil, fmt.Errorf("query %q: construction error through HTTP %q, directly %q", qs, constructErr, derr)
		}
		return nil, constructErr
	}
	if res.Err == nil && want.Err == nil {
		if err := sameJSON(raw, want.Value); err != nil {
			return nil, fmt.Errorf("query %q through HTTP differs from the engine's result in Prometheus' codec: %w", qs, err)
		}
		takeHistograms(res.Value, want.Value)
	}
	if err := sameResult(qs, res, want); err != nil {
		return nil, fmt.Errorf("query %q through HTTP differs from the engine: %w", qs, err)
	}
	return &httpQuery{qs: qs, res: res}, nil
}

// sameJSON compares the result of an HTTP answer with the engine's value
// encoded by Prometheus' own JSON codec, byte for byte. The samples of a
// vector may come in any order (count_values orders them at random; the
// suite checks the order where it matters).
func sameJSON(raw json.RawMessage, want parser.Value) error {
	wb, err := promql.UpstreamJSON(want)
	if err != nil {
		return err
	}
	if _, ok := want.(pql.Vector); !ok {
		if string(raw) != string(wb) {
			return fmt.Errorf("\n%s\nupstream codec\n%s", raw, wb)
		}
		return nil
	}
	var got, exp []json.RawMessage
	if err := json.Unmarshal(raw, &got); err != nil {
		return err
	}
	if err := json.Unmarshal(wb, &exp); err != nil {
		return err
	}
	g, w := make([]string, len(got)), make([]string, len(exp))
	for i := range got {
		g[i] = string(got[i])
	}
	for i := range exp {
		w[i] = string(exp[i])
	}
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		return fmt.Errorf("\n%s\nupstream codec\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
	return nil
}

// takeHistograms gives the histograms of the decoded HTTP answer got their
// schema and spans from the engine's value want: the JSON, checked equal
// to upstream's encoding of want, has buckets by boundaries only.
func takeHistograms(got, want parser.Value) {
	switch g := got.(type) {
	case pql.Vector:
		byLabels := map[string]*histogram.FloatHistogram{}
		for _, s := range want.(pql.Vector) {
			byLabels[s.Metric.String()] = s.H
		}
		for i := range g {
			if g[i].H != nil {
				g[i].H = byLabels[g[i].Metric.String()]
			}
		}
	case pql.Matrix:
		w := want.(pql.Matrix)
		for i := range g {
			if len(g[i].Histograms) > 0 {
				g[i].Histograms = w[i].Histograms
			}
		}
	}
}

// sameResult compares an HTTP answer to query qs with the engine's result:
// the same error text (without the setting a limit error names), the same
// value (NaN equal to NaN), the same warnings and infos (with their
// positions in qs).
func sameResult(qs string, got, want *pql.Result) error {
	if (got.Err == nil) != (want.Err == nil) {
		return fmt.Errorf("error %v, engine error %v", got.Err, want.Err)
	}
	if got.Err != nil {
		g, _, _ := strings.Cut(got.Err.Error(), " (raise ")
		if g != want.Err.Error() {
			return fmt.Errorf("error %q, engine error %q", g, want.Err)
		}
		return nil
	}
	// Annotations are a set: they come in any order.
	gw, gi := got.Warnings.AsStrings(qs, 0, 0)
	ww, wi := want.Warnings.AsStrings(qs, 0, 0)
	for _, s := range [][]string{gw, gi, ww, wi} {
		slices.Sort(s)
	}
	if fmt.Sprint(gw, gi) != fmt.Sprint(ww, wi) {
		return fmt.Errorf("annotations %v %v, engine %v %v", gw, gi, ww, wi)
	}
	if g, w := valueString(got.Value), valueString(want.Value); g != w {
		return fmt.Errorf("value\n%s\nengine value\n%s", g, w)
	}
	return nil
}

// valueString prints a value with exact floats (NaNs alike). Vector
// samples are sorted: some functions (count_values) order them at random,
// and the suite checks the order of the queries where it matters.
func valueString(v any) string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	var b strings.Builder
	switch v := v.(type) {
	case pql.Vector:
		fmt.Fprintf(&b, "vector %d\n", len(v))
		lines := make([]string, 0, len(v))
		for _, s := range v {
			if s.H != nil {
				lines = append(lines, fmt.Sprintf("%s %d H%s", s.Metric, s.T, s.H))
				continue
			}
			lines = append(lines, fmt.Sprintf("%s %d %s", s.Metric, s.T, f(s.F)))
		}
		slices.Sort(lines)
		b.WriteString(strings.Join(lines, "\n"))
	case pql.Matrix:
		fmt.Fprintf(&b, "matrix %d\n", len(v))
		for _, s := range v {
			fmt.Fprintf(&b, "%s:", s.Metric)
			for _, p := range s.Floats {
				fmt.Fprintf(&b, " %d=%s", p.T, f(p.F))
			}
			for _, p := range s.Histograms {
				fmt.Fprintf(&b, " %d=H%s", p.T, p.H)
			}
			b.WriteString("\n")
		}
	case pql.Scalar:
		fmt.Fprintf(&b, "scalar %d %s", v.T, f(v.V))
	case pql.String:
		fmt.Fprintf(&b, "string %d %q", v.T, v.V)
	default:
		fmt.Fprintf(&b, "%T %v", v, v)
	}
	return b.String()
}

// post sends a form POST as the suite tenant and decodes the answer into
// an engine result, or returns a construction error for a bad query.
func post(ctx context.Context, u string, params url.Values) (*pql.Result, json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(params.Encode()))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(tenantHeader, string(suiteTenant))
	// The suite's engine uses start timestamps (NewTestEngine); ask for
	// the same.
	req.Header.Set("X-Prometheus-Use-Start-Timestamps", "true")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	var env struct {
		Status    string   `json:"status"`
		ErrorType string   `json:"errorType"`
		Error     string   `json:"error"`
		Warnings  []string `json:"warnings"`
		Infos     []string `json:"infos"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, nil, fmt.Errorf("decode %s: %w", body, err)
	}
	if env.Status != "success" {
		if env.ErrorType == "bad_data" {
			return nil, nil, errors.New(strings.TrimPrefix(env.Error, `invalid parameter "query": `))
		}
		return &pql.Result{Err: errors.New(env.Error)}, nil, nil
	}
	res := &pql.Result{}
	for _, w := range env.Warnings {
		res.Warnings.Add(annotation(annotations.PromQLWarning, w))
	}
	for _, i := range env.Infos {
		res.Warnings.Add(annotation(annotations.PromQLInfo, i))
	}
	res.Value, err = decodeValue(env.Data.ResultType, env.Data.Result)
	if err != nil {
		return nil, nil, fmt.Errorf("decode %s: %w", body, err)
	}
	return res, env.Data.Result, nil
}

// annotation turns an annotation string back into an annotation of kind,
// with its position in the query, as the suite expects it.
func annotation(kind error, s string) error {
	return fmt.Errorf("%w: %s", kind, strings.TrimPrefix(s, kind.Error()+": "))
}

type jsonSample struct {
	Metric     map[string]string   `json:"metric"`
	Value      []json.RawMessage   `json:"value"`
	Values     [][]json.RawMessage `json:"values"`
	Histogram  []json.RawMessage   `json:"histogram"`
	Histograms [][]json.RawMessage `json:"histograms"`
}

// placeholder stands for a histogram of an HTTP answer until
// takeHistograms replaces it with the engine's.
var placeholder = &histogram.FloatHistogram{}

func decodeValue(typ string, raw json.RawMessage) (parser.Value, error) {
	switch typ {
	case "vector":
		var ss []jsonSample
		if err := json.Unmarshal(raw, &ss); err != nil {
			return nil, err
		}
		v := pql.Vector{}
		for _, s := range ss {
			if s.Histogram != nil {
				t, err := decodeHistogramPoint(s.Histogram)
				if err != nil {
					return nil, err
				}
				v = append(v, pql.Sample{Metric: labels.FromMap(s.Metric), T: t, H: placeholder})
				continue
			}
			t, f, err := decodePoint(s.Value)
			if err != nil {
				return nil, err
			}
			v = append(v, pql.Sample{Metric: labels.FromMap(s.Metric), T: t, F: f})
		}
		return v, nil
	case "matrix":
		var ss []jsonSample
		if err := json.Unmarshal(raw, &ss); err != nil {
			return nil, err
		}
		m := pql.Matrix{}
		for _, s := range ss {
			ser := pql.Series{Metric: labels.FromMap(s.Metric)}
			for _, p := range s.Values {
				t, f, err := decodePoint(p)
				if err != nil {
					return nil, err
				}
				ser.Floats = append(ser.Floats, pql.FPoint{T: t, F: f})
			}
			for _, p := range s.Histograms {
				t, err := decodeHistogramPoint(p)
				if err != nil {
					return nil, err
				}
				ser.Histograms = append(ser.Histograms, pql.HPoint{T: t, H: placeholder})
			}
			m = append(m, ser)
		}
		return m, nil
	case "scalar":
		var p []json.RawMessage
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, err
		}
		t, f, err := decodePoint(p)
		return pql.Scalar{T: t, V: f}, err
	case "string":
		var p []json.RawMessage
		if err := json.Unmarshal(raw, &p); err != nil || len(p) != 2 {
			return nil, fmt.Errorf("string %s: %v", raw, err)
		}
		t, err := decodeTimestamp(p[0])
		if err != nil {
			return nil, err
		}
		var s string
		err = json.Unmarshal(p[1], &s)
		return pql.String{T: t, V: s}, err
	}
	return nil, fmt.Errorf("result type %q", typ)
}

// decodePoint decodes [seconds, "value"] exactly.
func decodePoint(p []json.RawMessage) (int64, float64, error) {
	if len(p) != 2 {
		return 0, 0, fmt.Errorf("point of %d elements", len(p))
	}
	t, err := decodeTimestamp(p[0])
	if err != nil {
		return 0, 0, err
	}
	var s string
	if err := json.Unmarshal(p[1], &s); err != nil {
		return 0, 0, err
	}
	f, err := strconv.ParseFloat(s, 64)
	return t, f, err
}

// decodeHistogramPoint decodes the timestamp of [seconds, {histogram}].
func decodeHistogramPoint(p []json.RawMessage) (int64, error) {
	if len(p) != 2 {
		return 0, fmt.Errorf("histogram point of %d elements", len(p))
	}
	return decodeTimestamp(p[0])
}

// decodeTimestamp turns float seconds with at most 3 decimals into
// milliseconds without rounding errors.
func decodeTimestamp(raw json.RawMessage) (int64, error) {
	s := string(raw)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	secs, frac, _ := strings.Cut(s, ".")
	if len(frac) > 3 {
		return 0, fmt.Errorf("timestamp %s has more than millisecond precision", raw)
	}
	ms, err := strconv.ParseInt(secs+(frac + "000")[:3], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("timestamp %s: %w", raw, err)
	}
	if neg {
		ms = -ms
	}
	return ms, nil
}

// httpQuery is a query already answered over HTTP.
type httpQuery struct {
	qs  string
	res *pql.Result
}

func (q *httpQuery) Exec(context.Context) *pql.Result { return q.res }
func (*httpQuery) Close()                             {}
func (*httpQuery) Statement() parser.Statement        { return nil }
func (*httpQuery) Stats() *stats.Statistics           { return nil }
func (*httpQuery) Cancel()                            {}
func (q *httpQuery) String() string                   { return q.qs }
