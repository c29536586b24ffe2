package badger

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bdb "github.com/dgraph-io/badger/v4"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// recover rebuilds the in-memory state: tenants, the series index, each
// series' time range, the head snapshots, and then everything the WAL holds
// beyond them. Replaying is idempotent, so records already reflected in
// Badger do no harm. It reports its progress in st and stops early, with
// ctx's error, when ctx is done.
func (s *Store) recover(ctx context.Context, segs []int, st *recoveryStatus) error {
	var maxSeries uint64
	var byID seriesIndex // every series, for the head snapshots and the WAL
	st.enter(phaseIndex)
	err := s.db.View(func(txn *bdb.Txn) error {
		// Tenants.
		it := txn.NewIterator(bdb.IteratorOptions{Prefix: []byte{kindTenant}, PrefetchValues: true, PrefetchSize: 100})
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			v, err := item.ValueCopy(nil)
			if err != nil || len(v) != 4 {
				it.Close()
				return fmt.Errorf("tenant record %q: %w", item.Key(), errCorrupt)
			}
			num := binary.BigEndian.Uint32(v)
			t := newTenant(tenancy.ID(item.Key()[1:]), num)
			s.tenants[t.id] = t
			s.byNum[num] = t
			s.nextTenant = max(s.nextTenant, num)
		}
		it.Close()

		// Series.
		it = txn.NewIterator(bdb.IteratorOptions{Prefix: []byte{kindSeries}, PrefetchValues: true, PrefetchSize: 1000})
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			num, id, ok := parseSeriesKey(item.Key())
			t := s.byNum[num]
			if !ok || t == nil {
				continue
			}
			var lset, err = decodeLabelsItem(item)
			if err != nil {
				it.Close()
				return err
			}
			ser := newSeries(id, lset)
			ser.logged.Store(true) // its 'S' record outlives any WAL segment
			ser.persisted = true
			t.addLocked(lset.Hash(), ser)
			byID.set(id, ser)
			maxSeries = max(maxSeries, id)
			st.series.Add(1)
		}
		it.Close()
		if err := ctx.Err(); err != nil {
			return err
		}

		// Time range of every series from its first and last chunk keys.
		// Series and their chunk keys are in the same order: the forward
		// iterator walks from one series' chunks to the next one's and
		// seeks only across long runs, so that a store of many series with
		// few chunks each is read in one pass rather than two seeks per
		// series.
		const nearby = 16
		fwd := txn.NewIterator(bdb.IteratorOptions{Prefix: []byte{kindChunk}})
		rev := txn.NewIterator(bdb.IteratorOptions{Prefix: []byte{kindChunk}, Reverse: true})
		defer fwd.Close()
		defer rev.Close()
		st.enter(phaseRanges)
		for _, t := range s.tenants {
			slices.SortFunc(t.all, func(a, b *series) int { return cmp.Compare(int64(a.id), int64(b.id)) })
			fwd.Seek(tenantPrefix(kindChunk, t.num))
			for _, ser := range t.all {
				if st.ranges.Add(1)%4096 == 0 && ctx.Err() != nil {
					return ctx.Err()
				}
				ser.diskKnown = true
				prefix := seriesKey(kindChunk, t.num, ser.id)
				k := 0
				for ; k < nearby && fwd.Valid() && bytes.Compare(fwd.Item().Key(), prefix) < 0; k++ {
					fwd.Next()
				}
				if k == nearby {
					fwd.Seek(prefix)
				}
				if !fwd.ValidForPrefix(prefix) {
					continue // no chunks
				}
				_, mint, maxt, _ := parseChunkKey(fwd.Item().Key())
				ser.extendRange(mint)
				k = 0
				for fwd.Next(); k < nearby && fwd.ValidForPrefix(prefix); fwd.Next() {
					_, _, maxt, _ = parseChunkKey(fwd.Item().Key())
					k++
				}
				if k == nearby { // a long run: find its end
					rev.Seek(append(prefix, 0xff))
					if rev.ValidForPrefix(prefix) {
						_, _, maxt, _ = parseChunkKey(rev.Item().Key())
					}
				}
				ser.extendRange(maxt)
				ser.diskMaxT = maxt
			}
		}

		// Head snapshots newer than the sealed chunks.
		st.enter(phaseHeads)
		it = txn.NewIterator(bdb.IteratorOptions{Prefix: []byte{kindHead}, PrefetchValues: true, PrefetchSize: 1000})
		defer it.Close()
		// Decoding a head and re-encoding it is the work: workers do it,
		// in batches the iterator fills.
		now := time.Now().UnixNano()
		type snap struct {
			ser  *series
			enc  byte
			data []byte
		}
		const batch = 1024
		work := make(chan []snap, 4)
		errs := make(chan error, 1)
		var wg sync.WaitGroup
		for range min(max(runtime.GOMAXPROCS(0), 1), 8) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for list := range work {
					for _, sn := range list {
						h, cut, err := headFromData(sn.enc, sn.data)
						if err != nil {
							select {
							case errs <- fmt.Errorf("head snapshot of series %d: %w", sn.ser.id, err):
							default:
							}
							continue
						}
						ser := sn.ser
						ser.snapshot = true
						first := h.mint
						if len(cut) > 0 {
							first = cut[0].mint
						}
						if h.numSamples() == 0 || first <= ser.diskMaxT {
							continue // already sealed into a chunk
						}
						for _, c := range cut {
							ser.pushSealedLocked(c)
						}
						ser.head = h
						ser.extendRange(h.mint)
						ser.extendRange(h.maxt)
						ser.active = true
						ser.lastAppend = now
					}
				}
			}()
		}
		var iterErr error
		list := make([]snap, 0, batch)
		for it.Rewind(); it.Valid(); it.Next() {
			_, id, ok := parseSeriesKey(it.Item().Key())
			ser := byID.get(id)
			if !ok || ser == nil {
				continue
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil || len(v) < 1 {
				iterErr = fmt.Errorf("head snapshot of series %d: %w", id, errCorrupt)
				break
			}
			if list = append(list, snap{ser, v[0], v[1:]}); len(list) == batch {
				work <- list
				list = make([]snap, 0, batch)
			}
		}
		work <- list
		close(work)
		wg.Wait()
		if iterErr != nil {
			return iterErr
		}
		select {
		case err := <-errs:
			return err
		default:
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, t := range s.tenants {
		t.sortLocked()
		for _, ser := range t.all {
			if ser.active {
				t.active.Add(1)
			}
		}
	}
	s.nextSeries.Store(maxSeries)

	// Replay the WAL. A record Badger refuses part of (disk full) is
	// applied as far as it goes and the WAL is kept for the next start.
	keep := func(err error) error {
		if errors.Is(err, storage.ErrUnavailable) {
			if !s.walPinned.Swap(true) {
				s.logger.Warn("wal record not fully applied; the write-ahead log is kept until a restart replays it", "err", err)
			}
			return nil
		}
		return err
	}
	rp := newReplayer(s, &byID, st, keep)
	replay := func(rec []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return keep(rp.record(rec))
	}
	st.segments.Store(int64(len(segs)))
	for _, seg := range segs {
		if fi, err := os.Stat(segmentName(s.wal.dir, seg)); err == nil {
			st.bytesTotal.Add(fi.Size())
		}
	}
	st.enter(phaseReplay)
	var replayErr error
	for i, seg := range segs {
		st.segment.Store(int64(i + 1))
		torn, err := replaySegment(s.wal.dir, seg, &st.bytesDone, replay)
		if err != nil {
			replayErr = fmt.Errorf("replay wal segment %d: %w", seg, err)
			break
		}
		if torn {
			s.logger.Warn("wal segment ends in a torn record; the unacknowledged tail was dropped", "segment", seg)
		}
	}
	if err := rp.finish(replayErr == nil); err != nil {
		return errors.Join(replayErr, fmt.Errorf("apply wal records: %w", err))
	}
	if replayErr != nil {
		return replayErr
	}
	// Replay appends series in record order; restore id order once.
	for _, t := range s.tenants {
		t.sortLocked()
	}
	// The checkpoint that deletes the replayed segments runs in the
	// background once the store is open (see Recover): until it succeeds
	// they are replayed again after another crash, which is harmless.
	return nil
}

func decodeLabelsItem(item *bdb.Item) (lset labels.Labels, err error) {
	err = item.Value(func(v []byte) error {
		var derr error
		lset, derr = decodeLabels(v)
		return derr
	})
	if err != nil {
		return lset, fmt.Errorf("series record %x: %w", item.Key(), err)
	}
	return lset, nil
}

// replayer applies WAL records in order. It decodes them and creates
// their series itself, and hands their samples to workers, each owning the
// series whose id falls to it: each series' samples are applied in WAL
// order, different series' in parallel.
type replayer struct {
	s       *Store
	byID    *seriesIndex
	st      *recoveryStatus
	workers []*replayWorker
	wg      sync.WaitGroup
}

// replayWorker applies the samples of its series.
type replayWorker struct {
	in      chan replayJob
	free    chan []pendingSample // in's slices, back for reuse
	batches map[*tenant]*replayBatch
	err     error // the first error applying, once in is closed and drained
}

type replayJob struct {
	t    *tenant
	refs []pendingSample
}

func newReplayer(s *Store, byID *seriesIndex, st *recoveryStatus, keep func(error) error) *replayer {
	r := &replayer{s: s, byID: byID, st: st}
	n := min(max(runtime.GOMAXPROCS(0), 1), 8)
	for range n {
		w := &replayWorker{in: make(chan replayJob, 4), free: make(chan []pendingSample, 8), batches: map[*tenant]*replayBatch{}}
		r.workers = append(r.workers, w)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for job := range w.in {
				if w.err == nil {
					w.err = keep(w.apply(s, job))
				}
				clear(job.refs) // drop the histograms
				select {
				case w.free <- job.refs[:0]:
				default:
				}
			}
		}()
	}
	return r
}

// apply applies one record's samples of the worker's series.
func (w *replayWorker) apply(s *Store, job replayJob) error {
	rb := w.batches[job.t]
	if rb == nil {
		rb = &replayBatch{ooo: map[*series][]sample{}}
		w.batches[job.t] = rb
	}
	err := s.applyTo(job.t, job.refs, time.Now().UnixNano(), rb)
	// Bound the memory of what is left for later: flushing and merging
	// some now rather than at the end is the same, since what later
	// records leave is flushed and merged later.
	if len(rb.sealed) >= maxReplaySealed || rb.nOOO >= maxReplayOOO {
		err = errors.Join(err, rb.flush(s, job.t))
	}
	return err
}

// finish waits for the workers; when flush is set they then write what
// replay sealed and merge its out-of-order samples.
func (r *replayer) finish(flush bool) error {
	for _, w := range r.workers {
		close(w.in)
	}
	r.wg.Wait()
	r.st.enter(phaseMerge)
	errs := make([]error, len(r.workers))
	var wg sync.WaitGroup
	for i, w := range r.workers {
		if w.err != nil || !flush {
			errs[i] = w.err
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t, rb := range w.batches {
				if err := rb.flush(r.s, t); err != nil {
					errs[i] = errors.Join(errs[i], err)
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// record decodes one WAL commit record, creates its series and hands its
// samples to the workers.
func (r *replayer) record(rec []byte) error {
	s := r.s
	num, created, samples, err := decodeCommitRecord(rec)
	if err != nil {
		return err
	}
	t := s.byNum[num]
	if t == nil {
		return fmt.Errorf("wal names unknown tenant number %d: %w", num, errCorrupt)
	}
	if len(created) > 0 {
		t.mu.Lock()
		for _, c := range created {
			h := c.lset.Hash()
			ser := t.lookupLocked(h, c.lset)
			if ser == nil {
				ser = newSeries(c.id, c.lset)
				ser.diskKnown = true
				ser.logged.Store(true) // the checkpoint after replay writes its 'S' record
				t.addLocked(h, ser)
				if c.id > s.nextSeries.Load() {
					s.nextSeries.Store(c.id)
				}
			}
			r.byID.set(c.id, ser)
		}
		t.mu.Unlock()
	}
	n := uint64(len(r.workers))
	jobs := make([][]pendingSample, n)
	for i, w := range r.workers {
		select {
		case jobs[i] = <-w.free:
		default:
			jobs[i] = make([]pendingSample, 0, len(samples)/int(n)+16)
		}
	}
	for _, smp := range samples {
		ser := r.byID.get(smp.id)
		if ser == nil {
			continue // series removed by retention since
		}
		w := ser.id % n
		jobs[w] = append(jobs[w], pendingSample{ser: ser, sample: smp.sample})
	}
	r.st.samples.Add(int64(len(samples)))
	for i, w := range r.workers {
		if len(jobs[i]) > 0 {
			w.in <- replayJob{t, jobs[i]}
		} else {
			select {
			case w.free <- jobs[i]:
			default:
			}
		}
	}
	return nil
}

// seriesIndex finds series by id: in a slice while ids are dense (they are
// allocated in sequence, and only retention leaves gaps), in a map beyond.
type seriesIndex struct {
	dense  []*series
	sparse map[uint64]*series
}

func (x *seriesIndex) get(id uint64) *series {
	if id < uint64(len(x.dense)) {
		return x.dense[id]
	}
	return x.sparse[id]
}

func (x *seriesIndex) set(id uint64, ser *series) {
	if id >= uint64(len(x.dense)) && id < 2*uint64(len(x.dense))+1<<16 {
		x.dense = slices.Grow(x.dense, int(id)+1-len(x.dense))[:id+1]
		for k, v := range x.sparse { // keep every id in one place
			if k <= id {
				x.dense[k] = v
				delete(x.sparse, k)
			}
		}
	}
	if id < uint64(len(x.dense)) {
		x.dense[id] = ser
		return
	}
	if x.sparse == nil {
		x.sparse = map[uint64]*series{}
	}
	x.sparse[id] = ser
}

// Bounds of what replay leaves for later in a tenant's replayBatch.
const (
	maxReplaySealed = 1 << 14 // series with sealed chunks not written yet
	maxReplayOOO    = 1 << 22 // out-of-order samples
)

// flush writes the sealed chunks rb holds and merges its out-of-order
// samples.
func (rb *replayBatch) flush(s *Store, t *tenant) error {
	var errs []error
	if len(rb.sealed) > 0 {
		errs = append(errs, s.flushSealed(t, rb.sealed))
	}
	errs = append(errs, s.mergeReplayed(t, rb.ooo))
	clear(rb.sealed)
	rb.sealed = rb.sealed[:0]
	rb.ooo, rb.nOOO = map[*series][]sample{}, 0
	return errors.Join(errs...)
}

// mergeReplayed merges the samples replay found older than their series'
// newest sealed chunk into the sealed chunks, once per series, in one
// Badger read and one batch. Most of them are in those chunks already:
// they were sealed and written before the crash. A series whose chunks
// hold every one of its samples with the same value is left alone; the
// others (out-of-order writes whose merge Badger lost, or older values the
// WAL overwrote) are rewritten as an out-of-order commit would rewrite
// them, the WAL's last write winning.
func (s *Store) mergeReplayed(t *tenant, ooo map[*series][]sample) error {
	if len(ooo) == 0 {
		return nil
	}
	list := make([]*series, 0, len(ooo))
	for ser := range ooo {
		list = append(list, ser)
	}
	slices.SortFunc(list, func(a, b *series) int { return cmp.Compare(int64(a.id), int64(b.id)) })
	if err := s.writable(); err != nil {
		return err
	}
	type merge struct {
		ser     *series
		ov      overlap
		samples []sample
		persist bool
	}
	var merges []merge
	var errs []error
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	err := s.db.View(func(txn *bdb.Txn) error {
		opts := bdb.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = tenantPrefix(kindChunk, t.num)
		it := txn.NewIterator(opts)
		defer it.Close()
		for _, ser := range list {
			samples := lastWriteWins(ooo[ser])
			ser.mu.Lock()
			ov, err := overlapLocked(it, t, ser, samples[0].t, samples[len(samples)-1].t, 16)
			if err != nil {
				ser.mu.Unlock()
				return err
			}
			if !ov.holds(samples) {
				persist := s.addMergeLocked(wb, t, ser, ov, samples, &errs)
				merges = append(merges, merge{ser, ov, samples, persist})
			}
			ser.mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: read chunks for merge: %w", storage.ErrUnavailable, err)
	}
	err = errors.Join(errs...)
	if err == nil && len(merges) > 0 {
		err = wb.Flush()
	}
	if err != nil {
		s.failed(&s.dbErr, failBadger, err)
		return fmt.Errorf("%w: merge chunks: %w", storage.ErrUnavailable, err)
	}
	seq := s.diskSeq.Add(1)
	for _, m := range merges {
		m.ser.mu.Lock()
		s.mergedLocked(m.ser, m.ov, m.samples, m.persist, seq)
		m.ser.mu.Unlock()
	}
	if len(merges) > 0 {
		s.logger.Info("merged out-of-order samples from the write-ahead log", "tenant", t.id, "series", len(merges), "checked", len(list))
	}
	return nil
}

// Phases of recovery, in order.
const (
	phaseOpen int32 = iota
	phaseIndex
	phaseRanges
	phaseHeads
	phaseReplay
	phaseMerge
	phaseDone
)

// recoveryStatus is how far recovery got; its fields are updated as it
// goes and read by Status from other goroutines.
type recoveryStatus struct {
	phase             atomic.Int32
	series, ranges    atomic.Int64 // series indexed, and whose time range is read
	segment, segments atomic.Int64 // WAL segment being replayed (from 1), of
	bytesDone         atomic.Int64 // WAL bytes read
	bytesTotal        atomic.Int64
	samples           atomic.Int64 // WAL samples replayed

	mu         sync.Mutex
	phaseStart time.Time
	took       [phaseDone + 1]time.Duration
}

// enter records that recovery starts phase p.
func (st *recoveryStatus) enter(p int32) {
	now := time.Now()
	st.mu.Lock()
	if st.phaseStart.IsZero() {
		st.phaseStart = now
	}
	st.took[st.phase.Load()] += now.Sub(st.phaseStart)
	st.phaseStart = now
	st.mu.Unlock()
	st.phase.Store(p)
}

// durations returns how long each phase took, for the log.
func (st *recoveryStatus) durations() []any {
	st.mu.Lock()
	defer st.mu.Unlock()
	return []any{"open", st.took[phaseOpen], "index", st.took[phaseIndex], "ranges", st.took[phaseRanges], "heads", st.took[phaseHeads],
		"replay", st.took[phaseReplay], "merge", st.took[phaseMerge]}
}

func (st *recoveryStatus) String() string {
	switch st.phase.Load() {
	case phaseOpen:
		return "opening Badger (after a crash it replays its own log first)"
	case phaseIndex:
		return fmt.Sprintf("loading the series index: %d series", st.series.Load())
	case phaseRanges:
		return fmt.Sprintf("reading series time ranges: %d of %d series", st.ranges.Load(), st.series.Load())
	case phaseHeads:
		return "loading head snapshots"
	case phaseReplay:
		pct := 100
		if total := st.bytesTotal.Load(); total > 0 {
			pct = int(min(100, st.bytesDone.Load()*100/total))
		}
		return fmt.Sprintf("replaying WAL: %d%% (segment %d/%d, %d samples)", pct, st.segment.Load(), st.segments.Load(), st.samples.Load())
	case phaseMerge:
		return fmt.Sprintf("writing the chunks the WAL replay sealed and merging its out-of-order samples (%d samples replayed)", st.samples.Load())
	}
	return "recovered"
}
