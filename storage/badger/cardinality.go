package badger

import (
	"cmp"
	"container/heap"
	"context"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/luminate-io/luminate/storage"
)

// indexStats are a tenant's maintained cardinality statistics: what the
// postings do not already hold (series per metric name and per label pair
// are the lengths of the postings lists, values per name the size of a
// name's map). addLocked and removeLocked keep them, under tenant.mu.
type indexStats struct {
	byName map[string]*labelStat
	pairs  int    // distinct name=value pairs
	refs   uint64 // name=value pairs over all series

	// The tenant's first and last sample time, computed at most every
	// timesTTL (a walk of the series' bounds, outside the index lock).
	timesMu    sync.Mutex
	timesAt    time.Time
	mint, maxt int64
}

// timesTTL is how old the reported MinTime and MaxTime may be.
const timesTTL = 15 * time.Second

// times returns the tenant's time range, recomputed when older than
// timesTTL.
func (t *tenant) times() (mint, maxt int64) {
	st := &t.stats
	st.timesMu.Lock()
	defer st.timesMu.Unlock()
	if time.Since(st.timesAt) < timesTTL {
		return st.mint, st.maxt
	}
	t.mu.RLock()
	all := slices.Clone(t.all)
	t.mu.RUnlock()
	st.mint, st.maxt = timeRange(all)
	st.timesAt = time.Now()
	return st.mint, st.maxt
}

// labelStat is what one label name costs.
type labelStat struct {
	series uint64 // series with the label
	bytes  uint64 // bytes of its values over those series
}

// add counts l of a new series; newPair is set when no other series has it.
func (st *indexStats) add(l labels.Label, newPair bool) {
	ls := st.byName[l.Name]
	if ls == nil {
		ls = &labelStat{}
		st.byName[l.Name] = ls
	}
	ls.series++
	ls.bytes += uint64(len(l.Value))
	st.refs++
	if newPair {
		st.pairs++
	}
}

// remove uncounts l of a removed series (the caller counts the pairs that
// disappear with it).
func (st *indexStats) remove(l labels.Label) {
	ls := st.byName[l.Name]
	if ls == nil {
		return
	}
	ls.series--
	ls.bytes -= uint64(len(l.Value))
	st.refs--
	if ls.series == 0 {
		delete(st.byName, l.Name)
	}
}

// Cardinality reports the statistics of the tenant's series req selects.
// With no matcher, no time range and every series (not only the active
// ones) it reads the maintained statistics and the postings: its cost is
// the number of label names and pairs, never a walk of the series under
// the index lock (the lock is taken per label name). Otherwise it
// selects the candidate series with the postings, copies them out under
// the read lock and counts them without it.
func (v *tenantStore) Cardinality(ctx context.Context, req storage.CardinalityRequest) (storage.Cardinality, error) {
	t, err := v.st.tenantFor(v.id, false)
	if err != nil || t == nil {
		return storage.Cardinality{}, err
	}
	if req.TotalOnly {
		var c storage.Cardinality
		if req.Active {
			n, err := v.st.activeSeries(ctx, v.id)
			if err != nil {
				return c, err
			}
			c.NumSeries = uint64(n)
		} else {
			t.mu.RLock()
			c.NumSeries = uint64(len(t.all))
			t.mu.RUnlock()
		}
		c.BytesStored = v.st.tenantBytes(t.num)
		return c, nil
	}
	if !req.AllTime() {
		req.Start = max(req.Start, v.st.retentionCutoff(v.id, time.Now()))
		if mint, maxt := t.times(); req.Start <= mint && req.End >= maxt {
			req.Start, req.End = 0, 0 // the range holds every sample
		}
	}
	activeCutoff := v.st.activeCutoff(time.Now())
	if req.Active {
		n, err := v.st.activeSeries(ctx, v.id)
		if err != nil {
			return storage.Cardinality{}, err
		}
		t.mu.RLock()
		all := n >= int64(len(t.all))
		t.mu.RUnlock()
		if all {
			req.Active = false // every series is active
		}
	}
	if len(req.Matchers) == 0 && req.AllTime() && !req.Active && !req.ListSeries {
		return t.statsCardinality(req), nil
	}
	return t.selectedCardinality(req, activeCutoff), nil
}

// statsCardinality answers req (every series) from the statistics.
func (t *tenant) statsCardinality(req storage.CardinalityRequest) storage.Cardinality {
	var c storage.Cardinality
	var names []string
	var byLabel, seriesByLabel, mem []storage.Count
	c.MinTime, c.MaxTime = t.times()
	t.mu.RLock()
	c.NumSeries = uint64(len(t.all))
	c.NumLabelPairs = t.stats.pairs
	c.NumLabelNames = len(t.postings)
	c.NumLabelRefs = t.stats.refs
	for name, ls := range t.stats.byName {
		names = append(names, name)
		byLabel = append(byLabel, storage.Count{Name: name, Value: uint64(len(t.postings[name]))})
		seriesByLabel = append(seriesByLabel, storage.Count{Name: name, Value: ls.series})
		mem = append(mem, storage.Count{Name: name, Value: ls.bytes})
	}
	c.ByMetricName = t.topValuesLocked(labels.MetricName, req.Limit)
	if req.FocusLabel != "" {
		c.ByFocusLabelValue = t.topValuesLocked(req.FocusLabel, req.Limit)
	}
	for _, name := range req.LabelNames {
		lv := storage.LabelValues{Name: name, NumValues: uint64(len(t.postings[name])), Values: t.topValuesLocked(name, req.Limit)}
		if ls := t.stats.byName[name]; ls != nil {
			lv.NumSeries = ls.series
		}
		c.LabelValues = append(c.LabelValues, lv)
	}
	t.mu.RUnlock()
	c.ByLabelName = storage.TopCounts(byLabel, req.Limit)
	c.SeriesByLabel = storage.TopCounts(seriesByLabel, req.Limit)
	c.MemoryByLabel = storage.TopCounts(mem, req.Limit)

	// Pairs: one name at a time, so that new series wait for one name's
	// values at most.
	top := newTopPairs(req.Limit)
	for _, name := range names {
		t.mu.RLock()
		for val, list := range t.postings[name] {
			top.offer(name, val, uint64(len(list)))
		}
		t.mu.RUnlock()
	}
	c.ByLabelPair = top.counts()
	if c.NumSeries == 0 {
		c.MinTime, c.MaxTime = 0, 0
	}
	return c
}

// topValuesLocked is the series per value of label name, top n.
func (t *tenant) topValuesLocked(name string, n int) []storage.Count {
	top := newTopPairs(n)
	for val, list := range t.postings[name] {
		top.offer("", val, uint64(len(list)))
	}
	return top.counts()
}

// selectedCardinality answers req by counting the series it selects.
func (t *tenant) selectedCardinality(req storage.CardinalityRequest, activeCutoff int64) storage.Cardinality {
	t.mu.RLock()
	var sel []*series
	switch len(req.Matchers) {
	case 0:
		sel = slices.Clone(t.all)
	case 1:
		sel = slices.Clone(t.selectLocked(req.Matchers[0]))
	default:
		var lists [][]*series
		for _, ms := range req.Matchers {
			lists = append(lists, t.selectLocked(ms))
		}
		sel = slices.Clone(union(lists))
	}
	t.mu.RUnlock()

	// Keep the series in the time range and, for Active, the active ones.
	out := sel[:0]
	for _, s := range sel {
		if !req.AllTime() && (s.maxT.Load() < req.Start || s.minT.Load() > req.End || s.maxT.Load() == math.MinInt64) {
			continue
		}
		if maxT := s.maxT.Load(); req.Active && maxT < activeCutoff && maxT != math.MinInt64 { // the one definition (active.go)
			continue
		}
		out = append(out, s)
	}
	sel = out

	var c storage.Cardinality
	if req.ListSeries {
		for _, s := range sel {
			if req.Limit > 0 && len(c.Series) >= req.Limit {
				break
			}
			c.Series = append(c.Series, s.lset)
		}
		return c
	}
	c.NumSeries = uint64(len(sel))
	type nameAcc struct {
		values        map[string]uint64
		series, bytes uint64
	}
	acc := map[string]*nameAcc{}
	for _, s := range sel {
		s.lset.Range(func(l labels.Label) {
			a := acc[l.Name]
			if a == nil {
				a = &nameAcc{values: map[string]uint64{}}
				acc[l.Name] = a
			}
			a.values[l.Value]++
			a.series++
			a.bytes += uint64(len(l.Value))
			c.NumLabelRefs++
		})
	}
	c.NumLabelNames = len(acc)
	var byLabel, seriesByLabel, mem []storage.Count
	pairs := newTopPairs(req.Limit)
	for name, a := range acc {
		c.NumLabelPairs += len(a.values)
		byLabel = append(byLabel, storage.Count{Name: name, Value: uint64(len(a.values))})
		seriesByLabel = append(seriesByLabel, storage.Count{Name: name, Value: a.series})
		mem = append(mem, storage.Count{Name: name, Value: a.bytes})
		for val, n := range a.values {
			pairs.offer(name, val, n)
		}
	}
	values := func(name string) []storage.Count {
		top := newTopPairs(req.Limit)
		if a := acc[name]; a != nil {
			for val, n := range a.values {
				top.offer("", val, n)
			}
		}
		return top.counts()
	}
	c.ByLabelName = storage.TopCounts(byLabel, req.Limit)
	c.SeriesByLabel = storage.TopCounts(seriesByLabel, req.Limit)
	c.MemoryByLabel = storage.TopCounts(mem, req.Limit)
	c.ByLabelPair = pairs.counts()
	c.ByMetricName = values(labels.MetricName)
	if req.FocusLabel != "" {
		c.ByFocusLabelValue = values(req.FocusLabel)
	}
	for _, name := range req.LabelNames {
		lv := storage.LabelValues{Name: name, Values: values(name)}
		if a := acc[name]; a != nil {
			lv.NumValues, lv.NumSeries = uint64(len(a.values)), a.series
		}
		c.LabelValues = append(c.LabelValues, lv)
	}
	c.MinTime, c.MaxTime = timeRange(sel)
	return c
}

// timeRange is the first and last sample time of the series (0, 0 when
// none has samples). It reads each series' bounds without any lock.
func timeRange(list []*series) (mint, maxt int64) {
	mint, maxt = math.MaxInt64, math.MinInt64
	for _, s := range list {
		if hi := s.maxT.Load(); hi != math.MinInt64 {
			mint = min(mint, s.minT.Load())
			maxt = max(maxt, hi)
		}
	}
	if maxt == math.MinInt64 {
		return 0, 0
	}
	return mint, maxt
}

// topPairs keeps the n largest (name, value) counts offered, by count
// descending then name and value ascending, without building a string
// for the ones it drops. n <= 0 keeps all.
type topPairs struct {
	n int
	h pairHeap
}

type pairCount struct {
	name, value string
	count       uint64
}

func newTopPairs(n int) *topPairs { return &topPairs{n: n} }

func (t *topPairs) offer(name, value string, count uint64) {
	p := pairCount{name, value, count}
	if t.n <= 0 || len(t.h) < t.n {
		heap.Push(&t.h, p)
		return
	}
	if worse(t.h[0], p) {
		t.h[0] = p
		heap.Fix(&t.h, 0)
	}
}

// counts returns the kept pairs, best first, named "name=value" (or
// "value" for a pair offered without a name).
func (t *topPairs) counts() []storage.Count {
	list := []pairCount(t.h)
	slices.SortFunc(list, func(a, b pairCount) int {
		if worse(a, b) {
			return 1
		}
		if worse(b, a) {
			return -1
		}
		return 0
	})
	out := make([]storage.Count, 0, len(list))
	for _, p := range list {
		name := p.value
		if p.name != "" {
			name = p.name + "=" + p.value
		}
		out = append(out, storage.Count{Name: name, Value: p.count})
	}
	return out
}

// worse reports whether a ranks after b.
func worse(a, b pairCount) bool {
	if a.count != b.count {
		return a.count < b.count
	}
	if c := cmp.Compare(a.name, b.name); c != 0 {
		return c > 0
	}
	return a.value > b.value
}

// pairHeap is a min-heap by rank: the worst kept pair on top.
type pairHeap []pairCount

func (h pairHeap) Len() int           { return len(h) }
func (h pairHeap) Less(i, j int) bool { return worse(h[i], h[j]) }
func (h pairHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *pairHeap) Push(x any)        { *h = append(*h, x.(pairCount)) }
func (h *pairHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// tenantBytes estimates the bytes tenant num's keys take on disk, from
// Badger's table metadata (no key is read): the tables whose keys all
// belong to the tenant count whole; a table spanning several tenants of
// one key kind is split evenly between the tenants in its key range.
// Tables between kinds (rare: at most one per kind boundary) and the value
// log (values above the value threshold, which chunks stay under) are not
// counted. The memtables are not either: data reaches the tables within
// a memtable's size.
func (s *Store) tenantBytes(num uint32) uint64 {
	var total float64
	for _, ti := range s.db.Tables() {
		lk, lt, lok := keyTenant(ti.Left)
		rk, rt, rok := keyTenant(ti.Right)
		if !lok || !rok || lk != rk || num < lt || num > rt {
			continue
		}
		total += float64(ti.OnDiskSize) / float64(rt-lt+1)
	}
	return uint64(total)
}

// keyTenant reads the kind and tenant number a key starts with.
func keyTenant(key []byte) (kind byte, num uint32, ok bool) {
	p := tenantPrefix(kindChunk, 0)
	if len(key) < len(p) {
		return 0, 0, false
	}
	kind = key[0]
	switch kind {
	case kindSeries, kindHead, kindChunk:
	default:
		return 0, 0, false
	}
	for _, b := range key[1:len(p)] {
		num = num<<8 | uint32(b)
	}
	return kind, num, true
}
