"""End to end through the dispatch helpers: headers → decompress → decode → reply bodies."""

from __future__ import annotations

import gzip

import cramjam
import orjson
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from brokle_server.core.types import ProjectScope
from brokle_server.errors import BrokleError, PayloadTooLarge
from brokle_server.ingest.config import IngestSettings
from brokle_server.ingest.dispatch import decode_otlp, decode_write, otlp_error_reply

from .conftest import NOW, NOW_NS
from .test_remote_write import timeseries, write_request

SETTINGS = IngestSettings()


def span(span_id: str, start: int) -> dict[str, object]:
    return {"traceId": "01" * 16, "spanId": span_id, "name": "s", "startTimeUnixNano": str(start)}


def test_gzip_json_traces_with_partial_success(scope: ProjectScope) -> None:
    doc = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            span("02" * 8, NOW_NS),
                            span("03" * 8, NOW_NS - 40 * 86_400 * 10**9),
                        ]
                    }
                ]
            }
        ]
    }
    result = decode_otlp(
        "traces",
        gzip.compress(orjson.dumps(doc)),
        content_type="application/json",
        content_encoding="gzip",
        scope=scope,
        received_at=NOW,
        settings=SETTINGS,
    )
    assert len(result.rows) == 1 and result.rejected.count == 1
    body, media = result.reply()
    assert media == "application/json"
    assert orjson.loads(body) == {
        "partialSuccess": {
            "rejectedSpans": "1",
            "errorMessage": "rejected 1 spans: 1 x timestamp older than the project's "
            "retention period",
        }
    }


def test_protobuf_logs_full_success(scope: ProjectScope) -> None:
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.time_unix_nano = NOW_NS
    record.body.string_value = "hello"
    result = decode_otlp(
        "logs",
        request.SerializeToString(),
        content_type="application/x-protobuf",
        content_encoding=None,
        scope=scope,
        received_at=NOW,
        settings=SETTINGS,
    )
    assert len(result.rows) == 1
    body, media = result.reply()
    assert media == "application/x-protobuf"
    assert not ExportLogsServiceResponse.FromString(body).HasField("partial_success")


def test_metrics_json(scope: ProjectScope) -> None:
    doc = {
        "resourceMetrics": [
            {
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "up",
                                "gauge": {
                                    "dataPoints": [{"timeUnixNano": str(NOW_NS), "asInt": "1"}]
                                },
                            }
                        ]
                    }
                ]
            }
        ]
    }
    result = decode_otlp(
        "metrics",
        orjson.dumps(doc),
        content_type="application/json",
        content_encoding="identity",
        scope=scope,
        received_at=NOW,
        settings=SETTINGS,
    )
    assert result.metrics is not None and len(result.metrics.samples) == 1
    assert result.reply() == (b"{}", "application/json")


def test_error_replies(scope: ProjectScope) -> None:
    with pytest.raises(BrokleError) as info:
        decode_otlp(
            "traces",
            b"x",
            content_type="text/plain",
            content_encoding=None,
            scope=scope,
            received_at=NOW,
            settings=SETTINGS,
        )
    status, body, media = otlp_error_reply(info.value, "text/plain")
    assert (status, media) == (415, "application/x-protobuf")
    assert "application/x-protobuf" in status_pb2.Status.FromString(body).message

    small = IngestSettings(max_body_bytes=1024)
    with pytest.raises(PayloadTooLarge) as too_large:
        decode_otlp(
            "traces",
            gzip.compress(b"\0" * 4096),
            content_type="application/x-protobuf",
            content_encoding="gzip",
            scope=scope,
            received_at=NOW,
            settings=small,
        )
    status, body, media = otlp_error_reply(too_large.value, "application/json")
    assert (status, media) == (413, "application/json")
    assert orjson.loads(body)["code"] == 8

    with pytest.raises(BrokleError) as bad:
        decode_otlp(
            "traces",
            b"\x0a\xff\xff\xff\xff\x0f",
            content_type="application/x-protobuf",
            content_encoding=None,
            scope=scope,
            received_at=NOW,
            settings=SETTINGS,
        )
    assert otlp_error_reply(bad.value, "application/x-protobuf")[0] == 400


def test_write_remote_write_and_luminate(scope: ProjectScope) -> None:
    now_ms = NOW_NS // 1_000_000
    body = write_request([timeseries({"__name__": "up"}, [(1.0, now_ms)])])
    for encoding in ("snappy", None):
        batch = decode_write(
            bytes(cramjam.snappy.compress_raw(body)),
            content_type="application/x-protobuf",
            content_encoding=encoding,
            scope=scope,
            received_at=NOW,
            settings=SETTINGS,
        )
        assert len(batch.samples) == 1
    luminate = decode_write(
        orjson.dumps({"metrics": [{"name": "m", "value": 1}]}),
        content_type="application/json",
        content_encoding=None,
        scope=scope,
        received_at=NOW,
        settings=SETTINGS,
    )
    assert len(luminate.samples) == 1 and luminate.errors == []
