"""The batch writer over a real spool with a fake store that fails on demand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from brokle_server.pipeline.queue import DurableQueue
from brokle_server.pipeline.spool import SpoolQueue, read_dead_letters
from brokle_server.pipeline.writer import BatchWriter

from .helpers import fill_until_full, message


class FakeStore:
    """Records blocks by dedup token and, like ClickHouse, drops a repeated token."""

    def __init__(self) -> None:
        self.blocks: dict[str, tuple[str, tuple[str, ...], list[tuple[object, ...]]]] = {}
        self.calls = 0
        self.repeats = 0
        self.fail_next = 0
        self.error: Exception = ConnectionError("store is down")
        self.down = False
        self.poison: int | None = None

    async def __call__(
        self, table: str, columns: tuple[str, ...], rows: list[tuple[object, ...]], token: str
    ) -> None:
        self.calls += 1
        if self.poison is not None and any(row[0] == self.poison for row in rows):
            raise ValueError(f"row {self.poison} does not fit the table")
        if self.down:
            raise self.error
        if self.fail_next:
            self.fail_next -= 1
            raise self.error
        if token in self.blocks:
            assert self.blocks[token] == (table, columns, rows), "same token, other rows"
            self.repeats += 1
            return
        self.blocks[token] = (table, columns, list(rows))

    def numbers(self) -> list[int]:
        return sorted(int(row[0]) for _, _, rows in self.blocks.values() for row in rows)  # type: ignore[call-overload]


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[SpoolQueue]:
    queue = await SpoolQueue.open(tmp_path / "spool", max_bytes=20_000)
    yield queue
    await queue.close()


def make_writer(queue: DurableQueue, store: FakeStore, **options: float) -> BatchWriter:
    defaults: dict[str, float] = {
        "batch_rows": 50,
        "flush_interval_ms": 5,
        "backoff_initial": 0.001,
        "backoff_max": 0.01,
        "max_attempts": 3,
    }
    return BatchWriter(queue, store, **{**defaults, **options})  # type: ignore[arg-type]


async def test_sink_failing_then_succeeding_loses_and_duplicates_nothing(
    spool: SpoolQueue,
) -> None:
    store = FakeStore()
    store.fail_next = 4
    writer = make_writer(spool, store)
    await asyncio.gather(*(spool.enqueue(message(n)) for n in range(120)))

    await writer.start()
    await until(lambda: len(store.numbers()) == 120)
    await writer.stop()

    assert store.numbers() == list(range(120))
    assert writer.stats.sink_failures == 4
    assert writer.stats.rows_written == 120
    assert writer.stats.dead_letters == 0
    assert all(len(rows) <= 50 for _, _, rows in store.blocks.values())
    assert (await spool.depth()).messages == 0


async def test_outage_backpressures_ingest_then_drains_everything(spool: SpoolQueue) -> None:
    store = FakeStore()
    store.down = True
    writer = make_writer(spool, store)
    await writer.start()
    accepted, _ = await fill_until_full(spool, rows=3)
    await asyncio.sleep(0.05)  # the writer keeps failing and keeps everything queued
    assert store.blocks == {}
    assert writer.stats.dead_letters == 0

    store.down = False
    await until(lambda: len(store.numbers()) == 3 * len(accepted))
    await spool.enqueue(message(10_000))
    await until(lambda: len(store.numbers()) == 3 * len(accepted) + 1)
    await writer.stop()

    assert sorted(set(store.numbers())) == [*accepted, 10_000]
    assert writer.stats.sink_failures > 0


async def test_rejected_rows_are_dead_lettered_after_max_attempts(
    spool: SpoolQueue, tmp_path: Path
) -> None:
    store = FakeStore()
    store.poison = 7
    writer = make_writer(spool, store, batch_rows=1)
    for n in range(10):
        await spool.enqueue(message(n))

    await writer.start()
    await until(lambda: writer.stats.dead_letters == 1 and len(store.numbers()) == 9)
    await writer.stop()

    assert store.numbers() == [0, 1, 2, 3, 4, 5, 6, 8, 9]
    [entry] = read_dead_letters(tmp_path / "spool")
    assert entry["messages"] == [message(7)]
    assert entry["error"] == "ValueError: row 7 does not fit the table"
    assert writer.stats.dead_letter_rows == 1
    assert writer.metrics()["queue_dead_letters"] == 1


async def test_stop_drains_what_is_queued(spool: SpoolQueue) -> None:
    store = FakeStore()
    for n in range(60):
        await spool.enqueue(message(n))
    writer = make_writer(spool, store, flush_interval_ms=50)

    await writer.start()
    await writer.stop(grace=5)

    assert store.numbers() == list(range(60))
    assert not writer.running


async def test_replay_after_crash_reuses_tokens_so_the_store_drops_the_repeat(
    tmp_path: Path,
) -> None:
    store = FakeStore()
    queue = await SpoolQueue.open(tmp_path / "spool")
    for n in range(30):
        await queue.enqueue(message(n, table="spans" if n % 2 else "logs"))
    # A writer inserts one lease and dies before acking it.
    lease = await queue.consume(20, 0.01)
    assert lease is not None
    for block in lease.blocks():
        await store(block.table, block.columns, block.rows, block.dedup_token)
    await queue.close()

    queue = await SpoolQueue.open(tmp_path / "spool")
    writer = make_writer(queue, store)
    await writer.start()
    await writer.stop(grace=5)
    await queue.close()

    assert store.numbers() == list(range(30))
    assert store.repeats == 2  # both blocks (logs, spans) of the replayed lease


async def test_stop_during_an_outage_keeps_the_lease_for_the_next_start(
    tmp_path: Path,
) -> None:
    store = FakeStore()
    store.down = True
    queue = await SpoolQueue.open(tmp_path / "spool")
    await queue.enqueue(message(1))
    writer = make_writer(queue, store)
    await writer.start()
    await until(lambda: store.calls >= 3)

    async with asyncio.timeout(2):
        await writer.stop(grace=0.05)
    await queue.close()

    store.down = False
    queue = await SpoolQueue.open(tmp_path / "spool")
    writer = make_writer(queue, store)
    await writer.start()
    await until(lambda: store.numbers() == [1])
    await writer.stop()
    await queue.close()


async def test_lease_reclaimed_too_often_is_dead_lettered_without_insert(
    spool: SpoolQueue, tmp_path: Path
) -> None:
    store = FakeStore()
    await spool.enqueue(message(5))
    lease = await spool.consume(10, 0.01)
    assert lease is not None
    for _ in range(3):
        await spool.nack(lease, "RuntimeError: writer died")
    lease.attempts = 3
    lease.last_error = "RuntimeError: writer died"
    writer = make_writer(spool, store)

    await writer.deliver(lease)

    assert store.calls == 0
    [entry] = read_dead_letters(tmp_path / "spool")
    assert "3 failed deliveries" in str(entry["error"])
