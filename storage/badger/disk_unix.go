//go:build linux || darwin || freebsd

package badger

import (
	"fmt"
	"io/fs"
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
