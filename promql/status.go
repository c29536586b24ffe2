package promql

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/metadata"

	"github.com/luminate-io/luminate/storage"
)

// serveBuildInfo serves /status/buildinfo.
func (a *API) serveBuildInfo(*http.Request, storage.Tenant) (result, error) {
	return result{data: a.buildInfo}, nil
}

// metadata serves /metadata: the latest metadata the tenant's writers
// sent for each metric family (Prometheus' shape, one entry per family),
// from the store, which keeps at most the tenant's max_metadata families.
// As in Prometheus, limit bounds the families (0 returns none, a negative
// limit all), limit_per_metric the entries per family (one here anyway).
func (a *API) metadata(r *http.Request, t storage.Tenant) (result, error) {
	limit := -1
	for _, p := range []struct {
		name string
		dst  *int
	}{{"limit", &limit}, {"limit_per_metric", new(int)}} {
		if s := r.FormValue(p.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				return result{}, badData(fmt.Errorf("%s must be a number", p.name))
			}
			*p.dst = n
		}
	}
	out := metadataMap{}
	if limit == 0 {
		return result{data: out}, nil
	}
	md, err := t.Store.Metadata(r.Context(), r.FormValue("metric"), max(limit, 0))
	if err != nil {
		return result{}, a.queryError(err, 0)
	}
	for name, m := range md {
		if limit > 0 && len(out) >= limit {
			break
		}
		out[name] = []metadata.Metadata{m}
	}
	return result{data: out}, nil
}

// tsdbStat is one row of a cardinality list in /status/tsdb.
type tsdbStat struct {
	Name  string `json:"name"`
	Value uint64 `json:"value"`
}

// headStats is the headStats object of /status/tsdb.
type headStats struct {
	NumSeries     uint64 `json:"numSeries"`
	NumLabelPairs int    `json:"numLabelPairs"`
	ChunkCount    int64  `json:"chunkCount"`
	MinTime       int64  `json:"minTime"`
	MaxTime       int64  `json:"maxTime"`
}

// tsdbStatus is the data of /status/tsdb: Prometheus' fields and
// VictoriaMetrics' (totalSeries, totalLabelValuePairs,
// seriesCountByLabelName, seriesCountByFocusLabelValue).
type tsdbStatus struct {
	HeadStats                    headStats  `json:"headStats"`
	SeriesCountByMetricName      []tsdbStat `json:"seriesCountByMetricName"`
	LabelValueCountByLabelName   []tsdbStat `json:"labelValueCountByLabelName"`
	MemoryInBytesByLabelName     []tsdbStat `json:"memoryInBytesByLabelName"`
	SeriesCountByLabelValuePair  []tsdbStat `json:"seriesCountByLabelValuePair"`
	TotalSeries                  uint64     `json:"totalSeries"`
	TotalLabelValuePairs         uint64     `json:"totalLabelValuePairs"`
	SeriesCountByLabelName       []tsdbStat `json:"seriesCountByLabelName"`
	SeriesCountByFocusLabelValue []tsdbStat `json:"seriesCountByFocusLabelValue"`
}

// maxTSDBLimit bounds the limit parameter of /status/tsdb, as in Prometheus.
const maxTSDBLimit = 10000

// serveTSDBStatus serves /status/tsdb: the tenant's cardinality, of every
// retained series or, as in VictoriaMetrics, of the series matching
// match[] with samples on date (YYYY-MM-DD, UTC) or between start and end,
// with the top focusLabel values; topN is VictoriaMetrics' name for
// limit. The chunk count is not tracked per tenant and is reported as 0.
func (a *API) serveTSDBStatus(r *http.Request, t storage.Tenant) (result, error) {
	req := storage.CardinalityRequest{Limit: 10}
	for _, name := range []string{"limit", "topN"} {
		s := r.FormValue(name)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return result{}, badData(fmt.Errorf("%s must be a positive number", name))
		}
		if n > maxTSDBLimit {
			return result{}, badData(fmt.Errorf("%s must not exceed %d", name, maxTSDBLimit))
		}
		req.Limit = n
	}
	if sel := r.Form["match[]"]; len(sel) > 0 {
		sets, err := a.parseMatchers(t, sel)
		if err != nil {
			return result{}, invalidParam(err, "match[]")
		}
		req.Matchers = sets
	}
	if err := parseStatusRange(r, &req); err != nil {
		return result{}, err
	}
	if f := r.FormValue("focusLabel"); f != "" {
		name, err := parseLabelName(f)
		if err != nil {
			return result{}, err
		}
		req.FocusLabel = name
	}
	c, err := t.Store.Cardinality(r.Context(), req)
	if err != nil {
		return result{}, a.queryError(err, 0)
	}
	return result{data: tsdbStatus{
		HeadStats: headStats{
			NumSeries:     c.NumSeries,
			NumLabelPairs: c.NumLabelPairs,
			MinTime:       c.MinTime,
			MaxTime:       c.MaxTime,
		},
		SeriesCountByMetricName:      tsdbStats(c.ByMetricName),
		LabelValueCountByLabelName:   tsdbStats(c.ByLabelName),
		MemoryInBytesByLabelName:     tsdbStats(c.MemoryByLabel),
		SeriesCountByLabelValuePair:  tsdbStats(c.ByLabelPair),
		TotalSeries:                  c.NumSeries,
		TotalLabelValuePairs:         c.NumLabelRefs,
		SeriesCountByLabelName:       tsdbStats(c.SeriesByLabel),
		SeriesCountByFocusLabelValue: tsdbStats(c.ByFocusLabelValue),
	}}, nil
}

// parseStatusRange reads date (YYYY-MM-DD, a UTC day; 1970-01-01 means
// all time, as in VictoriaMetrics) or start and end into req; none of
// them means all retained data.
func parseStatusRange(r *http.Request, req *storage.CardinalityRequest) error {
	if d := r.FormValue("date"); d != "" {
		if r.FormValue("start") != "" || r.FormValue("end") != "" {
			return badData(errors.New("pass date or start and end, not both"))
		}
		day, err := time.Parse(time.DateOnly, d)
		if err != nil {
			return invalidParam(fmt.Errorf("date must be YYYY-MM-DD: %w", err), "date")
		}
		if day.Unix() != 0 {
			req.Start = day.UnixMilli()
			req.End = day.Add(24*time.Hour).UnixMilli() - 1
		}
		return nil
	}
	if r.FormValue("start") == "" && r.FormValue("end") == "" {
		return nil
	}
	start, err := parseTimeParam(r, "start", minTime)
	if err != nil {
		return err
	}
	end, err := parseTimeParam(r, "end", time.Now())
	if err != nil {
		return err
	}
	if end.Before(start) {
		return badData(errors.New("end timestamp must not be before start time"))
	}
	req.Start, req.End = start.UnixMilli(), end.UnixMilli()
	if req.Start == 0 && req.End == 0 {
		req.End = 1 // a range of the first millisecond, not all time
	}
	return nil
}

func tsdbStats(counts []storage.Count) []tsdbStat {
	out := make([]tsdbStat, 0, len(counts))
	for _, c := range counts {
		out = append(out, tsdbStat{Name: c.Name, Value: c.Value})
	}
	return out
}
