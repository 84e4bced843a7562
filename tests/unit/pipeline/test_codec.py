"""Queue message serialization keeps values and their types."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from brokle_server.errors import InvalidInput
from brokle_server.pipeline.codec import decode_message, encode_message
from brokle_server.pipeline.queue import Batch, Lease


def test_roundtrip_keeps_every_supported_type() -> None:
    aware = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    naive = datetime(2024, 5, 6, 7, 8, 9, 123456)
    ident = uuid.UUID("0190f1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b")
    row = (
        "s",
        -(2**63),
        2**64 - 1,
        1.5,
        True,
        None,
        b"\x00\xff",
        {"k": "v"},
        [1, 2, 3],
        ["a"],
        aware,
        naive,
        date(2024, 1, 2),
        ident,
        Decimal("12.340"),
        1_700_000_000_123_456_789,
    )
    columns = tuple(f"c{i}" for i in range(len(row)))
    batches = [Batch("spans", columns, [row, row]), Batch("logs", ("a",), [(None,), ("x",)])]

    assert decode_message(encode_message(batches)) == batches
    decoded = decode_message(encode_message(batches))[0].rows[0]
    assert [type(v) for v in decoded] == [type(v) for v in row]


def test_nullable_column_type_is_found_after_leading_nulls() -> None:
    ident = uuid.uuid4()
    batch = Batch("t", ("id",), [(None,), (None,), (ident,)])

    assert decode_message(encode_message([batch])) == [batch]


def test_unencodable_value_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="cannot queue rows"):
        encode_message([Batch("t", ("big",), [(2**70,)])])


def test_lease_blocks_group_rows_per_table_with_deterministic_tokens() -> None:
    m1 = [Batch("spans", ("a",), [(1,), (2,)]), Batch("logs", ("b",), [("x",)])]
    m2 = [Batch("spans", ("a",), [(3,)]), Batch("spans", ("a", "z"), [(4, 5)])]
    lease = Lease("L1", [m1, m2, [Batch("spans", ("a",), [])]])

    blocks = lease.blocks()

    assert [(b.table, b.columns, b.rows, b.dedup_token) for b in blocks] == [
        ("spans", ("a",), [(1,), (2,), (3,)], "L1/0/spans"),
        ("logs", ("b",), [("x",)], "L1/1/logs"),
        ("spans", ("a", "z"), [(4, 5)], "L1/2/spans"),
    ]
    assert lease.rows == 5
    assert Lease("L1", [m1, m2]).blocks() == blocks
