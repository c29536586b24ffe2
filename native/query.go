package native

// The native query: POST /api/v1/query with a JSON body whose queryType
// says what is asked. The same path keeps its Prometheus meaning for a GET
// or a form POST, so Query.Serve dispatches on Content-Type.
//
// Every type is answered in one envelope:
//
//	{"status":"success","queryType":"raw","data":{...},
//	 "stats":{"seriesScanned":2,"samplesScanned":6,"durationMs":0.8},
//	 "warnings":["..."]}
//
// and errors in the native error envelope (apierror.Native). The queries
// are translated to PromQL and run on the Engine, under its limits; the
// index types (metrics, dimensions, dimension_values) read the tenant's
// index directly, bounded by the engine's timeout.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	pql "github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/promql"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// QueryType is the discriminator of a native query.
type QueryType string

// The query types.
const (
	QueryRaw             QueryType = "raw"
	QueryAggregate       QueryType = "aggregate"
	QueryLatest          QueryType = "latest"
	QueryMetrics         QueryType = "metrics"
	QueryDimensions      QueryType = "dimensions"
	QueryDimensionValues QueryType = "dimension_values"
	QueryPromQL          QueryType = "promql"
)

// Aggregation is what an aggregate query computes per bucket and group.
type Aggregation string

// The aggregations. Per bucket [b, b+interval) and per group (the series
// sharing their groupBy values):
//
//   - sum: the sum of every sample of every series of the group;
//   - count: the number of those samples;
//   - avg: their mean (sum / count: every sample weighs the same, whatever
//     its series);
//   - min, max: the least and greatest of them;
//   - rate: the sum over the group's series of each series' per-second
//     rate of increase, as PromQL's rate(x[interval]) computes it (counter
//     resets handled, extrapolated to the bucket; a series needs two samples
//     in the bucket);
//   - p50, p90, p95, p99: the quantile of all those samples taken together,
//     interpolated between the closest ranks as PromQL's quantile does.
const (
	AggSum   Aggregation = "sum"
	AggAvg   Aggregation = "avg"
	AggMin   Aggregation = "min"
	AggMax   Aggregation = "max"
	AggCount Aggregation = "count"
	AggRate  Aggregation = "rate"
	AggP50   Aggregation = "p50"
	AggP90   Aggregation = "p90"
	AggP95   Aggregation = "p95"
	AggP99   Aggregation = "p99"
)

// quantiles are the percentile aggregations and their φ.
var quantiles = map[Aggregation]float64{AggP50: 0.5, AggP90: 0.9, AggP95: 0.95, AggP99: 0.99}

// aggregations lists every Aggregation, in the order error messages name them.
var aggregations = []Aggregation{AggSum, AggAvg, AggMin, AggMax, AggCount, AggRate, AggP50, AggP90, AggP95, AggP99}

// The request fields.
const (
	fieldQueryType   = "queryType"
	fieldMetric      = "metric"
	fieldDimensions  = "dimensions"
	fieldFilters     = "filters"
	fieldStart       = "start"
	fieldEnd         = "end"
	fieldTime        = "time"
	fieldLimit       = "limit"
	fieldInterval    = "interval"
	fieldAggregation = "aggregation"
	fieldGroupBy     = "groupBy"
	fieldLookback    = "lookback"
	fieldPrefix      = "prefix"
	fieldKey         = "key"
	fieldQuery       = "query"
	fieldStep        = "step"
)

// queryFields are the fields each query type accepts besides queryType;
// the required ones are checked by the type's validation.
var queryFields = map[QueryType][]string{
	QueryRaw:             {fieldMetric, fieldDimensions, fieldFilters, fieldStart, fieldEnd, fieldLimit},
	QueryAggregate:       {fieldMetric, fieldDimensions, fieldFilters, fieldStart, fieldEnd, fieldInterval, fieldAggregation, fieldGroupBy},
	QueryLatest:          {fieldMetric, fieldDimensions, fieldFilters, fieldTime, fieldLookback, fieldLimit},
	QueryMetrics:         {fieldPrefix, fieldStart, fieldEnd, fieldLimit},
	QueryDimensions:      {fieldMetric, fieldDimensions, fieldFilters, fieldStart, fieldEnd, fieldLimit},
	QueryDimensionValues: {fieldKey, fieldMetric, fieldDimensions, fieldFilters, fieldStart, fieldEnd, fieldLimit},
	QueryPromQL:          {fieldQuery, fieldTime, fieldStart, fieldEnd, fieldStep, fieldLookback},
}

// queryTypes lists the query types in the order error messages name them.
var queryTypes = []QueryType{QueryRaw, QueryAggregate, QueryLatest, QueryMetrics, QueryDimensions, QueryDimensionValues, QueryPromQL}

// allFields is every field of any query type.
var allFields = func() map[string]bool {
	m := map[string]bool{fieldQueryType: true}
	for _, fs := range queryFields {
		for _, f := range fs {
			m[f] = true
		}
	}
	return m
}()

// Bounds of a request.
const (
	// maxPoints bounds the buckets of an aggregate query and the steps of
	// a promql range query: the native API's own bound (api/openapi.yaml),
	// checked here to name the field at fault. It is Prometheus' bound of
	// a range query's points, which the engine applies to every query
	// whatever its API; TestMaxPointsRunOnTheEngine runs maxPoints buckets
	// through promql's engine, so that the two cannot drift apart.
	maxPoints = 11000
	// maxFilters bounds dimensions and filters together, and groupBy.
	maxFilters = 64
	// maxBodyBytes bounds the JSON body of one query (413 above it).
	maxBodyBytes = 64 << 10
	// defaultLookback is the lookback of a latest query that gives none.
	defaultLookback = 5 * time.Minute
)

// Times are accepted from year 1 to 9999, what RFC 3339 can write, so no
// arithmetic on them overflows.
var (
	minQueryTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxQueryTime = time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC)
	// maxQueryDuration bounds an interval, step or lookback.
	maxQueryDuration = 100 * 365 * 24 * time.Hour
)

// QueryRequest is a decoded, validated native query. Fields a query type
// does not use are zero.
type QueryRequest struct {
	Type QueryType
	// Metric is the metric name; required by raw, aggregate, latest and
	// dimensions, optional for dimension_values.
	Metric string
	// Matchers are the dimension filters (from dimensions and filters),
	// without the metric name.
	Matchers []*labels.Matcher
	// Start and End bound the time range; zero when absent (index types).
	Start, End time.Time
	// Time is the evaluation time of latest and instant promql queries;
	// zero means the time of the request.
	Time time.Time
	// Limit is the most series or values returned; 0 means no limit.
	Limit       int
	Interval    time.Duration
	Aggregation Aggregation
	GroupBy     []string
	// Lookback is how far back latest (and promql's instant selectors) look.
	Lookback time.Duration
	Prefix   string
	Key      string
	Query    string
	Step     time.Duration
}

// ParseQueryRequest decodes and validates the JSON body of a native query.
// Unknown fields, fields the query type does not use, duplicate fields and
// invalid values are InvalidArgument errors (*apierror.Error) naming the
// field, e.g. "filters[1].op".
func ParseQueryRequest(body []byte) (*QueryRequest, error) {
	fields, err := readObject(body, "")
	if err != nil {
		return nil, err
	}
	for _, f := range fields {
		if !allFields[f.name] {
			return nil, apierror.Field(f.name, "unknown field %q", f.name)
		}
	}
	q := &QueryRequest{}
	raw, ok := lookup(fields, fieldQueryType)
	if !ok {
		return nil, apierror.Field(fieldQueryType, "field queryType is required: one of %s", listTypes())
	}
	var qt string
	if err := json.Unmarshal(raw, &qt); err != nil {
		return nil, apierror.Field(fieldQueryType, "queryType must be a string: one of %s", listTypes())
	}
	q.Type = QueryType(qt)
	allowed, ok := queryFields[q.Type]
	if !ok {
		return nil, apierror.Field(fieldQueryType, "unknown queryType %q: want one of %s", shortText(qt), listTypes())
	}
	for _, f := range fields {
		if f.name != fieldQueryType && !slices.Contains(allowed, f.name) {
			return nil, apierror.Field(f.name, "field %s is not used by queryType %s (it takes %s)", f.name, q.Type, strings.Join(allowed, ", "))
		}
	}
	if err := q.decodeFields(fields); err != nil {
		return nil, err
	}
	if err := q.validate(fields); err != nil {
		return nil, err
	}
	return q, nil
}

// decodeFields decodes every field present into q.
func (q *QueryRequest) decodeFields(fields []jsonField) error {
	var dims map[string]string
	var dimOrder []string
	var filters []*labels.Matcher
	for _, f := range fields {
		var err error
		switch f.name {
		case fieldMetric:
			q.Metric, err = decodeName(f.value, f.name)
		case fieldDimensions:
			dims, dimOrder, err = decodeDimensions(f.value)
		case fieldFilters:
			filters, err = decodeFilters(f.value)
		case fieldStart:
			q.Start, err = decodeTime(f.value, f.name)
		case fieldEnd:
			q.End, err = decodeTime(f.value, f.name)
		case fieldTime:
			q.Time, err = decodeTime(f.value, f.name)
		case fieldLimit:
			q.Limit, err = decodeLimit(f.value)
		case fieldInterval:
			q.Interval, err = decodeDuration(f.value, f.name)
		case fieldLookback:
			q.Lookback, err = decodeDuration(f.value, f.name)
		case fieldStep:
			q.Step, err = decodeDuration(f.value, f.name)
		case fieldAggregation:
			q.Aggregation, err = decodeAggregation(f.value)
		case fieldGroupBy:
			q.GroupBy, err = decodeGroupBy(f.value)
		case fieldPrefix:
			q.Prefix, err = decodeString(f.value, f.name)
		case fieldKey:
			q.Key, err = decodeString(f.value, f.name)
			if err == nil {
				err = checkDimensionKey(q.Key, f.name)
			}
		case fieldQuery:
			q.Query, err = decodeString(f.value, f.name)
		}
		if err != nil {
			return err
		}
	}
	for _, k := range dimOrder {
		q.Matchers = append(q.Matchers, labels.MustNewMatcher(labels.MatchEqual, k, dims[k]))
	}
	q.Matchers = append(q.Matchers, filters...)
	if len(q.Matchers) > maxFilters {
		return apierror.Field(fieldFilters, "more than %d filters in dimensions and filters together", maxFilters)
	}
	return nil
}

// validate checks the fields each type requires and how fields relate.
func (q *QueryRequest) validate(fields []jsonField) error {
	has := func(name string) bool { _, ok := lookup(fields, name); return ok }
	require := func(names ...string) error {
		for _, n := range names {
			if !has(n) {
				return apierror.Field(n, "field %s is required by queryType %s", n, q.Type)
			}
		}
		return nil
	}
	switch q.Type {
	case QueryRaw:
		if err := require(fieldMetric, fieldStart, fieldEnd); err != nil {
			return err
		}
		return checkRange(q.Start, q.End, false)
	case QueryAggregate:
		if err := require(fieldMetric, fieldStart, fieldEnd, fieldInterval, fieldAggregation); err != nil {
			return err
		}
		if err := checkRange(q.Start, q.End, true); err != nil {
			return err
		}
		if n := q.buckets(); n > maxPoints {
			return apierror.Field(fieldInterval, "%d buckets of %s between start and end: at most %d are allowed, choose a longer interval",
				n, model.Duration(q.Interval), maxPoints)
		}
	case QueryLatest:
		return require(fieldMetric)
	case QueryMetrics:
		return checkOptionalRange(q.Start, q.End)
	case QueryDimensions:
		if err := require(fieldMetric); err != nil {
			return err
		}
		return checkOptionalRange(q.Start, q.End)
	case QueryDimensionValues:
		if err := require(fieldKey); err != nil {
			return err
		}
		return checkOptionalRange(q.Start, q.End)
	case QueryPromQL:
		if err := require(fieldQuery); err != nil {
			return err
		}
		if strings.TrimSpace(q.Query) == "" {
			return apierror.Field(fieldQuery, "query must not be empty")
		}
		ranged := has(fieldStart) || has(fieldEnd) || has(fieldStep)
		if !ranged {
			return nil
		}
		if has(fieldTime) {
			return apierror.Field(fieldTime, "give either time (an instant query) or start, end and step (a range query), not both")
		}
		if err := require(fieldStart, fieldEnd, fieldStep); err != nil {
			return err
		}
		if err := checkRange(q.Start, q.End, false); err != nil {
			return err
		}
		if n := q.End.Sub(q.Start)/q.Step + 1; n > maxPoints {
			return apierror.Field(fieldStep, "%d steps between start and end: at most %d are allowed, choose a longer step", n, maxPoints)
		}
	}
	return nil
}

// ranged reports whether a promql query is a range query.
func (q *QueryRequest) ranged() bool { return q.Step > 0 }

// buckets is the number of buckets of an aggregate query: enough
// interval-long buckets from start to cover end.
func (q *QueryRequest) buckets() int64 {
	span := q.End.Sub(q.Start)
	return int64((span + q.Interval - 1) / q.Interval)
}

func checkRange(start, end time.Time, strict bool) error {
	if end.Before(start) || (strict && end.Equal(start)) {
		want := "at or after"
		if strict {
			want = "after"
		}
		return apierror.Field(fieldEnd, "end %s must be %s start %s", end.Format(time.RFC3339Nano), want, start.Format(time.RFC3339Nano))
	}
	return nil
}

func checkOptionalRange(start, end time.Time) error {
	if start.IsZero() || end.IsZero() {
		return nil
	}
	return checkRange(start, end, false)
}

func listTypes() string {
	s := make([]string, len(queryTypes))
	for i, t := range queryTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

func lookup(fields []jsonField, name string) (json.RawMessage, bool) {
	for _, f := range fields {
		if f.name == name {
			return f.value, true
		}
	}
	return nil, false
}

func decodeString(raw json.RawMessage, field string) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", apierror.Field(field, "%s must be a string", field)
	}
	if !utf8.ValidString(s) {
		return "", apierror.Field(field, "%s is not valid UTF-8", field)
	}
	return s, nil
}

// decodeName decodes a metric name: any non-empty UTF-8 string, as
// Prometheus 3 and the native write accept.
func decodeName(raw json.RawMessage, field string) (string, error) {
	s, err := decodeString(raw, field)
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", apierror.Field(field, "%s must not be empty", field)
	}
	return s, nil
}

// checkDimensionKey rejects what may not name a dimension: the empty
// string, the metric name (use metric) and the tenant label.
func checkDimensionKey(k, field string) error {
	switch {
	case k == "":
		return apierror.Field(field, "dimension key must not be empty")
	case k == tenancy.Label:
		return apierror.Field(field, "dimension %s is reserved: the tenant comes from the token", tenancy.Label)
	case k == model.MetricNameLabel:
		return apierror.Field(field, "dimension %s is the metric name: use the metric field", model.MetricNameLabel)
	case !model.UTF8Validation.IsValidLabelName(k):
		return apierror.Field(field, "dimension key %q is not a valid name", shortText(k))
	}
	return nil
}

// decodeDimensions decodes {"key":"value",...}, equality filters.
func decodeDimensions(raw json.RawMessage) (map[string]string, []string, error) {
	fields, err := readObject(raw, fieldDimensions)
	if err != nil {
		return nil, nil, err
	}
	dims := make(map[string]string, len(fields))
	order := make([]string, 0, len(fields))
	for _, f := range fields {
		path := fieldDimensions + "." + f.name
		if err := checkDimensionKey(f.name, path); err != nil {
			return nil, nil, err
		}
		v, err := decodeString(f.value, path)
		if err != nil {
			return nil, nil, err
		}
		dims[f.name] = v
		order = append(order, f.name)
	}
	return dims, order, nil
}

// filterOps are the operators of a filter.
var filterOps = map[string]labels.MatchType{
	"=":  labels.MatchEqual,
	"!=": labels.MatchNotEqual,
	"=~": labels.MatchRegexp,
	"!~": labels.MatchNotRegexp,
}

// decodeFilters decodes [{"key":"host","op":"=~","value":"a.*"},...]; op
// defaults to "=". Regular expressions are RE2, anchored at both ends as
// in PromQL.
func decodeFilters(raw json.RawMessage) ([]*labels.Matcher, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, apierror.Field(fieldFilters, "filters must be an array of {\"key\",\"op\",\"value\"} objects")
	}
	if len(items) > maxFilters {
		return nil, apierror.Field(fieldFilters, "more than %d filters", maxFilters)
	}
	out := make([]*labels.Matcher, 0, len(items))
	for i, item := range items {
		path := fmt.Sprintf("%s[%d]", fieldFilters, i)
		fields, err := readObject(item, path)
		if err != nil {
			return nil, err
		}
		var key, op, value string
		var haveKey, haveValue bool
		op = "="
		for _, f := range fields {
			fpath := path + "." + f.name
			switch f.name {
			case "key":
				key, err = decodeString(f.value, fpath)
				haveKey = true
			case "op":
				op, err = decodeString(f.value, fpath)
			case "value":
				value, err = decodeString(f.value, fpath)
				haveValue = true
			default:
				return nil, apierror.Field(fpath, "unknown field %q: a filter is {\"key\",\"op\",\"value\"}", f.name)
			}
			if err != nil {
				return nil, err
			}
		}
		if !haveKey {
			return nil, apierror.Field(path+".key", "filter %d needs a key", i)
		}
		if err := checkDimensionKey(key, path+".key"); err != nil {
			return nil, err
		}
		if !haveValue {
			return nil, apierror.Field(path+".value", "filter %d needs a value", i)
		}
		mt, ok := filterOps[op]
		if !ok {
			return nil, apierror.Field(path+".op", "unknown operator %q: want =, !=, =~ or !~", shortText(op))
		}
		m, err := labels.NewMatcher(mt, key, value)
		if err != nil {
			return nil, apierror.Field(path+".value", "invalid regular expression: %v", err)
		}
		out = append(out, m)
	}
	return out, nil
}

// decodeTime decodes an RFC 3339 string or a whole number of Unix
// milliseconds (parseTimestamp) from the year 1 to 9999, what RFC 3339
// can write, so that no arithmetic on it overflows.
func decodeTime(raw json.RawMessage, field string) (time.Time, error) {
	ms, err := parseTimestamp(raw, field, 0)
	if err != nil {
		return time.Time{}, apierror.Field(field, "%v", err)
	}
	if ms < minQueryTime.UnixMilli() || ms > maxQueryTime.UnixMilli() {
		return time.Time{}, apierror.Field(field, "%s %d is outside the years 1 to 9999", field, ms)
	}
	return time.UnixMilli(ms).UTC(), nil
}

// decodeDuration decodes a Prometheus duration string ("30s", "5m",
// "1h30m") or a whole number of milliseconds; it must be positive.
func decodeDuration(raw json.RawMessage, field string) (time.Duration, error) {
	var d time.Duration
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, apierror.Field(field, "%s must be a duration string such as \"5m\" or milliseconds", field)
		}
		md, err := model.ParseDuration(s)
		if err != nil {
			return 0, apierror.Field(field, "%s %q is not a duration such as \"30s\", \"5m\" or \"1h30m\"", field, shortText(s))
		}
		d = time.Duration(md)
	} else {
		ms, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || ms > int64(maxQueryDuration/time.Millisecond) {
			return 0, apierror.Field(field, "%s %s is not a whole number of milliseconds up to 100 years nor a duration string", field, shortText(string(raw)))
		}
		d = time.Duration(ms) * time.Millisecond
	}
	switch {
	case d <= 0:
		return 0, apierror.Field(field, "%s must be positive", field)
	case d > maxQueryDuration:
		return 0, apierror.Field(field, "%s must be at most 100 years", field)
	case d%time.Millisecond != 0:
		return 0, apierror.Field(field, "%s must be a whole number of milliseconds", field)
	}
	return d, nil
}

func decodeLimit(raw json.RawMessage) (int, error) {
	n, err := strconv.ParseInt(string(raw), 10, 32)
	if err != nil || n < 0 {
		return 0, apierror.Field(fieldLimit, "limit must be a whole number from 0 (no limit) to %d", math.MaxInt32)
	}
	return int(n), nil
}

func decodeAggregation(raw json.RawMessage) (Aggregation, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil && slices.Contains(aggregations, Aggregation(s)) {
		return Aggregation(s), nil
	}
	names := make([]string, len(aggregations))
	for i, a := range aggregations {
		names[i] = string(a)
	}
	return "", apierror.Field(fieldAggregation, "aggregation %s is not one of %s", shortText(string(raw)), strings.Join(names, ", "))
}

func decodeGroupBy(raw json.RawMessage) ([]string, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, apierror.Field(fieldGroupBy, "groupBy must be an array of dimension keys")
	}
	if len(items) > maxFilters {
		return nil, apierror.Field(fieldGroupBy, "more than %d groupBy keys", maxFilters)
	}
	out := make([]string, 0, len(items))
	for i, item := range items {
		path := fmt.Sprintf("%s[%d]", fieldGroupBy, i)
		k, err := decodeString(item, path)
		if err != nil {
			return nil, err
		}
		if err := checkDimensionKey(k, path); err != nil {
			return nil, err
		}
		if slices.Contains(out, k) {
			return nil, apierror.Field(path, "groupBy key %q given twice", shortText(k))
		}
		out = append(out, k)
	}
	return out, nil
}

// Engine runs the PromQL a native query is translated to: *promql.API,
// under the Prometheus API's limits (--query.* and the tenant's series
// and samples per query), with errors apierror classifies and that name
// the setting raising a limit. The router has admitted the query.
type Engine interface {
	Exec(ctx context.Context, t storage.Tenant, req promql.ExecRequest) (*promql.ExecResult, error)
	// Timeout is --query.timeout, which bounds the index reads of the
	// metrics, dimensions and dimension_values types too.
	Timeout() time.Duration
}

// Query serves /api/v1/query: native JSON queries, and the rest through
// the Prometheus API.
type Query struct {
	engine Engine
	prom   func(*http.Request, storage.Tenant) (any, error)
}

// NewQuery returns the query of /api/v1/query. A POST with Content-Type
// application/json is a native query (ParseQueryRequest), run on engine
// over the request's tenant; so is a POST without a Content-Type whose body
// is a JSON object. Anything else (a GET, a form POST) is served by prom,
// the Prometheus API's query, so that Grafana and native clients share the
// path. Mount Serve as a Query route with FormatOf.
func NewQuery(engine Engine, prom func(*http.Request, storage.Tenant) (any, error)) *Query {
	return &Query{engine: engine, prom: prom}
}

// FormatOf is the wire format of r's answers, the router's refusals
// included: the native envelope for a native query (and for a body that
// looks like one sent as a form), Prometheus' for the rest.
func (q *Query) FormatOf(r *http.Request) apierror.Format {
	if native, err := q.native(r); native || err != nil {
		return apierror.Native
	}
	return apierror.Prometheus
}

// Serve answers a native query with a *QueryResponse and hands the rest to
// the Prometheus API.
func (q *Query) Serve(r *http.Request, t storage.Tenant) (any, error) {
	native, err := q.native(r)
	if err != nil {
		return nil, err
	}
	if !native {
		return q.prom(r, t)
	}
	start := time.Now()
	resp, err := q.serve(r, t)
	if resp != nil && resp.close != nil {
		resp.close() // Data holds copies of the engine's points
	}
	if err != nil {
		return nil, err
	}
	resp.Stats.DurationMs = float64(time.Since(start).Microseconds()) / 1000
	return resp, nil
}

// sniffed is a POST body read up to its first byte past white space, and
// what that byte said (Query.native), so that every look at the request
// gets the same answer.
type sniffed struct {
	io.Reader // the body from its first byte past white space
	io.Closer
	native bool
	err    error
}

// native tells whether r is a native query. A POST with Content-Type
// application/json is; a POST without a Content-Type is if its first byte
// past white space is '{'; an empty body, or one sent with URL query
// parameters, is the Prometheus query it has always been (Go reads its
// parameters from the URL alone); any other body is refused naming both
// content types, since it is neither a form nor JSON. A form whose body
// is a JSON object (curl -d's default Content-Type) is refused too, saying
// to send Content-Type: application/json: no Prometheus client sends one,
// and parsed as a form it would fail as "no expression found in input".
// It reads at most maxBodyBytes of white space, and leaves r.Body readable
// from its first byte past it.
func (q *Query) native(r *http.Request) (bool, error) {
	if s, ok := r.Body.(*sniffed); ok {
		return s.native, s.err
	}
	ct := r.Header.Get("Content-Type")
	if r.Method != http.MethodPost || isJSON(ct) {
		return r.Method == http.MethodPost, nil
	}
	mt, _, _ := mime.ParseMediaType(ct)
	form := mt == "application/x-www-form-urlencoded"
	if ct != "" && !form {
		return false, nil
	}
	br := bufio.NewReader(r.Body)
	s := &sniffed{Reader: br, Closer: r.Body}
	r.Body = s
	for n := int64(0); ; n++ {
		if n >= maxBodyBytes {
			if !form {
				s.err = apierror.New(apierror.TooLarge, "query body larger than %d bytes", maxBodyBytes)
			}
			return s.native, s.err
		}
		b, err := br.ReadByte()
		switch {
		case err == io.EOF:
			return false, nil
		case err != nil:
			s.err = apierror.Wrap(apierror.InvalidArgument, err, "read query body")
			return false, s.err
		case b == ' ' || b == '\t' || b == '\r' || b == '\n':
			continue
		}
		_ = br.UnreadByte()
		switch {
		case r.URL.RawQuery != "" || (form && b != '{'):
		case form:
			s.err = apierror.New(apierror.UnsupportedMediaType,
				"POST %s with Content-Type %s and a JSON object for body: send a native query with Content-Type: application/json (curl -H 'Content-Type: application/json' -d ...), or a PromQL query as a form (query=...)", r.URL.Path, mt)
		case b == '{':
			s.native = true
		default:
			s.err = apierror.New(apierror.UnsupportedMediaType,
				"POST %s without a Content-Type: send a native query as Content-Type: application/json, or a PromQL query as Content-Type: application/x-www-form-urlencoded", r.URL.Path)
		}
		return s.native, s.err
	}
}

// QueryResponse is the success envelope of every query type.
type QueryResponse struct {
	Status    string     `json:"status"` // always "success"
	QueryType QueryType  `json:"queryType"`
	Data      any        `json:"data"`
	Stats     QueryStats `json:"stats"`
	// Warnings are PromQL's warnings and infos, and notes such as a
	// truncation by limit; absent when there are none.
	Warnings []string `json:"warnings,omitempty"`

	close func() // releases the engine's result, once Data is built
}

// QueryStats says what a query cost.
type QueryStats struct {
	// SeriesScanned is the number of series the query's selectors loaded
	// (0 for the index types, which read no series).
	SeriesScanned int64 `json:"seriesScanned"`
	// SamplesScanned is the number of samples the engine read.
	SamplesScanned int64 `json:"samplesScanned"`
	// DurationMs is the time taken to answer, in milliseconds.
	DurationMs float64 `json:"durationMs"`
}

func (h *Query) serve(r *http.Request, t storage.Tenant) (*QueryResponse, error) {
	if err := checkBody(r); err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, apierror.Wrap(apierror.InvalidArgument, err, "read query body")
	}
	if int64(len(body)) > maxBodyBytes {
		return nil, apierror.New(apierror.TooLarge, "query body larger than %d bytes", maxBodyBytes)
	}
	q, err := ParseQueryRequest(body)
	if err != nil {
		return nil, err
	}
	resp := &QueryResponse{Status: "success", QueryType: q.Type}
	ctx := r.Context()
	switch q.Type {
	case QueryRaw:
		err = h.raw(ctx, t, q, resp)
	case QueryAggregate:
		err = h.aggregate(ctx, t, q, resp)
	case QueryLatest:
		err = h.latest(ctx, t, q, resp)
	case QueryPromQL:
		err = h.promql(ctx, t, q, resp)
	case QueryMetrics, QueryDimensions, QueryDimensionValues:
		err = h.index(ctx, t, q, resp)
	}
	return resp, err
}

// exec runs req on the engine and accounts its cost in resp, which
// releases the result once its Data is built.
func (h *Query) exec(ctx context.Context, t storage.Tenant, req promql.ExecRequest, resp *QueryResponse) (*promql.ExecResult, error) {
	res, err := h.engine.Exec(ctx, t, req)
	if err != nil {
		return nil, err
	}
	resp.close = res.Close
	resp.Stats.SeriesScanned += res.SeriesScanned
	resp.Stats.SamplesScanned += res.SamplesScanned
	resp.addWarnings(res.Warnings, req.Query)
	return res, nil
}

func (resp *QueryResponse) addWarnings(ws annotations.Annotations, query string) {
	warn, info := ws.AsStrings(query, 10, 10)
	resp.Warnings = append(append(resp.Warnings, warn...), info...)
}

func (resp *QueryResponse) warn(msg string) {
	if !slices.Contains(resp.Warnings, msg) {
		resp.Warnings = append(resp.Warnings, msg)
	}
}

const (
	warnTruncated  = "results truncated due to limit"
	warnHistograms = "native histogram samples are part of raw and latest results only; use queryType promql through the Prometheus API (GET /api/v1/query) for the others"
)

// selector is the PromQL vector selector of q's metric and filters.
func (q *QueryRequest) selector() *parser.VectorSelector {
	ms := make([]*labels.Matcher, 0, len(q.Matchers)+1)
	ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, q.Metric))
	ms = append(ms, q.Matchers...)
	return &parser.VectorSelector{Name: q.Metric, LabelMatchers: ms}
}

// rangeOf is a range selector over samples with start <= t <= end: PromQL
// ranges are left-open, (end - range, end].
func rangeOf(vs *parser.VectorSelector, start, end time.Time) *parser.MatrixSelector {
	return &parser.MatrixSelector{VectorSelector: vs, Range: end.Sub(start) + time.Millisecond}
}

// raw answers a raw query: every sample of the matching series with
// start <= t <= end, evaluated as the range selector metric{...}[end-start]
// at end.
func (h *Query) raw(ctx context.Context, t storage.Tenant, q *QueryRequest, resp *QueryResponse) error {
	expr := rangeOf(q.selector(), q.Start, q.End).String()
	res, err := h.exec(ctx, t, promql.ExecRequest{Query: expr, Start: q.End, End: q.End, HistogramKinds: true}, resp)
	if err != nil {
		return err
	}
	m := matrixOf(res.Value)
	sortByLabels(m)
	series := make([]SeriesPoints, 0, len(m))
	for _, s := range m {
		metric, dims := splitLabels(s.Metric)
		sp := SeriesPoints{Metric: metric, Dimensions: dims, Points: make([]Point, 0, len(s.Floats)+len(s.Histograms))}
		fs, hs := floatPoints(s.Floats, 0), s.Histograms
		for len(fs) > 0 || len(hs) > 0 { // both oldest first: merge them
			if len(hs) == 0 || (len(fs) > 0 && fs[0].Timestamp < hs[0].T) {
				sp.Points = append(sp.Points, fs[0])
				fs = fs[1:]
				continue
			}
			sp.Points = append(sp.Points, Point{Timestamp: hs[0].T, Histogram: histogramOf(hs[0].H, !res.IntegerHistogram(s.Metric, hs[0].T))})
			hs = hs[1:]
		}
		series = append(series, sp)
	}
	resp.Data = SeriesData{Series: limit(resp, series, q.Limit)}
	return nil
}

// latest answers a latest query: the last sample of each matching series
// within lookback before time, (time - lookback, time], as PromQL's
// lookback; stale markers are not samples.
func (h *Query) latest(ctx context.Context, t storage.Tenant, q *QueryRequest, resp *QueryResponse) error {
	at := q.Time
	if at.IsZero() {
		at = time.Now().Truncate(time.Millisecond)
	}
	lookback := q.Lookback
	if lookback == 0 {
		lookback = defaultLookback
	}
	expr := (&parser.MatrixSelector{VectorSelector: q.selector(), Range: lookback}).String()
	res, err := h.exec(ctx, t, promql.ExecRequest{Query: expr, Start: at, End: at, HistogramKinds: true}, resp)
	if err != nil {
		return err
	}
	m := matrixOf(res.Value)
	sortByLabels(m)
	out := make([]SeriesValue, 0, len(m))
	for _, s := range m {
		metric, dims := splitLabels(s.Metric)
		v := SeriesValue{Metric: metric, Dimensions: dims}
		switch nf, nh := len(s.Floats), len(s.Histograms); {
		case nh > 0 && (nf == 0 || s.Histograms[nh-1].T > s.Floats[nf-1].T):
			last := s.Histograms[nh-1]
			v.Timestamp, v.Histogram = last.T, histogramOf(last.H, !res.IntegerHistogram(s.Metric, last.T))
		case nf > 0:
			last := s.Floats[nf-1]
			f := Float(last.F)
			v.Timestamp, v.Value = last.T, &f
		default:
			continue
		}
		out = append(out, v)
	}
	resp.Data = LatestData{Series: limit(resp, out, q.Limit)}
	return nil
}

// aggregate answers an aggregate query. Buckets are interval long and
// aligned to start: bucket k holds the samples with start + k*interval <= t
// < start + (k+1)*interval, for as many buckets as cover end (the last one
// is whole, so it may reach past end). A point's timestamp is its bucket's
// start; a bucket without samples in a group has no point.
//
// sum, count, min, max, avg and rate run on the engine as a range query
// evaluated at each bucket's last millisecond, so that the range selector
// (left-open) covers exactly the bucket:
//
//	sum:   sum by (g) (sum_over_time(x[i]))
//	count: sum by (g) (count_over_time(x[i]))
//	min:   min by (g) (min_over_time(x[i]))
//	max:   max by (g) (max_over_time(x[i]))
//	avg:   sum by (g) (sum_over_time(x[i])) / sum by (g) (count_over_time(x[i]))
//	rate:  sum by (g) (rate(x[i]))
//
// The percentiles pool the samples of a group's series, which PromQL
// cannot: they read the samples of the whole range (bounded by
// --query.max-samples) and compute each bucket's quantile here.
func (h *Query) aggregate(ctx context.Context, t storage.Tenant, q *QueryRequest, resp *QueryResponse) error {
	n := q.buckets()
	last := q.Start.Add(time.Duration(n) * q.Interval) // end of the last bucket, exclusive
	if phi, ok := quantiles[q.Aggregation]; ok {
		expr := rangeOf(q.selector(), q.Start, last.Add(-time.Millisecond)).String()
		res, err := h.exec(ctx, t, promql.ExecRequest{Query: expr, Start: last.Add(-time.Millisecond), End: last.Add(-time.Millisecond)}, resp)
		if err != nil {
			return err
		}
		resp.Data = SeriesData{Series: resp.percentiles(matrixOf(res.Value), q, phi)}
		return nil
	}
	expr := aggregateExpr(q).String()
	offset := q.Interval - time.Millisecond
	res, err := h.exec(ctx, t, promql.ExecRequest{Query: expr, Start: q.Start.Add(offset), End: last.Add(-time.Millisecond), Step: q.Interval}, resp)
	if err != nil {
		return err
	}
	m := matrixOf(res.Value)
	sortByLabels(m)
	resp.Data = SeriesData{Series: resp.seriesPoints(m, q.Metric, offset)}
	return nil
}

// aggregateExpr is the PromQL expression of an aggregate query computed by
// the engine.
func aggregateExpr(q *QueryRequest) parser.Expr {
	window := func(fn string) parser.Expr {
		ms := &parser.MatrixSelector{VectorSelector: q.selector(), Range: q.Interval}
		return &parser.Call{Func: parser.Functions[fn], Args: parser.Expressions{ms}}
	}
	by := func(op parser.ItemType, e parser.Expr) *parser.AggregateExpr {
		return &parser.AggregateExpr{Op: op, Expr: e, Grouping: slices.Clone(q.GroupBy)}
	}
	switch q.Aggregation {
	case AggSum:
		return by(parser.SUM, window("sum_over_time"))
	case AggCount:
		return by(parser.SUM, window("count_over_time"))
	case AggMin:
		return by(parser.MIN, window("min_over_time"))
	case AggMax:
		return by(parser.MAX, window("max_over_time"))
	case AggRate:
		return by(parser.SUM, window("rate"))
	}
	// AggAvg
	return &parser.BinaryExpr{
		Op:             parser.DIV,
		LHS:            by(parser.SUM, window("sum_over_time")),
		RHS:            by(parser.SUM, window("count_over_time")),
		VectorMatching: &parser.VectorMatching{Card: parser.CardOneToOne},
	}
}

// percentiles buckets the samples of m by group and computes quantile phi
// of each bucket.
func (resp *QueryResponse) percentiles(m pql.Matrix, q *QueryRequest, phi float64) []SeriesPoints {
	type group struct {
		key     labels.Labels
		buckets map[int64][]float64
	}
	groups := map[string]*group{}
	var b labels.Builder
	for _, s := range m {
		if len(s.Histograms) > 0 {
			resp.warn(warnHistograms)
		}
		b.Reset(labels.EmptyLabels())
		for _, k := range q.GroupBy {
			b.Set(k, s.Metric.Get(k))
		}
		key := b.Labels()
		g, ok := groups[key.String()]
		if !ok {
			g = &group{key: key, buckets: map[int64][]float64{}}
			groups[key.String()] = g
		}
		for _, p := range s.Floats {
			k := (p.T - q.Start.UnixMilli()) / q.Interval.Milliseconds()
			g.buckets[k] = append(g.buckets[k], p.F)
		}
	}
	sorted := make([]*group, 0, len(groups))
	for _, g := range groups {
		sorted = append(sorted, g)
	}
	slices.SortFunc(sorted, func(a, b *group) int { return labels.Compare(a.key, b.key) })
	out := make([]SeriesPoints, 0, len(groups))
	for _, g := range sorted {
		if len(g.buckets) == 0 {
			continue
		}
		ks := make([]int64, 0, len(g.buckets))
		for k := range g.buckets {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		fs := make([]pql.FPoint, 0, len(ks))
		for _, k := range ks {
			fs = append(fs, pql.FPoint{T: q.Start.UnixMilli() + k*q.Interval.Milliseconds(), F: quantile(phi, g.buckets[k])})
		}
		sp := SeriesPoints{Metric: q.Metric, Dimensions: dimensionsOf(g.key), Points: floatPoints(fs, 0)}
		out = append(out, sp)
	}
	return out
}

// quantile is the phi-quantile of vs as PromQL's quantile computes it:
// sorted ascending (NaN first), the value at rank phi*(n-1), interpolated
// linearly between the two closest ranks.
func quantile(phi float64, vs []float64) float64 {
	slices.Sort(vs)
	rank := phi * float64(len(vs)-1)
	lower := math.Floor(rank)
	upper := math.Ceil(rank)
	weight := rank - lower
	return vs[int(lower)]*(1-weight) + vs[int(upper)]*weight
}

// promql answers a promql query, instant at time (default now) or over
// start, end and step.
func (h *Query) promql(ctx context.Context, t storage.Tenant, q *QueryRequest, resp *QueryResponse) error {
	req := promql.ExecRequest{Query: q.Query, Lookback: q.Lookback}
	if q.ranged() {
		req.Start, req.End, req.Step = q.Start, q.End, q.Step
	} else {
		at := q.Time
		if at.IsZero() {
			at = time.Now().Truncate(time.Millisecond)
		}
		req.Start, req.End = at, at
	}
	res, err := h.exec(ctx, t, req, resp)
	if err != nil {
		return err
	}
	data := PromQLData{ResultType: string(res.Value.Type())}
	switch v := res.Value.(type) {
	case pql.Matrix:
		data.Result = resp.seriesPoints(v, "", 0)
	case pql.Vector:
		out := make([]SeriesValue, 0, len(v))
		for _, s := range v {
			if s.H != nil {
				resp.warn(warnHistograms)
				continue
			}
			metric, dims := splitLabels(s.Metric)
			v := Float(s.F)
			out = append(out, SeriesValue{Metric: metric, Dimensions: dims, Timestamp: s.T, Value: &v})
		}
		data.Result = out
	case pql.Scalar:
		data.Result = floatPoints([]pql.FPoint{{T: v.T, F: v.V}}, 0)[0]
	case pql.String:
		data.Result = StringValue{Timestamp: v.T, Value: v.V}
	default:
		return fmt.Errorf("promql query returned a %s", v.Type())
	}
	resp.Data = data
	return nil
}

// index answers metrics, dimensions and dimension_values from the
// tenant's index (no samples are read), bounded by --query.timeout.
func (h *Query) index(ctx context.Context, t storage.Tenant, q *QueryRequest, resp *QueryResponse) error {
	timeout := h.engine.Timeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	mint, maxt := int64(math.MinInt64), int64(math.MaxInt64) // every time; the stores take any range
	if !q.Start.IsZero() {
		mint = q.Start.UnixMilli()
	}
	if !q.End.IsZero() {
		maxt = q.End.UnixMilli()
	}
	querier, err := t.Store.Querier(mint, maxt)
	if err != nil {
		return indexError(err, timeout)
	}
	defer querier.Close()
	hints := &promstorage.LabelHints{Limit: q.Limit}
	if q.Limit > 0 {
		hints.Limit = q.Limit + 1 // one more, to tell a truncation
	}
	var (
		vals []string
		ws   annotations.Annotations
	)
	switch q.Type {
	case QueryMetrics:
		var ms []*labels.Matcher
		if q.Prefix != "" {
			ms = append(ms, labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, regexp.QuoteMeta(q.Prefix)+".*"))
		}
		vals, ws, err = querier.LabelValues(ctx, model.MetricNameLabel, hints, ms...)
	case QueryDimensions:
		hints.Limit = 0 // __name__ is among them; cut below
		vals, ws, err = querier.LabelNames(ctx, hints, q.selector().LabelMatchers...)
		vals = slices.DeleteFunc(vals, func(n string) bool { return n == model.MetricNameLabel || n == tenancy.Label })
	case QueryDimensionValues:
		ms := q.Matchers
		if q.Metric != "" {
			ms = q.selector().LabelMatchers
		}
		vals, ws, err = querier.LabelValues(ctx, q.Key, hints, ms...)
	}
	if err != nil {
		return indexError(err, timeout)
	}
	resp.addWarnings(ws, "")
	vals = limit(resp, slices.DeleteFunc(vals, func(v string) bool { return v == "" }), q.Limit)
	if vals == nil {
		vals = []string{}
	}
	switch q.Type {
	case QueryMetrics:
		md, err := t.Store.Metadata(ctx, "", 0) // at most the tenant's max_metadata
		if err != nil {
			return indexError(err, timeout)
		}
		resp.Data = MetricsData{Metrics: vals, Metadata: metadataOf(vals, md)}
	case QueryDimensions:
		resp.Data = DimensionsData{Dimensions: vals}
	case QueryDimensionValues:
		resp.Data = DimensionValuesData{Key: q.Key, Values: vals}
	}
	return nil
}

// MetricMetadata is what a metric's writers said of it: its type
// (counter, gauge, histogram, gaugehistogram, summary, info, stateset,
// unknown), help and unit; empty fields omitted.
type MetricMetadata struct {
	Type string `json:"type,omitempty"`
	Help string `json:"help,omitempty"`
	Unit string `json:"unit,omitempty"`
}

// familySuffixes are the suffixes of the series names of a metric family,
// with the family types they belong to.
var familySuffixes = []struct {
	suffix string
	types  []model.MetricType
}{
	{"_bucket", []model.MetricType{model.MetricTypeHistogram, model.MetricTypeGaugeHistogram}},
	{"_count", []model.MetricType{model.MetricTypeHistogram, model.MetricTypeGaugeHistogram, model.MetricTypeSummary}},
	{"_sum", []model.MetricType{model.MetricTypeHistogram, model.MetricTypeGaugeHistogram, model.MetricTypeSummary}},
	{"_total", []model.MetricType{model.MetricTypeCounter}},
	{"_created", []model.MetricType{model.MetricTypeCounter, model.MetricTypeHistogram, model.MetricTypeSummary}},
	{"_gcount", []model.MetricType{model.MetricTypeGaugeHistogram}},
	{"_gsum", []model.MetricType{model.MetricTypeGaugeHistogram}},
}

// metadataOf returns the metadata of each of names found in md (by family
// name): a metric's own, or its family's for a series name such as
// x_bucket of histogram x.
func metadataOf(names []string, md map[string]metadata.Metadata) map[string]MetricMetadata {
	out := map[string]MetricMetadata{}
	for _, n := range names {
		m, ok := md[n]
		for _, f := range familySuffixes {
			if ok {
				break
			}
			if family, cut := strings.CutSuffix(n, f.suffix); cut {
				m, ok = md[family]
				ok = ok && slices.Contains(f.types, m.Type)
			}
		}
		if ok {
			out[n] = MetricMetadata{Type: string(m.Type), Help: m.Help, Unit: m.Unit}
		}
	}
	return out
}

// indexError names the setting a timed-out index read exceeded.
func indexError(err error, timeout time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return apierror.Limit(apierror.Timeout, tenancy.Global("--query.timeout"), "index read exceeded the query timeout of %s", timeout)
	}
	return err
}

// The data of each query type.
type (
	// SeriesData is the data of raw and aggregate queries.
	SeriesData struct {
		Series []SeriesPoints `json:"series"`
	}
	// LatestData is the data of latest queries.
	LatestData struct {
		Series []SeriesValue `json:"series"`
	}
	// MetricsData is the data of metrics queries. Metadata holds the type,
	// help and unit of the listed metrics whose writers sent them.
	MetricsData struct {
		Metrics  []string                  `json:"metrics"`
		Metadata map[string]MetricMetadata `json:"metadata"`
	}
	// DimensionsData is the data of dimensions queries.
	DimensionsData struct {
		Dimensions []string `json:"dimensions"`
	}
	// DimensionValuesData is the data of dimension_values queries.
	DimensionValuesData struct {
		Key    string   `json:"key"`
		Values []string `json:"values"`
	}
	// PromQLData is the data of promql queries. Result is []SeriesPoints
	// for a matrix, []SeriesValue for a vector, a Point for a scalar and a
	// StringValue for a string.
	PromQLData struct {
		ResultType string `json:"resultType"`
		Result     any    `json:"result"`
	}
)

// SeriesPoints is a series with its points, oldest first.
type SeriesPoints struct {
	// Metric is the metric name; absent when PromQL removed it.
	Metric     string            `json:"metric,omitempty"`
	Dimensions map[string]string `json:"dimensions"`
	Points     []Point           `json:"points"`
}

// SeriesValue is a series with one value, or a native histogram in place
// of the value (latest queries only); Value is nil for a histogram.
type SeriesValue struct {
	Metric     string            `json:"metric,omitempty"`
	Dimensions map[string]string `json:"dimensions"`
	Timestamp  int64             `json:"timestamp"`
	Value      *Float            `json:"value,omitempty"`
	Histogram  *Histogram        `json:"histogram,omitempty"`
}

// Point is a sample: Unix milliseconds and a value, or a native histogram
// in place of the value (raw queries only). Value is nil for a histogram.
// (A pointer rather than a marshaler on Point: encoding/json re-scans
// every byte a marshaler returns, a third of the encoding time of a
// series of floats.)
type Point struct {
	Timestamp int64      `json:"timestamp"`
	Value     *Float     `json:"value,omitempty"`
	Histogram *Histogram `json:"histogram,omitempty"`
}

// floatPoints returns the points of the samples of fs, shifted back by
// shift milliseconds, their values in one allocation.
func floatPoints(fs []pql.FPoint, shift int64) []Point {
	vals := make([]Float, len(fs))
	out := make([]Point, len(fs))
	for i, p := range fs {
		vals[i] = Float(p.F)
		out[i] = Point{Timestamp: p.T - shift, Value: &vals[i]}
	}
	return out
}

// Histogram is a native histogram sample in the shape the native write
// takes: counts absolute per bucket (not deltas), empty and zero fields
// omitted. Float tells a float histogram from an integer one.
type Histogram struct {
	Schema           int32     `json:"schema"`
	Count            Float     `json:"count"`
	Sum              Float     `json:"sum"`
	ZeroThreshold    float64   `json:"zero_threshold,omitempty"`
	ZeroCount        Float     `json:"zero_count,omitempty"`
	CounterResetHint string    `json:"counter_reset_hint"`
	PositiveSpans    []Span    `json:"positive_spans,omitempty"`
	PositiveCounts   []Float   `json:"positive_counts,omitempty"`
	NegativeSpans    []Span    `json:"negative_spans,omitempty"`
	NegativeCounts   []Float   `json:"negative_counts,omitempty"`
	CustomValues     []float64 `json:"custom_values,omitempty"`
	Float            bool      `json:"float,omitempty"`
}

// Span is a run of consecutive buckets: Offset buckets after the previous
// span's end (the first span's from index 0), Length buckets long.
type Span struct {
	Offset int32  `json:"offset"`
	Length uint32 `json:"length"`
}

// counterResetHints name histogram.CounterResetHint values.
var counterResetHints = map[histogram.CounterResetHint]string{
	histogram.UnknownCounterReset: "unknown",
	histogram.CounterReset:        "reset",
	histogram.NotCounterReset:     "not_reset",
	histogram.GaugeType:           "gauge",
}

// histogramOf is h in the native shape; isFloat says whether it was
// stored as a float histogram.
func histogramOf(h *histogram.FloatHistogram, isFloat bool) *Histogram {
	spans := func(ss []histogram.Span) []Span {
		if len(ss) == 0 {
			return nil
		}
		out := make([]Span, len(ss))
		for i, s := range ss {
			out[i] = Span{Offset: s.Offset, Length: s.Length}
		}
		return out
	}
	counts := func(cs []float64) []Float {
		if len(cs) == 0 {
			return nil
		}
		out := make([]Float, len(cs))
		for i, c := range cs {
			out[i] = Float(c)
		}
		return out
	}
	return &Histogram{
		Schema:           h.Schema,
		Count:            Float(h.Count),
		Sum:              Float(h.Sum),
		ZeroThreshold:    h.ZeroThreshold,
		ZeroCount:        Float(h.ZeroCount),
		CounterResetHint: counterResetHints[h.CounterResetHint],
		PositiveSpans:    spans(h.PositiveSpans),
		PositiveCounts:   counts(h.PositiveBuckets),
		NegativeSpans:    spans(h.NegativeSpans),
		NegativeCounts:   counts(h.NegativeBuckets),
		CustomValues:     slices.Clone(h.CustomValues),
		Float:            isFloat,
	}
}

// StringValue is PromQL's string result.
type StringValue struct {
	Timestamp int64  `json:"timestamp"`
	Value     string `json:"value"`
}

// matrixOf returns v as a matrix; a range selector always gives one.
func matrixOf(v parser.Value) pql.Matrix {
	m, _ := v.(pql.Matrix)
	return m
}

// seriesPoints converts a matrix, shifting every timestamp back by shift
// (an aggregate's bucket end to its start). metric names series PromQL
// left without a name (aggregations).
func (resp *QueryResponse) seriesPoints(m pql.Matrix, metric string, shift time.Duration) []SeriesPoints {
	out := make([]SeriesPoints, 0, len(m))
	for _, s := range m {
		if len(s.Histograms) > 0 {
			resp.warn(warnHistograms)
		}
		if len(s.Floats) == 0 {
			continue
		}
		name, dims := splitLabels(s.Metric)
		if name == "" {
			name = metric
		}
		sp := SeriesPoints{Metric: name, Dimensions: dims, Points: floatPoints(s.Floats, shift.Milliseconds())}
		out = append(out, sp)
	}
	return out
}

// limit cuts s to n items (n > 0), with a warning when it does.
func limit[T any](resp *QueryResponse, s []T, n int) []T {
	if n > 0 && len(s) > n {
		resp.warn(warnTruncated)
		return s[:n]
	}
	return s
}

// splitLabels splits a series' labels into its name and dimensions; the
// tenant label never leaves.
func splitLabels(ls labels.Labels) (string, map[string]string) {
	return ls.Get(model.MetricNameLabel), dimensionsOf(ls)
}

func dimensionsOf(ls labels.Labels) map[string]string {
	dims := make(map[string]string, ls.Len())
	ls.Range(func(l labels.Label) {
		if l.Name != model.MetricNameLabel && l.Name != tenancy.Label && l.Value != "" {
			dims[l.Name] = l.Value
		}
	})
	return dims
}

// sortByLabels orders the series of m by their labels, so that responses
// are deterministic.
func sortByLabels(m pql.Matrix) {
	slices.SortFunc(m, func(a, b pql.Series) int { return labels.Compare(a.Metric, b.Metric) })
}
