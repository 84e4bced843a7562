"""Page-based pagination for catalog listings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_PAGE_SIZE = 200


@dataclass(frozen=True, slots=True)
class PageRequest:
    page: int = 1
    limit: int = 50

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Any]
    total: int
    request: PageRequest

    def meta(self) -> dict[str, Any]:
        return {
            "page": self.request.page,
            "limit": self.request.limit,
            "total": self.total,
            "has_more": self.request.offset + len(self.items) < self.total,
        }
