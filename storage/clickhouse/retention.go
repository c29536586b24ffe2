package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/luminate-io/luminate/tenancy"
)

// applyRetention drops the daily partitions of both tables that lie wholly
// before now - Retention, on every node in cluster mode.
func (s *Store) applyRetention(ctx context.Context, now time.Time) error {
	cutoffDay := (now.Add(-s.cfg.Retention).UnixMilli()) / msPerDay
	return s.onEachNode(ctx, func(conn driver.Conn) error {
		var errs []error
		for _, table := range []string{samplesTable, seriesTable, statsTable} { // statsTable: partitioned by day too (schema_stats.go)
			local := s.schema.storageTable(table)
			q := fmt.Sprintf("SELECT DISTINCT partition FROM system.parts WHERE database = %s AND table = %s AND active", quote(s.schema.db), quote(local))
			parts, err := s.queryStrings(ctx, conn, q)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, p := range parts {
				var day int64
				if _, err := fmt.Sscan(p, &day); err != nil || day >= cutoffDay {
					continue
				}
				alter := fmt.Sprintf("ALTER TABLE %s DROP PARTITION %d", s.schema.table(local), day)
				if err := conn.Exec(ctx, alter); err != nil {
					errs = append(errs, fmt.Errorf("drop partition %d of %s: %w", day, local, err))
					continue
				}
				s.logger.Info("retention dropped partition", slog.String("table", local), slog.Int64("day", day))
			}
		}
		return errors.Join(errs...)
	})
}

func (s *Store) queryStrings(ctx context.Context, conn driver.Conn, q string) ([]string, error) {
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
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
