package badger

import (
	"fmt"
	"math"
	"slices"
	"time"

	bdb "github.com/dgraph-io/badger/v4"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// Per-tenant retention (issue 14). Each tenant's cutoff is now minus its
// retention (Config.RetentionPolicy, else Config.Retention for all). Reads
// clamp their range to it at once (view.go); the retention pass deletes,
// per tenant, the chunks that end before it, the series left without
// data, and the exemplars before it. The pass runs every
// RetentionInterval, and within retentionCheck of a change of the
// policy (an overrides file reload).

// retentionCheck is how often the background loop looks for a policy
// change; the pass runs at most this long after one.
const retentionCheck = time.Minute

// policy is the retention policy in force: Config.RetentionPolicy, else
// Config.Retention for every tenant.
func (c Config) policy() storage.RetentionPolicy {
	return storage.PolicyOr(c.RetentionPolicy, c.Retention)
}

// longestRetention is the longest retention in force (0: forever): what
// the exemplar log keeps when it is replayed, before a pass trims it per
// tenant.
func (c Config) longestRetention() time.Duration {
	l, _ := storage.LongestRetention(c.policy())
	return l
}

// retentionState is what the background loop remembers of the last pass.
type retentionState struct {
	last     time.Time
	defaults time.Duration
	over     map[tenancy.ID]time.Duration
}

// retentionDue reports whether a pass is due at now: RetentionInterval
// since the last one, or the policy changed since.
func (s *Store) retentionDue(st *retentionState, now time.Time) bool {
	def, over := s.cfg.policy().Retentions()
	if st.last.IsZero() || now.Sub(st.last) >= s.cfg.RetentionInterval || !storage.SameRetentions(def, over, st.defaults, st.over) {
		st.last, st.defaults, st.over = now, def, over
		return true
	}
	return false
}

// applyRetention runs one retention pass at now.
func (s *Store) applyRetention(now time.Time) {
	if err := s.deleteExpired(now); err != nil {
		s.logger.Error("retention", "err", err)
	}
	s.retainExemplars(now)
}

// ApplyRetention runs one retention pass now, as the background loop does
// (tests, and operators through nothing else: the loop runs it).
func (s *Store) ApplyRetention() error {
	if s.closed.Load() {
		return storage.ErrUnavailable
	}
	now := time.Now()
	err := s.deleteExpired(now)
	s.retainExemplars(now)
	return err
}

// retainExemplars drops every tenant's exemplars before its cutoff; the
// next snapshot, started here when any were dropped, removes them from
// disk.
func (s *Store) retainExemplars(now time.Time) {
	dropped := 0
	for id, t := range s.aux.allTenants() {
		cutoff := s.retentionCutoff(id, now)
		if cutoff == math.MinInt64 {
			continue
		}
		t.mu.Lock()
		dropped += t.dropBeforeLocked(cutoff)
		t.mu.Unlock()
	}
	if dropped > 0 {
		s.aux.compactAsync()
	}
}

// deleteExpired removes, for every tenant, each chunk whose last sample is
// older than the tenant's cutoff, and every series with no data left.
func (s *Store) deleteExpired(now time.Time) error {
	if err := s.writable(); err != nil {
		return err
	}
	for _, t := range s.allTenants() {
		cutoff := s.retentionCutoff(t.id, now)
		if cutoff == math.MinInt64 {
			continue
		}
		if err := s.deleteTenantBefore(t, cutoff); err != nil {
			return err
		}
	}
	return nil
}

// deleteBefore removes the data of every tenant before cutoff
// (milliseconds), as deleteTenantBefore does.
func (s *Store) deleteBefore(cutoff int64) error {
	if err := s.writable(); err != nil {
		return err
	}
	for _, t := range s.allTenants() {
		if err := s.deleteTenantBefore(t, cutoff); err != nil {
			return err
		}
	}
	return nil
}

// deleteTenantBefore removes tenant t's chunks whose last sample is older
// than cutoff (milliseconds), and its series with no data left.
func (s *Store) deleteTenantBefore(t *tenant, cutoff int64) error {
	// Heads wholly before the cutoff (a series idle in sample time but
	// not for the idle timeout, or backfilled) are sealed and flushed
	// first, so that their chunks go below and the series can leave.
	t.mu.RLock()
	all := slices.Clone(t.all)
	t.mu.RUnlock()
	var expired []*series
	for _, ser := range all {
		if mx := ser.maxT.Load(); mx >= cutoff || mx == math.MinInt64 {
			continue
		}
		ser.mu.Lock()
		if !ser.noHead() || len(ser.unflushed) > 0 {
			ser.sealLocked()
			if ser.active {
				ser.active = false
				t.active.Add(-1)
			}
			expired = append(expired, ser)
		}
		ser.mu.Unlock()
	}
	if len(expired) > 0 {
		if err := s.flushSealed(t, expired); err != nil {
			return fmt.Errorf("seal expired heads of tenant %s: %w", t.id, err)
		}
	}
	var deleted float64
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
	s.m.retention.Add(deleted)
	// Series whose newest sample is older than the cutoff are gone. The
	// others keep their minT: it may over-cover, and a raised retention
	// finds the samples a partly expired chunk still holds.
	t.mu.Lock()
	dead := map[*series]bool{}
	for _, ser := range t.all {
		if ser.maxT.Load() < cutoff && ser.maxT.Load() != math.MinInt64 {
			ser.mu.Lock()
			if ser.noHead() && len(ser.unflushed) == 0 {
				dead[ser] = true
			}
			ser.mu.Unlock()
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
	return nil
}

// retentionCutoff is the oldest timestamp (milliseconds) tenant id may
// still read and keep at now: math.MinInt64 when its data is kept forever.
// Reads clamp their time range to it; retention deletes what lies before.
func (s *Store) retentionCutoff(id tenancy.ID, now time.Time) int64 {
	return storage.RetentionCutoff(s.cfg.policy().Retention(id), now)
}
