"""The embedded spool: durability, replay, torn tails, backpressure, group commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from brokle_server.errors import ConfigurationError, PayloadTooLarge, Unavailable
from brokle_server.pipeline.queue import Batch, QueueDepth
from brokle_server.pipeline.spool import SpoolQueue, read_dead_letters

from .helpers import drain, fill_until_full, message, numbers

Opener = Callable[..., Awaitable[SpoolQueue]]


@pytest.fixture
async def open_spool(tmp_path: Path) -> AsyncIterator[Opener]:
    """Open the spool in one directory; every queue opened is closed at the end."""
    opened: list[SpoolQueue] = []

    async def opener(**options: int) -> SpoolQueue:
        queue = await SpoolQueue.open(tmp_path / "spool", **options)
        opened.append(queue)
        return queue

    yield opener
    for queue in opened:
        await queue.close()


def segments(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "spool").glob("seg-*.log"))


async def test_roundtrip_in_order_then_empty(open_spool: Opener) -> None:
    spool = await open_spool()
    for n in range(10):
        await spool.enqueue(message(n, rows=2))
    assert await spool.depth() == QueueDepth(10, (await spool.depth()).bytes, 0)

    lease = await spool.consume(1000, 0.01)

    assert lease is not None
    assert numbers(lease) == list(range(10))
    assert lease.messages[3] == message(3, rows=2)
    await spool.ack(lease)
    assert await spool.consume(1000, 0.01) is None
    assert (await spool.depth()).messages == 0


async def test_consume_waits_for_data_up_to_max_wait(open_spool: Opener) -> None:
    spool = await open_spool()

    async def later() -> None:
        await asyncio.sleep(0.05)
        await spool.enqueue(message(1))

    task = asyncio.create_task(later())
    lease = await spool.consume(1, 2.0)
    await task

    assert lease is not None
    assert numbers(lease) == [1]


async def test_lease_holds_at_most_max_rows_unless_one_message_is_bigger(
    open_spool: Opener,
) -> None:
    spool = await open_spool()
    for n in range(4):
        await spool.enqueue(message(n, rows=3))
    await spool.enqueue(message(4, rows=50))

    sizes = [lease.rows for lease in await drain(spool, max_rows=7)]

    assert sizes == [6, 6, 50]


async def test_empty_enqueue_writes_nothing(open_spool: Opener) -> None:
    spool = await open_spool()
    await spool.enqueue([])
    await spool.enqueue([Batch("t", ("a",), [])])

    assert (await spool.depth()).messages == 0
    assert spool.fsyncs == 0


async def test_unacked_lease_replays_with_same_id_after_reopen(open_spool: Opener) -> None:
    spool = await open_spool()
    for n in range(5):
        await spool.enqueue(message(n))
    first = await spool.consume(3, 0.01)
    assert first is not None
    await spool.close()

    spool = await open_spool()
    assert (await spool.depth()).messages == 5
    again = await spool.consume(1000, 0.01)

    assert again is not None
    assert (again.id, numbers(again)) == (first.id, [0, 1, 2])
    assert again.blocks() == first.blocks()
    rest = await drain(spool)
    await spool.ack(again)
    assert [numbers(lease) for lease in rest] == [[3, 4]]
    await spool.close()

    spool = await open_spool()
    assert await drain(spool) == []
    assert (await spool.depth()).messages == 0


async def test_out_of_order_ack_replays_only_the_unacked_lease(open_spool: Opener) -> None:
    spool = await open_spool()
    for n in range(4):
        await spool.enqueue(message(n))
    a = await spool.consume(2, 0.01)
    b = await spool.consume(2, 0.01)
    assert a is not None and b is not None
    await spool.ack(b)
    await spool.close()

    spool = await open_spool()
    replayed = await drain(spool)

    assert [(lease.id, numbers(lease)) for lease in replayed] == [(a.id, [0, 1])]


async def test_torn_tail_is_dropped_and_earlier_records_replay(
    open_spool: Opener, tmp_path: Path
) -> None:
    spool = await open_spool()
    for n in range(3):
        await spool.enqueue(message(n))
    await spool.close()
    last = segments(tmp_path)[-1]
    good_size = last.stat().st_size
    record = last.read_bytes()[: good_size // 3]  # the first of three equal records
    with last.open("ab") as file:
        file.write(record[: len(record) - 5])  # a record cut short by a crash

    spool = await open_spool()
    assert last.stat().st_size == good_size
    await spool.enqueue(message(3))
    leases = await drain(spool)

    assert [n for lease in leases for n in numbers(lease)] == [0, 1, 2, 3]


async def test_damaged_record_ends_the_segment(open_spool: Opener, tmp_path: Path) -> None:
    spool = await open_spool()
    for n in range(3):
        await spool.enqueue(message(n))
    await spool.close()
    last = segments(tmp_path)[-1]
    data = bytearray(last.read_bytes())
    data[len(data) // 3 + 10] ^= 0xFF  # flip a payload byte of the second record
    last.write_bytes(bytes(data))

    spool = await open_spool()
    leases = await drain(spool)

    assert [n for lease in leases for n in numbers(lease)] == [0]


async def test_full_spool_raises_unavailable_until_drained(open_spool: Opener) -> None:
    spool = await open_spool(max_bytes=2000, segment_bytes=500, retry_after=3)
    accepted, error = await fill_until_full(spool, rows=5)
    assert "ingest queue is full" in error.message
    assert error.retry_after == 3
    assert error.code == "queue_full"
    assert 0 < len(accepted) < 100

    leases = await drain(spool)

    assert [n for lease in leases for n in numbers(lease)] == accepted
    await spool.enqueue(message(9999, rows=5))


async def test_message_larger_than_the_spool_is_refused(open_spool: Opener) -> None:
    spool = await open_spool(max_bytes=1000)
    with pytest.raises(PayloadTooLarge):
        await spool.enqueue(message(1, rows=500))


async def test_concurrent_enqueues_share_fsyncs(open_spool: Opener) -> None:
    spool = await open_spool()

    await asyncio.gather(*(spool.enqueue(message(n)) for n in range(500)))

    assert spool.fsyncs <= 5
    leases = await drain(spool)
    assert sorted(n for lease in leases for n in numbers(lease)) == list(range(500))


async def test_leases_stay_in_one_segment_and_acked_segments_are_deleted(
    open_spool: Opener, tmp_path: Path
) -> None:
    spool = await open_spool(segment_bytes=300)
    for n in range(30):
        await spool.enqueue(message(n))
    assert len(segments(tmp_path)) > 2

    leases = await drain(spool)

    assert [n for lease in leases for n in numbers(lease)] == list(range(30))
    assert len(leases) == len({lease.id.rsplit(":", 1)[0] for lease in leases})
    assert len(segments(tmp_path)) == 1
    assert (await spool.depth()).bytes == 0


async def test_nack_attempts_survive_reopen(open_spool: Opener) -> None:
    spool = await open_spool()
    await spool.enqueue(message(1))
    lease = await spool.consume(10, 0.01)
    assert lease is not None
    assert await spool.nack(lease, "boom") == 1
    assert await spool.nack(lease, "boom") == 2
    await spool.close()

    spool = await open_spool()
    again = await spool.consume(10, 0.01)

    assert again is not None
    assert (again.id, again.attempts) == (lease.id, 2)


async def test_dead_letter_keeps_messages_and_error_and_acks(
    open_spool: Opener, tmp_path: Path
) -> None:
    spool = await open_spool()
    await spool.enqueue(message(7, rows=2))
    lease = await spool.consume(10, 0.01)
    assert lease is not None

    await spool.dead_letter(lease, "ValueError: bad row")

    [entry] = read_dead_letters(tmp_path / "spool")
    assert entry["lease"] == lease.id
    assert entry["error"] == "ValueError: bad row"
    assert entry["messages"] == [message(7, rows=2)]
    assert await spool.depth() == QueueDepth(0, 0, 1)
    await spool.close()
    spool = await open_spool()
    assert await drain(spool) == []
    assert (await spool.depth()).dead_letters == 1


async def test_second_process_on_same_directory_is_refused(open_spool: Opener) -> None:
    await open_spool()
    with pytest.raises(ConfigurationError, match="in use by another process"):
        await open_spool()


async def test_closed_spool_refuses_enqueue(open_spool: Opener) -> None:
    spool = await open_spool()
    await spool.close()
    with pytest.raises(Unavailable):
        await spool.enqueue(message(1))
