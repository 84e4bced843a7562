"""Small pieces every decoder shares: rejection tallies, the accepted time window,
environment resolution, id and timestamp parsing.

Policies decided here (and tested in ``tests/unit/ingest/test_common.py``):

* **Time window.** An item whose timestamp lies before ``received_at - retention_days`` or
  more than ``max_future_skew_seconds`` after ``received_at`` is *rejected* (counted in the
  partial-success reply), never clamped: clamping would silently move data to the wrong
  day, while the window keeps one request from touching hundreds of partitions. Secondary
  times (a span's end, event times, a log's observed time) are clamped into range instead,
  because they do not choose a partition and an out-of-range value would break the insert.
* **Environment.** The key's bound environment wins; otherwise the first *valid* value of
  the item's ``brokle.environment``, the resource's ``deployment.environment.name`` /
  ``deployment.environment``, the request's fallback (e.g. the SDK's
  ``X-Brokle-Environment`` header), else ``default``. Values are lowercased; a value that is
  not ``[a-z0-9_-]{1,40}`` is skipped (the raw attribute stays in the attribute map).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final

import orjson

from brokle_server.errors import PayloadTooLarge

Row = tuple[object, ...]

NS_PER_MS: Final = 1_000_000
NS_PER_S: Final = 1_000_000_000
DEFAULT_ENVIRONMENT: Final = "default"
# ClickHouse DateTime64(9) ends in 2262; a uint64 nanosecond value past that breaks the insert.
MAX_NS: Final = 9_200_000_000_000_000_000

_ENV_RE = re.compile(r"[a-z0-9_-]{1,40}")
_HEX_RE = re.compile(r"[0-9a-fA-F]+")
_RFC3339_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9})\d*)?)?"
    r"\s*(Z|z|[+-]\d{2}:?\d{2})?"
)


@dataclass(slots=True)
class Rejections:
    """How many items a decoder rejected, grouped by reason (for OTLP partial_success)."""

    count: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, reason: str, n: int = 1) -> None:
        self.count += n
        self.reasons[reason] = self.reasons.get(reason, 0) + n

    def message(self, noun: str = "items") -> str:
        """English summary, e.g. ``rejected 3 spans: 2 x timestamp older than ...``."""
        if not self.count:
            return ""
        parts = "; ".join(f"{n} x {reason}" for reason, n in self.reasons.items())
        return f"rejected {self.count} {noun}: {parts}"


@dataclass(slots=True)
class ItemStatus:
    """The outcome of one item of a JSON batch, reported back by index (and id)."""

    index: int
    message: str
    id: str = ""
    status: int = 400

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"index": self.index, "id": self.id, "status": self.status}
        if self.message:
            out["message"] = self.message
        return out


@dataclass(slots=True)
class RowBatch:
    """Rows for one table, plus what was rejected on the way."""

    rows: list[Row]
    rejected: Rejections


class ItemBudget:
    """Counts a request's items; too many is a 413 before the rows are built.

    A 16 MiB body of minimal spans is ~400k spans, well over 1 GB as Python rows; the
    budget (``max_items_per_request``) keeps one request from taking the process down.
    The containers that hold the items (resource and scope entries, metrics, series) are
    counted separately against the same limit, before the loop over them: an empty one
    costs two bytes on the wire but a Python iteration, so 16 MiB of them would otherwise
    hold the GIL for many seconds. Counting them apart keeps ``limit`` items accepted.
    """

    __slots__ = ("containers", "containers_left", "left", "limit", "noun")

    def __init__(
        self, limit: int, noun: str, containers: str = "resource and scope entries"
    ) -> None:
        self.limit = limit
        self.left = limit
        self.noun = noun
        self.containers = containers
        self.containers_left = limit

    def take(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            self._refuse(self.noun)

    def take_containers(self, n: int) -> None:
        self.containers_left -= n
        if self.containers_left < 0:
            self._refuse(self.containers)

    def _refuse(self, noun: str) -> None:
        raise PayloadTooLarge(
            f"more than {self.limit} {noun} in one request; send smaller batches",
            details={"max_items": self.limit},
        )


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """The span of time an item's primary timestamp must fall in, in Unix nanoseconds."""

    received_ns: int
    min_ns: int
    max_ns: int
    future_skew_s: int

    @classmethod
    def build(cls, received_at: datetime, retention_days: int, future_skew_s: int) -> TimeWindow:
        now = datetime_to_ns(received_at)
        return cls(
            received_ns=now,
            min_ns=max(0, now - retention_days * 86_400 * NS_PER_S),
            max_ns=min(MAX_NS, now + future_skew_s * NS_PER_S),
            future_skew_s=future_skew_s,
        )

    def reject_reason(self, ts_ns: int) -> str | None:
        """``None`` when ``ts_ns`` is acceptable, otherwise the reason it is not."""
        if ts_ns < self.min_ns:
            return "timestamp older than the project's retention period"
        if ts_ns > self.max_ns:
            return f"timestamp more than {self.future_skew_s}s in the future"
        return None

    def clamp(self, ts_ns: int) -> int:
        """Secondary timestamps: pulled into ``[0, max_ns]`` so the insert cannot fail."""
        if ts_ns > self.max_ns:
            return self.max_ns
        return max(ts_ns, 0)


def datetime_to_ns(value: datetime) -> int:
    """Unix nanoseconds of an aware (or naive UTC) datetime, exact to the microsecond."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1000


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=1024)
def normalize_environment(value: str) -> str | None:
    """Lowercased environment name, or ``None`` when it is not a valid name."""
    value = value.strip().lower()
    return value if _ENV_RE.fullmatch(value) else None


def resolve_environment(bound: str | None, *candidates: str | None) -> str:
    """The environment a row lands in; see the module docstring for the precedence."""
    if bound:
        return bound
    for candidate in candidates:
        if candidate:
            env = normalize_environment(candidate)
            if env is not None:
                return env
    return DEFAULT_ENVIRONMENT


def resource_environment(attrs: Mapping[str, str]) -> str | None:
    """The environment a resource declares (semconv's new name first), if valid."""
    for key in ("deployment.environment.name", "deployment.environment"):
        value = attrs.get(key)
        if value:
            env = normalize_environment(value)
            if env is not None:
                return env
    return None


def parse_hex_id(value: object, nbytes: int) -> str | None:
    """A trace (16 bytes) or span (8 bytes) id from JSON text, as lowercase hex.

    OTLP/JSON ids are hex; some exporters send protobuf's standard JSON mapping (base64)
    instead, which is told apart by its length. Trace ids may also come as UUID text.
    All-zero ids are invalid in OTel and rejected. Empty input gives ``""``.
    """
    if not isinstance(value, str):
        return None
    if not value:
        return ""
    n = len(value)
    if n == 2 * nbytes and _HEX_RE.fullmatch(value):
        out = value.lower()
    elif n == 36 and nbytes == 16 and value.count("-") == 4:
        compact = value.replace("-", "")
        if not _HEX_RE.fullmatch(compact):
            return None
        out = compact.lower()
    elif n == 4 * ((nbytes + 2) // 3):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(raw) != nbytes:
            return None
        out = raw.hex()
    else:
        return None
    return None if out.count("0") == len(out) else out


def parse_timestamp_ns(value: object) -> int:
    """Unix nanoseconds from RFC 3339 text or an epoch number.

    Numbers are read by magnitude: below 1e11 seconds, below 1e14 milliseconds, below 1e17
    microseconds, else nanoseconds (unambiguous for any date between 1973 and 5138).
    Naive text times are UTC. Raises ``ValueError`` for anything else.
    """
    if isinstance(value, bool):
        raise ValueError("a timestamp cannot be a boolean")
    if isinstance(value, int | float):
        if value != value or value < 0:  # NaN or negative
            raise ValueError("timestamp must be a non-negative number")
        magnitude = abs(value)
        if magnitude < 1e11:
            return int(value * NS_PER_S)
        if magnitude < 1e14:
            return int(value * NS_PER_MS)
        if magnitude < 1e17:
            return int(value * 1000)
        if magnitude > MAX_NS:
            raise ValueError("timestamp out of range")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return parse_timestamp_ns(int(text))
        return _parse_rfc3339_ns(text)
    raise ValueError("timestamp must be RFC 3339 text or an epoch number")


def _parse_rfc3339_ns(text: str) -> int:
    m = _RFC3339_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text[:40]!r}")
    year, month, day, hh, mm, ss, frac, tz = m.groups()
    dt = datetime(int(year), int(month), int(day), int(hh or 0), int(mm or 0), int(ss or 0))
    ns = datetime_to_ns(dt)
    if frac:
        ns += int(frac.ljust(9, "0"))
    if tz and tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        ns -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60) * NS_PER_S
    if ns < 0:
        raise ValueError("timestamp before 1970")
    return ns


def dump_json(value: object) -> str:
    """Compact JSON text of a decoded JSON value (``input``, ``metadata``, an event body...).

    orjson writes the common case. It refuses two things valid JSON can hold, integers
    beyond 64 bits and nesting deeper than 254 levels, so those fall back to the stdlib
    encoder: big integers are kept exactly, NaN/Infinity become ``null`` as orjson writes
    them. Raises ``ValueError`` when even that fails (nested too deep for the stack).
    """
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        pass
    try:
        return json.dumps(_json_safe(value), separators=(",", ":"), ensure_ascii=False, default=str)
    except (ValueError, RecursionError):
        raise ValueError("JSON value nested too deeply") from None


def _json_safe(value: object) -> object:
    """``value`` with non-finite floats replaced by ``None`` (orjson's ``null``)."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def parse_tags(value: object, max_tags: int = 64, max_chars: int = 200) -> list[str]:
    """Tags from a JSON array (as text or a list) or comma-separated text; deduplicated."""
    items: object = value
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                items = orjson.loads(text)
            except orjson.JSONDecodeError:
                items = text.strip("[]").split(",")
        else:
            items = text.split(",")
    if not isinstance(items, list):
        return []
    out: list[str] = []
    for item in items:
        if isinstance(item, str | int | float) and not isinstance(item, bool):
            tag = str(item).strip()[:max_chars]
            if tag and tag not in out:
                out.append(tag)
                if len(out) >= max_tags:
                    break
    return out


def to_float(value: object) -> float | None:
    """A float from a number or numeric text, else ``None``."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def to_int(value: object) -> int:
    """A non-negative int from a number or numeric text (``"12"``, ``"12.0"``), else 0."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value > 0 else 0
    number = to_float(value)
    if number is None or number != number or number <= 0 or number > 1e18:
        return 0
    return int(number)
