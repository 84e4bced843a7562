"""Opaque cursors for keyset pagination: the last row's sort key, base64url-encoded JSON.

A cursor carries the query type and sort it was made for, so it cannot be replayed against
another listing; its values are checked for type before they are bound as parameters.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Final

import orjson

from brokle_server.query.errors import field_error

MAX_CURSOR_CHARS: Final = 1024
CursorValue = int | float | str


def encode_cursor(kind: str, sort: str, values: Sequence[CursorValue]) -> str:
    raw = orjson.dumps({"k": kind, "s": sort, "v": list(values)})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(
    token: str, kind: str, sort: str, types: Sequence[type], path: str = "cursor"
) -> list[CursorValue]:
    """The values of a cursor made by :func:`encode_cursor` for ``kind`` and ``sort``."""
    if len(token) > MAX_CURSOR_CHARS:
        raise field_error(path, "cursor is too long")
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise field_error(path, "not a cursor returned by this API") from None
    if not isinstance(payload, dict) or payload.get("k") != kind:
        raise field_error(path, "not a cursor returned by this API")
    if payload.get("s") != sort:
        raise field_error(path, "this cursor was made for another sort order")
    values = payload.get("v")
    if not isinstance(values, list) or len(values) != len(types):
        raise field_error(path, "not a cursor returned by this API")
    out: list[CursorValue] = []
    for value, expected in zip(values, types, strict=True):
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not expected:
            raise field_error(path, "not a cursor returned by this API")
        if isinstance(value, str) and len(value) > 256:
            raise field_error(path, "not a cursor returned by this API")
        out.append(value)  # type: ignore[arg-type]  # checked against ``types`` above
    return out
