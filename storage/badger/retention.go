package badger

import (
	"fmt"
	"math"
	"time"

	bdb "github.com/dgraph-io/badger/v4"

	"github.com/luminate-io/luminate/tenancy"
)

// applyRetention deletes chunks that ended before the retention cutoff and
// series left without data.
func (s *Store) applyRetention() {
	if s.cfg.Retention <= 0 {
		return
	}
	cutoff := time.Now().Add(-s.cfg.Retention).UnixMilli()
	if err := s.deleteBefore(cutoff); err != nil {
		s.logger.Error("retention", "err", err)
	}
	s.aux.retain(cutoff)
}

// deleteBefore removes every chunk whose last sample is older than cutoff
// (milliseconds), and every series with no data left.
func (s *Store) deleteBefore(cutoff int64) error {
	if err := s.writable(); err != nil {
		return err
	}
	var deleted float64
	for _, t := range s.allTenants() {
		wb := s.db.NewWriteBatch()
		err := s.db.View(func(txn *bdb.Txn) error {
			opts := bdb.DefaultIteratorOptions
			opts.PrefetchValues = false
			opts.Prefix = tenantPrefix(kindChunk, t.num)
			it := txn.NewIterator(opts)
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				_, _, maxt, ok := parseChunkKey(it.Item().Key())
				if ok && maxt < cutoff {
					if err := wb.Delete(it.Item().KeyCopy(nil)); err != nil {
						return err
					}
					deleted++
				}
			}
			return nil
		})
		if err == nil {
			err = wb.Flush()
		}
		wb.Cancel()
		if err != nil {
			return fmt.Errorf("delete old chunks of tenant %s: %w", t.id, err)
		}
		// Series whose newest sample is older than the cutoff are gone.
		t.mu.Lock()
		dead := map[*series]bool{}
		for _, ser := range t.all {
			if ser.maxT.Load() < cutoff && ser.maxT.Load() != math.MinInt64 {
				ser.mu.Lock()
				if ser.noHead() && len(ser.unflushed) == 0 {
					dead[ser] = true
				}
				ser.mu.Unlock()
			} else if ser.minT.Load() < cutoff {
				ser.minT.Store(cutoff)
			}
		}
		if len(dead) > 0 {
			t.removeLocked(dead)
		}
		t.mu.Unlock()
		if len(dead) > 0 {
			wb := s.db.NewWriteBatch()
			for ser := range dead {
				_ = wb.Delete(seriesKey(kindSeries, t.num, ser.id))
				_ = wb.Delete(seriesKey(kindHead, t.num, ser.id))
			}
			err := wb.Flush()
			wb.Cancel()
			if err != nil {
				return fmt.Errorf("delete expired series of tenant %s: %w", t.id, err)
			}
		}
	}
	s.m.retention.Add(deleted)
	return nil
}

// retentionCutoff is the oldest timestamp (milliseconds) tenant id may
// still read and keep at now: math.MinInt64 when its data is kept forever.
// Reads clamp their time range to it; retention deletes what lies before.
func (s *Store) retentionCutoff(id tenancy.ID, now time.Time) int64 {
	_ = id // per-tenant retention (issue 14) replaces the global one here
	if s.cfg.Retention <= 0 {
		return math.MinInt64
	}
	return now.Add(-s.cfg.Retention).UnixMilli()
}
