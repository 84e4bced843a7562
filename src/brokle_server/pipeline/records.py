"""On-disk record framing for the spool: segments, dead letters and the state slots.

A record is ``length (u32 LE) | crc32 (u32 LE) | payload``. The checksum covers the length
bytes and the payload, so a tail torn by ``kill -9`` or power loss, a zero-filled extent the
file system exposed after a crash, or a damaged length all fail the check and end the scan.
Everything here is blocking file I/O: callers run it in a worker thread.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

HEADER = struct.Struct("<II")
MAX_PAYLOAD = (1 << 31) - 1
_SCAN_CHUNK = 4 << 20


def frame(payload: bytes) -> bytes:
    length = len(payload)
    if not 0 < length <= MAX_PAYLOAD:
        raise ValueError(f"record payload of {length} bytes")
    crc = zlib.crc32(payload, zlib.crc32(length.to_bytes(4, "little")))
    return HEADER.pack(length, crc) + payload


@dataclass(frozen=True, slots=True)
class Parsed:
    """Records found in a buffer: ``(offset, end, payload)`` relative to the buffer's base."""

    records: list[tuple[int, int, bytes]]
    stop: int
    """Offset just after the last whole, valid record."""
    need: int
    """0: the buffer ended on a record boundary; >0: bytes the next record needs in all;
    -1: the data at ``stop`` is not a valid record (torn or damaged)."""


def parse(buf: bytes, base: int = 0, limit: int | None = None) -> Parsed:
    """Split ``buf`` into records; stop after ``limit`` records when given."""
    records: list[tuple[int, int, bytes]] = []
    pos, size, header = 0, len(buf), HEADER.size
    while pos < size and (limit is None or len(records) < limit):
        if size - pos < header:
            return Parsed(records, base + pos, header)
        length, crc = HEADER.unpack_from(buf, pos)
        if length == 0:
            return Parsed(records, base + pos, -1)
        end = pos + header + length
        if end > size:
            return Parsed(records, base + pos, header + length)
        payload = buf[pos + header : end]
        if zlib.crc32(payload, zlib.crc32(buf[pos : pos + 4])) != crc:
            return Parsed(records, base + pos, -1)
        records.append((base + pos, base + end, payload))
        pos = end
    return Parsed(records, base + pos, 0)


def read_records(fd: int, start: int, end: int, max_bytes: int) -> list[tuple[int, int, bytes]]:
    """Whole records in ``[start, end)`` of an open file, about ``max_bytes`` worth (at least
    one). The range must hold valid records: it is data that was fsync'd and recovered."""
    want = min(end - start, max_bytes)
    buf = os.pread(fd, want, start)
    parsed = parse(buf, start)
    if not parsed.records and parsed.need > 0:
        # One record larger than max_bytes: read exactly that record.
        buf = os.pread(fd, parsed.need, start)
        parsed = parse(buf, start)
    if not parsed.records:
        raise OSError(f"spool data at offset {start} is unreadable")
    return parsed.records


def scan_file(path: Path, start: int, count_from: int) -> tuple[int, int]:
    """Validate the records of a file from ``start``.

    Returns the offset where valid data ends and how many records begin at or after
    ``count_from``. Bytes after the returned offset are torn or damaged.
    """
    count = 0
    pos = start
    with path.open("rb") as file:
        file.seek(start)
        carry = b""
        while True:
            chunk = file.read(_SCAN_CHUNK)
            if not chunk:
                return pos, count
            buf = carry + chunk
            parsed = parse(buf, pos)
            count += sum(1 for offset, _, _ in parsed.records if offset >= count_from)
            if parsed.need < 0:
                return parsed.stop, count
            carry = buf[parsed.stop - pos :]
            pos = parsed.stop


def fsync_dir(path: Path) -> None:
    """Make a file creation, rename or deletion in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically: write a temporary file, fsync, rename, fsync the dir."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    tmp.replace(path)
    fsync_dir(path.parent)


def append_durably(path: Path, record: bytes) -> None:
    """Append to ``path`` and fsync (for rare writes such as dead letters)."""
    with path.open("ab") as file:
        file.write(record)
        file.flush()
        os.fsync(file.fileno())


class SlotFile:
    """Small state saved durably with one fdatasync per save.

    Two slot files are written alternately, each holding one framed record that starts with a
    sequence number; loading takes the valid slot with the highest sequence. A save torn by a
    crash only damages the older slot, so no rename and no directory fsync are needed.
    """

    def __init__(self, directory: Path, name: str) -> None:
        self._paths = [directory / f"{name}.0", directory / f"{name}.1"]
        created = False
        self._fds: list[int] = []
        for path in self._paths:
            created |= not path.exists()
            self._fds.append(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        if created:
            fsync_dir(directory)
        self._seq = 0

    def load(self) -> bytes | None:
        best: tuple[int, bytes] | None = None
        for fd in self._fds:
            size = os.fstat(fd).st_size
            parsed = parse(os.pread(fd, size, 0), limit=1)
            if parsed.records:
                payload = parsed.records[0][2]
                seq = int.from_bytes(payload[:8], "little")
                if best is None or seq > best[0]:
                    best = (seq, payload[8:])
        if best is None:
            return None
        self._seq = best[0]
        return best[1]

    def save(self, payload: bytes) -> None:
        self._seq += 1
        fd = self._fds[self._seq % 2]
        record = frame(self._seq.to_bytes(8, "little") + payload)
        os.pwrite(fd, record, 0)
        os.fdatasync(fd)

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []
