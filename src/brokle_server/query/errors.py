"""Errors of the query layer: 400s that name the offending field, in one shape.

Request validation errors (FastAPI's, from the pydantic models) are rewritten here too, so a
client sees ``filters[0].op`` rather than ``body.traces.filters.0.op``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from brokle_server.errors import InvalidInput, ValidationFailed

# The ``queryType`` tags; pydantic puts the tag in an error's location for a tagged union.
QUERY_TYPES: Final = (
    "aggregate",
    "range",
    "rate",
    "traces",
    "trace",
    "sessions",
    "users",
    "analytics",
    "logs",
)


def field_error(path: str, message: str) -> ValidationFailed:
    """A 400 naming ``path`` (``filters[2].value``)."""
    return ValidationFailed(
        f"Invalid field '{path}': {message}", details=[{"field": path, "message": message}]
    )


def field_path(loc: Sequence[Any]) -> str:
    """``('body', 'traces', 'filters', 0, 'op')`` → ``filters[0].op``."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
        if parts and parts[0] in QUERY_TYPES:
            parts = parts[1:]
    elif parts and parts[0] in ("query", "path"):
        parts = parts[1:]
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _is_union_label(str(part)):
            continue
        else:
            text += f".{part}" if text else str(part)
    return text or "body"


_TYPE_LABELS: Final = frozenset({"str", "int", "float", "bool", "none", "list", "dict", "datetime"})


def _is_union_label(part: str) -> bool:
    """pydantic names the members of a union in error locations (``str``, ``list[str]``,
    ``function-after[...]``); they are not field names."""
    return part in _TYPE_LABELS or "[" in part or part.startswith("function-")


def _message(error: dict[str, Any]) -> tuple[str, str]:
    kind = error.get("type", "")
    path = field_path(error.get("loc", ()))
    message = str(error.get("msg", "invalid"))
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return "queryType", f"must be one of {', '.join(QUERY_TYPES)}"
    if kind == "extra_forbidden":
        return path, "unknown field"
    message = message.removeprefix("Value error, ")
    return path, message


def request_error(errors: Sequence[dict[str, Any]]) -> InvalidInput:
    """One 400 for FastAPI's validation errors of a query request."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return InvalidInput("Request body is not valid JSON", code="invalid_json")
    details = [dict(zip(("field", "message"), _message(e), strict=True)) for e in errors]
    if not details:
        details = [{"field": "body", "message": "invalid"}]
    first = details[0]
    return ValidationFailed(
        f"Invalid field '{first['field']}': {first['message']}", details=details
    )
