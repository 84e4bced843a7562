"""Shared policies: time window, environment names, ids, timestamps, tags, limits."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from brokle_server.ingest.common import (
    MAX_NS,
    Rejections,
    TimeWindow,
    datetime_to_ns,
    dump_json,
    normalize_environment,
    parse_hex_id,
    parse_tags,
    parse_timestamp_ns,
    resolve_environment,
    to_int,
)

from .conftest import NOW, NOW_NS

S = 1_000_000_000


def test_time_window() -> None:
    window = TimeWindow.build(NOW, retention_days=7, future_skew_s=60)
    assert window.reject_reason(NOW_NS) is None
    assert window.reject_reason(NOW_NS - 7 * 86_400 * S) is None
    assert "retention" in (window.reject_reason(NOW_NS - 7 * 86_400 * S - 1) or "")
    assert window.reject_reason(NOW_NS + 60 * S) is None
    assert "60s in the future" in (window.reject_reason(NOW_NS + 60 * S + 1) or "")
    assert window.clamp(2**64 - 1) == NOW_NS + 60 * S
    assert window.clamp(-5) == 0


def test_datetime_to_ns() -> None:
    assert datetime_to_ns(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    naive = datetime(2026, 11, 22, 12, 0, 0, 123456)
    assert datetime_to_ns(naive) == NOW_NS + 123_456_000
    plus_two = datetime(2026, 11, 22, 14, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    assert datetime_to_ns(plus_two) == NOW_NS


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Prod", "prod"),
        (" staging ", "staging"),
        ("eu_west-1", "eu_west-1"),
        ("x" * 40, "x" * 40),
        ("x" * 41, None),
        ("", None),
        ("prod env", None),
        ("prod/1", None),
        ("pröd", None),
    ],
)
def test_normalize_environment(value: str, expected: str | None) -> None:
    assert normalize_environment(value) == expected


def test_resolve_environment() -> None:
    assert resolve_environment("bound", "a") == "bound"
    assert resolve_environment(None, None, "", "Bad Name", "Good") == "good"
    assert resolve_environment(None) == "default"


@pytest.mark.parametrize(
    ("value", "size", "expected"),
    [
        ("5B8EFFF798038103D269B633813FC60C", 16, "5b8efff798038103d269b633813fc60c"),
        ("W47/95gDgQPSabYzgT/GDA==", 16, "5b8efff798038103d269b633813fc60c"),
        ("5b8efff7-9803-8103-d269-b633813fc60c", 16, "5b8efff798038103d269b633813fc60c"),
        ("EEE19B7EC3C1B174", 8, "eee19b7ec3c1b174"),
        ("7uGbfsPBsXQ=", 8, "eee19b7ec3c1b174"),
        ("", 8, ""),
        ("0" * 32, 16, None),
        ("xyz", 16, None),
        ("g" * 32, 16, None),
        (123, 16, None),
        ("EEE19B7EC3C1B174", 16, None),
    ],
)
def test_parse_hex_id(value: object, size: int, expected: str | None) -> None:
    assert parse_hex_id(value, size) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-22T12:00:00Z", NOW_NS),
        ("2026-11-22T12:00:00.123456789Z", NOW_NS + 123_456_789),
        ("2026-11-22T14:00:00+02:00", NOW_NS),
        ("2026-11-22T11:30:00-0030", NOW_NS),
        ("2026-11-22 12:00:00", NOW_NS),
        ("2026-11-22", NOW_NS - 12 * 3600 * S),
        (NOW_NS // S, NOW_NS),
        (NOW_NS / S, NOW_NS),
        (NOW_NS // 1_000_000, NOW_NS),
        (NOW_NS // 1000, NOW_NS),
        (NOW_NS, NOW_NS),
        (str(NOW_NS // 1_000_000), NOW_NS),
    ],
)
def test_parse_timestamp(value: object, expected: int) -> None:
    assert parse_timestamp_ns(value) == pytest.approx(expected, abs=1000)


@pytest.mark.parametrize(
    "value", ["yesterday", "2026-13-01T00:00:00Z", -1, True, None, float("nan"), MAX_NS * 2, [1]]
)
def test_parse_timestamp_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_timestamp_ns(value)


def test_parse_tags_and_to_int() -> None:
    assert parse_tags('["a", "b", "a", 3]') == ["a", "b", "3"]
    assert parse_tags("x, y ,,z") == ["x", "y", "z"]
    assert parse_tags(["only"]) == ["only"]
    assert parse_tags("[broken") == ["broken"]
    assert parse_tags({"not": "tags"}) == []
    assert len(parse_tags([str(i) for i in range(100)])) == 64
    assert [to_int(v) for v in ("12", "12.7", -3, "x", True, 1e30, float("nan"))] == [
        12,
        12,
        0,
        0,
        1,
        0,
        0,
    ]


def test_rejections_message() -> None:
    rejected = Rejections()
    assert rejected.message() == ""
    rejected.add("too old", 2)
    rejected.add("bad id")
    assert rejected.count == 3
    assert rejected.message("spans") == "rejected 3 spans: 2 x too old; 1 x bad id"


def test_dump_json() -> None:
    assert dump_json({"a": [1, 2.5, "é", None, True]}) == '{"a":[1,2.5,"é",null,true]}'
    big = 10**30
    # Beyond 64 bits orjson refuses: the stdlib writes the exact value, NaN/Inf as null.
    assert dump_json({"n": big, "l": [-big, math.nan, math.inf, "é"]}) == (
        f'{{"n":{big},"l":[{-big},null,null,"é"]}}'
    )
    deep: object = 1
    for _ in range(300):  # deeper than orjson writes
        deep = [deep]
    assert dump_json(deep) == "[" * 300 + "1" + "]" * 300
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ValueError, match="nested too deeply"):
        dump_json(deep)
