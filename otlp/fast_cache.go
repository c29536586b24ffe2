package otlp

import (
	"math"
	"slices"
	"unsafe"

	"github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
)

// handleSink is the handler's appender (appender.go) when the store hands
// out series handles: the fast path then appends the points of series it
// cached by their handles.
type handleSink interface {
	cacheOwner() uint64
	lastHandle() unsafe.Pointer
	appendHandles(hs []unsafe.Pointer, st, t int64, vs []float64, cont bool) int
	seriesCache() *seriesCache
}

func (a *appender) seriesCache() *seriesCache { return a.cache }

// startCache readies the series cache for appending to app, if app has
// one and the settings are ones the keys cover.
func (st *fastState) startCache(app any, s *prometheusremotewrite.Settings) {
	st.cache, st.sink, st.owner = nil, nil, 0
	sink, ok := app.(handleSink)
	if !ok || len(s.ExternalLabels) > 0 {
		return
	}
	c := sink.seriesCache()
	if c == nil {
		return
	}
	if st.owner = sink.cacheOwner(); st.owner == 0 {
		return
	}
	st.cache, st.sink = c, sink
	if st.families == nil {
		st.families = map[string]struct{}{}
	}
	clear(st.families)
}

func bit(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// startMetric computes the key of what the labels of m's series take from
// the request beyond their points: the tenant's index, the translation,
// the resource's job, instance and promoted labels, the scope's labels
// and the metric's names and type and unit labels. It reports whether
// m's points may be appended by handle: the first point of each family
// in a request is appended by its labels, which carry the metadata.
func (st *fastState) startMetric(res *fastRes, sc *fastScope, m *fastMetric, s *prometheusremotewrite.Settings) (byHandle bool) {
	pk := &st.pk
	pk.reset()
	pk.u64(st.owner)
	pk.str(st.key.namespace)
	pk.u64(bit(st.key.suffixes) | bit(st.key.utf8)<<1 | bit(st.key.underscore)<<2 | bit(st.key.multi)<<3 |
		bit(s.EnableTypeAndUnitLabels)<<4 | bit(s.PromoteResourceAttributes != nil)<<5 | bit(sc.promote)<<6 | bit(m.nhcb)<<7 | uint64(m.kind)<<8)
	pk.str(res.job)
	pk.str(res.inst)
	for _, l := range st.ctxLabels[res.pr0:res.pr1] {
		pk.str(l.Name)
		pk.str(l.Value)
	}
	if sc.promote {
		for _, l := range st.ctxLabels[sc.sl0:sc.sl1] {
			pk.str(l.Name)
			pk.str(l.Value)
		}
		pk.str(sc.name)
		pk.str(sc.version)
		pk.str(sc.schemaURL)
	}
	pk.str(m.names.family)
	pk.str(m.typeLabel)
	pk.str(m.unitLabel)
	pk.str(m.meta.Unit)
	st.ctxKey = pk.key(st.cache)
	if _, ok := st.families[m.names.family]; ok {
		return true
	}
	st.families[m.names.family] = struct{}{}
	return false
}

// pointKey is the cache key of point p of the metric startMetric began:
// its attributes as sent and, for a classic histogram, its bounds.
func (st *fastState) pointKey(m *fastMetric, p *fastPoint) cacheKey {
	pk := &st.pk
	pk.reset()
	pk.u64(st.ctxKey.a)
	pk.u64(st.ctxKey.b)
	for _, kv := range st.kvs[p.kv0:p.kv1] {
		pk.str(kv.key)
		pk.u64(uint64(kv.kind))
		pk.str(kv.str)
		pk.u64(kv.num)
	}
	if m.kind == fastHistogram {
		pk.u64(bit(p.hasSum))
		pk.u64(uint64(p.bc1 - p.bc0))
		pk.u64(uint64(p.eb1 - p.eb0))
		for _, b := range st.bounds[p.eb0:p.eb1] {
			pk.u64(math.Float64bits(b))
		}
	}
	return pk.key(st.cache)
}

// remember caches the handles the sink collected in st.hbuf for the
// series of the point of key k, if it has one for each of its n series.
func (st *fastState) remember(k cacheKey, n int) {
	if len(st.hbuf) != n || slices.Contains(st.hbuf, nil) {
		return
	}
	hs := st.hbuf
	if n > 1 {
		hs = slices.Clone(hs)
	}
	st.cache.put(k, hs)
}
