package native_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

// appendV2 stores one sample (a float v, or h or fh) with opts for tenant.
func (e *queryEnv) appendV2(tenant tenancy.ID, ls labels.Labels, at time.Duration, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AppendV2Options) {
	e.t.Helper()
	app := e.store.ForTenant(tenant).AppenderV2(context.Background())
	_, err := app.Append(0, ls, 0, e.ms(at), v, h, fh, opts)
	require.NoError(e.t, err)
	require.NoError(e.t, app.Commit())
}

// TestNativeQueryHistograms checks that raw and latest queries return
// native histograms in the native shape, "histogram" in place of "value",
// integer or float as stored, among the floats of a series that switches
// kinds; stale markers are not samples.
func TestNativeQueryHistograms(t *testing.T) {
	e := newQueryEnv(t, tenancy.DefaultTenantLimits())
	acme := e.token("acme", tenancy.ScopeRead)
	s := time.Second
	a := labels.FromStrings("__name__", "lat", "host", "a")
	b := labels.FromStrings("__name__", "lat", "host", "b")
	// Hints as Prometheus' TSDB keeps them: the first histogram of a
	// chunk says unknown, the next ones of a counter not_reset.
	e.appendV2("acme", a, 0, 0, &histogram.Histogram{
		Schema: 3, Count: 12, Sum: 34.5, ZeroThreshold: 0.001, ZeroCount: 2,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 3}}, PositiveBuckets: []int64{1, 3, 1}, // 1 4 5
	}, nil, promstorage.AppendV2Options{})
	e.appendV2("acme", a, 5*s, 0, &histogram.Histogram{
		Schema: 3, Count: 13, Sum: 35, ZeroThreshold: 0.001, ZeroCount: 2,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 3}}, PositiveBuckets: []int64{1, 3, 2}, // 1 4 6
	}, nil, promstorage.AppendV2Options{})
	e.appendV2("acme", a, 10*s, 7.5, nil, nil, promstorage.AppendV2Options{}) // a float between histograms
	e.appendV2("acme", a, 20*s, 0, &histogram.Histogram{
		Schema: -2, Count: 3, Sum: math.Inf(1), CounterResetHint: histogram.GaugeType,
		NegativeSpans: []histogram.Span{{Offset: -1, Length: 1}, {Offset: 2, Length: 1}}, NegativeBuckets: []int64{2, -1}, // 2 1
	}, nil, promstorage.AppendV2Options{})
	e.appendV2("acme", b, 0, 0, nil, &histogram.FloatHistogram{
		Schema: histogram.CustomBucketsSchema, Count: 2.5, Sum: 0.75, CounterResetHint: histogram.GaugeType,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []float64{0.5, 2},
		CustomValues: []float64{0.1, 0.5, 1},
	}, promstorage.AppendV2Options{})
	e.appendV2("acme", b, 10*s, 0, nil, &histogram.FloatHistogram{ // whole counts, still a float histogram
		Schema: 0, Count: 1, Sum: 1, PositiveSpans: []histogram.Span{{Offset: 1, Length: 1}}, PositiveBuckets: []float64{1},
	}, promstorage.AppendV2Options{})
	e.appendV2("acme", b, 20*s, 0, &histogram.Histogram{Sum: math.Float64frombits(value.StaleNaN)}, nil, promstorage.AppendV2Options{})
	e.appendV2("other", a, 0, 0, &histogram.Histogram{Count: 99, ZeroCount: 99, Sum: 99}, nil, promstorage.AppendV2Options{})

	at := func(d time.Duration) string { return fmt.Sprint(e.ms(d)) }
	const (
		a0 = `"histogram":{"schema":3,"count":12,"sum":34.5,"zero_threshold":0.001,"zero_count":2,"counter_reset_hint":"unknown",` +
			`"positive_spans":[{"offset":0,"length":3}],"positive_counts":[1,4,5]}`
		a5 = `"histogram":{"schema":3,"count":13,"sum":35,"zero_threshold":0.001,"zero_count":2,"counter_reset_hint":"not_reset",` +
			`"positive_spans":[{"offset":0,"length":3}],"positive_counts":[1,4,6]}`
		a20 = `"histogram":{"schema":-2,"count":3,"sum":"+Inf","counter_reset_hint":"gauge",` +
			`"negative_spans":[{"offset":-1,"length":1},{"offset":2,"length":1}],"negative_counts":[2,1]}`
		b0 = `"histogram":{"schema":-53,"count":2.5,"sum":0.75,"counter_reset_hint":"gauge",` +
			`"positive_spans":[{"offset":0,"length":2}],"positive_counts":[0.5,2],"custom_values":[0.1,0.5,1],"float":true}`
		b10 = `"histogram":{"schema":0,"count":1,"sum":1,"counter_reset_hint":"unknown",` +
			`"positive_spans":[{"offset":1,"length":1}],"positive_counts":[1],"float":true}`
	)
	resp, body := e.query(t, acme, `{"queryType":"raw","metric":"lat","start":`+at(0)+`,"end":`+at(30*s)+`}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Contains(t, string(body), `"data":{"series":[`+
		`{"metric":"lat","dimensions":{"host":"a"},"points":[{"timestamp":`+at(0)+`,`+a0+`},{"timestamp":`+at(5*s)+`,`+a5+`},{"timestamp":`+at(10*s)+`,"value":7.5},{"timestamp":`+at(20*s)+`,`+a20+`}]},`+
		`{"metric":"lat","dimensions":{"host":"b"},"points":[{"timestamp":`+at(0)+`,`+b0+`},{"timestamp":`+at(10*s)+`,`+b10+`}]}]}`)
	require.NotContains(t, string(body), "warnings")
	require.NotContains(t, string(body), `"count":99`) // the other tenant's

	resp, body = e.query(t, acme, `{"queryType":"latest","metric":"lat","time":`+at(25*s)+`}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Contains(t, string(body), `"data":{"series":[`+
		`{"metric":"lat","dimensions":{"host":"a"},"timestamp":`+at(20*s)+`,`+a20+`},`+
		`{"metric":"lat","dimensions":{"host":"b"},"timestamp":`+at(10*s)+`,`+b10+`}]}`)

	// Other query types still leave histograms out, and say so.
	resp, body = e.query(t, acme, `{"queryType":"promql","query":"lat{host=\"b\"}","time":`+at(5*s)+`}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Contains(t, string(body), "native histogram samples are part of raw and latest results only")
}

// TestNativeQueryMetricsMetadata checks that metrics queries carry the
// type, help and unit of the metrics whose writers sent them, by metric
// family (x_bucket of histogram x, x_total of counter x), per tenant.
func TestNativeQueryMetricsMetadata(t *testing.T) {
	e := newQueryEnv(t, tenancy.DefaultTenantLimits())
	md := func(family string, typ model.MetricType, help, unit string) promstorage.AppendV2Options {
		return promstorage.AppendV2Options{MetricFamilyName: family, Metadata: metadata.Metadata{Type: typ, Help: help, Unit: unit}}
	}
	e.appendV2("acme", labels.FromStrings("__name__", "cpu"), 0, 1, nil, nil, md("", model.MetricTypeGauge, "CPU use.", "ratio"))
	e.appendV2("acme", labels.FromStrings("__name__", "lat_seconds_bucket", "le", "1"), 0, 1, nil, nil, md("lat_seconds", model.MetricTypeHistogram, "Latency.", "seconds"))
	e.appendV2("acme", labels.FromStrings("__name__", "lat_seconds_count"), 0, 1, nil, nil, md("lat_seconds", model.MetricTypeHistogram, "Latency.", "seconds"))
	e.appendV2("acme", labels.FromStrings("__name__", "http_requests_total"), 0, 1, nil, nil, md("http_requests", model.MetricTypeCounter, "Requests.", ""))
	e.appendV2("acme", labels.FromStrings("__name__", "gauge_total"), 0, 1, nil, nil, promstorage.AppendV2Options{}) // a gauge named _total: no family
	e.appendV2("acme", labels.FromStrings("__name__", "gauge"), 0, 1, nil, nil, md("", model.MetricTypeGauge, "A gauge.", ""))
	e.appendV2("acme", labels.FromStrings("__name__", "mem"), 0, 1, nil, nil, promstorage.AppendV2Options{})
	e.appendV2("other", labels.FromStrings("__name__", "mem"), 0, 1, nil, nil, md("", model.MetricTypeGauge, "Secret.", ""))

	resp, body := e.query(t, e.token("acme", tenancy.ScopeRead), `{"queryType":"metrics"}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Contains(t, string(body), `"data":{"metrics":["cpu","gauge","gauge_total","http_requests_total","lat_seconds_bucket","lat_seconds_count","mem"],`+
		`"metadata":{"cpu":{"type":"gauge","help":"CPU use.","unit":"ratio"},"gauge":{"type":"gauge","help":"A gauge."},`+
		`"http_requests_total":{"type":"counter","help":"Requests."},`+
		`"lat_seconds_bucket":{"type":"histogram","help":"Latency.","unit":"seconds"},"lat_seconds_count":{"type":"histogram","help":"Latency.","unit":"seconds"}}}`)
	resp, body = e.query(t, e.token("acme", tenancy.ScopeRead), `{"queryType":"metrics","prefix":"zzz"}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Contains(t, string(body), `"data":{"metrics":[],"metadata":{}}`)
}

// TestNativeHistogramRoundTrip writes native histograms and metadata
// through the native write and reads them back with raw, latest and
// metrics queries: the histograms come back as they were written. (A
// histogram whose buckets are not those of the chunk before gets the
// union of both in storage, as in Prometheus' TSDB: the earlier samples
// then show the new buckets empty; the data here keeps one layout.)
func TestNativeHistogramRoundTrip(t *testing.T) {
	e := newQueryEnv(t, tenancy.DefaultTenantLimits())
	hs := []string{
		`{"schema":3,"count":12,"sum":34.5,"zero_threshold":0.001,"zero_count":2,"counter_reset_hint":"unknown",` +
			`"positive_spans":[{"offset":0,"length":3}],"positive_counts":[1,4,5]}`,
		`{"schema":3,"count":14,"sum":"NaN","zero_threshold":0.001,"zero_count":2,"counter_reset_hint":"not_reset",` +
			`"positive_spans":[{"offset":0,"length":3}],"positive_counts":[1,4,7]}`,
		`{"schema":-53,"count":2.5,"sum":0.75,"counter_reset_hint":"gauge",` +
			`"positive_spans":[{"offset":0,"length":2}],"positive_counts":[0.5,2],"custom_values":[0.1,0.5,1],"float":true}`,
	}
	var items []string
	for i, h := range hs {
		items = append(items, fmt.Sprintf(`{"name":"lat","dimensions":{"host":"a"},"histogram":%s,"timestamp":%d,"type":"histogram","help":"Latency.","unit":"seconds"}`, h, e.ms(time.Duration(i)*time.Second)))
	}
	resp, body := e.send(t, http.MethodPost, "/api/v1/metrics", e.token("acme", tenancy.ScopeWrite), "application/json", []byte(`{"metrics":[`+strings.Join(items, ",")+`]}`))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))

	acme := e.token("acme", tenancy.ScopeRead)
	at := func(d time.Duration) string { return fmt.Sprint(e.ms(d)) }
	resp, body = e.query(t, acme, `{"queryType":"raw","metric":"lat","start":`+at(0)+`,"end":`+at(time.Minute)+`}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var pts []string
	for i, h := range hs {
		pts = append(pts, fmt.Sprintf(`{"timestamp":%s,"histogram":%s}`, at(time.Duration(i)*time.Second), h))
	}
	require.Contains(t, string(body), `"data":{"series":[{"metric":"lat","dimensions":{"host":"a"},"points":[`+strings.Join(pts, ",")+`]}]}`)

	resp, body = e.query(t, acme, `{"queryType":"latest","metric":"lat","time":`+at(time.Minute)+`}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Contains(t, string(body), `"data":{"series":[{"metric":"lat","dimensions":{"host":"a"},"timestamp":`+at(2*time.Second)+`,"histogram":`+hs[2]+`}]}`)

	resp, body = e.query(t, acme, `{"queryType":"metrics"}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Contains(t, string(body), `"data":{"metrics":["lat"],"metadata":{"lat":{"type":"histogram","help":"Latency.","unit":"seconds"}}}`)
}
