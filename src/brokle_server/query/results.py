"""What a reader returns, and the ``meta`` every query reply carries."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from brokle_server.query.timerange import AppliedRange


@dataclass(slots=True)
class QueryResult:
    """``data`` for the envelope, and the range, cursor and extras for its ``meta``."""

    data: Any
    applied: AppliedRange
    cursor: str | None = None
    has_more: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def meta(self) -> dict[str, Any]:
        return {
            "timeRange": self.applied.meta(),
            "cursor": self.cursor,
            "hasMore": self.has_more,
            **self.extra,
        }


def number(value: Any) -> float | None:
    """A JSON-safe float: NaN and infinities (an aggregate over no rows) become null."""
    if value is None:
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None
