//go:build linux || darwin || freebsd

package badger

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// stReadOnly is ST_RDONLY in statfs flags on Linux, MNT_RDONLY on the BSDs
// and macOS.
const stReadOnly = 1

// statDisk reports the file system holding dir.
func statDisk(dir string) (diskState, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return diskState{}, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return diskState{
		known:    true,
		free:     uint64(st.Bavail) * uint64(st.Bsize), //nolint:unconvert // the field types differ by OS
		readOnly: uint64(st.Flags)&stReadOnly != 0,     //nolint:unconvert
	}, nil
}

// allocatedBytes is what a file occupies on disk: Badger's memory-mapped
// files are sparse, far larger than their data.
func allocatedBytes(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512 //nolint:unconvert
	}
	return fi.Size()
}

// lockDir takes an exclusive lock on dir/LOCK, held until release is
// called or the process exits (a kill -9 releases it too). It fails with
// ErrLocked when another process holds it.
func lockDir(dir string) (release func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { _ = f.Close() }, nil
}
