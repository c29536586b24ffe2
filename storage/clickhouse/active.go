package clickhouse

import (
	"context"
	"time"

	"github.com/luminate-io/luminate/tenancy"
)

// activeSeries is how many active series tenant id holds: series appended
// to within activeHours, as this process knows them. It is the count the
// series limit, the cardinality endpoints and usage reports share.
func (s *Store) activeSeries(ctx context.Context, id tenancy.ID) (int64, error) {
	t := s.tenantState(id)
	if err := t.load(ctx, s); err != nil {
		return 0, err
	}
	return int64(t.prune(hourOf(time.Now().UnixMilli()))), nil
}
