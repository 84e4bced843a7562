"""Redis Streams queue against the real Redis: group, ack, reclaim, dead letters, limits."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from brokle_server.errors import Unavailable
from brokle_server.pipeline.codec import decode_message
from brokle_server.pipeline.config import PipelineSettings
from brokle_server.pipeline.factory import build_queue
from brokle_server.pipeline.queue import QueueDepth
from brokle_server.pipeline.redis_streams import RedisStreamQueue
from brokle_server.pipeline.writer import BatchWriter

from ...unit.pipeline.helpers import drain, fill_until_full, message, numbers
from ...unit.pipeline.test_writer import FakeStore, until
from .conftest import QueueOpener

pytestmark = pytest.mark.redis


def stream_key(base: str) -> str:
    return "{" + base + "}:stream"


async def dead_letters(client: aioredis.Redis, base: str) -> list[dict[bytes, bytes]]:
    entries: Any = await client.xrange("{" + base + "}:dead")
    return [fields for _, fields in entries]


async def test_enqueue_consume_ack_leaves_nothing_behind(
    open_queue: QueueOpener, pipeline_redis: aioredis.Redis, stream_base: str
) -> None:
    queue = await open_queue()
    for n in range(10):
        await queue.enqueue(message(n, rows=2))
    depth = await queue.depth()
    assert (depth.messages, depth.dead_letters) == (10, 0)
    assert depth.bytes > 0

    lease = await queue.consume(1000, 0.05)
    assert lease is not None
    assert numbers(lease) == list(range(10))
    assert lease.messages[4] == message(4, rows=2)
    await queue.ack(lease)

    assert (await queue.depth()).messages == 0
    assert (await queue.depth()).bytes == 0
    assert await queue.consume(1000, 0.02) is None
    assert await pipeline_redis.hlen("{" + stream_base + "}:leases") == 0


async def test_concurrent_enqueues_all_arrive_once(open_queue: QueueOpener) -> None:
    queue = await open_queue()

    await asyncio.gather(*(queue.enqueue(message(n)) for n in range(500)))

    leases = await drain(queue)
    assert sorted(n for lease in leases for n in numbers(lease)) == list(range(500))


async def test_leases_respect_max_rows(open_queue: QueueOpener) -> None:
    queue = await open_queue()
    for n in range(5):
        await queue.enqueue(message(n, rows=3))

    leases = await drain(queue, max_rows=7)

    assert [numbers(lease) for lease in leases] == [[0, 1], [2, 3], [4]]


async def test_restart_with_same_consumer_name_resumes_its_lease(
    open_queue: QueueOpener,
) -> None:
    first = await open_queue(consumer="writer-a")
    for n in range(3):
        await first.enqueue(message(n))
    lease = await first.consume(2, 0.05)
    assert lease is not None

    again = await open_queue(consumer="writer-a", claim_idle=600)
    replayed = await again.consume(100, 0.05)

    assert replayed is not None
    assert (replayed.id, numbers(replayed), replayed.attempts) == (lease.id, [0, 1], 0)
    assert replayed.blocks() == lease.blocks()
    rest = await again.consume(100, 0.05)
    assert rest is not None
    assert numbers(rest) == [2]


async def test_lease_of_dead_consumer_is_reclaimed_whole(open_queue: QueueOpener) -> None:
    dead = await open_queue(consumer="dead")
    for n in range(6):
        await dead.enqueue(message(n))
    lease = await dead.consume(4, 0.05)
    assert lease is not None
    await asyncio.sleep(0.15)

    alive = await open_queue(consumer="alive", claim_idle=0.1)
    reclaimed = await alive.consume(100, 0.05)

    assert reclaimed is not None
    assert (reclaimed.id, numbers(reclaimed), reclaimed.attempts) == (lease.id, [0, 1, 2, 3], 1)
    assert await dead.keepalive(lease) is False
    await alive.ack(reclaimed)
    rest = await drain(alive)
    assert [n for item in rest for n in numbers(item)] == [4, 5]
    assert (await alive.depth()).messages == 0


async def test_entries_read_but_not_leased_are_reclaimed_as_orphans(
    open_queue: QueueOpener, pipeline_redis: aioredis.Redis, stream_base: str
) -> None:
    queue = await open_queue(claim_idle=0.1)
    for n in range(3):
        await queue.enqueue(message(n))
    # A consumer that read the entries and died before recording a lease.
    await pipeline_redis.xreadgroup("writers", "dead", {stream_key(stream_base): ">"}, count=2)
    await asyncio.sleep(0.15)

    leases = await drain(queue)

    assert sorted(n for lease in leases for n in numbers(lease)) == [0, 1, 2]
    assert (await queue.depth()).messages == 0


async def test_buffered_entry_reclaimed_elsewhere_is_not_leased_twice(
    open_queue: QueueOpener,
) -> None:
    slow = await open_queue(consumer="slow", claim_idle=600)
    for n in range(4):
        await slow.enqueue(message(n))
    first = await slow.consume(1, 0.05)  # reads two entries, leases one, buffers one
    assert first is not None
    await asyncio.sleep(0.15)
    other = await open_queue(consumer="other", claim_idle=0.1)
    taken = await drain(other, ack=False)

    late = await slow.consume(1, 0.05)

    taken_numbers = sorted(n for lease in taken for n in numbers(lease))
    assert taken_numbers == [0, 1, 2, 3]
    assert late is None or not set(numbers(late)) & set(taken_numbers)


async def test_full_queue_raises_unavailable_until_drained(open_queue: QueueOpener) -> None:
    queue = await open_queue(max_entries=5, retry_after=2.5)
    for n in range(5):
        await queue.enqueue(message(n))

    with pytest.raises(Unavailable, match="ingest queue is full") as info:
        await queue.enqueue(message(5))
    assert info.value.retry_after == 2.5
    assert info.value.code == "queue_full"

    await drain(queue)
    await queue.enqueue(message(6))


async def test_byte_limit_backpressures(open_queue: QueueOpener) -> None:
    queue = await open_queue(max_bytes=400)
    accepted, _ = await fill_until_full(queue, rows=5)
    assert accepted
    assert 0 < (await queue.depth()).bytes <= 400


async def test_writer_dead_letters_rejected_rows_after_max_attempts(
    open_queue: QueueOpener, pipeline_redis: aioredis.Redis, stream_base: str
) -> None:
    queue = await open_queue()
    store = FakeStore()
    store.poison = 3
    for n in range(6):
        await queue.enqueue(message(n))
    writer = BatchWriter(
        queue, store, batch_rows=1, flush_interval_ms=5, max_attempts=2, backoff_initial=0.001
    )

    await writer.start()
    await until(lambda: writer.stats.dead_letters == 1 and len(store.numbers()) == 5)
    await writer.stop()

    assert store.numbers() == [0, 1, 2, 4, 5]
    [fields] = await dead_letters(pipeline_redis, stream_base)
    assert fields[b"error"] == b"ValueError: row 3 does not fit the table"
    assert fields[b"attempts"] == b"2"
    assert decode_message(fields[b"d"]) == message(3)
    assert await queue.depth() == QueueDepth(0, 0, 1)


async def test_lease_reclaimed_max_attempts_times_goes_to_dead_letters(
    open_queue: QueueOpener, pipeline_redis: aioredis.Redis, stream_base: str
) -> None:
    producer = await open_queue()
    await producer.enqueue(message(9))
    lease = None
    for attempt in range(3):  # three writers die holding it
        holder = await open_queue(consumer=f"dying-{attempt}", claim_idle=0.05)
        await asyncio.sleep(0.06)
        lease = await holder.consume(10, 0.05)
        assert lease is not None
        assert lease.attempts == attempt
    await asyncio.sleep(0.06)
    final = await open_queue(consumer="final", claim_idle=0.05)
    store = FakeStore()
    writer = BatchWriter(final, store, flush_interval_ms=5, max_attempts=3)

    last = await final.consume(10, 0.05)
    assert last is not None
    assert last.attempts == 3
    await writer.deliver(last)

    assert store.calls == 0
    [fields] = await dead_letters(pipeline_redis, stream_base)
    assert b"3 failed deliveries" in fields[b"error"]


async def test_writer_survives_failures_without_loss_or_duplicates(
    open_queue: QueueOpener,
) -> None:
    queue = await open_queue()
    store = FakeStore()
    store.fail_next = 3
    await asyncio.gather(*(queue.enqueue(message(n, rows=2)) for n in range(100)))
    writer = BatchWriter(queue, store, batch_rows=40, flush_interval_ms=5, backoff_initial=0.001)

    await writer.start()
    await until(lambda: len(store.numbers()) == 200)
    await writer.stop()

    assert sorted(set(store.numbers())) == list(range(100))
    assert store.repeats == 0
    assert (await queue.depth()).messages == 0


async def test_factory_builds_redis_queue_when_url_given(stream_base: str, tmp_path: Path) -> None:
    settings = PipelineSettings(redis_key=stream_base)
    queue = await build_queue(tmp_path, "redis://127.0.0.1:6379/0", settings)
    try:
        assert isinstance(queue, RedisStreamQueue)
        await queue.enqueue(message(1))
        assert (await queue.depth()).messages == 1
    finally:
        await queue.close()
    assert not (tmp_path / "spool").exists()
