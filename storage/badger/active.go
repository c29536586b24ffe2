package badger

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// activeSeries is how many active series tenant id holds, by the one
// definition both backends share (storage.ActiveSince): series with a
// sample timestamped at or after the start of the hour that holds
// now - ActiveSeriesWindow. It is the count the series limit, the
// cardinality endpoints and usage reports share.
func (s *Store) activeSeries(_ context.Context, id tenancy.ID) (int64, error) {
	t, err := s.tenantFor(id, false)
	if err != nil || t == nil {
		return 0, err
	}
	return t.activeCount.refresh(t, s.activeCutoff(time.Now()), time.Now()), nil
}

// activeCutoff is the earliest sample timestamp (ms) of an active series.
func (s *Store) activeCutoff(now time.Time) int64 {
	return storage.ActiveSince(now, s.cfg.ActiveSeriesWindow)
}

// activeRecount is how long a counted number of active series is reused
// by the series limit before the series are counted again; series created
// meanwhile are added to it.
const activeRecount = 5 * time.Second

// activeCount is a tenant's active series as last counted, and the series
// created since.
type activeCount struct {
	mu      sync.Mutex
	n       int64
	at      time.Time
	created atomic.Int64 // incremented under tenant.mu (write)
}

// refresh counts t's active series (a pass over its series reading one
// atomic each, under the tenant's read lock, which creating series
// waits for) and returns the count.
func (c *activeCount) refresh(t *tenant, cutoff int64, now time.Time) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	t.mu.RLock()
	n := int64(0)
	for _, ser := range t.all {
		// A series created by a commit whose samples are not applied yet
		// has no range yet: it is being written now (maybe history only:
		// counted until the next count).
		if maxT := ser.maxT.Load(); maxT >= cutoff || maxT == math.MinInt64 {
			n++
		}
	}
	c.created.Store(0)
	t.mu.RUnlock()
	c.n, c.at = n, now
	return n
}

// forLimit is t's active series for the series limit: the last count if
// recent, plus the series created since; counted again otherwise.
func (s *Store) activeForLimit(t *tenant) int64 {
	now := time.Now()
	c := &t.activeCount
	c.mu.Lock()
	fresh, n := now.Sub(c.at) < activeRecount, c.n
	c.mu.Unlock()
	if fresh {
		return n + c.created.Load()
	}
	return c.refresh(t, s.activeCutoff(now), now)
}

// activePending says, for each series a creates, whether a sample of it
// makes it active.
func (a *appender) activePending() []bool {
	cutoff := a.st.activeCutoff(time.Now())
	active := make([]bool, len(a.newLabels))
	for _, p := range a.samples {
		if p.ser == nil && p.t >= cutoff {
			active[p.pending] = true
		}
	}
	return active
}
