"""The durable queue port: ingest enqueues batches, writers lease, insert and acknowledge them.

Flow::

    handler ── enqueue(batches) ──▶ queue (spool | Redis Streams) ── consume() ──▶ Lease
                  returns = durable                                             │
    writer  ◀───────────────────────────────────────────────────────────────────┘
            sink(table, columns, rows, dedup_token) for each Block, then ack(lease)

A :class:`Lease` is a fixed group of queued messages. Adapters record the group durably
*before* handing it out, and hand the same group out again after a crash, so the blocks built
from it (and their dedup tokens) are identical on replay and ClickHouse drops the duplicate.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec


class Batch(msgspec.Struct, frozen=True, array_like=True):
    """Rows for one ClickHouse table, in the order of ``columns``.

    Values are str, int, float, bool, None, bytes, datetime, date, UUID, Decimal, dicts (Map
    columns) and lists (Array columns); the queue gives them back with the same types. A
    msgspec Struct so that dequeuing decodes straight into it (no per-message Python init).
    """

    table: str
    columns: tuple[str, ...]
    rows: list[tuple[object, ...]]


@dataclass(frozen=True, slots=True)
class Block:
    """One insert: rows of one table from a lease, with the token that makes it idempotent."""

    table: str
    columns: tuple[str, ...]
    rows: list[tuple[object, ...]]
    dedup_token: str


@dataclass(slots=True)
class Lease:
    """A group of queued messages handed to one writer until it acks or dead-letters it.

    ``id`` is deterministic: the adapter derives it from where the messages sit in the queue,
    so a lease replayed after a crash has the same id, the same messages in the same order,
    and therefore the same blocks and dedup tokens.
    """

    id: str
    messages: list[list[Batch]]
    attempts: int = 0
    """Failed attempts recorded so far (failed inserts and, for Redis, reclaims)."""
    last_error: str | None = None
    receipt: object = field(default=None, repr=False)
    """Adapter-private handle (spool range, Redis entry ids)."""

    @property
    def rows(self) -> int:
        return sum(len(batch.rows) for message in self.messages for batch in message)

    def blocks(self) -> list[Block]:
        """Rows grouped per (table, columns) in order of first appearance, one token each."""
        groups: dict[tuple[str, tuple[str, ...]], list[tuple[object, ...]]] = {}
        for message in self.messages:
            for batch in message:
                if batch.rows:
                    groups.setdefault((batch.table, batch.columns), []).extend(batch.rows)
        return [
            Block(table, columns, rows, f"{self.id}/{index}/{table}")
            for index, ((table, columns), rows) in enumerate(groups.items())
        ]


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """What is queued and not yet acknowledged."""

    messages: int
    bytes: int
    dead_letters: int = 0


class DurableQueue(ABC):
    """The port. ``enqueue`` returning means durable; everything else serves the writers."""

    @abstractmethod
    async def enqueue(self, batches: Sequence[Batch]) -> None:
        """Make ``batches`` durable as one message.

        Raises :class:`brokle_server.errors.Unavailable` (with ``retry_after``) when the queue
        is over its limit or its backend is down, so ingest answers 503 instead of growing.
        """

    @abstractmethod
    async def consume(self, max_rows: int, max_wait: float) -> Lease | None:
        """Lease up to about ``max_rows`` rows, waiting at most ``max_wait`` seconds.

        Returns early once ``max_rows`` rows are available, ``None`` when nothing arrived. A
        lease always holds at least one whole message, so it may exceed ``max_rows``.
        """

    @abstractmethod
    async def ack(self, lease: Lease) -> None:
        """The lease's rows are in the store: forget them durably."""

    @abstractmethod
    async def nack(self, lease: Lease, error: str) -> int:
        """Record a failed attempt; the caller keeps the lease. Returns attempts so far."""

    async def keepalive(self, lease: Lease) -> bool:
        """Tell the queue the lease is still being worked on; False if it was taken over."""
        return True

    @abstractmethod
    async def dead_letter(self, lease: Lease, error: str) -> None:
        """Move the lease's messages aside with the error, then acknowledge them."""

    @abstractmethod
    async def depth(self) -> QueueDepth:
        """Messages and bytes not yet acknowledged."""

    @abstractmethod
    async def close(self) -> None:
        """Finish pending writes and release resources; unacked leases replay next time."""
