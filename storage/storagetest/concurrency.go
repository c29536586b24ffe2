package storagetest

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// testConcurrentAppenders runs writers on two tenants at once, each with
// its own series and a series all writers of a tenant share (at distinct
// timestamps), while readers query; then everything written must be there.
// Run it with -race.
func testConcurrentAppenders(t *testing.T, b Backend) {
	const writers, commits, perCommit = 4, 40, 5
	st := b.Open(t)
	tenants := []tenancy.ID{tenantA, tenantA1}
	shared := ls("__name__", "concurrent", "series", "shared")

	var wg sync.WaitGroup
	errs := make(chan error, 2*writers+2)
	written := map[tenancy.ID][]series{}
	var mu sync.Mutex
	for _, id := range tenants {
		for w := range writers {
			own := ls("__name__", "concurrent", "series", fmt.Sprint("writer-", w))
			wg.Go(func() {
				var mine []series
				for c := range commits {
					tx := begin(t.Context(), st.ForTenant(id))
					var batch []series
					for i := range perCommit {
						n := int64((c*perCommit+i)*writers + w)
						s1 := series{own, []sample{{baseTime + n*step, float64(n)}}}
						s2 := series{shared, []sample{{baseTime + n*step, float64(n) + 0.5}}}
						for _, s := range []series{s1, s2} {
							if _, err := tx.add(0, s.lset, s.samples[0].T, s.samples[0].F); err != nil {
								errs <- fmt.Errorf("tenant %s writer %d: Append: %w", id, w, err)
								_ = tx.Rollback()
								return
							}
						}
						batch = append(batch, s1, s2)
					}
					if err := tx.Commit(); err != nil {
						errs <- fmt.Errorf("tenant %s writer %d: Commit: %w", id, w, err)
						return
					}
					mine = append(mine, batch...)
				}
				mu.Lock()
				written[id] = append(written[id], mine...)
				mu.Unlock()
			})
		}
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for _, id := range tenants {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := readAll(t, st.ForTenant(id)); err != nil {
					errs <- fmt.Errorf("tenant %s reader: %w", id, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	require.NoError(t, errors.Join(all...))

	for _, id := range tenants {
		want := merge(written[id])
		require.Len(t, want, writers+1)
		requireSelect(t, st.ForTenant(id), want, 0, math.MaxInt64, eq("__name__", "concurrent"))
	}
}

// readAll selects every series of ts and reads it through, requiring each
// series' samples in increasing time order. It may run concurrently with
// writers, so it returns errors instead of failing t from its goroutine.
func readAll(t *testing.T, ts storage.TenantStore) error {
	q, err := ts.Querier(0, math.MaxInt64)
	if err != nil {
		return err
	}
	defer q.Close()
	set := q.Select(t.Context(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "concurrent"))
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		it = s.Iterator(it)
		prev := int64(math.MinInt64)
		for it.Next() != chunkenc.ValNone {
			cur := it.AtT()
			if cur <= prev {
				return fmt.Errorf("series %s: timestamp %d after %d", s.Labels(), cur, prev)
			}
			prev = cur
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("series %s: %w", s.Labels(), err)
		}
	}
	return set.Err()
}
