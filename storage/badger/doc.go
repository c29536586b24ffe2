// Package badger is Luminate's embedded time-series engine on BadgerDB, the
// zero-dependency default backend.
//
// Samples (floats and native histograms) arrive through a tenant-scoped
// appender, are made durable in a write-ahead log (group-synced) before
// Commit returns, and are appended to an in-memory head chunk per series:
// Gorilla XOR for floats, Prometheus' histogram chunks for histograms.
// Full heads are sealed and written to Badger keyed by tenant, series and
// time; an in-memory inverted index per tenant answers matchers and label
// lookups. Checkpoints snapshot open heads so that WAL segments can be
// deleted; idle heads are sealed and dropped; a retention job deletes each
// tenant's chunks past its own retention. See docs/architecture.md.
//
// # Files
//
// By role, as Prometheus' tsdb/head_*.go:
//
//   - store.go: Store, opening, closing and the background jobs;
//     recover.go: rebuilding memory from Badger and the WAL at start;
//     health.go: degraded mode when the disk fills or turns read-only.
//   - view.go: ForTenant and the tenant view, whose appender (appender.go),
//     queriers (querier.go), exemplars (exemplars.go, auxlog.go), metadata
//     (metadata.go) and cardinality (cardinality.go) it hands out.
//   - wal.go: the write-ahead log; head.go: series and their head chunks;
//     index.go: the per-tenant series index; keys.go, codec.go, packed.go:
//     Badger keys and value encodings.
//   - flush.go: writing sealed chunks to Badger, merging out-of-order
//     samples into them; checkpoint.go: making the WAL's contents durable
//     in Badger so its segments can go; retention.go: deleting old chunks.
//
// It is not a general key-value store for other packages: everything goes
// through the storage.MetricsStore contract.
package badger
