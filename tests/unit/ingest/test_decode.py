"""Media types, bounded decompression (bombs, truncation) and OTLP/HTTP reply bodies."""

from __future__ import annotations

import gzip
import zlib

import cramjam
import orjson
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from brokle_server.errors import (
    InvalidInput,
    PayloadTooLarge,
    Unavailable,
    UnsupportedMediaType,
)
from brokle_server.ingest.decode import (
    BodyEncoding,
    PayloadDecodeError,
    body_encoding,
    decompress,
    media_type,
    otlp_error,
    otlp_response,
    rpc_status,
)

PAYLOAD = b"telemetry " * 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("application/x-protobuf", BodyEncoding.PROTOBUF),
        ("Application/X-Protobuf; charset=binary", BodyEncoding.PROTOBUF),
        ("application/protobuf", BodyEncoding.PROTOBUF),
        ("application/json", BodyEncoding.JSON),
        ("application/json; charset=utf-8", BodyEncoding.JSON),
    ],
)
def test_body_encoding(header: str, expected: BodyEncoding) -> None:
    assert body_encoding(header) is expected


@pytest.mark.parametrize("header", [None, "", "text/plain", "application/x-www-form-urlencoded"])
def test_unsupported_media_type(header: str | None) -> None:
    with pytest.raises(UnsupportedMediaType, match="application/x-protobuf"):
        body_encoding(header)
    assert media_type(" Text/Plain ; x=y") == "text/plain"


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        (None, lambda b: b),
        ("identity", lambda b: b),
        ("gzip", gzip.compress),
        ("GZIP", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: _raw_deflate(b)),
        ("snappy", lambda b: bytes(cramjam.snappy.compress_raw(b))),
    ],
)
def test_decompress(encoding: str | None, compress: object) -> None:
    assert callable(compress)
    assert decompress(compress(PAYLOAD), encoding, 1 << 20) == PAYLOAD


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    return c.compress(data) + c.flush()


def test_concatenated_gzip_members() -> None:
    body = gzip.compress(b"one ") + gzip.compress(b"two") + b"\0\0"
    assert decompress(body, "gzip", 100) == b"one two"


def test_exact_limit_is_accepted_and_one_more_byte_is_not() -> None:
    data = b"x" * 1000
    assert decompress(gzip.compress(data), "gzip", 1000) == data
    with pytest.raises(PayloadTooLarge):
        decompress(gzip.compress(data + b"x"), "gzip", 1000)
    with pytest.raises(PayloadTooLarge):
        decompress(data + b"x", None, 1000)


def test_gzip_bomb_stops_at_the_cap() -> None:
    # 256 MiB of zeros compresses to ~250 KiB; the cap must stop inflation at 1 MiB.
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    bomb = b"".join(compressor.compress(chunk) for _ in range(256)) + compressor.flush()
    assert len(bomb) < 2 << 20
    with pytest.raises(PayloadTooLarge) as info:
        decompress(bomb, "gzip", 1 << 20)
    assert info.value.details == {"max_bytes": 1 << 20}


def test_snappy_bomb_is_refused_from_its_header() -> None:
    # The block header announces 1 GiB; it is refused before anything is allocated.
    header = bytes([0x80, 0x80, 0x80, 0x80, 0x04])
    with pytest.raises(PayloadTooLarge):
        decompress(header + b"\x00" * 10, "snappy", 16 << 20)


@pytest.mark.parametrize(
    ("body", "encoding", "message"),
    [
        (gzip.compress(PAYLOAD)[:-20], "gzip", "truncated gzip"),
        (gzip.compress(PAYLOAD)[:5], "gzip", "truncated gzip"),
        (b"not gzip at all", "gzip", "invalid gzip"),
        (b"\x01\x02\x03", "deflate", "deflate"),
        (b"\xff\xff\xff\xff\xff\xff", "snappy", "invalid snappy"),
        (bytes(cramjam.snappy.compress(PAYLOAD)), "snappy", "snappy"),  # framed, not block
    ],
)
def test_corrupt_bodies_are_decode_errors(body: bytes, encoding: str, message: str) -> None:
    with pytest.raises(PayloadDecodeError, match=message) as info:
        decompress(body, encoding, 1 << 20)
    assert isinstance(info.value, InvalidInput)


def test_unknown_content_encoding() -> None:
    with pytest.raises(UnsupportedMediaType, match="br"):
        decompress(b"x", "br", 100)


@pytest.mark.parametrize(
    ("signal", "cls", "field"),
    [
        ("traces", ExportTraceServiceResponse, "rejected_spans"),
        ("metrics", ExportMetricsServiceResponse, "rejected_data_points"),
        ("logs", ExportLogsServiceResponse, "rejected_log_records"),
    ],
)
def test_otlp_responses(signal: str, cls: type, field: str) -> None:
    full = otlp_response(signal, BodyEncoding.PROTOBUF)  # type: ignore[arg-type]
    assert not cls.FromString(full).HasField("partial_success")
    partial = cls.FromString(
        otlp_response(signal, BodyEncoding.PROTOBUF, 3, "rejected 3: too old")  # type: ignore[arg-type]
    )
    assert getattr(partial.partial_success, field) == 3
    assert partial.partial_success.error_message == "rejected 3: too old"

    assert otlp_response(signal, BodyEncoding.JSON) == b"{}"  # type: ignore[arg-type]
    doc = orjson.loads(otlp_response(signal, BodyEncoding.JSON, 3, "m"))  # type: ignore[arg-type]
    camel = {
        "traces": "rejectedSpans",
        "metrics": "rejectedDataPoints",
        "logs": "rejectedLogRecords",
    }[signal]
    assert doc == {"partialSuccess": {camel: "3", "errorMessage": "m"}}


def test_rpc_status_protobuf_matches_googleapis() -> None:
    body = rpc_status(BodyEncoding.PROTOBUF, "bad span", violations=[("spans[0]", "no id")])
    status = status_pb2.Status.FromString(body)
    assert (status.code, status.message) == (3, "bad span")
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].field == "spans[0]"
    assert bad_request.field_violations[0].description == "no id"


def test_otlp_error_bodies() -> None:
    status, body = otlp_error(PayloadDecodeError("invalid gzip body"), BodyEncoding.JSON)
    doc = orjson.loads(body)
    assert status == 400
    assert doc["code"] == 3 and doc["message"] == "invalid gzip body"
    assert doc["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"

    status, body = otlp_error(PayloadTooLarge("too big"), BodyEncoding.PROTOBUF)
    assert status == 413 and status_pb2.Status.FromString(body).message == "too big"
    status, body = otlp_error(Unavailable("queue full"), BodyEncoding.PROTOBUF)
    assert status == 503 and status_pb2.Status.FromString(body).code == 14
