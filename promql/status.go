package promql

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

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

// tsdbStatus is the data of /status/tsdb, in Prometheus' shape.
type tsdbStatus struct {
	HeadStats                   headStats  `json:"headStats"`
	SeriesCountByMetricName     []tsdbStat `json:"seriesCountByMetricName"`
	LabelValueCountByLabelName  []tsdbStat `json:"labelValueCountByLabelName"`
	MemoryInBytesByLabelName    []tsdbStat `json:"memoryInBytesByLabelName"`
	SeriesCountByLabelValuePair []tsdbStat `json:"seriesCountByLabelValuePair"`
}

// maxTSDBLimit bounds the limit parameter of /status/tsdb, as in Prometheus.
const maxTSDBLimit = 10000

// serveTSDBStatus serves /status/tsdb: the tenant's cardinality. The
// chunk count is not tracked per tenant and is reported as 0.
func (a *API) serveTSDBStatus(r *http.Request, t storage.Tenant) (result, error) {
	limit := 10
	if s := r.FormValue("limit"); s != "" {
		var err error
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 {
			return result{}, badData(errors.New("limit must be a positive number"))
		}
		if limit > maxTSDBLimit {
			return result{}, badData(fmt.Errorf("limit must not exceed %d", maxTSDBLimit))
		}
	}
	c, err := t.Store.Cardinality(r.Context(), limit)
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
		SeriesCountByMetricName:     tsdbStats(c.ByMetricName),
		LabelValueCountByLabelName:  tsdbStats(c.ByLabelName),
		MemoryInBytesByLabelName:    tsdbStats(c.MemoryByLabel),
		SeriesCountByLabelValuePair: tsdbStats(c.ByLabelPair),
	}}, nil
}

func tsdbStats(counts []storage.Count) []tsdbStat {
	out := make([]tsdbStat, 0, len(counts))
	for _, c := range counts {
		out = append(out, tsdbStat{Name: c.Name, Value: c.Value})
	}
	return out
}
