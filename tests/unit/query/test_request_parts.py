"""Time ranges, durations, cursors and error field paths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from brokle_server.errors import ValidationFailed
from brokle_server.query.cursor import decode_cursor, encode_cursor
from brokle_server.query.errors import field_path, request_error
from brokle_server.query.timerange import (
    DAY_NS,
    NS_PER_S,
    AppliedRange,
    TimeRange,
    datetime_ns,
    iso,
    parse_duration,
    step_for,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("250ms", 250_000_000),
        ("90s", 90 * NS_PER_S),
        ("15m", 900 * NS_PER_S),
        ("7d", 7 * DAY_NS),
        ("1w", 7 * DAY_NS),
    ],
)
def test_durations(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "0h", "1.5h", "h", "24x", "-1h", "1h ", "12345678d", "1H"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_ranges() -> None:
    assert TimeRange(relative="1h").resolve(NOW) == AppliedRange(
        datetime_ns(NOW) - 3600 * NS_PER_S, datetime_ns(NOW)
    )
    naive = TimeRange(start=datetime(2026, 11, 22, 10), end=datetime(2026, 11, 22, 11, tzinfo=UTC))
    assert naive.resolve(NOW).end_ns - naive.resolve(NOW).start_ns == 3600 * NS_PER_S
    open_ended = TimeRange(start=NOW - timedelta(days=2)).resolve(NOW)
    assert open_ended.end_ns == datetime_ns(NOW)
    assert TimeRange(relative="60d").resolve(NOW, "metrics").start_ns < datetime_ns(NOW)
    with pytest.raises(ValidationFailed, match="too large"):
        TimeRange(relative="60d").resolve(NOW)
    with pytest.raises(ValidationFailed, match="'range'"):
        TimeRange(relative="100d").resolve(NOW, "metrics", "range")


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"relative": "1h", "end": "2026-11-22T00:00:00Z"},
        {"start": "2026-11-22T10:00:00Z", "end": "2026-11-22T09:00:00Z"},
        {"end": "2026-11-22T09:00:00Z"},
        {"relative": "1h", "zone": "UTC"},
    ],
)
def test_bad_ranges(value: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        TimeRange.model_validate(value)


def test_steps() -> None:
    day = AppliedRange(0, DAY_NS)
    assert step_for(day, None, 2000, "interval") == 720 * NS_PER_S
    assert step_for(day, "1h", 2000, "interval") == 3600 * NS_PER_S
    with pytest.raises(ValidationFailed, match="over 2000 points"):
        step_for(day, "10s", 2000, "interval")
    with pytest.raises(ValidationFailed, match="at least 1s"):
        step_for(day, "500ms", 2000, "interval")


def test_iso() -> None:
    assert iso(datetime_ns(NOW) + 123_456_789) == "2026-11-22T12:00:00.123456Z"


def test_cursor_round_trip_and_refusals() -> None:
    token = encode_cursor("traces", "cost:desc", [0.25, "abc"])
    assert decode_cursor(token, "traces", "cost:desc", [float, str]) == [0.25, "abc"]
    assert decode_cursor(encode_cursor("t", "s", [3, "x"]), "t", "s", [float, str]) == [3.0, "x"]
    for bad, kind, sort, types in [
        (token, "logs", "cost:desc", [float, str]),
        (token, "traces", "startTime:desc", [float, str]),
        (token, "traces", "cost:desc", [int, str]),
        ("not base64 !!", "traces", "cost:desc", [float, str]),
        (encode_cursor("traces", "cost:desc", [0.25]), "traces", "cost:desc", [float, str]),
        ("x" * 2000, "traces", "cost:desc", [float, str]),
    ]:
        with pytest.raises(ValidationFailed, match="cursor"):
            decode_cursor(bad, kind, sort, types)


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        (("body", "traces", "filters", 0, "op"), "filters[0].op"),
        (("body", "aggregate", "filters", "list[Filter]", 2, "field"), "filters[2].field"),
        (("body", "logs", "severity", "str"), "severity"),
        (("query", "range"), "range"),
        (("body",), "body"),
        (("body", "trace", "timeRange", "function-after[_one_form(), TimeRange]"), "timeRange"),
    ],
)
def test_field_paths(loc: tuple[object, ...], path: str) -> None:
    assert field_path(loc) == path


def test_request_errors() -> None:
    error = request_error([{"type": "union_tag_invalid", "loc": ("body",), "msg": "x"}])
    assert error.message.startswith("Invalid field 'queryType': must be one of aggregate")
    extra = request_error([{"type": "extra_forbidden", "loc": ("body", "logs", "foo"), "msg": "x"}])
    assert extra.message == "Invalid field 'foo': unknown field"
    assert request_error([{"type": "json_invalid", "loc": ("body", 1)}]).code == "invalid_json"
