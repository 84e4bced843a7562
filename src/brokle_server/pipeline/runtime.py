"""The telemetry runtime: the store, the durable queue and its writers, started and stopped
together by ``brokle serve`` (embedded) or ``brokle worker`` (at scale).

The server must start and keep acknowledging ingest while the store is unreachable, so the
store is connected (and migrated) by a background task that retries with backoff; until it is
ready the writers' sink raises a transient error and the writers keep the data queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

import structlog

from brokle_server.errors import InvalidInput
from brokle_server.pipeline.factory import build_queue, build_writer
from brokle_server.pipeline.queue import DurableQueue, QueueDepth
from brokle_server.pipeline.writer import BatchWriter
from brokle_server.settings import Settings
from brokle_server.store import migrate
from brokle_server.store.client import Store, StoreError, StoreUnavailable

log = structlog.get_logger("brokle.pipeline")

# ClickHouse error codes that mean "these rows can never be inserted": after the writer's
# attempts they go to the dead-letter queue instead of blocking the queue forever. Any other
# error (outage, memory, too many parts, a table not created yet) is retried indefinitely.
_DATA_ERROR_CODES = frozenset(
    {6, 16, 26, 27, 32, 38, 41, 43, 53, 62, 69, 70, 72, 117, 131, 190, 321, 349, 403, 691}
)
_CODE_RE = re.compile(r"Code:\s*(\d+)")


def is_data_error(error: StoreError) -> bool:
    match = _CODE_RE.search(str(error))
    return match is not None and int(match.group(1)) in _DATA_ERROR_CODES


class TelemetryRuntime:
    def __init__(self, settings: Settings, *, run_writers: bool = True) -> None:
        assert settings.clickhouse_url is not None, "settings must be resolved"
        self.settings = settings
        self.store = Store(settings.clickhouse_url, settings.store)
        self._queue: DurableQueue | None = None
        self.writer: BatchWriter | None = None
        self._run_writers = run_writers
        self._ready = asyncio.Event()
        self._connector: asyncio.Task[None] | None = None
        self.store_error: str | None = None

    @property
    def queue(self) -> DurableQueue:
        if self._queue is None:
            raise RuntimeError("the telemetry runtime has not been started")
        return self._queue

    @property
    def store_ready(self) -> bool:
        return self._ready.is_set()

    async def start(self) -> None:
        self._queue = await build_queue(
            self.settings.data_dir, self.settings.redis_url, self.settings.pipeline
        )
        self._connector = asyncio.create_task(self._connect_store(), name="brokle-store-connect")
        if self._run_writers:
            self.writer = build_writer(self.queue, self.sink, self.settings.pipeline)
            await self.writer.start()

    async def wait_store_ready(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._ready.wait()
        return self.store_ready

    async def _connect_store(self) -> None:
        delay = 0.5
        while True:
            try:
                await asyncio.to_thread(self.store.open)
                if self.settings.auto_migrate:
                    applied = await migrate.aup(self.store)
                    if applied:
                        log.info("store migrated", versions=[m.version for m in applied])
                self.store_error = None
                self._ready.set()
                log.info("store ready", url=self.store.location.redacted)
                return
            except StoreError as exc:
                self.store_error = str(exc)[:500]
                log.warning("store not reachable; retrying", error=self.store_error, retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def sink(
        self, table: str, columns: tuple[str, ...], rows: list[tuple[object, ...]], token: str
    ) -> None:
        if not self._ready.is_set():
            raise StoreUnavailable(
                f"store not ready: {self.store_error or 'connecting'}", retry_after=1.0
            )
        try:
            await self.store.ainsert(table, columns, rows, dedup_token=token)
        except StoreUnavailable:
            raise
        except StoreError as exc:
            if is_data_error(exc):
                raise InvalidInput(f"store rejected rows for {table}: {exc}") from exc
            raise

    async def ping_store(self) -> None:
        if not self._ready.is_set():
            raise StoreUnavailable(f"store not ready: {self.store_error or 'connecting'}")
        if not await self.store.aping():
            raise StoreUnavailable("store did not answer")

    async def depth(self) -> QueueDepth:
        return await self.queue.depth()

    def counters(self) -> dict[str, float]:
        if self.writer is None:
            return {}
        return {k: float(v) for k, v in self.writer.metrics().items() if isinstance(v, int | float)}

    async def stop(self, grace: float | None = None) -> None:
        if self.writer is not None:
            await self.writer.stop(
                grace if grace is not None else self.settings.pipeline.drain_timeout_s
            )
        if self._connector is not None:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector
        if self._queue is not None:
            await self._queue.close()
        await asyncio.to_thread(self.store.close)
