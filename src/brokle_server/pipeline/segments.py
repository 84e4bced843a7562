"""The spool's segment files: append with fsync, read back, recover after a crash, delete.

Segments are ``seg-<n>.log`` with consecutive numbers. Only the highest, the *active* one, is
appended to; a segment is sealed once the next exists, and every byte of a sealed segment was
fsync'd before the roll. Recovery never appends to a segment it scanned: it truncates a torn
tail and starts a fresh active segment, so damaged bytes are never followed by good ones.

All methods block; the spool calls them from worker threads. ``_lock`` guards the metadata
(sizes, active segment, read descriptors) shared between the append thread and readers.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from brokle_server.pipeline.records import fsync_dir, read_records, scan_file

logger = logging.getLogger(__name__)

Position = tuple[int, int]
"""(segment number, byte offset)."""


@dataclass(frozen=True, slots=True)
class Recovery:
    messages: int
    """Records at or after the position the caller asked to count from."""
    torn_bytes: int
    """Bytes dropped from segment tails: records whose enqueue never returned."""


class SegmentLog:
    def __init__(self, directory: Path, segment_bytes: int) -> None:
        self._dir = directory
        self._segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._sizes: dict[int, int] = {}
        self._active = 0
        self._fd = -1
        self._read_fds: dict[int, int] = {}
        self.fsyncs = 0

    def _path(self, seg: int) -> Path:
        return self._dir / f"seg-{seg:012d}.log"

    def recover(self, committed: Position, count_from: Position) -> Recovery:
        """Scan segments from ``committed``, drop torn tails and acknowledged segments."""
        found = sorted(int(p.name[4:-4]) for p in self._dir.glob("seg-*.log"))
        messages = torn = 0
        for seg in found:
            path = self._path(seg)
            if seg < committed[0]:
                path.unlink()
                continue
            start = committed[1] if seg == committed[0] else 0
            if seg < count_from[0]:
                count_at = 1 << 62
            else:
                count_at = count_from[1] if seg == count_from[0] else 0
            valid_end, count = scan_file(path, start, count_at)
            size = path.stat().st_size
            if valid_end < size:
                logger.warning(
                    "spool: dropping %d torn bytes at the end of %s", size - valid_end, path.name
                )
                with path.open("r+b") as file:
                    file.truncate(valid_end)
                    os.fsync(file.fileno())
                torn += size - valid_end
            self._sizes[seg] = valid_end
            messages += count
        self._active = max([committed[0] - 1, *found]) + 1
        self._open_active()
        return Recovery(messages, torn)

    def _open_active(self) -> None:
        path = self._path(self._active)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.ftruncate(self._fd, 0)
        fsync_dir(self._dir)  # the new file must survive a crash with the data in it
        self._sizes[self._active] = 0

    @property
    def active(self) -> int:
        return self._active

    def durable_end(self, seg: int) -> int:
        """Bytes of ``seg`` that are fsync'd (0 when the segment is gone)."""
        return self._sizes.get(seg, 0)

    def total_bytes(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    def append(self, records: list[bytes]) -> tuple[int, list[int]]:
        """Write records contiguously to the active segment and fdatasync them.

        Returns the segment and the end offset of each record. On failure the segment is cut
        back to where it was, so a half-written record never sits before later good ones.
        """
        with self._lock:
            if self._sizes[self._active] >= self._segment_bytes:
                os.close(self._fd)
                self._active += 1
                self._open_active()
            seg, start = self._active, self._sizes[self._active]
        data = b"".join(records)
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fdatasync(self._fd)
        except OSError:
            os.ftruncate(self._fd, start)
            raise
        self.fsyncs += 1
        ends = []
        pos = start
        for record in records:
            pos += len(record)
            ends.append(pos)
        with self._lock:
            self._sizes[seg] = pos
        return seg, ends

    def read(self, seg: int, start: int, end: int, max_bytes: int) -> list[tuple[int, int, bytes]]:
        """Whole records in ``[start, end)`` of ``seg``, about ``max_bytes`` worth."""
        with self._lock:
            fd = self._read_fds.get(seg)
            if fd is None:
                fd = self._read_fds[seg] = os.open(self._path(seg), os.O_RDONLY)
        return read_records(fd, start, end, max_bytes)

    def delete_below(self, seg: int) -> None:
        """Delete segments numbered below ``seg``: every record in them is acknowledged."""
        with self._lock:
            doomed = [s for s in self._sizes if s < seg and s != self._active]
            for s in doomed:
                del self._sizes[s]
                fd = self._read_fds.pop(s, None)
                if fd is not None:
                    os.close(fd)
        for s in doomed:
            self._path(s).unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            for fd in self._read_fds.values():
                os.close(fd)
            self._read_fds.clear()
