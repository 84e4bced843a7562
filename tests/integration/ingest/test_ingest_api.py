"""Ingest endpoints against bad input, in process: every mistake is a clear 4xx in the
endpoint's own reply shape, the good part of a request is kept, and a full queue answers
503 with ``Retry-After``.

OTLP replies follow https://opentelemetry.io/docs/specs/otlp/#otlphttp-response: a 200
``Export*ServiceResponse`` (``partial_success`` when items were rejected) or a
``google.rpc.Status`` body in the request's encoding. The other ingest endpoints answer in
the management envelope.

One app (SQLite catalog, the session's shared chDB store) serves the whole module: ingest
does not depend on the catalog engine beyond the key lookup, which the API tests cover on
both engines. Rows are read back through the app's store, always filtered by this module's
project id (the store is shared by every in-process test).
"""

from __future__ import annotations

import asyncio
import gzip
import os
import resource
import secrets
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cramjam
import httpx
import orjson
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, SeverityNumber
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, NumberDataPoint
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from brokle_server.ingest.remote_write import write_request_class
from brokle_server.store.client import Store
from tests.conftest import _SHARED_STORE as SHARED_STORE
from tests.conftest import STRONG_PASSWORD, make_settings, running_app

pytestmark = pytest.mark.asyncio(loop_scope="module")

MAX_BODY = 2 << 20  # BROKLE_INGEST__MAX_BODY_BYTES of the module's app
MAX_ATTRIBUTES = 512  # IngestSettings.max_attributes default
ADMIN_EMAIL = "ingest-admin@example.com"
PROTOBUF = "application/x-protobuf"
SIGNALS = ("traces", "logs", "metrics")
NS = 1_000_000_000
DAY_NS = 86_400 * NS
U64_MAX = 2**64 - 1
# Reply messages and the partial_success field that counts rejections, per OTLP signal.
RESPONSES: dict[str, tuple[Any, str]] = {
    "traces": (ExportTraceServiceResponse, "rejected_spans"),
    "logs": (ExportLogsServiceResponse, "rejected_log_records"),
    "metrics": (ExportMetricsServiceResponse, "rejected_data_points"),
}
# google.rpc.Code values.
INVALID_ARGUMENT, PERMISSION_DENIED, RESOURCE_EXHAUSTED, UNAVAILABLE, UNAUTHENTICATED = (
    3,
    7,
    8,
    14,
    16,
)


# --------------------------------------------------------------------------- bodies


def now_ns() -> int:
    return time.time_ns()


def kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def make_span(
    name: str = "op", start_ns: int | None = None, attributes: list[KeyValue] | None = None
) -> Span:
    start = now_ns() - NS if start_ns is None else start_ns
    return Span(
        trace_id=os.urandom(16),
        span_id=os.urandom(8),
        name=name,
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=start,
        end_time_unix_nano=min(start + 1_000_000, U64_MAX) if start else 0,
        attributes=attributes or [],
    )


def traces_body(spans: list[Span], service: str = "ingest-tests") -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(kv("service.name", service))
    resource_spans.scope_spans.add().spans.extend(spans)
    return request.SerializeToString()


def make_log(body: str = "hello", time_ns: int | None = None) -> LogRecord:
    return LogRecord(
        time_unix_nano=now_ns() if time_ns is None else time_ns,
        severity_number=SeverityNumber.SEVERITY_NUMBER_INFO,
        body=AnyValue(string_value=body),
    )


def logs_body(records: list[LogRecord]) -> bytes:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.append(kv("service.name", "ingest-tests"))
    resource_logs.scope_logs.add().log_records.extend(records)
    return request.SerializeToString()


def metrics_body(name: str, times_ns: list[int]) -> bytes:
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.append(kv("service.name", "ingest-tests"))
    metric = Metric(name=name)
    metric.gauge.data_points.extend(
        NumberDataPoint(time_unix_nano=t, as_double=float(i)) for i, t in enumerate(times_ns)
    )
    resource_metrics.scope_metrics.add().metrics.append(metric)
    return request.SerializeToString()


def good_body(signal: str) -> bytes:
    if signal == "traces":
        return traces_body([make_span("good")])
    if signal == "logs":
        return logs_body([make_log()])
    return metrics_body("ingest_tests_good", [now_ns()])


def snappy(data: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(data))


def write_request(series: list[tuple[dict[str, str], list[tuple[float, int]]]]) -> bytes:
    """A remote_write ``WriteRequest``: (labels incl. __name__, [(value, ts_ms)]) per series."""
    request = write_request_class()()
    for labels, samples in series:
        ts = request.timeseries.add()
        for name, text in labels.items():
            ts.labels.add(name=name, value=text)
        for number, stamp in samples:
            ts.samples.add(value=number, timestamp=stamp)
    return bytes(request.SerializeToString())


_BOMB: list[bytes] = []


def gzip_bomb() -> bytes:
    """100 MiB of zeros, gzip-compressed (~100 KiB), built without holding 100 MiB."""
    if not _BOMB:
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
        block = bytes(1 << 20)
        parts = [compressor.compress(block) for _ in range(100)]
        parts.append(compressor.flush())
        _BOMB.append(b"".join(parts))
    return _BOMB[0]


# --------------------------------------------------------------------------- replies


def rpc_status(response: httpx.Response, status: int, code: int) -> status_pb2.Status:
    """The protobuf ``google.rpc.Status`` of an OTLP error reply, checked."""
    assert response.status_code == status, response.content
    assert response.headers["content-type"] == PROTOBUF
    body = status_pb2.Status.FromString(response.content)
    assert body.code == code, body
    assert body.message
    return body


def bad_request_violations(body: status_pb2.Status) -> list[str]:
    out = []
    for detail in body.details:
        bad = error_details_pb2.BadRequest()
        assert detail.Unpack(bad), detail.type_url
        out += [v.description for v in bad.field_violations]
    return out


def export_response(signal: str, response: httpx.Response) -> tuple[int, str]:
    """(rejected count, error message) of a 200 protobuf Export*ServiceResponse."""
    assert response.status_code == 200, response.content
    assert response.headers["content-type"] == PROTOBUF
    cls, field = RESPONSES[signal]
    reply = cls.FromString(response.content)
    return getattr(reply.partial_success, field), reply.partial_success.error_message


def envelope_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    error: dict[str, Any] = body["error"]
    assert error["code"] and error["message"]
    return error


# --------------------------------------------------------------------------- the app


@dataclass
class Ingest:
    http: httpx.AsyncClient
    store: Store
    key: str
    project_id: str
    admin: dict[str, str]
    revoked_key: str
    query_only_key: str
    lenient: httpx.AsyncClient | None = None  # see _prepare

    @property
    def auth(self) -> dict[str, str]:
        return {"X-API-Key": self.key}

    async def post(
        self,
        path: str,
        content: bytes,
        content_type: str = PROTOBUF,
        key: str | None = None,
        lenient: bool = False,
        **headers: str,
    ) -> httpx.Response:
        sent = {"Content-Type": content_type, "X-API-Key": key or self.key}
        sent.update({k.replace("_", "-"): v for k, v in headers.items()})
        http = self.lenient if lenient and self.lenient is not None else self.http
        return await http.post(path, content=content, headers=sent)

    async def otlp(self, signal: str, content: bytes, **kwargs: Any) -> httpx.Response:
        return await self.post(f"/v1/{signal}", content, **kwargs)

    async def rows(
        self,
        sql: str,
        ready: Callable[[list[dict[str, Any]]], bool] = bool,
        timeout: float = 10.0,
        **params: object,
    ) -> list[dict[str, Any]]:
        """Poll the store (the writer flushes every ~200 ms) until ``ready(rows)``."""
        deadline = time.monotonic() + timeout
        while True:
            found = await self.store.aquery_dicts(sql, {"project": self.project_id, **params})
            if ready(found) or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.1)


async def _key_with(ingest: Ingest, **body: Any) -> dict[str, Any]:
    response = await ingest.http.post(
        f"/api/v1/projects/{ingest.project_id}/api-keys",
        json={"name": "ingest tests", **body},
        headers=ingest.admin,
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ingest(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Ingest]:
    tmp = tmp_path_factory.mktemp("ingest-api")
    key = "bk_" + secrets.token_hex(20)
    settings = make_settings(
        tmp,
        database_url=f"sqlite+aiosqlite:///{tmp / 'catalog.db'}",
        init_admin_email=ADMIN_EMAIL,
        init_admin_password=STRONG_PASSWORD,
        init_org="Ingest Org",
        init_project="Ingest",
        init_project_api_key=key,
        ingest={"max_body_bytes": MAX_BODY},
    )
    # The app's own store is not reachable through the test client (LifespanManager wraps
    # the app); a second handle on the same embedded store reads the same tables.
    store = Store(SHARED_STORE["url"])
    async with running_app(settings) as http:
        await store.aopen()
        ingest: Ingest | None = None
        try:
            ingest = await _prepare(http, store, key)
            yield ingest
        finally:
            if ingest is not None and ingest.lenient is not None:
                await ingest.lenient.aclose()
            await store.aclose()


async def _prepare(http: httpx.AsyncClient, store: Store, key: str) -> Ingest:
    """Find the bootstrap project, log in as its admin, make a revoked and a query-only key."""
    valid = await http.post("/v1/auth/validate-key", headers={"X-API-Key": key})
    assert valid.status_code == 200, valid.text
    login = await http.post(
        "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": STRONG_PASSWORD}
    )
    assert login.status_code == 200, login.text
    http.cookies.clear()
    admin = {"Authorization": f"Bearer {login.json()['data']['token']}"}
    ingest = Ingest(http, store, key, valid.json()["data"]["project_id"], admin, "", "")
    revoked = await _key_with(ingest)
    gone = await http.delete(
        f"/api/v1/projects/{ingest.project_id}/api-keys/{revoked['id']}", headers=admin
    )
    assert gone.status_code == 200, gone.text
    ingest.revoked_key = revoked["key"]
    ingest.query_only_key = (await _key_with(ingest, scopes=["query"]))["key"]
    # A client on the same app that gets the 500 reply of a crash rather than the exception.
    transport = httpx.ASGITransport(
        http._transport.app,  # type: ignore[attr-defined]
        raise_app_exceptions=False,
        client=("203.0.113.7", 50000),
    )
    ingest.lenient = httpx.AsyncClient(transport=transport, base_url=http.base_url)
    return ingest


@pytest_asyncio.fixture(autouse=True, loop_scope="module")
async def process_unharmed(ingest: Ingest) -> AsyncIterator[None]:
    """After every test the app still answers and still ingests."""
    yield
    assert (await ingest.http.get("/health/live")).status_code == 200
    for signal in SIGNALS:
        assert export_response(signal, await ingest.otlp(signal, good_body(signal))) == (0, "")


# --------------------------------------------------------------------------- OTLP: undecodable


@pytest.mark.parametrize("signal", SIGNALS)
async def test_malformed_protobuf_is_a_400_status(ingest: Ingest, signal: str) -> None:
    # Field 1 (length-delimited) announcing far more bytes than follow.
    response = await ingest.otlp(signal, b"\x0a\xff\xff\xff\xff\x0f\x01\x02")
    body = rpc_status(response, 400, INVALID_ARGUMENT)
    assert f"invalid OTLP protobuf {signal} body" in body.message
    assert bad_request_violations(body) == [body.message]


@pytest.mark.parametrize("signal", SIGNALS)
async def test_json_that_is_not_an_otlp_object_is_a_400_json_status(
    ingest: Ingest, signal: str
) -> None:
    for content in (b"[1, 2, 3]", b'"resourceSpans"', b'{"resource', b"\xff\xfe{}"):
        response = await ingest.otlp(signal, content, content_type="application/json")
        assert response.status_code == 400, (content, response.text)
        assert response.headers["content-type"] == "application/json"
        status = response.json()
        assert status["code"] == INVALID_ARGUMENT
        assert "OTLP JSON" in status["message"]
        assert status["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"


@pytest.mark.parametrize("signal", SIGNALS)
async def test_truncated_or_corrupt_compression_is_a_400(ingest: Ingest, signal: str) -> None:
    packed = gzip.compress(good_body(signal) * 20)
    truncated = await ingest.otlp(signal, packed[: len(packed) // 2], content_encoding="gzip")
    assert "truncated gzip body" in rpc_status(truncated, 400, INVALID_ARGUMENT).message
    corrupt = await ingest.otlp(signal, b"\x1f\x8b\x08\x00" + b"\xff" * 64, content_encoding="gzip")
    assert "invalid gzip body" in rpc_status(corrupt, 400, INVALID_ARGUMENT).message
    deflate = await ingest.otlp(signal, b"\x00\x01garbage", content_encoding="deflate")
    assert "deflate" in rpc_status(deflate, 400, INVALID_ARGUMENT).message


@pytest.mark.parametrize("signal", SIGNALS)
async def test_non_utf8_string_inside_protobuf_is_a_400(ingest: Ingest, signal: str) -> None:
    marker = "MARKER-MARKER"
    if signal == "traces":
        valid = traces_body([make_span(marker)])
    elif signal == "logs":
        valid = logs_body([make_log(marker)])
    else:
        valid = metrics_body(marker.replace("-", "_"), [now_ns()])
        marker = marker.replace("-", "_")
    invalid = valid.replace(marker.encode(), b"\xff\xfe\xc3\x28" + b"x" * (len(marker) - 4))
    assert len(invalid) == len(valid) and invalid != valid
    body = rpc_status(await ingest.otlp(signal, invalid), 400, INVALID_ARGUMENT)
    assert "protobuf" in body.message


# --------------------------------------------------------------------------- OTLP: size and type


@pytest.mark.parametrize("signal", SIGNALS)
async def test_gzip_bomb_is_a_413_without_inflating_it(ingest: Ingest, signal: str) -> None:
    bomb = gzip_bomb()
    assert len(bomb) < MAX_BODY  # the wire body is small; only its inflated size is over
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    response = await ingest.otlp(signal, bomb, content_encoding="gzip")
    body = rpc_status(response, 413, RESOURCE_EXHAUSTED)
    assert f"larger than {MAX_BODY} bytes after decompression" in body.message
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mib < 64, f"peak RSS grew {grown_mib:.0f} MiB for a 100 MiB bomb"


@pytest.mark.parametrize("signal", SIGNALS)
async def test_body_over_the_limit_is_a_413(ingest: Ingest, signal: str) -> None:
    big = b"\x00" * (MAX_BODY + 1)
    declared = await ingest.otlp(signal, big)
    assert "over the" in rpc_status(declared, 413, RESOURCE_EXHAUSTED).message

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for _ in range(MAX_BODY // (256 << 10) + 1):
            yield b"\x00" * (256 << 10)

    streamed = await ingest.http.post(
        f"/v1/{signal}", content=chunks(), headers={"Content-Type": PROTOBUF, **ingest.auth}
    )
    assert "content-length" not in streamed.request.headers
    rpc_status(streamed, 413, RESOURCE_EXHAUSTED)


@pytest.mark.parametrize("signal", SIGNALS)
async def test_other_media_types_and_encodings_are_a_415(ingest: Ingest, signal: str) -> None:
    body = good_body(signal)
    for content_type in ("text/plain", "application/octet-stream", ""):
        response = await ingest.otlp(signal, body, content_type=content_type)
        status = rpc_status(response, 415, INVALID_ARGUMENT)
        assert "unsupported Content-Type" in status.message
    brotli = await ingest.otlp(signal, body, content_encoding="br")
    assert "unsupported Content-Encoding 'br'" in rpc_status(brotli, 415, 3).message
    # A JSON-ish media type gets its Status in JSON.
    weird_json = await ingest.otlp(signal, body, content_type="application/jsonx+json")
    assert weird_json.status_code == 400  # +json is JSON; the protobuf bytes are not
    assert weird_json.headers["content-type"] == "application/json"


# --------------------------------------------------------------------------- keys


@pytest.mark.parametrize("signal", SIGNALS)
async def test_otlp_key_errors_are_status_bodies(ingest: Ingest, signal: str) -> None:
    body = good_body(signal)
    missing = await ingest.http.post(
        f"/v1/{signal}", content=body, headers={"Content-Type": PROTOBUF}
    )
    assert "Authentication required" in rpc_status(missing, 401, UNAUTHENTICATED).message
    unknown = await ingest.otlp(signal, body, key="bk_" + "0" * 40)
    assert "Unknown API key" in rpc_status(unknown, 401, UNAUTHENTICATED).message
    malformed = await ingest.otlp(signal, body, key="not-a-key")
    rpc_status(malformed, 401, UNAUTHENTICATED)
    revoked = await ingest.otlp(signal, body, key=ingest.revoked_key)
    assert "revoked" in rpc_status(revoked, 401, UNAUTHENTICATED).message
    no_scope = await ingest.otlp(signal, body, key=ingest.query_only_key)
    assert "'ingest' scope" in rpc_status(no_scope, 403, PERMISSION_DENIED).message
    # In JSON when the request was JSON.
    as_json = await ingest.otlp(
        signal, b"{}", content_type="application/json", key=ingest.revoked_key
    )
    assert as_json.status_code == 401
    assert as_json.json()["code"] == UNAUTHENTICATED


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/api/v1/write", PROTOBUF, snappy(write_request([]))),
        ("/api/v1/write", "application/json", b'{"metrics": []}'),
        ("/api/v1/ingest", "application/json", b'{"batch": []}'),
        ("/v1/scores", "application/json", b"{}"),
        ("/v1/scores/batch", "application/json", b'{"scores": []}'),
    ],
)
async def test_other_ingest_endpoints_refuse_bad_keys(
    ingest: Ingest, path: str, content_type: str, body: bytes
) -> None:
    missing = await ingest.http.post(path, content=body, headers={"Content-Type": content_type})
    assert envelope_error(missing, 401)["code"] == "unauthenticated"
    revoked = await ingest.post(path, body, content_type, key=ingest.revoked_key)
    assert envelope_error(revoked, 401)["code"] == "api_key_revoked"
    no_scope = await ingest.post(path, body, content_type, key=ingest.query_only_key)
    assert envelope_error(no_scope, 403)["code"] == "missing_scope"


# --------------------------------------------------------------------------- OTLP: items


async def test_absurd_span_timestamps_are_rejected_and_good_spans_kept(ingest: Ingest) -> None:
    now = now_ns()
    good = [make_span(f"ts-good-{i}", now - i * NS) for i in range(3)]
    bad = [
        make_span("ts-1970", NS),  # 1970-01-01T00:00:01Z: far older than retention
        make_span("ts-zero", 0),  # no start time at all
        make_span("ts-2h-ahead", now + 2 * 3600 * NS),  # past max_future_skew_seconds
        make_span("ts-u64-max", U64_MAX),  # year 2554: the largest value protobuf carries
    ]
    response = await ingest.otlp("traces", traces_body(good + bad))
    rejected, message = export_response("traces", response)
    assert rejected == 4
    assert message.startswith("rejected 4 spans: ")
    assert "1 x timestamp older than the project's retention period" in message
    assert "1 x span without a start time" in message
    assert "2 x timestamp more than 3600s in the future" in message

    names = [s.name for s in good]
    stored = await ingest.rows(
        "SELECT name FROM spans WHERE project_id = {project:String} AND name LIKE 'ts-%'",
        lambda rows: len(rows) >= 3,
    )
    assert sorted(r["name"] for r in stored) == sorted(names)


async def test_one_request_cannot_touch_hundreds_of_partitions(ingest: Ingest) -> None:
    now = now_ns()
    # One span per day for 400 days back and 10 days ahead (retention: 30 days; skew: 1 h).
    spans = [make_span("spread", now - day * DAY_NS) for day in range(-10, 400)]
    rejected, message = export_response("traces", await ingest.otlp("traces", traces_body(spans)))
    assert rejected == len(spans) - 30, message  # today and the 29 days before it stay
    assert "timestamp older than the project's retention period" in message
    assert "10 x timestamp more than 3600s in the future" in message
    days = await ingest.rows(
        "SELECT uniqExact(toDate(start_time)) AS days, count() AS n FROM spans "
        "WHERE project_id = {project:String} AND name = 'spread'",
        lambda rows: rows[0]["n"] >= 30,
    )
    assert days == [{"days": 30, "n": 30}]


async def test_absurd_log_and_metric_timestamps_are_rejected_per_item(ingest: Ingest) -> None:
    now = now_ns()
    logs = [make_log("log-ok"), make_log("log-1970", NS), make_log("log-far", U64_MAX)]
    rejected, message = export_response("logs", await ingest.otlp("logs", logs_body(logs)))
    assert rejected == 2
    assert message.startswith("rejected 2 log records: ")

    name = "ingest_tests_ts_gauge"
    points = [now, now - NS, NS, now + 2 * 3600 * NS, U64_MAX]
    rejected, message = export_response(
        "metrics", await ingest.otlp("metrics", metrics_body(name, points))
    )
    assert rejected == 3
    assert message.startswith("rejected 3 data points: ")
    samples = await ingest.rows(
        "SELECT count() AS n FROM samples WHERE project_id = {project:String} "
        "AND metric_name = {name:String}",
        lambda rows: rows[0]["n"] >= 2,
        name=name,
    )
    assert samples == [{"n": 2}]


async def test_a_span_with_ten_thousand_attributes_is_capped(ingest: Ingest) -> None:
    """``IngestSettings.max_attributes`` keeps the first 512 attributes and records the rest
    in ``brokle.dropped_attributes_count``; over-long keys are dropped and over-long values
    cut (``brokle.truncated_attributes_count``). The span itself is accepted."""
    attributes = [kv(f"attr.{i:05d}", f"value-{i}") for i in range(10_000)]
    attributes[0] = kv("k" * 300, "long key")  # over max_attribute_key_chars: dropped
    attributes[1] = kv("long.value", "v" * 40_000)  # over max_attribute_value_chars: cut
    span = make_span("ten-thousand-attributes", attributes=attributes)
    response = await ingest.otlp("traces", traces_body([span]))
    assert export_response("traces", response) == (0, "")
    stored = await ingest.rows(
        "SELECT length(mapKeys(attributes)) AS keys, "
        "attributes['brokle.dropped_attributes_count'] AS dropped, "
        "attributes['brokle.truncated_attributes_count'] AS truncated, "
        "length(attributes['long.value']) AS value_chars, "
        "attributes['attr.00511'] AS last_kept, attributes['attr.00512'] AS first_dropped "
        "FROM spans WHERE project_id = {project:String} AND span_id = {span:String}",
        span=span.span_id.hex(),
    )
    assert stored == [
        {
            # 512 kept, minus the long key, plus the two brokle.* counters
            "keys": MAX_ATTRIBUTES - 1 + 2,
            "dropped": str(10_000 - MAX_ATTRIBUTES + 1),
            "truncated": "1",
            "value_chars": 32 << 10,
            "last_kept": "value-511",
            "first_dropped": "",
        }
    ]


async def test_otlp_json_with_hex_ids(ingest: Ingest) -> None:
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    now = now_ns()
    span = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": "json-span",
        "kind": 2,
        "startTimeUnixNano": str(now),
        "endTimeUnixNano": str(now + 5_000_000),
        "attributes": [{"key": "http.route", "value": {"stringValue": "/chat"}}],
    }
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    response = await ingest.otlp("traces", orjson.dumps(doc), content_type="application/json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}

    bad_id = {**span, "spanId": "not-hex", "name": "json-bad"}
    year_3000 = {
        **span,
        "spanId": os.urandom(8).hex(),
        "startTimeUnixNano": "32503680000" + "0" * 9,
    }
    ok_span = {**span, "spanId": os.urandom(8).hex(), "name": "json-span-2"}
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [bad_id, year_3000, ok_span]}]}]}
    response = await ingest.otlp("traces", orjson.dumps(doc), content_type="application/json")
    assert response.status_code == 200, response.text
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2"
    assert "invalid span_id" in partial["errorMessage"]
    assert "in the future" in partial["errorMessage"]
    stored = await ingest.rows(
        "SELECT name, attributes['http.route'] AS route FROM spans "
        "WHERE project_id = {project:String} AND trace_id = {trace:String} ORDER BY name",
        lambda rows: len(rows) >= 2,
        trace=trace_id,
    )
    assert stored == [
        {"name": "json-span", "route": "/chat"},
        {"name": "json-span-2", "route": "/chat"},
    ]


# --------------------------------------------------------------------------- remote_write


async def test_remote_write_undecodable_bodies_are_400(ingest: Ingest) -> None:
    not_snappy = await ingest.post("/api/v1/write", b"this is not snappy at all")
    assert "invalid snappy body" in envelope_error(not_snappy, 400)["message"]
    garbage = await ingest.post("/api/v1/write", snappy(b"\x0a\xff\xff\xff\xff\x0f\x01"))
    assert "invalid remote_write protobuf body" in envelope_error(garbage, 400)["message"]
    announced = bytes(cramjam.snappy.compress_raw(b"x" * 4096))[:8]  # header says 4096
    truncated = await ingest.post("/api/v1/write", announced)
    assert envelope_error(truncated, 400)["code"] == "invalid_payload"
    huge = await ingest.post("/api/v1/write", snappy(b"\x00" * (MAX_BODY + 1)))
    assert envelope_error(huge, 413)["code"] == "payload_too_large"


async def test_remote_write_names_the_invalid_label_and_keeps_the_rest(ingest: Ingest) -> None:
    now_ms = time.time_ns() // 1_000_000
    body = write_request(
        [
            ({"__name__": "rw_good_total", "job": "api"}, [(1.0, now_ms - 1000), (2.0, now_ms)]),
            ({"__name__": "rw_bad", "bad-label": "x"}, [(3.0, now_ms)]),
            ({"__name__": "rw_old"}, [(4.0, 1000)]),
        ]
    )
    response = await ingest.post("/api/v1/write", snappy(body), content_encoding="snappy")
    error = envelope_error(response, 400)
    assert error["code"] == "invalid_samples"
    assert "invalid label name 'bad-label'" in error["message"]
    assert "older than the project's retention period" in error["message"]
    assert response.json()["data"] == {"accepted_samples": 2}
    stored = await ingest.rows(
        "SELECT metric_name, count() AS n FROM samples WHERE project_id = {project:String} "
        "AND metric_name LIKE 'rw_%' GROUP BY metric_name",
        lambda rows: sum(r["n"] for r in rows) >= 2,
    )
    assert stored == [{"metric_name": "rw_good_total", "n": 2}]


async def test_luminate_json_reports_each_invalid_metric(ingest: Ingest) -> None:
    dimensions = {f"d{i}": str(i) for i in range(21)}
    body = {
        "metrics": [
            {"name": "lum_ok", "value": 1.5, "dimensions": {"region": "eu"}},
            {"name": "lum_wide", "value": 2, "dimensions": dimensions},
            {"name": "lum bad name", "value": 3},
            {"name": "lum_nan", "value": "NaN"},
            {"name": "lum_old", "value": 1, "timestamp": "1999-01-01T00:00:00Z"},
        ]
    }
    response = await ingest.post("/api/v1/write", orjson.dumps(body), "application/json")
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["accepted"], data["rejected"]) == (1, 4)
    errors = {e["index"]: e["message"] for e in data["errors"]}
    assert errors[1] == "at most 20 dimensions, got 21"
    assert "invalid metric name 'lum bad name'" in errors[2]
    assert errors[3] == "value must be a number"
    assert "older than" in errors[4]

    only_bad = await ingest.post(
        "/api/v1/write", orjson.dumps({"metrics": body["metrics"][1:]}), "application/json"
    )
    assert envelope_error(only_bad, 400)["code"] == "invalid_metrics"
    for content in (b"[]", b"{nope", b'{"metrics": 3}'):
        refused = await ingest.post("/api/v1/write", content, "application/json")
        envelope_error(refused, 400)
    assert (await ingest.post("/api/v1/write", b"x", "text/plain")).status_code == 415
    stored = await ingest.rows(
        "SELECT metric_name FROM samples WHERE project_id = {project:String} "
        "AND metric_name LIKE 'lum_%'"
    )
    assert stored == [{"metric_name": "lum_ok"}]


# --------------------------------------------------------------------------- native and scores


async def test_native_batch_mixed_items_are_207_and_good_items_kept(ingest: Ingest) -> None:
    trace_id = os.urandom(16).hex()
    now_ms = time.time_ns() // 1_000_000
    batch = {
        "batch": [
            {
                "id": "n-1",
                "type": "trace",
                "timestamp": now_ms,
                "body": {"id": trace_id, "name": "native-trace"},
            },
            {"id": "n-1b", "type": "trace", "body": {"id": trace_id}},  # no time at all
            {"id": "n-2", "type": "nonsense", "body": {}},
            {"id": "n-3", "type": "span", "body": {"id": "zz", "trace_id": trace_id}},
            {"id": "n-4", "type": "span", "body": {"id": os.urandom(8).hex(), "name": 5}},
            {
                "id": "n-5",
                "type": "span",
                "body": {
                    "id": os.urandom(8).hex(),
                    "trace_id": trace_id,
                    "name": "native-span",
                    "start_time": "2999-01-01T00:00:00Z",
                },
            },
            {
                "id": "n-6",
                "type": "score",
                "body": {"trace_id": trace_id, "name": "quality", "value": 0.5},
            },
            {"id": "", "type": "event", "body": {"name": "x"}},
        ]
    }
    response = await ingest.post("/api/v1/ingest", orjson.dumps(batch), "application/json")
    assert response.status_code == 207, response.text
    data = response.json()["data"]
    assert [(s["index"], s["status"]) for s in data["successes"]] == [(0, 201), (6, 201)]
    errors = {e["index"]: e for e in data["errors"]}
    assert sorted(errors) == [1, 2, 3, 4, 5, 7]
    assert all(e["status"] == 400 and e["message"] for e in errors.values())
    assert "start_time (or the event timestamp) is required" in errors[1]["message"]
    assert errors[2]["id"] == "n-2" and "type must be one of" in errors[2]["message"]
    assert "span id must be 16 hex characters" in errors[3]["message"]
    assert "in the future" in errors[5]["message"]
    spans = await ingest.rows(
        "SELECT name FROM spans WHERE project_id = {project:String} AND trace_id = {trace:String}",
        trace=trace_id,
    )
    assert spans == [{"name": "native-trace"}]
    scores = await ingest.rows(
        "SELECT name, value FROM scores WHERE project_id = {project:String} "
        "AND trace_id = {trace:String}",
        trace=trace_id,
    )
    assert scores == [{"name": "quality", "value": 0.5}]


async def test_native_batch_that_is_not_a_batch_is_400(ingest: Ingest) -> None:
    for content in (b"not json", b"[]", b'{"batch": "x"}', b'{"batch": [1, 2'):
        response = await ingest.post("/api/v1/ingest", content, "application/json")
        error = envelope_error(response, 400)
        assert error["code"] in ("invalid_payload", "invalid_request"), error
    too_big = await ingest.post("/api/v1/ingest", b"[" * (MAX_BODY + 1), "application/json")
    envelope_error(too_big, 413)


async def test_scores_invalid_is_400_and_batch_mixed_is_207(ingest: Ingest) -> None:
    trace_id = os.urandom(16).hex()
    for bad in (
        {"trace_id": "nope", "name": "q", "value": 1},
        {"trace_id": trace_id, "name": "", "value": 1},
        {"trace_id": trace_id, "name": "q", "value": "high"},
        {"trace_id": trace_id, "name": "q", "value": 1, "type": "VECTOR"},
        {"name": "q", "value": 1},
    ):
        response = await ingest.post("/v1/scores", orjson.dumps(bad), "application/json")
        assert "invalid score" in envelope_error(response, 400)["message"], bad
    assert envelope_error(await ingest.post("/v1/scores", b"{", "application/json"), 400)

    scores = [
        {"trace_id": trace_id, "name": "helpful", "value": 1, "type": "BOOLEAN"},
        {"trace_id": trace_id, "name": "helpful", "value": "maybe", "type": "BOOLEAN"},
        {"trace_id": trace_id, "name": "tone", "string_value": "warm", "type": "CATEGORICAL"},
    ]
    response = await ingest.post(
        "/v1/scores/batch", orjson.dumps({"scores": scores}), "application/json"
    )
    assert response.status_code == 207, response.text
    data = response.json()["data"]
    assert (data["created"], data["failed"]) == (2, 1)
    assert [e["index"] for e in data["errors"]] == [1]
    stored = await ingest.rows(
        "SELECT name, string_value FROM scores WHERE project_id = {project:String} "
        "AND trace_id = {trace:String} ORDER BY name",
        lambda rows: len(rows) >= 2,
        trace=trace_id,
    )
    assert stored == [
        {"name": "helpful", "string_value": "true"},
        {"name": "tone", "string_value": "warm"},
    ]


# --------------------------------------------------------------------------- backpressure


async def test_a_full_queue_answers_503_with_retry_after(ingest: Ingest, tmp_path: Path) -> None:
    """No writers drain the spool, so it fills; then every endpoint backpressures."""
    key = "bk_" + secrets.token_hex(20)
    settings = make_settings(
        tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}",
        init_project_api_key=key,
        init_admin_email="full-queue@example.com",
        init_admin_password=STRONG_PASSWORD,
        pipeline={"spool_max_bytes": 1 << 16, "run_writers": False, "retry_after_s": 2},
    )
    async with running_app(settings) as http:

        async def fill(post: Callable[[int], Any]) -> tuple[int, httpx.Response]:
            """Post until refused: (requests acknowledged before, the refusal)."""
            for attempt in range(300):
                response: httpx.Response = await post(attempt)
                if response.status_code != 200:
                    return attempt, response
            pytest.fail("the spool never filled")

        headers = {"Content-Type": PROTOBUF, "X-API-Key": key}

        async def post_spans(attempt: int) -> httpx.Response:
            spans = [make_span(f"fill-{attempt}-{i}") for i in range(20)]
            return await http.post("/v1/traces", content=traces_body(spans), headers=headers)

        accepted, refused = await fill(post_spans)
        assert accepted >= 3  # the first requests were acknowledged
        body = rpc_status(refused, 503, UNAVAILABLE)
        assert "ingest queue is full" in body.message
        assert refused.headers["retry-after"] == "2"

        # Smaller requests still fit for a while, then they are refused the same way.
        async def post_log(attempt: int) -> httpx.Response:
            log = {"body": {"stringValue": f"x{attempt}"}}
            doc = {"resourceLogs": [{"scopeLogs": [{"logRecords": [log]}]}]}
            json_headers = {"Content-Type": "application/json", "X-API-Key": key}
            return await http.post("/v1/logs", content=orjson.dumps(doc), headers=json_headers)

        _, refused = await fill(post_log)
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/json"
        assert refused.json()["code"] == UNAVAILABLE
        assert "ingest queue is full" in refused.json()["message"]
        assert refused.headers["retry-after"] == "2"

        async def post_event(attempt: int) -> httpx.Response:
            item = {"id": f"e{attempt}", "type": "event", "body": {"name": "x"}}
            return await http.post(
                "/api/v1/ingest", json={"batch": [item]}, headers={"X-API-Key": key}
            )

        _, refused = await fill(post_event)
        assert envelope_error(refused, 503)["code"] == "queue_full"
        assert refused.headers["retry-after"] == "2"

        # Refusals are not failures of the process: it stays live, and an empty export
        # (nothing to enqueue) is still answered.
        assert (await http.get("/health/live")).status_code == 200
        empty = await http.post("/v1/traces", content=b"", headers=headers)
        assert export_response("traces", empty) == (0, "")
        metrics = (await http.get("/metrics")).text
        assert f'brokle_ingest_accepted_rows{{table="spans"}} {accepted * 20}.0' in metrics


# --------------------------------------------------------------------------- never a 500

BIG_INT = "9" * 30  # valid JSON, beyond 64 bits (and beyond what orjson can write back)
HUGE_INT = "9" * 400  # valid JSON, beyond the range of a float


async def test_native_items_with_integers_beyond_64_bits_are_not_a_500(ingest: Ingest) -> None:
    trace_id = os.urandom(16).hex()
    now_ms = time.time_ns() // 1_000_000

    def span(event_id: str, **body: Any) -> dict[str, Any]:
        body = {"id": os.urandom(8).hex(), "trace_id": trace_id, "name": event_id, **body}
        return {"id": event_id, "type": "span", "timestamp": now_ms, "body": body}

    raw = orjson.dumps(
        {
            "batch": [
                span("big-ok"),
                span("big-input", input={"n": "@BIG@"}),
                span("big-metadata", metadata={"list": ["@BIG@"]}),
                {"id": "big-event", "type": "event", "body": {"name": "e", "body": ["@BIG@"]}},
            ]
        }
    ).replace(b'"@BIG@"', BIG_INT.encode())
    response = await ingest.post("/api/v1/ingest", raw, "application/json", lenient=True)
    assert response.status_code in (200, 207), response.text
    data = response.json()["data"]
    assert len(data["successes"]) + len(data["errors"]) == 4
    assert data["successes"][0]["id"] == "big-ok"


async def test_score_values_beyond_float_range_are_a_400(ingest: Ingest) -> None:
    trace_id = os.urandom(16).hex()
    single = f'{{"trace_id": "{trace_id}", "name": "q", "value": {HUGE_INT}}}'.encode()
    response = await ingest.post("/v1/scores", single, "application/json", lenient=True)
    assert envelope_error(response, 400)["code"] == "validation_error"
    batch = (
        f'{{"scores": [{single.decode()}, {{"trace_id": "{trace_id}", "name": "q", "value": 1}}]}}'
    )
    response = await ingest.post(
        "/v1/scores/batch", batch.encode(), "application/json", lenient=True
    )
    assert response.status_code == 207, response.text
    assert response.json()["data"]["failed"] == 1


async def test_exponential_histogram_with_absurd_scale_is_rejected_not_a_500(
    ingest: Ingest,
) -> None:
    request = ExportMetricsServiceRequest()
    metric = Metric(name="ingest_tests_exp_histogram")
    good = metric.exponential_histogram.data_points.add(
        time_unix_nano=now_ns(), scale=2, count=3, sum=4.0
    )
    good.positive.bucket_counts.extend([1, 2])
    bad = metric.exponential_histogram.data_points.add(
        time_unix_nano=now_ns(), scale=-2000, count=3, sum=4.0
    )
    bad.positive.bucket_counts.extend([1, 2])
    request.resource_metrics.add().scope_metrics.add().metrics.append(metric)
    response = await ingest.otlp("metrics", request.SerializeToString(), lenient=True)
    rejected, message = export_response("metrics", response)
    assert rejected == 1, message


async def test_a_body_of_empty_containers_is_refused(ingest: Ingest) -> None:
    body = b"\x0a\x00" * (128 << 10)  # 128 Ki empty ResourceSpans in 256 KiB
    response = await ingest.otlp("traces", body)
    assert response.status_code in (400, 413), response.content
