package promql_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/promql"
	"github.com/luminate-io/luminate/tenancy"
)

// appendV2 appends one float sample of series with opts for tenant id.
func (e *env) appendV2(id tenancy.ID, series string, t int64, v float64, opts promstorage.AppendV2Options) {
	e.t.Helper()
	ls, err := parserMetric(series)
	require.NoError(e.t, err)
	app := e.store.ForTenant(id).AppenderV2(context.Background())
	_, err = app.Append(0, ls, 0, t, v, nil, nil, opts)
	require.NoError(e.t, err)
	require.NoError(e.t, app.Commit())
}

func exemplars(ts int64, v float64, kv ...string) []exemplar.Exemplar {
	return []exemplar.Exemplar{{Labels: labels.FromStrings(kv...), Value: v, Ts: ts, HasTs: true}}
}

// TestQueryExemplars checks /query_exemplars over Badger: the exemplars of
// the series every selector of the query matches, within start and end,
// of the request's tenant only, in Prometheus' shape, under both prefixes
// and both methods.
func TestQueryExemplars(t *testing.T) {
	e := newEnv(t, promql.DefaultConfig(), nil)
	const acme, other tenancy.ID = "acme", "other"
	e.appendV2(acme, `rpc_bucket{job="a",le="0.5"}`, 1000, 1, promstorage.AppendV2Options{Exemplars: exemplars(1000, 0.25, "trace_id", "a1")})
	e.appendV2(acme, `rpc_bucket{job="a",le="0.5"}`, 2000, 2, promstorage.AppendV2Options{Exemplars: exemplars(2000, 0.5, "trace_id", "a2")})
	e.appendV2(acme, `rpc_bucket{job="b",le="1"}`, 3000, 1, promstorage.AppendV2Options{Exemplars: exemplars(3500, 1e-9, "trace_id", "b1")})
	e.appendV2(other, `rpc_bucket{job="a",le="0.5"}`, 1500, 7, promstorage.AppendV2Options{Exemplars: exemplars(1500, 9, "trace_id", "secret")})

	const (
		a1 = `{"labels":{"trace_id":"a1"},"value":"0.25","timestamp":1}`
		a2 = `{"labels":{"trace_id":"a2"},"value":"0.5","timestamp":2}`
		b1 = `{"labels":{"trace_id":"b1"},"value":"1e-09","timestamp":3.500}`
		sa = `{"seriesLabels":{"__name__":"rpc_bucket","job":"a","le":"0.5"},"exemplars":[`
		sb = `{"seriesLabels":{"__name__":"rpc_bucket","job":"b","le":"1"},"exemplars":[`
	)
	for _, prefix := range []string{"/api/v1", "/prometheus/api/v1"} {
		for _, c := range []struct {
			tenant                  tenancy.ID
			query, start, end, want string
		}{
			{acme, `rpc_bucket{job="a"}`, "", "", `[` + sa + a1 + `,` + a2 + `]}]`},
			{acme, `rpc_bucket{job="a"}`, "1.5", "2.5", `[` + sa + a2 + `]}]`},
			{acme, `rpc_bucket`, "2", "", `[` + sa + a2 + `]},` + sb + b1 + `]}]`},
			// Every selector of the query counts, as in Prometheus.
			{acme, `sum(rate(rpc_bucket{job="a"}[5m])) / on() group_left rpc_bucket{job="b"}`, "", "", `[` + sa + a1 + `,` + a2 + `]},` + sb + b1 + `]}]`},
			{acme, `nothing_here`, "", "", `[]`},
			{other, `rpc_bucket`, "", "", `[{"seriesLabels":{"__name__":"rpc_bucket","job":"a","le":"0.5"},"exemplars":[{"labels":{"trace_id":"secret"},"value":"9","timestamp":1.500}]}]`},
			{"nobody", `rpc_bucket`, "", "", `[]`},
		} {
			params := vals("query", c.query)
			if c.start != "" {
				params.Set("start", c.start)
			}
			if c.end != "" {
				params.Set("end", c.end)
			}
			for _, r := range []response{e.get(c.tenant, prefix+"/query_exemplars", params), e.post(c.tenant, prefix+"/query_exemplars", params)} {
				require.Equal(t, http.StatusOK, r.status, r.body)
				require.Equal(t, `{"status":"success","data":`+c.want+`}`, r.body, "%s %s as %s", prefix, c.query, c.tenant)
				require.NotContains(t, r.body, tenancy.Label)
			}
		}
	}

	// As Prometheus: no selector is 204, a bad query or range 400.
	r := e.get(acme, "/api/v1/query_exemplars", vals("query", "1 + 1"))
	require.Equal(t, http.StatusNoContent, r.status, r.body)
	for _, params := range []map[string]string{
		{"query": "rpc_bucket{"},
		{"query": "rpc_bucket", "start": "3", "end": "2"},
		{"query": "rpc_bucket", "start": "yesterday"},
		{"query": strings.Repeat("x", promql.DefaultConfig().MaxQueryLength+1)},
	} {
		v := vals()
		for k, s := range params {
			v.Set(k, s)
		}
		r := e.post(acme, "/api/v1/query_exemplars", v)
		require.Equal(t, http.StatusBadRequest, r.status, r.body)
		require.Equal(t, "bad_data", r.envelope(t).ErrorType, r.body)
	}
	r = e.post(acme, "/api/v1/query_exemplars", vals("query", strings.Repeat("x", promql.DefaultConfig().MaxQueryLength+1)))
	require.Contains(t, r.envelope(t).Error, "--query.max-length")
}

// TestMetadata checks /metadata over Badger: the latest metadata of each
// of the tenant's metric families, in Prometheus' shape, with metric,
// limit and limit_per_metric as Prometheus reads them.
func TestMetadata(t *testing.T) {
	e := newEnv(t, promql.DefaultConfig(), nil)
	const acme, other tenancy.ID = "acme", "other"
	md := func(typ model.MetricType, help, unit string) promstorage.AppendV2Options {
		return promstorage.AppendV2Options{Metadata: metadata.Metadata{Type: typ, Help: help, Unit: unit}}
	}
	e.appendV2(acme, `http_requests_total{job="a"}`, 1000, 1, md(model.MetricTypeCounter, "Old help.", ""))
	e.appendV2(acme, `http_requests_total{job="a"}`, 2000, 2, md(model.MetricTypeCounter, "Requests <served> & \"counted\".", "requests"))
	latency := md(model.MetricTypeHistogram, "Latency.", "seconds")
	latency.MetricFamilyName = "latency_seconds"
	e.appendV2(acme, `latency_seconds_bucket{le="1"}`, 1000, 1, latency)
	e.appendV2(other, `secret_total`, 1000, 1, md(model.MetricTypeCounter, "Secret.", ""))

	const (
		requests = `"http_requests_total":[{"type":"counter","unit":"requests","help":"Requests \u003cserved\u003e \u0026 \"counted\"."}]`
		lat      = `"latency_seconds":[{"type":"histogram","unit":"seconds","help":"Latency."}]`
	)
	for _, c := range []struct {
		tenant tenancy.ID
		params map[string]string
		want   string
	}{
		{acme, nil, `{` + requests + `,` + lat + `}`},
		{acme, map[string]string{"limit": "-1", "limit_per_metric": "1"}, `{` + requests + `,` + lat + `}`},
		{acme, map[string]string{"limit_per_metric": "0"}, `{` + requests + `,` + lat + `}`},
		{acme, map[string]string{"metric": "latency_seconds"}, `{` + lat + `}`},
		{acme, map[string]string{"metric": "latency_seconds_bucket"}, `{}`}, // by family
		{acme, map[string]string{"metric": "secret_total"}, `{}`},
		{acme, map[string]string{"limit": "0"}, `{}`},
		{other, nil, `{"secret_total":[{"type":"counter","unit":"","help":"Secret."}]}`},
		{"nobody", nil, `{}`},
	} {
		v := vals()
		for k, s := range c.params {
			v.Set(k, s)
		}
		for _, prefix := range []string{"/api/v1", "/prometheus/api/v1"} {
			r := e.get(c.tenant, prefix+"/metadata", v)
			require.Equal(t, http.StatusOK, r.status, r.body)
			require.Equal(t, `{"status":"success","data":`+c.want+`}`, r.body, "%v as %s", c.params, c.tenant)
		}
	}
	r := e.get(acme, "/api/v1/metadata", vals("limit", "1"))
	require.Equal(t, http.StatusOK, r.status, r.body)
	var one map[string][]metadata.Metadata
	require.NoError(t, json.Unmarshal(r.envelope(t).Data, &one))
	require.Len(t, one, 1)
	for _, p := range []string{"limit", "limit_per_metric"} {
		r := e.get(acme, "/api/v1/metadata", vals(p, "x"))
		require.Equal(t, http.StatusBadRequest, r.status, r.body)
		require.Equal(t, `{"status":"error","errorType":"bad_data","error":"`+p+` must be a number"}`, r.body)
	}
}
