-- migration 1: samples and series tables
CREATE TABLE IF NOT EXISTS `luminate`.`samples` (
  tenant LowCardinality(String) CODEC(ZSTD(1)),
  fingerprint UInt64 CODEC(Delta, ZSTD(1)),
  ts Int64 CODEC(DoubleDelta, ZSTD(1)),
  value Float64 CODEC(Delta, ZSTD(3))
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(ts, 86400000)
ORDER BY (tenant, fingerprint, ts)
TTL toDateTime(intDiv(ts, 1000)) + toIntervalSecond(7776000)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS `luminate`.`series` (
  tenant LowCardinality(String),
  hour Int32,
  min_ts Int64,
  fingerprint UInt64,
  metric_name LowCardinality(String),
  label_names Array(String) CODEC(ZSTD(1)),
  label_values Array(String) CODEC(ZSTD(1))
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(hour, 24)
ORDER BY (tenant, metric_name, fingerprint, hour, min_ts)
SETTINGS index_granularity = 8192;

-- migration 2: exact decimals as integers
ALTER TABLE `luminate`.`samples` ADD COLUMN IF NOT EXISTS digits Int64 DEFAULT 0 CODEC(DoubleDelta, ZSTD(1)) AFTER value, ADD COLUMN IF NOT EXISTS scale Int8 DEFAULT -1 CODEC(ZSTD(1)) AFTER digits;

-- migration 3: native histograms in the samples table
ALTER TABLE `luminate`.`samples` ADD COLUMN IF NOT EXISTS hist String DEFAULT '' CODEC(ZSTD(3));

-- migration 4: exemplar and metadata tables
CREATE TABLE IF NOT EXISTS `luminate`.`exemplars` (
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
) ENGINE = ReplacingMergeTree()
ORDER BY (tenant, ts, fingerprint, exemplar_hash, value)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS `luminate`.`metadata` (
  tenant LowCardinality(String),
  family String,
  metric_type LowCardinality(String),
  unit String,
  help String CODEC(ZSTD(1)),
  version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, family)
SETTINGS index_granularity = 1024;

-- migration 5: start timestamps in the samples table
ALTER TABLE `luminate`.`samples` ADD COLUMN IF NOT EXISTS st Int64 DEFAULT 0 CODEC(Delta, ZSTD(1));

-- migration 6: tombstones of deleted series
CREATE TABLE IF NOT EXISTS `luminate`.`tombstones` (
  tenant String,
  fingerprint UInt64,
  mint Int64,
  maxt Int64,
  whole UInt8,
  seq UInt64
) ENGINE = ReplacingMergeTree()
ORDER BY (tenant, fingerprint, mint, maxt, seq)
SETTINGS index_granularity = 8192;

-- migration 7: cardinality statistics
CREATE TABLE IF NOT EXISTS `luminate`.`series_stats` (
  tenant LowCardinality(String),
  day Int32,
  label_name String,
  label_value String,
  series AggregateFunction(uniq, UInt64),
  min_ts AggregateFunction(min, Int64),
  max_hour AggregateFunction(max, Int32)
) ENGINE = AggregatingMergeTree()
PARTITION BY day
ORDER BY (tenant, day, label_name, label_value)
SETTINGS index_granularity = 8192;

CREATE MATERIALIZED VIEW IF NOT EXISTS `luminate`.`series_stats_mv` TO `luminate`.`series_stats` AS SELECT tenant, toInt32(intDiv(hour, 24)) AS day, label_name, label_value, uniqState(fingerprint) AS series, minState(min_ts) AS min_ts, maxState(hour) AS max_hour FROM `luminate`.`series` ARRAY JOIN label_names AS label_name, label_values AS label_value GROUP BY tenant, day, label_name, label_value;

CREATE TABLE IF NOT EXISTS `luminate`.`series_forgotten` (
  tenant LowCardinality(String),
  fingerprint UInt64,
  forgotten_at Int64,
  first_day Int32,
  last_day Int32,
  metric_name LowCardinality(String),
  label_names Array(String),
  label_values Array(String)
) ENGINE = ReplacingMergeTree()
ORDER BY (tenant, fingerprint, forgotten_at)
SETTINGS index_granularity = 8192;

INSERT INTO `luminate`.`series_stats` SELECT tenant, toInt32(intDiv(hour, 24)) AS day, label_name, label_value, uniqState(fingerprint) AS series, minState(min_ts) AS min_ts, maxState(hour) AS max_hour FROM `luminate`.`series` ARRAY JOIN label_names AS label_name, label_values AS label_value GROUP BY tenant, day, label_name, label_value;

-- migration 8: HA election table
CREATE TABLE IF NOT EXISTS `luminate`.`ha_elections` (
  tenant String,
  cluster String,
  term UInt64,
  replica String,
  elected_at UInt64,
  received_at UInt64
) ENGINE = ReplacingMergeTree(received_at)
ORDER BY (tenant, cluster, term, replica, elected_at)
SETTINGS index_granularity = 256;

-- migration 9: pods table
CREATE TABLE IF NOT EXISTS `luminate`.`pods` (
  pod String,
  tenant String,
  ingest Float64,
  requests Float64,
  queries Float64,
  concurrent Float64,
  at Int64,
  seen DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree(at)
PARTITION BY toYYYYMMDD(seen)
ORDER BY (pod, tenant)
SETTINGS index_granularity = 1024;

-- migration 10: label index
CREATE TABLE IF NOT EXISTS `luminate`.`series_index` (
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
) ENGINE = AggregatingMergeTree()
PARTITION BY day
ORDER BY (tenant, label_name, label_value, fingerprint)
SETTINGS index_granularity = 8192;

CREATE MATERIALIZED VIEW IF NOT EXISTS `luminate`.`series_index_mv` TO `luminate`.`series_index` AS SELECT tenant, toInt32(intDiv(hour, 24)) AS day, label_name, label_value, fingerprint, metric_name, label_names, label_values, minState(min_ts) AS min_ts_state, maxState(hour) AS max_hour_state FROM `luminate`.`series` ARRAY JOIN label_names AS label_name, label_values AS label_value WHERE label_name != '__name__' GROUP BY tenant, day, label_name, label_value, fingerprint, metric_name, label_names, label_values;

INSERT INTO `luminate`.`series_index` SELECT tenant, toInt32(intDiv(hour, 24)) AS day, label_name, label_value, fingerprint, metric_name, label_names, label_values, minState(min_ts) AS min_ts_state, maxState(hour) AS max_hour_state FROM `luminate`.`series` ARRAY JOIN label_names AS label_name, label_values AS label_value WHERE label_name != '__name__' GROUP BY tenant, day, label_name, label_value, fingerprint, metric_name, label_names, label_values;

