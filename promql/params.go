package promql

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/luminate-io/luminate/apierror"
)

// Parameter parsing follows Prometheus' web/api/v1 exactly (same accepted
// forms, same messages), so that clients see the same errors.

var (
	// minTime and maxTime are the defaults of optional time ranges, the
	// values of Prometheus' v1.MinTime and v1.MaxTime.
	minTime = time.Unix(math.MinInt64/1000+62135596801, 0).UTC()
	maxTime = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC()

	minTimeFormatted = minTime.Format(time.RFC3339Nano)
	maxTimeFormatted = maxTime.Format(time.RFC3339Nano)
)

// maxPointsPerSeries bounds the steps of a range query, as in Prometheus.
const maxPointsPerSeries = 11000

// invalidParam is Prometheus' "invalid parameter" bad_data error.
func invalidParam(err error, name string) error {
	return &apierror.Error{Kind: apierror.InvalidArgument, Field: name, Msg: fmt.Sprintf("invalid parameter %q", name), Err: err}
}

// badData is a bad_data error without a parameter prefix.
func badData(err error) error {
	return &apierror.Error{Kind: apierror.InvalidArgument, Err: err}
}

// parseTime parses a timestamp given as float seconds since the epoch or
// as RFC 3339.
func parseTime(s string) (time.Time, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		s, ns := math.Modf(t)
		ns = math.Round(ns*1000) / 1000
		return time.Unix(int64(s), int64(ns*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	// The standard library parses only 4-digit years; accept Prometheus'
	// own boundary times.
	switch s {
	case minTimeFormatted:
		return minTime, nil
	case maxTimeFormatted:
		return maxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

// parseTimeParam parses form value name, or returns def when it is absent.
func parseTimeParam(r *http.Request, name string, def time.Time) (time.Time, error) {
	val := r.FormValue(name)
	if val == "" {
		return def, nil
	}
	t, err := parseTime(val)
	if err != nil {
		return time.Time{}, invalidParam(fmt.Errorf("invalid time value for '%s': %w", name, err), name)
	}
	return t, nil
}

// parseDuration parses a duration given as float seconds or as a
// Prometheus duration (5m, 1h30m).
func parseDuration(s string) (time.Duration, error) {
	if d, err := strconv.ParseFloat(s, 64); err == nil {
		ts := d * float64(time.Second)
		// float64(math.MaxInt64) is 2^63, which int64 cannot hold, and NaN
		// passes every comparison.
		if math.IsNaN(ts) || ts >= float64(math.MaxInt64) || ts < float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", s)
		}
		return time.Duration(ts), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}

// parseLimit parses a result limit; 0 (or absent) means none.
func parseLimit(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	limit, err := strconv.Atoi(s)
	if err != nil {
		return 0, invalidParam(err, "limit")
	}
	if limit < 0 {
		return 0, invalidParam(errors.New("limit must be non-negative"), "limit")
	}
	return limit, nil
}

// hintLimit asks storage for one more result than limit, so that a
// truncation can be reported.
func hintLimit(limit int) int {
	if limit > 0 && limit < math.MaxInt {
		return limit + 1
	}
	return limit
}

// parseMatchers parses match[] selectors; each set must contain a matcher
// that does not match the empty string.
func parseMatchers(p parser.Parser, selectors []string) ([][]*labels.Matcher, error) {
	sets, err := p.ParseMetricSelectors(selectors)
	if err != nil {
		return nil, err
	}
outer:
	for _, ms := range sets {
		for _, m := range ms {
			if m != nil && !m.Matches("") {
				continue outer
			}
		}
		return nil, errors.New("match[] must contain at least one non-empty matcher")
	}
	return sets, nil
}

// timeRange is the start and end of a request, in milliseconds.
type timeRange struct{ start, end time.Time }

// parseRange parses the optional start and end of a metadata request.
func parseRange(r *http.Request) (timeRange, error) {
	start, err := parseTimeParam(r, "start", minTime)
	if err != nil {
		return timeRange{}, err
	}
	end, err := parseTimeParam(r, "end", maxTime)
	if err != nil {
		return timeRange{}, err
	}
	return timeRange{start, end}, nil
}

// rangeParams are the parsed parameters of a range query.
type rangeParams struct {
	start, end time.Time
	step       time.Duration
}

// parseRangeParams parses start, end and step of query_range.
func parseRangeParams(r *http.Request) (rangeParams, error) {
	start, err := parseTime(r.FormValue("start"))
	if err != nil {
		return rangeParams{}, invalidParam(err, "start")
	}
	end, err := parseTime(r.FormValue("end"))
	if err != nil {
		return rangeParams{}, invalidParam(err, "end")
	}
	if end.Before(start) {
		return rangeParams{}, invalidParam(errors.New("end timestamp must not be before start time"), "end")
	}
	step, err := parseDuration(r.FormValue("step"))
	if err != nil {
		return rangeParams{}, invalidParam(err, "step")
	}
	if step <= 0 {
		return rangeParams{}, invalidParam(errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer"), "step")
	}
	if end.Sub(start)/step > maxPointsPerSeries {
		return rangeParams{}, badData(errors.New("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"))
	}
	return rangeParams{start, end, step}, nil
}

// parseTimeout parses the optional per-request timeout.
func parseTimeout(r *http.Request) (time.Duration, error) {
	v := r.FormValue("timeout")
	if v == "" {
		return 0, nil
	}
	d, err := parseDuration(v)
	if err != nil {
		return 0, invalidParam(err, "timeout")
	}
	if d <= 0 {
		return 0, invalidParam(fmt.Errorf("timeout must be positive, got %s", d), "timeout")
	}
	return d, nil
}

// parseLabelName reads a label name from a path, unescaping the U__ form
// Prometheus clients use for names outside the legacy character set.
func parseLabelName(name string) (string, error) {
	if strings.HasPrefix(name, "U__") {
		name = model.UnescapeName(name, model.ValueEncodingEscaping)
	}
	if !model.UTF8Validation.IsValidLabelName(name) {
		return "", badData(fmt.Errorf("invalid label name: %q", name))
	}
	return name, nil
}
