-- Logs (OTel log records).
--
-- Sorting key (project_id, environment, timestamp): like spans, the main read is "logs of a
-- project + environment in a time range, newest first", served by the key prefix and read in
-- order. Service and severity filters use skip indexes instead of the key, so they do not
-- split the time range. Logs have no natural id, so there is no ReplacingMergeTree: a retried
-- batch is dropped by its insert deduplication token (the deduplication window setting).
-- body is free text: ZSTD(3) and a token bloom filter so hasToken(body, 'word') and
-- body LIKE '%word%' skip granules that cannot match.

CREATE TABLE IF NOT EXISTS ${db}.logs ${on_cluster}
(
    project_id String,
    environment LowCardinality(String),
    retention_days UInt16 DEFAULT 30,
    timestamp DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    observed_timestamp DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    trace_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    trace_flags UInt8,
    severity_text LowCardinality(String),
    severity_number UInt8,
    service_name LowCardinality(String),
    scope_name LowCardinality(String),
    body String CODEC(ZSTD(3)),
    attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    resource_attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),

    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_service_name service_name TYPE set(256) GRANULARITY 4,
    INDEX idx_severity severity_number TYPE minmax GRANULARITY 1,
    INDEX idx_body body TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 1,
    INDEX idx_attr_keys mapKeys(attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_values mapValues(attributes) TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY (retention_days, toDate(timestamp))
ORDER BY (project_id, environment, timestamp)
TTL toDateTime(timestamp) + toIntervalDay(retention_days)
SETTINGS ttl_only_drop_parts = 1, ${dedup_window};
