package remotewrite

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"slices"
	"sync"
	"unsafe"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	promstorage "github.com/prometheus/prometheus/storage"
)

// handleAppender is a store appender that hands out handles of the
// series it appends to (the Badger store's does): a series seen in an
// earlier request is appended to by its handle, without validating,
// building, hashing or looking up its labels again. See the Badger
// appender's SeriesHandle for the contract.
type handleAppender interface {
	// HandleOwner identifies what the handles belong to (the tenant's
	// index in this store), a random number unique to it: handles of
	// another owner must not be used. 0: no handles.
	HandleOwner() uint64
	// SeriesHandle is the handle of the series the last successful
	// Append (with labels) appended to; nil when it has none yet.
	SeriesHandle() unsafe.Pointer
	// AppendHandle queues a float sample to the series of handle h;
	// false, queuing nothing, when h is stale.
	AppendHandle(h unsafe.Pointer, st, t int64, v float64) bool
	// AppendHistogramHandle queues an integer (hist) or float (fh)
	// histogram sample, already validated, to the series of handle h;
	// false, queuing nothing, when h is stale or the appender was not
	// told that its histograms are validated.
	AppendHistogramHandle(h unsafe.Pointer, st, t int64, hist *histogram.Histogram, fh *histogram.FloatHistogram) bool
}

// seriesCache remembers, across requests, the store's handle of each
// series by the labels as the sender sent them: in remote write 1.0 the
// bytes of its Label fields, which Prometheus sends the same in every
// request; in remote write 2.0, whose label references change from request
// to request with the symbols table, the labels they resolve to, encoded
// as 1.0 Label fields (labelsKey), so that a series sent over either
// protocol has the same key. Thus the steady state of remote write, the
// same series request after request, skips label validation, the labels'
// construction and hashing, and the store's index lookup: what
// VictoriaMetrics does with its cache of series ids keyed by the raw
// metric name bytes (lib/storage tsidCache).
//
// A key is a 128-bit hash (two hash/maphash hashes with seeds chosen at
// start) of the raw labels, mixed with the store's owner of the handle (a
// random number per tenant index, so a key never finds the handle of
// another tenant or store): a sender cannot aim for a collision without
// knowing the seeds, and a chance collision, about n^2/2^129 for n series,
// would have to fall within one tenant. Only labels that passed validation
// and that the store accepted are cached, so a hit needs no validation:
// the same bytes validate the same.
//
// Each shard is an open-addressing table of 24-byte slots (key and
// handle, no map overhead: 32 to 48 bytes per series at 75% load at most), so that a lookup is
// one cache miss. It is bounded: a shard holds at most its share of size
// entries; full, it is emptied, and its series are looked up by their
// labels on their next sample (then cached again). Safe for concurrent use.
type seriesCache struct {
	seedA, seedB maphash.Seed
	perShard     int // entries of one shard, at most
	shards       [cacheShards]cacheShard
}

const cacheShards = 256

type cacheShard struct {
	mu    sync.RWMutex
	slots []cacheSlot // linear probing from slot(a); a zero key is a free slot
	used  int         // slots with a key
	_     [24]byte    // keep neighbouring shards' locks on separate cache lines
}

// cacheKey is a key; never both halves 0 (key sets a bit of b).
type cacheKey struct{ a, b uint64 }

// cacheSlot is a key and its handle (nil: forgotten, the key's slot kept
// for the handle it gets again).
type cacheSlot struct {
	key    cacheKey
	handle unsafe.Pointer
}

// cacheMaxLoad is the most slots in use of a table, in 1/8ths.
const cacheMaxLoad = 6

// newSeriesCache returns a cache of at most size entries; nil (no cache)
// when size is 0 or less.
func newSeriesCache(size int) *seriesCache {
	if size <= 0 {
		return nil
	}
	return &seriesCache{seedA: maphash.MakeSeed(), seedB: maphash.MakeSeed(), perShard: max(1, size/cacheShards)}
}

// key is the key of raw labels whose handles owner gives out.
func (c *seriesCache) key(owner uint64, raw []byte) cacheKey {
	return cacheKey{maphash.Bytes(c.seedA, raw) ^ owner, (maphash.Bytes(c.seedB, raw) ^ owner*0x9e3779b97f4a7c15) | 1}
}

func (c *seriesCache) shard(k cacheKey) *cacheShard { return &c.shards[shardOf(k)] }

// shardOf is the shard of k: the top bits of b (a places it in the shard).
func shardOf(k cacheKey) int { return int(k.b >> 56) }

// find returns the slot of k in sh, or of the free slot where k goes.
// Callers hold sh.mu, and sh has free slots.
func (sh *cacheShard) find(k cacheKey) *cacheSlot {
	hi, _ := bits.Mul64(k.a, uint64(len(sh.slots)))
	for i := int(hi); ; i++ {
		if i == len(sh.slots) {
			i = 0
		}
		if s := &sh.slots[i]; s.key == k || s.key == (cacheKey{}) {
			return s
		}
	}
}

// get returns the handle cached for k, or nil.
func (c *seriesCache) get(k cacheKey) unsafe.Pointer {
	sh := c.shard(k)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if len(sh.slots) == 0 {
		return nil
	}
	return sh.find(k).handle // nil in a free slot
}

// getAll sets handles[i] to the handle cached for keys[i], for each i of
// order, all of shard sh, under one read lock.
func (c *seriesCache) getAll(sh *cacheShard, keys []cacheKey, order []int32, handles []unsafe.Pointer) {
	sh.mu.RLock()
	if len(sh.slots) > 0 {
		for _, i := range order {
			handles[i] = sh.find(keys[i]).handle
		}
	}
	sh.mu.RUnlock()
}

// put caches handle for k.
func (c *seriesCache) put(k cacheKey, handle unsafe.Pointer) {
	sh := c.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if len(sh.slots) > 0 {
		if s := sh.find(k); s.key == k {
			s.handle = handle
			return
		}
	}
	if sh.used >= c.perShard { // full: start over
		clear(sh.slots)
		sh.used = 0
	}
	if (sh.used+1)*8 > len(sh.slots)*cacheMaxLoad {
		sh.grow(c.perShard)
	}
	s := sh.find(k)
	*s = cacheSlot{key: k, handle: handle}
	sh.used++
}

// grow makes sh's table half as large again, at most what limit entries
// need.
func (sh *cacheShard) grow(limit int) {
	n := max(min(len(sh.slots)*3/2, limit*8/cacheMaxLoad+1), 16)
	old := sh.slots
	sh.slots = make([]cacheSlot, n)
	for i := range old {
		if old[i].key != (cacheKey{}) {
			*sh.find(old[i].key) = old[i]
		}
	}
}

// forget drops the handle of k (it went stale).
func (c *seriesCache) forget(k cacheKey) {
	sh := c.shard(k)
	sh.mu.Lock()
	if len(sh.slots) > 0 {
		if s := sh.find(k); s.key == k {
			s.handle = nil
		}
	}
	sh.mu.Unlock()
}

// len is how many keys the cache holds.
func (c *seriesCache) len() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		n += sh.used
		sh.mu.RUnlock()
	}
	return n
}

// requestCache is the series cache as one request of a tenant uses it,
// through its appender; the zero value caches nothing.
type requestCache struct {
	c     *seriesCache
	app   handleAppender
	owner uint64
}

// seriesCache returns the series cache for a request appending through
// app, an appender of one tenant's view: none when app has no handles (another store, or
// wrapped, as under --ingest.created-timestamp-zero-ingestion) or the
// cache is off.
func (g *Ingester) seriesCache(app promstorage.AppenderV2) requestCache {
	fast, ok := app.(handleAppender)
	if !ok || g.series == nil {
		return requestCache{}
	}
	owner := fast.HandleOwner()
	if owner == 0 {
		return requestCache{}
	}
	return requestCache{c: g.series, app: fast, owner: owner}
}

// cachedSeries is what the series cache found for the series of one
// request, by index: its key (cacheable: the series may be cached) and
// handle (nil: not cached), and the order in which to look them up.
type cachedSeries struct {
	keys      []cacheKey
	cacheable []bool
	handles   []unsafe.Pointer
	order     []int32 // series indexes, by shard
	counts    [cacheShards + 1]int32
}

// maxCachedSeries is the most series whose lookups a writeState keeps
// the memory of (about 40 bytes each) between requests.
const maxCachedSeries = 100_000

func (c *cachedSeries) reset(n int) {
	if cap(c.keys) > maxCachedSeries && n <= maxCachedSeries {
		*c = cachedSeries{}
	}
	c.keys = slices.Grow(c.keys[:0], n)[:n]
	c.cacheable = slices.Grow(c.cacheable[:0], n)[:n]
	c.handles = slices.Grow(c.handles[:0], n)[:n]
	c.order = slices.Grow(c.order[:0], n)[:n]
	clear(c.handles)
}

// lookup finds the handles of the series of a request (decoded into st)
// that are cached, for entry: by their raw labels (remote write 1.0), or,
// with st.keyLabels, by their labels (labelsKey). The lookups are made by
// shard, under one read lock each, so that they do not wait on one
// another: each is a cache miss, and a lock's atomic operation would keep
// the processor from starting the next before the last is done.
//
// Then it parses the labels the decoder left unparsed (Decoder.
// deferLabels) of every series it found no handle for; an error is the
// request's, as decoding it would have returned it, before anything was
// appended.
func (r *requestCache) lookup(st *writeState, series []TimeSeries, meta metaFunc) error {
	st.dec.ReserveLabels()
	if r.c == nil {
		for i := range series {
			if err := st.dec.ParseLabels(&series[i]); err != nil {
				return err
			}
		}
		return nil
	}
	c := &st.cached
	c.reset(len(series))
	clear(c.counts[:])
	for i := range series {
		ts := &series[i]
		c.cacheable[i] = false
		if len(ts.Samples)+len(ts.Histograms) == 0 || len(ts.Exemplars) > 0 {
			continue
		}
		var raw []byte
		if st.keyLabels {
			st.keyBuf = labelsKey(st.keyBuf[:0], ts.Labels)
			raw = st.keyBuf
		} else if raw = st.dec.RawLabels(ts); raw == nil {
			continue
		}
		if meta != nil {
			if err := st.dec.ParseLabels(ts); err != nil {
				return err
			}
			if _, _, ok := meta(ts, metricName(ts.Labels)); ok {
				continue
			}
		}
		c.keys[i], c.cacheable[i] = r.c.key(r.owner, raw), true
		c.counts[shardOf(c.keys[i])+1]++
	}
	// A counting sort of the cacheable series by shard.
	for s := 1; s <= cacheShards; s++ {
		c.counts[s] += c.counts[s-1]
	}
	n := int(c.counts[cacheShards])
	next := c.counts
	for i := range series {
		if c.cacheable[i] {
			s := shardOf(c.keys[i])
			c.order[next[s]] = int32(i)
			next[s]++
		}
	}
	for lo := 0; lo < n; {
		s := shardOf(c.keys[c.order[lo]])
		hi := int(c.counts[s+1])
		r.c.getAll(&r.c.shards[s], c.keys, c.order[lo:hi], c.handles)
		lo = hi
	}
	for i := range series {
		if c.handles[i] == nil {
			if err := st.dec.ParseLabels(&series[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// entry returns the key of series i of the request st holds, and whether
// it may be cached.
func (r *requestCache) entry(st *writeState, i int) (cacheKey, bool) {
	if r.c == nil || !st.cached.cacheable[i] {
		return cacheKey{}, false
	}
	return st.cached.keys[i], true
}

// append appends the samples and histograms of ts, series i of the
// request, by the handle lookup found for it, if any, checking each
// against win and each histogram with writeState.histogram (rejections go
// to reject). It returns what it stored, and from where on the samples
// and the histograms are left to append with the labels: 0 and 0 when key
// is not cached, or when the handle went stale at the first sample (then
// it is forgotten); len(ts.Samples) and len(ts.Histograms) when all were
// handled.
func (r *requestCache) append(st *writeState, key cacheKey, ts *TimeSeries, win Window, i int, reject func(int, *Rejection, int)) (stored written, from, hfrom int) {
	h := st.cached.handles[i]
	if h == nil {
		return written{}, 0, 0
	}
	// labels parses the series' labels (they parsed before, with these
	// very bytes) to name it in a rejection, or to append with them.
	labels := func() bool { return st.dec.ParseLabels(ts) == nil }
	for j := range ts.Samples {
		s := &ts.Samples[j]
		if win.Check(nil, s.Timestamp) != nil {
			if labels() {
				reject(i, asRejection(win.Check(ts.Labels, s.Timestamp)), 1)
				continue
			}
			return stored, j, 0 // cannot be; the labels' path reports it
		}
		if !r.app.AppendHandle(h, ts.StartTimestamp(s.StartTimestamp), s.Timestamp, s.Value) {
			r.c.forget(key)
			if !labels() {
				return stored, len(ts.Samples), len(ts.Histograms) // cannot be: the bytes parsed before
			}
			return stored, j, 0
		}
		stored.samples++
	}
	for j := range ts.Histograms {
		hp := &ts.Histograms[j]
		if win.Check(nil, hp.Timestamp) != nil {
			if labels() {
				reject(i, asRejection(win.Check(ts.Labels, hp.Timestamp)), 1)
				continue
			}
			return stored, len(ts.Samples), j
		}
		hist, fh, err := st.histogram(hp)
		if err != nil {
			if labels() {
				reject(i, invalidHistogram(ts.Labels, hp, err), 1)
				continue
			}
			st.untakeHistogram(hp) // the labels' path converts it again
			return stored, len(ts.Samples), j
		}
		if !r.app.AppendHistogramHandle(h, ts.StartTimestamp(hp.StartTimestamp), hp.Timestamp, hist, fh) {
			st.untakeHistogram(hp) // the labels' path converts it again
			r.c.forget(key)
			if !labels() {
				return stored, len(ts.Samples), len(ts.Histograms)
			}
			return stored, len(ts.Samples), j
		}
		stored.histograms++
	}
	return stored, len(ts.Samples), len(ts.Histograms)
}

// put caches, for key, the handle of the series the appender last appended
// to with its labels.
func (r *requestCache) put(key cacheKey) {
	if h := r.app.SeriesHandle(); h != nil {
		r.c.put(key, h)
	}
}

// labelsKey appends to dst the labels ls as the Label fields of a remote
// write 1.0 TimeSeries (each a Label message of a name and a value): what
// Decoder.RawLabels returns for a 1.0 series of those labels, which parse
// back to ls, so that the key of a 2.0 series names the same labels as the
// same key of a 1.0 series.
func labelsKey(dst []byte, ls []Label) []byte {
	for _, l := range ls {
		n, v := len(l.Name), len(l.Value)
		dst = append(dst, 0x0a) // TimeSeries.labels, length-delimited
		dst = binary.AppendUvarint(dst, uint64(1+uvarintLen(n)+n+1+uvarintLen(v)+v))
		dst = append(dst, 0x0a) // Label.name
		dst = binary.AppendUvarint(dst, uint64(n))
		dst = append(dst, l.Name...)
		dst = append(dst, 0x12) // Label.value
		dst = binary.AppendUvarint(dst, uint64(v))
		dst = append(dst, l.Value...)
	}
	return dst
}

// uvarintLen is the length of n as a varint.
func uvarintLen(n int) int { return (bits.Len64(uint64(n)|1) + 6) / 7 }

// metricName is the value of __name__ in ls, or "".
func metricName(ls []Label) string {
	for _, l := range ls {
		if l.Name == model.MetricNameLabel {
			return l.Value
		}
	}
	return ""
}
