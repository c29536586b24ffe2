package badger

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

type pendingSample struct {
	ser     *series
	pending int // index into appender.newLabels when ser is nil
	sample
}

// appender batches one tenant's samples until Commit. Not goroutine-safe.
type appender struct {
	st  *Store
	id  tenancy.ID
	t   *tenant
	err error

	samples   []pendingSample
	newLabels []labels.Labels
	newHashes []uint64
	newByHash map[uint64][]int

	aux auxPending // exemplars and metadata (exemplars.go)

	hists     histCopies // the store's copies of the batch's histograms
	validated bool       // the caller checks its histograms (HistogramsValidated)

	last *series // the existing series the last add found, for SeriesHandle
}

var appenderPool = sync.Pool{New: func() any { return &appender{} }}

func (s *Store) newAppender(id tenancy.ID) *appender {
	a := appenderPool.Get().(*appender)
	a.st, a.id = s, id
	return a
}

func (a *appender) release() {
	clear(a.samples)
	a.samples = a.samples[:0]
	a.newLabels = a.newLabels[:0]
	a.newHashes = a.newHashes[:0]
	clear(a.newByHash)
	a.aux.reset()
	a.hists.reset()
	a.st, a.t, a.err, a.validated, a.last = nil, nil, nil, false, nil
	appenderPool.Put(a)
}

// appendHistogramST queues an integer (h) or a float (fh) histogram
// sample with its start timestamp st (0: unknown), checked as Prometheus
// checks them and copied: the caller may reuse them. When both are given
// the float histogram is kept, as in Prometheus' head. The returned
// reference is always 0.
func (a *appender) appendHistogramST(_ promstorage.SeriesRef, lset labels.Labels, st, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (promstorage.SeriesRef, error) {
	smp := sample{st: st, t: t}
	var err error
	switch {
	case fh != nil:
		if a.validated {
			smp.fh = a.hists.floatHistogram(fh)
		} else if err = fh.Validate(); err == nil {
			smp.fh = a.hists.floatHistogram(fh)
		}
	case h != nil:
		if a.validated {
			smp.h = a.hists.histogram(h)
		} else if err = h.Validate(); err == nil {
			smp.h = a.hists.histogram(h)
		}
	default:
		return 0, errors.New("histogram sample without a histogram")
	}
	if err != nil {
		return 0, apierror.Wrap(apierror.InvalidArgument, err, fmt.Sprintf("series %s: invalid native histogram", lset.String()))
	}
	return 0, a.add(lset, smp)
}

// add queues one sample of lset.
func (a *appender) add(lset labels.Labels, smp sample) error {
	if a.st == nil {
		return errors.New("appender used after Commit or Rollback")
	}
	a.last = nil
	if lset.Has(tenancy.Label) {
		return fmt.Errorf("series %s: %w", lset.String(), storage.ErrTenantLabel)
	}
	if lset.IsEmpty() {
		return errors.New("series without labels")
	}
	if a.t == nil {
		t, err := a.st.tenantFor(a.id, true)
		if err != nil {
			return err
		}
		a.t = t
	}
	h := lset.Hash()
	if ser := a.t.lookup(h, lset); ser != nil {
		a.samples = append(a.samples, pendingSample{ser: ser, sample: smp})
		a.last = ser
		return nil
	}
	for _, i := range a.newByHash[h] {
		if labels.Equal(a.newLabels[i], lset) {
			a.samples = append(a.samples, pendingSample{pending: i, sample: smp})
			return nil
		}
	}
	if a.st.cfg.SeriesLimits != nil {
		// Only a series that will be active counts (active.go): backfilled
		// history is no new active series.
		if limit := a.st.cfg.SeriesLimits(a.id); limit > 0 && smp.t >= a.st.activeCutoff(time.Now()) {
			if n := int(a.st.activeForLimit(a.t)); n+len(a.newLabels) >= limit { // active.go
				return storage.SeriesLimitError(a.id, n, limit, lset.String())
			}
		}
	}
	if a.newByHash == nil {
		a.newByHash = map[uint64][]int{}
	}
	i := len(a.newLabels)
	a.newLabels = append(a.newLabels, lset.Copy()) // the caller may reuse its labels' memory
	a.newHashes = append(a.newHashes, h)
	a.newByHash[h] = append(a.newByHash[h], i)
	a.samples = append(a.samples, pendingSample{pending: i, sample: smp})
	return nil
}

// Commit makes the queued samples durable, and visible: it returns once
// the WAL record of the batch is on stable storage. While the record is
// synced it appends the samples to the heads (memory only), so that the
// fsync's wait overlaps that work: a query may see the samples a moment
// before Commit returns. What writes to Badger (chunks sealed, out-of-order
// merges) waits for the sync. Should the sync fail, Commit fails and
// nothing is acknowledged; the samples stay in the heads (a retry finds
// them there, a duplicate) and reach Badger with the next checkpoint.
func (a *appender) Commit() error {
	if a.st == nil {
		return errors.New("appender used after Commit or Rollback")
	}
	defer a.release()
	if len(a.samples) == 0 {
		return a.commitAux()
	}
	st, t := a.st, a.t
	if err := st.writable(); err != nil {
		return err
	}
	start := time.Now()
	if len(a.newLabels) > 0 {
		created := make([]*series, len(a.newLabels))
		active := a.activePending() // active.go
		t.mu.Lock()
		for i, lset := range a.newLabels {
			ser := t.lookupLocked(a.newHashes[i], lset)
			if ser == nil {
				ser = newSeries(st.nextSeries.Add(1), lset)
				ser.diskKnown = true
				t.addLocked(a.newHashes[i], ser)
				if active[i] {
					t.activeCount.created.Add(1) // active.go
				}
			}
			created[i] = ser
		}
		t.mu.Unlock()
		for i := range a.samples {
			if a.samples[i].ser == nil {
				a.samples[i].ser = created[a.samples[i].pending]
			}
		}
	}

	// The record names every series not yet known to be in the WAL, so a
	// replay never meets a sample whose series it cannot resolve.
	buf := recordPool.Get().(*[]byte)
	defer recordPool.Put(buf)
	var defs []walSeries
	var seen map[*series]bool
	for _, p := range a.samples {
		if !p.ser.logged.Load() {
			if seen == nil {
				seen = map[*series]bool{}
			}
			if !seen[p.ser] {
				seen[p.ser] = true
				defs = append(defs, walSeries{id: p.ser.id, lset: p.ser.lset})
			}
		}
	}
	*buf = appendCommitRecord((*buf)[:0], t.num, defs, a.samples)

	st.applyMu.RLock()
	defer st.applyMu.RUnlock()
	if st.closed.Load() {
		return fmt.Errorf("%w: store closed", storage.ErrUnavailable)
	}
	rec, err := st.wal.write(*buf)
	if err != nil {
		st.failed(&st.walErr, failWAL, err)
		return fmt.Errorf("%w: write-ahead log: %w", storage.ErrUnavailable, err)
	}
	synced := syncPool.Get().(chan error)
	go func() { synced <- st.wal.syncUpTo(rec) }()
	heads := st.applyHeads(t, a.samples, time.Now().UnixNano(), nil)
	err = <-synced
	syncPool.Put(synced)
	if err != nil {
		st.failed(&st.walErr, failWAL, err)
		return fmt.Errorf("%w: write-ahead log: %w", storage.ErrUnavailable, err)
	}
	succeeded(&st.walErr)
	for ser := range seen {
		ser.logged.Store(true)
	}
	err = st.applyRest(t, heads)
	st.m.commitDur.Observe(time.Since(start).Seconds())
	if !a.aux.empty() {
		err = errors.Join(err, a.commitAux())
	}
	return err
}

var recordPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// syncPool holds the channels on which Commit waits for its record's sync.
var syncPool = sync.Pool{New: func() any { return make(chan error, 1) }}

// replayBatch is what WAL replay leaves for later, per tenant: the
// samples older than their series' newest sealed chunk, in WAL order, for
// one merge per series (mergeReplayed), and the series with chunks sealed
// since the last flush.
type replayBatch struct {
	ooo    map[*series][]sample
	nOOO   int
	sealed []*series
}

// applyTo adds durable samples to memory, merges out-of-order ones into
// sealed chunks and writes what was sealed (and new series) to Badger;
// with rb it leaves out-of-order samples and sealed chunks to rb instead
// of merging and writing them.
func (s *Store) applyTo(t *tenant, samples []pendingSample, now int64, rb *replayBatch) error {
	heads := s.applyHeads(t, samples, now, rb)
	if rb != nil {
		return errors.Join(heads.errs...)
	}
	return s.applyRest(t, heads)
}

// applied is what applyHeads leaves to applyRest: the samples older than
// their series' sealed chunks, the series that sealed chunks, and the
// errors so far.
type applied struct {
	ooo    map[*series][]sample
	sealed []*series
	errs   []error
}

// applyHeads adds samples to their series' heads, in memory; it writes
// nothing to Badger. With rb, out-of-order samples and sealed series go to
// rb.
func (s *Store) applyHeads(t *tenant, samples []pendingSample, now int64, rb *replayBatch) applied {
	var errs []error
	var sealedList []*series
	var ooo map[*series][]sample
	if rb != nil {
		ooo, sealedList = rb.ooo, rb.sealed
	}
	var cur *series
	unlock := func() {
		if cur != nil {
			cur.mu.Unlock()
			cur = nil
		}
	}
	for _, p := range samples {
		if p.ser != cur {
			unlock()
			cur = p.ser
			cur.mu.Lock()
			if err := s.loadDiskMaxTLocked(t, cur); err != nil {
				errs = append(errs, err)
				unlock()
				continue
			}
			if !cur.active {
				cur.active = true
				t.active.Add(1)
			}
		}
		switch cur.appendLocked(p.sample, s.cfg.ChunkSamples, now) {
		case sealed:
			if len(sealedList) == 0 || sealedList[len(sealedList)-1] != cur {
				sealedList = append(sealedList, cur)
			}
			s.m.sealed.Inc()
		case outOfOrder:
			if ooo == nil {
				ooo = map[*series][]sample{}
			}
			ooo[cur] = append(ooo[cur], p.sample)
			if rb != nil {
				rb.nOOO++
			}
		}
	}
	unlock()
	s.m.appended.Add(float64(len(samples)))
	if rb != nil {
		rb.ooo, rb.sealed = ooo, sealedList
	}
	return applied{ooo: ooo, sealed: sealedList, errs: errs}
}

// applyRest merges the out-of-order samples applyHeads left into sealed
// chunks, and writes what was sealed to Badger.
func (s *Store) applyRest(t *tenant, a applied) error {
	errs := a.errs
	for ser, list := range a.ooo {
		ser.mu.Lock()
		if err := s.mergeOOOLocked(t, ser, lastWriteWins(list)); err != nil {
			errs = append(errs, err)
		}
		ser.mu.Unlock()
	}
	// New series need no Badger write here: the WAL record defines them,
	// and the next checkpoint writes their 'S' records before it deletes
	// that record's segment.
	if len(a.sealed) > 0 {
		if err := s.flushSealed(t, a.sealed); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// lastWriteWins sorts samples, given in the order they were written, by
// time, and keeps the last written of equal timestamps.
func lastWriteWins(list []sample) []sample {
	slices.SortStableFunc(list, func(a, b sample) int { return cmp.Compare(a.t, b.t) })
	out := list[:0]
	for i, smp := range list {
		if i+1 < len(list) && list[i+1].t == smp.t {
			continue
		}
		out = append(out, smp)
	}
	return out
}

// Rollback drops the queued samples.
func (a *appender) Rollback() error {
	if a.st == nil {
		return nil
	}
	a.release()
	return nil
}

// appenderV2 adapts the appender to Prometheus' AppenderV2.
type appenderV2 struct{ *appender }

// HistogramsValidated tells the appender that its caller checks every
// histogram it appends with Validate before it appends it (remotewrite
// does, to word its rejections): the appender does not check them a
// second time. Without it, every histogram is checked.
func (a appenderV2) HistogramsValidated() { a.validated = true }

// Append appends a float or histogram sample with st, its start
// timestamp (0: unknown), and the exemplars and metadata of opts.
func (a appenderV2) Append(ref promstorage.SeriesRef, lset labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AppendV2Options) (promstorage.SeriesRef, error) {
	var err error
	if h != nil || fh != nil {
		ref, err = a.appender.appendHistogramST(ref, lset, st, t, h, fh)
	} else {
		ref, err = 0, a.appender.add(lset, sample{st: st, t: t, v: v})
	}
	if err == nil && (len(opts.Exemplars) > 0 || !opts.Metadata.IsEmpty()) {
		err = a.appendAux(lset, isStale(v, h, fh), &opts) // exemplars.go
	}
	return ref, err
}

// Series handles let a caller that appends to the same series request
// after request (remote write) skip the labels: it keeps the handle of a
// series it appended to with its labels (SeriesHandle), under a key of its
// own (remotewrite keys them by a 128-bit hash of the labels as sent), and
// appends later samples with AppendHandle, which costs neither building the
// labels, nor hashing them, nor an index lookup. A handle is only valid
// with the appenders of the tenant view whose HandleOwner it was obtained
// with; it goes stale when its series leaves the index (retention,
// deletion), and AppendHandle then refuses it. A handle is the series'
// pointer, unsafe.Pointer so that a cache of millions of them costs 8 bytes
// each: the caller must pass back only what SeriesHandle returned under
// the same owner (remotewrite's keys include the owner).

// HandleOwner identifies the tenant index this appender's handles belong
// to, a random number that differs from every other index's (another
// tenant's, another store's, this store's before it was reopened) with
// overwhelming probability: handles obtained under another owner must not
// be used with it. 0 when the tenant cannot be opened (then append with
// labels, which reports why).
func (a appenderV2) HandleOwner() uint64 {
	if a.st == nil {
		return 0
	}
	if a.t == nil {
		t, err := a.st.tenantFor(a.id, true)
		if err != nil {
			return 0
		}
		a.t = t
	}
	return a.t.handleOwner
}

// SeriesHandle returns the handle of the series the last successful
// Append (float or histogram) appended to, or nil when that series is new
// in this batch (it has a handle once committed: the next batch's Append
// returns it).
func (a appenderV2) SeriesHandle() unsafe.Pointer { return unsafe.Pointer(a.last) }

// AppendHandle queues a float sample, with start timestamp st (0:
// unknown), to the series of handle h, which SeriesHandle returned under
// this appender's HandleOwner. It returns false, queuing nothing, when h
// is stale: append with the labels instead.
func (a appenderV2) AppendHandle(h unsafe.Pointer, st, t int64, v float64) bool {
	ser := (*series)(h)
	if ser == nil || a.st == nil || a.t == nil || ser.removed.Load() {
		return false
	}
	a.samples = append(a.samples, pendingSample{ser: ser, sample: sample{st: st, t: t, v: v}})
	return true
}

// AppendHistogramHandle queues an integer (h) or float (fh) histogram
// sample, with start timestamp st (0: unknown), to the series of handle
// hd, as AppendHandle queues a float. The histogram is copied, not
// checked: it is only taken from a caller that checks its histograms
// (HistogramsValidated); without that, or when hd is stale, it returns
// false, queuing nothing: append with the labels instead.
func (a appenderV2) AppendHistogramHandle(hd unsafe.Pointer, st, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) bool {
	ser := (*series)(hd)
	if ser == nil || a.st == nil || a.t == nil || !a.validated || ser.removed.Load() {
		return false
	}
	smp := sample{st: st, t: t}
	switch {
	case fh != nil:
		smp.fh = a.hists.floatHistogram(fh)
	case h != nil:
		smp.h = a.hists.histogram(h)
	default:
		return false
	}
	a.samples = append(a.samples, pendingSample{ser: ser, sample: smp})
	return true
}

// histCopies holds an appender's copies of the histograms of its batch:
// what Histogram.Copy and FloatHistogram.Copy make, in blocks that never
// move (the pending samples point into them) and that the appender's next
// batch reuses, so that a histogram costs no allocation once the pooled
// appenders have grown to the batches' size. Nothing holds a copy after
// Commit or Rollback: the chunk appenders keep copies of their own, and
// only ever point the histogram's fields at new slices.
type histCopies struct {
	hs     slab[histogram.Histogram]
	fhs    slab[histogram.FloatHistogram]
	spans  slab[histogram.Span]
	ints   slab[int64]
	floats slab[float64]
}

func (c *histCopies) reset() {
	c.hs.reset()
	c.fhs.reset()
	c.spans.reset()
	c.ints.reset()
	c.floats.reset()
}

// histogram returns a copy of h, as h.Copy() makes it.
func (c *histCopies) histogram(h *histogram.Histogram) *histogram.Histogram {
	d := &c.hs.take(1)[0]
	*d = histogram.Histogram{CounterResetHint: h.CounterResetHint, Schema: h.Schema, Count: h.Count, Sum: h.Sum}
	if h.UsesCustomBuckets() {
		d.CustomValues = h.CustomValues // interned, as h.Copy() keeps them
	} else {
		d.ZeroThreshold, d.ZeroCount = h.ZeroThreshold, h.ZeroCount
		d.NegativeSpans = copyInto(&c.spans, h.NegativeSpans)
		d.NegativeBuckets = copyInto(&c.ints, h.NegativeBuckets)
	}
	d.PositiveSpans = copyInto(&c.spans, h.PositiveSpans)
	d.PositiveBuckets = copyInto(&c.ints, h.PositiveBuckets)
	return d
}

// floatHistogram returns a copy of h, as h.Copy() makes it.
func (c *histCopies) floatHistogram(h *histogram.FloatHistogram) *histogram.FloatHistogram {
	d := &c.fhs.take(1)[0]
	*d = histogram.FloatHistogram{CounterResetHint: h.CounterResetHint, Schema: h.Schema, Count: h.Count, Sum: h.Sum}
	if h.UsesCustomBuckets() {
		d.CustomValues = h.CustomValues
	} else {
		d.ZeroThreshold, d.ZeroCount = h.ZeroThreshold, h.ZeroCount
		d.NegativeSpans = copyInto(&c.spans, h.NegativeSpans)
		d.NegativeBuckets = copyInto(&c.floats, h.NegativeBuckets)
	}
	d.PositiveSpans = copyInto(&c.spans, h.PositiveSpans)
	d.PositiveBuckets = copyInto(&c.floats, h.PositiveBuckets)
	return d
}

// copyInto returns a copy of xs in s; nil when xs is empty, as
// Histogram.Copy leaves it.
func copyInto[T any](s *slab[T], xs []T) []T {
	if len(xs) == 0 {
		return nil
	}
	out := s.take(len(xs))
	copy(out, xs)
	return out
}

// slab hands out slices of blocks of T that stay in place until reset,
// after which it hands the same memory out again.
type slab[T any] struct {
	blocks [][]T
	cur    int // block being handed out
	used   int // of blocks[cur]
	total  int // elements in blocks
}

const (
	slabBlockBytes = 32 << 10 // bytes of a block (more for a larger take)
	slabKeepBytes  = 16 << 20 // more than this in a slab is dropped at reset
)

// take returns n elements, capped, holding what an earlier batch left.
func (s *slab[T]) take(n int) []T {
	for s.cur < len(s.blocks) {
		if b := s.blocks[s.cur]; len(b)-s.used >= n {
			out := b[s.used : s.used+n : s.used+n]
			s.used += n
			return out
		}
		s.cur++
		s.used = 0
	}
	var zero T
	size := max(n, slabBlockBytes/max(1, int(unsafe.Sizeof(zero))))
	s.blocks = append(s.blocks, make([]T, size))
	s.total += size
	s.used = n
	return s.blocks[s.cur][:n:n]
}

// reset makes every block available again (or drops them all when they
// hold more than slabKeepBytes, after an exceptional batch).
func (s *slab[T]) reset() {
	var zero T
	if s.total*int(unsafe.Sizeof(zero)) > slabKeepBytes {
		*s = slab[T]{}
		return
	}
	s.cur, s.used = 0, 0
}

var _ promstorage.AppenderV2 = appenderV2{}
