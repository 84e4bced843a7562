"""Every table on a real embedded chDB: round trips, dedup of retried batches, trace_index."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from brokle_server.store import Store, schema

Row = tuple[Any, ...]
RowFactory = Callable[..., Row]
DAY_NS = 86_400 * 10**9
NOW_MS = time.time_ns() // 1_000_000


def _exact_select(store: Store, table: str) -> str:
    """SELECT of the contract columns that returns times as the ints that were inserted."""
    types: dict[str, str] = dict(
        store.query(
            "SELECT name, type FROM system.columns WHERE database = {db:String} "
            "AND table = {t:String}",
            {"db": store.database, "t": table},
        )
    )
    exprs = []
    for column in schema.COLUMNS_BY_TABLE[table]:
        kind = types[column]
        if kind.startswith("DateTime64(9"):
            exprs.append(f"toUnixTimestamp64Nano({column})")
        elif kind.startswith("DateTime64(3"):
            exprs.append(f"toUnixTimestamp64Milli({column})")
        elif kind.startswith("Array(DateTime64(9"):
            exprs.append(f"arrayMap(x -> toUnixTimestamp64Nano(x), {column})")
        else:
            exprs.append(column)
    return f"SELECT {', '.join(exprs)} FROM {table} WHERE project_id = {{p:String}}"


def _count(store: Store, table: str, project_id: str) -> int:
    rows = store.query(
        f"SELECT count() FROM {table} WHERE project_id = {{p:String}}", {"p": project_id}
    )
    return int(rows[0][0])


@pytest.mark.parametrize("table", sorted(schema.COLUMNS_BY_TABLE))
def test_round_trip_returns_exactly_what_was_inserted(
    store: Store, row: RowFactory, project_id: str, table: str
) -> None:
    first = row(table, project_id)
    second = row(table, project_id, environment="staging", retention_days=7)
    store.insert(
        table, schema.COLUMNS_BY_TABLE[table], [first, second], dedup_token=f"rt-{project_id}"
    )

    got = store.query(_exact_select(store, table) + " ORDER BY environment", {"p": project_id})
    assert got == [first, second]


def test_span_times_keep_nanoseconds(store: Store, row: RowFactory, project_id: str) -> None:
    start = (time.time_ns() // 10**9) * 10**9 + 123_456_789
    store.insert("spans", schema.SPAN_COLUMNS, [row("spans", project_id, start_time=start)])
    rows = store.query(
        "SELECT toUnixTimestamp64Nano(start_time), start_time FROM spans "
        "WHERE project_id = {p:String}",
        {"p": project_id},
    )
    assert rows[0][0] == start
    expected = datetime.fromtimestamp(start // 10**9, UTC).replace(tzinfo=None, microsecond=123456)
    assert rows[0][1] == expected  # reads give naive UTC datetimes, to the microsecond


def _spans(row: RowFactory, project_id: str, count: int, **values: object) -> list[Row]:
    return [
        row("spans", project_id, trace_id=f"{i % 5:032x}", span_id=f"{i:016x}", **values)
        for i in range(count)
    ]


def test_retried_span_batch_is_not_duplicated(
    store: Store, row: RowFactory, project_id: str
) -> None:
    batch = _spans(row, project_id, 100)
    token = f"spool-segment-{uuid.uuid4()}"
    for _ in range(3):
        store.insert("spans", schema.SPAN_COLUMNS, batch, dedup_token=token)

    assert _count(store, "spans", project_id) == 100
    # The materialized view saw the block once too.
    assert store.query(
        "SELECT sum(span_count), uniqExact(trace_id) FROM trace_index "
        "WHERE project_id = {p:String}",
        {"p": project_id},
    ) == [(100, 5)]


def test_retried_sample_batch_is_not_duplicated(
    store: Store, row: RowFactory, project_id: str
) -> None:
    sid = schema.series_id("cpu", {"core": "0"})
    batch = [
        row(
            "samples",
            project_id,
            metric_name="cpu",
            series_id=sid,
            timestamp=NOW_MS + i,
            value=float(i),
        )
        for i in range(500)
    ]
    store.insert("samples", schema.SAMPLE_COLUMNS, batch, dedup_token="samples-1")
    store.insert("samples", schema.SAMPLE_COLUMNS, batch, dedup_token="samples-1")
    assert _count(store, "samples", project_id) == 500
    # A new batch (new token) with the same content is a new batch.
    store.insert("samples", schema.SAMPLE_COLUMNS, batch, dedup_token="samples-2")
    assert _count(store, "samples", project_id) == 1000


def test_span_copies_fold_into_the_latest_version(
    store: Store, row: RowFactory, project_id: str
) -> None:
    span = {"trace_id": "a" * 32, "span_id": "b" * 16}
    store.insert(
        "spans",
        schema.SPAN_COLUMNS,
        [row("spans", project_id, **span, status_message="old", ingested_at=1_000)],
        dedup_token="c1",
    )
    store.insert(
        "spans",
        schema.SPAN_COLUMNS,
        [row("spans", project_id, **span, status_message="new", ingested_at=2_000)],
        dedup_token="c2",
    )
    assert _count(store, "spans", project_id) == 2  # until a merge: readers use LIMIT 1 BY

    store.command("OPTIMIZE TABLE spans FINAL")
    assert store.query(
        "SELECT status_message FROM spans WHERE project_id = {p:String}", {"p": project_id}
    ) == [("new",)]


def test_trace_index_gives_each_trace_its_time_window(
    store: Store, row: RowFactory, project_id: str
) -> None:
    t0 = time.time_ns() - 2 * DAY_NS  # within retention, or the TTL drops the rows on insert
    trace_a, trace_b = "1" * 32, "2" * 32
    spans = [
        row(
            "spans",
            project_id,
            trace_id=trace_a,
            span_id="1" * 16,
            start_time=t0,
            end_time=t0 + 50,
            status_code="error",
        ),
        row(
            "spans",
            project_id,
            trace_id=trace_a,
            span_id="2" * 16,
            start_time=t0 + 10,
            end_time=t0 + 90,
            environment="staging",
        ),
        row(
            "spans",
            project_id,
            trace_id=trace_b,
            span_id="3" * 16,
            start_time=t0 + DAY_NS,
            end_time=t0 + DAY_NS + 5,
        ),
    ]
    # Two inserts: the index holds a row per insert block until merged; readers aggregate.
    store.insert("spans", schema.SPAN_COLUMNS, spans[:1], dedup_token="ti-1")
    store.insert("spans", schema.SPAN_COLUMNS, spans[1:], dedup_token="ti-2")

    rows = store.query(
        "SELECT trace_id, toUnixTimestamp64Nano(min(start_time)), "
        "toUnixTimestamp64Nano(max(end_time)), arraySort(groupUniqArrayArray(environments)), "
        "sum(span_count), sum(error_count), sum(total_tokens) FROM trace_index "
        "WHERE project_id = {p:String} GROUP BY trace_id ORDER BY trace_id",
        {"p": project_id},
    )
    assert rows == [
        (trace_a, t0, t0 + 90, ["production", "staging"], 2, 1, 30),
        (trace_b, t0 + DAY_NS, t0 + DAY_NS + 5, ["production"], 1, 0, 15),
    ]

    # Trace by id: the window from trace_index bounds the span scan. The bounds travel as
    # integer nanoseconds: a datetime would be cut to microseconds and miss the edges.
    window = store.query(
        "SELECT toUnixTimestamp64Nano(min(start_time)), toUnixTimestamp64Nano(max(end_time)), "
        "groupUniqArrayArray(environments) FROM trace_index "
        "WHERE project_id = {p:String} AND trace_id = {t:String}",
        {"p": project_id, "t": trace_a},
    )[0]
    got = store.query(
        "SELECT span_id FROM spans WHERE project_id = {p:String} "
        "AND environment IN {envs:Array(String)} AND start_time "
        "BETWEEN fromUnixTimestamp64Nano({lo:Int64}, 'UTC') "
        "AND fromUnixTimestamp64Nano({hi:Int64}, 'UTC') "
        "AND trace_id = {t:String} ORDER BY start_time LIMIT 1 BY span_id",
        {"p": project_id, "t": trace_a, "lo": window[0], "hi": window[1], "envs": window[2]},
    )
    assert got == [("1" * 16,), ("2" * 16,)]


def test_score_updates_are_read_as_latest_without_final(
    store: Store, row: RowFactory, project_id: str
) -> None:
    store.insert(
        "scores",
        schema.SCORE_COLUMNS,
        [row("scores", project_id, value=0.2, ingested_at=1)],
        dedup_token="s1",
    )
    store.insert(
        "scores",
        schema.SCORE_COLUMNS,
        [row("scores", project_id, value=0.7, ingested_at=2)],
        dedup_token="s2",
    )
    assert store.query(
        "SELECT score_id, argMax(value, ingested_at) FROM scores "
        "WHERE project_id = {p:String} GROUP BY score_id",
        {"p": project_id},
    ) == [("score-1", 0.7)]


def test_log_body_is_searchable_by_token(store: Store, row: RowFactory, project_id: str) -> None:
    store.insert(
        "logs",
        schema.LOG_COLUMNS,
        [row("logs", project_id, body="payment failed for order 42"), row("logs", project_id)],
    )
    assert store.query(
        "SELECT body FROM logs WHERE project_id = {p:String} AND hasToken(body, 'payment')",
        {"p": project_id},
    ) == [("payment failed for order 42",)]


def test_expired_rows_are_dropped_by_ttl(store: Store, row: RowFactory, project_id: str) -> None:
    old_ms = 1_700_000_000_000  # 2023: far beyond a 1-day retention
    store.insert(
        "events",
        schema.EVENT_COLUMNS,
        [row("events", project_id, timestamp=old_ms, retention_days=1)],
    )
    store.command("OPTIMIZE TABLE events FINAL")
    assert _count(store, "events", project_id) == 0
