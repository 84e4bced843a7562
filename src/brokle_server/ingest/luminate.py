"""Luminate JSON metric batches → series and sample rows.

Body (``POST /api/v1/write`` with ``Content-Type: application/json``)::

    {"metrics": [
        {"name": "api_latency_ms", "value": 12.5,
         "timestamp": "2024-12-09T10:00:00Z",      # or epoch seconds / milliseconds
         "dimensions": {"region": "eu", "endpoint": "/chat"}}
    ]}

Rules: ``name`` matches ``[a-zA-Z_:][a-zA-Z0-9_:]*`` (≤ 200 characters); ``value`` is a
finite number; ``timestamp`` is RFC 3339 text or an epoch number (seconds below 1e11,
milliseconds below 1e14) and defaults to the time received; ``dimensions`` has at most 20
entries, keys ``[a-zA-Z_][a-zA-Z0-9_]*`` not starting with ``__`` (≤ 128 characters),
values strings, numbers or booleans (≤ ``max_label_value_chars``). Dimensions become labels;
the tenant is the key's project (no ``_tenant_id`` dimension is stored or accepted).
Series are typed ``gauge``.

An invalid entry is reported in ``errors`` (index + message) and the rest are kept; the
caller answers 400 when nothing was valid, else 200 with the errors listed. That includes a
number beyond the range of a float (``1e400``, a 400-digit integer): valid JSON that orjson
refuses, so such a body is read again with msgspec, which keeps it for ``_entry`` to reject.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any, Final

import msgspec

from brokle_server.core.types import ProjectScope
from brokle_server.errors import InvalidInput
from brokle_server.ingest.common import NS_PER_MS, ItemStatus, Rejections, parse_timestamp_ns
from brokle_server.ingest.config import IngestSettings
from brokle_server.ingest.decode import PayloadDecodeError, load_json_object
from brokle_server.ingest.series import MetricBatch, SeriesCollector

MAX_DIMENSIONS: Final = 20
MAX_NAME_CHARS: Final = 200
MAX_DIMENSION_KEY_CHARS: Final = 128
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_DIMENSION = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_DEFAULT_SETTINGS: Final = IngestSettings()
# Reads float literals with float(): 1e400 becomes inf instead of a decode error.
_WIDE_NUMBERS: Final = msgspec.json.Decoder(float_hook=float)


class _Invalid(Exception):
    pass


def decode_luminate(
    body: bytes,
    scope: ProjectScope,
    received_at: datetime,
    *,
    settings: IngestSettings = _DEFAULT_SETTINGS,
    fallback_environment: str | None = None,
) -> MetricBatch:
    """Decode a Luminate ``{"metrics": [...]}`` batch; per-entry problems go to ``errors``."""
    doc = _load(body)
    metrics = doc.get("metrics")
    if not isinstance(metrics, list):
        raise InvalidInput('body must be {"metrics": [...]}', code="invalid_payload")
    if len(metrics) > settings.max_batch_items:
        raise InvalidInput(
            f"at most {settings.max_batch_items} metrics per request, got {len(metrics)}",
            code="batch_too_large",
        )
    out = SeriesCollector(
        scope, received_at, settings.max_future_skew_seconds, fallback_environment
    )
    env = out.environment()
    rejected = Rejections()
    errors: list[ItemStatus] = []
    for index, item in enumerate(metrics):
        try:
            name, labels, ts_ms, value = _entry(item, out, settings)
        except _Invalid as exc:
            rejected.add(str(exc))
            errors.append(ItemStatus(index, str(exc)))
            continue
        out.add(env, name, labels, ts_ms, value, "gauge")
    batch = out.finish(rejected)
    batch.errors = errors
    return batch


def _load(body: bytes) -> dict[str, Any]:
    """The body's JSON object; numbers beyond float range are kept, not a decode error."""
    try:
        return load_json_object(body, "metrics batch")
    except PayloadDecodeError as error:  # orjson refuses numbers it cannot hold in a double
        try:
            doc = _WIDE_NUMBERS.decode(body)
        except (msgspec.DecodeError, RecursionError):
            raise error from None
        if not isinstance(doc, dict):
            raise error from None
        return doc


def _entry(
    item: Any, out: SeriesCollector, settings: IngestSettings
) -> tuple[str, dict[str, str], int, float]:
    if not isinstance(item, dict):
        raise _Invalid("each metric must be a JSON object")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise _Invalid("name is required")
    if len(name) > MAX_NAME_CHARS or not _NAME.fullmatch(name):
        raise _Invalid(f"invalid metric name {name[:64]!r}: use [a-zA-Z_:][a-zA-Z0-9_:]*")
    value = item.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid("value must be a number")
    try:
        value = float(value)
    except OverflowError:  # an integer beyond float range
        value = math.inf
    if not math.isfinite(value):
        raise _Invalid("value must be finite")
    raw_ts = item.get("timestamp")
    if raw_ts is None:
        ts_ms = out.received_ms
    else:
        try:
            ts_ms = parse_timestamp_ns(raw_ts) // NS_PER_MS
        except ValueError as exc:
            raise _Invalid(f"invalid timestamp: {exc}") from None
        reason = out.check_ms(ts_ms)
        if reason is not None:
            raise _Invalid(reason)
    return name, _dimensions(item.get("dimensions"), settings), ts_ms, value


def _dimensions(raw: object, settings: IngestSettings) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _Invalid("dimensions must be a JSON object")
    if len(raw) > MAX_DIMENSIONS:
        raise _Invalid(f"at most {MAX_DIMENSIONS} dimensions, got {len(raw)}")
    labels: dict[str, str] = {}
    for key, value in raw.items():
        if len(key) > MAX_DIMENSION_KEY_CHARS or not _DIMENSION.fullmatch(key):
            raise _Invalid(f"invalid dimension name {key[:64]!r}: use [a-zA-Z_][a-zA-Z0-9_]*")
        if key.startswith("__") or key == "_tenant_id":
            raise _Invalid(f"dimension name {key!r} is reserved (the tenant comes from the key)")
        if isinstance(value, str):
            text = value
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = str(value)
        else:
            raise _Invalid(f"dimension {key!r} must be a string, number or boolean")
        if len(text) > settings.max_label_value_chars:
            raise _Invalid(f"dimension {key!r} longer than {settings.max_label_value_chars}")
        if text:
            labels[key] = text
    return labels
