package badger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	aux    *auxStore // exemplars and metadata (auxlog.go)

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

	deleted deletions // tombstones of deleted series (delete.go)

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
		if err == nil {
			err = s.loadDeletions() // delete.go
		}
		if err == nil {
			s.aux, err = openAux(s.cfg, s.logger, r.reg)
		}
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
	w, segs, err := openWAL(filepath.Join(s.cfg.Path, "wal"), s.cfg.WALSegmentSize, s.cfg.WALPreallocate)
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
	if aerr := s.aux.close(); err == nil {
		err = aerr
	}
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
	ret := time.NewTicker(min(s.cfg.RetentionInterval, retentionCheck))
	defer ret.Stop()
	del := time.NewTicker(time.Hour) // cleaning of deletions (delete.go)
	defer del.Stop()
	var retState retentionState
	if s.retentionDue(&retState, time.Now()) {
		s.applyRetention(time.Now())
	}
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
		case now := <-ret.C:
			if s.retentionDue(&retState, now) {
				s.applyRetention(now)
			}
		case <-del.C:
			s.cleanDeletions() // delete.go
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
