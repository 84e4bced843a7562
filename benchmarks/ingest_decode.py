"""Ingest decode throughput: OTLP protobuf/JSON traces → span rows, remote_write → samples.

Realistic LLM spans: 13 attributes (GenAI + brokle SDK), a ~1 KB prompt, a short completion,
built with the OpenTelemetry SDK and encoded by its own OTLP encoder; plus plain HTTP server
spans (8 short attributes) and a Prometheus remote_write body. Reports items/s on one core
(median and best of the rounds, in thread CPU time so a shared machine skews less)
and the ratio of full decode to protobuf parse only — the cost of flattening attributes into
Python rows, the number to watch. The garbage collector stays on, as in the server.

Run through the harness: ``python -m benchmarks ingest_decode [--quick]`` (results in
``benchmarks/results/``), or alone with options:
``.venv/bin/python benchmarks/ingest_decode.py [--spans N] [--rounds R] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from brokle_server.core.types import ProjectScope
from brokle_server.ingest.otlp_traces import decode_traces_json, decode_traces_protobuf
from brokle_server.ingest.remote_write import decode_remote_write, write_request_class

PROMPT = "You are a helpful assistant. " * 35  # ~1 KB


def build_http_request(n_spans: int) -> bytes:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "web"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("opentelemetry.instrumentation.asgi", "0.50b0")
    for i in range(n_spans):
        with tracer.start_as_current_span("GET /items/{id}") as span:
            span.set_attributes(
                {
                    "http.request.method": "GET",
                    "http.route": "/items/{id}",
                    "url.path": f"/items/{i}",
                    "url.scheme": "https",
                    "http.response.status_code": 200,
                    "server.address": "api.example.com",
                    "client.address": "10.0.0.1",
                    "user_agent.original": "curl/8.5.0",
                }
            )
    return bytes(encode_spans(exporter.get_finished_spans()).SerializeToString())


def build_remote_write(n_series: int, now_ms: int) -> bytes:
    cls = write_request_class()
    request = cls()
    for i in range(n_series):
        series = request.timeseries.add()
        for name, value in (
            ("__name__", "http_requests_total"),
            ("job", "api"),
            ("instance", f"10.0.0.{i % 250}:9090"),
            ("code", "200"),
            ("route", f"/r{i}"),
        ):
            series.labels.add(name=name, value=value)
        series.samples.add(value=float(i), timestamp=now_ms)
    return bytes(request.SerializeToString())


def build_request(n_spans: int) -> bytes:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "bench-app", "brokle.release": "v1"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("brokle", "0.4.0")
    for i in range(n_spans):
        with tracer.start_as_current_span("chat gpt-4o-mini") as span:
            span.set_attributes(
                {
                    "brokle.span.type": "generation",
                    "brokle.environment": "production",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                    "gen_ai.request.temperature": 0.7,
                    "gen_ai.usage.input_tokens": 250 + i % 7,
                    "gen_ai.usage.output_tokens": 40,
                    "user.id": f"user-{i % 50}",
                    "session.id": f"session-{i % 20}",
                    "gen_ai.input.messages": json.dumps([{"role": "user", "content": PROMPT}]),
                    "gen_ai.output.messages": '[{"role":"assistant","content":"Sure."}]',
                }
            )
    return bytes(encode_spans(exporter.get_finished_spans()).SerializeToString())


def to_otlp_json(body: bytes) -> bytes:
    """The OTLP/JSON spec form: protobuf's JSON mapping with hex ids and integer enums."""
    doc = MessageToDict(ExportTraceServiceRequest.FromString(body), use_integers_for_enums=True)
    for resource_spans in doc.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = _b64_to_hex(span[key])
    return orjson.dumps(doc)


def _b64_to_hex(value: str) -> str:
    import base64

    return base64.b64decode(value).hex()


def measure(fn: Callable[[], object], rounds: int) -> list[float]:
    fn()  # warm up
    times = []
    for _ in range(rounds):
        # CPU time of this thread, not wall time: other processes on a shared machine
        # would otherwise dominate the spread.
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return times


def run(n_spans: int = 2000, rounds: int = 15) -> dict[str, object]:
    body = build_request(n_spans)
    json_body = to_otlp_json(body)
    http_body = build_http_request(n_spans)
    scope = ProjectScope(uuid.uuid4(), uuid.uuid4())
    now = datetime.now(UTC)
    rw_body = build_remote_write(n_spans, int(now.timestamp() * 1000))
    cases: dict[str, Callable[[], object]] = {
        "llm_protobuf_parse_only": lambda: ExportTraceServiceRequest.FromString(body),
        "llm_protobuf_decode": lambda: decode_traces_protobuf(body, scope, now),
        "llm_json_decode": lambda: decode_traces_json(json_body, scope, now),
        "http_protobuf_parse_only": lambda: ExportTraceServiceRequest.FromString(http_body),
        "http_protobuf_decode": lambda: decode_traces_protobuf(http_body, scope, now),
        "remote_write_decode": lambda: decode_remote_write(rw_body, scope, now),
    }
    assert len(decode_traces_protobuf(body, scope, now).rows) == n_spans
    assert len(decode_traces_json(json_body, scope, now).rows) == n_spans
    assert len(decode_remote_write(rw_body, scope, now).samples) == n_spans
    results: dict[str, object] = {
        "items_per_request": n_spans,
        "llm_protobuf_bytes_per_span": len(body) // n_spans,
        "llm_json_bytes_per_span": len(json_body) // n_spans,
    }
    best: dict[str, float] = {}
    for name, fn in cases.items():
        times = sorted(measure(fn, rounds))
        best[name] = times[0]
        results[name] = {
            "items_per_s_median": round(n_spans / statistics.median(times)),
            "items_per_s_best": round(n_spans / times[0]),
            "us_per_item_best": round(times[0] / n_spans * 1e6, 2),
        }
    results["llm_decode_over_parse_ratio"] = round(
        best["llm_protobuf_decode"] / best["llm_protobuf_parse_only"], 1
    )
    results["http_decode_over_parse_ratio"] = round(
        best["http_protobuf_decode"] / best["http_protobuf_parse_only"], 1
    )
    results["llm_json_over_protobuf_ratio"] = round(
        best["llm_json_decode"] / best["llm_protobuf_decode"], 2
    )
    return results


def bench(quick: bool) -> dict[str, object]:
    """Harness entry point (``python -m benchmarks``): fewer spans and rounds with ``quick``."""
    return run(500, 5) if quick else run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args(argv)
    results = run(args.spans, args.rounds)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json_path:
        with open(args.json_path, "w") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
