"""Score bodies → score rows: the brokle SDK's ``POST /v1/scores`` and ``/v1/scores/batch``.

What the SDK (0.4) sends, one score (``/v1/scores``)::

    {"trace_id": "<32 hex>", "name": "accuracy", "value": 0.9, "type": "NUMERIC",
     "source": "code", "span_id": "<16 hex>"?, "string_value": "..."?, "reason": "..."?,
     "metadata": {...}?}

and a batch (``/v1/scores/batch``): ``{"scores": [<the same objects>]}``. It reads the reply
through its envelope check: ``{"success": true, "data": ...}`` (anything else raises
``ScoreError`` with ``error.message``). See :meth:`ScoreBatch.single_response` and
:meth:`ScoreBatch.batch_response` for the ``data`` to send back.

Mapping: ``type`` (or ``data_type``) → ``data_type`` (NUMERIC | CATEGORICAL | BOOLEAN);
``source`` code → SDK, llm → EVAL, human → ANNOTATION (API/SDK/ANNOTATION/EVAL also
accepted, any case; absent → API); ``reason`` (or ``comment``) → ``comment``. Optional
``id`` (the client's score id, for idempotent retries), ``timestamp`` and ``environment``
are accepted too. ``metadata`` has no column in the scores table and is ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from brokle_server.core.ids import IdFactory, uuid7
from brokle_server.core.types import ProjectScope
from brokle_server.errors import InvalidInput, ValidationFailed
from brokle_server.ingest.common import (
    NS_PER_MS,
    ItemStatus,
    Row,
    parse_hex_id,
    parse_timestamp_ns,
)
from brokle_server.ingest.config import IngestSettings
from brokle_server.ingest.decode import PayloadDecodeError
from brokle_server.ingest.spans import IngestContext
from brokle_server.store.schema import SCORE_COLUMNS

_DEFAULT_SETTINGS: Final = IngestSettings()
_SOURCES: Final = {
    "code": "SDK",
    "sdk": "SDK",
    "llm": "EVAL",
    "eval": "EVAL",
    "human": "ANNOTATION",
    "annotation": "ANNOTATION",
    "api": "API",
}
_DATA_TYPES: Final = frozenset({"NUMERIC", "CATEGORICAL", "BOOLEAN"})
_ROW_ORDER: Final = (
    "project_id", "environment", "retention_days", "score_id", "trace_id", "span_id", "name",
    "value", "string_value", "data_type", "source", "comment", "timestamp", "ingested_at",
)  # fmt: skip
if tuple(SCORE_COLUMNS) != _ROW_ORDER:  # pragma: no cover - guards a schema change
    raise RuntimeError("store.schema.SCORE_COLUMNS changed; update ingest.scores")

MAX_NAME_CHARS: Final = 200
MAX_ID_CHARS: Final = 128


class ScoreIn(msgspec.Struct):
    """One score as the SDK (or the native batch's ``score`` body) sends it."""

    trace_id: str
    name: str
    value: bool | int | float | str | None = None
    type: str | None = None
    data_type: str | None = None
    source: str | None = None
    span_id: str | None = None
    string_value: str | None = None
    reason: str | None = None
    comment: str | None = None
    metadata: dict[str, Any] | None = None
    id: str | None = None
    timestamp: str | int | float | None = None
    environment: str | None = None


class _ScoreBatchIn(msgspec.Struct):
    scores: list[msgspec.Raw]


class ScoreInvalid(Exception):
    """A score breaks a rule; the message says which."""


@dataclass(slots=True)
class ScoreBatch:
    rows: list[Row] = field(default_factory=list)
    accepted: list[dict[str, object]] = field(default_factory=list)
    errors: list[ItemStatus] = field(default_factory=list)

    def single_response(self) -> dict[str, object]:
        """``data`` for ``/v1/scores`` (201): the stored score, with its ``id``."""
        return self.accepted[0]

    def batch_response(self) -> dict[str, object]:
        """``data`` for ``/v1/scores/batch``: counts, stored ids and per-item errors."""
        return {
            "created": len(self.accepted),
            "failed": len(self.errors),
            "scores": [{"id": a["id"], "index": a["index"]} for a in self.accepted],
            "errors": [e.as_dict() for e in self.errors],
        }


def build_score_row(
    ctx: IngestContext,
    score: ScoreIn,
    score_id: str,
    default_ts: str | int | float | None,
    default_source: str = "code",
) -> tuple[Row, dict[str, object]]:
    """The score's row and its reply entry; raises :class:`ScoreInvalid`.

    ``default_source`` applies when the score names none: the brokle SDK documents an omitted
    source as ``code`` (SDK); the native batch API defaults to ``api``.
    """
    trace_id = parse_hex_id(score.trace_id, 16)
    if not trace_id:
        raise ScoreInvalid("trace_id must be a 32-character hex trace id")
    span_id = ""
    if score.span_id:
        span_id = parse_hex_id(score.span_id, 8) or ""
        if not span_id:
            raise ScoreInvalid("span_id must be a 16-character hex span id")
    name = score.name.strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise ScoreInvalid(f"name must be 1 to {MAX_NAME_CHARS} characters")
    data_type = (score.data_type or score.type or "NUMERIC").upper()
    if data_type not in _DATA_TYPES:
        raise ScoreInvalid("type must be NUMERIC, CATEGORICAL or BOOLEAN")
    value, string_value = _value(data_type, score.value, score.string_value)
    source = _SOURCES.get((score.source or default_source).lower())
    if source is None:
        raise ScoreInvalid("source must be code, llm, human, API, SDK, ANNOTATION or EVAL")
    raw_ts = score.timestamp if score.timestamp is not None else default_ts
    if raw_ts is None:
        ts_ns = ctx.window.received_ns
    else:
        try:
            ts_ns = parse_timestamp_ns(raw_ts)
        except ValueError as exc:
            raise ScoreInvalid(f"invalid timestamp: {exc}") from None
        reason = ctx.window.reject_reason(ts_ns)
        if reason is not None:
            raise ScoreInvalid(reason)
    ts_ms = ts_ns // NS_PER_MS
    comment = (score.comment or score.reason or "")[: ctx.settings.max_attribute_value_chars]
    environment = ctx.environment(score.environment, None)
    row: Row = (
        ctx.project_id,
        environment,
        ctx.retention_days,
        score_id,
        trace_id,
        span_id,
        name,
        value,
        string_value,
        data_type,
        source,
        comment,
        ts_ms,
        ctx.ingested_ms,
    )
    reply: dict[str, object] = {
        "id": score_id,
        "trace_id": trace_id,
        "span_id": span_id or None,
        "name": name,
        "value": value,
        "string_value": string_value or None,
        "type": data_type,
        "source": source,
        "environment": environment,
        "timestamp": datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat(),
    }
    return row, reply


def _value(data_type: str, raw: object, string_value: str | None) -> tuple[float, str]:
    if data_type == "BOOLEAN":
        if isinstance(raw, bool):
            flag = raw
        elif isinstance(raw, int | float) and raw in (0, 1):
            flag = bool(raw)
        elif (string_value or raw) in ("true", "false"):
            flag = (string_value or raw) == "true"
        else:
            raise ScoreInvalid("a BOOLEAN score needs value true/false or 1/0")
        return (1.0 if flag else 0.0), ("true" if flag else "false")
    if data_type == "CATEGORICAL":
        label = string_value if string_value else raw if isinstance(raw, str) else None
        if not label:
            raise ScoreInvalid("a CATEGORICAL score needs string_value")
        number = _finite(raw) if not isinstance(raw, bool) else None
        return (0.0 if number is None else number), label[:MAX_NAME_CHARS]
    if isinstance(raw, bool):
        return (1.0 if raw else 0.0), string_value or ""
    number = _finite(raw)
    if number is None:
        raise ScoreInvalid("a NUMERIC score needs a finite number in value")
    return number, string_value or ""


def _finite(raw: object) -> float | None:
    """``raw`` as a finite float; ``None`` when it is not a number or beyond float range."""
    if not isinstance(raw, int | float):
        return None
    try:
        number = float(raw)  # an int of 309+ digits (msgspec keeps it exact) overflows
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _score_id(score: ScoreIn, new_id: IdFactory) -> str:
    if score.id:
        if len(score.id) > MAX_ID_CHARS:
            raise ScoreInvalid(f"id must be at most {MAX_ID_CHARS} characters")
        return score.id
    return str(new_id())


def decode_score(
    body: bytes,
    scope: ProjectScope,
    received_at: datetime,
    *,
    settings: IngestSettings = _DEFAULT_SETTINGS,
    new_id: IdFactory = uuid7,
    fallback_environment: str | None = None,
) -> ScoreBatch:
    """``/v1/scores``: one score; any problem raises ``ValidationFailed`` (400)."""
    try:
        score = msgspec.json.decode(body, type=ScoreIn)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(f"invalid score: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise PayloadDecodeError(f"invalid JSON body: {exc}") from None
    except RecursionError:
        raise PayloadDecodeError("invalid JSON body: nested too deeply") from None
    ctx = IngestContext(scope, received_at, settings, fallback_environment=fallback_environment)
    try:
        row, reply = build_score_row(ctx, score, _score_id(score, new_id), None)
    except ScoreInvalid as exc:
        raise ValidationFailed(f"invalid score: {exc}") from None
    reply["index"] = 0
    return ScoreBatch([row], [reply])


def decode_score_batch(
    body: bytes,
    scope: ProjectScope,
    received_at: datetime,
    *,
    settings: IngestSettings = _DEFAULT_SETTINGS,
    new_id: IdFactory = uuid7,
    fallback_environment: str | None = None,
) -> ScoreBatch:
    """``/v1/scores/batch``: valid scores become rows, the rest are listed in ``errors``."""
    try:
        batch = msgspec.json.decode(body, type=_ScoreBatchIn)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(f'body must be {{"scores": [...]}}: {exc}') from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise PayloadDecodeError(f"invalid JSON body: {exc}") from None
    except RecursionError:
        raise PayloadDecodeError("invalid JSON body: nested too deeply") from None
    if len(batch.scores) > settings.max_batch_items:
        raise InvalidInput(
            f"at most {settings.max_batch_items} scores per request, got {len(batch.scores)}",
            code="batch_too_large",
        )
    ctx = IngestContext(scope, received_at, settings, fallback_environment=fallback_environment)
    out = ScoreBatch()
    for index, raw in enumerate(batch.scores):
        try:
            score = msgspec.json.decode(raw, type=ScoreIn)
            row, reply = build_score_row(ctx, score, _score_id(score, new_id), None)
        except (msgspec.DecodeError, UnicodeDecodeError, ScoreInvalid) as exc:
            out.errors.append(ItemStatus(index, f"invalid score: {exc}"))
            continue
        except RecursionError:
            out.errors.append(ItemStatus(index, "invalid score: nested too deeply"))
            continue
        reply["index"] = index
        out.rows.append(row)
        out.accepted.append(reply)
    return out
