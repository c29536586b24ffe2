package badger

import (
	"context"

	"github.com/luminate-io/luminate/tenancy"
)

// activeSeries is how many active series tenant id holds: series appended
// to within the head idle timeout. It is the count the series limit,
// the cardinality endpoints and usage reports share.
func (s *Store) activeSeries(_ context.Context, id tenancy.ID) (int64, error) {
	t, err := s.tenantFor(id, false)
	if err != nil || t == nil {
		return 0, err
	}
	return t.active.Load(), nil
}
