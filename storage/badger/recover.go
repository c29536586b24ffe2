package badger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bdb "github.com/dgraph-io/badger/v4"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// recover rebuilds the in-memory state: tenants, the series index, each
// series' time range, the head snapshots, and then everything the WAL holds
// beyond them. Replaying is idempotent, so records already reflected in
// Badger do no harm.
func (s *Store) recover(segs []int) error {
	var maxSeries uint64
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
			maxSeries = max(maxSeries, id)
		}
		it.Close()

		// Time range of every series from its first and last chunk keys.
		fwd := txn.NewIterator(bdb.IteratorOptions{Prefix: []byte{kindChunk}})
		rev := txn.NewIterator(bdb.IteratorOptions{Prefix: []byte{kindChunk}, Reverse: true})
		defer fwd.Close()
		defer rev.Close()
		for _, t := range s.tenants {
			for _, ser := range t.all {
				prefix := seriesKey(kindChunk, t.num, ser.id)
				fwd.Seek(prefix)
				if fwd.ValidForPrefix(prefix) {
					_, mint, _, _ := parseChunkKey(fwd.Item().Key())
					ser.extendRange(mint)
				}
				rev.Seek(append(prefix, 0xff))
				if rev.ValidForPrefix(prefix) {
					_, _, maxt, _ := parseChunkKey(rev.Item().Key())
					ser.extendRange(maxt)
					ser.diskMaxT = maxt
				}
				ser.diskKnown = true
			}
		}

		// Head snapshots newer than the sealed chunks.
		byID := map[uint64]*series{}
		for _, t := range s.tenants {
			for _, ser := range t.all {
				byID[ser.id] = ser
			}
		}
		it = txn.NewIterator(bdb.IteratorOptions{Prefix: []byte{kindHead}, PrefetchValues: true, PrefetchSize: 1000})
		defer it.Close()
		now := time.Now().UnixNano()
		for it.Rewind(); it.Valid(); it.Next() {
			_, id, ok := parseSeriesKey(it.Item().Key())
			ser := byID[id]
			if !ok || ser == nil {
				continue
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil || len(v) < 1 {
				return fmt.Errorf("head snapshot of series %d: %w", id, errCorrupt)
			}
			h, err := headFromData(v[1:])
			if err != nil {
				return fmt.Errorf("head snapshot of series %d: %w", id, err)
			}
			ser.snapshot = true
			if h.numSamples() == 0 || h.mint <= ser.diskMaxT {
				continue // already sealed into a chunk
			}
			ser.head = h
			ser.extendRange(h.mint)
			ser.extendRange(h.maxt)
			ser.active = true
			ser.lastAppend = now
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
	replay := func(rec []byte) error {
		err := s.replayRecord(rec)
		if errors.Is(err, storage.ErrUnavailable) {
			if !s.walPinned.Swap(true) {
				s.logger.Warn("wal record not fully applied; the write-ahead log is kept until a restart replays it", "err", err)
			}
			return nil
		}
		return err
	}
	for _, seg := range segs {
		torn, err := replaySegment(s.wal.dir, seg, replay)
		if err != nil {
			return fmt.Errorf("replay wal segment %d: %w", seg, err)
		}
		if torn {
			s.logger.Warn("wal segment ends in a torn record; the unacknowledged tail was dropped", "segment", seg)
		}
	}
	// Replay appends series in record order; restore id order once.
	for _, t := range s.tenants {
		t.sortLocked()
	}
	if len(segs) > 0 {
		if err := s.checkpoint(); errors.Is(err, storage.ErrUnavailable) {
			s.logger.Warn("checkpoint after recovery failed; the write-ahead log is kept and the store starts degraded", "err", err)
		} else if err != nil {
			return err
		}
	}
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

// replayRecord applies one WAL commit record.
func (s *Store) replayRecord(rec []byte) error {
	num, created, samples, err := decodeCommitRecord(rec)
	if err != nil {
		return err
	}
	t := s.byNum[num]
	if t == nil {
		return fmt.Errorf("wal names unknown tenant number %d: %w", num, errCorrupt)
	}
	byID := make(map[uint64]*series, len(created))
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
		byID[c.id] = ser
	}
	// Samples may name series created by earlier records.
	for _, smp := range samples {
		if _, ok := byID[smp.id]; !ok {
			byID[smp.id] = nil
		}
	}
	if len(byID) > len(created) {
		for _, ser := range t.all {
			if got, ok := byID[ser.id]; ok && got == nil {
				byID[ser.id] = ser
			}
		}
	}
	t.mu.Unlock()
	var refs []pendingSample
	for _, smp := range samples {
		ser := byID[smp.id]
		if ser == nil {
			continue // series removed by retention since
		}
		refs = append(refs, pendingSample{ser: ser, t: smp.t, v: smp.v})
	}
	return s.apply(t, refs, time.Now().UnixNano())
}
