"""The SQL builders: parameters only, the tenant predicate on every table read."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from brokle_server.query import analytics, logs, sql_metrics, sql_traces
from brokle_server.query.filters import Filter
from brokle_server.query.models_usage import LogsQuery
from brokle_server.query.scope import QueryScope, ScopedQuery, Sql
from brokle_server.query.timerange import AppliedRange

SCOPE = QueryScope("tenant-a", "prod")
RANGE = AppliedRange(1_700_000_000_000_000_000, 1_700_003_600_000_000_000)
EVIL = "x'); DROP TABLE spans; --"
_TABLE_REFS = re.compile(r"\bFROM\s+(\w+)")


def check(sql: Sql, text: str) -> ScopedQuery:
    """Seal the text and check what every builder must guarantee."""
    query = sql.build(text)
    tables = _TABLE_REFS.findall(text)
    assert tables
    assert text.count("project_id = {pid:String}") == len(tables)
    assert text.count("environment = {penv:String}") + text.count(
        "has(environments, {penv:String})"
    ) == len(tables)
    assert EVIL not in text and "tenant-a" not in text
    for name in re.findall(r"\{(\w+):", text):
        assert name in query.params
    return query


def test_aggregate_filters_series_first() -> None:
    sql = Sql(SCOPE)
    filters = [Filter(field="region", value=EVIL)]
    text = sql_metrics.aggregate_sql(sql, "cpu", RANGE, filters, ["host"], "p95", 11)
    query = check(sql, text)
    assert "quantile(0.95)(value)" in text
    assert "series_id IN (SELECT series_id\nFROM series" in text
    assert "INNER JOIN (SELECT series_id, any(labels[" in text
    assert EVIL in query.params.values() and "host" in query.params.values()
    assert text.rstrip().endswith("LIMIT 11")


@pytest.mark.parametrize("build", [sql_metrics.range_sql, sql_metrics.rate_sql])
def test_series_queries(build: object) -> None:
    sql = Sql(SCOPE)
    text = build(sql, "http_requests_total", RANGE, [], ["code"], "sum", 60 * 10**9, 1000)  # type: ignore[operator]
    query = check(sql, text)
    assert 60_000 in query.params.values()  # the bucket width in ms, bound
    if build is sql_metrics.rate_sql:
        assert "lagInFrame(value, 1) OVER (PARTITION BY environment, series_id" in text
        assert "if(s.value >= s.prev, s.value - s.prev, s.value)" in text
        assert 60.0 in query.params.values()


def test_group_list_with_cursor() -> None:
    sql = Sql(SCOPE)
    filters = [Filter(field="attributes.k", value=EVIL), Filter(field="cost", op="gt", value=1)]
    text = sql_traces.group_list_sql(
        sql, sql_traces.TRACES, RANGE, filters, "cost", True, [0.5, EVIL], 51
    )
    query = check(sql, text)
    assert "LIMIT 1 BY trace_id, span_id" in text
    assert "(g_cost, trace_id) < ({p" in text
    assert "ORDER BY g_cost DESC, trace_id DESC" in text
    assert "attributes" in text.split("FROM spans")[0]  # the map column is read for the filter
    assert list(query.params.values()).count(EVIL) == 2


@pytest.mark.parametrize("spec", [sql_traces.SESSIONS, sql_traces.USERS])
def test_sessions_and_users_skip_empty_keys(spec: sql_traces.GroupList) -> None:
    sql = Sql(SCOPE)
    sort = next(iter(spec.sorts))
    text = sql_traces.group_list_sql(sql, spec, RANGE, [], sort, False, None, 10)
    check(sql, text)
    assert f"({spec.key} != '')" in text
    assert f"ORDER BY {spec.sorts[sort][0]} ASC, {spec.key} ASC" in text


def test_trace_lookup() -> None:
    sql = Sql(SCOPE)
    check(sql, sql_traces.trace_window_sql(sql, "ab" * 16))
    sql = Sql(SCOPE)
    text = sql_traces.trace_spans_sql(sql, "ab" * 16, 1, 2, ["prod"])
    check(sql, text)
    assert "ORDER BY span_id, ingested_at DESC\nLIMIT 1 BY span_id" in text
    sql = Sql(SCOPE)
    check(sql, sql_traces.trace_scores_sql(sql, "ab" * 16, 0))


def test_analytics() -> None:
    sql = Sql(SCOPE)
    text = analytics.analytics_sql(
        sql, RANGE, [Filter(field="model", value=EVIL)], ["model", "apiKey"], 3600 * 10**9, 100
    )
    check(sql, text)
    assert "model AS k0, api_key_id AS k1" in text
    assert "GROUP BY GROUPING SETS ((bucket, k0, k1), ())" in text
    assert "grouping(bucket, k0, k1) AS g_set" in text
    assert text.endswith("ORDER BY g_set DESC, bucket, m_requests DESC, k0, k1\nLIMIT 101")
    sql = Sql(SCOPE)
    totals = analytics.analytics_sql(sql, RANGE, [], [], None, 100)
    check(sql, totals)
    assert "GROUP BY" not in totals and "1 AS g_set" in totals


def test_logs() -> None:
    sql = Sql(SCOPE)
    q = LogsQuery.model_validate(
        {
            "queryType": "logs",
            "timeRange": {"relative": "1h"},
            "minSeverity": "error",
            "search": EVIL,
            "order": "asc",
        }
    )
    text = logs.logs_sql(sql, q, RANGE, q.all_filters(), [5, 7], 20)
    query = check(sql, text)
    assert "(timestamp, cityHash64(body, trace_id, span_id)) > (" in text
    assert EVIL in query.params.values()
    assert ["ERROR", "FATAL"] in query.params.values()


def test_time_bounds_are_integer_nanoseconds() -> None:
    sql = Sql(SCOPE)
    where = sql_traces.ns_bounds(sql, RANGE)
    assert where == [
        "start_time >= fromUnixTimestamp64Nano({p0:Int64}, 'UTC')",
        "start_time < fromUnixTimestamp64Nano({p1:Int64}, 'UTC')",
    ]
    assert sql.build(sql.select("spans", ["1"], where=where)).params["p0"] == RANGE.start_ns
    assert datetime.fromtimestamp(RANGE.start_ns / 1e9, UTC).year == 2023
