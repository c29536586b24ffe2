package badger

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// replayAll returns the records of segment n of dir, and whether it ended
// in a torn record.
func replayAll(t *testing.T, dir string, n int) ([][]byte, bool) {
	t.Helper()
	var read atomic.Int64
	var out [][]byte
	torn, err := replaySegment(dir, n, &read, func(rec []byte) error {
		out = append(out, bytes.Clone(rec))
		return nil
	})
	require.NoError(t, err)
	return out, torn
}

// TestWALPreallocated: records written into the zeros a segment is
// preallocated with (some larger than the preallocation) replay whole and
// in order, the zeros after them end the segment without a torn record,
// a torn record among the zeros is one, a closed or rotated segment is cut
// to its records, and the segments keep their records across rotations.
func TestWALPreallocated(t *testing.T) {
	dir := t.TempDir()
	const prealloc = 64 << 10
	w, segs, err := openWAL(dir, 4<<20, prealloc)
	require.NoError(t, err)
	require.Empty(t, segs)
	rng := rand.New(rand.NewPCG(1, 2))
	var want [][]byte
	frames := int64(0)
	for i := range 200 {
		rec := make([]byte, 1+rng.IntN(8<<10))
		if i%50 == 7 {
			rec = make([]byte, 3*prealloc/2) // more than is preallocated at a time
		}
		for j := range rec {
			rec[j] = byte(rng.Uint32() | 1)
		}
		n, err := w.write(rec)
		require.NoError(t, err)
		require.NoError(t, w.syncUpTo(n))
		want = append(want, rec)
		frames += walHeaderSize + int64(len(rec))
	}
	require.Equal(t, 1, w.seg, "one segment of 4 MiB")
	require.Equal(t, frames, w.size)

	// The segment as a crash leaves it: the records, then zeros.
	require.Eventually(t, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return !w.extending
	}, 10*time.Second, time.Millisecond)
	info, err := os.Stat(segmentName(dir, 1))
	require.NoError(t, err)
	require.Greater(t, info.Size(), frames, "zeros after the records")
	got, torn := replayAll(t, dir, 1)
	require.False(t, torn, "the zeros end the segment")
	require.Equal(t, want, got)

	// A record torn among the zeros: its header and part of it.
	crashed := t.TempDir()
	data, err := os.ReadFile(segmentName(dir, 1))
	require.NoError(t, err)
	hdr := binary.LittleEndian.AppendUint32(nil, 100)
	hdr = binary.LittleEndian.AppendUint32(hdr, 12345)
	copy(data[frames:], append(hdr, 1, 2, 3))
	require.NoError(t, os.WriteFile(segmentName(crashed, 1), data, 0o600))
	got, torn = replayAll(t, crashed, 1)
	require.True(t, torn)
	require.Equal(t, want, got)

	// Rotated: cut to its records; the next segment is preallocated too.
	closed, err := w.rotate()
	require.NoError(t, err)
	require.Equal(t, 1, closed)
	info, err = os.Stat(segmentName(dir, 1))
	require.NoError(t, err)
	require.Equal(t, frames, info.Size())
	n, err := w.write([]byte("after the rotation"))
	require.NoError(t, err)
	require.NoError(t, w.syncUpTo(n))
	require.NoError(t, w.close())
	info, err = os.Stat(segmentName(dir, 2))
	require.NoError(t, err)
	require.Equal(t, int64(walHeaderSize+len("after the rotation")), info.Size(), "closed: cut to its records")
	got, torn = replayAll(t, dir, 2)
	require.False(t, torn)
	require.Equal(t, [][]byte{[]byte("after the rotation")}, got)
	got, _ = replayAll(t, dir, 1)
	require.Equal(t, want, got)
}

// TestWALPreallocatedConcurrent: concurrent writers, while segments are
// extended and rotated, lose and tear no record.
func TestWALPreallocatedConcurrent(t *testing.T) {
	dir := t.TempDir()
	w, _, err := openWAL(dir, 64<<10, 16<<10)
	require.NoError(t, err)
	const writers, each = 4, 300
	errs := make(chan error, writers)
	for g := range writers {
		go func() {
			for i := range each {
				rec := []byte(fmt.Sprintf("writer %d record %d %s", g, i, bytes.Repeat([]byte{'x'}, i%700)))
				n, err := w.write(rec)
				if err == nil {
					err = w.syncUpTo(n)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		require.NoError(t, <-errs)
	}
	require.NoError(t, w.close())
	segs, err := listSegments(dir)
	require.NoError(t, err)
	require.Greater(t, len(segs), 1, "rotated")
	seen := map[string]bool{}
	for _, s := range segs {
		got, torn := replayAll(t, dir, s)
		require.False(t, torn, "segment %d", s)
		for _, r := range got {
			seen[string(r)] = true
		}
	}
	require.Len(t, seen, writers*each)
}
