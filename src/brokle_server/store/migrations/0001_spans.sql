-- Spans (OTel spans and LLM generations) and the trace index.
--
-- Sorting key: (project_id, environment, start_time, trace_id, span_id).
-- * The main read is "spans of a project + environment in a time range, newest first": the
--   key prefix serves the range with the primary index and lets ORDER BY start_time DESC
--   read in order, stopping after LIMIT rows. Putting service or name before start_time
--   would split every time range into one range per service.
-- * Trace by id goes through trace_index (keyed by trace id), which gives the trace's time
--   window; the span query then prunes partitions by day, the primary index by start_time,
--   and the bloom filter on trace_id skips the other granules.
-- * trace_id, span_id end the key so that two copies of the same span (an exporter retry that
--   reached us twice) share a sorting key and ReplacingMergeTree(ingested_at) folds them
--   into one. Copies of a span carry the same environment and start_time, so the key is
--   unique per (project_id, trace_id, span_id). Readers never use FINAL: until a merge runs,
--   trace views collapse copies with LIMIT 1 BY span_id, aggregates tolerate them.
-- A retried batch never gets that far: writers insert with a deduplication token and
-- the deduplication window setting makes the table drop the repeated blocks (and, through
-- deduplicate_blocks_in_dependent_materialized_views, the trace_index rows derived from them).
--
-- Retention: retention_days is written per row from the project's setting and is part of the
-- partition key with the day, so the TTL drops whole parts (ttl_only_drop_parts) instead of
-- rewriting them.

CREATE TABLE IF NOT EXISTS ${db}.spans ${on_cluster}
(
    project_id String,
    environment LowCardinality(String),
    retention_days UInt16 DEFAULT 30,
    trace_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    parent_span_id String CODEC(ZSTD(1)),
    trace_state String CODEC(ZSTD(1)),
    name LowCardinality(String),
    kind LowCardinality(String) DEFAULT 'unspecified',
    service_name LowCardinality(String),
    scope_name LowCardinality(String),
    scope_version LowCardinality(String),
    start_time DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    end_time DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    duration_ns UInt64 CODEC(T64, ZSTD(1)),
    status_code LowCardinality(String) DEFAULT 'unset',
    status_message String CODEC(ZSTD(1)),
    span_type LowCardinality(String) DEFAULT 'span',
    level LowCardinality(String) DEFAULT 'DEFAULT',
    attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    resource_attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    event_times Array(DateTime64(9, 'UTC')) CODEC(ZSTD(1)),
    event_names Array(String) CODEC(ZSTD(1)),
    event_attributes Array(Map(String, String)) CODEC(ZSTD(1)),
    link_trace_ids Array(String) CODEC(ZSTD(1)),
    link_span_ids Array(String) CODEC(ZSTD(1)),
    provider LowCardinality(String),
    model LowCardinality(String),
    operation LowCardinality(String),
    input_tokens UInt64 CODEC(T64, ZSTD(1)),
    output_tokens UInt64 CODEC(T64, ZSTD(1)),
    total_tokens UInt64 CODEC(T64, ZSTD(1)),
    cached_tokens UInt64 CODEC(T64, ZSTD(1)),
    cache_write_tokens UInt64 CODEC(T64, ZSTD(1)),
    reasoning_tokens UInt64 CODEC(T64, ZSTD(1)),
    cost_usd Float64 CODEC(ZSTD(1)),
    input_cost_usd Float64 CODEC(ZSTD(1)),
    output_cost_usd Float64 CODEC(ZSTD(1)),
    price_version LowCardinality(String),
    ttft_ms Nullable(Float64),
    input String CODEC(ZSTD(3)),
    output String CODEC(ZSTD(3)),
    user_id String CODEC(ZSTD(1)),
    session_id String CODEC(ZSTD(1)),
    tags Array(LowCardinality(String)),
    api_key_id LowCardinality(String),
    release LowCardinality(String),
    version LowCardinality(String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),

    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_user_id user_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_session_id session_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_service_name service_name TYPE set(256) GRANULARITY 4,
    INDEX idx_model model TYPE set(256) GRANULARITY 4,
    INDEX idx_name name TYPE tokenbf_v1(8192, 3, 0) GRANULARITY 4,
    INDEX idx_attr_keys mapKeys(attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_values mapValues(attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration duration_ns TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY (retention_days, toDate(start_time))
ORDER BY (project_id, environment, start_time, trace_id, span_id)
TTL toDateTime(start_time) + toIntervalDay(retention_days)
SETTINGS ttl_only_drop_parts = 1, ${dedup_window};

-- trace_index: one row per (trace, insert block), merged by AggregatingMergeTree. Keyed by
-- (project_id, trace_id) rather than environment, because a trace is looked up by id alone;
-- the environments it touched are kept so the span query can still use the spans key.
-- Readers aggregate (min/max/sum ... GROUP BY trace_id), which is correct before and after
-- merges, so no FINAL. Partitioned like spans so its TTL drops parts on the same schedule.
CREATE TABLE IF NOT EXISTS ${db}.trace_index ${on_cluster}
(
    project_id String,
    trace_id String,
    retention_days UInt16 DEFAULT 30,
    start_time SimpleAggregateFunction(min, DateTime64(9, 'UTC')),
    end_time SimpleAggregateFunction(max, DateTime64(9, 'UTC')),
    environments SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    span_count SimpleAggregateFunction(sum, UInt64),
    error_count SimpleAggregateFunction(sum, UInt64),
    cost_usd SimpleAggregateFunction(sum, Float64),
    total_tokens SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY (retention_days, toDate(start_time))
ORDER BY (project_id, trace_id)
TTL toDateTime(start_time) + toIntervalDay(retention_days)
SETTINGS ttl_only_drop_parts = 1, ${dedup_window};

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.trace_index_mv ${on_cluster}
TO ${db}.trace_index
AS SELECT
    project_id,
    trace_id,
    retention_days,
    min(start_time) AS start_time,
    max(end_time) AS end_time,
    groupUniqArray(environment) AS environments,
    toUInt64(count()) AS span_count,
    toUInt64(countIf(status_code = 'error')) AS error_count,
    sum(cost_usd) AS cost_usd,
    sum(total_tokens) AS total_tokens
FROM ${db}.spans
GROUP BY project_id, trace_id, retention_days;
