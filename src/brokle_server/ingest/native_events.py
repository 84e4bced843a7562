"""The native batch's ``event`` items → rows of the ``events`` table.

Business and system events (a checkout, a deploy, an audit entry) that are not spans:
``{"name": "checkout", "type": "business", "source": "web", "trace_id": ..., "span_id":
..., "attributes": {...}, "body": <text or JSON>, "timestamp": ..., "environment": ...}``.
``event_id`` is the body's ``id`` or else the envelope id, so a retried batch writes the
same id again and the store keeps one copy.
"""

from __future__ import annotations

from typing import Final

from brokle_server.ingest.anyvalue import plain_attributes
from brokle_server.ingest.common import (
    NS_PER_MS,
    Row,
    dump_json,
    parse_hex_id,
    parse_timestamp_ns,
)
from brokle_server.ingest.native_types import EventBody, Time
from brokle_server.ingest.spans import IngestContext, note_limits
from brokle_server.store.schema import EVENT_COLUMNS

MAX_NAME_CHARS: Final = 200
MAX_TYPE_CHARS: Final = 64
_ROW_ORDER: Final = (
    "project_id", "environment", "retention_days", "event_id", "timestamp", "type", "name",
    "source", "trace_id", "span_id", "attributes", "body", "ingested_at",
)  # fmt: skip
if tuple(EVENT_COLUMNS) != _ROW_ORDER:  # pragma: no cover - guards a schema change
    raise RuntimeError("store.schema.EVENT_COLUMNS changed; update ingest.native_events")


def event_row(ctx: IngestContext, item: EventBody, event_id: str, timestamp: Time) -> Row:
    """The event's row; raises ``ValueError`` with a client-facing message."""
    name = item.name.strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise ValueError(f"name must be 1 to {MAX_NAME_CHARS} characters")
    kind = item.type.strip().lower()
    if not kind or len(kind) > MAX_TYPE_CHARS:
        raise ValueError(f"type must be 1 to {MAX_TYPE_CHARS} characters")
    trace_id = parse_hex_id(item.trace_id, 16) if item.trace_id else ""
    if trace_id is None:
        raise ValueError("trace_id must be 32 hex characters")
    span_id = parse_hex_id(item.span_id, 8) if item.span_id else ""
    if span_id is None:
        raise ValueError("span_id must be 16 hex characters")
    raw_ts = item.timestamp if item.timestamp is not None else timestamp
    ts_ns = ctx.window.received_ns if raw_ts is None else parse_timestamp_ns(raw_ts)
    reason = ctx.window.reject_reason(ts_ns)
    if reason is not None:
        raise ValueError(reason)
    attrs: dict[str, str] = {}
    if item.attributes:
        dropped, truncated = plain_attributes(item.attributes, ctx.attr_limits, attrs)
        if dropped or truncated:
            note_limits(attrs, dropped, truncated)
    body = item.body
    text = body if isinstance(body, str) else "" if body is None else dump_json(body)
    return (
        ctx.project_id,
        ctx.environment(item.environment, None),
        ctx.retention_days,
        (item.id or event_id)[:MAX_NAME_CHARS],
        ts_ns // NS_PER_MS,
        kind,
        name,
        item.source[:MAX_NAME_CHARS],
        trace_id,
        span_id,
        attrs,
        text[: ctx.io_cap],
        ctx.ingested_ms,
    )
