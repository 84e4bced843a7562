"""Batch writers: drain the durable queue into the store, acknowledging only after inserts.

Each loop leases up to ``batch_rows`` rows (or what arrived within ``flush_interval_ms``),
inserts one block per table through the injected sink with the block's dedup token, then
acks. A failing sink is retried with capped exponential backoff while the lease stays
queued: an outage of the store only lets the queue grow until ingest backpressures, and it
drains when the store returns. Only errors that say the data itself is bad count as
attempts; after ``max_attempts`` such failures (or reclaims from dead consumers) the lease
goes to the dead-letter area with its error instead of blocking the queue forever.

Counters live in :attr:`BatchWriter.stats` as plain attributes for a /metrics collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import ParamSpec, TypeVar

from brokle_server.errors import InvalidInput
from brokle_server.pipeline.queue import DurableQueue, Lease

logger = logging.getLogger(__name__)

Sink = Callable[[str, tuple[str, ...], list[tuple[object, ...]], str], Awaitable[None]]
"""``async def sink(table, columns, rows, dedup_token) -> None``: the store insert."""

Sleep = Callable[[float], Awaitable[None]]

P = ParamSpec("P")
T = TypeVar("T")


def is_transient(error: BaseException) -> bool:
    """Default classification of sink errors: retry forever unless the data is at fault.

    A store outage must never dead-letter acknowledged data, and the pipeline cannot know
    every driver's connection errors, so only errors that mean "these rows are wrong"
    (``InvalidInput``, ``ValueError``, ``TypeError``, ``LookupError``) count as attempts. A
    sink that detects rejected data should raise ``InvalidInput``.
    """
    return not isinstance(error, InvalidInput | ValueError | TypeError | LookupError)


@dataclass(slots=True)
class WriterStats:
    rows_written: int = 0
    blocks_written: int = 0
    leases_acked: int = 0
    sink_failures: int = 0
    queue_errors: int = 0
    dead_letters: int = 0
    dead_letter_rows: int = 0
    queue_messages: int = 0
    queue_bytes: int = 0
    queue_dead_letters: int = 0
    last_error: str = ""


class BatchWriter:
    """Run ``concurrency`` writer loops over ``queue``; see the module docstring."""

    def __init__(
        self,
        queue: DurableQueue,
        sink: Sink,
        *,
        batch_rows: int = 5000,
        flush_interval_ms: int = 200,
        max_attempts: int = 5,
        backoff_initial: float = 0.2,
        backoff_max: float = 30.0,
        concurrency: int = 1,
        transient: Callable[[BaseException], bool] = is_transient,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._queue = queue
        self._sink = sink
        self._batch_rows = batch_rows
        self._max_wait = flush_interval_ms / 1000
        self._max_attempts = max_attempts
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._concurrency = concurrency
        self._transient = transient
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._next_depth = 0.0
        self.stats = WriterStats()

    def metrics(self) -> dict[str, float | str]:
        """The counters as a flat mapping, for a /metrics collector."""
        return asdict(self.stats)

    @property
    def running(self) -> bool:
        return any(not task.done() for task in self._tasks)

    async def start(self) -> None:
        if self.running:
            return
        self._stopping = False
        # Report the real backlog from the start (a restart may begin with a replay), not the
        # zero the counters start at.
        await self._refresh_depth(force=True)
        self._tasks = [
            asyncio.create_task(self._run(), name=f"pipeline-writer-{index}")
            for index in range(self._concurrency)
        ]

    async def stop(self, grace: float = 10.0) -> None:
        """Drain what is queued, for at most ``grace`` seconds, then stop.

        Leases still unacknowledged at the deadline stay queued and replay on the next start
        with the same dedup tokens.
        """
        self._stopping = True
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=grace)
        for task in pending:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._refresh_depth(force=True)

    async def _run(self) -> None:
        delay = self._backoff_initial
        while True:
            try:
                lease = await self._queue.consume(self._batch_rows, self._max_wait)
            except Exception as exc:
                self._failed("consume", exc)
                await self._backoff(delay)
                delay = min(delay * 2, self._backoff_max)
                continue
            delay = self._backoff_initial
            if lease is None:
                await self._refresh_depth()
                if self._stopping:
                    return  # drained
                continue
            await self.deliver(lease)
            await self._refresh_depth()

    async def deliver(self, lease: Lease) -> None:
        """Insert every block of ``lease``, retrying, then ack (or dead-letter) it."""
        if lease.attempts >= self._max_attempts:
            reason = lease.last_error or "the writer handling it died"
            await self._dead_letter(lease, f"{lease.attempts} failed deliveries; last: {reason}")
            return
        blocks = lease.blocks()
        done = 0
        delay = self._backoff_initial
        while done < len(blocks):
            block = blocks[done]
            try:
                await self._sink(block.table, block.columns, block.rows, block.dedup_token)
            except Exception as exc:
                error = self._failed(f"insert into {block.table}", exc)
                if self._transient(exc):
                    if not await self._settle_call(self._queue.keepalive, lease):
                        logger.warning("pipeline: lease %s was taken over", lease.id)
                        return
                else:
                    attempts = await self._settle_call(self._queue.nack, lease, error)
                    if attempts >= self._max_attempts:
                        await self._dead_letter(lease, error)
                        return
                await self._backoff(delay)
                delay = min(delay * 2, self._backoff_max)
                await self._refresh_depth()  # the backlog keeps growing while the store is down
                continue
            done += 1
            self.stats.blocks_written += 1
            self.stats.rows_written += len(block.rows)
        # Blocks already inserted are not re-sent on a retry; after a crash the whole lease
        # replays and the store drops the repeated blocks by their tokens.
        await self._settle_call(self._queue.ack, lease)
        self.stats.leases_acked += 1

    async def _dead_letter(self, lease: Lease, error: str) -> None:
        await self._settle_call(self._queue.dead_letter, lease, error)
        self.stats.dead_letters += 1
        self.stats.dead_letter_rows += lease.rows

    async def _settle_call(
        self, call: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        # Queue bookkeeping must not lose the lease on a hiccup: retry until it works (or
        # stop() cancels us, and the lease replays later).
        delay = self._backoff_initial
        while True:
            try:
                return await call(*args, **kwargs)
            except Exception as exc:
                self._failed(getattr(call, "__name__", "queue call"), exc)
                await self._backoff(delay)
                delay = min(delay * 2, self._backoff_max)

    def _failed(self, what: str, exc: BaseException) -> str:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        if what.startswith("insert"):
            self.stats.sink_failures += 1
        else:
            self.stats.queue_errors += 1
        self.stats.last_error = error
        logger.warning("pipeline: %s failed: %s", what, error)
        return error

    async def _backoff(self, delay: float) -> None:
        await self._sleep(delay * self._rng.uniform(0.5, 1.0))

    async def _refresh_depth(self, force: bool = False) -> None:
        now = time.monotonic()
        if now < self._next_depth and not force:
            return
        self._next_depth = now + 1.0
        try:
            depth = await self._queue.depth()
        except Exception as exc:
            self._failed("depth", exc)
            return
        self.stats.queue_messages = depth.messages
        self.stats.queue_bytes = depth.bytes
        self.stats.queue_dead_letters = depth.dead_letters
