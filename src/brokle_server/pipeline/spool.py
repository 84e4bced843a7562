"""Embedded durable queue: an append-only spool of segment files in the data directory.

Enqueue frames the message, appends it to the active segment and returns once it is
fdatasync'd. Concurrent enqueues are group-committed: while one write + fdatasync runs in a
worker thread, new records queue up and go out together in the next one, so a few hundred
concurrent requests share one fsync instead of waiting for one each.

Consumers lease contiguous record ranges ``[start, end)`` of one segment. Outstanding leases
and the committed position (everything before it is acknowledged) live in a double-slot state
file (:class:`SlotFile`), saved before a lease is handed out and after it is acked. After a
crash the outstanding leases are handed out again with the same ranges, hence the same lease
ids and dedup tokens; everything after the last lease is leased afresh (it was never
inserted). Segments wholly before the committed position are deleted.

One process owns a spool directory (``flock``); embedded mode is one server process.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from brokle_server.errors import ConfigurationError, PayloadTooLarge, Unavailable
from brokle_server.pipeline.codec import decode_message, encode_message, row_count
from brokle_server.pipeline.queue import Batch, DurableQueue, Lease, QueueDepth
from brokle_server.pipeline.records import (
    SlotFile,
    append_durably,
    frame,
    parse,
    write_durably,
)
from brokle_server.pipeline.segments import Position, SegmentLog

logger = logging.getLogger(__name__)

_ENCODE_IN_THREAD_ROWS = 20_000  # above this, serializing would stall the event loop


class _State(msgspec.Struct, array_like=True):
    committed: tuple[int, int]
    """Everything before this position is acknowledged."""
    read_pos: tuple[int, int]
    """Everything before this position was leased (acked unless in ``leases``)."""
    leases: list[tuple[int, int, int, int, int]]  # seg, start, end, messages, attempts
    dead_letters: int = 0


@dataclass(slots=True)
class _Range:
    seg: int
    start: int
    end: int
    messages: int
    attempts: int = 0


@dataclass(slots=True)
class _Buffered:
    seg: int
    offset: int
    end: int
    batches: list[Batch]
    rows: int


class SpoolQueue(DurableQueue):
    """Use :meth:`open`; the constructor expects recovered components."""

    def __init__(
        self,
        directory: Path,
        log: SegmentLog,
        slots: SlotFile,
        lock_fd: int,
        instance: str,
        state: _State,
        messages: int,
        *,
        max_bytes: int,
        retry_after: float,
        read_bytes: int,
    ) -> None:
        self._dir = directory
        self._log = log
        self._slots = slots
        self._lock_fd = lock_fd
        self._instance = instance
        self._max_bytes = max_bytes
        self._retry_after = retry_after
        self._read_bytes = read_bytes
        self._committed: Position = state.committed
        self._leases = {self._lease_id(r): r for r in (_Range(*item) for item in state.leases)}
        self._redeliver = deque(self._leases.values())
        self._read_pos: Position = state.read_pos
        self._scan = self._read_pos
        self._buffer: deque[_Buffered] = deque()
        self._messages = messages
        self._dead = state.dead_letters
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._pending_bytes = 0
        self._flushing_bytes = 0
        self._flush_task: asyncio.Task[None] | None = None
        self._data = asyncio.Event()
        self._read_lock = asyncio.Lock()
        self._state_lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def open(
        cls,
        directory: Path,
        *,
        max_bytes: int = 1 << 30,
        segment_bytes: int = 64 << 20,
        retry_after: float = 1.0,
        read_bytes: int = 4 << 20,
    ) -> SpoolQueue:
        """Open (creating if needed) the spool in ``directory`` and recover it."""
        parts = await asyncio.to_thread(_open_sync, directory, segment_bytes)
        return cls(
            directory,
            *parts,
            max_bytes=max_bytes,
            retry_after=retry_after,
            read_bytes=read_bytes,
        )

    @property
    def fsyncs(self) -> int:
        """Segment fsyncs so far (group commit makes this far smaller than enqueues)."""
        return self._log.fsyncs

    def _lease_id(self, r: _Range) -> str:
        # The spool id makes tokens unique across spools: a wiped and recreated spool starts
        # at segment 0 again and must not collide with tokens still in the dedup window.
        return f"spool:{self._instance}:{r.seg}:{r.start}-{r.end}"

    def _used_bytes(self) -> int:
        return self._log.total_bytes() - self._committed[1]

    # -- producers --------------------------------------------------------------------

    async def enqueue(self, batches: Sequence[Batch]) -> None:
        if self._closed:
            raise Unavailable("the ingest spool is closed", retry_after=self._retry_after)
        rows = row_count(batches)
        if rows == 0:
            return
        if rows > _ENCODE_IN_THREAD_ROWS:
            payload = await asyncio.to_thread(encode_message, batches)
        else:
            payload = encode_message(batches)
        record = frame(payload)
        if len(record) > self._max_bytes:
            raise PayloadTooLarge(
                f"batch of {len(record)} bytes exceeds the spool limit of {self._max_bytes} bytes"
            )
        in_use = self._used_bytes() + self._pending_bytes + self._flushing_bytes
        if in_use + len(record) > self._max_bytes:
            raise Unavailable(
                f"ingest queue is full ({in_use} of {self._max_bytes} bytes waiting for the "
                "store); retry later",
                retry_after=self._retry_after,
                code="queue_full",
            )
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((record, future))
        self._pending_bytes += len(record)
        if self._flush_task is None:
            self._flush_task = asyncio.create_task(self._flush_loop())
        await future

    async def _flush_loop(self) -> None:
        try:
            while self._pending:
                items, self._pending = self._pending, []
                self._flushing_bytes, self._pending_bytes = self._pending_bytes, 0
                try:
                    await asyncio.to_thread(self._log.append, [record for record, _ in items])
                except OSError as exc:
                    logger.error("spool: write failed: %s", exc)
                    for _, future in items:
                        if not future.done():
                            future.set_exception(
                                Unavailable(
                                    "the ingest spool cannot write to disk",
                                    retry_after=self._retry_after,
                                )
                            )
                    continue
                finally:
                    self._flushing_bytes = 0
                self._messages += len(items)
                for _, future in items:
                    if not future.done():  # the caller may have been cancelled
                        future.set_result(None)
                self._data.set()
        finally:
            self._flush_task = None

    # -- consumers --------------------------------------------------------------------

    async def consume(self, max_rows: int, max_wait: float) -> Lease | None:
        async with self._read_lock:
            if self._closed:
                return None
            if self._redeliver:
                r = self._redeliver.popleft()
                records = await asyncio.to_thread(self._read_all, r.seg, r.start, r.end)
                return self._lease(r, [item.batches for item in records])
            loop = asyncio.get_running_loop()
            deadline = loop.time() + max_wait
            while True:
                self._data.clear()
                if await self._fill(max_rows):
                    break
                remaining = deadline - loop.time()
                if remaining <= 0 or self._closed:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await self._data.wait()
            if not self._buffer:
                return None
            return await self._lease_buffered(max_rows)

    def _read(self, seg: int, start: int, end: int) -> list[_Buffered]:
        out = []
        for offset, stop, payload in self._log.read(seg, start, end, self._read_bytes):
            batches = decode_message(payload)
            out.append(_Buffered(seg, offset, stop, batches, row_count(batches)))
        return out

    def _read_all(self, seg: int, start: int, end: int) -> list[_Buffered]:
        """Every record of a recorded lease: ``_read`` returns about ``read_bytes`` at a time,
        and a replayed lease must carry exactly the records it was recorded with."""
        out: list[_Buffered] = []
        while start < end:
            chunk = self._read(seg, start, end)
            out.extend(chunk)
            start = chunk[-1].end
        return out

    async def _fill(self, max_rows: int) -> bool:
        """Buffer fsync'd records after the scan position; True when a lease is ready."""
        buffered = sum(item.rows for item in self._buffer)
        while buffered < max_rows:
            seg, offset = self._scan
            end = self._log.durable_end(seg)
            if offset < end:
                records = await asyncio.to_thread(self._read, seg, offset, end)
                self._buffer.extend(records)
                buffered += sum(item.rows for item in records)
                self._scan = (seg, records[-1].end)
            elif seg < self._log.active:
                if self._buffer:
                    return True  # a lease never spans two segments
                self._scan = (seg + 1, 0)
            else:
                return False
        return True

    async def _lease_buffered(self, max_rows: int) -> Lease:
        taken: list[_Buffered] = []
        rows = 0
        while self._buffer and (not taken or rows + self._buffer[0].rows <= max_rows):
            item = self._buffer.popleft()
            taken.append(item)
            rows += item.rows
        r = _Range(taken[0].seg, taken[0].offset, taken[-1].end, len(taken))
        lease_id = self._lease_id(r)
        previous = self._read_pos
        self._leases[lease_id] = r
        self._read_pos = (r.seg, r.end)
        try:
            await self._save_state()  # recorded before use: replays get the same range
        except BaseException:
            del self._leases[lease_id]
            self._read_pos = previous
            self._buffer.extendleft(reversed(taken))
            raise
        return self._lease(r, [item.batches for item in taken])

    def _lease(self, r: _Range, messages: list[list[Batch]]) -> Lease:
        return Lease(self._lease_id(r), messages, attempts=r.attempts, receipt=r)

    async def ack(self, lease: Lease) -> None:
        r = self._leases.pop(lease.id, None)
        if r is None:
            return
        self._messages -= r.messages
        if self._leases:
            committed = min((x.seg, x.start) for x in self._leases.values())
        else:
            committed = self._read_pos
        while committed[0] < self._log.active and committed[1] >= self._log.durable_end(
            committed[0]
        ):
            committed = (committed[0] + 1, 0)
        self._committed = committed
        await self._save_state()
        await asyncio.to_thread(self._log.delete_below, committed[0])

    async def nack(self, lease: Lease, error: str) -> int:
        r = self._leases.get(lease.id)
        if r is None:
            return lease.attempts + 1
        r.attempts += 1
        await self._save_state()
        return r.attempts

    async def dead_letter(self, lease: Lease, error: str) -> None:
        entry = {
            "lease": lease.id,
            "error": error,
            "attempts": lease.attempts,
            "at_ns": time.time_ns(),
            "messages": [encode_message(message) for message in lease.messages],
        }
        record = frame(msgspec.msgpack.encode(entry))
        await asyncio.to_thread(append_durably, self._dir / "dead-letters.log", record)
        self._dead += 1
        logger.error("spool: dead-lettered lease %s (%d rows): %s", lease.id, lease.rows, error)
        await self.ack(lease)

    async def depth(self) -> QueueDepth:
        return QueueDepth(self._messages, self._used_bytes() + self._pending_bytes, self._dead)

    async def _save_state(self) -> None:
        async with self._state_lock:
            state = _State(
                self._committed,
                self._read_pos,
                [(r.seg, r.start, r.end, r.messages, r.attempts) for r in self._leases.values()],
                self._dead,
            )
            await asyncio.to_thread(self._slots.save, msgspec.msgpack.encode(state))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._data.set()  # wake consumers waiting for data
        while self._flush_task is not None:
            await asyncio.shield(self._flush_task)
        async with self._read_lock, self._state_lock:
            self._log.close()
            self._slots.close()
            os.close(self._lock_fd)


def read_dead_letters(directory: Path) -> list[dict[str, object]]:
    """Dead-lettered leases of a spool: ``lease``, ``error``, ``attempts``, ``at_ns`` and
    ``messages`` (each decoded to a list of :class:`Batch`)."""
    path = directory / "dead-letters.log"
    if not path.exists():
        return []
    out: list[dict[str, object]] = []
    for _, _, payload in parse(path.read_bytes()).records:
        entry = msgspec.msgpack.decode(payload, type=dict[str, object])
        raw = entry["messages"]
        if not isinstance(raw, list):
            raise ValueError(f"damaged dead letter in {path}")
        entry["messages"] = [decode_message(item) for item in raw]
        out.append(entry)
    return out


def _open_sync(
    directory: Path, segment_bytes: int
) -> tuple[SegmentLog, SlotFile, int, str, _State, int]:
    directory.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(directory / "spool.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        raise ConfigurationError(
            f"the spool {directory} is in use by another process; embedded mode runs one "
            "server process per data directory (set BROKLE_REDIS_URL to run several)"
        ) from None
    id_path = directory / "spool.id"
    if not id_path.exists():
        write_durably(id_path, uuid.uuid4().hex.encode())
    instance = id_path.read_text().strip()
    slots = SlotFile(directory, "state")
    raw = slots.load()
    state = msgspec.msgpack.decode(raw, type=_State) if raw else _State((0, 0), (0, 0), [])
    log = SegmentLog(directory, segment_bytes)
    recovery = log.recover(state.committed, state.read_pos)
    if state.committed[1] > log.durable_end(state.committed[0]):
        # Segments were removed behind our back; what is left cannot be matched to the state.
        logger.error("spool: segments missing for the saved state in %s; starting over", directory)
        state = _State((log.active, 0), (log.active, 0), [], state.dead_letters)
    leases = []
    for lease in state.leases:
        if lease[2] > log.durable_end(lease[0]):
            logger.error("spool: lease %s points past the end of its segment; dropped", lease)
            continue
        leases.append(lease)
    state.leases = leases
    messages = recovery.messages + sum(lease[3] for lease in leases)
    return log, slots, lock_fd, instance, state, messages
