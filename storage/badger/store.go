// Package badger is Luminate's embedded time-series engine on BadgerDB, the
// zero-dependency default backend.
//
// Samples arrive through a tenant-scoped appender, are made durable in a
// write-ahead log (group-synced) before Commit returns, and are appended to
// an in-memory Gorilla XOR head chunk per series. Full heads are sealed and
// written to Badger keyed by tenant, series and time; an in-memory inverted
// index per tenant answers matchers and label lookups. Checkpoints snapshot
// open heads so that WAL segments can be deleted; idle heads are sealed and
// dropped; a retention job deletes old chunks. See docs/architecture.md.
//
// It is not a general key-value store for other packages: everything goes
// through the storage.MetricsStore contract.
package badger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bdb "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// Store is the Badger MetricsStore. It is safe for concurrent use.
type Store struct {
	cfg    Config
	logger *slog.Logger
	db     *bdb.DB
	wal    *wal

	badgerDir string // Badger's files: Path/badger
	unlock    func() // releases the data directory's lock

	tenantsMu  sync.RWMutex
	tenants    map[tenancy.ID]*tenant
	byNum      map[uint32]*tenant
	nextTenant uint32

	nextSeries atomic.Uint64
	diskSeq    atomic.Uint64

	// applyMu is read-held by a commit from its WAL write until its samples
	// are in memory, and write-held by a checkpoint while it rotates the WAL,
	// so a rotated segment never holds a record not yet applied.
	applyMu sync.RWMutex
	// walPinned is set when a WAL record replayed at start could not be
	// fully applied (Badger refused a write): WAL segments are then kept
	// until a restart replays them. Failures after start need no pin: what
	// they leave in memory is retried, and a checkpoint that succeeds
	// covers it (see checkpoint).
	walPinned atomic.Bool
	// The last failed write-ahead log and Badger writes, nil once a write
	// of the kind succeeded since; Health reports them.
	walErr, dbErr atomic.Pointer[writeFailure]

	checkpointMu sync.Mutex
	closed       atomic.Bool
	cancel       context.CancelFunc
	done         chan struct{}

	m *metrics
}

type metrics struct {
	appended   prometheus.Counter
	oooMerges  prometheus.Counter
	sealed     prometheus.Counter
	commitDur  prometheus.Histogram
	checkpoint prometheus.Histogram
	series     *prometheus.GaugeVec
	active     *prometheus.GaugeVec
	retention  prometheus.Counter

	writeFailures *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		appended:   prometheus.NewCounter(prometheus.CounterOpts{Name: "luminate_badger_samples_appended_total", Help: "Samples committed to the Badger store."}),
		oooMerges:  prometheus.NewCounter(prometheus.CounterOpts{Name: "luminate_badger_ooo_merges_total", Help: "Merges of out-of-order samples into sealed chunks."}),
		sealed:     prometheus.NewCounter(prometheus.CounterOpts{Name: "luminate_badger_chunks_sealed_total", Help: "Head chunks sealed."}),
		commitDur:  prometheus.NewHistogram(prometheus.HistogramOpts{Name: "luminate_badger_commit_duration_seconds", Help: "Duration of appender commits.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8)}),
		checkpoint: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "luminate_badger_checkpoint_duration_seconds", Help: "Duration of head checkpoints.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 8)}),
		series:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "luminate_badger_series", Help: "Series in the index, by tenant."}, []string{"tenant"}),
		active:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "luminate_active_series", Help: "Series with samples within the idle timeout, by tenant."}, []string{"tenant"}),
		retention:  prometheus.NewCounter(prometheus.CounterOpts{Name: "luminate_badger_retention_deleted_chunks_total", Help: "Chunks deleted by retention."}),
		writeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "luminate_badger_write_failures_total",
			Help: "Writes that failed or were refused, by reason: wal (write-ahead log), badger (Badger write), disk_full (refused below --storage.badger.min-free-bytes), read_only (refused on a read-only file system).",
		}, []string{"reason"}),
	}
	for _, r := range []string{failWAL, failBadger, failDiskFull, failReadOnly} {
		m.writeFailures.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.appended, m.oooMerges, m.sealed, m.commitDur, m.checkpoint, m.series, m.active, m.retention, m.writeFailures)
	}
	return m
}

// ErrLocked is returned when another process holds the data directory.
var ErrLocked = errors.New("data directory is in use by another luminate process")

// New opens (or creates) the store at cfg.Path, replays its write-ahead log
// and starts the background jobs. Close releases it. It is Open followed by
// Recover.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	r, err := Open(cfg, logger, reg)
	if err != nil {
		return nil, err
	}
	return r.Recover(context.Background())
}

// Recovery is a store whose data directory is locked but not open yet.
// Recover opens Badger and the write-ahead log and rebuilds the store's
// memory from them; after a crash that means replaying the log, which
// takes a while, and Status says how far it got. Its methods are safe for
// concurrent use.
type Recovery struct {
	s    *Store
	reg  prometheus.Registerer
	st   recoveryStatus
	used atomic.Bool
}

// Open validates cfg and locks the data directory at cfg.Path (ErrLocked
// when another process holds it). It is quick: Recover does the rest.
func Open(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Recovery, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Join(cfg.Path, "badger")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	unlock, err := lockDir(cfg.Path)
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg:       cfg,
		logger:    logger,
		badgerDir: dir,
		unlock:    unlock,
		tenants:   map[tenancy.ID]*tenant{},
		byNum:     map[uint32]*tenant{},
		done:      make(chan struct{}),
		m:         newMetrics(reg),
	}
	return &Recovery{s: s, reg: reg}, nil
}

// Recover opens Badger and the write-ahead log, rebuilds the store's
// memory from them and starts its background jobs. When it fails, or ctx
// is done first, it releases the data directory (the log is kept, for the
// next start) and returns the error. It may be called once.
func (r *Recovery) Recover(ctx context.Context) (*Store, error) {
	if r.used.Swap(true) {
		return nil, errors.New("badger: Recover called twice")
	}
	s := r.s
	start := time.Now()
	r.st.enter(phaseOpen)
	segs, err := s.open()
	if err == nil {
		err = s.recover(ctx, segs, &r.st)
		if err != nil {
			_ = s.wal.close()
			_ = s.db.Close()
		}
	}
	if err != nil {
		s.unlock()
		return nil, fmt.Errorf("recover %s: %w", s.cfg.Path, err)
	}
	if r.reg != nil {
		r.reg.MustRegister(newDiskCollector(s))
	}
	r.st.enter(phaseDone)
	s.logger.Info("badger store open", append([]any{"path", s.cfg.Path, "tenants", len(s.tenants), "wal_segments_replayed", len(segs),
		"wal_samples_replayed", r.st.samples.Load(), "duration", time.Since(start)}, r.st.durations()...)...)
	bctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.background(bctx, len(segs) > 0)
	return s, nil
}

// open opens Badger and the write-ahead log, returning the log's segments
// to replay.
func (s *Store) open() ([]int, error) {
	opts := bdb.DefaultOptions(s.badgerDir).
		WithLogger(badgerLogger{s.logger}).
		WithSyncWrites(false). // durability comes from our WAL
		WithCompression(options.ZSTD).
		WithZSTDCompressionLevel(3).
		WithBlockCacheSize(s.cfg.CacheSize).
		WithValueThreshold(1 << 20). // keep chunks in the LSM tree, compressed
		WithNumMemtables(2).
		WithMemTableSize(32 << 20).
		WithNumVersionsToKeep(1).
		WithDetectConflicts(false).
		WithBlockSize(32 << 10)
	db, err := bdb.Open(opts)
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, fmt.Errorf("open %s: %w", s.cfg.Path, ErrLocked)
		}
		return nil, fmt.Errorf("open badger at %s: %w", s.badgerDir, err)
	}
	w, segs, err := openWAL(filepath.Join(s.cfg.Path, "wal"), s.cfg.WALSegmentSize)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	s.db, s.wal = db, w
	return segs, nil
}

// Status says what recovery is doing, such as "replaying WAL: 42%
// (segment 3/7, 1200000 samples)".
func (r *Recovery) Status() string { return r.st.String() }

// ForTenant returns the view of the store scoped to id.
func (s *Store) ForTenant(id tenancy.ID) storage.TenantStore {
	return &tenantStore{st: s, id: id}
}

// Ready reports whether the store accepts reads and writes.
func (s *Store) Ready(context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("%w: store closed", storage.ErrUnavailable)
	}
	if s.db.IsClosed() {
		return fmt.Errorf("%w: badger closed", storage.ErrUnavailable)
	}
	return nil
}

// Close snapshots the heads, truncates the WAL and closes Badger.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.cancel()
	<-s.done
	err := s.checkpoint()
	if werr := s.wal.close(); err == nil {
		err = werr
	}
	if derr := s.db.Close(); err == nil {
		err = derr
	}
	s.unlock()
	return err
}

// tenantFor returns the tenant's index, creating (and durably numbering) it
// when create is set; nil when it does not exist and create is unset.
func (s *Store) tenantFor(id tenancy.ID, create bool) (*tenant, error) {
	s.tenantsMu.RLock()
	t := s.tenants[id]
	s.tenantsMu.RUnlock()
	if t != nil || !create {
		return t, nil
	}
	if _, err := tenancy.ParseID(string(id)); err != nil {
		return nil, err
	}
	s.tenantsMu.Lock()
	defer s.tenantsMu.Unlock()
	if t := s.tenants[id]; t != nil {
		return t, nil
	}
	if err := s.writable(); err != nil {
		return nil, err
	}
	num := s.nextTenant + 1
	val := []byte{byte(num >> 24), byte(num >> 16), byte(num >> 8), byte(num)}
	if err := s.db.Update(func(txn *bdb.Txn) error { return txn.Set(tenantKey(string(id)), val) }); err != nil {
		s.failed(&s.dbErr, failBadger, err)
		return nil, fmt.Errorf("%w: create tenant: %w", storage.ErrUnavailable, err)
	}
	if err := s.db.Sync(); err != nil {
		s.failed(&s.dbErr, failBadger, err)
		return nil, fmt.Errorf("%w: sync tenant: %w", storage.ErrUnavailable, err)
	}
	succeeded(&s.dbErr)
	s.nextTenant = num
	t = newTenant(id, num)
	s.tenants[id] = t
	s.byNum[num] = t
	return t, nil
}

func (s *Store) allTenants() []*tenant {
	s.tenantsMu.RLock()
	defer s.tenantsMu.RUnlock()
	out := make([]*tenant, 0, len(s.tenants))
	for _, t := range s.tenants {
		out = append(out, t)
	}
	return out
}

// loadDiskMaxT reads the newest sealed chunk's end time of a series that
// has not been appended to since start. Callers hold ser.mu.
func (s *Store) loadDiskMaxTLocked(t *tenant, ser *series) error {
	if ser.diskKnown {
		return nil
	}
	err := s.db.View(func(txn *bdb.Txn) error {
		prefix := seriesKey(kindChunk, t.num, ser.id)
		opts := bdb.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Reverse = true
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		it.Seek(append(slices.Clone(prefix), 0xff))
		if it.Valid() {
			if _, _, maxt, ok := parseChunkKey(it.Item().Key()); ok {
				ser.diskMaxT = max(ser.diskMaxT, maxt)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: read series end: %w", storage.ErrUnavailable, err)
	}
	ser.diskKnown = true
	return nil
}

// flushSealed writes the unflushed chunks of the given series to Badger in
// one batch. Series whose chunks another flush is writing are skipped. On
// failure the chunks stay in memory, to be written by a later flush or
// checkpoint.
func (s *Store) flushSealed(t *tenant, list []*series) error {
	if err := s.writable(); err != nil {
		return err
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	var errs []error
	type taken struct {
		ser     *series
		n       int
		persist bool
	}
	var took []taken
	for _, ser := range list {
		ser.mu.Lock()
		if ser.inflight == 0 && len(ser.unflushed) > 0 {
			persist := s.setSeriesRecordLocked(wb, t, ser, &errs)
			for _, c := range ser.unflushed {
				if err := wb.Set(chunkKey(t.num, ser.id, c.mint, c.maxt), sealedValue(c.enc, c.data)); err != nil {
					errs = append(errs, err)
				}
			}
			if ser.snapshot && ser.head == nil {
				if err := wb.Delete(seriesKey(kindHead, t.num, ser.id)); err != nil {
					errs = append(errs, err)
				}
			}
			ser.inflight++
			took = append(took, taken{ser, len(ser.unflushed), persist})
		}
		ser.mu.Unlock()
	}
	if len(errs) == 0 {
		if err := wb.Flush(); err != nil {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	seq := s.diskSeq.Add(1)
	for _, tk := range took {
		tk.ser.mu.Lock()
		if err == nil {
			tk.ser.unflushed = slices.Delete(tk.ser.unflushed, 0, tk.n)
			if tk.ser.head == nil {
				tk.ser.snapshot = false
			}
			tk.ser.diskSeq = seq
			if tk.persist {
				tk.ser.persisted = true
			}
		}
		tk.ser.inflight--
		tk.ser.mu.Unlock()
	}
	if err != nil {
		s.failed(&s.dbErr, failBadger, err)
		return fmt.Errorf("%w: write chunks: %w", storage.ErrUnavailable, err)
	}
	succeeded(&s.dbErr)
	return nil
}

// mergeOOOLocked merges samples older than the newest sealed chunk into the
// sealed chunks they overlap and rewrites those chunks. samples are sorted
// and duplicate-free; at equal timestamps they replace stored values (last
// write wins). Callers hold ser.mu.
func (s *Store) mergeOOOLocked(t *tenant, ser *series, samples []sample) error {
	for ser.inflight > 0 { // a batch is writing our unflushed chunks
		ser.mu.Unlock()
		time.Sleep(time.Millisecond)
		ser.mu.Lock()
	}
	if err := s.writable(); err != nil {
		return err
	}
	var ov overlap
	err := s.db.View(func(txn *bdb.Txn) error {
		opts := bdb.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = seriesKey(kindChunk, t.num, ser.id)
		it := txn.NewIterator(opts)
		defer it.Close()
		var err error
		ov, err = overlapLocked(it, t, ser, samples[0].t, samples[len(samples)-1].t, 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("%w: read chunks for merge: %w", storage.ErrUnavailable, err)
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	var errs []error
	persist := s.addMergeLocked(wb, t, ser, ov, samples, &errs)
	err = errors.Join(errs...)
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		s.failed(&s.dbErr, failBadger, err)
		return fmt.Errorf("%w: merge chunks: %w", storage.ErrUnavailable, err)
	}
	succeeded(&s.dbErr)
	s.mergedLocked(ser, ov, samples, persist, s.diskSeq.Add(1))
	return nil
}

// overlap is what a series' sealed chunks hold in a time range: the
// samples, sorted, the Badger keys of the chunks they came from, and the
// unflushed chunks outside the range.
type overlap struct {
	old     []sample
	oldKeys [][]byte
	keep    []memChunk
}

// overlapLocked reads the sealed chunks of ser that overlap [lo, hi], in
// memory and, through it (an iterator over at least the series' chunk
// keys), in Badger. With nearby > 0, it is a forward iterator used for
// series in ascending id order, moved by Next when it is at most nearby
// keys before the chunks. Callers hold ser.mu.
func overlapLocked(it *bdb.Iterator, t *tenant, ser *series, lo, hi int64, nearby int) (overlap, error) {
	var ov overlap
	var err error
	// The overlapping unflushed chunks leave memory only once the merged
	// chunks are in Badger: on failure nothing acknowledged is lost.
	ov.keep = make([]memChunk, 0, len(ser.unflushed))
	for _, c := range ser.unflushed {
		if c.maxt >= lo && c.mint <= hi {
			if ov.old, err = decodeAny(ov.old, c.enc, c.data); err != nil {
				return ov, fmt.Errorf("decode chunk: %w", err)
			}
		} else {
			ov.keep = append(ov.keep, c)
		}
	}
	prefix := seriesKey(kindChunk, t.num, ser.id)
	from := chunkKey(t.num, ser.id, math.MinInt64, lo)[:21] // the first chunk ending at lo or later
	// Merging series in id order, the iterator has only moved forward
	// from targets before from: at from or past it, it is at the first
	// key from on; a few keys before, Next gets there faster than Seek.
	if nearby > 0 && it.Valid() {
		k := 0
		for ; k < nearby && it.Valid() && bytes.Compare(it.Item().Key(), from) < 0; k++ {
			it.Next()
		}
		if k == nearby {
			it.Seek(from)
		}
	} else {
		it.Seek(from)
	}
	for ; it.ValidForPrefix(prefix); it.Next() {
		_, mint, _, ok := parseChunkKey(it.Item().Key())
		if !ok || mint > hi {
			break // chunks do not overlap: later ones start later still
		}
		err := it.Item().Value(func(v []byte) error {
			if len(v) < 1 {
				return nil
			}
			var err error
			ov.old, err = decodeAny(ov.old, v[0], v[1:])
			return err
		})
		if err != nil {
			return ov, err
		}
		ov.oldKeys = append(ov.oldKeys, it.Item().KeyCopy(nil))
	}
	slices.SortStableFunc(ov.old, func(a, b sample) int { return cmpInt64(a.t, b.t) })
	return ov, nil
}

// holds reports whether the overlap already holds every one of samples
// (sorted), with the same value of the same kind.
func (ov overlap) holds(samples []sample) bool {
	i := 0
	for _, smp := range samples {
		for i < len(ov.old) && ov.old[i].t < smp.t {
			i++
		}
		if i == len(ov.old) || ov.old[i].t != smp.t {
			return false
		}
		for j := i; j < len(ov.old) && ov.old[j].t == smp.t; j++ {
			if !sameSample(ov.old[j], smp) {
				return false
			}
		}
	}
	return true
}

// addMergeLocked adds to wb the rewrite of the overlapping chunks with
// samples merged in, and reports whether it added the series' 'S' record.
// Callers hold ser.mu, and call mergedLocked once wb is flushed.
func (s *Store) addMergeLocked(wb *bdb.WriteBatch, t *tenant, ser *series, ov overlap, samples []sample, errs *[]error) bool {
	merged := mergeSamples(ov.old, samples)
	chunks := encodeChunks(merged, s.cfg.ChunkSamples)
	persist := s.setSeriesRecordLocked(wb, t, ser, errs)
	for _, k := range ov.oldKeys {
		*errs = append(*errs, wb.Delete(k))
	}
	for _, c := range chunks {
		*errs = append(*errs, wb.Set(chunkKey(t.num, ser.id, c.mint, c.maxt), sealedValue(c.enc, c.data)))
		ser.diskMaxT = max(ser.diskMaxT, c.maxt)
	}
	return persist
}

// mergedLocked records in memory a merge that is in Badger.
func (s *Store) mergedLocked(ser *series, ov overlap, samples []sample, persist bool, seq uint64) {
	if persist {
		ser.persisted = true
	}
	ser.unflushed = ov.keep
	ser.diskSeq = seq
	s.m.oooMerges.Inc()
	for _, smp := range samples {
		ser.extendRange(smp.t)
	}
}

// setSeriesRecordLocked adds the 'S' record of ser to wb when Badger lacks
// it, and reports whether it did. Every batch that writes a series' chunks
// calls it first: a 'C' key never exists without its series' 'S' key, so
// recovery, which indexes series from their 'S' keys, knows every chunk.
// (A new series' record is otherwise left to the next checkpoint, off the
// commit path.) Callers hold ser.mu.
func (s *Store) setSeriesRecordLocked(wb *bdb.WriteBatch, t *tenant, ser *series, errs *[]error) bool {
	if ser.persisted {
		return false
	}
	if err := wb.Set(seriesKey(kindSeries, t.num, ser.id), appendLabels(nil, ser.lset)); err != nil {
		*errs = append(*errs, err)
	}
	return true
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// background runs the periodic jobs until ctx is cancelled, starting with
// a checkpoint when replayed is set: it deletes the WAL segments recovery
// replayed.
func (s *Store) background(ctx context.Context, replayed bool) {
	defer close(s.done)
	if replayed {
		start := time.Now()
		if err := s.checkpoint(); err != nil {
			s.logger.Warn("checkpoint after recovery failed; the write-ahead log is kept until one succeeds", "err", err)
		} else {
			s.logger.Info("checkpoint after recovery done; the replayed write-ahead log segments are deleted", "duration", time.Since(start))
		}
	}
	idle := time.NewTicker(min(s.cfg.IdleTimeout/4+time.Second, time.Minute))
	defer idle.Stop()
	ckpt := time.NewTicker(s.cfg.CheckpointInterval)
	defer ckpt.Stop()
	ret := time.NewTicker(time.Hour)
	defer ret.Stop()
	s.applyRetention()
	for {
		select {
		case <-ctx.Done():
			return
		case <-idle.C:
			s.sealIdle(time.Now())
		case <-ckpt.C:
			if err := s.checkpoint(); err != nil {
				s.logger.Error("checkpoint", "err", err)
			}
		case <-ret.C:
			s.applyRetention()
		}
	}
}

// sealIdle seals and drops the heads of series idle longer than the idle
// timeout, bounding memory to the active series.
func (s *Store) sealIdle(now time.Time) {
	cutoff := now.Add(-s.cfg.IdleTimeout).UnixNano()
	for _, t := range s.allTenants() {
		t.mu.RLock()
		all := slices.Clone(t.all)
		t.mu.RUnlock()
		var list []*series
		for _, ser := range all {
			ser.mu.Lock()
			if ser.active && ser.lastAppend < cutoff {
				ser.sealLocked()
				ser.active = false
				t.active.Add(-1)
				list = append(list, ser)
			}
			ser.mu.Unlock()
		}
		if len(list) > 0 {
			if err := s.flushSealed(t, list); err != nil {
				s.logger.Error("seal idle heads", "tenant", t.id, "err", err)
			}
		}
		s.m.active.WithLabelValues(string(t.id)).Set(float64(t.active.Load()))
	}
}

// checkpoint makes everything the WAL segments hold durable in Badger and
// deletes them. It rotates the WAL while no commit is between its WAL write
// and its in-memory apply, so every record in the closed segments is
// reflected in memory (or was never acknowledged: its commit failed). It
// then writes, series by series, what memory holds that Badger lacks (see
// checkpointTenant) and syncs Badger. Only when all of that succeeded are
// the closed segments deleted, together with any older segment an earlier
// failed checkpoint kept: a checkpoint that succeeds after Badger
// recovered from a failure covers everything the failure left in memory.
// While the data directory cannot take writes (see writable), it does
// nothing.
func (s *Store) checkpoint() error {
	s.checkpointMu.Lock()
	defer s.checkpointMu.Unlock()
	if err := s.writable(); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	start := time.Now()
	s.applyMu.Lock()
	closedSeg, err := s.wal.rotate()
	s.applyMu.Unlock()
	if err != nil {
		s.failed(&s.walErr, failWAL, err)
		return fmt.Errorf("%w: rotate wal: %w", storage.ErrUnavailable, err)
	}
	var errs []error
	for _, t := range s.allTenants() {
		t.mu.RLock()
		all := slices.Clone(t.all)
		t.mu.RUnlock()
		if err := s.checkpointTenant(t, all); err != nil {
			errs = append(errs, err)
		}
		s.m.series.WithLabelValues(string(t.id)).Set(float64(len(all)))
	}
	if err := s.db.Sync(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		s.failed(&s.dbErr, failBadger, err)
		return fmt.Errorf("%w: checkpoint: %w", storage.ErrUnavailable, err)
	}
	succeeded(&s.dbErr)
	if !s.walPinned.Load() {
		if err := s.wal.removeUpTo(closedSeg); err != nil {
			return fmt.Errorf("truncate wal: %w", err)
		}
	}
	s.m.checkpoint.Observe(time.Since(start).Seconds())
	return nil
}

// checkpointTenant writes in one batch what the given series hold only in
// memory: the 'S' record of series whose own write failed, unflushed
// chunks, and a snapshot of every open head. It waits for a flush in
// progress on a series rather than skipping it (that flush may fail), so
// that when it returns nil every sample applied to these series before the
// call is in Badger: in a chunk, or in a head snapshot.
func (s *Store) checkpointTenant(t *tenant, all []*series) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	type taken struct {
		ser     *series
		n       int  // unflushed chunks written
		persist bool // 'S' record written
	}
	var took []taken
	for _, ser := range all {
		ser.mu.Lock()
		for ser.inflight > 0 {
			ser.mu.Unlock()
			time.Sleep(time.Millisecond)
			ser.mu.Lock()
		}
		tk := taken{ser: ser, n: len(ser.unflushed)}
		if !ser.persisted && ser.logged.Load() {
			add(wb.Set(seriesKey(kindSeries, t.num, ser.id), appendLabels(nil, ser.lset)))
			tk.persist = true
		}
		for _, c := range ser.unflushed {
			add(wb.Set(chunkKey(t.num, ser.id, c.mint, c.maxt), sealedValue(c.enc, c.data)))
		}
		if ser.head != nil && ser.head.numSamples() > 0 {
			add(wb.Set(seriesKey(kindHead, t.num, ser.id), chunkValue(ser.head.enc, ser.head.bytesCopy())))
			ser.snapshot = true
		} else if tk.n > 0 && ser.snapshot && ser.head == nil {
			add(wb.Delete(seriesKey(kindHead, t.num, ser.id)))
		}
		if tk.n > 0 {
			ser.inflight++
		}
		if tk.n > 0 || tk.persist {
			took = append(took, tk)
		}
		ser.mu.Unlock()
	}
	err := errors.Join(errs...)
	if err == nil {
		err = wb.Flush()
	}
	seq := s.diskSeq.Add(1)
	for _, tk := range took {
		tk.ser.mu.Lock()
		if err == nil {
			if tk.n > 0 {
				tk.ser.unflushed = slices.Delete(tk.ser.unflushed, 0, tk.n)
				if tk.ser.head == nil {
					tk.ser.snapshot = false
				}
				tk.ser.diskSeq = seq
			}
			if tk.persist {
				tk.ser.persisted = true
			}
		}
		if tk.n > 0 {
			tk.ser.inflight--
		}
		tk.ser.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("tenant %s: %w", t.id, err)
	}
	return nil
}

// applyRetention deletes chunks that ended before the retention cutoff and
// series left without data.
func (s *Store) applyRetention() {
	if s.cfg.Retention <= 0 {
		return
	}
	cutoff := time.Now().Add(-s.cfg.Retention).UnixMilli()
	if err := s.deleteBefore(cutoff); err != nil {
		s.logger.Error("retention", "err", err)
	}
}

// deleteBefore removes every chunk whose last sample is older than cutoff
// (milliseconds), and every series with no data left.
func (s *Store) deleteBefore(cutoff int64) error {
	if err := s.writable(); err != nil {
		return err
	}
	var deleted float64
	for _, t := range s.allTenants() {
		wb := s.db.NewWriteBatch()
		err := s.db.View(func(txn *bdb.Txn) error {
			opts := bdb.DefaultIteratorOptions
			opts.PrefetchValues = false
			opts.Prefix = tenantPrefix(kindChunk, t.num)
			it := txn.NewIterator(opts)
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				_, _, maxt, ok := parseChunkKey(it.Item().Key())
				if ok && maxt < cutoff {
					if err := wb.Delete(it.Item().KeyCopy(nil)); err != nil {
						return err
					}
					deleted++
				}
			}
			return nil
		})
		if err == nil {
			err = wb.Flush()
		}
		wb.Cancel()
		if err != nil {
			return fmt.Errorf("delete old chunks of tenant %s: %w", t.id, err)
		}
		// Series whose newest sample is older than the cutoff are gone.
		t.mu.Lock()
		dead := map[*series]bool{}
		for _, ser := range t.all {
			if ser.maxT.Load() < cutoff && ser.maxT.Load() != math.MinInt64 {
				ser.mu.Lock()
				if ser.head == nil && len(ser.unflushed) == 0 {
					dead[ser] = true
				}
				ser.mu.Unlock()
			} else if ser.minT.Load() < cutoff {
				ser.minT.Store(cutoff)
			}
		}
		if len(dead) > 0 {
			t.removeLocked(dead)
		}
		t.mu.Unlock()
		if len(dead) > 0 {
			wb := s.db.NewWriteBatch()
			for ser := range dead {
				_ = wb.Delete(seriesKey(kindSeries, t.num, ser.id))
				_ = wb.Delete(seriesKey(kindHead, t.num, ser.id))
			}
			err := wb.Flush()
			wb.Cancel()
			if err != nil {
				return fmt.Errorf("delete expired series of tenant %s: %w", t.id, err)
			}
		}
	}
	s.m.retention.Add(deleted)
	return nil
}

// badgerLogger routes Badger's logs to slog, demoting its chatty info.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Debug(strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}
func (b badgerLogger) Debugf(string, ...any) {}
