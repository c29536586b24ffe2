package promql

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/badger"
	"github.com/luminate-io/luminate/tenancy"
)

func TestParseTime(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"1700000000", time.Unix(1700000000, 0).UTC(), true},
		{"1700000000.123", time.Unix(1700000000, 123e6).UTC(), true},
		{"1700000000.1239", time.Unix(1700000000, 124e6).UTC(), true}, // rounded to ms
		{"-1.5", time.Unix(-1, -5e8).UTC(), true},
		{"2023-11-14T22:13:20Z", time.Unix(1700000000, 0).UTC(), true},
		{"2023-11-14T23:13:20.5+01:00", time.Unix(1700000000, 5e8), true},
		{minTimeFormatted, minTime, true},
		{maxTimeFormatted, maxTime, true},
		{"", time.Time{}, false},
		{"now", time.Time{}, false},
		{"2023-11-14", time.Time{}, false},
	} {
		t.Run(c.in, func(t *testing.T) {
			got, err := parseTime(c.in)
			if !c.ok {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.True(t, c.want.Equal(got), "got %s want %s", got, c.want)
		})
	}
}

func TestParseDuration(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"15", 15 * time.Second, true},
		{"0.5", 500 * time.Millisecond, true},
		{"37.5", 37500 * time.Millisecond, true},
		{"1m30s", 90 * time.Second, true},
		{"5m", 5 * time.Minute, true},
		{"1e300", 0, false},
		{"NaN", 0, false},
		{"", 0, false},
		{"5 minutes", 0, false},
	} {
		t.Run(c.in, func(t *testing.T) {
			got, err := parseDuration(c.in)
			if !c.ok {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, c.want, got)
		})
	}
}

func TestParseLabelName(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"job", "job"},
		{"__name__", "__name__"},
		{"U__http_2e_method", "http.method"},
		{"service.name", "service.name"},
	} {
		got, err := parseLabelName(c.in)
		require.NoError(t, err, c.in)
		require.Equal(t, c.want, got)
	}
	_, err := parseLabelName("\xff")
	require.Error(t, err)
	_, err = parseLabelName("")
	require.Error(t, err)
	_, err = parseLabelName("U__") // unescapes to "", as in Prometheus
	require.Error(t, err)
}

// FuzzQueryParams feeds arbitrary parameters to the parsers and to the
// endpoints that parse them. Parsers must not panic, and what they accept
// must hold their invariants; every response must be one of Prometheus'
// envelopes with a status that belongs to its errorType.
func FuzzQueryParams(f *testing.F) {
	for _, seed := range [][7]string{
		{"up", "1700000000", "1700000000", "1700000300", "15", "10", "job"},
		{`sum by (job) (rate(http_requests_total[5m]))`, "2023-11-14T22:13:20Z", "0", "60", "0.5", "", "U__http_2e_method"},
		{`{__name__=~".+"}`, "-1.5", "1e9", "1e9", "1m", "0", "__name__"},
		{`x[5m:1m] offset -1h @ start()`, "", "", "", "", "-1", ""},
		{`label_replace(up, "a", "$1", "b", "(.*)")`, "NaN", "+Inf", "-Inf", "1e300", "9223372036854775807", "\xff"},
		{`1 + fill(0) up`, minTimeFormatted, minTimeFormatted, maxTimeFormatted, "0.001", "1", "a.b"},
		{`"str"`, "abc", "2", "1", "1", "x", `{job="a"}`},
		{`sort_by_label(up, "job")`, "1.0005", "0", "11001", "1", "40000", "le"},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3], seed[4], seed[5], seed[6])
	}

	store, err := badger.New(badger.Config{Path: f.TempDir()}, nil, prometheus.NewRegistry())
	require.NoError(f, err)
	f.Cleanup(func() { require.NoError(f, store.Close()) })
	cfg := DefaultConfig()
	cfg.Timeout = time.Second
	cfg.MaxSamples = 100_000
	api, err := New(cfg, store, nil, nil, prometheus.NewRegistry())
	require.NoError(f, err)
	f.Cleanup(func() { require.NoError(f, api.Close()) })
	h := routesHandler(api, store)
	p := parser.NewParser(parser.Options{})

	f.Fuzz(func(t *testing.T, query, ts, start, end, step, limit, name string) {
		form := url.Values{
			"query": {query}, "time": {ts}, "start": {start}, "end": {end}, "step": {step},
			"limit": {limit}, "match[]": {query}, "timeout": {step}, "lookback_delta": {step},
		}
		r := httptest.NewRequest(http.MethodPost, "/api/v1/query_range", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		require.NoError(t, r.ParseForm())

		if rp, err := parseRangeParams(r); err == nil {
			require.False(t, rp.end.Before(rp.start))
			require.Positive(t, rp.step)
			require.LessOrEqual(t, int64(rp.end.Sub(rp.start)/rp.step), int64(maxPointsPerSeries))
		}
		if tm, err := parseTimeParam(r, "time", minTime); err == nil && ts == "" {
			require.True(t, tm.Equal(minTime))
		}
		if l, err := parseLimit(limit); err == nil {
			require.GreaterOrEqual(t, l, 0)
			require.GreaterOrEqual(t, hintLimit(l), l)
		}
		if d, err := parseTimeout(r); err == nil && step != "" {
			require.Positive(t, d)
		}
		if n, err := parseLabelName(name); err == nil {
			require.True(t, utf8.ValidString(n))
			require.True(t, model.UTF8Validation.IsValidLabelName(n))
		}
		if sets, err := parseMatchers(p, []string{query}); err == nil {
			for _, ms := range sets {
				nonEmpty := false
				for _, m := range ms {
					nonEmpty = nonEmpty || !m.Matches("")
				}
				require.True(t, nonEmpty)
			}
		}

		// Every endpoint that parses these parameters answers with one of
		// Prometheus' envelopes.
		for _, path := range []string{
			"/api/v1/query", "/api/v1/query_range", "/api/v1/series", "/api/v1/labels",
			"/api/v1/label/" + url.PathEscape(name) + "/values", "/api/v1/format_query",
			"/api/v1/parse_query", "/api/v1/query_exemplars", "/api/v1/status/tsdb",
		} {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.URL.Path = path
			req.URL.RawQuery = form.Encode()
			req = req.WithContext(tenancy.NewContext(req.Context(), tenancy.Principal{Tenant: "fuzz", Scopes: []tenancy.Scope{tenancy.ScopeRead}}))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code == http.StatusNotFound || w.Code == http.StatusNoContent || w.Code/100 == 3 {
				continue // a name that is not one clean path segment; a query without selectors
			}
			var env struct {
				Status    string `json:"status"`
				ErrorType string `json:"errorType"`
			}
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &env), "%s: %s", path, w.Body)
			want := map[string]int{"": 200, "bad_data": 400, "execution": 422, "timeout": 503, "canceled": 503}[env.ErrorType]
			require.Equal(t, want, w.Code, "%s: %s", path, w.Body)
			require.Equal(t, env.ErrorType == "", env.Status == "success", "%s: %s", path, w.Body)
		}
	})
}

// routesHandler serves the API's routes for the principal in the request
// context as the api router would (which the tests of this package cannot
// import): the tenant's view, the result or the error in Prometheus'
// envelope.
func routesHandler(a *API, store storage.MetricsStore) http.Handler {
	mux := http.NewServeMux()
	for _, ep := range a.Routes() {
		for _, m := range ep.Methods {
			mux.HandleFunc(m+" "+ep.Path, func(w http.ResponseWriter, r *http.Request) {
				p, err := tenancy.FromContext(r.Context())
				var res any
				if err == nil {
					res, err = ep.Serve(r, storage.Tenant{Principal: p, Store: store.ForTenant(p.Tenant)})
				}
				switch {
				case err == nil && res == nil:
					w.WriteHeader(http.StatusNoContent)
				case err == nil:
					err = res.(*response).Respond(w, r)
				}
				if err != nil {
					apierror.Write(w, apierror.Prometheus, err, "")
				}
			})
		}
	}
	return mux
}
