"""OTLP logs (``ExportLogsServiceRequest``) → log rows, from protobuf or OTLP/JSON.

Per record: the timestamp is ``time_unix_nano``, else ``observed_time_unix_nano``, else the
time the request was received (the OTel data model's rule); records outside the accepted
window are rejected (see :mod:`ingest.common`). The body is flattened like an attribute
value and capped at ``max_io_chars``. A record with only a severity number gets the
matching severity text (``INFO``, ``WARN``, ...). ``event_name`` is kept as the
``event.name`` attribute.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from brokle_server.core.types import ProjectScope
from brokle_server.ingest.anyvalue import pb_attributes, pb_text
from brokle_server.ingest.common import ItemBudget, Rejections, Row, RowBatch
from brokle_server.ingest.config import IngestSettings
from brokle_server.ingest.decode import PayloadDecodeError, load_json_object
from brokle_server.ingest.otlp_json import json_array, json_to_message
from brokle_server.ingest.spans import IngestContext, ResourceInfo, note_limits
from brokle_server.store.schema import LOG_COLUMNS

_SEVERITY_NAMES: Final = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
_DEFAULT_SETTINGS: Final = IngestSettings()
_ROW_ORDER: Final = (
    "project_id", "environment", "retention_days", "timestamp", "observed_timestamp",
    "trace_id", "span_id", "trace_flags", "severity_text", "severity_number", "service_name",
    "scope_name", "body", "attributes", "resource_attributes", "ingested_at",
)  # fmt: skip
if tuple(LOG_COLUMNS) != _ROW_ORDER:  # pragma: no cover - guards a schema change
    raise RuntimeError("store.schema.LOG_COLUMNS changed; update ingest.otlp_logs")


def decode_logs_protobuf(
    body: bytes,
    scope: ProjectScope,
    received_at: datetime,
    *,
    settings: IngestSettings = _DEFAULT_SETTINGS,
    fallback_environment: str | None = None,
) -> RowBatch:
    """Decode a protobuf ``ExportLogsServiceRequest`` into log rows."""
    try:
        request = ExportLogsServiceRequest.FromString(body)
    except DecodeError as exc:
        raise PayloadDecodeError(f"invalid OTLP protobuf logs body: {exc}") from None
    return _decode(request, scope, received_at, settings, fallback_environment)


def decode_logs_json(
    body: bytes,
    scope: ProjectScope,
    received_at: datetime,
    *,
    settings: IngestSettings = _DEFAULT_SETTINGS,
    fallback_environment: str | None = None,
) -> RowBatch:
    """Decode an OTLP/JSON ``ExportLogsServiceRequest`` into log rows."""
    doc = load_json_object(body, "OTLP JSON logs")
    _charge_json(doc, ItemBudget(settings.max_items_per_request, "log records"))
    request = ExportLogsServiceRequest()
    json_to_message(doc, request, "OTLP JSON logs")
    return _decode(request, scope, received_at, settings, fallback_environment)


def _charge_json(doc: dict[str, Any], budget: ItemBudget) -> None:
    """Charge what :func:`_decode` will, before the conversion: too many is refused early."""
    resource_logs_list = json_array(doc, "resourceLogs", "resource_logs")
    budget.take_containers(len(resource_logs_list))
    for resource_logs in resource_logs_list:
        scope_logs_list = json_array(resource_logs, "scopeLogs", "scope_logs")
        budget.take_containers(len(scope_logs_list))
        for scope_logs in scope_logs_list:
            budget.take(len(json_array(scope_logs, "logRecords", "log_records")))


def severity_text_for(number: int) -> str:
    """OTel severity number (1-24) → its short name, ``""`` when unset."""
    if 1 <= number <= 24:
        return _SEVERITY_NAMES[(number - 1) // 4]
    return ""


def _decode(
    request: Any,
    scope: ProjectScope,
    received_at: datetime,
    settings: IngestSettings,
    fallback_environment: str | None,
) -> RowBatch:
    ctx = IngestContext(scope, received_at, settings, fallback_environment=fallback_environment)
    limits = ctx.attr_limits
    window = ctx.window
    budget = ItemBudget(settings.max_items_per_request, "log records")
    rows: list[Row] = []
    rejected = Rejections()
    resource_logs_list = request.resource_logs
    budget.take_containers(len(resource_logs_list))
    for resource_logs in resource_logs_list:
        scope_logs_list = resource_logs.scope_logs
        budget.take_containers(len(scope_logs_list))
        resource_attrs: dict[str, str] = {}
        pb_attributes(resource_logs.resource.attributes, limits, resource_attrs)
        res = ResourceInfo(resource_attrs)
        for scope_logs in scope_logs_list:
            scope_name: str = scope_logs.scope.name
            records = scope_logs.log_records
            budget.take(len(records))
            for record in records:
                observed: int = record.observed_time_unix_nano
                ts: int = record.time_unix_nano or observed or window.received_ns
                reason = window.reject_reason(ts)
                if reason is not None:
                    rejected.add(reason)
                    continue
                rows.append(_row(ctx, res, scope_name, record, ts, observed))
    return RowBatch(rows, rejected)


def _row(
    ctx: IngestContext, res: ResourceInfo, scope_name: str, record: Any, ts: int, observed: int
) -> Row:
    attrs: dict[str, str] = {}
    dropped, truncated = pb_attributes(record.attributes, ctx.attr_limits, attrs)
    dropped += record.dropped_attributes_count
    if dropped or truncated:
        note_limits(attrs, dropped, truncated)
    event_name: str = record.event_name
    if event_name:
        attrs["event.name"] = event_name
    trace_id: bytes = record.trace_id
    span_id: bytes = record.span_id
    number: int = record.severity_number
    number = number if 0 <= number <= 24 else 0
    text: str = record.severity_text or severity_text_for(number)
    body = pb_text(record.body) if record.HasField("body") else ""
    return (
        ctx.project_id,
        ctx.environment(attrs.get("brokle.environment"), res.environment),
        ctx.retention_days,
        ts,
        ctx.window.clamp(observed) or ts,
        trace_id.hex() if len(trace_id) == 16 and any(trace_id) else "",
        span_id.hex() if len(span_id) == 8 and any(span_id) else "",
        record.flags & 0xFF,
        text,
        number,
        res.service_name,
        scope_name,
        body[: ctx.io_cap],
        attrs,
        res.attrs,
        ctx.ingested_ms,
    )
