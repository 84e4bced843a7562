"""The management API's response envelope: ``{success, data, error, meta}``."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable error code.")
    message: str = Field(description="What went wrong and what to change.")
    details: Any = Field(None, description="Field-level problems or extra context.")


class PageMeta(BaseModel):
    page: int
    limit: int
    total: int
    has_more: bool


class Envelope(BaseModel, Generic[T]):
    success: bool = True
    data: T | None = None
    error: ErrorBody | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


def ok(data: Any, **meta: Any) -> dict[str, Any]:
    """A success envelope; ``meta`` keys are passed through."""
    return {"success": True, "data": data, "error": None, "meta": meta}


def failure(code: str, message: str, details: Any = None, **meta: Any) -> dict[str, Any]:
    return {
        "success": False,
        "data": None,
        "error": {"code": code, "message": message, "details": details},
        "meta": meta,
    }
