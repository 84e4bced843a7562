"""Durable queue on Redis Streams: one stream, one consumer group, leases recorded in Redis.

One stream for all tables, not one per table: an ingest request becomes one entry, so its
batches (spans and their events, say) are made durable all-or-nothing by a single XADD; there
is one consumer group and one backlog figure for backpressure; and writers group rows per
table themselves. One stream takes well over 100k XADD/s, far beyond one gateway's ingest.

Enqueue runs a script that checks the backlog (XLEN and a byte counter) and XADDs, so a full
queue refuses work instead of trimming: MAXLEN trimming would drop unacknowledged entries.
Concurrent enqueues are pipelined into one round trip. Writers XREADGROUP entries, record the
group as a lease (entry ids in a hash) before inserting, and XACK + XDEL after the insert.
Entries idle longer than ``claim_idle`` in another consumer belong to a dead one: a script
claims them (XPENDING IDLE + XCLAIM rather than XAUTOCLAIM, which would also grab our own
leases still being inserted) and, through the lease record, the rest of their lease, so the
replay is the same group with the same dedup tokens. Each reclaim or failed insert counts an
attempt; the writer moves a lease to the dead-letter stream (with its error) once the
attempts reach its limit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from brokle_server.errors import PayloadTooLarge, Unavailable
from brokle_server.pipeline import redis_scripts as scripts
from brokle_server.pipeline.codec import decode_message, encode_message, row_count
from brokle_server.pipeline.queue import Batch, DurableQueue, Lease, QueueDepth

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Entry:
    id: str
    size: int
    batches: list[Batch]
    rows: int


@dataclass(frozen=True, slots=True)
class _Receipt:
    entries: tuple[tuple[str, int], ...]  # (entry id, payload size) in lease order


class RedisStreamQueue(DurableQueue):
    """Use :meth:`connect`. ``consumer`` names this process in the group; a stable name lets a
    restarted process resume its own pending leases at once instead of after ``claim_idle``."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        base: str = "brokle:ingest",
        group: str = "writers",
        consumer: str | None = None,
        max_entries: int = 100_000,
        max_bytes: int = 512 << 20,
        claim_idle: float = 60.0,
        retry_after: float = 1.0,
        owns_client: bool = True,
    ) -> None:
        self._r = client
        tag = "{" + base + "}"
        self._stream = f"{tag}:stream"
        self._bytes = f"{tag}:bytes"
        self._leases = f"{tag}:leases"
        self._lease_of = f"{tag}:lease-of"
        self._attempts = f"{tag}:attempts"
        self._errors = f"{tag}:errors"
        self._dead = f"{tag}:dead"
        self._epoch_key = f"{tag}:epoch"
        self._group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._claim_idle_ms = max(1, int(claim_idle * 1000))
        self._retry_after = retry_after
        self._owns_client = owns_client
        self._shas: dict[str, str] = {}
        self._prefix = ""
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._flush_task: asyncio.Task[None] | None = None
        self._buffer: deque[_Entry] = deque()
        self._redeliver: deque[Lease] = deque()
        self._adopted = False
        self._next_reclaim = 0.0
        self._avg_rows = 1.0

    @classmethod
    async def connect(cls, url: str, **options: Any) -> RedisStreamQueue:
        """Connect, create the consumer group and load the scripts."""
        # Timeouts so a hung Redis turns into 503s instead of requests that never return;
        # consume() blocks for at most 10 s per call, below the read timeout.
        client = aioredis.Redis.from_url(
            url, decode_responses=False, socket_connect_timeout=5, socket_timeout=30
        )
        queue = cls(client, **options)
        try:
            await queue.setup()
        except BaseException:
            await client.aclose()
            raise
        return queue

    async def setup(self) -> None:
        try:
            await self._r.xgroup_create(self._stream, self._group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        await self._r.set(self._epoch_key, uuid.uuid4().hex, nx=True)
        epoch = _text(await self._r.get(self._epoch_key))
        # The epoch keeps tokens unique if the stream is wiped: entry ids could repeat then.
        self._prefix = f"redis:{epoch}:"
        await self._load_scripts()
        try:
            config: dict[Any, Any] = await self._r.config_get("appendonly")
            if _text(config.get(b"appendonly", config.get("appendonly"))) == "no":
                logger.warning("redis: appendonly is off; queued data survives only snapshots")
        except RedisError:
            pass  # managed Redis often disables CONFIG

    async def _load_scripts(self) -> None:
        for name in ("ENQUEUE", "RECORD_LEASE", "RECLAIM", "KEEPALIVE", "SETTLE", "NACK"):
            self._shas[name] = await self._r.script_load(getattr(scripts, name))

    async def _script(self, name: str, keys: Sequence[str], args: Sequence[object]) -> Any:
        try:
            return await self._r.evalsha(self._shas[name], len(keys), *keys, *args)  # type: ignore[arg-type]
        except NoScriptError:  # Redis restarted or flushed its script cache
            await self._load_scripts()
            return await self._r.evalsha(self._shas[name], len(keys), *keys, *args)  # type: ignore[arg-type]

    # -- producers --------------------------------------------------------------------

    async def enqueue(self, batches: Sequence[Batch]) -> None:
        if row_count(batches) == 0:
            return
        payload = encode_message(batches)
        if len(payload) > self._max_bytes:
            raise PayloadTooLarge(f"batch of {len(payload)} bytes exceeds the queue limit")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((payload, future))
        if self._flush_task is None:
            self._flush_task = asyncio.create_task(self._flush_loop())
        await future

    async def _flush_loop(self) -> None:
        # Pipelining concurrent enqueues into one round trip is what lets one connection keep
        # up with thousands of requests per second.
        try:
            while self._pending:
                items, self._pending = self._pending, []
                results = await self._enqueue_many([payload for payload, _ in items])
                for (_, future), result in zip(items, results, strict=True):
                    if not future.done():
                        if isinstance(result, BaseException):
                            future.set_exception(result)
                        else:
                            future.set_result(None)
        finally:
            self._flush_task = None

    async def _enqueue_many(self, payloads: list[bytes]) -> list[BaseException | None]:
        keys = (self._stream, self._bytes)
        limits = (self._max_entries, self._max_bytes)
        try:
            for _ in range(2):
                pipe = self._r.pipeline(transaction=False)
                for payload in payloads:
                    pipe.evalsha(self._shas["ENQUEUE"], 2, *keys, *limits, payload)
                replies = await pipe.execute(raise_on_error=False)
                if not any(isinstance(reply, NoScriptError) for reply in replies):
                    break
                # Nothing ran when the script was missing; load it and send all again.
                await self._load_scripts()
        except RedisError as exc:
            logger.error("redis: enqueue failed: %s", exc)
            return [
                Unavailable("the ingest queue (Redis) is unreachable", retry_after=5.0)
                for _ in payloads
            ]
        return [self._enqueue_result(reply) for reply in replies]

    def _enqueue_result(self, reply: object) -> BaseException | None:
        if isinstance(reply, list):
            entries, used = reply
            return Unavailable(
                f"ingest queue is full ({entries} messages, {used} bytes waiting for the "
                "store); retry later",
                retry_after=self._retry_after,
                code="queue_full",
            )
        if isinstance(reply, BaseException):
            logger.error("redis: enqueue failed: %s", reply)
            return Unavailable("the ingest queue (Redis) failed", retry_after=self._retry_after)
        return None

    # -- consumers --------------------------------------------------------------------

    async def consume(self, max_rows: int, max_wait: float) -> Lease | None:
        if not self._adopted:
            await self._adopt_own()
            self._adopted = True
        now = time.monotonic()
        if now >= self._next_reclaim:
            self._next_reclaim = now + self._claim_idle_ms / 2000
            await self._reclaim()
        if self._redeliver:
            return self._redeliver.popleft()
        deadline = now + max_wait
        while sum(entry.rows for entry in self._buffer) < max_rows:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                break
            want = max_rows - sum(entry.rows for entry in self._buffer)
            count = max(1, min(1000, int(want / self._avg_rows) + 1))
            reply = await self._r.xreadgroup(
                self._group,
                self.consumer,
                {self._stream: ">"},
                count=count,
                block=min(remaining_ms, 10_000),
            )
            raw: Any = reply
            entries = self._entries(raw[0][1] if raw else [])
            if not entries:
                break
            self._buffer.extend(entries)
            self._avg_rows = 0.8 * self._avg_rows + 0.2 * (
                sum(e.rows for e in entries) / len(entries)
            )
        if not self._buffer:
            return None
        taken: list[_Entry] = []
        rows = 0
        while self._buffer and (not taken or rows + self._buffer[0].rows <= max_rows):
            entry = self._buffer.popleft()
            taken.append(entry)
            rows += entry.rows
        return await self._record(taken)

    def _entries(self, raw: list[Any]) -> list[_Entry]:
        out = []
        for entry_id, fields in raw:
            payload: bytes = fields[b"d"]
            batches = decode_message(payload)
            out.append(_Entry(_text(entry_id), len(payload), batches, row_count(batches)))
        return out

    async def _record(self, taken: list[_Entry]) -> Lease | None:
        args = [self._group, self.consumer, self._prefix, *(entry.id for entry in taken)]
        kept = {_text(i) for i in await self._script("RECORD_LEASE", self._lease_keys, args)}
        entries = [entry for entry in taken if entry.id in kept]
        if not entries:
            return None
        return self._lease(self._prefix + entries[0].id, entries, 0)

    @property
    def _lease_keys(self) -> tuple[str, ...]:
        return (self._stream, self._leases, self._lease_of, self._attempts)

    def _lease(self, lease_id: str, entries: list[_Entry], attempts: int) -> Lease:
        receipt = _Receipt(tuple((entry.id, entry.size) for entry in entries))
        messages = [entry.batches for entry in entries]
        return Lease(lease_id, messages, attempts=attempts, receipt=receipt)

    async def _adopt_own(self) -> None:
        """Pick up this consumer's own pending entries (a restart with a stable name)."""
        pending = await self._r.xpending_range(
            self._stream, self._group, "-", "+", 10_000, consumername=self.consumer
        )
        ids = [_text(item["message_id"]) for item in pending]
        if not ids:
            return
        owners = await self._r.hmget(self._lease_of, ids)
        lease_ids = list(dict.fromkeys(_text(owner) for owner in owners if owner))
        orphans = [i for i, owner in zip(ids, owners, strict=True) if not owner]
        attempts = await self._r.hmget(self._attempts, lease_ids) if lease_ids else []
        await self._load_leases(lease_ids, [int(a or 0) for a in attempts])
        self._buffer.extend(await self._fetch(orphans))

    async def _reclaim(self) -> None:
        args = (self._group, self.consumer, self._claim_idle_ms, 1000)
        flat, orphans = await self._script("RECLAIM", self._lease_keys, args)
        lease_ids = [_text(item) for item in flat[0::2]]
        if lease_ids or orphans:
            logger.warning(
                "redis: reclaimed %d leases and %d entries from dead consumers",
                len(lease_ids),
                len(orphans),
            )
        await self._load_leases(lease_ids, [int(n) for n in flat[1::2]])
        self._buffer.extend(await self._fetch([_text(o) for o in orphans]))
        await self._forget_idle_consumers()

    async def _load_leases(self, lease_ids: list[str], attempts: list[int]) -> None:
        if not lease_ids:
            return
        members = await self._r.hmget(self._leases, lease_ids)
        errors = await self._r.hmget(self._errors, lease_ids)
        for lease_id, ids, tries, error in zip(lease_ids, members, attempts, errors, strict=True):
            if not ids:
                continue
            entries = await self._fetch(_text(ids).split(","))
            lease = self._lease(lease_id, entries, tries)
            lease.last_error = _text(error) if error else None
            self._redeliver.append(lease)

    async def _fetch(self, ids: list[str]) -> list[_Entry]:
        if not ids:
            return []
        pipe = self._r.pipeline(transaction=False)
        for entry_id in ids:
            pipe.xrange(self._stream, entry_id, entry_id)
        found = [reply[0] for reply in await pipe.execute() if reply]
        return self._entries(found)

    async def _forget_idle_consumers(self) -> None:
        # Consumer names are per process; drop long-gone ones with nothing pending.
        for info in await self._r.xinfo_consumers(self._stream, self._group):
            name = _text(info["name"])
            idle = info["idle"] > 10 * self._claim_idle_ms
            if name != self.consumer and not info["pending"] and idle:
                await self._r.xgroup_delconsumer(self._stream, self._group, name)

    def _receipt(self, lease: Lease) -> _Receipt:
        assert isinstance(lease.receipt, _Receipt), "lease from another queue"
        return lease.receipt

    async def ack(self, lease: Lease) -> None:
        await self._settle(lease, dead=False, error="")

    async def dead_letter(self, lease: Lease, error: str) -> None:
        await self._settle(lease, dead=True, error=error)
        logger.error("redis: dead-lettered lease %s (%d rows): %s", lease.id, lease.rows, error)

    async def _settle(self, lease: Lease, *, dead: bool, error: str) -> None:
        keys = (
            self._stream,
            self._bytes,
            self._leases,
            self._lease_of,
            self._attempts,
            self._errors,
            self._dead,
        )
        args: list[object] = [self._group, lease.id, "1" if dead else "0", error]
        for entry_id, size in self._receipt(lease).entries:
            args += [entry_id, size]
        await self._script("SETTLE", keys, args)

    async def nack(self, lease: Lease, error: str) -> int:
        attempts = await self._script("NACK", (self._attempts, self._errors), (lease.id, error))
        return int(attempts)

    async def keepalive(self, lease: Lease) -> bool:
        ids = [entry_id for entry_id, _ in self._receipt(lease).entries]
        args = (self._group, self.consumer, *ids)
        return bool(await self._script("KEEPALIVE", self._lease_keys, args))

    async def depth(self) -> QueueDepth:
        pipe = self._r.pipeline(transaction=False)
        pipe.xlen(self._stream)
        pipe.get(self._bytes)
        pipe.xlen(self._dead)
        entries, used, dead = await pipe.execute()
        return QueueDepth(int(entries), int(used or 0), int(dead))

    async def close(self) -> None:
        while self._flush_task is not None:
            await asyncio.shield(self._flush_task)
        if self._owns_client:
            await self._r.aclose()


def _text(value: object) -> str:
    """Redis replies are bytes (the client must not decode: payloads are binary)."""
    return value.decode() if isinstance(value, bytes) else str(value)
