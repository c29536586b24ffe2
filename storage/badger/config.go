package badger

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/prometheus/common/model"

	"github.com/luminate-io/luminate/storage"
)

// Config configures the Badger store.
type Config struct {
	// Path is the data directory; Badger's files live in Path/badger and the
	// write-ahead log in Path/wal.
	Path string
	// Retention is how long samples are kept; 0 keeps them forever.
	Retention time.Duration
	// RetentionPolicy, when set, gives each tenant its own retention in
	// place of Retention (retention.go), and RetentionInterval is how
	// often the retention pass runs (it also runs within a minute of a
	// policy change); 0 takes the default, an hour.
	RetentionPolicy   storage.RetentionPolicy `yaml:"-"`
	RetentionInterval time.Duration
	// ChunkSamples is the number of samples after which a head chunk is
	// sealed and written to Badger.
	ChunkSamples int
	// IdleTimeout is how long a series may go without samples before its
	// head chunk is sealed and dropped from memory.
	IdleTimeout time.Duration
	// CheckpointInterval is how often open heads are snapshotted so that
	// write-ahead log segments can be deleted.
	CheckpointInterval time.Duration
	// WALSegmentSize is the size at which a WAL segment is closed.
	WALSegmentSize int64
	// WALPreallocate is how many bytes of a WAL segment are zero-filled
	// ahead of its records (wal.go), so that a commit's fsync writes no
	// file metadata; 0 takes the default, a negative value none.
	WALPreallocate int64 `yaml:"-"`
	// CacheSize is Badger's block cache in bytes.
	CacheSize int64
	// MinFreeBytes is the free space the file systems of the data
	// directory must keep. Below it, and while they are read-only, writes
	// are refused with storage.ErrUnavailable and reads go on; writes
	// resume by themselves once space is freed. Badger writes through
	// memory-mapped files, and a write to a mapped page the file system
	// has no room for kills the process (SIGBUS): the reserve is room for
	// the memtable flushes and compactions in flight. 0 takes the default;
	// a negative value disables this guard, leaving writes to fail only
	// when the file system refuses them.
	MinFreeBytes int64
	// SeriesLimits, when set, caps each tenant's active series.
	SeriesLimits storage.SeriesLimits `yaml:"-"`
	// ActiveSeriesWindow is how long after its last sample a series stays
	// active (storage.ActiveSince; 0 is the default, 1h).
	ActiveSeriesWindow time.Duration `yaml:"-"`
	// ExemplarLimits and MetadataLimits, when set, bound each tenant's
	// stored exemplars (the oldest are dropped first) and metric families
	// with metadata (new families beyond it are dropped); nil or 0 is
	// unlimited.
	ExemplarLimits storage.TenantLimit `yaml:"-"`
	MetadataLimits storage.TenantLimit `yaml:"-"`
}

// DefaultConfig returns the defaults the flags use.
func DefaultConfig() Config {
	return Config{
		Path:               "./data",
		Retention:          90 * 24 * time.Hour,
		ChunkSamples:       120,
		IdleTimeout:        15 * time.Minute,
		CheckpointInterval: 5 * time.Minute,
		WALSegmentSize:     128 << 20,
		WALPreallocate:     4 << 20,
		CacheSize:          64 << 20,
		MinFreeBytes:       256 << 20,
	}
}

// RegisterFlags registers the Badger flags on fs. Retention is shared by
// all backends and registered by the caller.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	fs.StringVar(&c.Path, "storage.badger.path", d.Path, "Directory of the embedded Badger store.")
	fs.IntVar(&c.ChunkSamples, "storage.badger.chunk-samples", d.ChunkSamples, "Samples per chunk before a head chunk is sealed.")
	fs.DurationVar(&c.IdleTimeout, "storage.badger.idle-timeout", d.IdleTimeout, "Seal and drop the head chunk of a series idle this long.")
	fs.DurationVar(&c.CheckpointInterval, "storage.badger.checkpoint-interval", d.CheckpointInterval, "How often heads are snapshotted and the write-ahead log truncated.")
	fs.Int64Var(&c.CacheSize, "storage.badger.cache-bytes", d.CacheSize, "Badger block cache size in bytes.")
	fs.Int64Var(&c.MinFreeBytes, "storage.badger.min-free-bytes", d.MinFreeBytes,
		"Free space in bytes the data directory must keep: below it writes are answered 503 (reads go on) until space is freed. The reserve is room for Badger's memtable flushes and compactions: its memory-mapped files crash the process on a full disk. Negative disables the check.")
	c.Retention = d.Retention
	c.WALSegmentSize = d.WALSegmentSize
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, errors.New("storage.badger.path must be set"))
	}
	if c.Retention < 0 {
		errs = append(errs, fmt.Errorf("storage.retention %s is negative", model.Duration(c.Retention)))
	}
	if c.ChunkSamples < 2 || c.ChunkSamples > 10000 {
		errs = append(errs, fmt.Errorf("storage.badger.chunk-samples %d not in 2..10000", c.ChunkSamples))
	}
	if c.IdleTimeout <= 0 {
		errs = append(errs, errors.New("storage.badger.idle-timeout must be positive"))
	}
	if c.CheckpointInterval <= 0 {
		errs = append(errs, errors.New("storage.badger.checkpoint-interval must be positive"))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.ChunkSamples == 0 {
		c.ChunkSamples = d.ChunkSamples
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = d.CheckpointInterval
	}
	if c.RetentionInterval <= 0 {
		c.RetentionInterval = time.Hour
	}
	if c.WALSegmentSize == 0 {
		c.WALSegmentSize = d.WALSegmentSize
	}
	if c.WALPreallocate == 0 {
		c.WALPreallocate = d.WALPreallocate
	}
	if c.CacheSize == 0 {
		c.CacheSize = d.CacheSize
	}
	if c.MinFreeBytes == 0 {
		c.MinFreeBytes = d.MinFreeBytes
	}
	return c
}
