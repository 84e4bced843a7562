"""Wire payloads for the query tests: OTLP traces/logs (opentelemetry-proto messages) and
Prometheus remote_write (a WriteRequest encoded from prompb's field numbers, snappy block)."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cramjam
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

Attr = str | int | float | bool | list[str]


def _any(value: Attr) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=v) for v in value]))
    return AnyValue(string_value=value)


def attrs(values: Mapping[str, Attr]) -> list[KeyValue]:
    return [KeyValue(key=k, value=_any(v)) for k, v in values.items()]


@dataclass
class SpanSpec:
    trace_id: str
    span_id: str
    name: str
    start_ns: int
    duration_ms: float
    parent_id: str = ""
    error: bool = False
    attributes: dict[str, Attr] = field(default_factory=dict)
    kind: int = Span.SPAN_KIND_INTERNAL


def traces_body(service: str, environment: str, spans: Sequence[SpanSpec]) -> bytes:
    pb_spans = [
        Span(
            trace_id=bytes.fromhex(s.trace_id),
            span_id=bytes.fromhex(s.span_id),
            parent_span_id=bytes.fromhex(s.parent_id) if s.parent_id else b"",
            name=s.name,
            kind=s.kind,  # type: ignore[arg-type]
            start_time_unix_nano=s.start_ns,
            end_time_unix_nano=s.start_ns + int(s.duration_ms * 1_000_000),
            attributes=attrs(s.attributes),
            status=Status(
                code=Status.STATUS_CODE_ERROR if s.error else Status.STATUS_CODE_OK,
                message="boom" if s.error else "",
            ),
        )
        for s in spans
    ]
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(
                    attributes=attrs(
                        {"service.name": service, "deployment.environment.name": environment}
                    )
                ),
                scope_spans=[ScopeSpans(spans=pb_spans)],
            )
        ]
    )
    return bytes(request.SerializeToString())


@dataclass
class LogSpec:
    time_ns: int
    severity: int
    text: str
    body: str
    trace_id: str = ""
    attributes: dict[str, Attr] = field(default_factory=dict)


def logs_body(service: str, environment: str, records: Sequence[LogSpec]) -> bytes:
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(
                    attributes=attrs(
                        {"service.name": service, "deployment.environment.name": environment}
                    )
                ),
                scope_logs=[
                    ScopeLogs(
                        log_records=[
                            LogRecord(
                                time_unix_nano=r.time_ns,
                                observed_time_unix_nano=r.time_ns,
                                severity_number=r.severity,  # type: ignore[arg-type]
                                severity_text=r.text,
                                body=AnyValue(string_value=r.body),
                                trace_id=bytes.fromhex(r.trace_id) if r.trace_id else b"",
                                attributes=attrs(r.attributes),
                            )
                            for r in records
                        ]
                    )
                ],
            )
        ]
    )
    return bytes(request.SerializeToString())


# -- remote_write -----------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _ld(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _series(labels: Mapping[str, str], points: Sequence[tuple[float, int]]) -> bytes:
    label_bytes = b"".join(
        _ld(1, _ld(1, k.encode()) + _ld(2, v.encode())) for k, v in sorted(labels.items())
    )
    samples = b"".join(
        _ld(2, _varint(1 << 3 | 1) + struct.pack("<d", v) + _varint(2 << 3) + _varint(t))
        for v, t in points
    )
    return label_bytes + samples


def remote_write_body(
    series: Sequence[tuple[Mapping[str, str], Sequence[tuple[float, int]]]],
) -> bytes:
    """A snappy (block format) WriteRequest; labels include ``__name__``; points are
    ``(value, timestamp_ms)``."""
    raw = b"".join(_ld(1, _series(labels, points)) for labels, points in series)
    return bytes(cramjam.snappy.compress_raw(raw))


REMOTE_WRITE_HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
