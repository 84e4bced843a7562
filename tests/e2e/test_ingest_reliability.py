"""Ingest reliability against a real ``brokle serve`` (embedded chDB and spool):

* ``kill -9`` during sustained ingest, then a restart: every acknowledged span is stored,
  none twice (DESIGN Principle 4).
* The store unreachable: ingest acknowledges into the spool up to its limit, then answers
  503 with ``Retry-After``; when the store is back everything drains, exactly once.
* Hostile bodies get a clear 4xx and leave the process live, lean and still ingesting
  (Principle 7).

Spans are built with the opentelemetry-proto classes and posted with httpx, so the test
knows the id of every span of every acknowledged request.
"""

from __future__ import annotations

import gzip
import os
import random
import re
import signal
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.e2e.conftest import Server, free_port, query_store

pytestmark = pytest.mark.e2e

PROTOBUF = "application/x-protobuf"
NS = 1_000_000_000
U64_MAX = 2**64 - 1
SpanId = tuple[str, str]  # (trace_id hex, span_id hex)


# --------------------------------------------------------------------------- helpers


def kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def trace_batch(count: int, name: str = "load", **span_fields: int) -> tuple[bytes, list[SpanId]]:
    """An ExportTraceServiceRequest of ``count`` spans in a few traces, and their ids."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(kv("service.name", "reliability"))
    spans = resource_spans.scope_spans.add().spans
    now = time.time_ns()
    ids: list[SpanId] = []
    trace_id = os.urandom(16)
    for i in range(count):
        if i % 25 == 0:
            trace_id = os.urandom(16)
        span_id = os.urandom(8)
        fields = {"start_time_unix_nano": now - NS, "end_time_unix_nano": now, **span_fields}
        spans.add(
            trace_id=trace_id,
            span_id=span_id,
            name=f"{name}-{i}",
            kind=Span.SPAN_KIND_SERVER,
            attributes=[kv("http.route", "/chat"), kv("payload", "x" * 64)],
            **fields,
        )
        ids.append((trace_id.hex(), span_id.hex()))
    return request.SerializeToString(), ids


def post_traces(http: httpx.Client, key: str, body: bytes, **headers: str) -> httpx.Response:
    sent = {"Content-Type": PROTOBUF, "X-API-Key": key, **headers}
    return http.post("/v1/traces", content=body, headers=sent)


def pipeline_gauge(server: Server, name: str) -> float | None:
    text = httpx.get(server.base_url + "/metrics", timeout=5).text
    match = re.search(rf'^brokle_pipeline{{name="{name}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else None


def wait_drained(server: Server, timeout: float = 40) -> None:
    """The store is ready and the queue is empty (the depth gauge refreshes every ~1 s,
    so it has to read 0 on two scrapes more than a second apart)."""
    deadline = time.monotonic() + timeout
    empty_since: float | None = None
    while time.monotonic() < deadline:
        ready = httpx.get(server.base_url + "/health/ready", timeout=5).status_code == 200
        if ready and pipeline_gauge(server, "queue_messages") == 0:
            empty_since = empty_since or time.monotonic()
            if time.monotonic() - empty_since > 1.2:
                return
        else:
            empty_since = None
        time.sleep(0.2)
    raise AssertionError(f"the queue did not drain:\n{server.log()[-3000:]}")


def stored_spans(data_dir: Path, project_id: str) -> tuple[set[SpanId], int, int, int]:
    """(span ids, count(), uniqExact(trace_id, span_id), trace_index span total) of a
    stopped server's store, read without FINAL (one subprocess: chDB loads in ~1.5 s)."""
    rows = query_store(
        data_dir,
        "SELECT trace_id, span_id, count() OVER () AS n, "
        "uniqExact(trace_id, span_id) OVER () AS u, "
        "(SELECT sum(span_count) FROM trace_index WHERE project_id = {p:String}) AS indexed "
        "FROM spans WHERE project_id = {p:String}",
        p=project_id,
    )
    if not rows:
        return set(), 0, 0, 0
    ids = {(str(r["trace_id"]), str(r["span_id"])) for r in rows}
    first = rows[0]
    return ids, int(str(first["n"])), int(str(first["u"])), int(str(first["indexed"]))


def fresh_key(server: Server, first_run: dict[str, str]) -> str:
    """Log in as the first-run admin (``first_run`` of the data dir's first start) and
    create a new ingest key."""
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        login = http.post(
            "/api/v1/auth/login",
            json={"email": "admin@example.com", "password": first_run["admin_password"]},
        )
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['data']['token']}"}
        http.cookies.clear()
        created = http.post(
            f"/api/v1/projects/{first_run['project_id']}/api-keys",
            json={"name": "after restart"},
            headers=auth,
        )
        assert created.status_code == 201, created.text
        key: str = created.json()["data"]["key"]
        return key


# --------------------------------------------------------------------------- kill -9


def test_kill_9_during_sustained_ingest_loses_and_duplicates_nothing(
    server_factory: Callable[..., Server],
) -> None:
    env = {"BROKLE_RATE_LIMIT__ENABLED": "false"}
    first = server_factory(**env)
    key, project_id = first.first_run["api_key"], first.first_run["project_id"]
    acked: list[SpanId] = []
    sent: set[SpanId] = set()
    refused: list[int] = []
    errors: list[str] = []
    failed_after_kill: list[str] = []
    lock = threading.Lock()
    killed = threading.Event()
    stop = threading.Event()

    def producer(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=first.base_url, timeout=10) as http:
            while not stop.is_set():
                body, ids = trace_batch(rng.randint(50, 200))
                with lock:
                    sent.update(ids)
                try:
                    response = post_traces(http, key, body)
                except httpx.TransportError as exc:
                    with lock:  # not acknowledged, so not expected in the store
                        (failed_after_kill if killed.is_set() else errors).append(repr(exc))
                    time.sleep(0.02)
                    continue
                with lock:
                    if response.status_code == 200:
                        acked.extend(ids)
                    else:
                        refused.append(response.status_code)

    threads = [threading.Thread(target=producer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2.5)
        killed.set()  # from now on, failed requests are expected
        first.stop(signal.SIGKILL)
        assert first.process.returncode == -signal.SIGKILL
        time.sleep(0.3)  # producers keep trying against the dead server
    finally:
        stop.set()
        for thread in threads:
            thread.join(20)
    assert not refused, f"non-200 answers: {refused[:10]}"
    assert not errors, f"requests failed before the kill: {errors[:3]}"
    assert failed_after_kill, "posting should have gone on against the dead server"
    assert len(acked) >= 2000, "too little load to mean anything"

    second = server_factory(first.data_dir, **env)
    assert "api_key" not in second.first_run  # the catalog survived: no second first run
    wait_drained(second)
    with httpx.Client(base_url=second.base_url, timeout=10) as http:
        for use_key in (key, fresh_key(second, first.first_run)):
            body, ids = trace_batch(60, name="after-restart")
            sent.update(ids)
            assert post_traces(http, use_key, body).status_code == 200
            acked.extend(ids)
    second.stop()  # graceful: the writers drain what is left

    stored, count, unique, indexed = stored_spans(first.data_dir, project_id)
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged spans are missing"
    assert count == unique, f"{count - unique} duplicate span rows"
    assert stored <= sent, "rows that no request sent"
    assert indexed == count, f"trace_index counts {indexed} spans for {count} rows"
    # (Requests in flight at the kill may be stored although never acknowledged: fine.)


# --------------------------------------------------------------------------- store outage


def test_store_outage_backpressures_then_drains_everything_once(
    server_factory: Callable[..., Server],
) -> None:
    spool_limit = 2 << 20
    first = server_factory(
        BROKLE_CLICKHOUSE_URL=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        BROKLE_PIPELINE__SPOOL_MAX_BYTES=str(spool_limit),
        BROKLE_PIPELINE__DRAIN_TIMEOUT_S="1",
        BROKLE_RATE_LIMIT__ENABLED="false",
    )
    key, project_id = first.first_run["api_key"], first.first_run["project_id"]
    with httpx.Client(base_url=first.base_url, timeout=10) as http:
        ready = http.get("/health/ready")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["store"]["status"] == "error"
        assert checks["catalog"]["status"] == "ok"

        acked: list[SpanId] = []
        for _ in range(1000):
            body, ids = trace_batch(100, name="outage")
            response = post_traces(http, key, body)
            if response.status_code != 200:
                break
            acked.extend(ids)
        else:
            pytest.fail("ingest never backpressured with the store down")
        assert response.status_code in (429, 503), response.content
        assert int(response.headers["retry-after"]) >= 1
        status = status_pb2.Status.FromString(response.content)
        assert "queue is full" in status.message
        assert len(acked) >= 1000, "the spool should hold thousands of spans first"
        queued = pipeline_gauge(first, "queue_bytes")
        assert queued is None or queued <= spool_limit
        # Still refusing (not crashing) on the next attempt, and alive.
        assert post_traces(http, key, trace_batch(100)[0]).status_code in (429, 503)
        assert http.get("/health/live").status_code == 200
    first.stop()

    # The store is back (the default embedded one): the spool replays into it.
    second = server_factory(first.data_dir, BROKLE_PIPELINE__RETRY_BACKOFF_MAX_MS="500")
    wait_drained(second)
    with httpx.Client(base_url=second.base_url, timeout=10) as http:
        body, ids = trace_batch(50, name="after-outage")
        assert post_traces(http, key, body).status_code == 200
        acked.extend(ids)
    second.stop()

    stored, count, unique, indexed = stored_spans(first.data_dir, project_id)
    assert stored == set(acked), (
        f"{len(set(acked) - stored)} acknowledged spans missing, "
        f"{len(stored - set(acked))} never acknowledged"
    )
    assert count == unique == len(acked), f"{count} rows for {len(acked)} acknowledged spans"
    assert indexed == count


# --------------------------------------------------------------------------- hostile input


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _gzip_bomb(mib: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    return b"".join([compressor.compress(block) for _ in range(mib)] + [compressor.flush()])


def test_hostile_bodies_get_a_4xx_and_leave_the_process_unharmed(
    server_factory: Callable[..., Server],
) -> None:
    limit = 4 << 20
    server = server_factory(BROKLE_INGEST__MAX_BODY_BYTES=str(limit))
    key, project_id = server.first_run["api_key"], server.first_run["project_id"]
    good_ids: list[SpanId] = []
    now = time.time_ns()

    ten_thousand = ExportTraceServiceRequest()
    span = (
        ten_thousand.resource_spans.add()
        .scope_spans.add()
        .spans.add(
            trace_id=os.urandom(16),
            span_id=os.urandom(8),
            name="ten-thousand-attributes",
            start_time_unix_nano=now - NS,
            end_time_unix_nano=now,
            attributes=[kv(f"attr.{i}", f"value-{i}") for i in range(10_000)],
        )
    )
    wide_id = (span.trace_id.hex(), span.span_id.hex())
    valid = trace_batch(1, name="MARKER-MARKER")[0]
    non_utf8 = valid.replace(b"MARKER-MARKER", b"\xff\xfe\xc3\x28MARKER-M")
    extreme, extreme_ids = trace_batch(5, name="extreme", end_time_unix_nano=U64_MAX)
    absurd, _ = trace_batch(3, name="absurd", start_time_unix_nano=U64_MAX)
    old, _ = trace_batch(3, name="old", start_time_unix_nano=NS)

    cases: list[tuple[str, str, dict[str, str], bytes, int]] = [
        ("malformed protobuf", "/v1/traces", {}, b"\x0a\xff\xff\xff\xff\x0f\x01", 400),
        ("malformed protobuf", "/v1/logs", {}, b"\x0a\xff\xff\xff\xff\x0f\x01", 400),
        ("malformed protobuf", "/v1/metrics", {}, b"\x0a\xff\xff\xff\xff\x0f\x01", 400),
        (
            "truncated gzip",
            "/v1/traces",
            {"Content-Encoding": "gzip"},
            gzip.compress(valid * 50)[:40],
            400,
        ),
        ("gzip bomb", "/v1/traces", {"Content-Encoding": "gzip"}, _gzip_bomb(200), 413),
        ("over the limit", "/v1/traces", {}, b"\x00" * (limit + 1), 413),
        ("text/plain", "/v1/traces", {"Content-Type": "text/plain"}, valid, 415),
        ("non-UTF-8 string", "/v1/traces", {}, non_utf8, 400),
        (
            "JSON not an object",
            "/v1/traces",
            {"Content-Type": "application/json"},
            b"[]",
            400,
        ),
        ("absurd timestamps", "/v1/traces", {}, absurd, 200),
        ("1970 timestamps", "/v1/traces", {}, old, 200),
        ("end time in 2554", "/v1/traces", {}, extreme, 200),
        ("10,000 attributes", "/v1/traces", {}, ten_thousand.SerializeToString(), 200),
        ("remote_write garbage", "/api/v1/write", {}, b"not snappy", 400),
        (
            "native not JSON",
            "/api/v1/ingest",
            {"Content-Type": "application/json"},
            b"\xff{",
            400,
        ),
    ]
    peak_before = _peak_rss_kib(server.process.pid)
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        for label, path, headers, body, expected in cases:
            sent = {"Content-Type": PROTOBUF, "X-API-Key": key, **headers}
            response = http.post(path, content=body, headers=sent)
            assert response.status_code == expected, (label, response.content[:300])
            if path.startswith("/v1/") and expected >= 400:  # google.rpc.Status, as sent
                if response.headers["content-type"] == "application/json":
                    assert response.json()["code"] and response.json()["message"], label
                else:
                    assert response.headers["content-type"] == PROTOBUF, label
                    status = status_pb2.Status.FromString(response.content)
                    assert status.code and status.message, label
            if label in ("absurd timestamps", "1970 timestamps"):
                reply = ExportTraceServiceResponse.FromString(response.content)
                assert reply.partial_success.rejected_spans == 3, label
            # Unharmed: alive, and a good export right after is still acknowledged.
            assert server.process.poll() is None, f"the server died on {label}"
            assert http.get("/health/live").status_code == 200, label
            good, ids = trace_batch(10, name="good")
            reply_ok = post_traces(http, key, good)
            assert reply_ok.status_code == 200, (label, reply_ok.content)
            assert (
                ExportTraceServiceResponse.FromString(
                    reply_ok.content
                ).partial_success.rejected_spans
                == 0
            )
            good_ids.extend(ids)
        wait_drained(server)
        dead = pipeline_gauge(server, "dead_letters")
        assert dead in (None, 0.0), "a hostile request poisoned a write batch"
    grown_mib = (_peak_rss_kib(server.process.pid) - peak_before) / 1024
    assert grown_mib < 256, f"peak RSS grew {grown_mib:.0f} MiB"
    server.stop()

    stored, count, unique, _ = stored_spans(server.data_dir, project_id)
    expected_ids = {*good_ids, *extreme_ids, wide_id}
    assert stored == expected_ids
    assert count == unique
    wide = query_store(
        server.data_dir,
        "SELECT length(mapKeys(attributes)) AS keys, "
        "attributes['brokle.dropped_attributes_count'] AS dropped "
        "FROM spans WHERE project_id = {p:String} AND span_id = {s:String}",
        p=project_id,
        s=wide_id[1],
    )
    assert wide == [{"keys": 513, "dropped": str(10_000 - 512)}]
