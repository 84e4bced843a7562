"""The per-request item budget: too many items is a 413 before rows are built."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from brokle_server.core.types import ProjectScope
from brokle_server.errors import PayloadTooLarge
from brokle_server.ingest.config import IngestSettings
from brokle_server.ingest.otlp_logs import decode_logs_json, decode_logs_protobuf
from brokle_server.ingest.otlp_metrics import decode_metrics_json, decode_metrics_protobuf
from brokle_server.ingest.otlp_traces import decode_traces_json, decode_traces_protobuf
from brokle_server.ingest.remote_write import decode_remote_write

from .conftest import NOW, NOW_NS
from .test_remote_write import ld, timeseries, write_request

LIMIT = IngestSettings(max_items_per_request=100)


def traces(n: int) -> bytes:
    request = ExportTraceServiceRequest()
    # Two scopes, so the budget is shared across them.
    for half in (n // 2, n - n // 2):
        spans = request.resource_spans.add().scope_spans.add().spans
        for i in range(half):
            spans.add(
                trace_id=b"\x01" * 16,
                span_id=(i + 1).to_bytes(8, "big"),
                start_time_unix_nano=NOW_NS,
            )
    return request.SerializeToString()


def test_traces(scope: ProjectScope) -> None:
    assert len(decode_traces_protobuf(traces(100), scope, NOW, settings=LIMIT).rows) == 100
    with pytest.raises(PayloadTooLarge, match="more than 100 spans"):
        decode_traces_protobuf(traces(101), scope, NOW, settings=LIMIT)
    span = {"traceId": "01" * 16, "spanId": "02" * 8, "startTimeUnixNano": str(NOW_NS)}
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [span] * 101}]}]}
    with pytest.raises(PayloadTooLarge):
        decode_traces_json(orjson.dumps(doc), scope, NOW, settings=LIMIT)


def test_logs_metrics_and_samples(scope: ProjectScope) -> None:
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    for _ in range(101):
        records.add(time_unix_nano=NOW_NS)
    with pytest.raises(PayloadTooLarge, match="log records"):
        decode_logs_protobuf(request.SerializeToString(), scope, NOW, settings=LIMIT)

    points = [{"timeUnixNano": str(NOW_NS), "asInt": "1"}] * 101
    doc = {
        "resourceMetrics": [
            {"scopeMetrics": [{"metrics": [{"name": "m", "gauge": {"dataPoints": points}}]}]}
        ]
    }
    with pytest.raises(PayloadTooLarge, match="data points"):
        decode_metrics_json(orjson.dumps(doc), scope, NOW, settings=LIMIT)

    now_ms = NOW_NS // 1_000_000
    body = write_request([timeseries({"__name__": "x"}, [(1.0, now_ms - i) for i in range(101)])])
    with pytest.raises(PayloadTooLarge, match="samples"):
        decode_remote_write(body, scope, NOW, settings=LIMIT)


def test_containers_do_not_eat_into_the_item_limit(scope: ProjectScope) -> None:
    request = ExportTraceServiceRequest()
    for i in range(50):  # 100 spans in 50 resources of one scope: 100 containers, 100 spans
        spans = request.resource_spans.add().scope_spans.add().spans
        for j in (2 * i + 1, 2 * i + 2):
            spans.add(
                trace_id=b"\x01" * 16, span_id=j.to_bytes(8, "big"), start_time_unix_nano=NOW_NS
            )
    body = request.SerializeToString()
    assert len(decode_traces_protobuf(body, scope, NOW, settings=LIMIT).rows) == 100


def _json(doc: object) -> bytes:
    return orjson.dumps(doc)


# n empty entries at each level a decoder loops over: the protobuf wire form (field 1 of the
# request, field 2 of a resource entry, field 2 of a scope entry) and OTLP/JSON.
_EMPTY: dict[str, tuple[Callable[..., object], Callable[[int], bytes]]] = {
    "traces resources": (decode_traces_protobuf, lambda n: b"\x0a\x00" * n),
    "traces scopes": (decode_traces_protobuf, lambda n: ld(1, b"\x12\x00" * n)),
    "traces json resources": (decode_traces_json, lambda n: _json({"resourceSpans": [{}] * n})),
    "traces json scopes": (
        decode_traces_json,
        lambda n: _json({"resource_spans": [{"scope_spans": [{}] * n}]}),
    ),
    "logs resources": (decode_logs_protobuf, lambda n: b"\x0a\x00" * n),
    "logs scopes": (decode_logs_protobuf, lambda n: ld(1, b"\x12\x00" * n)),
    "logs json resources": (decode_logs_json, lambda n: _json({"resourceLogs": [{}] * n})),
    "logs json both keys": (  # the conversion reads both spellings: so does the count
        decode_logs_json,
        lambda n: _json({"resourceLogs": [{}], "resource_logs": [{}] * (n - 1)}),
    ),
    "metrics resources": (decode_metrics_protobuf, lambda n: b"\x0a\x00" * n),
    "metrics scopes": (decode_metrics_protobuf, lambda n: ld(1, b"\x12\x00" * n)),
    "metrics metrics": (decode_metrics_protobuf, lambda n: ld(1, ld(2, b"\x12\x00" * n))),
    "metrics json scopes": (
        decode_metrics_json,
        lambda n: _json({"resourceMetrics": [{"scopeMetrics": [{}] * n}]}),
    ),
    "metrics json metrics": (
        decode_metrics_json,
        lambda n: _json({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{}] * n}]}]}),
    ),
    "remote_write series": (decode_remote_write, lambda n: b"\x0a\x00" * n),
    "remote_write metadata": (decode_remote_write, lambda n: b"\x1a\x00" * n),
}


@pytest.mark.parametrize("case", list(_EMPTY))
def test_empty_containers_are_counted(case: str, scope: ProjectScope) -> None:
    decode, body = _EMPTY[case]
    decode(body(90), scope, NOW, settings=LIMIT)  # with the entries above: within the limit
    with pytest.raises(PayloadTooLarge, match=r"more than 100 (resource|series).* entries"):
        decode(body(101), scope, NOW, settings=LIMIT)


def test_empty_json_items_are_counted_before_the_conversion(scope: ProjectScope) -> None:
    scope_metrics: list[Any] = [{"metrics": [{"gauge": {"dataPoints": [{}] * 101}}]}]
    points = {"resourceMetrics": [{"scopeMetrics": scope_metrics}]}
    with pytest.raises(PayloadTooLarge, match="more than 100 data points"):
        decode_metrics_json(orjson.dumps(points), scope, NOW, settings=LIMIT)
    records: dict[str, Any] = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{}] * 101}]}]}
    with pytest.raises(PayloadTooLarge, match="more than 100 log records"):
        decode_logs_json(orjson.dumps(records), scope, NOW, settings=LIMIT)


def test_16_mib_of_empty_resource_spans_fails_fast(scope: ProjectScope) -> None:
    body = b"\x0a\x00" * 8_000_000  # 8 M empty ResourceSpans: was ~18 s of Python loop
    started = time.thread_time()  # CPU time of this thread: other load does not count
    with pytest.raises(PayloadTooLarge, match="resource and scope entries"):
        decode_traces_protobuf(body, scope, NOW)
    assert time.thread_time() - started < 2.0
