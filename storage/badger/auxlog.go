package badger

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// Exemplars and metadata ("aux" data) live in memory, bounded per tenant
// (see auxTenant), and are made durable in a log of their own under
// Path/auxlog, written by the same group-synced log code as the sample WAL:
// a Commit that carries exemplars or changed metadata appends one record
// after its samples are durable, and returns once that record is synced.
//
// Why a log of its own rather than the sample WAL or Badger keys: the
// sample WAL is truncated by checkpoints, which would then have to write
// every exemplar to Badger too; Badger keys need a Badger commit plus a
// db.Sync (an msync of the whole memtable, which the chunk flushes keep
// dirty) per commit, and one delete per evicted exemplar. A separate log
// costs nothing on the float path (a commit without exemplars or changed
// metadata never touches it) and one small fsync, shared by concurrent
// committers, on the rare commits that carry them.
//
// The log is compacted by snapshots: once it has grown by more than the
// last snapshot's size (at least auxMinCompact), the log is rotated and
// everything memory holds (at most the bound per tenant) is written to
// auxlog/snapshots/<segment> with an fsync before a rename; then the older
// snapshots and the segments it covers are deleted. What was evicted, or
// dropped by retention, leaves the disk with the next snapshot. A restart
// reads the newest snapshot and the segments after it, so it reads at
// most about twice the bound per tenant.
//
// Records (one per commit in the log; a snapshot is a sequence of them),
// framed like WAL records:
//
//	version(1) tenant(uvarint len, bytes)
//	nseries(uvarint) [labels]...
//	nexemplars(uvarint) [series(uvarint) labels value(8) ts(varint) hasTs(1)]...
//	nmetadata(uvarint) [family type unit help (uvarint len, bytes each)]...
//
// In a version 1 record (the log's) an exemplar's series indexes the
// record's own series. Snapshots write version 2 records, tenant by
// tenant: first the tenant's series, once each, then its exemplars in the
// order they were stored, whose series index every series of the
// tenant's records so far, so that a restart decodes each series' labels
// once rather than once per exemplar.
//
// Replaying a record applies it with the same checks as a commit, which
// makes replay idempotent: exemplars already held are duplicates or older
// than their series' newest, and metadata already held is unchanged.
const (
	auxRecordVersion   byte = 1
	auxSnapshotVersion byte = 2
	auxSegmentSize          = 64 << 20
	auxMinCompact           = 4 << 20
	auxSnapshotChunk        = 4096 // exemplars (or metadata entries) per snapshot record
)

// auxStore holds every tenant's exemplars and metadata. Safe for
// concurrent use.
type auxStore struct {
	dir, snapDir string
	logger       *slog.Logger
	exLimits     storage.TenantLimit
	metaLimits   storage.TenantLimit
	retention    time.Duration

	// applyMu is read-held by a commit from its log write until it is
	// applied to memory, and write-held by a compaction while it rotates
	// the log, so that a snapshot taken after the rotation covers every
	// record of the rotated segments.
	applyMu sync.RWMutex
	closed  bool // under applyMu
	log     *wal

	mu      sync.RWMutex
	tenants map[tenancy.ID]*auxTenant

	metaDropped atomic.Uint64 // metadata of new families refused at the bound

	tail      atomic.Int64 // bytes logged since the last snapshot
	snapBytes atomic.Int64 // size of the last snapshot
	compactMu sync.Mutex
	running   atomic.Bool
	wg        sync.WaitGroup
}

// openAux opens (or creates) the exemplar and metadata log under
// cfg.Path/auxlog, loads it into memory and registers its metrics on reg
// (when not nil).
func openAux(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*auxStore, error) {
	start := time.Now()
	x := &auxStore{
		dir:        filepath.Join(cfg.Path, "auxlog"),
		logger:     logger,
		exLimits:   cfg.ExemplarLimits,
		metaLimits: cfg.MetadataLimits,
		retention:  cfg.longestRetention(), // the pass trims per tenant
		tenants:    map[tenancy.ID]*auxTenant{},
	}
	x.snapDir = filepath.Join(x.dir, "snapshots")
	if err := os.MkdirAll(x.snapDir, 0o750); err != nil {
		return nil, fmt.Errorf("create exemplar log dir: %w", err)
	}
	cutoff := x.cutoff(start)
	var table snapshotTable
	replay := func(rec []byte) error {
		if err := x.replay(rec, cutoff, &table); err != nil {
			x.logger.Warn("skipping a corrupt exemplar log record", "err", err)
		}
		return nil
	}
	snaps, err := listSegments(x.snapDir)
	if err != nil {
		return nil, err
	}
	covered := 0 // segments up to it are in the snapshot
	var read atomic.Int64
	if len(snaps) > 0 {
		covered = snaps[len(snaps)-1]
		torn, err := replaySegment(x.snapDir, covered, &read, replay)
		if err != nil {
			return nil, fmt.Errorf("read exemplar snapshot: %w", err)
		}
		if torn {
			x.logger.Warn("exemplar snapshot is corrupt; exemplars and metadata it held are lost", "snapshot", covered)
		}
		x.snapBytes.Store(read.Load())
	}
	segs, err := listSegments(x.dir)
	if err != nil {
		return nil, err
	}
	if covered > 0 && (len(segs) == 0 || segs[len(segs)-1] < covered) {
		// Numbering must go on after the snapshot: a segment numbered
		// at most covered would be skipped on the next start.
		f, err := os.Create(segmentName(x.dir, covered))
		if err != nil {
			return nil, fmt.Errorf("create exemplar log segment: %w", err)
		}
		_ = f.Close()
	}
	log, segs, err := openWAL(x.dir, auxSegmentSize, 0)
	if err != nil {
		return nil, fmt.Errorf("exemplar log: %w", err)
	}
	read.Store(0)
	for _, seg := range segs {
		if seg <= covered {
			continue
		}
		torn, err := replaySegment(x.dir, seg, &read, replay)
		if err != nil {
			_ = log.close()
			return nil, fmt.Errorf("replay exemplar log segment %d: %w", seg, err)
		}
		if torn {
			x.logger.Warn("exemplar log segment ends in a torn record; the unacknowledged tail was dropped", "segment", seg)
		}
	}
	x.tail.Store(read.Load())
	x.log = log
	if len(segs) > 0 {
		if err := x.log.removeUpTo(covered); err != nil {
			x.logger.Warn("remove exemplar log segments covered by the snapshot", "err", err)
		}
	}
	n, m := 0, 0
	for _, t := range x.tenants {
		n += t.n
		m += len(t.meta)
	}
	x.logger.Info("exemplars and metadata loaded", "tenants", len(x.tenants), "exemplars", n, "metadata", m,
		"snapshot_bytes", x.snapBytes.Load(), "log_bytes", x.tail.Load(), "duration", time.Since(start))
	x.maybeCompact() // a long log makes the next start slow
	if reg != nil {
		if err := reg.Register(newAuxCollector(x)); err != nil {
			_ = x.close()
			return nil, fmt.Errorf("register exemplar metrics: %w", err)
		}
	}
	return x, nil
}

// cutoff is the oldest exemplar timestamp retention keeps at now.
func (x *auxStore) cutoff(now time.Time) int64 {
	if x.retention <= 0 {
		return math.MinInt64
	}
	return now.Add(-x.retention).UnixMilli()
}

func (x *auxStore) exemplarLimit(id tenancy.ID) int {
	if x.exLimits == nil {
		return 0
	}
	return x.exLimits(id)
}

func (x *auxStore) metadataLimit(id tenancy.ID) int {
	if x.metaLimits == nil {
		return 0
	}
	return x.metaLimits(id)
}

// tenant returns the aux data of tenant id, creating it when create is
// set; nil when it has none and create is unset.
func (x *auxStore) tenant(id tenancy.ID, create bool) *auxTenant {
	x.mu.RLock()
	t := x.tenants[id]
	x.mu.RUnlock()
	if t != nil || !create {
		return t
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if t = x.tenants[id]; t == nil {
		t = newAuxTenant()
		x.tenants[id] = t
	}
	return t
}

func (x *auxStore) allTenants() map[tenancy.ID]*auxTenant {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return maps.Clone(x.tenants)
}

// commit makes what p holds durable, then visible, for tenant id.
func (x *auxStore) commit(id tenancy.ID, p *auxPending) error {
	if p.empty() {
		return nil
	}
	if _, err := tenancy.ParseID(string(id)); err != nil {
		return err
	}
	rec := appendAuxRecord(make([]byte, 0, 256+128*p.nex), id, p)
	t := x.tenant(id, true)
	x.applyMu.RLock()
	if x.closed {
		x.applyMu.RUnlock()
		return fmt.Errorf("%w: store closed", storage.ErrUnavailable)
	}
	if err := x.log.log(rec); err != nil {
		x.applyMu.RUnlock()
		return fmt.Errorf("%w: exemplar log: %w", storage.ErrUnavailable, err)
	}
	exLimit, metaLimit := x.exemplarLimit(id), x.metadataLimit(id)
	t.mu.Lock()
	for _, ps := range p.series {
		for _, e := range ps.ex {
			t.addExemplarLocked(ps.hash, ps.lset, e, exLimit)
		}
	}
	for _, pm := range p.meta {
		if pm.changed {
			t.setMetadataLocked(pm.family, pm.m, metaLimit)
		}
	}
	t.mu.Unlock()
	x.applyMu.RUnlock()
	x.tail.Add(int64(len(rec) + walHeaderSize))
	x.maybeCompact()
	return nil
}

// snapshotTable is the series of a snapshot's version 2 records so far,
// for one tenant.
type snapshotTable struct {
	tenant tenancy.ID
	series []tableSeries
}

type tableSeries struct {
	lset labels.Labels
	hash uint64
	ser  *exSeries // where its last exemplar went, if still linked
}

// replay applies one record read back from the log or a snapshot,
// dropping exemplars older than cutoff.
func (x *auxStore) replay(rec []byte, cutoff int64, table *snapshotTable) error {
	d := decoder{b: rec}
	version := d.bytes(1)
	if d.err != nil {
		return d.err
	}
	if version[0] != auxRecordVersion && version[0] != auxSnapshotVersion {
		return fmt.Errorf("exemplar log record version %d: %w", version[0], errCorrupt)
	}
	id := tenancy.ID(d.bytes(int(d.uvarint())))
	var sb labels.ScratchBuilder
	nseries := d.uvarint()
	if nseries > uint64(len(d.b)) {
		return errCorrupt
	}
	var series []tableSeries
	if version[0] == auxSnapshotVersion {
		if table.tenant != id {
			table.tenant, table.series = id, table.series[:0]
		}
		series = table.series
	}
	for i := uint64(0); i < nseries && d.err == nil; i++ {
		l := d.labels(&sb)
		series = append(series, tableSeries{lset: l, hash: l.Hash()})
	}
	if version[0] == auxSnapshotVersion {
		table.series = series
	}
	nex := d.uvarint()
	if nex > uint64(len(d.b)) {
		return errCorrupt
	}
	if d.err != nil {
		return d.err
	}
	t := x.tenant(id, true)
	exLimit, metaLimit := x.exemplarLimit(id), x.metadataLimit(id)
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := uint64(0); i < nex && d.err == nil; i++ {
		si := d.uvarint()
		var e exemplar.Exemplar
		e.Labels = d.labels(&sb)
		e.Value = d.float()
		e.Ts = d.varint()
		hasTs := d.bytes(1)
		if d.err != nil {
			break
		}
		e.HasTs = hasTs[0] == 1
		if si >= uint64(len(series)) {
			return errCorrupt
		}
		if e.Ts < cutoff {
			continue
		}
		ts := &series[si]
		if ts.ser == nil || !ts.ser.linked {
			ts.ser = t.findLocked(ts.hash, ts.lset)
		}
		ts.ser, _ = t.addToSeriesLocked(ts.ser, ts.hash, ts.lset, e, exLimit)
	}
	nmeta := d.uvarint()
	if nmeta > uint64(len(d.b)) {
		return errCorrupt
	}
	for i := uint64(0); i < nmeta && d.err == nil; i++ {
		family := d.string()
		m := metadata.Metadata{Type: model.MetricType(d.string()), Unit: d.string(), Help: d.string()}
		if d.err == nil {
			t.setMetadataLocked(family, m, metaLimit)
		}
	}
	return d.err
}

// string reads a uvarint-length-prefixed string, copied.
func (d *decoder) string() string {
	return string(d.bytes(int(d.uvarint())))
}

func appendAuxString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendAuxExemplar(b []byte, series int, e exemplar.Exemplar) []byte {
	b = binary.AppendUvarint(b, uint64(series))
	b = appendLabels(b, e.Labels)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(e.Value))
	b = binary.AppendVarint(b, e.Ts)
	if e.HasTs {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendAuxMetadata(b []byte, family string, m metadata.Metadata) []byte {
	b = appendAuxString(b, family)
	b = appendAuxString(b, string(m.Type))
	b = appendAuxString(b, m.Unit)
	return appendAuxString(b, m.Help)
}

// appendAuxRecord encodes what p holds as one record.
func appendAuxRecord(b []byte, id tenancy.ID, p *auxPending) []byte {
	b = append(b, auxRecordVersion)
	b = appendAuxString(b, string(id))
	b = binary.AppendUvarint(b, uint64(len(p.series)))
	nex := 0
	for _, ps := range p.series {
		b = appendLabels(b, ps.lset)
		nex += len(ps.ex)
	}
	b = binary.AppendUvarint(b, uint64(nex))
	for i, ps := range p.series {
		for _, e := range ps.ex {
			b = appendAuxExemplar(b, i, e)
		}
	}
	nmeta := 0
	for _, pm := range p.meta {
		if pm.changed {
			nmeta++
		}
	}
	b = binary.AppendUvarint(b, uint64(nmeta))
	for _, pm := range p.meta {
		if pm.changed {
			b = appendAuxMetadata(b, pm.family, pm.m)
		}
	}
	return b
}

// maybeCompact starts a compaction in the background when the log has
// grown by more than the last snapshot's size.
func (x *auxStore) maybeCompact() {
	if x.tail.Load() <= max(auxMinCompact, x.snapBytes.Load()) {
		return
	}
	x.compactAsync()
}

func (x *auxStore) compactAsync() {
	if !x.running.CompareAndSwap(false, true) {
		return
	}
	x.applyMu.RLock()
	if x.closed {
		x.applyMu.RUnlock()
		x.running.Store(false)
		return
	}
	x.wg.Add(1)
	x.applyMu.RUnlock()
	go func() {
		defer x.wg.Done()
		defer x.running.Store(false)
		if err := x.compact(); err != nil {
			x.logger.Error("compact the exemplar log", "err", err)
		}
	}()
}

// compact writes a snapshot of every tenant's exemplars and metadata and
// deletes the log segments and snapshots it replaces.
func (x *auxStore) compact() error {
	x.compactMu.Lock()
	defer x.compactMu.Unlock()
	start := time.Now()
	x.applyMu.Lock()
	if x.closed {
		x.applyMu.Unlock()
		return nil
	}
	covered, err := x.log.rotate()
	x.tail.Store(0)
	x.applyMu.Unlock()
	if err != nil {
		return fmt.Errorf("rotate exemplar log: %w", err)
	}
	tmp := filepath.Join(x.snapDir, "tmp")
	size, err := x.writeSnapshot(tmp)
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, segmentName(x.snapDir, covered)); err != nil {
		return fmt.Errorf("install exemplar snapshot: %w", err)
	}
	if err := syncDir(x.snapDir); err != nil {
		return err
	}
	x.snapBytes.Store(size)
	snaps, err := listSegments(x.snapDir)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range snaps {
		if n < covered {
			errs = append(errs, os.Remove(segmentName(x.snapDir, n)))
		}
	}
	errs = append(errs, x.log.removeUpTo(covered))
	x.logger.Debug("exemplar log compacted", "snapshot_bytes", size, "duration", time.Since(start))
	return errors.Join(errs...)
}

// writeSnapshot writes every tenant's exemplars (oldest first) and
// metadata to path, synced, and returns its size.
func (x *auxStore) writeSnapshot(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return 0, fmt.Errorf("create exemplar snapshot: %w", err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	var size int64
	var hdr [walHeaderSize]byte
	write := func(rec []byte) error {
		binary.LittleEndian.PutUint32(hdr[0:4], uint32(len(rec)))
		binary.LittleEndian.PutUint32(hdr[4:8], crc32.Checksum(rec, castagnoli))
		if _, err := bw.Write(hdr[:]); err != nil {
			return err
		}
		_, err := bw.Write(rec)
		size += int64(len(rec) + walHeaderSize)
		return err
	}
	tenants := x.allTenants()
	ids := make([]tenancy.ID, 0, len(tenants))
	for id := range tenants {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var rec []byte
	for _, id := range ids {
		series, exs, meta := tenants[id].snapshot()
		for len(series) > 0 || len(exs) > 0 || len(meta) > 0 {
			rec = append(rec[:0], auxSnapshotVersion)
			rec = appendAuxString(rec, string(id))
			n := min(len(series), auxSnapshotChunk)
			rec = binary.AppendUvarint(rec, uint64(n))
			for _, l := range series[:n] {
				rec = appendLabels(rec, l)
			}
			series = series[n:]
			n = 0
			if len(series) == 0 {
				n = min(len(exs), auxSnapshotChunk)
			}
			rec = binary.AppendUvarint(rec, uint64(n))
			for _, se := range exs[:n] {
				rec = appendAuxExemplar(rec, se.series, se.e)
			}
			exs = exs[n:]
			n = min(len(meta), auxSnapshotChunk)
			rec = binary.AppendUvarint(rec, uint64(n))
			for _, pm := range meta[:n] {
				rec = appendAuxMetadata(rec, pm.family, pm.m)
			}
			meta = meta[n:]
			if err := write(rec); err != nil {
				return 0, fmt.Errorf("write exemplar snapshot: %w", err)
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return 0, fmt.Errorf("write exemplar snapshot: %w", err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("sync exemplar snapshot: %w", err)
	}
	return size, f.Close()
}

// retain drops the exemplars older than cutoff (milliseconds); the next
// snapshot, started here when any were dropped, removes them from disk.
func (x *auxStore) retain(cutoff int64) {
	dropped := 0
	for _, t := range x.allTenants() {
		t.mu.Lock()
		dropped += t.dropBeforeLocked(cutoff)
		t.mu.Unlock()
	}
	if dropped > 0 {
		x.compactAsync()
	}
}

// close waits for a running compaction and closes the log. Commits after
// it fail with storage.ErrUnavailable.
func (x *auxStore) close() error {
	x.applyMu.Lock()
	if x.closed {
		x.applyMu.Unlock()
		return nil
	}
	x.closed = true
	x.applyMu.Unlock()
	x.wg.Wait()
	return x.log.close()
}

// familyName is the metric family metadata is stored under: the family
// name the writer gave, else the series' metric name.
func familyName(family string, lset labels.Labels) string {
	if family != "" {
		return family
	}
	return lset.Get(labels.MetricName)
}

// auxCollector reports the exemplars and metadata held, read at scrape
// time (nothing on the write path).
type auxCollector struct {
	x               *auxStore
	exemplars, meta *prometheus.Desc
	logBytes        *prometheus.Desc
	metaDropped     *prometheus.Desc
}

func newAuxCollector(x *auxStore) *auxCollector {
	return &auxCollector{
		x: x,
		exemplars: prometheus.NewDesc("luminate_badger_exemplars",
			"Exemplars stored, by tenant (at most --limits.max-exemplars or the tenant's max_exemplars override; the oldest are dropped first).", []string{"tenant"}, nil),
		meta: prometheus.NewDesc("luminate_badger_metadata_families",
			"Metric families with metadata stored, by tenant (at most --limits.max-metadata or the tenant's max_metadata override).", []string{"tenant"}, nil),
		logBytes: prometheus.NewDesc("luminate_badger_exemplar_log_bytes",
			"Bytes of the exemplar and metadata log read at the next start: the last snapshot and the log written since.", nil, nil),
		metaDropped: prometheus.NewDesc("luminate_badger_metadata_dropped_total",
			"Metadata of new metric families not stored because their tenant is at --limits.max-metadata (or its max_metadata override), counted once per family and commit; the samples are stored.", nil, nil),
	}
}

func (c *auxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.exemplars
	ch <- c.meta
	ch <- c.logBytes
	ch <- c.metaDropped
}

func (c *auxCollector) Collect(ch chan<- prometheus.Metric) {
	for id, t := range c.x.allTenants() {
		t.mu.RLock()
		n, m := t.n, len(t.meta)
		t.mu.RUnlock()
		ch <- prometheus.MustNewConstMetric(c.exemplars, prometheus.GaugeValue, float64(n), string(id))
		ch <- prometheus.MustNewConstMetric(c.meta, prometheus.GaugeValue, float64(m), string(id))
	}
	ch <- prometheus.MustNewConstMetric(c.logBytes, prometheus.GaugeValue, float64(c.x.snapBytes.Load()+c.x.tail.Load()))
	ch <- prometheus.MustNewConstMetric(c.metaDropped, prometheus.CounterValue, float64(c.x.metaDropped.Load()))
}
