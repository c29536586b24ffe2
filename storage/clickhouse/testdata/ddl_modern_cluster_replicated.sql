-- migration 1: samples and series tables
CREATE TABLE IF NOT EXISTS `luminate`.`samples_local` ON CLUSTER `metrics` (
  tenant LowCardinality(String) CODEC(ZSTD(1)),
  fingerprint UInt64 CODEC(Delta, ZSTD(1)),
  ts Int64 CODEC(DoubleDelta, ZSTD(1)),
  value Float64 CODEC(Delta, ZSTD(3))
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/luminate/samples_local', '{replica}')
PARTITION BY intDiv(ts, 86400000)
ORDER BY (tenant, fingerprint, ts)
TTL toDateTime(intDiv(ts, 1000)) + toIntervalSecond(2592000)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS `luminate`.`series_local` ON CLUSTER `metrics` (
  tenant LowCardinality(String),
  hour Int32,
  min_ts Int64,
  fingerprint UInt64,
  metric_name LowCardinality(String),
  label_names Array(String) CODEC(ZSTD(1)),
  label_values Array(String) CODEC(ZSTD(1))
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/luminate/series_local', '{replica}')
PARTITION BY intDiv(hour, 24)
ORDER BY (tenant, metric_name, fingerprint, hour, min_ts)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS `luminate`.`samples` ON CLUSTER `metrics` AS `luminate`.`samples_local` ENGINE = Distributed(`metrics`, `luminate`, `samples_local`, fingerprint);

CREATE TABLE IF NOT EXISTS `luminate`.`series` ON CLUSTER `metrics` AS `luminate`.`series_local` ENGINE = Distributed(`metrics`, `luminate`, `series_local`, fingerprint);

-- migration 2: exact decimals as integers
ALTER TABLE `luminate`.`samples_local` ON CLUSTER `metrics` ADD COLUMN IF NOT EXISTS digits Int64 DEFAULT 0 CODEC(DoubleDelta, ZSTD(1)) AFTER value, ADD COLUMN IF NOT EXISTS scale Int8 DEFAULT -1 CODEC(ZSTD(1)) AFTER digits;

ALTER TABLE `luminate`.`samples` ON CLUSTER `metrics` ADD COLUMN IF NOT EXISTS digits Int64 DEFAULT 0 AFTER value, ADD COLUMN IF NOT EXISTS scale Int8 DEFAULT -1 AFTER digits;

-- migration 3: native histograms in the samples table
ALTER TABLE `luminate`.`samples_local` ON CLUSTER `metrics` ADD COLUMN IF NOT EXISTS hist String DEFAULT '' CODEC(ZSTD(3));

/* on every node */ ALTER TABLE `luminate`.`samples` ADD COLUMN IF NOT EXISTS hist String DEFAULT '';

-- migration 4: exemplar and metadata tables
CREATE TABLE IF NOT EXISTS `luminate`.`exemplars_local` ON CLUSTER `metrics` (
  tenant LowCardinality(String),
  ts Int64 CODEC(DoubleDelta, ZSTD(1)),
  fingerprint UInt64,
  value Float64,
  exemplar_hash UInt64,
  has_ts UInt8,
  exemplar_names Array(String) CODEC(ZSTD(1)),
  exemplar_values Array(String) CODEC(ZSTD(1)),
  metric_name LowCardinality(String),
  label_names Array(String) CODEC(ZSTD(1)),
  label_values Array(String) CODEC(ZSTD(1))
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/luminate/exemplars_local', '{replica}')
ORDER BY (tenant, ts, fingerprint, exemplar_hash, value)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS `luminate`.`metadata_local` ON CLUSTER `metrics` (
  tenant LowCardinality(String),
  family String,
  metric_type LowCardinality(String),
  unit String,
  help String CODEC(ZSTD(1)),
  version UInt64
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/luminate/metadata_local', '{replica}', version)
ORDER BY (tenant, family)
SETTINGS index_granularity = 1024;

CREATE TABLE IF NOT EXISTS `luminate`.`exemplars` ON CLUSTER `metrics` AS `luminate`.`exemplars_local` ENGINE = Distributed(`metrics`, `luminate`, `exemplars_local`, fingerprint);

CREATE TABLE IF NOT EXISTS `luminate`.`metadata` ON CLUSTER `metrics` AS `luminate`.`metadata_local` ENGINE = Distributed(`metrics`, `luminate`, `metadata_local`, cityHash64(tenant, family));

-- migration 5: start timestamps in the samples table
ALTER TABLE `luminate`.`samples_local` ON CLUSTER `metrics` ADD COLUMN IF NOT EXISTS st Int64 DEFAULT 0 CODEC(Delta, ZSTD(1));

/* on every node */ ALTER TABLE `luminate`.`samples` ADD COLUMN IF NOT EXISTS st Int64 DEFAULT 0;

-- migration 6: tombstones of deleted series
CREATE TABLE IF NOT EXISTS `luminate`.`tombstones_local` ON CLUSTER `metrics` (
  tenant String,
  fingerprint UInt64,
  mint Int64,
  maxt Int64,
  whole UInt8,
  seq UInt64
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/luminate/tombstones_local', '{replica}')
ORDER BY (tenant, fingerprint, mint, maxt, seq)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS `luminate`.`tombstones` ON CLUSTER `metrics` AS `luminate`.`tombstones_local` ENGINE = Distributed(`metrics`, `luminate`, `tombstones_local`, fingerprint);

-- migration 7: cardinality statistics
CREATE TABLE IF NOT EXISTS `luminate`.`series_stats_local` ON CLUSTER `metrics` (
  tenant LowCardinality(String),
  day Int32,
  label_name String,
  label_value String,
  series AggregateFunction(uniq, UInt64),
  min_ts AggregateFunction(min, Int64),
  max_hour AggregateFunction(max, Int32)
) ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/luminate/series_stats_local', '{replica}')
PARTITION BY day
ORDER BY (tenant, day, label_name, label_value)
SETTINGS index_granularity = 8192;

CREATE MATERIALIZED VIEW IF NOT EXISTS `luminate`.`series_stats_mv_local` ON CLUSTER `metrics` TO `luminate`.`series_stats_local` AS SELECT tenant, toInt32(intDiv(hour, 24)) AS day, label_name, label_value, uniqState(fingerprint) AS series, minState(min_ts) AS min_ts, maxState(hour) AS max_hour FROM `luminate`.`series_local` ARRAY JOIN label_names AS label_name, label_values AS label_value GROUP BY tenant, day, label_name, label_value;

CREATE TABLE IF NOT EXISTS `luminate`.`series_forgotten_local` ON CLUSTER `metrics` (
  tenant LowCardinality(String),
  fingerprint UInt64,
  forgotten_at Int64,
  first_day Int32,
  last_day Int32,
  metric_name LowCardinality(String),
  label_names Array(String),
  label_values Array(String)
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/luminate/series_forgotten_local', '{replica}')
ORDER BY (tenant, fingerprint, forgotten_at)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS `luminate`.`series_stats` ON CLUSTER `metrics` AS `luminate`.`series_stats_local` ENGINE = Distributed(`metrics`, `luminate`, `series_stats_local`, rand());

CREATE TABLE IF NOT EXISTS `luminate`.`series_forgotten` ON CLUSTER `metrics` AS `luminate`.`series_forgotten_local` ENGINE = Distributed(`metrics`, `luminate`, `series_forgotten_local`, fingerprint);

/* on every node */ INSERT INTO `luminate`.`series_stats_local` SELECT tenant, toInt32(intDiv(hour, 24)) AS day, label_name, label_value, uniqState(fingerprint) AS series, minState(min_ts) AS min_ts, maxState(hour) AS max_hour FROM `luminate`.`series_local` ARRAY JOIN label_names AS label_name, label_values AS label_value GROUP BY tenant, day, label_name, label_value;

-- migration 8: HA election table
CREATE TABLE IF NOT EXISTS `luminate`.`ha_elections_local` ON CLUSTER `metrics` (
  tenant String,
  cluster String,
  term UInt64,
  replica String,
  elected_at UInt64,
  received_at UInt64
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/luminate/ha_elections_local', '{replica}', received_at)
ORDER BY (tenant, cluster, term, replica, elected_at)
SETTINGS index_granularity = 256;

CREATE TABLE IF NOT EXISTS `luminate`.`ha_elections` ON CLUSTER `metrics` AS `luminate`.`ha_elections_local` ENGINE = Distributed(`metrics`, `luminate`, `ha_elections_local`, cityHash64(tenant, cluster));

-- migration 9: pods table
CREATE TABLE IF NOT EXISTS `luminate`.`pods_local` ON CLUSTER `metrics` (
  pod String,
  tenant String,
  ingest Float64,
  requests Float64,
  queries Float64,
  concurrent Float64,
  at Int64,
  seen DateTime DEFAULT now()
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/luminate/pods_local', '{replica}', at)
PARTITION BY toYYYYMMDD(seen)
ORDER BY (pod, tenant)
SETTINGS index_granularity = 1024;

CREATE TABLE IF NOT EXISTS `luminate`.`pods` ON CLUSTER `metrics` AS `luminate`.`pods_local` ENGINE = Distributed(`metrics`, `luminate`, `pods_local`, cityHash64(pod));

-- migration 10: label index
CREATE TABLE IF NOT EXISTS `luminate`.`series_index_local` ON CLUSTER `metrics` (
  tenant LowCardinality(String),
  day Int32,
  label_name String,
  label_value String,
  fingerprint UInt64,
  metric_name LowCardinality(String),
  label_names Array(String) CODEC(ZSTD(1)),
  label_values Array(String) CODEC(ZSTD(1)),
  min_ts_state AggregateFunction(min, Int64),
  max_hour_state AggregateFunction(max, Int32)
) ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/luminate/series_index_local', '{replica}')
PARTITION BY day
ORDER BY (tenant, label_name, label_value, fingerprint)
SETTINGS index_granularity = 8192;

CREATE MATERIALIZED VIEW IF NOT EXISTS `luminate`.`series_index_mv_local` ON CLUSTER `metrics` TO `luminate`.`series_index_local` AS SELECT tenant, toInt32(intDiv(hour, 24)) AS day, label_name, label_value, fingerprint, metric_name, label_names, label_values, minState(min_ts) AS min_ts_state, maxState(hour) AS max_hour_state FROM `luminate`.`series_local` ARRAY JOIN label_names AS label_name, label_values AS label_value WHERE label_name != '__name__' GROUP BY tenant, day, label_name, label_value, fingerprint, metric_name, label_names, label_values;

CREATE TABLE IF NOT EXISTS `luminate`.`series_index` ON CLUSTER `metrics` AS `luminate`.`series_index_local` ENGINE = Distributed(`metrics`, `luminate`, `series_index_local`, fingerprint);

/* on every node */ INSERT INTO `luminate`.`series_index_local` SELECT tenant, toInt32(intDiv(hour, 24)) AS day, label_name, label_value, fingerprint, metric_name, label_names, label_values, minState(min_ts) AS min_ts_state, maxState(hour) AS max_hour_state FROM `luminate`.`series_local` ARRAY JOIN label_names AS label_name, label_values AS label_value WHERE label_name != '__name__' GROUP BY tenant, day, label_name, label_value, fingerprint, metric_name, label_names, label_values;

