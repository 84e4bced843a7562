"""Query parameters shared by listing endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from brokle_server.core.pagination import MAX_PAGE_SIZE, PageRequest


def page_params(
    page: Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number.")] = 1,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page.")] = 50,
) -> PageRequest:
    return PageRequest(page=page, limit=limit)


PageDep = Annotated[PageRequest, Depends(page_params)]
