package storage

import (
	"fmt"
	"hash/maphash"
	"math"
	"sync"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/luminate-io/luminate/tenancy"
)

// StartZeroCache remembers, for a bounded number of series, the last start
// timestamp WithStartZero turned into a zero sample, so that the samples
// that follow with the same start timestamp (every sample of a counter
// until it resets) do not inject it again: a zero at an old timestamp on
// every write would force an out-of-order merge on every write. It also
// remembers the newest sample appended, so that a zero sample is appended
// only after it, as Prometheus' head does: never over a stored sample.
//
// It holds at most twice its size: two generations of at most size
// series each; when the newer is full, the older is dropped. A series
// forgotten that way gets its zero sample once more, which is harmless
// (the store keeps one sample per timestamp). Safe for concurrent use.
type StartZeroCache struct {
	size int
	seed maphash.Seed // of the tenants' hashes

	mu       sync.Mutex
	cur, old map[uint64]zeroState // by series key
}

// zeroState is what WithStartZero knows of a series: the start timestamp
// it last injected (or tried to), and the newest sample appended.
type zeroState struct{ st, last int64 }

// NewStartZeroCache returns a cache of size series (at least 1).
func NewStartZeroCache(size int) *StartZeroCache {
	size = max(size, 1)
	return &StartZeroCache{size: size, seed: maphash.MakeSeed(), cur: make(map[uint64]zeroState), old: make(map[uint64]zeroState)}
}

// state is what the cache knows of the series of key.
func (c *StartZeroCache) state(key uint64) (zeroState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.cur[key]; ok {
		return v, true
	}
	v, ok := c.old[key]
	return v, ok
}

// record remembers the series of a committed batch.
func (c *StartZeroCache) record(done map[uint64]zeroState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, s := range done {
		if _, ok := c.cur[key]; !ok && len(c.cur) >= c.size {
			c.old, c.cur = c.cur, make(map[uint64]zeroState)
		}
		c.cur[key] = s
	}
}

// Len is how many series the cache remembers.
func (c *StartZeroCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.cur)
	for k := range c.old {
		if _, ok := c.cur[k]; !ok {
			n++
		}
	}
	return n
}

// WithStartZero returns an appender that turns start timestamps into zero
// samples before passing each sample to app, as Prometheus does with its
// created-timestamp-zero-ingestion feature: when st is set and before t,
// it first appends at st a float 0, or for a histogram an empty histogram
// of the same schema, zero threshold and custom values with
// CounterResetHint CounterReset (what tsdb's head appender appends), once
// per series and start timestamp: the series of tenant whose st is in
// seen are not injected again. As in Prometheus' head, the zero sample
// goes only after the newest sample appended to the series, never over
// one: a start timestamp at or before it is not injected. A zero sample
// the store refuses (out of bounds, or out of order where the store
// refuses that) is dropped silently; stale markers get none. What was
// appended is remembered in seen when the batch commits. A series seen
// does not know (evicted, or before a restart) gets its zero whenever st
// is before t.
//
// Series are told apart by a 64-bit hash of the tenant and labels; a
// collision only costs a zero sample not injected.
func WithStartZero(app promstorage.AppenderV2, seen *StartZeroCache, tenant tenancy.ID) promstorage.AppenderV2 {
	return &startZeroAppender{AppenderV2: app, seen: seen, tenant: maphash.String(seen.seed, string(tenant))}
}

type startZeroAppender struct {
	promstorage.AppenderV2
	seen   *StartZeroCache
	tenant uint64
	done   map[uint64]zeroState // appended in this batch, by series key
}

func (a *startZeroAppender) Append(ref promstorage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AOptions) (promstorage.SeriesRef, error) {
	if st != 0 && !stale(v, h, fh) {
		key := ls.Hash() ^ (a.tenant * 0x9e3779b97f4a7c15)
		s, known := a.state(key)
		inject := st < t && st != s.st && (!known || st > s.last)
		s.last = max(s.last, t)
		if inject {
			s.st = st
			var zref promstorage.SeriesRef
			var err error
			switch {
			case fh != nil:
				zref, err = a.AppenderV2.Append(ref, ls, 0, st, 0, nil, &histogram.FloatHistogram{
					CounterResetHint: histogram.CounterReset,
					Schema:           fh.Schema,
					ZeroThreshold:    fh.ZeroThreshold,
					CustomValues:     fh.CustomValues,
				}, promstorage.AOptions{})
			case h != nil:
				zref, err = a.AppenderV2.Append(ref, ls, 0, st, 0, &histogram.Histogram{
					CounterResetHint: histogram.CounterReset,
					Schema:           h.Schema,
					ZeroThreshold:    h.ZeroThreshold,
					CustomValues:     h.CustomValues,
				}, nil, promstorage.AOptions{})
			default:
				zref, err = a.AppenderV2.Append(ref, ls, 0, st, 0, nil, nil, promstorage.AOptions{})
			}
			if err == nil {
				ref = zref
			}
			// Refused or not, it is not tried again for this st: the store
			// refuses it the same way next time.
		}
		if a.done == nil {
			a.done = make(map[uint64]zeroState)
		}
		a.done[key] = s
	}
	return a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
}

// state is what is known of the series of key, from this batch or a
// committed one.
func (a *startZeroAppender) state(key uint64) (zeroState, bool) {
	if v, ok := a.done[key]; ok {
		return v, true
	}
	return a.seen.state(key)
}

// AppendExemplars passes exemplars to app's AppendExemplars, when it has
// one: exemplars have no start timestamp.
func (a *startZeroAppender) AppendExemplars(ref promstorage.SeriesRef, ls labels.Labels, es []exemplar.Exemplar) (promstorage.SeriesRef, error) {
	e, ok := a.AppenderV2.(promstorage.ExemplarAppenderV2)
	if !ok {
		return ref, fmt.Errorf("%T does not append exemplars alone", a.AppenderV2)
	}
	return e.AppendExemplars(ref, ls, es)
}

func (a *startZeroAppender) Commit() error {
	err := a.AppenderV2.Commit()
	if err == nil {
		a.seen.record(a.done)
	}
	clear(a.done)
	return err
}

func (a *startZeroAppender) Rollback() error {
	clear(a.done)
	return a.AppenderV2.Rollback()
}

func stale(v float64, h *histogram.Histogram, fh *histogram.FloatHistogram) bool {
	switch {
	case fh != nil:
		return value.IsStaleNaN(fh.Sum)
	case h != nil:
		return value.IsStaleNaN(h.Sum)
	}
	return math.Float64bits(v) == value.StaleNaN
}
