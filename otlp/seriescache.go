package otlp

import (
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

type cacheShard struct {
	mu sync.RWMutex
	m  map[cacheKey][]unsafe.Pointer
	_  [40]byte // neighbouring shards' locks on separate cache lines
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
		c.shards[i].m = map[cacheKey][]unsafe.Pointer{}
	}
	return c
}

func (c *seriesCache) shard(k cacheKey) *cacheShard { return &c.shards[k.b%cacheShards] }

// get returns the handles of the point of key k, nil if not cached.
func (c *seriesCache) get(k cacheKey) []unsafe.Pointer {
	s := c.shard(k)
	s.mu.RLock()
	hs := s.m[k]
	s.mu.RUnlock()
	return hs
}

// put caches hs, which it keeps, under k.
func (c *seriesCache) put(k cacheKey, hs []unsafe.Pointer) {
	s := c.shard(k)
	s.mu.Lock()
	if len(s.m) >= c.perShard/max(len(hs), 1) {
		clear(s.m)
	}
	s.m[k] = hs
	s.mu.Unlock()
}

// pointKeys builds cache keys: Reset with the context's seed material,
// then the point's.
type pointKeys struct {
	a, b maphash.Hash
}

func (p *pointKeys) reset(c *seriesCache) {
	p.a.SetSeed(c.seedA)
	p.b.SetSeed(c.seedB)
}

func (p *pointKeys) str(s string) {
	p.a.WriteString(s)
	p.b.WriteString(s)
	p.u64(uint64(len(s)))
}

func (p *pointKeys) u64(v uint64) {
	var b [8]byte
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	p.a.Write(b[:])
	p.b.Write(b[:])
}

func (p *pointKeys) key() cacheKey { return cacheKey{p.a.Sum64(), p.b.Sum64() | 1} }
