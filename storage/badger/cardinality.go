package badger

import (
	"context"
	"math"
	"sort"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/luminate-io/luminate/storage"
)

// Cardinality reports the tenant's series statistics from the index.
func (v *tenantStore) Cardinality(_ context.Context, limit int) (storage.Cardinality, error) {
	t, err := v.st.tenantFor(v.id, false)
	if err != nil || t == nil {
		return storage.Cardinality{}, err
	}
	var c storage.Cardinality
	byName := map[string]uint64{}
	var byLabel, byPair, mem []storage.Count
	c.MinTime, c.MaxTime = math.MaxInt64, math.MinInt64
	t.mu.RLock()
	c.NumSeries = uint64(len(t.all))
	for _, s := range t.all {
		byName[s.lset.Get(labels.MetricName)]++
		if s.maxT.Load() != math.MinInt64 {
			c.MinTime = min(c.MinTime, s.minT.Load())
			c.MaxTime = max(c.MaxTime, s.maxT.Load())
		}
	}
	for name, vals := range t.postings {
		byLabel = append(byLabel, storage.Count{Name: name, Value: uint64(len(vals))})
		var bytes uint64
		for val, list := range vals {
			c.NumLabelPairs++
			byPair = append(byPair, storage.Count{Name: name + "=" + val, Value: uint64(len(list))})
			bytes += uint64(len(val) * len(list))
		}
		mem = append(mem, storage.Count{Name: name, Value: bytes})
	}
	t.mu.RUnlock()
	if c.NumSeries == 0 || c.MaxTime == math.MinInt64 {
		c.MinTime, c.MaxTime = 0, 0
	}
	var names []storage.Count
	for n, k := range byName {
		names = append(names, storage.Count{Name: n, Value: k})
	}
	c.ByMetricName = topN(names, limit)
	c.ByLabelName = topN(byLabel, limit)
	c.ByLabelPair = topN(byPair, limit)
	c.MemoryByLabel = topN(mem, limit)
	return c, nil
}

func topN(list []storage.Count, n int) []storage.Count {
	sort.Slice(list, func(i, j int) bool {
		if list[i].Value != list[j].Value {
			return list[i].Value > list[j].Value
		}
		return list[i].Name < list[j].Name
	})
	if n > 0 && len(list) > n {
		list = list[:n]
	}
	return list
}
