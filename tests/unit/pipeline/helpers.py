"""Shared helpers for pipeline tests: numbered messages and draining a queue."""

from __future__ import annotations

from brokle_server.errors import Unavailable
from brokle_server.pipeline.queue import Batch, DurableQueue, Lease


def message(n: int, rows: int = 1, table: str = "t") -> list[Batch]:
    """A message whose rows carry ``n`` so tests can tell messages apart."""
    return [Batch(table, ("n", "i"), [(n, i) for i in range(rows)])]


def numbers(lease: Lease) -> list[int]:
    """The message numbers in a lease, in order."""
    return [int(message[0].rows[0][0]) for message in lease.messages]  # type: ignore[call-overload]


async def drain(queue: DurableQueue, max_rows: int = 1000, ack: bool = True) -> list[Lease]:
    leases = []
    while (lease := await queue.consume(max_rows, 0.02)) is not None:
        leases.append(lease)
        if ack:
            await queue.ack(lease)
    return leases


async def fill_until_full(queue: DurableQueue, rows: int = 1) -> tuple[list[int], Unavailable]:
    """Enqueue numbered messages until the queue refuses one; returns those accepted."""
    accepted: list[int] = []
    for n in range(100_000):
        try:
            await queue.enqueue(message(n, rows=rows))
        except Unavailable as exc:
            return accepted, exc
        accepted.append(n)
    raise AssertionError("the queue never filled up")
