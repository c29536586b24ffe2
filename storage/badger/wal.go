package badger

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
)

// The write-ahead log makes a commit durable before it is acknowledged.
// Records are framed as length(4) crc32c(4) payload and appended to numbered
// segment files. Commits are group-synced: while one goroutine runs fsync,
// others queue behind it, and the next fsync covers all of them, so the
// number of fsyncs does not grow with the number of concurrent writers.
//
// A segment is deleted once a checkpoint has made everything in it durable
// in Badger (see Store.checkpoint).
//
// A segment is preallocated: a goroutine writes zeros (and syncs them)
// some megabytes ahead of its records, once it holds some, so that a commit's fsync has only
// the record's own pages to write, not the file's new size and blocks (a
// journal commit of the file system): on ext4 that takes a third of the
// time, and half the CPU. A record header of zeros (length 0) is where the
// records end. A segment is truncated to its records when it is closed.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const walHeaderSize = 8

type wal struct {
	dir         string
	segmentSize int64

	syncMu sync.Mutex // held while syncing or rotating; taken before mu
	mu     sync.Mutex // guards the fields below
	f      *os.File
	seg    int
	size   int64
	broken bool // the tail of f may hold a torn record: rotate before writing

	written uint64 // records written so far
	synced  atomic.Uint64
	// failedUpTo is the number of records written when an fsync last
	// failed. After a failed fsync the kernel may have dropped the dirty
	// pages and a later fsync of the same file can succeed without them,
	// so no record up to it may be acknowledged (see syncUpTo).
	failedUpTo atomic.Uint64

	frame []byte // reused under mu

	// Preallocation, guarded by mu: the segment holds zeros, synced, from
	// size up to alloc; while extending, a goroutine zero-fills from
	// extFrom on, where records wait (extended) to be written.
	prealloc   int64 // bytes zero-filled ahead at a time; 0: none
	alloc      int64
	extFrom    int64
	extending  bool
	noPrealloc bool // an extension of this segment failed: no more
	extended   *sync.Cond
	zeros      []byte // what extensions write, one at a time
}

func segmentName(dir string, n int) string {
	return filepath.Join(dir, fmt.Sprintf("%08d", n))
}

// listSegments returns the segment numbers in dir, ascending.
func listSegments(dir string) ([]int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read wal dir: %w", err)
	}
	var segs []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil || e.IsDir() {
			continue
		}
		segs = append(segs, n)
	}
	sort.Ints(segs)
	return segs, nil
}

// openWAL opens the log in dir and starts a new segment after the existing
// ones, which it returns for replay.
func openWAL(dir string, segmentSize, prealloc int64) (*wal, []int, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("create wal dir: %w", err)
	}
	segs, err := listSegments(dir)
	if err != nil {
		return nil, nil, err
	}
	next := 1
	if len(segs) > 0 {
		next = segs[len(segs)-1] + 1
	}
	w := &wal{dir: dir, segmentSize: segmentSize, prealloc: max(prealloc, 0)}
	w.extended = sync.NewCond(&w.mu)
	if err := w.openSegment(next); err != nil {
		return nil, nil, err
	}
	return w, segs, nil
}

func (w *wal) openSegment(n int) error {
	f, err := os.OpenFile(segmentName(w.dir, n), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("create wal segment: %w", err)
	}
	if err := syncDir(w.dir); err != nil {
		_ = f.Close()
		return err
	}
	w.f, w.seg, w.size, w.broken = f, n, 0, false
	w.alloc, w.noPrealloc = 0, false
	return nil
}

// extendLocked starts zero-filling the segment ahead of its records when
// they come within half the preallocation of its end, once the segment
// holds a 64th of the preallocation (a log written to now and then, as in
// tests, is not worth the zeros). Callers hold mu (or have w to
// themselves).
func (w *wal) extendLocked() {
	if w.prealloc == 0 || w.extending || w.noPrealloc || w.alloc-w.size > w.prealloc/2 || w.size < w.prealloc/64 {
		return
	}
	from := max(w.alloc, w.size)
	n := min(w.prealloc, w.segmentSize-from)
	if n <= 0 {
		return // the segment is full: the next record rotates it
	}
	w.extending, w.extFrom = true, from
	if w.zeros == nil {
		w.zeros = make([]byte, 64<<10)
	}
	go w.extend(w.f, from, n)
}

// extend writes n zeros to f from offset from and syncs them.
func (w *wal) extend(f *os.File, from, n int64) {
	zeros := w.zeros // only this extension writes them
	var err error
	for off := from; off < from+n && err == nil; off += int64(len(zeros)) {
		_, err = f.WriteAt(zeros[:min(int64(len(zeros)), from+n-off)], off)
	}
	if err == nil {
		err = f.Sync()
	}
	w.mu.Lock()
	if err == nil {
		w.alloc = from + n
	} else {
		w.noPrealloc = true // the file system refused: records append, as without
	}
	w.extending = false
	w.extended.Broadcast()
	w.mu.Unlock()
}

// settleLocked waits for the extension in flight, if any, and truncates
// the segment to its records, before the segment is closed. Callers hold
// mu.
func (w *wal) settleLocked() {
	for w.extending {
		w.extended.Wait()
	}
	if w.alloc > w.size {
		if err := w.f.Truncate(w.size); err == nil {
			w.alloc = w.size
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir for sync: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	return nil
}

// errSyncFailed refuses to acknowledge a record a failed fsync covered.
var errSyncFailed = errors.New("sync wal: an earlier fsync of this segment failed")

// log appends rec and returns once it is on stable storage.
func (w *wal) log(rec []byte) error {
	n, err := w.write(rec)
	if err != nil {
		return err
	}
	return w.syncUpTo(n)
}

// write appends rec, not yet synced, and returns its number, for
// syncUpTo: a caller may do other work while the record is synced, as
// long as it acknowledges nothing before syncUpTo returns.
func (w *wal) write(rec []byte) (uint64, error) {
	w.mu.Lock()
	for {
		if w.broken || w.size >= w.segmentSize {
			w.mu.Unlock()
			if _, err := w.rotate(); err != nil {
				return 0, err
			}
			w.mu.Lock()
			continue
		}
		if w.extending && w.size+walHeaderSize+int64(len(rec)) > w.extFrom {
			w.extended.Wait() // not into the zeros being written
			continue
		}
		break
	}
	w.frame = w.frame[:0]
	w.frame = binary.LittleEndian.AppendUint32(w.frame, uint32(len(rec)))
	w.frame = binary.LittleEndian.AppendUint32(w.frame, crc32.Checksum(rec, castagnoli))
	w.frame = append(w.frame, rec...)
	n, err := w.f.Write(w.frame)
	if err != nil {
		// Cut the torn record off so later records stay readable.
		if terr := w.f.Truncate(w.size); terr != nil {
			w.broken = true
		} else if _, serr := w.f.Seek(w.size, io.SeekStart); serr != nil {
			w.broken = true
		}
		w.mu.Unlock()
		return 0, fmt.Errorf("write wal: %w", err)
	}
	w.size += int64(n)
	w.written++
	mine := w.written
	w.extendLocked()
	w.mu.Unlock()
	return mine, nil
}

// syncUpTo returns once record number rec is on stable storage, or an
// error if it may not be.
func (w *wal) syncUpTo(rec uint64) error {
	// synced before failedUpTo: rotate stores them in the other order.
	if w.synced.Load() >= rec {
		if rec <= w.failedUpTo.Load() {
			return errSyncFailed
		}
		return nil
	}
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	if rec <= w.failedUpTo.Load() {
		return errSyncFailed
	}
	if w.synced.Load() >= rec {
		return nil
	}
	w.mu.Lock()
	target, f := w.written, w.f
	w.mu.Unlock()
	if err := f.Sync(); err != nil {
		w.mu.Lock()
		w.broken = true
		w.failedUpTo.Store(w.written)
		w.mu.Unlock()
		return fmt.Errorf("sync wal: %w", err)
	}
	w.synced.Store(target)
	return nil
}

// rotate syncs and closes the current segment and starts the next one. It
// returns the number of the segment it closed. A segment whose final sync
// fails is closed all the same: the records it did not make durable are
// never acknowledged (failedUpTo), and the next segment starts clean.
func (w *wal) rotate() (int, error) {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	closed := w.seg
	w.settleLocked()
	if err := w.f.Sync(); err == nil {
		w.synced.Store(w.written)
	} else if w.synced.Load() < w.written {
		w.failedUpTo.Store(w.written)
	}
	_ = w.f.Close() // after Sync, Close reports nothing about durability
	if err := w.openSegment(closed + 1); err != nil {
		w.broken = true
		return 0, err
	}
	w.synced.Store(w.written)
	return closed, nil
}

// removeUpTo deletes every segment numbered at most n.
func (w *wal) removeUpTo(n int) error {
	segs, err := listSegments(w.dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range segs {
		if s <= n {
			if err := os.Remove(segmentName(w.dir, s)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (w *wal) close() error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.settleLocked()
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// replaySegment calls fn for every intact record of segment n, in order,
// adding the bytes it reads to read. A torn or corrupt record ends the
// segment: it was never acknowledged.
func replaySegment(dir string, n int, read *atomic.Int64, fn func(rec []byte) error) (torn bool, err error) {
	f, err := os.Open(segmentName(dir, n))
	if err != nil {
		return false, fmt.Errorf("open wal segment: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(countingReader{f, read}, 1<<20)
	var hdr [walHeaderSize]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return false, nil
			}
			return true, nil
		}
		size := binary.LittleEndian.Uint32(hdr[0:4])
		sum := binary.LittleEndian.Uint32(hdr[4:8])
		if size == 0 && sum == 0 {
			return false, nil // the preallocated zeros after the last record
		}
		if size > 1<<30 {
			return true, nil
		}
		if cap(buf) < int(size) {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(r, buf); err != nil {
			return true, nil
		}
		if crc32.Checksum(buf, castagnoli) != sum {
			return true, nil
		}
		if err := fn(buf); err != nil {
			return false, err
		}
	}
}

// countingReader adds the bytes read from r to n.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
