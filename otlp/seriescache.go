package otlp

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"unsafe"
)

// storeHandles are the Badger appender's series handles (see its
// SeriesHandle): a series appended to once by its labels is appended to
// later by its handle, without building, validating, hashing or looking
// up its labels.
type storeHandles interface {
	HandleOwner() uint64
	SeriesHandle() unsafe.Pointer
	AppendHandle(h unsafe.Pointer, st, t int64, v float64) bool
}

// seriesCache remembers, across requests, the store's handles of the
// series of each data point the fast path appended, by a key of what the
// point's labels are made of (the tenant's index, the translation, the
// resource's, scope's and metric's resolved labels and names, the point's
// attributes as sent, a histogram's bounds): a classic histogram point's
// sum, count and bucket series under one key. The steady state of OTLP,
// the same series export after export, then costs one lookup a point. It
// is remote write's series cache (remotewrite/seriescache.go) for OTLP:
// a 128-bit key of two hash/maphash hashes with seeds chosen at start, so
// a sender cannot aim for a collision, and only points whose every series
// passed validation and was stored are cached, so a hit needs no
// validation. Bounded: a shard holds at most its share of size points;
// full, it is emptied. Safe for concurrent use.
type seriesCache struct {
	seedA, seedB maphash.Seed
	perShard     int
	shards       [cacheShards]cacheShard
	// hits counts the points appended by their handles (for tests).
	hits atomic.Int64
}

const cacheShards = 64

// cacheShard holds the points of one series (sums, gauges) apart, their
// handle in the map's slot: one cache miss fewer.
type cacheShard struct {
	mu  sync.RWMutex
	one map[cacheKey]unsafe.Pointer
	m   map[cacheKey][]unsafe.Pointer
	_   [32]byte // neighbouring shards' locks on separate cache lines
}

type cacheKey struct{ a, b uint64 }

// newSeriesCache returns a cache of about size series (a point of k
// series counts k), nil if size is not positive.
func newSeriesCache(size int) *seriesCache {
	if size <= 0 {
		return nil
	}
	c := &seriesCache{seedA: maphash.MakeSeed(), seedB: maphash.MakeSeed(), perShard: max(size/cacheShards, 1)}
	for i := range c.shards {
		c.shards[i].one = map[cacheKey]unsafe.Pointer{}
		c.shards[i].m = map[cacheKey][]unsafe.Pointer{}
	}
	return c
}

func (c *seriesCache) shard(k cacheKey) *cacheShard { return &c.shards[k.a%cacheShards] } // b is odd

// get returns the handles of the point of key k, of n series, nil if not
// cached; hs backs the handle of a point of one series.
func (c *seriesCache) get(k cacheKey, n int, hs *[1]unsafe.Pointer) []unsafe.Pointer {
	s := c.shard(k)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if n == 1 {
		if hs[0] = s.one[k]; hs[0] == nil {
			return nil
		}
		return hs[:]
	}
	return s.m[k]
}

// put caches the handles hs of the point of key k (it keeps hs if there
// are more than one).
func (c *seriesCache) put(k cacheKey, hs []unsafe.Pointer) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.one)+len(s.m)*len(hs) >= c.perShard {
		clear(s.one)
		clear(s.m)
	}
	if len(hs) == 1 {
		s.one[k] = hs[0]
		return
	}
	s.m[k] = hs
}

// pointKeys builds a cache key: what it is made of is appended to buf,
// then hashed with each seed.
type pointKeys struct {
	buf []byte
}

func (p *pointKeys) reset() { p.buf = p.buf[:0] }

// str appends s, with its length (so that no two sequences of strings
// append the same bytes).
func (p *pointKeys) str(s string) {
	p.buf = binary.AppendUvarint(p.buf, uint64(len(s)))
	p.buf = append(p.buf, s...)
}

func (p *pointKeys) u64(v uint64) { p.buf = binary.LittleEndian.AppendUint64(p.buf, v) }

func (p *pointKeys) key(c *seriesCache) cacheKey {
	return cacheKey{maphash.Bytes(c.seedA, p.buf), maphash.Bytes(c.seedB, p.buf) | 1}
}
