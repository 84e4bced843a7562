"""Ingest orchestration: read a bounded body, decode it (off the event loop when large),
make the rows durable, announce them. Routes call these and only shape replies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import structlog
from fastapi import Request
from starlette.requests import ClientDisconnect

from brokle_server.auth.principals import KeyPrincipal
from brokle_server.errors import InvalidInput, PayloadTooLarge
from brokle_server.ingest.common import Row
from brokle_server.ingest.series import MetricBatch
from brokle_server.pipeline.queue import Batch, DurableQueue
from brokle_server.realtime.pubsub import PubSub
from brokle_server.store.schema import (
    COLUMNS_BY_TABLE,
)

log = structlog.get_logger("brokle.ingest")
T = TypeVar("T")

# Bodies above this are decoded in a worker thread so one large export does not stall every
# other request on the event loop; small ones are cheaper to decode in place.
OFFLOAD_BYTES = 64 * 1024
ENVIRONMENT_HEADER = "x-brokle-environment"
_TRACE_IDS_PER_EVENT = 20
_TRACE_ID_INDEX = COLUMNS_BY_TABLE["spans"].index("trace_id")
_ENV_INDEX = COLUMNS_BY_TABLE["spans"].index("environment")


async def read_body(request: Request, limit: int) -> bytes:
    """The raw request body, refusing (413) past ``limit`` bytes without buffering more."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"Request body is over the {limit}-byte limit")
            chunks.append(chunk)
    except ClientDisconnect as exc:  # nobody is left to answer; not a server error
        raise InvalidInput(
            "The client disconnected before sending the whole body", code="client_disconnected"
        ) from exc
    return b"".join(chunks)


async def run_decoder(raw: bytes, decode: Callable[[], T]) -> T:
    if len(raw) > OFFLOAD_BYTES:
        return await asyncio.to_thread(decode)
    return decode()


def table_batch(table: str, rows: list[Row]) -> Batch:
    return Batch(table=table, columns=COLUMNS_BY_TABLE[table], rows=rows)


def metric_batches(metrics: MetricBatch) -> list[Batch]:
    batches = []
    if metrics.series:
        batches.append(table_batch("series", metrics.series))
    if metrics.samples:
        batches.append(table_batch("samples", metrics.samples))
    return batches


class IngestService:
    """Makes decoded rows durable and tells live subscribers about them."""

    def __init__(self, queue: DurableQueue, pubsub: PubSub) -> None:
        self._queue = queue
        self._pubsub = pubsub
        self.accepted_rows: dict[str, int] = {}

    async def submit(self, principal: KeyPrincipal, batches: list[Batch]) -> int:
        """Enqueue durably (raises Unavailable under backpressure); returns rows accepted."""
        batches = [b for b in batches if b.rows]
        if not batches:
            return 0
        await self._queue.enqueue(batches)
        total = 0
        for batch in batches:
            total += len(batch.rows)
            self.accepted_rows[batch.table] = self.accepted_rows.get(batch.table, 0) + len(
                batch.rows
            )
        spans = next((b.rows for b in batches if b.table == "spans"), None)
        if spans:
            await self._announce_spans(principal, spans)
        return total

    async def _announce_spans(
        self, principal: KeyPrincipal, rows: list[tuple[object, ...]]
    ) -> None:
        trace_ids = list(dict.fromkeys(str(r[_TRACE_ID_INDEX]) for r in rows))
        environments = sorted({str(r[_ENV_INDEX]) for r in rows})
        event = {
            "type": "span.ingested",
            "project_id": str(principal.project_id),
            "environments": environments,
            "spans": len(rows),
            "trace_ids": trace_ids[:_TRACE_IDS_PER_EVENT],
        }
        try:
            await self._pubsub.publish(f"project:{principal.project_id}", event)
        except Exception as exc:  # live updates are best effort; the data is already durable
            log.warning("span.ingested not published", error=str(exc))

    def counters(self) -> dict[str, float]:
        return {table: float(n) for table, n in self.accepted_rows.items()}
