-- Scores (evaluations of traces and spans) and events (business/system events, audit trail).
--
-- scores: ORDER BY (project_id, environment, toDate(timestamp), name, score_id). Score
-- analytics read one project + environment over days, grouped by score name. score_id ends
-- the key so ReplacingMergeTree(ingested_at) keeps the latest version of a score that was
-- edited (an annotation changed): an update must keep the score's timestamp and name,
-- which it does since timestamp is the creation time. Scores of a trace use the bloom
-- filter on trace_id. Readers use argMax(..., ingested_at) or LIMIT 1 BY score_id, no FINAL.
--
-- events: ORDER BY (project_id, environment, timestamp, event_id): the audit trail is read
-- as "newest events of a project + environment", filtered by type through a skip index.
-- event_id ends the key so a re-sent event folds into one row (ReplacingMergeTree).
-- Retried batches of either table are dropped by their insert deduplication token
-- (the deduplication window setting).

CREATE TABLE IF NOT EXISTS ${db}.scores ${on_cluster}
(
    project_id String,
    environment LowCardinality(String),
    retention_days UInt16 DEFAULT 90,
    score_id String,
    trace_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    name LowCardinality(String),
    value Float64,
    string_value String CODEC(ZSTD(1)),
    data_type LowCardinality(String) DEFAULT 'NUMERIC',
    source LowCardinality(String) DEFAULT 'API',
    comment String CODEC(ZSTD(3)),
    timestamp DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),

    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_score_id score_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY (retention_days, toDate(timestamp))
ORDER BY (project_id, environment, toDate(timestamp), name, score_id)
TTL toDateTime(timestamp) + toIntervalDay(retention_days)
SETTINGS ttl_only_drop_parts = 1, ${dedup_window};

CREATE TABLE IF NOT EXISTS ${db}.events ${on_cluster}
(
    project_id String,
    environment LowCardinality(String),
    retention_days UInt16 DEFAULT 90,
    event_id String,
    timestamp DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    type LowCardinality(String),
    name LowCardinality(String),
    source LowCardinality(String),
    trace_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    body String CODEC(ZSTD(3)),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),

    INDEX idx_type type TYPE set(256) GRANULARITY 4,
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY (retention_days, toDate(timestamp))
ORDER BY (project_id, environment, timestamp, event_id)
TTL toDateTime(timestamp) + toIntervalDay(retention_days)
SETTINGS ttl_only_drop_parts = 1, ${dedup_window};
