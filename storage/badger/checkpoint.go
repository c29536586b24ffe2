package badger

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/luminate-io/luminate/storage"
)

// checkpoint makes everything the WAL segments hold durable in Badger and
// deletes them. It rotates the WAL while no commit is between its WAL write
// and its in-memory apply, so every record in the closed segments is
// reflected in memory (or was never acknowledged: its commit failed). It
// then writes, series by series, what memory holds that Badger lacks (see
// checkpointTenant) and syncs Badger. Only when all of that succeeded are
// the closed segments deleted, together with any older segment an earlier
// failed checkpoint kept: a checkpoint that succeeds after Badger
// recovered from a failure covers everything the failure left in memory.
// While the data directory cannot take writes (see writable), it does
// nothing.
func (s *Store) checkpoint() error {
	s.checkpointMu.Lock()
	defer s.checkpointMu.Unlock()
	if err := s.writable(); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	start := time.Now()
	s.applyMu.Lock()
	closedSeg, err := s.wal.rotate()
	s.applyMu.Unlock()
	if err != nil {
		s.failed(&s.walErr, failWAL, err)
		return fmt.Errorf("%w: rotate wal: %w", storage.ErrUnavailable, err)
	}
	var errs []error
	for _, t := range s.allTenants() {
		t.mu.RLock()
		all := slices.Clone(t.all)
		t.mu.RUnlock()
		if err := s.checkpointTenant(t, all); err != nil {
			errs = append(errs, err)
		}
		s.m.series.WithLabelValues(string(t.id)).Set(float64(len(all)))
	}
	if err := s.db.Sync(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		s.failed(&s.dbErr, failBadger, err)
		return fmt.Errorf("%w: checkpoint: %w", storage.ErrUnavailable, err)
	}
	succeeded(&s.dbErr)
	if !s.walPinned.Load() {
		if err := s.wal.removeUpTo(closedSeg); err != nil {
			return fmt.Errorf("truncate wal: %w", err)
		}
	}
	s.m.checkpoint.Observe(time.Since(start).Seconds())
	return nil
}

// checkpointTenant writes in one batch what the given series hold only in
// memory: the 'S' record of series whose own write failed, unflushed
// chunks, and a snapshot of every open head. It waits for a flush in
// progress on a series rather than skipping it (that flush may fail), so
// that when it returns nil every sample applied to these series before the
// call is in Badger: in a chunk, or in a head snapshot.
func (s *Store) checkpointTenant(t *tenant, all []*series) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	type taken struct {
		ser     *series
		n       int  // unflushed chunks written
		persist bool // 'S' record written
	}
	var took []taken
	for _, ser := range all {
		ser.mu.Lock()
		for ser.inflight > 0 {
			ser.mu.Unlock()
			time.Sleep(time.Millisecond)
			ser.mu.Lock()
		}
		tk := taken{ser: ser, n: len(ser.unflushed)}
		if !ser.persisted && ser.logged.Load() {
			add(wb.Set(seriesKey(kindSeries, t.num, ser.id), appendLabels(nil, ser.lset)))
			tk.persist = true
		}
		for _, c := range ser.unflushed {
			add(wb.Set(chunkKey(t.num, ser.id, c.mint, c.maxt), sealedValue(c.enc, c.data)))
		}
		if !ser.noHead() {
			add(wb.Set(seriesKey(kindHead, t.num, ser.id), chunkValue(ser.head.enc, ser.head.bytesCopy())))
			ser.snapshot = true
		} else if tk.n > 0 && ser.snapshot && ser.noHead() {
			add(wb.Delete(seriesKey(kindHead, t.num, ser.id)))
		}
		if tk.n > 0 {
			ser.inflight++
		}
		if tk.n > 0 || tk.persist {
			took = append(took, tk)
		}
		ser.mu.Unlock()
	}
	err := errors.Join(errs...)
	if err == nil {
		err = wb.Flush()
	}
	seq := s.diskSeq.Add(1)
	for _, tk := range took {
		tk.ser.mu.Lock()
		if err == nil {
			if tk.n > 0 {
				tk.ser.unflushed = slices.Delete(tk.ser.unflushed, 0, tk.n)
				if tk.ser.noHead() {
					tk.ser.snapshot = false
				}
				tk.ser.diskSeq = seq
			}
			if tk.persist {
				tk.ser.persisted = true
			}
		}
		if tk.n > 0 {
			tk.ser.inflight--
		}
		tk.ser.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("tenant %s: %w", t.id, err)
	}
	return nil
}
