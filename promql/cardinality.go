package promql

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/luminate-io/luminate/storage"
)

// Mimir's cardinality API (/api/v1/cardinality/...): the same parameters
// and JSON bodies as Grafana Mimir, without Prometheus' envelope, from the
// store's maintained statistics (storage.TenantStore.Cardinality).

// Mimir's bounds on limit.
const (
	defaultCardinalityLimit = 20
	maxCardinalityLimit     = 500
	// maxActiveSeriesList bounds the series active_series lists.
	maxActiveSeriesList = 100_000
)

type labelNamesCardinality struct {
	LabelValuesCountTotal int                    `json:"label_values_count_total"`
	LabelNamesCount       int                    `json:"label_names_count"`
	Cardinality           []labelNameCardinality `json:"cardinality"`
}

type labelNameCardinality struct {
	LabelName        string `json:"label_name"`
	LabelValuesCount uint64 `json:"label_values_count"`
}

type labelValuesCardinality struct {
	SeriesCountTotal uint64              `json:"series_count_total"`
	Labels           []labelValuesOfName `json:"labels"`
}

type labelValuesOfName struct {
	LabelName        string             `json:"label_name"`
	LabelValuesCount uint64             `json:"label_values_count"`
	SeriesCount      uint64             `json:"series_count"`
	Cardinality      []labelValueSeries `json:"cardinality"`
}

type labelValueSeries struct {
	LabelValue  string `json:"label_value"`
	SeriesCount uint64 `json:"series_count"`
}

type activeSeriesList struct {
	Data []labels.Labels `json:"data"`
}

// plainJSON is a success body written as is, without the envelope.
type plainJSON struct {
	a *API
	v any
}

func (p plainJSON) Respond(w http.ResponseWriter, r *http.Request) error {
	s := p.a.json.BorrowStream(nil)
	defer p.a.json.ReturnStream(s)
	s.WriteVal(p.v)
	if s.Error != nil {
		return fmt.Errorf("encode response: %w", s.Error)
	}
	p.a.writeBody(w, r, s.Buffer())
	return nil
}

// cardinalityParams parses selector, limit (default def, at most max) and
// count_method into a request.
func (a *API) cardinalityParams(r *http.Request, t storage.Tenant, def, maxLimit int, requireSelector bool) (storage.CardinalityRequest, error) {
	req := storage.CardinalityRequest{Limit: def}
	if s := r.FormValue("selector"); s != "" {
		sets, err := a.parseMatchers(t, []string{s})
		if err != nil {
			return req, invalidParam(err, "selector")
		}
		req.Matchers = sets
	} else if requireSelector {
		return req, badData(errors.New("selector parameter is required"))
	}
	if s := r.FormValue("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n > maxLimit {
			return req, badData(fmt.Errorf("limit param must be greater than 0 and at most %d", maxLimit))
		}
		req.Limit = n
	}
	switch m := r.FormValue("count_method"); m {
	case "", "inmemory":
	case "active":
		req.Active = true
	default:
		return req, badData(fmt.Errorf("invalid count_method %q: want inmemory or active", m))
	}
	return req, nil
}

// cardinalityLabelNames serves /cardinality/label_names: distinct values
// per label name, most first.
func (a *API) cardinalityLabelNames(r *http.Request, t storage.Tenant) (result, error) {
	req, err := a.cardinalityParams(r, t, defaultCardinalityLimit, maxCardinalityLimit, false)
	if err != nil {
		return result{}, err
	}
	c, err := t.Store.Cardinality(r.Context(), req)
	if err != nil {
		return result{}, a.queryError(err, 0)
	}
	out := labelNamesCardinality{LabelValuesCountTotal: c.NumLabelPairs, LabelNamesCount: c.NumLabelNames, Cardinality: []labelNameCardinality{}}
	for _, n := range c.ByLabelName {
		out.Cardinality = append(out.Cardinality, labelNameCardinality{LabelName: n.Name, LabelValuesCount: n.Value})
	}
	return result{data: plainJSON{a, out}}, nil
}

// cardinalityLabelValues serves /cardinality/label_values: series per
// value of each label_names[], most first.
func (a *API) cardinalityLabelValues(r *http.Request, t storage.Tenant) (result, error) {
	req, err := a.cardinalityParams(r, t, defaultCardinalityLimit, maxCardinalityLimit, false)
	if err != nil {
		return result{}, err
	}
	names := r.Form["label_names[]"]
	if len(names) == 0 {
		return result{}, badData(errors.New("label_names[] param is required"))
	}
	seen := map[string]bool{}
	for _, n := range names {
		name, err := parseLabelName(n)
		if err != nil {
			return result{}, err
		}
		if !seen[name] {
			seen[name] = true
			req.LabelNames = append(req.LabelNames, name)
		}
	}
	c, err := t.Store.Cardinality(r.Context(), req)
	if err != nil {
		return result{}, a.queryError(err, 0)
	}
	out := labelValuesCardinality{SeriesCountTotal: c.NumSeries, Labels: []labelValuesOfName{}}
	for _, lv := range c.LabelValues {
		l := labelValuesOfName{LabelName: lv.Name, LabelValuesCount: lv.NumValues, SeriesCount: lv.NumSeries, Cardinality: []labelValueSeries{}}
		for _, v := range lv.Values {
			l.Cardinality = append(l.Cardinality, labelValueSeries{LabelValue: v.Name, SeriesCount: v.Value})
		}
		out.Labels = append(out.Labels, l)
	}
	// As Mimir: the label names with most series first.
	sortLabelValues(out.Labels)
	return result{data: plainJSON{a, out}}, nil
}

func sortLabelValues(list []labelValuesOfName) {
	for i := 1; i < len(list); i++ {
		for j := i; j > 0 && (list[j].SeriesCount > list[j-1].SeriesCount ||
			list[j].SeriesCount == list[j-1].SeriesCount && list[j].LabelName < list[j-1].LabelName); j-- {
			list[j], list[j-1] = list[j-1], list[j]
		}
	}
}

// cardinalityActiveSeries serves /cardinality/active_series: the labels
// of the tenant's active series matching selector, at most limit
// (default and most maxActiveSeriesList).
func (a *API) cardinalityActiveSeries(r *http.Request, t storage.Tenant) (result, error) {
	req, err := a.cardinalityParams(r, t, maxActiveSeriesList, maxActiveSeriesList, true)
	if err != nil {
		return result{}, err
	}
	req.Active, req.ListSeries = true, true
	c, err := t.Store.Cardinality(r.Context(), req)
	if err != nil {
		return result{}, a.queryError(err, 0)
	}
	out := activeSeriesList{Data: c.Series}
	if out.Data == nil {
		out.Data = []labels.Labels{}
	}
	return result{data: plainJSON{a, out}}, nil
}
