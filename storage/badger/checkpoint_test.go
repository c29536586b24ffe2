package badger

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// TestCheckpointsRacingCommits runs checkpoints while two writers commit
// batches that seal chunks, create series and merge out-of-order samples,
// then deletes the WAL with a last checkpoint and reopens: everything
// acknowledged must be in Badger, whatever the checkpoints raced with.
func TestCheckpointsRacingCommits(t *testing.T) {
	dir := t.TempDir()
	open := func() *Store {
		return openTest(t, dir, func(c *Config) {
			c.ChunkSamples = 4
			c.CheckpointInterval = time.Hour
		})
	}
	s := open()
	var (
		mu    sync.Mutex
		acked = map[string][]tsample{}
		wg    sync.WaitGroup
		done  = make(chan struct{})
		errs  = make(chan error, 2)
	)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				for round := int64(0); round < 60; round++ {
					app := s.ForTenant("acme").AppenderV2(context.Background())
					batch := map[string][]tsample{}
					for i := range 20 {
						// New series every round, and every series of the
						// writer gets a sample per round.
						for _, lset := range []labels.Labels{
							labels.FromStrings("__name__", "m", "w", fmt.Sprint(w), "i", fmt.Sprint(i)),
							labels.FromStrings("__name__", "n", "w", fmt.Sprint(w), "round", fmt.Sprint(round)),
						} {
							ts := round * 1000
							if round%10 == 9 && i%5 == 0 {
								ts = (round - 7) * 1000 // older than a sealed chunk: a merge
							}
							v := float64(round*100 + int64(i))
							if _, err := app.Append(0, lset, 0, ts, v, nil, nil, promstorage.AOptions{}); err != nil {
								return err
							}
							batch[lset.String()] = append(batch[lset.String()], tsample{ts, v})
						}
					}
					if err := app.Commit(); err != nil {
						return err
					}
					mu.Lock()
					for k, v := range batch {
						acked[k] = mergeTSamples(acked[k], v)
					}
					mu.Unlock()
				}
				return nil
			}()
		}()
	}
	go func() { wg.Wait(); close(done) }()
	checkpoints := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		require.NoError(t, s.checkpoint())
		checkpoints++
	}
	t.Logf("%d checkpoints raced the writers", checkpoints)
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)
	require.Equal(t, acked, readAll(t, s, "acme"))
	require.NoError(t, s.checkpoint())
	segs, err := listSegments(filepath.Join(dir, "wal"))
	require.NoError(t, err)
	require.Len(t, segs, 1)
	require.NoError(t, s.Close())
	s = open()
	defer func() { require.NoError(t, s.Close()) }()
	require.Equal(t, acked, readAll(t, s, "acme"))
}

// mergeTSamples adds newer to sorted samples: at an existing timestamp the
// newer value wins (last write wins).
func mergeTSamples(old, newer []tsample) []tsample {
	for _, n := range newer {
		i := 0
		for i < len(old) && old[i].t < n.t {
			i++
		}
		if i < len(old) && old[i].t == n.t {
			old[i] = n
			continue
		}
		old = append(old, tsample{})
		copy(old[i+1:], old[i:])
		old[i] = n
	}
	return old
}
