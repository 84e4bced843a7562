"""Body handling shared by the ingest endpoints: media types, bounded decompression, JSON
loading, and the OTLP/HTTP reply bodies.

Decompression never inflates more than ``max_bytes`` (+1 to notice the overflow): gzip and
deflate are inflated incrementally with an output cap, snappy's block header announces the
decompressed length and is checked before anything is allocated. A bomb therefore costs at
most ``max_bytes`` of memory and raises :class:`PayloadTooLarge` (413).

OTLP/HTTP replies (https://opentelemetry.io/docs/specs/otlp/#otlphttp-response) use the
request's encoding: an ``Export*ServiceResponse`` whose ``partial_success`` is set only when
something was rejected, and a ``google.rpc.Status`` body for every 4xx/5xx. ``Status`` and
the ``BadRequest`` detail are tiny, so they are encoded here by hand rather than pulling in
the googleapis protos at run time.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Final, Literal

import cramjam
import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from brokle_server.errors import (
    BrokleError,
    InvalidInput,
    PayloadTooLarge,
    UnsupportedMediaType,
    status_for,
)


class PayloadDecodeError(InvalidInput):
    """The body cannot be decoded at all (corrupt compression, protobuf, JSON, UTF-8): 400."""

    code = "invalid_payload"


class BodyEncoding(StrEnum):
    PROTOBUF = "protobuf"
    JSON = "json"


CONTENT_TYPES: Final = {
    BodyEncoding.PROTOBUF: "application/x-protobuf",
    BodyEncoding.JSON: "application/json",
}
_PROTOBUF_TYPES: Final = frozenset({"application/x-protobuf", "application/protobuf"})
_JSON_TYPES: Final = frozenset({"application/json", "text/json"})


def media_type(content_type: str | None) -> str:
    """The bare, lowercased media type of a ``Content-Type`` header (parameters dropped)."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def body_encoding(content_type: str | None) -> BodyEncoding:
    """Protobuf or JSON from ``Content-Type``; anything else is a 415."""
    kind = media_type(content_type)
    if kind in _PROTOBUF_TYPES:
        return BodyEncoding.PROTOBUF
    if kind in _JSON_TYPES or kind.endswith("+json"):
        return BodyEncoding.JSON
    raise UnsupportedMediaType(
        f"unsupported Content-Type {kind or '(none)'!r}: send application/x-protobuf "
        "or application/json",
        details={"supported": sorted(CONTENT_TYPES.values())},
    )


# --------------------------------------------------------------------------- decompression


def decompress(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """The body with its ``Content-Encoding`` removed, never larger than ``max_bytes``.

    Supports identity, gzip (also concatenated members), deflate (zlib-wrapped or raw) and
    snappy (block format, as Prometheus remote_write sends it).
    """
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity", "none"):
        if len(body) > max_bytes:
            raise _too_large(max_bytes)
        return body
    if encoding in ("gzip", "x-gzip"):
        return _inflate(body, 31, max_bytes, "gzip")
    if encoding == "deflate":
        try:
            return _inflate(body, 15, max_bytes, "deflate")
        except PayloadDecodeError:
            return _inflate(body, -15, max_bytes, "deflate")
    if encoding == "snappy":
        return snappy_block_decompress(body, max_bytes)
    raise UnsupportedMediaType(
        f"unsupported Content-Encoding {encoding!r}: use gzip, deflate, snappy or none",
        code="unsupported_encoding",
    )


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"request body is larger than {max_bytes} bytes after decompression",
        details={"max_bytes": max_bytes},
    )


def _inflate(data: bytes, wbits: int, max_bytes: int, what: str) -> bytes:
    out = bytearray()
    inflater = zlib.decompressobj(wbits)
    pending = data
    try:
        while True:
            chunk = inflater.decompress(pending, max_bytes + 1 - len(out))
            out += chunk
            if len(out) > max_bytes:
                raise _too_large(max_bytes)
            if inflater.eof:
                rest = inflater.unused_data
                # gzip allows several members back to back; trailing NUL padding is common.
                if wbits == 31 and rest.strip(b"\0"):
                    inflater = zlib.decompressobj(wbits)
                    pending = rest
                    continue
                return bytes(out)
            pending = inflater.unconsumed_tail
            if not pending and not chunk:
                raise PayloadDecodeError(f"truncated {what} body")
    except zlib.error as exc:
        raise PayloadDecodeError(f"invalid {what} body: {exc}") from None


def snappy_block_decompress(data: bytes, max_bytes: int) -> bytes:
    """Snappy block format (not framed); the announced length is checked first."""
    try:
        size = cramjam.snappy.decompress_raw_len(data)
    except cramjam.DecompressionError as exc:
        raise PayloadDecodeError(f"invalid snappy body: {exc}") from None
    if size > max_bytes:
        raise _too_large(max_bytes)
    try:
        return bytes(cramjam.snappy.decompress_raw(data))
    except cramjam.DecompressionError as exc:
        raise PayloadDecodeError(
            f"invalid snappy body (remote_write uses the block format): {exc}"
        ) from None


# --------------------------------------------------------------------------- JSON


def load_json_object(body: bytes, what: str) -> dict[str, Any]:
    """Parse a JSON object; invalid JSON or UTF-8, or a non-object, is a decode error."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadDecodeError(f"invalid {what} body: {exc}") from None
    if not isinstance(doc, dict):
        raise PayloadDecodeError(f"{what} body must be a JSON object")
    return doc


def pick(obj: Any, camel: str, snake: str) -> Any:
    """An OTLP/JSON field by its lowerCamelCase key, else its original snake_case key."""
    value = obj.get(camel)
    if value is None and camel != snake:
        value = obj.get(snake)
    return value


# --------------------------------------------------------------------------- OTLP replies

Signal = Literal["traces", "metrics", "logs"]
_RESPONSES: Final[dict[str, tuple[Any, str]]] = {
    "traces": (ExportTraceServiceResponse, "rejected_spans"),
    "metrics": (ExportMetricsServiceResponse, "rejected_data_points"),
    "logs": (ExportLogsServiceResponse, "rejected_log_records"),
}
_JSON_REJECTED: Final = {
    "traces": "rejectedSpans",
    "metrics": "rejectedDataPoints",
    "logs": "rejectedLogRecords",
}


def otlp_response(
    signal: Signal, encoding: BodyEncoding, rejected: int = 0, message: str = ""
) -> bytes:
    """The 200 body: ``Export*ServiceResponse``, with ``partial_success`` when needed."""
    if encoding is BodyEncoding.JSON:
        if not rejected and not message:
            return b"{}"
        partial: dict[str, Any] = {_JSON_REJECTED[signal]: str(rejected)}
        if message:
            partial["errorMessage"] = message
        return orjson.dumps({"partialSuccess": partial})
    cls, field_name = _RESPONSES[signal]
    response = cls()
    if rejected or message:
        setattr(response.partial_success, field_name, rejected)
        response.partial_success.error_message = message
    return bytes(response.SerializeToString())


# google.rpc.Code values for the HTTP statuses ingest returns.
_GRPC_CODES: Final = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 413: 8, 415: 3, 429: 8, 503: 14}
_BAD_REQUEST_TYPE: Final = "type.googleapis.com/google.rpc.BadRequest"


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def rpc_status(
    encoding: BodyEncoding,
    message: str,
    *,
    code: int = 3,
    violations: Sequence[tuple[str, str]] = (),
) -> bytes:
    """A ``google.rpc.Status`` body; ``violations`` become a ``BadRequest`` detail."""
    if encoding is BodyEncoding.JSON:
        doc: dict[str, Any] = {"code": code, "message": message}
        if violations:
            doc["details"] = [
                {
                    "@type": _BAD_REQUEST_TYPE,
                    "fieldViolations": [{"field": f, "description": d} for f, d in violations],
                }
            ]
        return orjson.dumps(doc)
    out = bytearray()
    if code:
        out += _varint(1 << 3) + _varint(code)
    if message:
        out += _field_bytes(2, message.encode())
    if violations:
        bad_request = b"".join(
            _field_bytes(1, _field_bytes(1, f.encode()) + _field_bytes(2, d.encode()))
            for f, d in violations
        )
        detail = _field_bytes(1, _BAD_REQUEST_TYPE.encode()) + _field_bytes(2, bad_request)
        out += _field_bytes(3, detail)
    return bytes(out)


def otlp_error(error: BrokleError, encoding: BodyEncoding) -> tuple[int, bytes]:
    """HTTP status and ``google.rpc.Status`` body for an error raised while ingesting."""
    status = status_for(error)
    violations: list[tuple[str, str]] = []
    if status == 400:
        violations.append(("", error.message))
    body = rpc_status(
        encoding, error.message, code=_GRPC_CODES.get(status, 13), violations=violations
    )
    return status, body
