package badger

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	bdb "github.com/dgraph-io/badger/v4"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

// writeRounds appends rounds samples to each of n series, one commit per
// round and writer holding one sample of each of the writer's series
// (t = round*15s, v = round+i). The writers own disjoint series, so every
// series is written in order, and the WAL's group sync covers several of
// their commits.
func writeRounds(t testing.TB, s *Store, tenantID string, n, from, rounds, writers int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		var series []labels.Labels
		for i := w; i < n; i += writers {
			series = append(series, replayLabels(i))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := from; r < from+rounds; r++ {
				app := s.ForTenant(tenancy.ID(tenantID)).Appender(context.Background())
				for k, lset := range series {
					if _, err := app.Append(0, lset, int64(r)*15000, float64(r+w+k*writers)); err != nil {
						errs <- err
						return
					}
				}
				if err := app.Commit(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func replayLabels(i int) labels.Labels {
	return labels.FromStrings("__name__", "replay_metric", "series", strconv.Itoa(i))
}

// TestReplayOfSealedSamplesIsLinear is the case of issue #10: many small
// commits over few series, whose chunks were sealed and written to Badger
// before the crash. Replay used to merge every one of those samples into
// the sealed chunks again as out-of-order data, one Badger read and
// rewrite per series and record (a minute and more for 500 series and
// 2,500 records); it must take well under a second.
func TestReplayOfSealedSamplesIsLinear(t *testing.T) {
	const n, rounds = 500, 2500
	dir := t.TempDir()
	s := openTest(t, dir, func(c *Config) { c.CheckpointInterval = time.Hour })
	writeRounds(t, s, "acme", n, 0, rounds, 1)
	crash(t, s)

	start := time.Now()
	s = openTest(t, dir, nil)
	took := time.Since(start)
	defer func() { require.NoError(t, s.Close()) }()
	t.Logf("replayed %d records of %d samples in %s", rounds, n, took)
	require.Less(t, took, 2*time.Second, "replay of %d records over %d series with sealed chunks", rounds, n)

	got := readAll(t, s, "acme")
	require.Len(t, got, n)
	for i := range n {
		samples := got[replayLabels(i).String()]
		require.Len(t, samples, rounds, "series %d", i)
		for r, smp := range samples {
			require.Equal(t, tsample{int64(r) * 15000, float64(r + i)}, smp, "series %d", i)
		}
	}
}

// TestReplayRecoversOutOfOrderWritesBadgerLost: an out-of-order write
// acknowledged after its chunk was sealed is in the WAL and, once merged,
// in Badger. Badger syncs nothing itself (the WAL is the durable copy), so
// after a power loss the merged chunk may be the old one: replay must
// apply the WAL's value, even though the sample is older than the newest
// sealed chunk, and keep last-write-wins across records.
func TestReplayRecoversOutOfOrderWritesBadgerLost(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, func(c *Config) { c.ChunkSamples = 10; c.CheckpointInterval = time.Hour })
	lset := labels.FromStrings("__name__", "m")
	write := func(ts int64, v float64) {
		app := s.ForTenant("a").Appender(context.Background())
		_, err := app.Append(0, lset, ts, v)
		require.NoError(t, err)
		require.NoError(t, app.Commit())
	}
	for i := int64(0); i < 35; i++ { // three sealed chunks and a head
		write(i*1000, float64(i))
	}
	write(5000, -5)   // replaces a sample of the first chunk
	write(5000, -50)  // and again: the last write wins
	write(-1000, -1)  // older than everything
	write(12500, 1.5) // between two samples of the second chunk
	crash(t, s)

	// Put the chunks back as they were before the merges, as a Badger
	// that lost its unsynced writes could leave them.
	db, err := bdb.Open(bdb.DefaultOptions(dir + "/badger").WithLogger(nil))
	require.NoError(t, err)
	require.NoError(t, db.Update(func(txn *bdb.Txn) error {
		it := txn.NewIterator(bdb.IteratorOptions{Prefix: []byte{kindChunk}})
		var keys [][]byte
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		it.Close()
		var id uint64
		for _, k := range keys {
			id, _, _, _ = parseChunkKey(k)
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		for c := int64(0); c < 3; c++ {
			var smps []sample
			for i := c * 10; i < c*10+10; i++ {
				smps = append(smps, sample{i * 1000, float64(i)})
			}
			ch := encodeChunks(smps, 10)[0]
			if err := txn.Set(chunkKey(1, id, ch.mint, ch.maxt), sealedValue(ch.data)); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, db.Close())

	s = openTest(t, dir, func(c *Config) { c.ChunkSamples = 10 })
	defer func() { require.NoError(t, s.Close()) }()
	want := []tsample{{-1000, -1}}
	for i := int64(0); i < 35; i++ {
		v := float64(i)
		if i == 5 {
			v = -50
		}
		want = append(want, tsample{i * 1000, v})
		if i == 12 {
			want = append(want, tsample{12500, 1.5})
		}
	}
	require.Equal(t, want, readAll(t, s, "a")[lset.String()])
}
