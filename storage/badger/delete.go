package badger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	bdb "github.com/dgraph-io/badger/v4"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/luminate-io/luminate/storage"
)

// Deleting series (delete_series, clean_tombstones).
//
// A deletion is a tombstone per series: the key
//
//	'X' tenant(4) series(8) -> deleted intervals, (mint(8) maxt(8))...
//
// written and synced before DeleteSeries returns, and kept in memory
// (deletions). Reads hide the samples in a series' intervals (the tenant
// view wraps its queriers, storage.WithoutDeleted). A series deleted over
// all of its data leaves the index at once (removeLocked), so label,
// series and cardinality reads no longer see it; a checkpoint then drops
// the write-ahead log segments naming it, so that a replay cannot give its
// samples to a series with the same labels written since. Cleaning
// (CleanTombstones, and the hourly background pass) deletes the keys of
// removed series and rewrites the sealed chunks of the others without the
// deleted samples, then drops their tombstones; Badger's compactions
// reclaim the disk.
const kindTombstone byte = 'X'

// deletions are the store's tombstones, by tenant number then series id.
// Each tenant's map is replaced, never modified, so a querier holds the
// one it started with.
type deletions struct {
	mu       sync.RWMutex
	byTenant map[uint32]map[uint64]storage.Intervals
	// live are the tombstoned series still in the index (partly deleted),
	// which reads must filter; same copy-on-write discipline.
	live map[uint32]map[uint64]storage.Intervals

	opMu sync.Mutex // one deletion or cleaning at a time
}

func (d *deletions) get(num uint32) (all, live map[uint64]storage.Intervals) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.byTenant[num], d.live[num]
}

func (d *deletions) set(num uint32, all, live map[uint64]storage.Intervals) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.byTenant == nil {
		d.byTenant, d.live = map[uint32]map[uint64]storage.Intervals{}, map[uint32]map[uint64]storage.Intervals{}
	}
	if len(all) == 0 {
		delete(d.byTenant, num)
	} else {
		d.byTenant[num] = all
	}
	if len(live) == 0 {
		delete(d.live, num)
	} else {
		d.live[num] = live
	}
}

func tombstoneKey(tenant uint32, id uint64) []byte { return seriesKey(kindTombstone, tenant, id) }

func encodeIntervals(iv storage.Intervals) []byte {
	b := make([]byte, 0, 16*len(iv))
	for _, c := range iv {
		b = binary.BigEndian.AppendUint64(b, uint64(c.Mint))
		b = binary.BigEndian.AppendUint64(b, uint64(c.Maxt))
	}
	return b
}

func decodeIntervals(b []byte) (storage.Intervals, error) {
	if len(b)%16 != 0 || len(b) == 0 {
		return nil, fmt.Errorf("tombstone of %d bytes: %w", len(b), errCorrupt)
	}
	var iv storage.Intervals
	for ; len(b) > 0; b = b[16:] {
		iv = iv.Add(storage.Interval{Mint: int64(binary.BigEndian.Uint64(b)), Maxt: int64(binary.BigEndian.Uint64(b[8:]))})
	}
	return iv, nil
}

// covered reports whether iv covers every sample ser may hold.
func covered(iv storage.Intervals, ser *series) bool {
	lo, hi := ser.minT.Load(), ser.maxT.Load()
	if lo > hi {
		return true // no samples
	}
	return iv.CoversRange(lo, hi)
}

// loadDeletions reads the tombstones after recovery and takes the series
// they cover wholly (replayed from an 'S' key or the write-ahead log) out
// of the index again.
func (s *Store) loadDeletions() error {
	all := map[uint32]map[uint64]storage.Intervals{}
	err := s.db.View(func(txn *bdb.Txn) error {
		it := txn.NewIterator(bdb.IteratorOptions{Prefix: []byte{kindTombstone}, PrefetchValues: true, PrefetchSize: 1000})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			num, id, ok := parseSeriesKey(it.Item().Key())
			if !ok {
				continue
			}
			var iv storage.Intervals
			err := it.Item().Value(func(v []byte) error {
				var err error
				iv, err = decodeIntervals(v)
				return err
			})
			if err != nil {
				return err
			}
			if all[num] == nil {
				all[num] = map[uint64]storage.Intervals{}
			}
			all[num][id] = iv
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read tombstones: %w", err)
	}
	for num, byID := range all {
		t := s.byNum[num]
		if t == nil {
			continue
		}
		live := map[uint64]storage.Intervals{}
		dead := map[*series]bool{}
		t.mu.Lock()
		for _, ser := range t.all {
			if iv, ok := byID[ser.id]; ok {
				if covered(iv, ser) {
					dead[ser] = true
				} else {
					live[ser.id] = iv
				}
			}
		}
		if len(dead) > 0 {
			t.removeLocked(dead)
		}
		t.mu.Unlock()
		s.dropActive(t, dead)
		s.deleted.set(num, byID, live)
	}
	return nil
}

// dropActive stops counting removed series as active.
func (s *Store) dropActive(t *tenant, dead map[*series]bool) {
	for ser := range dead {
		ser.mu.Lock()
		if ser.active {
			ser.active = false
			t.active.Add(-1)
		}
		ser.mu.Unlock()
	}
}

// DeleteSeries deletes the samples in [req.Start, req.End] of the
// tenant's series matching any of req.Matchers.
func (v *tenantStore) DeleteSeries(ctx context.Context, req storage.DeleteRequest) (storage.DeleteResult, error) {
	s := v.st
	var res storage.DeleteResult
	if s.closed.Load() {
		return res, storage.ErrUnavailable
	}
	if err := s.writable(); err != nil {
		return res, err
	}
	t, err := s.tenantFor(v.id, false)
	if err != nil || t == nil {
		return res, err
	}
	s.deleted.opMu.Lock()
	defer s.deleted.opMu.Unlock()

	t.mu.RLock()
	var matched []*series
	for _, ms := range req.Matchers {
		for _, ser := range t.selectLocked(ms) {
			if ser.overlaps(req.Start, req.End) {
				matched = append(matched, ser)
			}
		}
	}
	t.mu.RUnlock()
	if len(req.Matchers) > 1 {
		sortByID(matched)
		matched = slices.Compact(matched)
	}
	if req.MaxSeries > 0 && len(matched) > req.MaxSeries {
		return res, &storage.DeleteLimitError{Matched: len(matched), Limit: req.MaxSeries}
	}
	if len(matched) == 0 {
		return res, nil
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}

	// The tombstones, durable before anything else changes.
	oldAll, oldLive := s.deleted.get(t.num)
	all := make(map[uint64]storage.Intervals, len(oldAll)+len(matched))
	for id, iv := range oldAll {
		all[id] = iv
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, ser := range matched {
		iv := all[ser.id].Add(storage.Interval{Mint: req.Start, Maxt: req.End})
		all[ser.id] = iv
		if err := wb.Set(tombstoneKey(t.num, ser.id), encodeIntervals(iv)); err != nil {
			return res, fmt.Errorf("%w: write tombstones: %w", storage.ErrUnavailable, err)
		}
	}
	if err := wb.Flush(); err != nil {
		s.failed(&s.dbErr, failBadger, err)
		return res, fmt.Errorf("%w: write tombstones: %w", storage.ErrUnavailable, err)
	}
	if err := s.db.Sync(); err != nil {
		s.failed(&s.dbErr, failBadger, err)
		return res, fmt.Errorf("%w: sync tombstones: %w", storage.ErrUnavailable, err)
	}
	succeeded(&s.dbErr)

	// Series deleted over all their data leave the index; the others are
	// filtered by reads.
	live := make(map[uint64]storage.Intervals, len(oldLive)+len(matched))
	for id, iv := range oldLive {
		live[id] = iv
	}
	dead := map[*series]bool{}
	t.mu.Lock()
	for _, ser := range matched {
		if covered(all[ser.id], ser) {
			dead[ser] = true
			delete(live, ser.id)
		} else {
			live[ser.id] = all[ser.id]
		}
	}
	if len(dead) > 0 {
		t.removeLocked(dead)
	}
	s.deleted.set(t.num, all, live)
	t.mu.Unlock()
	s.dropActive(t, dead)
	res.Series, res.Whole = len(matched), len(dead)
	if len(dead) > 0 {
		// The write-ahead log may name the removed series: checkpoint so
		// that a replay never meets them (their tombstones stay until
		// cleaning deletes their keys).
		if err := s.checkpoint(); err != nil {
			s.logger.Warn("checkpoint after delete_series failed; a restart before the next checkpoint replays the deleted series' write-ahead log", "err", err)
		}
	}
	return res, nil
}

// CleanTombstones reclaims what the tenant's tombstones hide.
func (v *tenantStore) CleanTombstones(context.Context) error {
	s := v.st
	if s.closed.Load() {
		return storage.ErrUnavailable
	}
	t, err := s.tenantFor(v.id, false)
	if err != nil || t == nil {
		return err
	}
	_, err = s.cleanTenant(t)
	return err
}

// cleanDeletions is the background pass: it cleans every tenant's
// tombstones.
func (s *Store) cleanDeletions() {
	for _, t := range s.allTenants() {
		if all, _ := s.deleted.get(t.num); len(all) == 0 {
			continue
		}
		n, err := s.cleanTenant(t)
		if err != nil {
			s.logger.Error("clean tombstones", "tenant", t.id, "err", err)
			continue
		}
		s.logger.Info("cleaned tombstones", "tenant", t.id, "series", n)
	}
}

// cleanTenant deletes the keys of removed series and rewrites the sealed
// chunks of partly deleted ones without the deleted samples, then drops
// their tombstones. A series whose head or unflushed chunks hold deleted
// samples keeps its tombstone for a later pass (its head is sealed and
// flushed once idle or full). It returns how many tombstones it dropped.
func (s *Store) cleanTenant(t *tenant) (int, error) {
	if err := s.writable(); err != nil {
		return 0, err
	}
	s.deleted.opMu.Lock()
	defer s.deleted.opMu.Unlock()
	all, live := s.deleted.get(t.num)
	if len(all) == 0 {
		return 0, nil
	}
	// A checkpoint first: once a tombstone is gone, no write-ahead log
	// segment may hold the samples it hid.
	if err := s.checkpoint(); err != nil {
		return 0, fmt.Errorf("clean tombstones: %w", err)
	}
	ids := slices.Sorted(func(yield func(uint64) bool) {
		for id := range all {
			if !yield(id) {
				return
			}
		}
	})
	t.mu.RLock()
	inIndex := make(map[uint64]*series, len(live))
	for id := range live {
		if ser := t.byIDLocked(id); ser != nil {
			inIndex[id] = ser
		}
	}
	t.mu.RUnlock()

	done := map[uint64]bool{}
	var errs []error
	const batch = 1000
	for start := 0; start < len(ids); start += batch {
		wb := s.db.NewWriteBatch()
		var cleaned []uint64
		err := s.db.View(func(txn *bdb.Txn) error {
			it := txn.NewIterator(bdb.IteratorOptions{Prefix: tenantPrefix(kindChunk, t.num)})
			defer it.Close()
			for _, id := range ids[start:min(start+batch, len(ids))] {
				ok, err := s.cleanSeries(wb, it, t, id, all[id], inIndex[id])
				if err != nil {
					return err
				}
				if ok {
					cleaned = append(cleaned, id)
				}
			}
			return nil
		})
		if err == nil {
			err = wb.Flush()
		}
		wb.Cancel()
		seq := s.diskSeq.Add(1)
		for _, id := range cleaned {
			if err == nil {
				done[id] = true
			}
			if ser := inIndex[id]; ser != nil { // locked by cleanSeries until the batch is in Badger
				if err == nil {
					ser.diskSeq = seq
				}
				ser.mu.Unlock()
			}
		}
		if err != nil {
			errs = append(errs, err)
			break
		}
	}
	if len(done) > 0 {
		s.dropTombstones(t, done)
	}
	if err := s.db.Sync(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		s.failed(&s.dbErr, failBadger, err)
		return len(done), fmt.Errorf("%w: clean tombstones: %w", storage.ErrUnavailable, err)
	}
	return len(done), nil
}

// dropTombstones forgets the given tombstones in memory.
func (s *Store) dropTombstones(t *tenant, done map[uint64]bool) {
	s.deleted.mu.Lock()
	defer s.deleted.mu.Unlock()
	all, live := map[uint64]storage.Intervals{}, map[uint64]storage.Intervals{}
	for id, iv := range s.deleted.byTenant[t.num] {
		if !done[id] {
			all[id] = iv
		}
	}
	for id, iv := range s.deleted.live[t.num] {
		if !done[id] {
			live[id] = iv
		}
	}
	if len(all) == 0 {
		delete(s.deleted.byTenant, t.num)
	} else {
		s.deleted.byTenant[t.num] = all
	}
	if len(live) == 0 {
		delete(s.deleted.live, t.num)
	} else {
		s.deleted.live[t.num] = live
	}
}

// cleanSeries adds to wb the cleaning of one tombstoned series: all its
// keys when it left the index (ser nil), else the rewrite of its sealed
// chunks overlapping iv. It reports whether the tombstone can go; then,
// for a series in the index, it returns with ser.mu held (the caller
// unlocks once wb is flushed), so no merge or flush rewrites its chunks
// in between.
func (s *Store) cleanSeries(wb *bdb.WriteBatch, it *bdb.Iterator, t *tenant, id uint64, iv storage.Intervals, ser *series) (bool, error) {
	prefix := seriesKey(kindChunk, t.num, id)
	if ser == nil {
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			if err := wb.Delete(it.Item().KeyCopy(nil)); err != nil {
				return false, err
			}
		}
		for _, k := range [][]byte{seriesKey(kindSeries, t.num, id), seriesKey(kindHead, t.num, id), tombstoneKey(t.num, id)} {
			if err := wb.Delete(k); err != nil {
				return false, err
			}
		}
		return true, nil
	}
	ser.mu.Lock()
	for ser.inflight > 0 {
		ser.mu.Unlock()
		time.Sleep(time.Millisecond)
		ser.mu.Lock()
	}
	inMemory := false
	for _, c := range ser.unflushed {
		inMemory = inMemory || len(iv.Overlapping(c.mint, c.maxt)) > 0
	}
	if h := ser.head; h != nil && h.n > 0 {
		inMemory = inMemory || len(iv.Overlapping(h.mint, h.maxt)) > 0
	}
	if inMemory {
		ser.mu.Unlock()
		return false, nil
	}
	var keep []sample
	var buf []sample
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		_, cmin, cmax, ok := parseChunkKey(it.Item().Key())
		if !ok || len(iv.Overlapping(cmin, cmax)) == 0 {
			continue
		}
		err := it.Item().Value(func(v []byte) error {
			if len(v) < 1 {
				return nil
			}
			var err error
			buf, err = decodeAny(buf[:0], v[0], v[1:])
			return err
		})
		if err != nil {
			ser.mu.Unlock()
			return false, err
		}
		for _, smp := range buf {
			if !iv.Covers(smp.t) {
				keep = append(keep, smp)
			}
		}
		if err := wb.Delete(it.Item().KeyCopy(nil)); err != nil {
			ser.mu.Unlock()
			return false, err
		}
	}
	if len(keep) > 0 {
		for _, c := range encodeChunks(keep, s.cfg.ChunkSamples) {
			if err := wb.Set(chunkKey(t.num, id, c.mint, c.maxt), sealedValue(c.enc, c.data)); err != nil {
				ser.mu.Unlock()
				return false, err
			}
		}
	}
	if err := wb.Delete(tombstoneKey(t.num, id)); err != nil {
		ser.mu.Unlock()
		return false, err
	}
	return true, nil
}

// byIDLocked finds a series of the index by id (t.all is sorted by id).
func (t *tenant) byIDLocked(id uint64) *series {
	i := sort.Search(len(t.all), func(i int) bool { return t.all[i].id >= id })
	if i < len(t.all) && t.all[i].id == id {
		return t.all[i]
	}
	return nil
}

// withoutDeleted wraps q so that its reads skip the tenant's deleted
// samples; q itself when the tenant has none in the index.
func (v *tenantStore) withoutDeleted(q *querier) promstorage.Querier {
	if q.t == nil {
		return q
	}
	_, live := v.st.deleted.get(q.t.num)
	if len(live) == 0 {
		return q
	}
	return &deletedQuerier{
		DeletedQuerier: storage.DeletedQuerier{Querier: q, Of: deletedOf(q.t, live), Mint: q.mint, Maxt: q.maxt},
		q:              q, live: live,
	}
}

func (v *tenantStore) chunksWithoutDeleted(q *querier) promstorage.ChunkQuerier {
	cq := chunkQuerier{q}
	if q.t == nil {
		return cq
	}
	_, live := v.st.deleted.get(q.t.num)
	if len(live) == 0 {
		return cq
	}
	return &storage.DeletedChunkQuerier{ChunkQuerier: cq, Of: deletedOf(q.t, live), Mint: q.mint, Maxt: q.maxt}
}

func deletedOf(t *tenant, live map[uint64]storage.Intervals) storage.DeletedOf {
	return func(lset labels.Labels) storage.Intervals {
		if ser := t.lookup(lset.Hash(), lset); ser != nil {
			return live[ser.id]
		}
		return nil
	}
}

// deletedQuerier answers label names and values without the series whose
// samples in the range are all deleted.
type deletedQuerier struct {
	storage.DeletedQuerier
	q    *querier
	live map[uint64]storage.Intervals
}

// hidden returns the partly deleted series matching ms whose data in the
// querier's range is all deleted.
func (d *deletedQuerier) hidden(ms []*labels.Matcher) map[*series]bool {
	out := map[*series]bool{}
	t := d.q.t
	t.mu.RLock()
	defer t.mu.RUnlock()
	for id, iv := range d.live {
		ser := t.byIDLocked(id)
		if ser == nil || !ser.overlaps(d.q.mint, d.q.maxt) || !matchesAll(ser.lset, ms) {
			continue
		}
		if iv.CoversRange(max(d.q.mint, ser.minT.Load()), min(d.q.maxt, ser.maxT.Load())) {
			out[ser] = true
		}
	}
	return out
}

func matchesAll(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

// visible lists the series matching ms in range, without hidden.
func (d *deletedQuerier) visible(ms []*labels.Matcher, hidden map[*series]bool) []*series {
	var list []*series
	if len(ms) == 0 {
		d.q.t.mu.RLock()
		for _, s := range d.q.t.all {
			if s.overlaps(d.q.mint, d.q.maxt) {
				list = append(list, s)
			}
		}
		d.q.t.mu.RUnlock()
	} else {
		list = d.q.matching(ms)
	}
	return slices.DeleteFunc(list, func(s *series) bool { return hidden[s] })
}

func (d *deletedQuerier) LabelNames(ctx context.Context, hints *promstorage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	hidden := d.hidden(ms)
	if len(hidden) == 0 {
		return d.q.LabelNames(ctx, hints, ms...)
	}
	set := map[string]struct{}{}
	for _, s := range d.visible(ms, hidden) {
		s.lset.Range(func(l labels.Label) { set[l.Name] = struct{}{} })
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range set {
			if !yield(n) {
				return
			}
		}
	})
	names, _ = hints.ApplyLimit(names)
	return names, nil, nil
}

func (d *deletedQuerier) LabelValues(ctx context.Context, name string, hints *promstorage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	hidden := d.hidden(ms)
	if len(hidden) == 0 {
		return d.q.LabelValues(ctx, name, hints, ms...)
	}
	set := map[string]struct{}{}
	for _, s := range d.visible(ms, hidden) {
		if v := s.lset.Get(name); v != "" {
			set[v] = struct{}{}
		}
	}
	vals := slices.Sorted(func(yield func(string) bool) {
		for v := range set {
			if !yield(v) {
				return
			}
		}
	})
	vals, _ = hints.ApplyLimit(vals)
	return vals, nil, nil
}
