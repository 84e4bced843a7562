"""OpenTelemetry's own Python SDK and OTLP/HTTP exporters against a real ``brokle serve``.

One server is shared by the module: a fixture exports traces (protobuf, gzip protobuf and
OTLP/JSON), metrics and logs through the SDK, stops the server (its writers drain the queue)
and reads every table once; each test then checks whole rows of one path. Expected values come
from what the SDK actually exported (recorded by thin exporter subclasses), so times and ids
are exact, and from the documented mapping (OTLP → columns, OTel → Prometheus names).
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import logging
import math
import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
from google.protobuf import json_format
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler, ReadableLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExportResult
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from tests.e2e.conftest import Server, dump_store, flat_map, start_server

pytestmark = pytest.mark.e2e

RUN = uuid.uuid4().hex[:8]
SVC_TRACES = f"otel-e2e-traces-{RUN}"
SVC_GZIP = f"otel-e2e-gzip-{RUN}"
SVC_JSON = f"otel-e2e-json-{RUN}"
SVC_PROD = f"otel-e2e-prod-key-{RUN}"
SVC_METRICS = f"otel-e2e-metrics-{RUN}"
SVC_LOGS = f"otel-e2e-logs-{RUN}"

INPUT_MESSAGES = json.dumps(
    [{"role": "user", "parts": [{"type": "text", "content": "Capital of France?"}]}]
)
OUTPUT_MESSAGES = json.dumps(
    [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Paris."}],
            "finish_reason": "stop",
        }
    ]
)
PROJECT_RETENTION_DAYS = 30  # a project's default retention (both projects here use it)
# Recorded values of the exponential histogram: none near a bucket boundary at scale <= 4.
EXP_VALUES = (3.0, 10.0, 50.0, 700.0, 1500.0)


# --------------------------------------------------------------------------- recording SDK parts


class RecordingSession(requests.Session):
    """The exporters' HTTP session, remembering each request's headers and body."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[dict[str, str], bytes]] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        headers = {str(k).lower(): str(v) for k, v in (kwargs.get("headers") or {}).items()}
        data = kwargs.get("data")
        self.sent.append((headers, data if isinstance(data, bytes) else b""))
        return super().request(method, url, *args, **kwargs)


class RecordingSpanExporter(OTLPSpanExporter):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.results: list[SpanExportResult] = []
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = super().export(spans)
        self.results.append(result)
        self.spans.extend(spans)
        return result


class RecordingMetricExporter(OTLPMetricExporter):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.results: list[MetricExportResult] = []
        self.exports: list[MetricsData] = []

    def export(
        self, metrics_data: MetricsData, timeout_millis: float | None = 10000, **kwargs: Any
    ) -> MetricExportResult:
        result = super().export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        self.results.append(result)
        self.exports.append(metrics_data)
        return result


class RecordingLogExporter(OTLPLogExporter):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.results: list[LogRecordExportResult] = []
        self.records: list[ReadableLogRecord] = []

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        result = super().export(batch)
        self.results.append(result)
        self.records.extend(batch)
        return result


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# --------------------------------------------------------------------------- store access


SPANS_SQL = """
SELECT * REPLACE (
    toUnixTimestamp64Nano(start_time) AS start_time,
    toUnixTimestamp64Nano(end_time) AS end_time,
    arrayMap(t -> toUnixTimestamp64Nano(t), event_times) AS event_times,
    toUnixTimestamp64Milli(ingested_at) AS ingested_at)
FROM spans ORDER BY start_time
"""
TRACE_INDEX_SQL = """
SELECT project_id, trace_id,
       toUnixTimestamp64Nano(min(start_time)) AS start_time,
       toUnixTimestamp64Nano(max(end_time)) AS end_time,
       arraySort(groupUniqArrayArray(environments)) AS environments,
       sum(span_count) AS span_count, sum(error_count) AS error_count,
       sum(total_tokens) AS total_tokens
FROM trace_index GROUP BY project_id, trace_id
"""
SERIES_SQL = """
SELECT project_id, environment, metric_name, series_id,
       argMax(labels, last_seen) AS labels, argMax(metric_type, last_seen) AS metric_type,
       argMax(unit, last_seen) AS unit, argMax(description, last_seen) AS description,
       toUnixTimestamp64Milli(min(first_seen)) AS first_seen_ms,
       toUnixTimestamp64Milli(max(last_seen)) AS last_seen_ms
FROM series GROUP BY project_id, environment, metric_name, series_id
"""
SERIES_FINAL_SQL = """
SELECT project_id, metric_name, series_id,
       toUnixTimestamp64Milli(first_seen) AS first_seen_ms,
       toUnixTimestamp64Milli(last_seen) AS last_seen_ms
FROM series FINAL
"""
SAMPLES_SQL = """
SELECT project_id, environment, metric_name, series_id,
       toUnixTimestamp64Milli(timestamp) AS timestamp, value
FROM samples ORDER BY metric_name, series_id, timestamp
"""
LOGS_SQL = """
SELECT * REPLACE (
    toUnixTimestamp64Nano(timestamp) AS timestamp,
    toUnixTimestamp64Nano(observed_timestamp) AS observed_timestamp,
    toUnixTimestamp64Milli(ingested_at) AS ingested_at)
FROM logs ORDER BY timestamp
"""


# --------------------------------------------------------------------------- expectations


def span_row(
    span: ReadableSpan,
    *,
    project_id: str,
    environment: str,
    api_key_id: str,
    span_type: str = "span",
    level: str = "DEFAULT",
    llm: dict[str, object] | None = None,
    promoted: Sequence[str] = (),
) -> dict[str, object]:
    """The whole spans row the store should hold for ``span`` (cost columns and ingested_at
    are checked separately)."""
    ctx = span.context
    assert ctx is not None and span.start_time is not None and span.end_time is not None
    parent = span.parent
    attrs = flat_map(span.attributes)
    for key in promoted:
        attrs.pop(key)
    status_code = {StatusCode.UNSET: "unset", StatusCode.OK: "ok", StatusCode.ERROR: "error"}
    row: dict[str, object] = {
        "project_id": project_id,
        "environment": environment,
        "retention_days": PROJECT_RETENTION_DAYS,
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "parent_span_id": format(parent.span_id, "016x") if parent else "",
        "trace_state": "",
        "name": span.name,
        "kind": span.kind.name.lower(),
        "service_name": span.resource.attributes["service.name"],
        "scope_name": span.instrumentation_scope.name if span.instrumentation_scope else "",
        "scope_version": (span.instrumentation_scope.version or "")
        if span.instrumentation_scope
        else "",
        "start_time": span.start_time,
        "end_time": span.end_time,
        "duration_ns": span.end_time - span.start_time,
        "status_code": status_code[span.status.status_code],
        "status_message": span.status.description or "",
        "span_type": span_type,
        "level": level,
        "attributes": attrs,
        "resource_attributes": flat_map(span.resource.attributes),
        "event_times": [e.timestamp for e in span.events],
        "event_names": [e.name for e in span.events],
        "event_attributes": [flat_map(e.attributes) for e in span.events],
        "link_trace_ids": [format(link.context.trace_id, "032x") for link in span.links],
        "link_span_ids": [format(link.context.span_id, "016x") for link in span.links],
        "provider": "",
        "model": "",
        "operation": "",
        "input_tokens": 0,
        "output_tokens": 0,
        "total_tokens": 0,
        "cached_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "ttft_ms": None,
        "input": "",
        "output": "",
        "user_id": "",
        "session_id": "",
        "tags": [],
        "api_key_id": api_key_id,
        "release": "",
        "version": "",
    }
    row.update(llm or {})
    return row


def without_volatile(row: dict[str, Any]) -> dict[str, Any]:
    """The row minus the columns a later pricing step may fill (checked on their own)."""
    return {
        k: v
        for k, v in row.items()
        if k
        not in ("cost_usd", "input_cost_usd", "output_cost_usd", "price_version", "ingested_at")
    }


def hex_ids(doc: Any) -> Any:
    """protobuf's JSON mapping writes ``bytes`` as base64; OTLP/JSON wants trace and span
    ids as lowercase hex. Rewrite every id field of a ``MessageToDict`` result."""
    if isinstance(doc, dict):
        out = {}
        for key, value in doc.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                out[key] = base64.b64decode(value).hex()
            else:
                out[key] = hex_ids(value)
        return out
    if isinstance(doc, list):
        return [hex_ids(v) for v in doc]
    return doc


# --------------------------------------------------------------------------- the shared run


@dataclass
class Run:
    server: Server
    project_a: str
    key_a_id: str
    project_b: str
    key_b_id: str
    started_ms: int
    stopped_ms: int
    sdk_problems: list[str] = field(default_factory=list)
    trace_exporter: RecordingSpanExporter | None = None
    gzip_exporter: RecordingSpanExporter | None = None
    gzip_session: RecordingSession | None = None
    prod_exporter: RecordingSpanExporter | None = None
    metric_exporter: RecordingMetricExporter | None = None
    log_exporter: RecordingLogExporter | None = None
    log_span: ReadableSpan | None = None
    json_spans: list[ReadableSpan] = field(default_factory=list)
    json_reply: httpx.Response | None = None
    json_bad_reply: httpx.Response | None = None
    json_logs_reply: httpx.Response | None = None
    json_metrics_reply: httpx.Response | None = None
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def rows(self, table: str, **match: object) -> list[dict[str, Any]]:
        return [r for r in self.tables[table] if all(r.get(k) == v for k, v in match.items())]


def _management(server: Server) -> tuple[str, str, str, str]:
    """(bootstrap key id, project B id, key bound to B's prod environment, its id)."""
    with httpx.Client(base_url=server.base_url, timeout=15) as http:
        login = http.post(
            "/api/v1/auth/login",
            json={"email": "admin@example.com", "password": server.first_run["admin_password"]},
        )
        assert login.status_code == 200, login.text
        http.cookies.clear()
        auth = {"Authorization": f"Bearer {login.json()['data']['token']}"}
        project_a = server.first_run["project_id"]
        keys = http.get(f"/api/v1/projects/{project_a}/api-keys", headers=auth).json()["data"]
        assert len(keys) == 1
        orgs = http.get("/api/v1/organizations", headers=auth).json()["data"]
        project_b = http.post(
            f"/api/v1/organizations/{orgs[0]['id']}/projects",
            json={"name": f"OTel other {RUN}"},
            headers=auth,
        )
        assert project_b.status_code == 201, project_b.text
        pid_b = project_b.json()["data"]["id"]
        env = http.post(
            f"/api/v1/projects/{pid_b}/environments", json={"name": "prod"}, headers=auth
        )
        assert env.status_code == 201, env.text
        key = http.post(
            f"/api/v1/projects/{pid_b}/api-keys",
            json={"name": "prod ingest", "environment": "prod"},
            headers=auth,
        )
        assert key.status_code == 201, key.text
        assert key.json()["data"]["environment"] == "prod"
        return keys[0]["id"], pid_b, key.json()["data"]["key"], key.json()["data"]["id"]


def _resource(service: str, **extra: str) -> Resource:
    return Resource.create(
        {
            "service.name": service,
            "service.namespace": "e2e",
            "service.version": "1.4.2",
            "service.instance.id": f"{service}-instance",
            "deployment.environment.name": "staging",
            **extra,
        }
    )


def _export_genai_trace(run: Run, base_url: str, key: str) -> None:
    """Protobuf traces: a GenAI client span, its failing child, events."""
    exporter = RecordingSpanExporter(endpoint=f"{base_url}/v1/traces", headers={"X-API-Key": key})
    provider = TracerProvider(resource=_resource(SVC_TRACES))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("e2e.genai.app", "0.3.0")
    try:
        with tracer.start_as_current_span(
            "chat gpt-4o-mini",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.request.temperature": 0.2,
                "gen_ai.request.max_tokens": 256,
                "gen_ai.response.finish_reasons": ("stop",),
                "gen_ai.usage.input_tokens": 42,
                "gen_ai.usage.output_tokens": 7,
                "gen_ai.input.messages": INPUT_MESSAGES,
                "gen_ai.output.messages": OUTPUT_MESSAGES,
                "user.id": "user-42",
                "session.id": "sess-7",
            },
        ) as root:
            root.add_event("gen_ai.choice", {"index": 0, "finish_reason": "stop"})
            with tracer.start_as_current_span(
                "retrieve docs", attributes={"db.system": "vector", "retrieval.top_k": 3}
            ) as child:
                child.add_event("retry", {"attempt": 2, "backoff.ms": 12.5})
                child.set_status(Status(StatusCode.ERROR, "index unavailable"))
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()
    run.trace_exporter = exporter


def _export_gzip_trace(run: Run, base_url: str, key: str) -> None:
    session = RecordingSession()
    exporter = RecordingSpanExporter(
        endpoint=f"{base_url}/v1/traces",
        headers={"X-API-Key": key},
        compression=Compression.Gzip,
        session=session,
    )
    provider = TracerProvider(resource=_resource(SVC_GZIP))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        tracer = provider.get_tracer("e2e.gzip")
        with tracer.start_as_current_span("compressed", kind=SpanKind.SERVER) as span:
            span.set_attribute("payload", "x" * 2000)
            span.set_status(Status(StatusCode.OK))
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()
    run.gzip_exporter, run.gzip_session = exporter, session


def _export_with_prod_key(run: Run, base_url: str, key: str) -> None:
    exporter = RecordingSpanExporter(endpoint=f"{base_url}/v1/traces", headers={"X-API-Key": key})
    provider = TracerProvider(resource=_resource(SVC_PROD))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        tracer = provider.get_tracer("e2e.prod")
        with tracer.start_as_current_span("handle order", attributes={"order.id": "o-9"}):
            pass
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()
    run.prod_exporter = exporter


def _post_json_traces(run: Run, base_url: str, key: str) -> None:
    """OTLP/JSON built from the SDK's own protobuf encoder, ids rewritten to hex."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=_resource(SVC_JSON, **{"deployment.environment": "ignored"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("e2e.json", "2.0.0")
    try:
        with tracer.start_as_current_span("other") as other:
            other_ctx = other.get_span_context()
        parent = tracer.start_as_current_span(
            "json parent", kind=SpanKind.SERVER, attributes={"http.route": "/ask"}
        )
        child_span = tracer.start_as_current_span(
            "json child",
            kind=SpanKind.PRODUCER,
            links=[Link(other_ctx, {"link.kind": "follows"})],
            attributes={"flag": True, "ratio": 0.5, "sizes": (1, 2, 3)},
        )
        with parent, child_span as child:
            child.add_event("queued", {"depth": 4})
        run.json_spans = list(memory.get_finished_spans())
    finally:
        provider.shutdown()

    message = encode_spans(run.json_spans)
    as_dict = json_format.MessageToDict(message, use_integers_for_enums=True)
    first = as_dict["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    # MessageToDict is protobuf's JSON mapping: ids come out as base64, not OTLP's hex.
    assert len(first["traceId"]) == 24 and first["traceId"].endswith("==")
    doc = hex_ids(as_dict)
    assert len(doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]) == 32
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    run.json_reply = httpx.post(
        f"{base_url}/v1/traces", content=json.dumps(doc), headers=headers, timeout=15
    )
    # The same body with one span given an all-zero trace id: that span alone is refused.
    bad = json.loads(json.dumps(doc))
    spans = bad["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["traceId"] = "0" * 32
    bad["resourceSpans"][0]["scopeSpans"][0]["spans"] = spans[:1]
    run.json_bad_reply = httpx.post(
        f"{base_url}/v1/traces", content=json.dumps(bad), headers=headers, timeout=15
    )


def _export_metrics(run: Run, base_url: str, key: str) -> None:
    exporter = RecordingMetricExporter(
        endpoint=f"{base_url}/v1/metrics", headers={"X-API-Key": key}
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        resource=_resource(SVC_METRICS),
        metric_readers=[reader],
        views=[
            View(
                instrument_name="e2e.payload.size",
                aggregation=ExponentialBucketHistogramAggregation(),
            ),
        ],
    )
    try:
        meter = provider.get_meter("e2e.meter", "1.0.0")
        requests_counter = meter.create_counter(
            "e2e.requests", unit="{request}", description="Requests served."
        )
        requests_counter.add(3, {"route": "/chat", "http.method": "POST"})
        requests_counter.add(2, {"route": "/chat", "http.method": "POST"})
        cpu = meter.create_counter("e2e.cpu.time", unit="s", description="CPU time.")
        cpu.add(1.5)
        queue = meter.create_up_down_counter("e2e.queue.depth", unit="{item}")
        queue.add(7, {"queue": "jobs"})
        queue.add(-3, {"queue": "jobs"})
        pool = meter.create_gauge("e2e.pool.size", unit="By")
        pool.set(1024, {"pool": "main"})

        def temperature(_: CallbackOptions) -> list[Observation]:
            return [Observation(21.5, {"room": "lab"})]

        meter.create_observable_gauge("e2e.temperature", [temperature], unit="Cel")
        latency = meter.create_histogram(
            "e2e.latency", unit="ms", explicit_bucket_boundaries_advisory=[10.0, 100.0, 1000.0]
        )
        for value in (3.0, 30.0, 300.0, 3000.0):
            latency.record(value, {"route": "/chat"})
        size = meter.create_histogram("e2e.payload.size", unit="By")
        for value in EXP_VALUES:
            size.record(value)
        assert provider.force_flush(10_000)
        time.sleep(0.02)  # the final collection below gets a later timestamp
    finally:
        provider.shutdown()  # one more (cumulative) collection is exported here
    run.metric_exporter = exporter


def _export_logs(run: Run, base_url: str, key: str) -> None:
    exporter = RecordingLogExporter(endpoint=f"{base_url}/v1/logs", headers={"X-API-Key": key})
    resource = _resource(SVC_LOGS)
    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(BatchLogRecordProcessor(exporter))
    traces = TracerProvider(resource=resource)
    memory = InMemorySpanExporter()
    traces.add_span_processor(SimpleSpanProcessor(memory))
    with warnings.catch_warnings():
        # The SDK's handler is deprecated in favour of opentelemetry-instrumentation-logging,
        # which is not a dependency here; it still ships and works the same.
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(level=logging.INFO, logger_provider=logs)
    std_logger = logging.getLogger(f"e2e.otel.checkout.{RUN}")
    std_logger.propagate = False
    std_logger.setLevel(logging.INFO)
    std_logger.addHandler(handler)
    try:
        with traces.get_tracer("e2e.logs").start_as_current_span("checkout"):
            std_logger.warning("cache miss for %s", "user-42", extra={"cache_key": "k1"})
        logs.get_logger("e2e.otel.events", "0.1").emit(
            event_name="checkout.completed",
            severity_number=SeverityNumber.INFO,
            body={"order": "o-1", "items": 3},
            attributes={"amount": 12.5},
        )
        assert logs.force_flush(10_000)
    finally:
        std_logger.removeHandler(handler)
        logs.shutdown()
        traces.shutdown()
    run.log_exporter = exporter
    run.log_span = memory.get_finished_spans()[0]


def _otlp_json(message: Any) -> str:
    return json.dumps(hex_ids(json_format.MessageToDict(message, use_integers_for_enums=True)))


def _post_json_logs_and_metrics(run: Run, base_url: str, key: str) -> None:
    """What the SDK exported to project A, re-sent as OTLP/JSON with project B's key."""
    assert run.log_exporter is not None and run.metric_exporter is not None
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    run.json_logs_reply = httpx.post(
        f"{base_url}/v1/logs",
        content=_otlp_json(encode_logs(run.log_exporter.records)),
        headers=headers,
        timeout=15,
    )
    run.json_metrics_reply = httpx.post(
        f"{base_url}/v1/metrics",
        content=_otlp_json(encode_metrics(run.metric_exporter.exports[0])),
        headers=headers,
        timeout=15,
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("otel")
    server = start_server(tmp / "data", tmp / "server.log")
    collect = _Collect()
    otel_logger = logging.getLogger("opentelemetry")
    otel_logger.addHandler(collect)
    try:
        key_a_id, project_b, key_b, key_b_id = _management(server)
        result = Run(
            server,
            server.first_run["project_id"],
            key_a_id,
            project_b,
            key_b_id,
            started_ms=int(time.time() * 1000),
            stopped_ms=0,
        )
        key_a = server.first_run["api_key"]
        _export_genai_trace(result, server.base_url, key_a)
        _export_gzip_trace(result, server.base_url, key_a)
        _post_json_traces(result, server.base_url, key_a)
        _export_with_prod_key(result, server.base_url, key_b)
        _export_metrics(result, server.base_url, key_a)
        _export_logs(result, server.base_url, key_a)
        _post_json_logs_and_metrics(result, server.base_url, key_b)
    finally:
        otel_logger.removeHandler(collect)
        server.stop()
    result.stopped_ms = int(time.time() * 1000)
    result.sdk_problems = [r.getMessage() for r in collect.records]
    result.tables = dump_store(
        server.data_dir,
        {
            "spans": SPANS_SQL,
            "trace_index": TRACE_INDEX_SQL,
            "series": SERIES_SQL,
            "series_final": SERIES_FINAL_SQL,
            "samples": SAMPLES_SQL,
            "logs": LOGS_SQL,
        },
    )
    return result


# --------------------------------------------------------------------------- tests


def test_sdk_exports_all_succeeded(run: Run) -> None:
    assert run.sdk_problems == []
    for exporter in (run.trace_exporter, run.gzip_exporter, run.prod_exporter):
        assert exporter is not None and exporter.results
        assert set(exporter.results) == {SpanExportResult.SUCCESS}
    assert run.metric_exporter is not None and len(run.metric_exporter.results) == 2
    assert set(run.metric_exporter.results) == {MetricExportResult.SUCCESS}
    assert run.log_exporter is not None and run.log_exporter.results
    assert set(run.log_exporter.results) == {LogRecordExportResult.SUCCESS}
    assert "Traceback" not in run.server.log()


def test_genai_trace_rows(run: Run) -> None:
    assert run.trace_exporter is not None
    child, root = run.trace_exporter.spans  # the child ends first
    assert child.parent is not None and child.parent.span_id == root.context.span_id
    rows = run.rows("spans", service_name=SVC_TRACES)
    assert [r["span_id"] for r in rows] == [
        format(root.context.span_id, "016x"),
        format(child.context.span_id, "016x"),
    ]
    root_row, child_row = rows
    common = {"project_id": run.project_a, "environment": "staging", "api_key_id": run.key_a_id}
    assert without_volatile(root_row) == span_row(
        root,
        **common,
        span_type="generation",
        promoted=("gen_ai.input.messages", "gen_ai.output.messages"),
        llm={
            "provider": "openai",
            "model": "gpt-4o-mini-2024-07-18",  # the response model wins over the request's
            "operation": "chat",
            "input_tokens": 42,
            "output_tokens": 7,
            "total_tokens": 49,
            "input": INPUT_MESSAGES,
            "output": OUTPUT_MESSAGES,
            "user_id": "user-42",
            "session_id": "sess-7",
        },
    )
    assert "gen_ai.input.messages" not in root_row["attributes"]
    assert "gen_ai.output.messages" not in root_row["attributes"]
    assert root_row["kind"] == "client" and root_row["parent_span_id"] == ""
    assert root_row["event_names"] == ["gen_ai.choice"]
    assert root_row["event_attributes"] == [{"index": "0", "finish_reason": "stop"}]
    assert root_row["resource_attributes"]["deployment.environment.name"] == "staging"

    assert without_volatile(child_row) == span_row(child, **common, level="ERROR")
    assert child_row["status_code"] == "error"
    assert child_row["status_message"] == "index unavailable"
    assert child_row["parent_span_id"] == root_row["span_id"]
    assert child_row["trace_id"] == root_row["trace_id"]
    assert child_row["event_attributes"] == [{"attempt": "2", "backoff.ms": "12.5"}]
    for row in rows:
        assert row["cost_usd"] >= 0 and (row["cost_usd"] == 0 or row["price_version"])
        assert run.started_ms - 1000 <= row["ingested_at"] <= run.stopped_ms

    assert run.rows("trace_index", trace_id=root_row["trace_id"]) == [
        {
            "project_id": run.project_a,
            "trace_id": root_row["trace_id"],
            "start_time": root.start_time,
            "end_time": root.end_time,
            "environments": ["staging"],
            "span_count": 2,
            "error_count": 1,
            "total_tokens": 49,
        }
    ]


def test_gzip_protobuf_export(run: Run) -> None:
    assert run.gzip_exporter is not None and run.gzip_session is not None
    headers, body = run.gzip_session.sent[0]
    assert headers["content-encoding"] == "gzip"
    assert headers["content-type"] == "application/x-protobuf"
    assert gzip.decompress(body)  # really a gzip body
    (span,) = run.gzip_exporter.spans
    (row,) = run.rows("spans", service_name=SVC_GZIP)
    assert without_volatile(row) == span_row(
        span, project_id=run.project_a, environment="staging", api_key_id=run.key_a_id
    )
    assert row["status_code"] == "ok" and row["kind"] == "server"
    assert row["attributes"]["payload"] == "x" * 2000


def test_otlp_json_traces(run: Run) -> None:
    reply = run.json_reply
    assert reply is not None
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    parsed = json_format.Parse(reply.text, ExportTraceServiceResponse())
    assert not parsed.HasField("partial_success")

    bad = run.json_bad_reply
    assert bad is not None and bad.status_code == 200, bad.text
    partial = json_format.Parse(bad.text, ExportTraceServiceResponse()).partial_success
    assert partial.rejected_spans == 1
    assert "trace_id" in partial.error_message

    other, child, parent = run.json_spans  # in the order they ended
    rows = {r["name"]: r for r in run.rows("spans", service_name=SVC_JSON)}
    assert sorted(rows) == ["json child", "json parent", "other"]
    common = {"project_id": run.project_a, "environment": "staging", "api_key_id": run.key_a_id}
    for span in (other, child, parent):
        assert without_volatile(rows[span.name]) == span_row(span, **common)
    child_row = rows["json child"]
    assert child_row["parent_span_id"] == rows["json parent"]["span_id"]
    assert child_row["kind"] == "producer"
    assert child_row["link_trace_ids"] == [rows["other"]["trace_id"]]
    assert child_row["link_span_ids"] == [rows["other"]["span_id"]]
    assert child_row["attributes"] == {"flag": "true", "ratio": "0.5", "sizes": "[1,2,3]"}
    assert child_row["event_attributes"] == [{"depth": "4"}]
    # deployment.environment.name wins over the older deployment.environment
    assert {r["environment"] for r in rows.values()} == {"staging"}


def test_environment_bound_key_overrides_resource(run: Run) -> None:
    assert run.prod_exporter is not None
    (span,) = run.prod_exporter.spans
    (row,) = run.rows("spans", service_name=SVC_PROD)
    assert without_volatile(row) == span_row(
        span, project_id=run.project_b, environment="prod", api_key_id=run.key_b_id
    )
    assert row["resource_attributes"]["deployment.environment.name"] == "staging"
    assert run.rows("trace_index", trace_id=row["trace_id"]) == [
        {
            "project_id": run.project_b,
            "trace_id": row["trace_id"],
            "start_time": span.start_time,
            "end_time": span.end_time,
            "environments": ["prod"],
            "span_count": 1,
            "error_count": 0,
            "total_tokens": 0,
        }
    ]


def test_projects_are_isolated(run: Run) -> None:
    mine = {SVC_TRACES, SVC_GZIP, SVC_JSON}
    for row in run.tables["spans"]:
        expected = run.project_b if row["service_name"] == SVC_PROD else run.project_a
        assert row["project_id"] == expected, row["service_name"]
    assert {r["service_name"] for r in run.rows("spans", project_id=run.project_b)} == {SVC_PROD}
    assert {r["service_name"] for r in run.rows("spans", project_id=run.project_a)} == mine
    # Project B got the logs and metrics only through its own key (the OTLP/JSON re-send),
    # in its key's environment; nothing of B's is in A and the other way round.
    assert {r["project_id"] for r in run.tables["logs"]} == {run.project_a, run.project_b}
    for table in ("series", "samples", "logs"):
        envs = {(r["project_id"], r["environment"]) for r in run.tables[table]}
        assert envs == {(run.project_a, "staging"), (run.project_b, "prod")}, table


def _strip_tenant(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("project_id", "environment", "ingested_at")}


def test_otlp_json_logs_and_metrics(run: Run) -> None:
    for reply, response_type in (
        (run.json_logs_reply, ExportLogsServiceResponse),
        (run.json_metrics_reply, ExportMetricsServiceResponse),
    ):
        assert reply is not None and reply.status_code == 200, reply and reply.text
        assert reply.headers["content-type"].startswith("application/json")
        assert not json_format.Parse(reply.text, response_type()).HasField("partial_success")

    logs_a = run.rows("logs", project_id=run.project_a)
    logs_b = run.rows("logs", project_id=run.project_b)
    assert {r["environment"] for r in logs_b} == {"prod"}
    assert [_strip_tenant(r) for r in logs_b] == [_strip_tenant(r) for r in logs_a]
    assert logs_b[0]["trace_id"] and logs_b[0]["trace_id"] == logs_a[0]["trace_id"]

    first_ms = min(s["timestamp"] for s in run.rows("samples", project_id=run.project_a))
    samples_a = [
        _strip_tenant(s)
        for s in run.rows("samples", project_id=run.project_a)
        if s["timestamp"] == first_ms
    ]
    samples_b = [_strip_tenant(s) for s in run.rows("samples", project_id=run.project_b)]
    assert sorted(samples_b, key=repr) == sorted(samples_a, key=repr)
    assert len(samples_b) > 20


def _metric_labels(**labels: str) -> dict[str, str]:
    """job (namespace/name) and instance from the resource, the meter's scope, the point's."""
    return {
        "job": f"e2e/{SVC_METRICS}",
        "instance": f"{SVC_METRICS}-instance",
        "otel_scope_name": "e2e.meter",
        "otel_scope_version": "1.0.0",
        **labels,
    }


def test_metric_series_rows(run: Run) -> None:
    exporter = run.metric_exporter
    assert exporter is not None
    export_ms = sorted(
        {
            point.time_unix_nano // 1_000_000
            for data in exporter.exports
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
            for point in metric.data.data_points
        }
    )
    assert len(export_ms) == 2  # force_flush, then shutdown's final collection

    def series(name: str, labels: dict[str, str]) -> dict[str, Any]:
        found = [
            s
            for s in run.rows("series", project_id=run.project_a)
            if s["metric_name"] == name and s["labels"] == labels
        ]
        assert len(found) == 1, (
            name,
            labels,
            [s for s in run.rows("series", project_id=run.project_a) if s["metric_name"] == name],
        )
        return found[0]

    def samples(row: dict[str, Any]) -> list[tuple[int, float]]:
        return [
            (s["timestamp"], s["value"])
            for s in run.rows("samples", project_id=run.project_a)
            if s["series_id"] == row["series_id"] and s["metric_name"] == row["metric_name"]
        ]

    requests_labels = _metric_labels(route="/chat", http_method="POST")
    cases: list[tuple[str, dict[str, str], str, str, str, float]] = [
        ("e2e_requests_total", requests_labels, "counter", "{request}", "Requests served.", 5.0),
        ("e2e_cpu_time_seconds_total", _metric_labels(), "counter", "s", "CPU time.", 1.5),
        ("e2e_queue_depth", _metric_labels(queue="jobs"), "gauge", "{item}", "", 4.0),
        ("e2e_pool_size_bytes", _metric_labels(pool="main"), "gauge", "By", "", 1024.0),
        ("e2e_temperature_celsius", _metric_labels(room="lab"), "gauge", "Cel", "", 21.5),
    ]
    for name, labels, kind, unit, description, value in cases:
        row = series(name, labels)
        assert row | {"series_id": None} == {
            "project_id": run.project_a,
            "environment": "staging",
            "metric_name": name,
            "series_id": None,
            "labels": labels,
            "metric_type": kind,
            "unit": unit,
            "description": description,
            "first_seen_ms": row["first_seen_ms"],  # see test_series_first_seen_survives_folding
            "last_seen_ms": export_ms[1],
        }, name
        assert row["first_seen_ms"] in export_ms
        assert samples(row) == [(export_ms[0], value), (export_ms[1], value)], name
    for sample in run.rows("samples", project_id=run.project_a):
        assert sample["environment"] == "staging"
        assert sample["timestamp"] in export_ms


def test_explicit_histogram_rows(run: Run) -> None:
    rows = [
        s
        for s in run.rows("series", project_id=run.project_a)
        if s["metric_name"].startswith("e2e_latency")
    ]
    by_key = {(s["metric_name"], s["labels"].get("le")): s for s in rows}
    expected_buckets = {"10": 1.0, "100": 2.0, "1000": 3.0, "+Inf": 4.0}
    assert sorted(by_key) == sorted(
        [("e2e_latency_milliseconds_bucket", le) for le in expected_buckets]
        + [("e2e_latency_milliseconds_sum", None), ("e2e_latency_milliseconds_count", None)]
    )
    labels = _metric_labels(route="/chat")
    for (name, le), row in by_key.items():
        assert row["labels"] == (labels | {"le": le} if le else labels)
        assert row["metric_type"] == "histogram" and row["unit"] == "ms"
        values = {
            s["value"]
            for s in run.rows("samples", project_id=run.project_a)
            if s["series_id"] == row["series_id"] and s["metric_name"] == name
        }
        if le is not None:
            assert values == {expected_buckets[le]}, le
        elif name.endswith("_sum"):
            assert values == {3333.0}
        else:
            assert values == {4.0}


def test_exponential_histogram_rows(run: Run) -> None:
    base = "e2e_payload_size_bytes"
    rows = [
        s for s in run.rows("series", project_id=run.project_a) if s["metric_name"].startswith(base)
    ]
    names = {s["metric_name"] for s in rows}
    assert names == {f"{base}_bucket", f"{base}_sum", f"{base}_count"}

    def value_of(row: dict[str, Any]) -> float:
        values = {
            s["value"]
            for s in run.rows("samples", project_id=run.project_a)
            if s["series_id"] == row["series_id"] and s["metric_name"] == row["metric_name"]
        }
        assert len(values) == 1, values
        return values.pop()

    for row in rows:
        assert row["metric_type"] == "histogram" and row["unit"] == "By"
        assert {k: v for k, v in row["labels"].items() if k != "le"} == _metric_labels()
    (sum_row,) = [r for r in rows if r["metric_name"] == f"{base}_sum"]
    (count_row,) = [r for r in rows if r["metric_name"] == f"{base}_count"]
    assert value_of(sum_row) == sum(EXP_VALUES)
    assert value_of(count_row) == len(EXP_VALUES)
    buckets = {r["labels"]["le"]: value_of(r) for r in rows if r["metric_name"] == f"{base}_bucket"}
    assert buckets.pop("+Inf") == len(EXP_VALUES)
    bounds = sorted(float(le) for le in buckets)
    assert bounds, buckets
    for le_text, cumulative in buckets.items():
        le = float(le_text)
        # Every finite bound is an exponential bucket edge at scale <= 3 (the server's cap):
        # 2 ** (k / 8) for an integer k (or the zero bucket's threshold, 0).
        if le > 0:
            k = math.log2(le) * 8
            assert abs(k - round(k)) < 1e-6, le_text
        # Buckets are upper-inclusive and cumulative: the count at `le` is #values <= le.
        assert cumulative == sum(1 for v in EXP_VALUES if v <= le), le_text
    ratios = [b / a for a, b in itertools.pairwise(bounds) if a > 0]
    assert all(r >= 2 ** (1 / 8) - 1e-9 for r in ratios)


def test_target_info_carries_the_resource(run: Run) -> None:
    rows = [
        s for s in run.rows("series", project_id=run.project_a) if s["metric_name"] == "target_info"
    ]
    assert len(rows) == 1
    labels = rows[0]["labels"]
    assert labels["job"] == f"e2e/{SVC_METRICS}"
    assert labels["instance"] == f"{SVC_METRICS}-instance"
    assert labels["deployment_environment_name"] == "staging"
    assert labels["service_version"] == "1.4.2"
    assert labels["telemetry_sdk_language"] == "python"
    assert "service_name" not in labels
    assert rows[0]["environment"] == "staging" and rows[0]["metric_type"] == "gauge"


def test_log_rows(run: Run) -> None:
    exporter = run.log_exporter
    assert exporter is not None and run.log_span is not None
    warning, event = sorted(
        exporter.records, key=lambda r: r.log_record.timestamp or r.log_record.observed_timestamp
    )
    rows = run.rows("logs", service_name=SVC_LOGS, project_id=run.project_a)
    assert len(rows) == 2
    warn_row, event_row = rows
    resource = flat_map(_resource(SVC_LOGS).attributes)
    resource.pop("service.instance.id", None)
    span_ctx = run.log_span.context

    w = warning.log_record
    expected_attrs = flat_map(w.attributes)
    assert expected_attrs["cache_key"] == "k1" and "code.function.name" in expected_attrs
    assert w.trace_id == span_ctx.trace_id and int(w.trace_flags or 0) & 1  # sampled
    assert without_volatile(warn_row) == {
        "project_id": run.project_a,
        "environment": "staging",
        "retention_days": PROJECT_RETENTION_DAYS,
        "timestamp": w.timestamp,
        "observed_timestamp": w.observed_timestamp,
        "trace_id": format(span_ctx.trace_id, "032x"),
        "span_id": format(span_ctx.span_id, "016x"),
        "trace_flags": int(w.trace_flags or 0),
        "severity_text": "WARN",
        "severity_number": 13,
        "service_name": SVC_LOGS,
        "scope_name": f"e2e.otel.checkout.{RUN}",
        "body": "cache miss for user-42",
        "attributes": expected_attrs,
        "resource_attributes": flat_map(warning.resource.attributes),
    }

    e = event.log_record
    assert without_volatile(event_row) == {
        "project_id": run.project_a,
        "environment": "staging",
        "retention_days": PROJECT_RETENTION_DAYS,
        "timestamp": e.timestamp or e.observed_timestamp,
        "observed_timestamp": e.observed_timestamp,
        "trace_id": "",
        "span_id": "",
        "trace_flags": 0,
        "severity_text": "INFO",  # derived from the severity number
        "severity_number": 9,
        "service_name": SVC_LOGS,
        "scope_name": "e2e.otel.events",
        "body": '{"order":"o-1","items":3}',
        "attributes": {"amount": "12.5", "event.name": "checkout.completed"},
        "resource_attributes": flat_map(event.resource.attributes),
    }
    for row in rows:
        assert run.started_ms - 1000 <= row["ingested_at"] <= run.stopped_ms
    assert resource.items() <= warn_row["resource_attributes"].items()


@pytest.mark.xfail(
    strict=True,
    reason="series is ReplacingMergeTree(last_seen): folding two upserts of a series keeps "
    "the later row whole, so first_seen becomes the first sample of the latest request "
    "(migrations/0003_metrics.sql, ingest/series.py)",
)
def test_series_first_seen_survives_folding(run: Run) -> None:
    """Two exports of the same series: once the upserts are folded (FINAL forces what a
    background merge or optimize_on_insert does), first_seen must still be the first sample."""
    first_sample = {}
    for sample in run.rows("samples", project_id=run.project_a):
        key = (sample["metric_name"], sample["series_id"])
        first_sample[key] = min(first_sample.get(key, sample["timestamp"]), sample["timestamp"])
    folded = {
        (r["metric_name"], r["series_id"]): r["first_seen_ms"]
        for r in run.rows("series_final", project_id=run.project_a)
    }
    key = next(k for k in folded if k[0] == "e2e_requests_total")
    assert folded[key] == first_sample[key]
