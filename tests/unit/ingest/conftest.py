"""Fixtures for the ingest decoder tests: a fixed clock, a tenant, and OTel SDK payloads."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from brokle_server.core.types import ProjectScope
from brokle_server.ingest.common import datetime_to_ns

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
NOW_NS = datetime_to_ns(NOW)
PROJECT_ID = uuid.UUID("0193a0f4-1111-7000-8000-000000000001")
ORG_ID = uuid.UUID("0193a0f4-2222-7000-8000-000000000002")


@pytest.fixture
def scope() -> ProjectScope:
    return ProjectScope(ORG_ID, PROJECT_ID, None, 30)


@pytest.fixture
def bound_scope() -> ProjectScope:
    return ProjectScope(ORG_ID, PROJECT_ID, "staging", 30)


class SpanRecorder:
    """An OTel SDK tracer whose finished spans can be encoded as a real OTLP request."""

    def __init__(self, resource: dict[str, str] | None = None) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create(resource or {}))
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer: Tracer = self.provider.get_tracer("test.scope", "1.2.3")

    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    def body(self) -> bytes:
        return bytes(encode_spans(self.spans()).SerializeToString())


@pytest.fixture
def recorder() -> Iterator[Callable[..., SpanRecorder]]:
    made: list[SpanRecorder] = []

    def make(resource: dict[str, str] | None = None) -> SpanRecorder:
        rec = SpanRecorder(resource)
        made.append(rec)
        return rec

    yield make
    for rec in made:
        rec.provider.shutdown()
