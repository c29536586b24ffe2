package badger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	bdb "github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/luminate-io/luminate/storage"
)

// Degraded mode. When the data directory fills up or turns read-only, the
// store keeps answering reads from memory and Badger, and refuses writes
// with storage.ErrUnavailable (503 with Retry-After) before anything is
// written: the guard (writable) checks the file systems of the WAL and of
// Badger on every commit and before every Badger write. Writes that fail
// anyway (the file system refuses them) leave the store consistent: a
// failed WAL append is cut off and never acknowledged, sealed chunks whose
// Badger write failed stay in memory and are retried by the next flush or
// checkpoint. Clients retry, and the first write after the disk recovers
// succeeds: there is nothing to reset.

// diskState is what statfs says about the file system of a directory.
type diskState struct {
	known    bool // false where statDisk is not implemented
	free     uint64
	readOnly bool
}

// writeFailure is the last failed write of one kind, for Health.
type writeFailure struct {
	err error
	at  time.Time
}

// Reasons of luminate_badger_write_failures_total.
const (
	failWAL      = "wal"
	failBadger   = "badger"
	failDiskFull = "disk_full"
	failReadOnly = "read_only"
)

// failed records a failed write of kind p.
func (s *Store) failed(p *atomic.Pointer[writeFailure], reason string, err error) {
	p.Store(&writeFailure{err: err, at: time.Now()})
	s.m.writeFailures.WithLabelValues(reason).Inc()
}

// succeeded clears the failure of kind p after a successful write.
func succeeded(p *atomic.Pointer[writeFailure]) {
	if p.Load() != nil {
		p.Store(nil)
	}
}

// unknownFree is checkDisk's free space when statfs could not tell.
const unknownFree = ^uint64(0)

// checkDisk returns the least free space of the data directory's file
// systems, and an error wrapping storage.ErrUnavailable when they cannot
// take writes: read-only, or below Config.MinFreeBytes.
func (s *Store) checkDisk() (free uint64, reason string, err error) {
	free = unknownFree
	for _, dir := range []string{s.wal.dir, s.badgerDir} {
		st, err := statDisk(dir)
		if err != nil {
			return unknownFree, failBadger, fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
		}
		if !st.known {
			continue
		}
		free = min(free, st.free)
		if s.cfg.MinFreeBytes < 0 {
			continue
		}
		if st.readOnly {
			return free, failReadOnly, fmt.Errorf("%w: %s is on a read-only file system; writes are refused until it is writable again", storage.ErrUnavailable, dir)
		}
		if st.free < uint64(s.cfg.MinFreeBytes) {
			return free, failDiskFull, fmt.Errorf("%w: disk almost full: %s has %d bytes free, below --storage.badger.min-free-bytes=%d; writes are refused until space is freed",
				storage.ErrUnavailable, dir, st.free, s.cfg.MinFreeBytes)
		}
	}
	return free, "", nil
}

// writable returns nil when a write may go ahead (see checkDisk) and
// counts the refusal otherwise.
func (s *Store) writable() error {
	_, reason, err := s.checkDisk()
	if err != nil {
		s.m.writeFailures.WithLabelValues(reason).Inc()
	}
	return err
}

// Health reports the read path (Badger answers a read) and the write path
// (the data directory is writable with room to spare, and the last
// write-ahead log and Badger writes succeeded). A store that cannot write
// stays ready: it serves reads.
func (s *Store) Health(context.Context) storage.Health {
	if s.closed.Load() || s.db.IsClosed() {
		down := storage.Check{Status: storage.StatusDown, Message: "store closed"}
		return storage.Health{Read: down, Write: down}
	}
	h := storage.Health{
		Read:  storage.Check{Status: storage.StatusOK, Message: "badger at " + s.cfg.Path},
		Write: storage.Check{Status: storage.StatusOK},
	}
	err := s.db.View(func(txn *bdb.Txn) error {
		_, err := txn.Get([]byte{kindTenant})
		if errors.Is(err, bdb.ErrKeyNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		h.Read = storage.Check{Status: storage.StatusDown, Message: "badger read: " + err.Error()}
	}
	free, _, err := s.checkDisk()
	var msgs []string
	switch {
	case err != nil:
		msgs = append(msgs, strings.TrimPrefix(err.Error(), storage.ErrUnavailable.Error()+": "))
	case free != unknownFree:
		h.Write.Message = fmt.Sprintf("%d bytes free", free)
	}
	if f := s.walErr.Load(); f != nil {
		msgs = append(msgs, fmt.Sprintf("write-ahead log write failed at %s: %v; writes are answered 503 until one succeeds", f.at.UTC().Format(time.RFC3339), f.err))
	}
	if f := s.dbErr.Load(); f != nil {
		msgs = append(msgs, fmt.Sprintf("badger write failed at %s: %v; the chunks are kept in memory and in the write-ahead log and retried", f.at.UTC().Format(time.RFC3339), f.err))
	}
	if len(msgs) > 0 {
		h.Write = storage.Check{Status: storage.StatusDown, Message: strings.Join(msgs, "; ")}
	}
	return h
}

// diskCollector exports the store's disk usage and Badger's LSM shape at
// scrape time.
type diskCollector struct {
	s                                *Store
	bytes, free, reserved            *prometheus.Desc
	tables, levelBytes, compactScore *prometheus.Desc
}

func newDiskCollector(s *Store) *diskCollector {
	return &diskCollector{
		s: s,
		bytes: prometheus.NewDesc("luminate_badger_disk_bytes",
			"Bytes the store's files occupy on disk, by kind: lsm (Badger's tables, memtables and manifest), vlog (Badger's value log), wal (the write-ahead log).",
			[]string{"kind"}, nil),
		free: prometheus.NewDesc("luminate_badger_disk_free_bytes",
			"Free bytes on the data directory's file system (the smaller of the WAL's and Badger's). Writes are refused below luminate_badger_disk_reserved_bytes.", nil, nil),
		reserved: prometheus.NewDesc("luminate_badger_disk_reserved_bytes",
			"Free space the data directory must keep for writes to be accepted (--storage.badger.min-free-bytes; 0 when the check is off).", nil, nil),
		tables: prometheus.NewDesc("luminate_badger_lsm_tables",
			"Badger LSM tables, by level. Level 0 stalls writes at 15 tables.", []string{"level"}, nil),
		levelBytes: prometheus.NewDesc("luminate_badger_lsm_bytes",
			"Bytes of Badger LSM tables, by level.", []string{"level"}, nil),
		compactScore: prometheus.NewDesc("luminate_badger_compaction_score",
			"Badger's compaction priority of the level: at 1 or more it is due for compaction; staying above 1 means compaction falls behind.", []string{"level"}, nil),
	}
}

func (c *diskCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.bytes, c.free, c.reserved, c.tables, c.levelBytes, c.compactScore} {
		ch <- d
	}
}

func (c *diskCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	var lsm, vlog int64
	forEachFile(s.badgerDir, func(name string, size int64) {
		if strings.HasSuffix(name, ".vlog") {
			vlog += size
		} else {
			lsm += size
		}
	})
	var wal int64
	forEachFile(s.wal.dir, func(_ string, size int64) { wal += size })
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(lsm), "lsm")
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(vlog), "vlog")
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(wal), "wal")
	if free, _, _ := s.checkDisk(); free != unknownFree {
		ch <- prometheus.MustNewConstMetric(c.free, prometheus.GaugeValue, float64(free))
	}
	ch <- prometheus.MustNewConstMetric(c.reserved, prometheus.GaugeValue, float64(max(s.cfg.MinFreeBytes, 0)))
	if s.closed.Load() || s.db.IsClosed() {
		return
	}
	for _, l := range s.db.Levels() {
		level := strconv.Itoa(l.Level)
		ch <- prometheus.MustNewConstMetric(c.tables, prometheus.GaugeValue, float64(l.NumTables), level)
		ch <- prometheus.MustNewConstMetric(c.levelBytes, prometheus.GaugeValue, float64(l.Size), level)
		ch <- prometheus.MustNewConstMetric(c.compactScore, prometheus.GaugeValue, l.Score, level)
	}
}

// forEachFile calls fn with the name and allocated size of every regular
// file in dir; errors (a file removed meanwhile) skip the file.
func forEachFile(dir string, fn func(name string, size int64)) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		fn(e.Name(), allocatedBytes(fi))
	}
}
