"""Queue message serialization: a list of batches as msgpack (msgspec), no pickle.

msgspec writes tz-aware datetimes as msgpack timestamps and reads them back as datetimes, but
writes naive datetimes, dates, UUIDs and Decimals as strings. So that rows come back with the
types they went in with, a message carries per batch a short list of (column, kind) pairs
found by looking at the first non-null value of each column; only those columns are
converted on decode. ClickHouse columns are homogeneous, so one sample per column is enough and the
encode path stays O(columns), not O(values).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal

import msgspec

from brokle_server.errors import InvalidInput
from brokle_server.pipeline.queue import Batch

FORMAT_VERSION = 1

_NAIVE_DATETIME, _DATE, _UUID, _DECIMAL = 1, 2, 3, 4


def _restore_naive(value: object) -> object:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _restore_date(value: object) -> object:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _restore_uuid(value: object) -> object:
    return uuid.UUID(value) if isinstance(value, str) else value


def _restore_decimal(value: object) -> object:
    return Decimal(value) if isinstance(value, str) else value


_RESTORERS: dict[int, Callable[[object], object]] = {
    _NAIVE_DATETIME: _restore_naive,
    _DATE: _restore_date,
    _UUID: _restore_uuid,
    _DECIMAL: _restore_decimal,
}


_ENCODER = msgspec.msgpack.Encoder()
# (format, batches, restore plan per batch); Batch is array-like, so it decodes directly.
_DECODER = msgspec.msgpack.Decoder(tuple[int, list[Batch], list[list[tuple[int, int]]]])


def _kind(value: object) -> int:
    if isinstance(value, datetime):
        return _NAIVE_DATETIME if value.tzinfo is None else 0
    if isinstance(value, date):
        return _DATE
    if isinstance(value, uuid.UUID):
        return _UUID
    if isinstance(value, Decimal):
        return _DECIMAL
    return 0


def _restore_plan(batch: Batch) -> list[tuple[int, int]]:
    plan: list[tuple[int, int]] = []
    rows = batch.rows
    for index in range(len(batch.columns)):
        for row in rows:
            value = row[index]
            if value is not None:
                kind = _kind(value)
                if kind:
                    plan.append((index, kind))
                break
    return plan


def encode_message(batches: Sequence[Batch]) -> bytes:
    """One queue message. Raises ``InvalidInput`` for values msgpack cannot carry."""
    plans = [_restore_plan(batch) for batch in batches]
    try:
        return _ENCODER.encode((FORMAT_VERSION, batches, plans))
    except (TypeError, OverflowError) as exc:
        raise InvalidInput(f"cannot queue rows: {exc}", code="unqueueable_value") from exc


def decode_message(payload: bytes | memoryview) -> list[Batch]:
    version, batches, plans = _DECODER.decode(payload)
    if version != FORMAT_VERSION:
        raise ValueError(f"unknown queue message format {version}")
    for index, plan in enumerate(plans):
        if plan:
            batch = batches[index]
            batches[index] = Batch(batch.table, batch.columns, _restored(batch.rows, plan))
    return batches


def _restored(
    rows: list[tuple[object, ...]], plan: list[tuple[int, int]]
) -> list[tuple[object, ...]]:
    out = []
    for row in rows:
        values = list(row)
        for index, kind in plan:
            values[index] = _RESTORERS[kind](values[index])
        out.append(tuple(values))
    return out


def row_count(batches: Sequence[Batch]) -> int:
    return sum(len(batch.rows) for batch in batches)
