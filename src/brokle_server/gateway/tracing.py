"""Every gateway call becomes a span, recorded without ever slowing or failing the call.

Spans go into a bounded in-memory buffer; a background task drains it in batches into the
durable ingest queue. When the buffer is full the span is dropped and counted (exported in
``/metrics``), which is the only way a call's trace can be lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from brokle_server.auth.principals import KeyPrincipal
from brokle_server.pipeline.queue import Batch
from brokle_server.store.schema import SPAN_COLUMNS

log = structlog.get_logger("brokle.gateway.tracing")
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
_MAX_TEXT = 256 * 1024


def new_trace_id() -> str:
    return os.urandom(16).hex()


def new_span_id() -> str:
    return os.urandom(8).hex()


def parse_traceparent(header: str | None) -> tuple[str, str] | None:
    """(trace_id, parent span id) from a W3C ``traceparent``, or None when absent/invalid."""
    if not header:
        return None
    match = _TRACEPARENT.match(header.strip().lower())
    if match is None or match.group(1) == "0" * 32 or match.group(2) == "0" * 16:
        return None
    return match.group(1), match.group(2)


@dataclass(slots=True)
class CallRecord:
    """What the gateway knows about one call when it ends."""

    principal: KeyPrincipal
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    operation: str
    start_ns: int
    end_ns: int = 0
    provider: str = ""
    provider_kind: str = ""
    model: str = ""
    requested_model: str = ""
    route: str = ""
    attempts: int = 0
    cache: str = "bypass"
    streamed: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    input_cost_usd: float = 0.0
    output_cost_usd: float = 0.0
    price_version: str = ""
    ttft_ms: float | None = None
    status_code: str = "ok"
    status_message: str = ""
    http_status: int = 200
    user_id: str = ""
    session_id: str = ""
    input_text: str = ""
    output_text: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def row(self) -> tuple[object, ...]:
        scope = self.principal
        attributes = {
            "gen_ai.operation.name": self.operation,
            "gen_ai.request.model": self.requested_model,
            "brokle.gateway.provider": self.provider,
            "brokle.gateway.route": self.route,
            "brokle.gateway.attempts": str(self.attempts),
            "brokle.gateway.cache": self.cache,
            "brokle.gateway.stream": "true" if self.streamed else "false",
            "http.response.status_code": str(self.http_status),
            **self.extra,
        }
        values: dict[str, object] = {
            "project_id": str(scope.project_id),
            "environment": scope.environment or "default",
            "retention_days": scope.retention_days,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "trace_state": "",
            "name": self.name,
            "kind": "server",
            "service_name": "brokle-gateway",
            "scope_name": "brokle.gateway",
            "scope_version": "",
            "start_time": self.start_ns,
            "end_time": max(self.end_ns, self.start_ns),
            "duration_ns": max(0, self.end_ns - self.start_ns),
            "status_code": self.status_code,
            "status_message": self.status_message[:1000],
            "span_type": "embedding" if self.operation == "embeddings" else "generation",
            "level": "ERROR" if self.status_code == "error" else "DEFAULT",
            "attributes": attributes,
            "resource_attributes": {"service.name": "brokle-gateway"},
            "event_times": [],
            "event_names": [],
            "event_attributes": [],
            "link_trace_ids": [],
            "link_span_ids": [],
            "provider": self.provider_kind,
            "model": self.model,
            "operation": self.operation,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": self.cost_usd,
            "input_cost_usd": self.input_cost_usd,
            "output_cost_usd": self.output_cost_usd,
            "price_version": self.price_version,
            "ttft_ms": self.ttft_ms,
            "input": self.input_text[:_MAX_TEXT],
            "output": self.output_text[:_MAX_TEXT],
            "user_id": self.user_id[:200],
            "session_id": self.session_id[:200],
            "tags": [],
            "api_key_id": str(scope.key_id),
            "release": "",
            "version": "",
            "ingested_at": time.time_ns() // 1_000_000,
        }
        return tuple(values[c] for c in SPAN_COLUMNS)


def text_of(value: Any) -> str:
    """Compact JSON of a request/response part, for the span's input/output columns."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


class SpanRecorder:
    """Bounded buffer of gateway spans, drained into the ingest queue in the background."""

    def __init__(
        self,
        submit: Callable[[list[Batch]], Awaitable[object]],
        capacity: int,
        batch_size: int = 500,
        flush_interval: float = 0.2,
    ) -> None:
        self._submit = submit
        self._queue: asyncio.Queue[tuple[object, ...]] = asyncio.Queue(capacity)
        self._batch_size = batch_size
        self._interval = flush_interval
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.recorded = 0
        self.failed = 0
        self._stopping = False

    def record(self, call: CallRecord) -> None:
        try:
            self._queue.put_nowait(call.row())
        except asyncio.QueueFull:
            self.dropped += 1
        except Exception as exc:  # a malformed record must never fail the call
            self.dropped += 1
            log.warning("gateway span not recorded", error=str(exc))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="brokle-gateway-spans")

    async def _run(self) -> None:
        while not self._stopping:
            rows = [await self._queue.get()]
            deadline = time.monotonic() + self._interval
            while len(rows) < self._batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that races with the get completing, and stop() would then wait forever.
                try:
                    async with asyncio.timeout(remaining):
                        rows.append(await self._queue.get())
                except TimeoutError:
                    break
            await self._flush(rows)

    async def _flush(self, rows: list[tuple[object, ...]]) -> None:
        try:
            await self._submit([Batch(table="spans", columns=SPAN_COLUMNS, rows=rows)])
            self.recorded += len(rows)
        except Exception as exc:  # queue full or down: the spans are lost, the calls were not
            self.failed += len(rows)
            log.warning("gateway spans not enqueued", error=str(exc), spans=len(rows))

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        rows: list[tuple[object, ...]] = []
        while not self._queue.empty():
            rows.append(self._queue.get_nowait())
        if rows:
            await self._flush(rows)

    def counters(self) -> dict[str, float]:
        return {
            "recorded": float(self.recorded),
            "dropped": float(self.dropped),
            "failed": float(self.failed),
            "buffered": float(self._queue.qsize()),
        }
