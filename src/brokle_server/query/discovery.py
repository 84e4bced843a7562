"""Discovery: what there is to query — metric names, their dimensions and values, span
attribute keys and values, services and models — over a time range (24 hours by default).
"""

from __future__ import annotations

from typing import Any, Final, Literal

from brokle_server.query.results import number
from brokle_server.query.scope import Sql, TenantReader
from brokle_server.query.sql_traces import ns_bounds
from brokle_server.query.timerange import AppliedRange

MAP_COLUMNS: Final = {"span": "attributes", "resource": "resource_attributes"}
Source = Literal["span", "resource"]


def _series_where(sql: Sql, applied: AppliedRange) -> list[str]:
    start = sql.bind(applied.start_ms, "Int64")
    end = sql.bind(applied.end_ms, "Int64")
    return [
        f"last_seen >= fromUnixTimestamp64Milli({start}, 'UTC')",
        f"first_seen < fromUnixTimestamp64Milli({end}, 'UTC')",
    ]


def _search(sql: Sql, expr: str, search: str | None) -> list[str]:
    if not search:
        return []
    return [f"positionCaseInsensitiveUTF8({expr}, {sql.bind(search, 'String')}) > 0"]


async def metric_names(
    reader: TenantReader, applied: AppliedRange, search: str | None, limit: int
) -> list[dict[str, Any]]:
    sql = reader.sql()
    text = sql.select(
        "series",
        [
            "metric_name",
            "argMax(metric_type, last_seen) AS type",
            "argMax(unit, last_seen) AS unit_",
            "argMax(description, last_seen) AS help",
            "uniqExact(series_id) AS n_series",
        ],
        where=[*_series_where(sql, applied), *_search(sql, "metric_name", search)],
        group_by=["metric_name"],
        order_by=["metric_name"],
        limit=limit,
    )
    return [
        {
            "name": r["metric_name"],
            "type": r["type"],
            "unit": r["unit_"],
            "description": r["help"],
            "series": int(r["n_series"]),
        }
        for r in await reader.rows(sql.build(text))
    ]


async def metric_dimensions(
    reader: TenantReader, metric: str, applied: AppliedRange, limit: int
) -> list[dict[str, Any]]:
    sql = reader.sql()
    text = sql.select(
        "series",
        ["k AS key", "uniqExact(labels[k]) AS n_values", "uniqExact(series_id) AS n_series"],
        array_join="mapKeys(labels) AS k",
        where=[f"metric_name = {sql.bind(metric, 'String')}", *_series_where(sql, applied)],
        group_by=["k"],
        order_by=["k"],
        limit=limit,
    )
    rows = await reader.rows(sql.build(text))
    return [
        {"key": r["key"], "values": int(r["n_values"]), "series": int(r["n_series"])} for r in rows
    ]


async def dimension_values(
    reader: TenantReader,
    metric: str,
    key: str,
    applied: AppliedRange,
    search: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    sql = reader.sql()
    key_param = sql.bind(key, "String")
    text = sql.select(
        "series",
        [f"labels[{key_param}] AS v", "uniqExact(series_id) AS n_series"],
        where=[
            f"metric_name = {sql.bind(metric, 'String')}",
            f"mapContains(labels, {key_param})",
            *_series_where(sql, applied),
            *_search(sql, f"labels[{key_param}]", search),
        ],
        group_by=["v"],
        order_by=["v"],
        limit=limit,
    )
    rows = await reader.rows(sql.build(text))
    return [{"value": r["v"], "series": int(r["n_series"])} for r in rows]


async def attribute_keys(
    reader: TenantReader, source: Source, applied: AppliedRange, search: str | None, limit: int
) -> list[dict[str, Any]]:
    sql = reader.sql()
    column = MAP_COLUMNS[source]
    text = sql.select(
        "spans",
        ["k AS key", "count() AS n_spans"],
        array_join=f"mapKeys({column}) AS k",
        where=[*ns_bounds(sql, applied), *_search(sql, "k", search)],
        group_by=["k"],
        order_by=["n_spans DESC", "k"],
        limit=limit,
    )
    rows = await reader.rows(sql.build(text))
    return [{"key": r["key"], "spans": int(r["n_spans"])} for r in rows]


async def attribute_values(
    reader: TenantReader,
    source: Source,
    key: str,
    applied: AppliedRange,
    search: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    sql = reader.sql()
    column = MAP_COLUMNS[source]
    key_param = sql.bind(key, "String")
    text = sql.select(
        "spans",
        [f"{column}[{key_param}] AS v", "count() AS n_spans"],
        where=[
            *ns_bounds(sql, applied),
            f"mapContains({column}, {key_param})",
            *_search(sql, f"{column}[{key_param}]", search),
        ],
        group_by=["v"],
        order_by=["n_spans DESC", "v"],
        limit=limit,
    )
    rows = await reader.rows(sql.build(text))
    return [{"value": r["v"], "spans": int(r["n_spans"])} for r in rows]


async def services(reader: TenantReader, applied: AppliedRange, limit: int) -> list[dict[str, Any]]:
    sql = reader.sql()
    text = sql.select(
        "spans",
        [
            "service_name AS service",
            "count() AS n_spans",
            "uniq(trace_id) AS n_traces",
            "countIf(status_code = 'error') AS n_errors",
            "arraySort(groupUniqArray(environment)) AS envs",
        ],
        where=ns_bounds(sql, applied),
        group_by=["service_name"],
        order_by=["n_spans DESC", "service"],
        limit=limit,
    )
    rows = await reader.rows(sql.build(text))
    return [
        {
            "name": r["service"],
            "spans": int(r["n_spans"]),
            "traces": int(r["n_traces"]),
            "errors": int(r["n_errors"]),
            "environments": list(r["envs"]),
        }
        for r in rows
    ]


async def models(reader: TenantReader, applied: AppliedRange, limit: int) -> list[dict[str, Any]]:
    sql = reader.sql()
    text = sql.select(
        "spans",
        [
            "model",
            "provider",
            "count() AS n_requests",
            "sum(total_tokens) AS n_tokens",
            "sum(cost_usd) AS total_cost",
        ],
        where=[*ns_bounds(sql, applied), "model != ''"],
        group_by=["model", "provider"],
        order_by=["n_requests DESC", "model", "provider"],
        limit=limit,
    )
    rows = await reader.rows(sql.build(text))
    return [
        {
            "model": r["model"],
            "provider": r["provider"] or None,
            "requests": int(r["n_requests"]),
            "totalTokens": int(r["n_tokens"]),
            "cost": number(r["total_cost"]),
        }
        for r in rows
    ]
