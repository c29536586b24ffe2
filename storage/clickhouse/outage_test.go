package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
	"github.com/luminate-io/luminate/tenancy"
)

// TestOutage stops ClickHouse (gracefully, then with SIGKILL) in the middle
// of concurrent ingest and restarts it. Commits during the outage must fail
// with storage.ErrUnavailable and Ready must fail; the store must reconnect
// by itself; every acknowledged sample must be there afterwards, once.
func TestOutage(t *testing.T) {
	srv := chtest.New(t)
	cfg := testConfig(t)
	cfg.DSN = srv.DSN()
	cfg.FlushInterval = 5 * time.Millisecond
	cfg.Timeout = 10 * time.Second
	st := openStore(t, cfg)
	ts := st.ForTenant("outage")

	const (
		writers         = 4
		seriesPerWriter = 50
	)
	var (
		stop         atomic.Bool
		acked        [writers][]int64 // timestamps acknowledged, per writer
		failed       atomic.Int64
		otherErrs    = make(chan error, writers)
		ackedBetween atomic.Int64 // commits acknowledged since the last reset
		wg           sync.WaitGroup
	)
	value := func(w, s int, t int64) float64 { return float64(w*1_000_000+s) + float64(t)/1000 }
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := int64(1); !stop.Load(); {
				t := k * 1000
				app := ts.AppenderV2(context.Background())
				for s := range seriesPerWriter {
					lset := labels.FromStrings("__name__", "outage", "writer", fmt.Sprint(w), "series", fmt.Sprint(s))
					if _, err := app.Append(0, lset, 0, t, value(w, s, t), nil, nil, promstorage.AOptions{}); err != nil {
						_ = app.Rollback()
						if errors.Is(err, storage.ErrUnavailable) {
							failed.Add(1)
							time.Sleep(20 * time.Millisecond)
							app = nil
							break
						}
						otherErrs <- err
						return
					}
				}
				if app == nil {
					continue
				}
				err := app.Commit()
				switch {
				case err == nil:
					acked[w] = append(acked[w], t)
					ackedBetween.Add(1)
					k++
				case errors.Is(err, storage.ErrUnavailable):
					// A sender retries the same batch after a 503.
					failed.Add(1)
					time.Sleep(20 * time.Millisecond)
				default:
					otherErrs <- err
					return
				}
			}
		}()
	}
	waitAcked := func(n int64) {
		t.Helper()
		ackedBetween.Store(0)
		require.Eventually(t, func() bool { return ackedBetween.Load() >= n }, 30*time.Second, 10*time.Millisecond, "ingest does not progress")
	}
	outage := func(down func()) {
		t.Helper()
		waitAcked(400)
		down()
		require.Eventually(t, func() bool { return errors.Is(st.Ready(t.Context()), storage.ErrUnavailable) }, 10*time.Second, 10*time.Millisecond,
			"Ready must fail while ClickHouse is down")
		h := st.Health(t.Context())
		require.Equal(t, storage.StatusDown, h.Write.Status, "Health while ClickHouse is down: %+v", h)
		require.Equal(t, storage.StatusDown, h.Read.Status)
		before := failed.Load()
		require.Eventually(t, func() bool { return failed.Load() > before+10 }, 10*time.Second, 10*time.Millisecond,
			"commits must fail with ErrUnavailable while ClickHouse is down")
		srv.Start()
		require.Eventually(t, func() bool { return st.Ready(t.Context()) == nil }, 10*time.Second, 10*time.Millisecond, "Ready after restart")
		waitAcked(400)
		require.Equal(t, storage.Health{Read: storage.Check{Status: storage.StatusOK}, Write: storage.Check{Status: storage.StatusOK}}, st.Health(t.Context()),
			"Health after inserts succeed again")
	}
	outage(srv.Stop)
	outage(srv.Kill)
	stop.Store(true)
	wg.Wait()
	close(otherErrs)
	for err := range otherErrs {
		require.NoError(t, err, "a writer failed with an error other than ErrUnavailable")
	}
	t.Logf("acknowledged commits per writer: %d %d %d %d; failed attempts: %d", len(acked[0]), len(acked[1]), len(acked[2]), len(acked[3]), failed.Load())

	q, err := ts.Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(t.Context(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "outage"))
	got := map[string][]int64{}
	for set.Next() {
		s := set.At()
		var wi, si int
		_, err := fmt.Sscan(s.Labels().Get("writer"), &wi)
		require.NoError(t, err)
		_, err = fmt.Sscan(s.Labels().Get("series"), &si)
		require.NoError(t, err)
		it := s.Iterator(nil)
		for it.Next() != 0 {
			tt, v := it.At()
			require.Equal(t, value(wi, si, tt), v, "value of %s at %d", s.Labels(), tt)
			got[s.Labels().String()] = append(got[s.Labels().String()], tt)
		}
	}
	require.NoError(t, set.Err())
	require.Len(t, got, writers*seriesPerWriter)
	for w := range writers {
		for s := range seriesPerWriter {
			lset := labels.FromStrings("__name__", "outage", "writer", fmt.Sprint(w), "series", fmt.Sprint(s))
			times := got[lset.String()]
			require.Subset(t, times, acked[w], "series %s lacks acknowledged samples", lset)
			for i := 1; i < len(times); i++ {
				require.Less(t, times[i-1], times[i], "series %s: samples out of order or duplicated", lset)
			}
		}
	}

	// In ClickHouse itself, after merging: one row per (series, timestamp).
	require.NoError(t, st.conn.Exec(t.Context(), "OPTIMIZE TABLE "+st.schema.table(samplesTable)+" FINAL"))
	var rows, distinct uint64
	require.NoError(t, st.conn.QueryRow(t.Context(), "SELECT count(), uniqExact(fingerprint, ts) FROM "+st.schema.table(samplesTable)+" WHERE tenant = "+quote(string(tenancy.ID("outage")))).Scan(&rows, &distinct))
	require.Equal(t, distinct, rows, "duplicate rows after merge")
}
