"""OTLP ``AnyValue`` → text, for protobuf messages and OTLP/JSON objects alike.

Attribute maps are ``Map(String, String)``, so every value is flattened to one string:

====================  ======================================================
AnyValue              text
====================  ======================================================
string                as is
int                   decimal (``"42"``)
double                Python ``repr`` (``"0.7"``, ``"1e+20"``, ``"nan"``)
bool                  ``"true"`` / ``"false"``
bytes                 base64
array / kvlist        compact JSON (``["a",1]``, ``{"k":"v"}``); bytes inside as base64,
                      NaN/Inf inside as ``null`` (see :func:`~.common.dump_json`)
====================  ======================================================

This is the hot path of trace ingest (about a dozen attributes per LLM span), so the loops
are written for CPython: the common case — a string value — is read without asking the
oneof which member is set, and limits are checked only on long values.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any, Final

from brokle_server.ingest.common import dump_json

# Promoted prompt/completion keys are exempt from the attribute value cap: the span builder
# applies the (larger) input/output cap after it has taken them out of the map.
IO_KEYS: Final = frozenset(
    {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "input.value",
        "output.value",
        "gen_ai.prompt",
        "gen_ai.completion",
    }
)
_MAX_DEPTH: Final = 16
_TRUNCATED: Final = "[nested too deep]"


class AttrLimits:
    """The three attribute limits, held as plain ints for the hot loops."""

    __slots__ = ("max_count", "max_key", "max_value")

    def __init__(self, max_count: int, max_key: int, max_value: int) -> None:
        self.max_count = max_count
        self.max_key = max_key
        self.max_value = max_value


def _fmt_double(value: float) -> str:
    return repr(value)


def _bytes_text(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


# --------------------------------------------------------------------------- protobuf


def pb_text(v: Any) -> str:
    """One protobuf ``AnyValue`` as text (see the module table)."""
    s: str = v.string_value
    if s:
        return s
    which = v.WhichOneof("value")
    if which == "int_value":
        return str(v.int_value)
    if which == "double_value":
        return _fmt_double(v.double_value)
    if which == "bool_value":
        return "true" if v.bool_value else "false"
    if which == "array_value" or which == "kvlist_value":
        return dump_json(pb_py(v, 0))
    if which == "bytes_value":
        return _bytes_text(v.bytes_value)
    return ""


def pb_py(v: Any, depth: int) -> object:
    """One protobuf ``AnyValue`` as a JSON-ready Python value."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if depth >= _MAX_DEPTH:
        return _TRUNCATED
    if which == "array_value":
        return [pb_py(x, depth + 1) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: pb_py(kv.value, depth + 1) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return _bytes_text(v.bytes_value)
    return None


def pb_attributes(kvs: Any, limits: AttrLimits, out: dict[str, str]) -> tuple[int, int]:
    """Flatten repeated ``KeyValue`` into ``out``; returns (dropped, truncated) counts."""
    n = len(kvs)
    dropped = 0
    if n > limits.max_count:
        dropped = n - limits.max_count
        kvs = kvs[: limits.max_count]
    for kv in kvs:
        v = kv.value
        s: str = v.string_value
        out[kv.key] = s if s else pb_text(v)
    if not out:
        return dropped, 0
    long_keys, truncated = enforce_lengths(out, limits)
    return dropped + long_keys, truncated


def enforce_lengths(out: dict[str, str], limits: AttrLimits) -> tuple[int, int]:
    """Drop attributes with over-long keys and cut over-long values: (dropped, truncated).

    Two C-level passes (``max(map(len, ...))``) replace two ``len`` calls per attribute in
    the flattening loops; the slow path runs only when a limit is actually exceeded.
    """
    dropped = 0
    truncated = 0
    max_value = limits.max_value
    if max(map(len, out.values())) > max_value:
        for key, value in out.items():
            if len(value) > max_value and key not in IO_KEYS:
                out[key] = value[:max_value]
                truncated += 1
    max_key = limits.max_key
    if max(map(len, out)) > max_key:
        for key in [k for k in out if len(k) > max_key]:
            del out[key]
            dropped += 1
    return dropped, truncated


# --------------------------------------------------------------------------- OTLP/JSON


def json_text(v: object) -> str:
    """One OTLP/JSON ``AnyValue`` object as text (see the module table)."""
    if not isinstance(v, dict):
        return ""
    s = v.get("stringValue")
    if s is None:
        s = v.get("string_value")
    if isinstance(s, str):
        return s
    for key, x in v.items():
        if key in ("intValue", "int_value"):
            return str(int(x))
        if key in ("doubleValue", "double_value"):
            return _fmt_double(float(x))
        if key in ("boolValue", "bool_value"):
            return "true" if x is True or x == "true" else "false"
        if key in ("arrayValue", "array_value", "kvlistValue", "kvlist_value"):
            return dump_json(json_py(v, 0))
        if key in ("bytesValue", "bytes_value"):
            return x if isinstance(x, str) else ""
    return ""


def json_py(v: object, depth: int) -> object:
    """One OTLP/JSON ``AnyValue`` object as a JSON-ready Python value."""
    if not isinstance(v, dict):
        return None
    for key, x in v.items():
        if key in ("stringValue", "string_value"):
            return x if isinstance(x, str) else str(x)
        if key in ("intValue", "int_value"):
            return int(x)
        if key in ("doubleValue", "double_value"):
            return float(x)
        if key in ("boolValue", "bool_value"):
            return x is True or x == "true"
        if key in ("bytesValue", "bytes_value"):
            return x if isinstance(x, str) else None
        if depth >= _MAX_DEPTH:
            return _TRUNCATED
        if key in ("arrayValue", "array_value"):
            values = x.get("values") if isinstance(x, dict) else None
            return [json_py(e, depth + 1) for e in values or ()]
        if key in ("kvlistValue", "kvlist_value"):
            values = x.get("values") if isinstance(x, dict) else None
            return {
                str(kv.get("key", "")): json_py(kv.get("value"), depth + 1)
                for kv in values or ()
                if isinstance(kv, dict)
            }
    return None


def json_attributes(items: object, limits: AttrLimits, out: dict[str, str]) -> tuple[int, int]:
    """Flatten an OTLP/JSON ``attributes`` array into ``out``; returns (dropped, truncated)."""
    if not isinstance(items, list):
        return 0, 0
    dropped = 0
    if len(items) > limits.max_count:
        dropped = len(items) - limits.max_count
        items = items[: limits.max_count]
    for kv in items:
        key = kv.get("key")
        if not isinstance(key, str):
            dropped += 1
            continue
        v = kv.get("value")
        s = v.get("stringValue") if isinstance(v, dict) else None
        out[key] = s if isinstance(s, str) else json_text(v)
    if not out:
        return dropped, 0
    long_keys, truncated = enforce_lengths(out, limits)
    return dropped + long_keys, truncated


def plain_attributes(
    values: Mapping[str, object] | Iterable[tuple[str, object]],
    limits: AttrLimits,
    out: dict[str, str],
) -> tuple[int, int]:
    """Flatten a plain JSON object (native batch ``metadata``) the same way."""
    pairs = values.items() if isinstance(values, Mapping) else values
    dropped = 0
    truncated = 0
    for key, value in pairs:
        if len(out) >= limits.max_count or not isinstance(key, str) or len(key) > limits.max_key:
            dropped += 1
            continue
        if isinstance(value, str):
            s = value
        elif value is None:
            continue
        elif isinstance(value, bool):
            s = "true" if value else "false"
        elif isinstance(value, int | float):
            s = repr(value) if isinstance(value, float) else str(value)
        else:
            s = dump_json(value)
        if len(s) > limits.max_value and key not in IO_KEYS:
            s = s[: limits.max_value]
            truncated += 1
        out[key] = s
    return dropped, truncated
