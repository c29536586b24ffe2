//go:build linux

package badger

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	bdb "github.com/dgraph-io/badger/v4"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// The degraded-mode tests break the disk for real: a tmpfs that fills up,
// and a read-only bind mount over the data directory. Both need root
// (CAP_SYS_ADMIN). Linux refuses to remount a file system read-only while
// files on it are open for writing (EBUSY), and the store always has some
// open, so the read-only case mounts a read-only view over the directory:
// every file the store opens from then on (a new WAL segment, a Badger
// memtable or table) is refused with EROFS, and statfs reports it
// read-only, as after a real remount.

// requireMount skips the test, or fails it in CI, when mounting is not
// allowed here.
func requireMount(t *testing.T, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("mount: %v: the degraded-mode tests cause disk failures with tmpfs and bind mounts and need root; CI runs as root and must run them", err)
	}
	t.Skipf("mount: %v (needs root; with CI=true this fails)", err)
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory, unmounted
// when the test ends (after the stores opened later are closed).
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		requireMount(t, err)
	}
	t.Cleanup(func() { require.NoError(t, syscall.Unmount(dir, 0), "unmount tmpfs %s", dir) })
	return dir
}

// fillDisk writes a file in dir until its file system has at most leave
// bytes free (0: until the file system refuses, ENOSPC) and returns the
// function that deletes it.
func fillDisk(t *testing.T, dir string, leave uint64) (free func()) {
	t.Helper()
	name := filepath.Join(dir, "filler")
	f, err := os.Create(name)
	require.NoError(t, err)
	buf := make([]byte, 1<<20)
	for {
		st, err := statDisk(dir)
		require.NoError(t, err)
		if leave > 0 && st.free <= leave {
			break
		}
		n := uint64(len(buf))
		if leave > 0 {
			n = min(n, st.free-leave)
		}
		if _, err := f.Write(buf[:n]); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			break
		}
	}
	require.NoError(t, f.Close())
	return func() { require.NoError(t, os.Remove(name)) }
}

// mountReadOnly mounts a read-only view of dir over it and returns the
// function that removes it.
func mountReadOnly(t *testing.T, dir string) (restore func()) {
	t.Helper()
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		requireMount(t, err)
	}
	mounted := true
	unmount := func() {
		if mounted {
			mounted = false
			require.NoError(t, syscall.Unmount(dir, 0), "unmount read-only view of %s", dir)
		}
	}
	t.Cleanup(unmount)
	require.NoError(t, syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""))
	return unmount
}

// TestDegradedMode breaks the data directory of a running store in each
// way, then checks that writes are refused with storage.ErrUnavailable
// while reads answer from what was written before, that Health reports the
// write path down and the read path ok, and that once the disk is repaired
// writes succeed again without a restart, a checkpoint truncates the WAL,
// and nothing acknowledged is lost across a reopen.
func TestDegradedMode(t *testing.T) {
	cases := []struct {
		name string
		// minFree is Config.MinFreeBytes: a reserve, or -1 for no guard, so
		// that the file system itself refuses the writes.
		minFree int64
		// breakDisk breaks dir and returns the repair.
		breakDisk func(t *testing.T, dir string) (repair func())
		// emptyWAL: checkpoint before breaking, so the WAL segment is
		// empty. A record that fits the slack of the segment's last page
		// needs no space, even on a full tmpfs.
		emptyWAL bool
		// checkpoint: a checkpoint is tried while broken (it must fail and
		// keep the WAL). Not with ENOSPC and no guard: Badger writes
		// through memory-mapped files, and one on a full tmpfs is SIGBUS.
		checkpoint bool
		// brokenByCheckpoint: writes go on into the open WAL segment until
		// a checkpoint rotates it and the new segment cannot be created.
		brokenByCheckpoint bool
		// noPrealloc: no WAL preallocation, whose zeros would hold the
		// record the full file system is to refuse.
		noPrealloc bool
		wantErr    string
	}{
		{
			name:       "disk full: refused below the reserve",
			minFree:    8 << 20,
			breakDisk:  func(t *testing.T, dir string) func() { return fillDisk(t, dir, 4<<20) },
			checkpoint: true,
			wantErr:    "--storage.badger.min-free-bytes",
		},
		{
			name:       "disk full: the file system refuses the WAL write",
			minFree:    -1,
			breakDisk:  func(t *testing.T, dir string) func() { return fillDisk(t, dir, 0) },
			emptyWAL:   true,
			noPrealloc: true,
			wantErr:    "no space left on device",
		},
		{
			name:       "read-only: refused",
			minFree:    8 << 20,
			breakDisk:  mountReadOnly,
			checkpoint: true,
			wantErr:    "read-only file system",
		},
		{
			name:               "read-only: the file system refuses the next WAL segment",
			minFree:            -1,
			breakDisk:          mountReadOnly,
			checkpoint:         true,
			brokenByCheckpoint: true,
			wantErr:            "read-only file system",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(mountTmpfs(t, 48<<20), "data")
			open := func() *Store {
				return openTest(t, dir, func(c *Config) {
					c.ChunkSamples = 10 // sealed chunks in Badger and a head in memory
					c.CheckpointInterval = time.Hour
					c.IdleTimeout = time.Hour
					c.MinFreeBytes = tc.minFree
					if tc.noPrealloc {
						c.WALPreallocate = -1
					}
				})
			}
			s := open()
			closed := false
			t.Cleanup(func() {
				if !closed {
					require.NoError(t, s.Close())
				}
			})
			const tenant = tenancy.ID("acme")
			acked := map[string][]tsample{}
			// write appends samples [from, to) of three series, one every
			// second, and records them as acknowledged when Commit says so.
			write := func(from, to int64) error {
				app := s.ForTenant(tenant).AppenderV2(context.Background())
				var batch map[string][]tsample
				for i := range 3 {
					lset := labels.FromStrings("__name__", "up", "instance", fmt.Sprint(i))
					for ts := from; ts < to; ts++ {
						_, err := app.Append(0, lset, 0, ts*1000, float64(ts*10+int64(i)), nil, nil, promstorage.AOptions{})
						if err != nil {
							_ = app.Rollback()
							return err
						}
						if batch == nil {
							batch = map[string][]tsample{}
						}
						batch[lset.String()] = append(batch[lset.String()], tsample{ts * 1000, float64(ts*10 + int64(i))})
					}
				}
				if err := app.Commit(); err != nil {
					return err
				}
				for k, v := range batch {
					acked[k] = append(acked[k], v...)
				}
				return nil
			}
			require.NoError(t, write(0, 25)) // two sealed chunks and a head of five per series
			require.Equal(t, acked, readAll(t, s, tenant))
			h := s.Health(context.Background())
			require.Equal(t, storage.StatusOK, h.Write.Status, h.Write.Message)

			if tc.emptyWAL {
				require.NoError(t, s.checkpoint())
			}
			repair := tc.breakDisk(t, dir)
			if tc.checkpoint {
				err := s.checkpoint()
				require.ErrorIs(t, err, storage.ErrUnavailable)
				require.ErrorContains(t, err, tc.wantErr)
			}
			err := write(25, 26) // one sample per series: no Badger write
			require.ErrorIs(t, err, storage.ErrUnavailable)
			require.ErrorContains(t, err, tc.wantErr)
			require.ErrorIs(t, write(25, 26), storage.ErrUnavailable, "a retry fails the same way")

			require.Equal(t, acked, readAll(t, s, tenant), "reads answer while writes fail")
			h = s.Health(context.Background())
			require.Equal(t, storage.StatusOK, h.Read.Status, h.Read.Message)
			require.Equal(t, storage.StatusDown, h.Write.Status)
			require.Contains(t, h.Write.Message, tc.wantErr)
			require.NoError(t, s.Ready(context.Background()), "a store that reads stays ready")

			repair()
			require.NoError(t, write(25, 26), "the client's retry succeeds once the disk is back")
			require.NoError(t, write(26, 60), "writes that seal chunks succeed")
			h = s.Health(context.Background())
			require.Equal(t, storage.StatusOK, h.Write.Status, h.Write.Message)
			require.Equal(t, acked, readAll(t, s, tenant))

			require.NoError(t, s.checkpoint())
			segs, err := listSegments(filepath.Join(dir, "wal"))
			require.NoError(t, err)
			require.Len(t, segs, 1, "the checkpoint deleted every segment it covered, the ones kept during the failure too")

			require.NoError(t, write(60, 65), "acknowledged after the checkpoint: only in the WAL")
			require.NoError(t, s.Close())
			closed = true
			s = open()
			closed = false
			require.Equal(t, acked, readAll(t, s, tenant), "nothing acknowledged was lost")
		})
	}
}

// TestRefusedBadgerWritesKeepChunks: Badger writes refused on a full disk
// (sealing an idle head, an out-of-order merge) leave the chunks in memory,
// where reads find them and the next checkpoint writes them.
func TestRefusedBadgerWritesKeepChunks(t *testing.T) {
	dir := filepath.Join(mountTmpfs(t, 48<<20), "data")
	open := func() *Store {
		return openTest(t, dir, func(c *Config) {
			c.ChunkSamples = 10
			c.CheckpointInterval = time.Hour
			c.IdleTimeout = time.Hour
			c.MinFreeBytes = 8 << 20
		})
	}
	s := open()
	defer func() { require.NoError(t, s.Close()) }()
	lset := labels.FromStrings("__name__", "m")
	app := s.ForTenant("acme").AppenderV2(context.Background())
	for ts := int64(0); ts < 15; ts++ { // a sealed chunk in Badger, a head of five
		_, err := app.Append(0, lset, 0, ts*1000, float64(ts), nil, nil, promstorage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	want := readAll(t, s, "acme")
	tn, err := s.tenantFor("acme", false)
	require.NoError(t, err)
	ser := tn.lookup(lset.Hash(), lset)
	require.NotNil(t, ser)

	free := fillDisk(t, dir, 4<<20)
	s.sealIdle(time.Now().Add(2 * time.Hour))
	ser.mu.Lock()
	require.Nil(t, ser.head, "the idle head was sealed")
	require.Len(t, ser.unflushed, 1, "and its chunk kept in memory: the flush was refused")
	kept := ser.unflushed[0]
	err = s.mergeOOOLocked(tn, ser, []sample{{t: 12_500, v: 99}})
	require.ErrorIs(t, err, storage.ErrUnavailable)
	require.Equal(t, []memChunk{kept}, ser.unflushed, "the refused merge left the chunk it would have rewritten")
	ser.mu.Unlock()
	require.Equal(t, want, readAll(t, s, "acme"))
	require.Equal(t, storage.StatusDown, s.Health(context.Background()).Write.Status)

	free()
	require.NoError(t, s.checkpoint())
	segs, err := listSegments(filepath.Join(dir, "wal"))
	require.NoError(t, err)
	require.Len(t, segs, 1, "the WAL holding the samples is gone: only Badger has them now")
	require.NoError(t, s.Close())
	s = open()
	require.Equal(t, want, readAll(t, s, "acme"))
}

// TestCheckpointWritesMissingSeriesRecords: a series whose 'S' record did
// not reach Badger (its batch failed after the WAL write) is written by the
// next checkpoint, before the checkpoint deletes the WAL segments that
// define it.
func TestCheckpointWritesMissingSeriesRecords(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, func(c *Config) { c.CheckpointInterval = time.Hour })
	defer func() { require.NoError(t, s.Close()) }()
	lset := labels.FromStrings("__name__", "m", "job", "j")
	app := s.ForTenant("acme").AppenderV2(context.Background())
	_, err := app.Append(0, lset, 0, 1000, 1, nil, nil, promstorage.AOptions{})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
	want := readAll(t, s, "acme")

	// The state a failed 'S' write leaves: the series in memory and in the
	// WAL, not in Badger.
	tn, err := s.tenantFor("acme", false)
	require.NoError(t, err)
	ser := tn.lookup(lset.Hash(), lset)
	ser.mu.Lock()
	ser.persisted = false
	ser.mu.Unlock()
	require.NoError(t, s.db.Update(func(txn *bdb.Txn) error { return txn.Delete(seriesKey(kindSeries, tn.num, ser.id)) }))

	require.NoError(t, s.checkpoint())
	segs, err := listSegments(filepath.Join(dir, "wal"))
	require.NoError(t, err)
	require.Len(t, segs, 1, "the WAL that defined the series is gone")
	require.NoError(t, s.Close())
	s = openTest(t, dir, nil)
	require.Equal(t, want, readAll(t, s, "acme"))
}
