"""What every query request shares: the project it reads, and list paging."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from brokle_server.query.cursor import MAX_CURSOR_CHARS
from brokle_server.query.filters import Filter

MAX_FILTERS = 30


class QueryBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    projectId: uuid.UUID | None = Field(
        None,
        description="The project to read. Required with a user session; with an API key it "
        "defaults to the key's project (another project id answers 404).",
    )


class ListQuery(QueryBase):
    """A paged listing: ``limit`` rows after ``cursor`` (from the previous page's meta)."""

    filters: list[Filter] = Field(
        default_factory=list, max_length=MAX_FILTERS, description="Conditions, all must hold."
    )
    order: Literal["asc", "desc"] = Field("desc", description="Sort direction.")
    limit: int = Field(50, ge=1, le=1000, description="Rows per page.")
    cursor: str | None = Field(
        None, max_length=MAX_CURSOR_CHARS, description="meta.cursor of the previous page."
    )
