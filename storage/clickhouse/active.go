package clickhouse

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// activeSeries is how many active series tenant id holds, by the one
// definition both backends share (storage.ActiveSince): series with a
// sample timestamped at or after the start of the hour that holds
// now - ActiveSeriesWindow, tenant-wide: counted in the series table,
// which every pod on this ClickHouse writes (a row per series and hour
// with samples), so it is exact across pods as of the count. It is the
// count the series limit, the cardinality endpoints and usage reports
// share.
func (s *Store) activeSeries(ctx context.Context, id tenancy.ID) (int64, error) {
	t := s.tenantState(id)
	if err := t.load(ctx, s); err != nil {
		return 0, err
	}
	return t.active.count(ctx, s, t.id)
}

// activeRecount is how long a count of a tenant's active series is reused
// (by the series limit, which never waits for a count, and by
// activeSeries) before it is counted again; series this pod created
// meanwhile are added to it, the other pods' show at the next count.
const activeRecount = 10 * time.Second

// activeCount is a tenant's active series as last counted, and the series
// this pod created since.
type activeCount struct {
	mu         sync.Mutex
	n          int64
	at         time.Time    // zero: never counted
	last       atomic.Int64 // n, for readers that do not wait for mu
	created    atomic.Int64
	refreshing atomic.Bool
}

// count counts the tenant's active series in the series table.
func (c *activeCount) count(ctx context.Context, s *Store, id tenancy.ID) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if now.Sub(c.at) < activeRecount {
		return c.n + c.created.Load(), nil
	}
	since := hourOf(storage.ActiveSince(now, s.cfg.ActiveSeriesWindow))
	created := c.created.Load()
	q := fmt.Sprintf("SELECT uniqExact(fingerprint) FROM %s WHERE tenant = %s AND hour >= %d",
		s.schema.table(seriesTable), quote(string(id)), since)
	rows, err := s.query(ctx, "active_series", q)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var n uint64
	if rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return 0, s.readFailed("active_series", fmt.Errorf("count active series of tenant %s: %w", id, err))
		}
	}
	if err := rows.Err(); err != nil {
		return 0, s.readFailed("active_series", fmt.Errorf("count active series of tenant %s: %w", id, err))
	}
	// Series created while counting may or may not be in n: keep them.
	c.created.Add(-created)
	c.n, c.at = int64(n), now
	c.last.Store(c.n)
	return c.n + c.created.Load(), nil
}

// forLimit is the tenant's active series for the series limit, without
// waiting: the last count plus the series created since, a new count
// started in the background when it is old.
func (c *activeCount) forLimit(s *Store, t *tenantState) int64 {
	if c.mu.TryLock() {
		n, at := c.n, c.at
		c.mu.Unlock()
		if time.Since(at) >= activeRecount && c.refreshing.CompareAndSwap(false, true) {
			go func() {
				defer c.refreshing.Store(false)
				ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
				defer cancel()
				if _, err := c.count(ctx, s, t.id); err != nil {
					s.logger.Warn("active series not counted; the series limit uses the last count", slog.String("tenant", string(t.id)), slog.Any("err", err))
				}
			}()
		}
		return n + c.created.Load()
	}
	// Being counted: the count before it, plus the created.
	return c.last.Load() + c.created.Load()
}
