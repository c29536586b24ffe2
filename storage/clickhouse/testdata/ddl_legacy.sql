-- migration 1: samples and series tables
CREATE TABLE IF NOT EXISTS `luminate`.`samples` (
  tenant LowCardinality(String),
  fingerprint UInt64,
  ts Int64,
  value Float64
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(ts, 86400000)
ORDER BY (tenant, fingerprint, ts)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS `luminate`.`series` (
  tenant LowCardinality(String),
  hour Int32,
  min_ts Int64,
  fingerprint UInt64,
  metric_name LowCardinality(String),
  label_names Array(String),
  label_values Array(String)
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(hour, 24)
ORDER BY (tenant, metric_name, fingerprint, hour, min_ts)
SETTINGS index_granularity = 8192;

-- migration 2: exact decimals as integers
-- migration 3: native histograms in the samples table
ALTER TABLE `luminate`.`samples` ADD COLUMN hist String DEFAULT '';

-- migration 5: start timestamps in the samples table
ALTER TABLE `luminate`.`samples` ADD COLUMN st String DEFAULT '';

