"""The row contract between ingest decoders, writers and the telemetry tables.

Each ``*_COLUMNS`` tuple names the columns a writer inserts, in order; a row is a ``tuple``
whose values follow that order exactly, and is passed unchanged to :meth:`Store.insert`
(``store.insert("spans", SPAN_COLUMNS, rows, dedup_token=...)``). Every tuple starts with
``project_id, environment, retention_days`` so tenant columns sit at the same index everywhere.

Python value per ClickHouse type (checked against clickhouse-connect 1.12 + chDB 4.4):

=================================  ============================================================
ClickHouse type                    Python value
=================================  ============================================================
``String`` / ``LowCardinality``    ``str`` (``""`` for "absent"; no ``None``)
``UInt8/16/64``                    ``int`` (never negative)
``Float64``                        ``float``
``Nullable(Float64)``              ``float | None``
``DateTime64(9, 'UTC')``           ``int`` nanoseconds since the Unix epoch (UTC)
``DateTime64(3, 'UTC')``           ``int`` milliseconds since the Unix epoch (UTC)
``Array(DateTime64(9, 'UTC'))``    ``list[int]`` of nanoseconds
``Map(..., String)``               ``dict[str, str]`` (values stringified by the decoder)
``Array(Map(String, String))``     ``list[dict[str, str]]``
``Array(String)``                  ``list[str]``
=================================  ============================================================

Why integers for time: clickhouse-connect writes an ``int`` column straight into the native
block as the column's ticks (``DateTime64(9)`` → ns, ``DateTime64(3)`` → ms), keeping full
nanosecond precision; a ``datetime`` is converted value by value in Python and is truncated to
microseconds. OTLP already carries ``*_time_unix_nano`` integers, so no conversion is needed.
Reads return naive UTC ``datetime`` objects (use ``toUnixTimestamp64Nano`` for exact ns).

Enumerated text columns hold the lowercase/uppercase spellings listed next to each tuple; the
tables store them as ``LowCardinality(String)`` so an unknown value is kept rather than
rejected (the decoders normalise them). ``ingested_at`` is the time the row was received; it is
the version of the ``ReplacingMergeTree`` tables, so a later copy of the same span/score wins.

Metric series are identified by :func:`series_id`, a stable 64-bit hash of the metric name
and its sorted labels; the same function must be used by every producer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Final

# Default retention written by ingest when a project has no override (mirrored in the DDL).
DEFAULT_SPAN_RETENTION_DAYS: Final = 30
DEFAULT_LOG_RETENTION_DAYS: Final = 30
DEFAULT_METRIC_RETENTION_DAYS: Final = 90
DEFAULT_SCORE_RETENTION_DAYS: Final = 90
DEFAULT_EVENT_RETENTION_DAYS: Final = 90

SPAN_KINDS: Final = ("unspecified", "internal", "server", "client", "producer", "consumer")
SPAN_STATUS_CODES: Final = ("unset", "ok", "error")
SPAN_TYPES: Final = (
    "span",
    "generation",
    "event",
    "tool",
    "agent",
    "chain",
    "retrieval",
    "embedding",
    "guardrail",
    "evaluator",
)
SPAN_LEVELS: Final = ("DEBUG", "DEFAULT", "WARNING", "ERROR")
METRIC_TYPES: Final = ("gauge", "counter", "histogram", "summary", "unknown")
SCORE_DATA_TYPES: Final = ("NUMERIC", "CATEGORICAL", "BOOLEAN")
SCORE_SOURCES: Final = ("API", "SDK", "ANNOTATION", "EVAL")

SPAN_COLUMNS: Final = (
    "project_id",  # str
    "environment",  # str
    "retention_days",  # int (UInt16)
    "trace_id",  # str, 32 lowercase hex chars
    "span_id",  # str, 16 lowercase hex chars
    "parent_span_id",  # str, 16 hex chars or "" for a root span
    "trace_state",  # str
    "name",  # str
    "kind",  # str, one of SPAN_KINDS
    "service_name",  # str
    "scope_name",  # str
    "scope_version",  # str
    "start_time",  # int ns
    "end_time",  # int ns
    "duration_ns",  # int
    "status_code",  # str, one of SPAN_STATUS_CODES
    "status_message",  # str
    "span_type",  # str, one of SPAN_TYPES
    "level",  # str, one of SPAN_LEVELS
    "attributes",  # dict[str, str]
    "resource_attributes",  # dict[str, str]
    "event_times",  # list[int] ns
    "event_names",  # list[str]
    "event_attributes",  # list[dict[str, str]]
    "link_trace_ids",  # list[str]
    "link_span_ids",  # list[str]
    "provider",  # str
    "model",  # str
    "operation",  # str (chat, completion, embedding, ...)
    "input_tokens",  # int
    "output_tokens",  # int
    "total_tokens",  # int
    "cached_tokens",  # int
    "cache_write_tokens",  # int
    "reasoning_tokens",  # int
    "cost_usd",  # float
    "input_cost_usd",  # float
    "output_cost_usd",  # float
    "price_version",  # str
    "ttft_ms",  # float | None
    "input",  # str (prompt, JSON text)
    "output",  # str (completion, JSON text)
    "user_id",  # str
    "session_id",  # str
    "tags",  # list[str]
    "api_key_id",  # str
    "release",  # str
    "version",  # str
    "ingested_at",  # int ms
)

LOG_COLUMNS: Final = (
    "project_id",  # str
    "environment",  # str
    "retention_days",  # int
    "timestamp",  # int ns
    "observed_timestamp",  # int ns
    "trace_id",  # str, 32 hex or ""
    "span_id",  # str, 16 hex or ""
    "trace_flags",  # int (UInt8)
    "severity_text",  # str
    "severity_number",  # int (UInt8, OTel 0-24)
    "service_name",  # str
    "scope_name",  # str
    "body",  # str
    "attributes",  # dict[str, str]
    "resource_attributes",  # dict[str, str]
    "ingested_at",  # int ms
)

SERIES_COLUMNS: Final = (
    "project_id",  # str
    "environment",  # str
    "retention_days",  # int
    "metric_name",  # str
    "series_id",  # int, series_id(metric_name, labels)
    "labels",  # dict[str, str], without the metric name
    "metric_type",  # str, one of METRIC_TYPES
    "unit",  # str
    "description",  # str
    "first_seen",  # int ms
    "last_seen",  # int ms
)

SAMPLE_COLUMNS: Final = (
    "project_id",  # str
    "environment",  # str
    "retention_days",  # int
    "metric_name",  # str
    "series_id",  # int
    "timestamp",  # int ms
    "value",  # float
)

SCORE_COLUMNS: Final = (
    "project_id",  # str
    "environment",  # str
    "retention_days",  # int
    "score_id",  # str
    "trace_id",  # str
    "span_id",  # str
    "name",  # str
    "value",  # float (0.0 for CATEGORICAL)
    "string_value",  # str
    "data_type",  # str, one of SCORE_DATA_TYPES
    "source",  # str, one of SCORE_SOURCES
    "comment",  # str
    "timestamp",  # int ms
    "ingested_at",  # int ms
)

EVENT_COLUMNS: Final = (
    "project_id",  # str
    "environment",  # str
    "retention_days",  # int
    "event_id",  # str
    "timestamp",  # int ms
    "type",  # str (e.g. "audit", "business", "system")
    "name",  # str
    "source",  # str
    "trace_id",  # str
    "span_id",  # str
    "attributes",  # dict[str, str]
    "body",  # str
    "ingested_at",  # int ms
)

COLUMNS_BY_TABLE: Final[Mapping[str, tuple[str, ...]]] = {
    "spans": SPAN_COLUMNS,
    "logs": LOG_COLUMNS,
    "series": SERIES_COLUMNS,
    "samples": SAMPLE_COLUMNS,
    "scores": SCORE_COLUMNS,
    "events": EVENT_COLUMNS,
}

# Separators that cannot occur in UTF-8 text, so no two label sets hash the same input.
_PAIR_SEP: Final = b"\xff"
_KV_SEP: Final = b"\xfe"


def series_id(metric_name: str, labels: Mapping[str, str]) -> int:
    """Stable 64-bit id of a metric series: BLAKE2b-64 of the name and sorted labels.

    Stable across processes and versions (unlike ``hash()``), and independent of label order.
    ``labels`` must not contain ``__name__``; the metric name is passed separately.
    """
    h = hashlib.blake2b(metric_name.encode(), digest_size=8)
    for key in sorted(labels):
        h.update(_PAIR_SEP)
        h.update(key.encode())
        h.update(_KV_SEP)
        h.update(labels[key].encode())
    return int.from_bytes(h.digest(), "little")
