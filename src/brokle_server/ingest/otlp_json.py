"""OTLP/JSON → protobuf message, driven by the message descriptors.

Logs and metrics bodies in JSON are converted into the same generated classes the protobuf
path parses, so one walker per signal handles both encodings (traces have a faster direct
JSON walker in :mod:`ingest.otlp_traces`). The mapping follows the OTLP spec's deviations
from protobuf's JSON mapping: ``traceId``/``spanId`` (and ``parentSpanId``) are hex; other
bytes are base64; enums are integers (names are accepted too); 64-bit integers may be
strings or numbers; doubles may be ``"NaN"``/``"Infinity"``. Keys may be lowerCamelCase or
the original snake_case names (the OpenTelemetry Collector accepts both); unknown keys are
ignored, as the spec requires.

``google.protobuf.json_format`` is not used: it decodes ids as base64 and is slower.
"""

from __future__ import annotations

import base64
import binascii
from functools import cache
from typing import Any, Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from brokle_server.ingest.common import parse_hex_id
from brokle_server.ingest.decode import PayloadDecodeError

_ID_FIELDS: Final = {"trace_id": 16, "span_id": 8, "parent_span_id": 8}
_INT_TYPES: Final = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
    }
)
_MAX_DEPTH: Final = 64


@cache
def _fields(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    by_key: dict[str, FieldDescriptor] = {}
    for field in descriptor.fields:
        by_key[field.name] = field
        by_key[field.json_name] = field
    return by_key


class _Bad(Exception):
    """A value of the wrong shape; turned into PayloadDecodeError with its path."""


def json_to_message(doc: object, message: Any, what: str) -> None:
    """Fill ``message`` from an OTLP/JSON object; a malformed body raises a decode error."""
    try:
        _fill(doc, message, 0)
    except _Bad as exc:
        raise PayloadDecodeError(f"invalid {what} body: {exc}") from None
    except (ValueError, TypeError, OverflowError, AttributeError) as exc:
        raise PayloadDecodeError(f"invalid {what} body: {exc}") from None


def json_array(obj: object, camel: str, snake: str) -> list[Any]:
    """The entries :func:`json_to_message` reads from the repeated field ``camel``/``snake``.

    For counting a body's items before the conversion. Both keys are read, as the conversion
    appends the entries of both; anything of the wrong shape counts as empty here (the
    conversion reports it).
    """
    if not isinstance(obj, dict):
        return []
    value = obj.get(camel)
    items: list[Any] = value if isinstance(value, list) else []
    if snake != camel:
        other = obj.get(snake)
        if isinstance(other, list) and other:
            items = items + other
    return items


def _fill(doc: object, message: Any, depth: int) -> None:
    if not isinstance(doc, dict):
        raise _Bad(f"{message.DESCRIPTOR.name} must be a JSON object")
    if depth > _MAX_DEPTH:
        raise _Bad("nested too deeply")
    fields = _fields(message.DESCRIPTOR)
    for key, value in doc.items():
        field = fields.get(key)
        if field is None or value is None:
            continue
        name = field.name
        if field.is_repeated:
            if not isinstance(value, list):
                raise _Bad(f"{key} must be an array")
            container = getattr(message, name)
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                for item in value:
                    _fill(item, container.add(), depth + 1)
            else:
                container.extend([_scalar(field, item) for item in value])
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            child = getattr(message, name)
            child.SetInParent()  # an empty object still selects a oneof member
            _fill(value, child, depth + 1)
        else:
            setattr(message, name, _scalar(field, value))


def _scalar(field: FieldDescriptor, value: object) -> object:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        if not isinstance(value, str):
            raise _Bad(f"{field.json_name} must be a string")
        return value
    if kind in _INT_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | str | float):
            raise _Bad(f"{field.json_name} must be an integer")
        if isinstance(value, float) and not value.is_integer():
            raise _Bad(f"{field.json_name} must be an integer")
        return int(value)
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        if isinstance(value, str):  # float() reads "NaN", "Infinity" and "-Infinity"
            return float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Bad(f"{field.json_name} must be a number")
        return float(value)
    if kind == FieldDescriptor.TYPE_BOOL:
        if not isinstance(value, bool):
            raise _Bad(f"{field.json_name} must be true or false")
        return value
    if kind == FieldDescriptor.TYPE_ENUM:
        if isinstance(value, str) and not value.lstrip("-").isdigit():
            enum_type = field.enum_type
            enum_value = enum_type.values_by_name.get(value) if enum_type else None
            return enum_value.number if enum_value is not None else 0
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise _Bad(f"{field.json_name} must be an enum number")
        return int(value)
    if kind == FieldDescriptor.TYPE_BYTES:
        return _bytes(field, value)
    raise _Bad(f"unsupported field {field.json_name}")  # pragma: no cover


def _bytes(field: FieldDescriptor, value: object) -> bytes:
    if not isinstance(value, str):
        raise _Bad(f"{field.json_name} must be a string")
    size = _ID_FIELDS.get(field.name)
    if size is not None:
        if not value.strip("0"):  # empty or all-zero: the id is absent
            return b""
        hex_id = parse_hex_id(value, size)
        if hex_id is None:
            raise _Bad(f"{field.json_name} must be {2 * size} hex characters")
        return bytes.fromhex(hex_id) if hex_id else b""
    try:
        return base64.b64decode(value, validate=False)
    except (binascii.Error, ValueError):
        raise _Bad(f"{field.json_name} must be base64") from None
