"""Time ranges and durations: what a query asks for, and the bounds it is given.

A request says ``{"relative": "24h"}`` (the last 24 hours up to now) or
``{"start": <RFC 3339>, "end": <RFC 3339>}`` (``end`` defaults to now). Durations are a
count and a unit: ``ms s m h d w`` (``90s``, ``15m``, ``24h``, ``7d``). The server caps a
range at :data:`MAX_RANGE_NS` per family; every reply echoes the range it applied
(:meth:`AppliedRange.meta`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from brokle_server.query.errors import field_error

NS_PER_MS: Final = 1_000_000
NS_PER_S: Final = 1_000_000_000
_UNIT_NS: Final = {
    "ms": NS_PER_MS,
    "s": NS_PER_S,
    "m": 60 * NS_PER_S,
    "h": 3600 * NS_PER_S,
    "d": 86_400 * NS_PER_S,
    "w": 7 * 86_400 * NS_PER_S,
}
_DURATION = re.compile(r"^([1-9][0-9]{0,6})(ms|s|m|h|d|w)$")
DAY_NS: Final = 86_400 * NS_PER_S

Family = Literal["spans", "metrics"]
# Longest range a query may cover: spans, logs and scores are kept 30 days by default,
# metrics 90; a range past that only scans empty partitions.
MAX_RANGE_NS: Final[dict[Family, int]] = {"spans": 31 * DAY_NS, "metrics": 93 * DAY_NS}
DURATION_PATTERN: Final = r"^[1-9][0-9]{0,6}(ms|s|m|h|d|w)$"


def parse_duration(text: str) -> int:
    """Nanoseconds in ``text`` (``15m``, ``24h``...); ValueError when malformed."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(
            f"invalid duration {text[:40]!r}: use a whole number and a unit ms, s, m, h, d or w "
            "(e.g. '15m', '24h', '7d')"
        )
    return int(match.group(1)) * _UNIT_NS[match.group(2)]


def datetime_ns(value: datetime) -> int:
    """Nanoseconds since the epoch (naive datetimes are read as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1000


def iso(ns: int) -> str:
    """RFC 3339 text in UTC with microseconds, from nanoseconds since the epoch."""
    seconds, rest = divmod(ns, NS_PER_S)
    stamp = datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_dt(value: datetime | None) -> str | None:
    """RFC 3339 text for a naive-UTC datetime read from the store."""
    if value is None:
        return None
    return iso(datetime_ns(value))


@dataclass(frozen=True, slots=True)
class AppliedRange:
    """The half-open range ``[start_ns, end_ns)`` a query was run over."""

    start_ns: int
    end_ns: int

    @property
    def start_ms(self) -> int:
        return self.start_ns // NS_PER_MS

    @property
    def end_ms(self) -> int:
        return -(-self.end_ns // NS_PER_MS)

    def meta(self) -> dict[str, Any]:
        return {"start": iso(self.start_ns), "end": iso(self.end_ns)}


class TimeRange(BaseModel):
    """Either ``relative`` (a duration back from now) or ``start`` with an optional ``end``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"relative": "24h"},
                {"start": "2026-11-20T00:00:00Z", "end": "2026-11-21T00:00:00Z"},
            ]
        },
    )

    relative: str | None = Field(
        None, description="A duration back from now: ms, s, m, h, d or w, e.g. '24h'."
    )
    start: datetime | None = Field(None, description="Range start, RFC 3339 (UTC if no offset).")
    end: datetime | None = Field(None, description="Range end, RFC 3339; defaults to now.")

    @field_validator("relative")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        if self.relative is None and self.start is None:
            raise ValueError("give 'relative' (e.g. '24h') or 'start' (and optionally 'end')")
        if self.relative is not None and (self.start is not None or self.end is not None):
            raise ValueError("give either 'relative' or 'start'/'end', not both")
        if self.relative is None and self.start is None and self.end is not None:
            raise ValueError("'end' needs 'start'")
        if (
            self.start is not None
            and self.end is not None
            and datetime_ns(self.end) <= datetime_ns(self.start)
        ):
            raise ValueError("'end' must be after 'start'")
        return self

    def resolve(
        self, now: datetime, family: Family = "spans", path: str = "timeRange"
    ) -> AppliedRange:
        """The concrete range at ``now``; 400 (naming ``path``) when it is over the cap."""
        now_ns = datetime_ns(now)
        if self.relative is not None:
            applied = AppliedRange(now_ns - parse_duration(self.relative), now_ns)
        else:
            assert self.start is not None
            end_ns = datetime_ns(self.end) if self.end is not None else now_ns
            applied = AppliedRange(datetime_ns(self.start), end_ns)
        return check_range(applied, family, path)


def check_range(applied: AppliedRange, family: Family, path: str) -> AppliedRange:
    limit = MAX_RANGE_NS[family]
    if applied.end_ns <= applied.start_ns:
        raise field_error(path, "the range ends before it starts")
    if applied.end_ns - applied.start_ns > limit:
        raise field_error(
            path, f"time range too large: at most {limit // DAY_NS} days for this query type"
        )
    if applied.start_ns < 0:
        raise field_error(path, "the range starts before 1970")
    return applied


def step_for(applied: AppliedRange, interval: str | None, max_points: int, path: str) -> int:
    """The bucket width (ns) for a time series: ``interval``, or about 120 points."""
    span = applied.end_ns - applied.start_ns
    if interval is None:
        step = max(NS_PER_S, span // 120)
        # Round up to a whole second so buckets align on readable times.
        return -(-step // NS_PER_S) * NS_PER_S
    step = parse_duration(interval)
    if step < NS_PER_S:
        raise field_error(path, "interval must be at least 1s")
    if span // step > max_points:
        raise field_error(
            path, f"interval {interval} gives over {max_points} points for this range; widen it"
        )
    return step
