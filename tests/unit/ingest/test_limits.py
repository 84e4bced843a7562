"""The per-request item budget: too many items is a 413 before rows are built."""

from __future__ import annotations

import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from brokle_server.core.types import ProjectScope
from brokle_server.errors import PayloadTooLarge
from brokle_server.ingest.config import IngestSettings
from brokle_server.ingest.otlp_logs import decode_logs_protobuf
from brokle_server.ingest.otlp_metrics import decode_metrics_json
from brokle_server.ingest.otlp_traces import decode_traces_json, decode_traces_protobuf
from brokle_server.ingest.remote_write import decode_remote_write

from .conftest import NOW, NOW_NS
from .test_remote_write import timeseries, write_request

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
