package badger

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	bdb "github.com/dgraph-io/badger/v4"

	"github.com/luminate-io/luminate/storage"
)

// loadDiskMaxT reads the newest sealed chunk's end time of a series that
// has not been appended to since start. Callers hold ser.mu.
func (s *Store) loadDiskMaxTLocked(t *tenant, ser *series) error {
	if ser.diskKnown {
		return nil
	}
	err := s.db.View(func(txn *bdb.Txn) error {
		prefix := seriesKey(kindChunk, t.num, ser.id)
		opts := bdb.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Reverse = true
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		it.Seek(append(slices.Clone(prefix), 0xff))
		if it.Valid() {
			if _, _, maxt, ok := parseChunkKey(it.Item().Key()); ok {
				ser.diskMaxT = max(ser.diskMaxT, maxt)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: read series end: %w", storage.ErrUnavailable, err)
	}
	ser.diskKnown = true
	return nil
}

// flushSealed writes the unflushed chunks of the given series to Badger in
// one batch. Series whose chunks another flush is writing are skipped. On
// failure the chunks stay in memory, to be written by a later flush or
// checkpoint.
func (s *Store) flushSealed(t *tenant, list []*series) error {
	if err := s.writable(); err != nil {
		return err
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	var errs []error
	type taken struct {
		ser     *series
		n       int
		persist bool
	}
	var took []taken
	for _, ser := range list {
		ser.mu.Lock()
		if ser.inflight == 0 && len(ser.unflushed) > 0 {
			persist := s.setSeriesRecordLocked(wb, t, ser, &errs)
			for _, c := range ser.unflushed {
				if err := wb.Set(chunkKey(t.num, ser.id, c.mint, c.maxt), sealedValue(c.enc, c.data)); err != nil {
					errs = append(errs, err)
				}
			}
			if ser.snapshot && ser.noHead() {
				if err := wb.Delete(seriesKey(kindHead, t.num, ser.id)); err != nil {
					errs = append(errs, err)
				}
			}
			ser.inflight++
			took = append(took, taken{ser, len(ser.unflushed), persist})
		}
		ser.mu.Unlock()
	}
	if len(errs) == 0 {
		if err := wb.Flush(); err != nil {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	seq := s.diskSeq.Add(1)
	for _, tk := range took {
		tk.ser.mu.Lock()
		if err == nil {
			tk.ser.unflushed = slices.Delete(tk.ser.unflushed, 0, tk.n)
			if tk.ser.noHead() {
				tk.ser.snapshot = false
			}
			tk.ser.diskSeq = seq
			if tk.persist {
				tk.ser.persisted = true
			}
		}
		tk.ser.inflight--
		tk.ser.mu.Unlock()
	}
	if err != nil {
		s.failed(&s.dbErr, failBadger, err)
		return fmt.Errorf("%w: write chunks: %w", storage.ErrUnavailable, err)
	}
	succeeded(&s.dbErr)
	return nil
}

// mergeOOOLocked merges samples older than the newest sealed chunk into the
// sealed chunks they overlap and rewrites those chunks. samples are sorted
// and duplicate-free; at equal timestamps they replace stored values (last
// write wins). Callers hold ser.mu.
func (s *Store) mergeOOOLocked(t *tenant, ser *series, samples []sample) error {
	for ser.inflight > 0 { // a batch is writing our unflushed chunks
		ser.mu.Unlock()
		time.Sleep(time.Millisecond)
		ser.mu.Lock()
	}
	if err := s.writable(); err != nil {
		return err
	}
	var ov overlap
	err := s.db.View(func(txn *bdb.Txn) error {
		opts := bdb.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = seriesKey(kindChunk, t.num, ser.id)
		it := txn.NewIterator(opts)
		defer it.Close()
		var err error
		ov, err = overlapLocked(it, t, ser, samples[0].t, samples[len(samples)-1].t, 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("%w: read chunks for merge: %w", storage.ErrUnavailable, err)
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	var errs []error
	persist := s.addMergeLocked(wb, t, ser, ov, samples, &errs)
	err = errors.Join(errs...)
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		s.failed(&s.dbErr, failBadger, err)
		return fmt.Errorf("%w: merge chunks: %w", storage.ErrUnavailable, err)
	}
	succeeded(&s.dbErr)
	s.mergedLocked(ser, ov, samples, persist, s.diskSeq.Add(1))
	return nil
}

// overlap is what a series' sealed chunks hold in a time range: the
// samples, sorted, the Badger keys of the chunks they came from, and the
// unflushed chunks outside the range.
type overlap struct {
	old     []sample
	oldKeys [][]byte
	keep    []memChunk
}

// overlapLocked reads the sealed chunks of ser that overlap [lo, hi], in
// memory and, through it (an iterator over at least the series' chunk
// keys), in Badger. With nearby > 0, it is a forward iterator used for
// series in ascending id order, moved by Next when it is at most nearby
// keys before the chunks. Callers hold ser.mu.
func overlapLocked(it *bdb.Iterator, t *tenant, ser *series, lo, hi int64, nearby int) (overlap, error) {
	var ov overlap
	var err error
	// The overlapping unflushed chunks leave memory only once the merged
	// chunks are in Badger: on failure nothing acknowledged is lost.
	ov.keep = make([]memChunk, 0, len(ser.unflushed))
	for _, c := range ser.unflushed {
		if c.maxt >= lo && c.mint <= hi {
			if ov.old, err = decodeAny(ov.old, c.enc, c.data); err != nil {
				return ov, fmt.Errorf("decode chunk: %w", err)
			}
		} else {
			ov.keep = append(ov.keep, c)
		}
	}
	prefix := seriesKey(kindChunk, t.num, ser.id)
	from := chunkKey(t.num, ser.id, math.MinInt64, lo)[:21] // the first chunk ending at lo or later
	// Merging series in id order, the iterator has only moved forward
	// from targets before from: at from or past it, it is at the first
	// key from on; a few keys before, Next gets there faster than Seek.
	if nearby > 0 && it.Valid() {
		k := 0
		for ; k < nearby && it.Valid() && bytes.Compare(it.Item().Key(), from) < 0; k++ {
			it.Next()
		}
		if k == nearby {
			it.Seek(from)
		}
	} else {
		it.Seek(from)
	}
	for ; it.ValidForPrefix(prefix); it.Next() {
		_, mint, _, ok := parseChunkKey(it.Item().Key())
		if !ok || mint > hi {
			break // chunks do not overlap: later ones start later still
		}
		err := it.Item().Value(func(v []byte) error {
			if len(v) < 1 {
				return nil
			}
			var err error
			ov.old, err = decodeAny(ov.old, v[0], v[1:])
			return err
		})
		if err != nil {
			return ov, err
		}
		ov.oldKeys = append(ov.oldKeys, it.Item().KeyCopy(nil))
	}
	slices.SortStableFunc(ov.old, func(a, b sample) int { return cmp.Compare(a.t, b.t) })
	return ov, nil
}

// holds reports whether the overlap already holds every one of samples
// (sorted), with the same value of the same kind.
func (ov overlap) holds(samples []sample) bool {
	i := 0
	for _, smp := range samples {
		for i < len(ov.old) && ov.old[i].t < smp.t {
			i++
		}
		if i == len(ov.old) || ov.old[i].t != smp.t {
			return false
		}
		for j := i; j < len(ov.old) && ov.old[j].t == smp.t; j++ {
			if !sameSample(ov.old[j], smp) {
				return false
			}
		}
	}
	return true
}

// addMergeLocked adds to wb the rewrite of the overlapping chunks with
// samples merged in, and reports whether it added the series' 'S' record.
// Callers hold ser.mu, and call mergedLocked once wb is flushed.
func (s *Store) addMergeLocked(wb *bdb.WriteBatch, t *tenant, ser *series, ov overlap, samples []sample, errs *[]error) bool {
	merged := mergeSamples(ov.old, samples)
	chunks := encodeChunks(merged, s.cfg.ChunkSamples)
	persist := s.setSeriesRecordLocked(wb, t, ser, errs)
	for _, k := range ov.oldKeys {
		*errs = append(*errs, wb.Delete(k))
	}
	for _, c := range chunks {
		*errs = append(*errs, wb.Set(chunkKey(t.num, ser.id, c.mint, c.maxt), sealedValue(c.enc, c.data)))
		ser.diskMaxT = max(ser.diskMaxT, c.maxt)
	}
	return persist
}

// mergedLocked records in memory a merge that is in Badger.
func (s *Store) mergedLocked(ser *series, ov overlap, samples []sample, persist bool, seq uint64) {
	if persist {
		ser.persisted = true
	}
	ser.unflushed = ov.keep
	ser.diskSeq = seq
	s.m.oooMerges.Inc()
	for _, smp := range samples {
		ser.extendRange(smp.t)
	}
}

// setSeriesRecordLocked adds the 'S' record of ser to wb when Badger lacks
// it, and reports whether it did. Every batch that writes a series' chunks
// calls it first: a 'C' key never exists without its series' 'S' key, so
// recovery, which indexes series from their 'S' keys, knows every chunk.
// (A new series' record is otherwise left to the next checkpoint, off the
// commit path.) Callers hold ser.mu.
func (s *Store) setSeriesRecordLocked(wb *bdb.WriteBatch, t *tenant, ser *series, errs *[]error) bool {
	if ser.persisted {
		return false
	}
	if err := wb.Set(seriesKey(kindSeries, t.num, ser.id), appendLabels(nil, ser.lset)); err != nil {
		*errs = append(*errs, err)
	}
	return true
}
