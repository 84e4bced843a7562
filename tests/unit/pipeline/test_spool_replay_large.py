"""A replayed lease carries every record it was recorded with, however many bytes it spans."""

from __future__ import annotations

from pathlib import Path

from brokle_server.pipeline.queue import Batch
from brokle_server.pipeline.spool import SpoolQueue


async def test_replayed_lease_larger_than_one_read_keeps_all_rows(tmp_path: Path) -> None:
    spool = await SpoolQueue.open(tmp_path / "spool", read_bytes=64 * 1024)
    for n in range(40):  # ~40 x 20 KB: far more than one 64 KB read
        rows = [(f"{n}-{i}", "x" * 200) for i in range(100)]
        await spool.enqueue([Batch(table="t", columns=("id", "pad"), rows=rows)])
    lease = await spool.consume(max_rows=10_000, max_wait=0.5)
    assert lease is not None
    first = {row[0] for message in lease.messages for batch in message for row in batch.rows}
    await spool.close()  # not acknowledged: it must replay whole

    reopened = await SpoolQueue.open(tmp_path / "spool", read_bytes=64 * 1024)
    replay = await reopened.consume(max_rows=10_000, max_wait=0.5)
    assert replay is not None and replay.id == lease.id
    again = {row[0] for message in replay.messages for batch in message for row in batch.rows}
    assert again == first and len(again) == lease.rows == replay.rows
    await reopened.ack(replay)
    await reopened.close()
