"""OTLP logs → log rows, from the OTel SDK's own log encoder and from OTLP/JSON."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from brokle_server.core.types import ProjectScope
from brokle_server.ingest.decode import PayloadDecodeError
from brokle_server.ingest.otlp_logs import decode_logs_json, decode_logs_protobuf, severity_text_for
from brokle_server.store.schema import LOG_COLUMNS

from .conftest import NOW, NOW_NS

MS = 1_000_000


def sdk_logs_body(*records: dict[str, Any]) -> bytes:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(
        resource=Resource.create({"service.name": "api", "deployment.environment.name": "Prod"})
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("app.logger", "0.1")
    for record in records:
        logger.emit(**record)
    body = bytes(encode_logs(exporter.get_finished_logs()).SerializeToString())
    provider.shutdown()
    return body


def rows(batch_rows: list[tuple[object, ...]]) -> list[dict[str, Any]]:
    return [dict(zip(LOG_COLUMNS, row, strict=True)) for row in batch_rows]


def test_sdk_logs(scope: ProjectScope) -> None:
    body = sdk_logs_body(
        {
            "timestamp": NOW_NS - 5 * MS,
            "observed_timestamp": NOW_NS - 4 * MS,
            "severity_number": SeverityNumber.ERROR,
            "severity_text": "ERROR",
            "body": "payment failed",
            "attributes": {"order": 17, "brokle.environment": "QA"},
        },
        {
            "timestamp": NOW_NS - 3 * MS,
            "observed_timestamp": NOW_NS - 3 * MS,
            "severity_number": SeverityNumber.WARN2,
            "body": {"structured": [1, 2]},
            "event_name": "cart.updated",
        },
    )
    batch = decode_logs_protobuf(body, scope, NOW)
    first, second = rows(batch.rows)
    assert batch.rejected.count == 0
    assert first["timestamp"] == NOW_NS - 5 * MS
    assert first["observed_timestamp"] == NOW_NS - 4 * MS
    assert (first["severity_text"], first["severity_number"]) == ("ERROR", 17)
    assert first["body"] == "payment failed"
    assert first["attributes"] == {"order": "17", "brokle.environment": "QA"}
    assert first["environment"] == "qa"
    assert first["service_name"] == "api" and first["scope_name"] == "app.logger"
    assert second["environment"] == "prod"
    assert (second["severity_text"], second["severity_number"]) == ("WARN", 14)
    assert second["body"] == '{"structured":[1,2]}'
    assert second["attributes"] == {"event.name": "cart.updated"}
    assert second["trace_id"] == "" and second["span_id"] == ""


def test_json_logs_with_hex_trace_context(scope: ProjectScope) -> None:
    doc = {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "w"}}]
                },
                "scopeLogs": [
                    {
                        "scope": {"name": "s"},
                        "logRecords": [
                            {
                                "timeUnixNano": str(NOW_NS - MS),
                                "severityNumber": 9,
                                "body": {"stringValue": "hello"},
                                "traceId": "5B8EFFF798038103D269B633813FC60C",
                                "spanId": "EEE19B7EC3C1B174",
                                "flags": 1,
                                "attributes": [{"key": "k", "value": {"intValue": "3"}}],
                            },
                            {
                                "observedTimeUnixNano": NOW_NS - 2 * MS,
                                "severity_text": "custom",
                                "traceId": "00000000000000000000000000000000",
                            },
                            {"body": {"stringValue": "no time at all"}},
                            {"timeUnixNano": "1000", "body": {"stringValue": "1970"}},
                        ],
                    }
                ],
            }
        ]
    }
    batch = decode_logs_json(orjson.dumps(doc), scope, NOW)
    a, b, c = rows(batch.rows)
    assert a["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert a["span_id"] == "eee19b7ec3c1b174" and a["trace_flags"] == 1
    assert (a["severity_text"], a["body"], a["attributes"]) == ("INFO", "hello", {"k": "3"})
    assert b["timestamp"] == NOW_NS - 2 * MS and b["severity_text"] == "custom"
    assert b["trace_id"] == ""
    assert c["timestamp"] == NOW_NS == c["observed_timestamp"]
    assert batch.rejected.reasons == {"timestamp older than the project's retention period": 1}


def test_json_and_protobuf_agree(scope: ProjectScope) -> None:
    body = sdk_logs_body(
        {
            "timestamp": NOW_NS - MS,
            "observed_timestamp": NOW_NS,
            "body": "x",
            "attributes": {"a": [True, 1.5]},
        }
    )
    doc = MessageToDict(ExportLogsServiceRequest.FromString(body))
    assert decode_logs_json(orjson.dumps(doc), scope, NOW).rows == (
        decode_logs_protobuf(body, scope, NOW).rows
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"resourceLogs": {"not": "a list"}}',
        b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "soon"}]}]}]}',
        b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "xyz"}]}]}]}',
        b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": 5}}]}]}]}',
        b"\xff",
    ],
)
def test_malformed_json_logs(scope: ProjectScope, body: bytes) -> None:
    with pytest.raises(PayloadDecodeError):
        decode_logs_json(body, scope, NOW)


def test_severity_names() -> None:
    assert [severity_text_for(n) for n in (0, 1, 5, 9, 13, 17, 21, 24, 25)] == [
        "",
        "TRACE",
        "DEBUG",
        "INFO",
        "WARN",
        "ERROR",
        "FATAL",
        "FATAL",
        "",
    ]
