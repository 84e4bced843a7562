-- Metrics in the Prometheus model: series (the label sets) and samples (the points).
--
-- series: one row per series per day it was active (writers upsert it as they see samples).
-- series_id is a stable 64-bit hash of the metric name and sorted labels (schema.series_id).
-- Partitioning by day makes the table an index of "series active on day D": a query over a
-- time range prunes to the days in range and reads only the series that had samples then,
-- and retention drops whole days. ReplacingMergeTree(last_seen) folds repeated upserts within
-- a day; readers take argMax(..., last_seen) GROUP BY series_id, never FINAL.
--
-- samples: ORDER BY (project_id, environment, metric_name, series_id, timestamp) - a PromQL
-- selector resolves to series ids of one metric, then reads each series' points in time
-- order, which DoubleDelta/Gorilla compress to a few bytes per sample. environment sits next
-- to project_id as in every other table: the same label set in two environments is two series.
-- A retried batch is dropped by its insert deduplication token (the deduplication window setting).

CREATE TABLE IF NOT EXISTS ${db}.series ${on_cluster}
(
    project_id String,
    environment LowCardinality(String),
    retention_days UInt16 DEFAULT 90,
    metric_name LowCardinality(String),
    series_id UInt64,
    labels Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    metric_type LowCardinality(String) DEFAULT 'unknown',
    unit LowCardinality(String),
    description String CODEC(ZSTD(1)),
    first_seen DateTime64(3, 'UTC'),
    last_seen DateTime64(3, 'UTC'),

    INDEX idx_label_keys mapKeys(labels) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_label_values mapValues(labels) TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(last_seen)
PARTITION BY (retention_days, toDate(last_seen))
ORDER BY (project_id, environment, metric_name, series_id)
TTL toDateTime(last_seen) + toIntervalDay(retention_days)
SETTINGS ttl_only_drop_parts = 1, ${dedup_window};

CREATE TABLE IF NOT EXISTS ${db}.samples ${on_cluster}
(
    project_id String,
    environment LowCardinality(String),
    retention_days UInt16 DEFAULT 90,
    metric_name LowCardinality(String),
    series_id UInt64,
    timestamp DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    value Float64 CODEC(Gorilla, ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY (retention_days, toDate(timestamp))
ORDER BY (project_id, environment, metric_name, series_id, timestamp)
TTL toDateTime(timestamp) + toIntervalDay(retention_days)
SETTINGS ttl_only_drop_parts = 1, ${dedup_window};
