"""OTLP traces (``ExportTraceServiceRequest``) → span rows, from protobuf or OTLP/JSON.

OTLP/JSON is read as the spec defines it — lowerCamelCase keys, hex ``traceId``/``spanId``,
integer enums, 64-bit integers as decimal strings — and, like the OpenTelemetry Collector,
also accepts the original snake_case keys, enum names and number-typed 64-bit values, so a
hand-written or protobuf-``MessageToJson`` body is not silently dropped. Base64 ids (the
standard protobuf JSON mapping) are accepted too, recognised by their length.

A body that cannot be parsed raises :class:`~brokle_server.ingest.decode.PayloadDecodeError`
(HTTP 400). A span that parses but breaks a rule is *rejected* and counted, so the caller
answers 200 with ``partial_success``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from brokle_server.core.types import ProjectScope
from brokle_server.ingest.anyvalue import json_attributes, pb_attributes
from brokle_server.ingest.common import ItemBudget, Rejections, Row, RowBatch, parse_hex_id
from brokle_server.ingest.config import IngestSettings
from brokle_server.ingest.decode import PayloadDecodeError, load_json_object, pick
from brokle_server.ingest.spans import (
    SPAN_KIND_NAMES,
    STATUS_NAMES,
    IngestContext,
    ResourceInfo,
    build_span_row,
    note_limits,
)

_ZERO_TRACE: Final = bytes(16)
_ZERO_SPAN: Final = bytes(8)
_KIND_BY_NAME: Final = {f"SPAN_KIND_{n.upper()}": i for i, n in enumerate(SPAN_KIND_NAMES)}
_STATUS_BY_NAME: Final = {f"STATUS_CODE_{n.upper()}": i for i, n in enumerate(STATUS_NAMES)}
_DEFAULT_SETTINGS: Final = IngestSettings()


def decode_traces_protobuf(
    body: bytes,
    scope: ProjectScope,
    received_at: datetime,
    *,
    settings: IngestSettings = _DEFAULT_SETTINGS,
    api_key_id: str = "",
    fallback_environment: str | None = None,
) -> RowBatch:
    """Decode a protobuf ``ExportTraceServiceRequest`` into span rows."""
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except DecodeError as exc:
        raise PayloadDecodeError(f"invalid OTLP protobuf traces body: {exc}") from None
    ctx = IngestContext(
        scope,
        received_at,
        settings,
        api_key_id=api_key_id,
        fallback_environment=fallback_environment,
    )
    limits = ctx.attr_limits
    budget = ItemBudget(settings.max_items_per_request, "spans")
    rows: list[Row] = []
    rejected = Rejections()
    resource_spans_list = request.resource_spans
    budget.take_containers(len(resource_spans_list))  # before any per-entry work
    for resource_spans in resource_spans_list:
        scope_spans_list = resource_spans.scope_spans
        budget.take_containers(len(scope_spans_list))
        resource_attrs: dict[str, str] = {}
        pb_attributes(resource_spans.resource.attributes, limits, resource_attrs)
        res = ResourceInfo(resource_attrs)
        for scope_spans in scope_spans_list:
            inst = scope_spans.scope
            scope_name: str = inst.name
            scope_version: str = inst.version
            spans = scope_spans.spans
            budget.take(len(spans))
            for span in spans:
                trace_id: bytes = span.trace_id
                span_id: bytes = span.span_id
                if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
                    rejected.add("invalid trace_id (must be 16 bytes, not all zero)")
                    continue
                if len(span_id) != 8 or span_id == _ZERO_SPAN:
                    rejected.add("invalid span_id (must be 8 bytes, not all zero)")
                    continue
                row = _pb_span(ctx, res, scope_name, scope_version, span, trace_id, span_id)
                if type(row) is str:
                    rejected.add(row)
                else:
                    rows.append(row)  # type: ignore[arg-type]
    return RowBatch(rows, rejected)


def _pb_span(
    ctx: IngestContext,
    res: ResourceInfo,
    scope_name: str,
    scope_version: str,
    span: Any,
    trace_id: bytes,
    span_id: bytes,
) -> Row | str:
    limits = ctx.attr_limits
    name_cap = limits.max_value
    attrs: dict[str, str] = {}
    dropped, truncated = pb_attributes(span.attributes, limits, attrs)
    dropped += span.dropped_attributes_count
    if dropped or truncated:
        note_limits(attrs, dropped, truncated)
    start_ns: int = span.start_time_unix_nano
    event_times: list[int] = []
    event_names: list[str] = []
    event_attrs: list[dict[str, str]] = []
    events = span.events
    if events:
        extra = len(events) - ctx.max_events
        if extra > 0:
            events = events[: ctx.max_events]
        clamp = ctx.window.clamp
        for event in events:
            ea: dict[str, str] = {}
            d, t = pb_attributes(event.attributes, limits, ea)
            if d or t:
                note_limits(ea, d + event.dropped_attributes_count, t)
            event_times.append(clamp(event.time_unix_nano) or start_ns)
            event_names.append(event.name[:name_cap])
            event_attrs.append(ea)
        if extra > 0 or span.dropped_events_count:
            attrs["brokle.dropped_events_count"] = str(max(extra, 0) + span.dropped_events_count)
    link_trace_ids: list[str] = []
    link_span_ids: list[str] = []
    links = span.links
    if links:
        extra = len(links) - ctx.max_links
        for link in links[: ctx.max_links] if extra > 0 else links:
            tid: bytes = link.trace_id
            sid: bytes = link.span_id
            link_trace_ids.append(tid.hex() if len(tid) == 16 else "")
            link_span_ids.append(sid.hex() if len(sid) == 8 else "")
        if extra > 0:
            attrs["brokle.dropped_links_count"] = str(extra)
    kind: int = span.kind
    status = span.status
    code: int = status.code
    parent: bytes = span.parent_span_id
    return build_span_row(
        ctx,
        res,
        scope_name,
        scope_version,
        trace_id.hex(),
        span_id.hex(),
        parent.hex() if len(parent) == 8 else "",
        span.trace_state,
        span.name,
        SPAN_KIND_NAMES[kind] if 0 <= kind < 6 else "unspecified",
        start_ns,
        span.end_time_unix_nano,
        STATUS_NAMES[code] if 0 <= code < 3 else "unset",
        status.message,
        attrs,
        event_times,
        event_names,
        event_attrs,
        link_trace_ids,
        link_span_ids,
    )


def decode_traces_json(
    body: bytes,
    scope: ProjectScope,
    received_at: datetime,
    *,
    settings: IngestSettings = _DEFAULT_SETTINGS,
    api_key_id: str = "",
    fallback_environment: str | None = None,
) -> RowBatch:
    """Decode an OTLP/JSON ``ExportTraceServiceRequest`` into span rows."""
    doc = load_json_object(body, "OTLP JSON traces")
    resource_spans_list = pick(doc, "resourceSpans", "resource_spans")
    if resource_spans_list is None:
        resource_spans_list = []
    if not isinstance(resource_spans_list, list):
        raise PayloadDecodeError("resourceSpans must be an array")
    ctx = IngestContext(
        scope,
        received_at,
        settings,
        api_key_id=api_key_id,
        fallback_environment=fallback_environment,
    )
    budget = ItemBudget(settings.max_items_per_request, "spans")
    budget.take_containers(len(resource_spans_list))
    rows: list[Row] = []
    rejected = Rejections()
    for resource_spans in resource_spans_list:
        try:
            scope_spans_list = pick(resource_spans, "scopeSpans", "scope_spans") or []
            if not isinstance(scope_spans_list, list):
                raise TypeError
            budget.take_containers(len(scope_spans_list))
            resource = pick(resource_spans, "resource", "resource") or {}
            resource_attrs: dict[str, str] = {}
            json_attributes(resource.get("attributes"), ctx.attr_limits, resource_attrs)
            res = ResourceInfo(resource_attrs)
        except (AttributeError, TypeError, ValueError, OverflowError):
            raise PayloadDecodeError("malformed resourceSpans entry") from None
        for scope_spans in scope_spans_list:
            try:
                inst = pick(scope_spans, "scope", "scope") or {}
                scope_name = str(inst.get("name") or "")
                scope_version = str(inst.get("version") or "")
                spans = pick(scope_spans, "spans", "spans") or []
                count = len(spans)
            except (AttributeError, TypeError):
                raise PayloadDecodeError("malformed scopeSpans entry") from None
            budget.take(count)
            for span in spans:
                try:
                    row = _json_span(ctx, res, scope_name, scope_version, span)
                except (AttributeError, TypeError, ValueError, OverflowError, KeyError):
                    row = "malformed span (a field has the wrong JSON type)"
                if type(row) is str:
                    rejected.add(row)
                else:
                    rows.append(row)  # type: ignore[arg-type]
    return RowBatch(rows, rejected)


def _enum(value: object, names: dict[str, int]) -> int:
    if isinstance(value, str):
        return names.get(value, 0) if not value.isdigit() else int(value)
    return int(value) if isinstance(value, int) else 0


def _json_span(
    ctx: IngestContext, res: ResourceInfo, scope_name: str, scope_version: str, span: Any
) -> Row | str:
    trace_id = parse_hex_id(pick(span, "traceId", "trace_id"), 16)
    if not trace_id:
        return "invalid trace_id (must be 32 hex characters, not all zero)"
    span_id = parse_hex_id(pick(span, "spanId", "span_id"), 8)
    if not span_id:
        return "invalid span_id (must be 16 hex characters, not all zero)"
    parent = parse_hex_id(pick(span, "parentSpanId", "parent_span_id") or "", 8) or ""
    limits = ctx.attr_limits
    name_cap = limits.max_value
    attrs: dict[str, str] = {}
    dropped, truncated = json_attributes(span.get("attributes"), limits, attrs)
    dropped += int(pick(span, "droppedAttributesCount", "dropped_attributes_count") or 0)
    if dropped or truncated:
        note_limits(attrs, dropped, truncated)
    start_ns = int(pick(span, "startTimeUnixNano", "start_time_unix_nano") or 0)
    end_ns = int(pick(span, "endTimeUnixNano", "end_time_unix_nano") or 0)
    event_times: list[int] = []
    event_names: list[str] = []
    event_attrs: list[dict[str, str]] = []
    events = span.get("events")
    if events:
        clamp = ctx.window.clamp
        for event in events[: ctx.max_events]:
            ea: dict[str, str] = {}
            d, t = json_attributes(event.get("attributes"), limits, ea)
            if d or t:
                note_limits(ea, d, t)
            ts = int(pick(event, "timeUnixNano", "time_unix_nano") or 0)
            event_times.append(clamp(ts) or start_ns)
            event_names.append(str(event.get("name") or "")[:name_cap])
            event_attrs.append(ea)
        if len(events) > ctx.max_events:
            attrs["brokle.dropped_events_count"] = str(len(events) - ctx.max_events)
    link_trace_ids: list[str] = []
    link_span_ids: list[str] = []
    links = span.get("links")
    if links:
        for link in links[: ctx.max_links]:
            link_trace_ids.append(parse_hex_id(pick(link, "traceId", "trace_id"), 16) or "")
            link_span_ids.append(parse_hex_id(pick(link, "spanId", "span_id"), 8) or "")
        if len(links) > ctx.max_links:
            attrs["brokle.dropped_links_count"] = str(len(links) - ctx.max_links)
    kind = _enum(span.get("kind"), _KIND_BY_NAME)
    status = span.get("status") or {}
    code = _enum(status.get("code"), _STATUS_BY_NAME)
    return build_span_row(
        ctx,
        res,
        scope_name,
        scope_version,
        trace_id,
        span_id,
        parent,
        str(pick(span, "traceState", "trace_state") or ""),
        str(span.get("name") or ""),
        SPAN_KIND_NAMES[kind] if 0 <= kind < 6 else "unspecified",
        start_ns,
        end_ns,
        STATUS_NAMES[code] if 0 <= code < 3 else "unset",
        str(status.get("message") or ""),
        attrs,
        event_times,
        event_names,
        event_attrs,
        link_trace_ids,
        link_span_ids,
    )
