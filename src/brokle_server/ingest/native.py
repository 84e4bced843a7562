"""Native event batches (``POST /api/v1/ingest``) → span, score and event rows.

Close to Langfuse-style ingestion: a batch of typed events, each with a client-chosen id
used for deduplication, each accepted or refused on its own (the caller answers 207 when
some failed). Keys are snake_case; times are RFC 3339 text or epoch numbers::

    {"batch": [
      {"id": "evt-1", "type": "trace", "timestamp": "2025-01-01T12:00:00Z",
       "body": {"id": "<trace id: 32 hex or UUID>", "name": "chat-request",
                "user_id": "u1", "session_id": "s1", "tags": ["prod"],
                "metadata": {...}, "input": ..., "output": ..., "end_time": ...,
                "release": "...", "version": "...", "environment": "...",
                "span_id": "<16 hex, optional: id of the trace's root span>"}},
      {"id": "evt-2", "type": "span",
       "body": {"id": "<16 hex>", "trace_id": "...", "parent_span_id": "...", "name": "...",
                "start_time": ..., "end_time": ..., "type": "tool|agent|chain|retrieval|...",
                "level": "DEBUG|DEFAULT|WARNING|ERROR", "status_message": "...",
                "input": ..., "output": ..., "metadata": {...}, ...trace fields above}},
      {"id": "evt-3", "type": "generation",
       "body": {...span fields..., "model": "gpt-4o", "provider": "openai",
                "operation": "chat", "model_parameters": {"temperature": 0.2},
                "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15,
                          "cached_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0},
                "cost": {"input": 0.0001, "output": 0.0002, "total": 0.0003},
                "price_version": "...", "completion_start_time": ...}},
      {"id": "evt-4", "type": "score", "body": {<a /v1/scores object>}},
      {"id": "evt-5", "type": "event",
       "body": {"name": "checkout", "type": "business", "source": "web",
                "trace_id": "...", "span_id": "...", "attributes": {...}, "body": ...}}
    ]}

``input``/``output``/``body`` may be text or any JSON value (stored as JSON text). A
``trace`` event becomes the trace's root span (its span id is ``body.span_id`` or derived
from the trace id). Span and generation bodies are mapped onto the same attributes an OTLP
span would carry (``gen_ai.*``, ``brokle.*``, ``user.id``, ...) and go through the same
row builder, so every column means the same whatever the route. Updates are not supported:
sending the same span again replaces it as a whole (the newest copy wins).

Reply (``data`` of the envelope; HTTP 207 when ``errors`` is non-empty, else 200)::

    {"successes": [{"index": 0, "id": "evt-1", "status": 201}, ...],
     "errors": [{"index": 3, "id": "evt-4", "status": 400, "message": "..."}]}

A repeated id within one batch keeps the first item; the repeat is reported with status
200 and a message. ``NativeBatch.event_ids`` lists the accepted ids for a cross-request
dedup claim; score and event rows derive their ids from the event id, so retries collapse.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import msgspec
import orjson

from brokle_server.core.types import ProjectScope
from brokle_server.errors import InvalidInput
from brokle_server.ingest.anyvalue import enforce_lengths, plain_attributes
from brokle_server.ingest.common import (
    ItemStatus,
    Row,
    dump_json,
    parse_hex_id,
    parse_timestamp_ns,
)
from brokle_server.ingest.config import IngestSettings
from brokle_server.ingest.decode import PayloadDecodeError
from brokle_server.ingest.native_events import event_row
from brokle_server.ingest.native_types import EventBody, GenerationBody, SpanBody, Time, TraceBody
from brokle_server.ingest.scores import ScoreIn, ScoreInvalid, build_score_row
from brokle_server.ingest.spans import IngestContext, ResourceInfo, build_span_row, note_limits

_DEFAULT_SETTINGS: Final = IngestSettings()
_ID_NAMESPACE: Final = uuid.UUID("6b1d3c52-0c7e-4d0e-9a51-6f2f0d3b9c11")
MAX_EVENT_ID_CHARS: Final = 200


class _Envelope(msgspec.Struct):
    id: str
    type: str
    body: msgspec.Raw
    timestamp: Time = None


class _Batch(msgspec.Struct):
    batch: list[msgspec.Raw]


_BODY_TYPES: Final[dict[str, type[msgspec.Struct]]] = {
    "trace": TraceBody,
    "span": SpanBody,
    "generation": GenerationBody,
    "score": ScoreIn,
    "event": EventBody,
}


class _Refused(Exception):
    pass


@dataclass(slots=True)
class NativeBatch:
    spans: list[Row] = field(default_factory=list)
    scores: list[Row] = field(default_factory=list)
    events: list[Row] = field(default_factory=list)
    successes: list[ItemStatus] = field(default_factory=list)
    errors: list[ItemStatus] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)

    @property
    def http_status(self) -> int:
        return 207 if self.errors else 200

    def response_data(self) -> dict[str, object]:
        return {
            "successes": [s.as_dict() for s in self.successes],
            "errors": [e.as_dict() for e in self.errors],
        }


def decode_native_batch(
    body: bytes,
    scope: ProjectScope,
    received_at: datetime,
    *,
    settings: IngestSettings = _DEFAULT_SETTINGS,
    api_key_id: str = "",
    fallback_environment: str | None = None,
) -> NativeBatch:
    """Decode ``{"batch": [...]}``; each item is accepted or refused on its own."""
    try:
        items = msgspec.json.decode(body, type=_Batch).batch
    except msgspec.ValidationError as exc:
        raise InvalidInput(f'body must be {{"batch": [...]}}: {exc}') from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise PayloadDecodeError(f"invalid JSON body: {exc}") from None
    except RecursionError:
        raise PayloadDecodeError("invalid JSON body: nested too deeply") from None
    if len(items) > settings.max_batch_items:
        raise InvalidInput(
            f"at most {settings.max_batch_items} events per batch, got {len(items)}",
            code="batch_too_large",
        )
    ctx = IngestContext(
        scope,
        received_at,
        settings,
        api_key_id=api_key_id,
        fallback_environment=fallback_environment,
    )
    out = NativeBatch()
    seen: set[str] = set()
    resource = ResourceInfo({})
    for index, raw in enumerate(items):
        event_id = ""
        try:
            envelope = msgspec.json.decode(raw, type=_Envelope)
            event_id = envelope.id
            if not event_id or len(event_id) > MAX_EVENT_ID_CHARS:
                raise _Refused(f"id must be 1 to {MAX_EVENT_ID_CHARS} characters")
            if event_id in seen:
                out.successes.append(
                    ItemStatus(
                        index, "duplicate id in this batch; the first was kept", event_id, 200
                    )
                )
                continue
            body_type = _BODY_TYPES.get(envelope.type)
            if body_type is None:
                raise _Refused(f"type must be one of {', '.join(_BODY_TYPES)}")
            item = msgspec.json.decode(envelope.body, type=body_type)
            _route(ctx, resource, out, event_id, envelope.timestamp, item)
        except (msgspec.DecodeError, UnicodeDecodeError, _Refused, ScoreInvalid) as exc:
            out.errors.append(ItemStatus(index, str(exc), event_id))
            continue
        except RecursionError:  # msgspec, on JSON nested deeper than the stack allows
            out.errors.append(ItemStatus(index, "body nested too deeply", event_id))
            continue
        seen.add(event_id)
        out.event_ids.append(event_id)
        out.successes.append(ItemStatus(index, "", event_id, 201))
    return out


def _route(
    ctx: IngestContext,
    resource: ResourceInfo,
    out: NativeBatch,
    event_id: str,
    timestamp: Time,
    item: msgspec.Struct,
) -> None:
    if isinstance(item, ScoreIn):
        score_id = item.id or str(uuid.uuid5(_ID_NAMESPACE, event_id))
        row, _ = build_score_row(ctx, item, score_id, timestamp, default_source="api")
        out.scores.append(row)
    elif isinstance(item, EventBody):
        try:
            out.events.append(event_row(ctx, item, event_id, timestamp))
        except ValueError as exc:
            raise _Refused(str(exc)) from None
    else:
        assert isinstance(item, TraceBody | SpanBody)
        try:
            span_row = _span_row(ctx, resource, item, timestamp)
        except ValueError as exc:  # from dump_json: a JSON value nested too deeply to store
            raise _Refused(str(exc)) from None
        if isinstance(span_row, str):
            raise _Refused(span_row)
        out.spans.append(span_row)


def _json_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return dump_json(value)


def _time(value: Time, what: str) -> int:
    try:
        return parse_timestamp_ns(value)
    except ValueError as exc:
        raise _Refused(f"invalid {what}: {exc}") from None


def _span_row(
    ctx: IngestContext, resource: ResourceInfo, item: TraceBody | SpanBody, timestamp: Time
) -> Row | str:
    if isinstance(item, TraceBody):
        trace_id = parse_hex_id(item.id, 16)
        raw_span_id = item.span_id
        parent = ""
        start_raw = item.timestamp if item.timestamp is not None else timestamp
        span_type = "span"
    else:
        trace_id = parse_hex_id(item.trace_id, 16)
        raw_span_id = item.id
        parent = parse_hex_id(item.parent_span_id or "", 8) or ""
        start_raw = item.start_time if item.start_time is not None else timestamp
        span_type = item.type or ("generation" if isinstance(item, GenerationBody) else "span")
    if not trace_id:
        return "trace id must be 32 hex characters (or a UUID)"
    if raw_span_id:
        span_id = parse_hex_id(raw_span_id, 8)
        if not span_id:
            return "span id must be 16 hex characters"
    elif isinstance(item, TraceBody):
        span_id = hashlib.blake2b(trace_id.encode(), digest_size=8).hexdigest()
    else:
        return "span id is required"
    if start_raw is None:
        return "start_time (or the event timestamp) is required"
    start_ns = _time(start_raw, "start time")
    end_ns = _time(item.end_time, "end_time") if item.end_time is not None else start_ns

    attrs: dict[str, str] = {}
    dropped, truncated = (
        plain_attributes(item.metadata, ctx.attr_limits, attrs) if item.metadata else (0, 0)
    )
    _common_attrs(attrs, item, span_type)
    if isinstance(item, GenerationBody):
        _generation_attrs(attrs, item, start_ns)
    long_keys, cut = enforce_lengths(attrs, ctx.attr_limits)
    if dropped or truncated or long_keys or cut:
        note_limits(attrs, dropped + long_keys, truncated + cut)
    level = (item.level or "").upper()
    status = "error" if level == "ERROR" else "unset"
    return build_span_row(
        ctx,
        resource,
        "brokle.native",
        "",
        trace_id,
        span_id,
        parent,
        "",
        item.name,
        "internal",
        start_ns,
        end_ns,
        status,
        item.status_message or "",
        attrs,
        [],
        [],
        [],
        [],
        [],
    )


def _common_attrs(attrs: dict[str, str], item: TraceBody | SpanBody, span_type: str) -> None:
    attrs["brokle.span.type"] = span_type
    pairs = (
        ("brokle.span.level", item.level),
        ("user.id", item.user_id),
        ("session.id", item.session_id),
        ("brokle.release", item.release),
        ("brokle.version", item.version),
        ("brokle.environment", item.environment),
    )
    for key, value in pairs:
        if value:
            attrs[key] = value
    if item.tags:
        attrs["tags"] = orjson.dumps(item.tags).decode()
    if item.input is not None:
        attrs["input.value"] = _json_text(item.input)
    if item.output is not None:
        attrs["output.value"] = _json_text(item.output)


def _generation_attrs(attrs: dict[str, str], item: GenerationBody, start_ns: int) -> None:
    for key, value in (
        ("gen_ai.request.model", item.model),
        ("gen_ai.provider.name", item.provider),
        ("gen_ai.operation.name", item.operation or "chat"),
        ("brokle.cost.price_version", item.price_version),
    ):
        if value:
            attrs[key] = value
    for name, value in (item.model_parameters or {}).items():
        attrs[f"gen_ai.request.{name}"] = (
            _json_text(value) if not isinstance(value, int | float) else str(value)
        )
    usage = item.usage
    if usage is not None:
        for key, count in (
            ("gen_ai.usage.input_tokens", usage.input_tokens),
            ("gen_ai.usage.output_tokens", usage.output_tokens),
            ("brokle.usage.total_tokens", usage.total_tokens),
            ("gen_ai.usage.cache_read.input_tokens", usage.cached_tokens),
            ("gen_ai.usage.cache_creation.input_tokens", usage.cache_write_tokens),
            ("gen_ai.usage.reasoning_tokens", usage.reasoning_tokens),
        ):
            if count:
                attrs[key] = str(count)
    cost = item.cost
    if cost is not None:
        for key, amount in (
            ("brokle.cost.input", cost.input),
            ("brokle.cost.output", cost.output),
            ("brokle.cost.total", cost.total),
        ):
            if amount:
                attrs[key] = repr(amount)
    if item.completion_start_time is not None:
        ttft_ns = _time(item.completion_start_time, "completion_start_time") - start_ns
        if ttft_ns >= 0:
            attrs["gen_ai.response.time_to_first_token"] = repr(ttft_ns / 1e6)
