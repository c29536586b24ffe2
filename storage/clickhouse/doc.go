// Package clickhouse is Luminate's scale-out storage backend: a
// storage.MetricsStore on a ClickHouse server or cluster, which keeps
// Luminate itself stateless.
//
// # Schema
//
// Two tables, created and migrated at start (schema.go, versioned and
// idempotent):
//
//   - samples (tenant, fingerprint, ts, value[, digits, scale], hist, st): one
//     row per sample, a ReplacingMergeTree partitioned by day of ts and
//     ordered by (tenant, fingerprint, ts). Servers from 20.3 get
//     CODEC(DoubleDelta, ZSTD) on ts, CODEC(Delta, ZSTD(3)) on value
//     (measured smaller than Gorilla), a TTL, and the digits and scale
//     columns: a value that is an exact decimal is kept as digits /
//     10^scale, which compresses far better than its float bits
//     (decimal.go); 18.x gets none of these.
//   - Native histograms (migration 3) are rows of the same table: value
//     holds a marker NaN and hist the histogram's own compact encoding
//     (histcodec.go: varints, floats as byte-reversed bits, so every bit
//     survives). One key per sample whatever its kind makes
//     ReplacingMergeTree's last-write-wins hold across kinds with no read
//     time work; floats leave hist empty and their inserts do not send it.
//     hist is CODEC(ZSTD(3)) from 20.3, LZ4 (the server default) on 18.x.
//   - Start timestamps (AppenderV2's st, migration 5) are the st column of
//     the sample's row, 0 when unknown, so the winning write's st wins
//     with it. Batches without one do not send it (it defaults to 0); it
//     is CODEC(Delta, ZSTD(1)) from 20.3, where a column of zeros costs
//     0.0001 bytes per sample, LZ4 on 18.x.
//   - series (tenant, hour, min_ts, fingerprint, metric_name, label_names,
//     label_values): one row per series and hour in which it has samples
//     (more when out-of-order samples lower the hour's earliest, min_ts),
//     ordered by (tenant, metric_name, fingerprint, hour, min_ts).
//
// The fingerprint is xxhash64 of the series' sorted labels including the
// tenant label. Retention is per tenant (retention.go): reads start at the
// tenant's cutoff, whole daily partitions of both tables go by the longest
// retention in force, and a daily mutation deletes the rows of tenants
// whose retention is shorter.
//
// # Writes
//
// Appenders collect samples in columns; Commit hands them to a group
// committer that merges concurrent commits into large column inserts and
// returns once the insert holding them succeeded. A series gets a series
// row once per hour (a per-tenant cache knows which it has). Last write
// wins at an existing timestamp: each insert holds a key once (a batch is
// sorted and deduplicated, the later write kept), ReplacingMergeTree
// without a version keeps the row of the newest part when it merges, and
// reads do the same before the merge by part order (_part_index).
// Histograms take the same path, validated as Prometheus' head validates
// them; a float and a histogram at one timestamp are one key, so the later
// write wins whatever the kinds, and a retried insert folds into one row
// as a float's does. An insert that fails because ClickHouse is away answers
// storage.ErrUnavailable.
//
// # Reads
//
// Matchers become SQL over the series table; series are resolved first,
// then their samples read by (tenant, fingerprint, time), without joins,
// in batches of series sized by an estimate of their samples (so memory
// stays bounded): the server returns a batch's rows unsorted, which on
// 18.x costs half of a sorted read, and Luminate groups them by series
// and time, resolving overwrites by part order.
// A batch whose rows include the histogram marker reads, with a second
// query, the hist column of its marked rows only (newest part first, so
// merges between the two queries change nothing); batches of floats read
// exactly as before histograms. Select's iterators decode a histogram
// when it is asked for; the ChunkQuerier builds XOR, histogram and float
// histogram chunks, never recoding a histogram into another's layout, and
// a chunk holding a start timestamp in the encoding of its kind that keeps
// them (XOR2, histogram ST, float histogram ST), cut where it would be
// without. Every samples query reads st with the value; iterators return
// it from AtST.
// Counter reset hints read back as from Prometheus' chunks: a counter
// histogram written with the unknown hint that continues the sample
// before it (looked up before the range too, within an hour) reads
// NotCounterReset, which PromQL and its upstream tests rely on. A
// histogram counts as one sample against max_samples_per_query; a batch's
// encoded histograms are bounded in bytes too.
// Label names and values come from the series table; their time range is
// exact: a row whose min_ts lies in the range proves a sample there, and
// only series whose first-hour row starts before the range and that
// nothing else proves get their samples checked, within that hour.
//
// A matcher too long for SQL (a multi-value Grafana variable set to All
// is a regex of every value) is not sent: it is checked in Go on the
// series the others select, as every matcher is. A select reads at most
// one series past the tenant's max_series_per_query (a LIMIT when every
// matcher was sent) and no batch of samples after the one crossing its
// max_samples_per_query, then fails. Read errors reach callers without
// the SQL or the server's message, which are logged (errors.go).
//
// It is not a query engine: PromQL runs in Luminate over these interfaces.
//
// # Files
//
// By role, named as in storage/badger:
//
//   - store.go: Store, connecting, migrating (schema*.go), health, closing
//     and the background job; retention.go: per-tenant retention.
//   - view.go: ForTenant and the tenant view, whose appender (appender.go,
//     committed by commit.go), queriers (querier.go, histread.go),
//     exemplars and metadata (aux.go, exemplars.go, metadata.go) and
//     cardinality (cardinality.go) it hands out.
//   - series.go: fingerprints and the per-tenant series cache; sql.go,
//     errors.go: building SQL and classifying the server's errors;
//     decimal.go, histcodec.go: value encodings.
package clickhouse
