package badger

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

// retentionPolicy is a fixed per-tenant RetentionPolicy.
type retentionPolicy map[tenancy.ID]time.Duration

func (p retentionPolicy) Retention(id tenancy.ID) time.Duration { return p[id] }
func (p retentionPolicy) Retentions() (time.Duration, map[tenancy.ID]time.Duration) {
	return 0, p
}

// TestRetentionPassCost measures one Badger retention pass: two tenants of
// LUMINATE_RETENTION_SERIES series each (skipped when unset), 10 chunks of
// 120 samples per series over the last 20 hours; tenant "short" keeps
// 10h, "long" forever. It reports the pass's time, the chunks deleted and
// the Badger size before and after.
//
//	LUMINATE_RETENTION_SERIES=10000 go test -count=1 -run TestRetentionPassCost -v ./storage/badger/
func TestRetentionPassCost(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv("LUMINATE_RETENTION_SERIES"))
	if err != nil || n <= 0 {
		t.Skip("set LUMINATE_RETENTION_SERIES to measure")
	}
	s := openTest(t, t.TempDir(), func(c *Config) {
		c.RetentionPolicy = retentionPolicy{"short": 10 * time.Hour}
	})
	defer s.Close()
	const chunks, per = 10, 120
	now := time.Now()
	step := int64(20*time.Hour/time.Millisecond) / (chunks * per)
	start := now.Add(-20 * time.Hour).UnixMilli()
	began := time.Now()
	for _, id := range []tenancy.ID{"short", "long"} {
		for i := range n {
			app := s.ForTenant(id).AppenderV2(context.Background())
			lset := labels.FromStrings("__name__", "m", "i", strconv.Itoa(i))
			for j := range chunks * per {
				_, err := app.Append(0, lset, 0, start+int64(j)*step, float64(j), nil, nil, promstorage.AOptions{})
				require.NoError(t, err)
			}
			require.NoError(t, app.Commit())
		}
	}
	s.sealIdle(now.Add(time.Hour)) // every head to disk, as hours of idleness would
	require.NoError(t, s.db.Sync())
	t.Logf("wrote %d series x %d samples in %s", 2*n, chunks*per, time.Since(began).Round(time.Millisecond))
	size := func() int64 {
		var n int64
		_ = filepath.WalkDir(s.badgerDir, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if fi, err := d.Info(); err == nil {
					n += fi.Size()
				}
			}
			return nil
		})
		return n
	}
	before := size()
	deletedBefore := testutil.ToFloat64(s.m.retention)
	began = time.Now()
	require.NoError(t, s.deleteExpired(now))
	took := time.Since(began)
	deleted := testutil.ToFloat64(s.m.retention) - deletedBefore
	require.NoError(t, s.db.Sync())
	t.Logf("retention pass: %s, %.0f chunks deleted of %d (Badger directory %d -> %d bytes: deletions are tombstones, the space returns with compactions)",
		took.Round(time.Millisecond), deleted, 2*n*chunks, before, size())
	require.InDelta(t, float64(n*chunks/2), deleted, float64(n), "about half of short's chunks")
	began = time.Now()
	require.NoError(t, s.deleteExpired(now))
	t.Logf("second pass (nothing to delete): %s", time.Since(began).Round(time.Millisecond))
	q, err := s.ForTenant("long").Querier(0, now.UnixMilli())
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "i", "0"))
	require.True(t, set.Next())
	it := set.At().Iterator(nil)
	c := 0
	for it.Next() != 0 {
		c++
	}
	require.Equal(t, chunks*per, c, "long keeps every sample")
}
