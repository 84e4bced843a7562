"""Typed bodies of the native batch's items (decoded with msgspec, field by field).

See :mod:`brokle_server.ingest.native` for the wire format they describe. Unknown keys are
ignored so clients can send extra fields; a wrong type is reported per item with its path
(for example ``Expected `str`, got `int` - at `$.name```).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

Time = str | int | float | None
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]


class Usage(msgspec.Struct):
    input_tokens: NonNegative = 0
    output_tokens: NonNegative = 0
    total_tokens: NonNegative | None = None
    cached_tokens: NonNegative = 0
    cache_write_tokens: NonNegative = 0
    reasoning_tokens: NonNegative = 0


class Cost(msgspec.Struct):
    input: NonNegativeFloat = 0.0
    output: NonNegativeFloat = 0.0
    total: NonNegativeFloat | None = None


class _Common(msgspec.Struct):
    name: str = ""
    end_time: Time = None
    user_id: str | None = None
    session_id: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    input: Any = None
    output: Any = None
    release: str | None = None
    version: str | None = None
    environment: str | None = None
    level: str | None = None
    status_message: str | None = None


class TraceBody(_Common):
    id: str = ""
    timestamp: Time = None
    span_id: str | None = None


class SpanBody(_Common):
    id: str = ""
    trace_id: str = ""
    parent_span_id: str | None = None
    start_time: Time = None
    type: str | None = None


class GenerationBody(SpanBody):
    model: str | None = None
    provider: str | None = None
    operation: str | None = None
    model_parameters: dict[str, Any] | None = None
    usage: Usage | None = None
    cost: Cost | None = None
    price_version: str | None = None
    completion_start_time: Time = None


class EventBody(msgspec.Struct):
    name: str
    id: str | None = None
    type: str = "business"
    source: str = ""
    trace_id: str | None = None
    span_id: str | None = None
    attributes: dict[str, Any] | None = None
    body: Any = None
    timestamp: Time = None
    environment: str | None = None
