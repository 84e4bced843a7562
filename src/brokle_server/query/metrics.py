"""Readers of the metric queries: run the SQL of :mod:`sql_metrics`, shape the reply.

Replies: ``aggregate`` → ``{"groups": [{"dimensions": {...}, "value", "samples"}]}``;
``range`` and ``rate`` → ``{"series": [{"dimensions": {...}, "points": [{"timestamp",
"value"}]}], "interval": "60s"}``. ``rate`` values are per second.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from brokle_server.query import sql_metrics
from brokle_server.query.models_metrics import AggregateQuery, RangeQuery, RateQuery
from brokle_server.query.results import QueryResult, number
from brokle_server.query.scope import TenantReader
from brokle_server.query.timerange import NS_PER_MS, NS_PER_S, iso, step_for

MAX_POINTS: Final = 2000
MAX_ROWS: Final = 200_000


def _dimensions(row: dict[str, Any], group_by: Sequence[str]) -> dict[str, str]:
    return {key: str(row[f"d{i}"]) for i, key in enumerate(group_by)}


async def aggregate(reader: TenantReader, q: AggregateQuery, now: datetime) -> QueryResult:
    applied = q.timeRange.resolve(now, "metrics")
    sql = reader.sql()
    text = sql_metrics.aggregate_sql(
        sql, q.metricName, applied, q.filter_list(), q.groupBy, q.aggregation, q.limit + 1
    )
    rows = await reader.rows(sql.build(text))
    groups = [
        {
            "dimensions": _dimensions(row, q.groupBy),
            "value": number(row["v"]),
            "samples": int(row["n_samples"]),
        }
        for row in rows
        if int(row["n_samples"]) > 0
    ]
    data = {
        "metricName": q.metricName,
        "aggregation": q.aggregation,
        "groupBy": q.groupBy,
        "groups": groups[: q.limit],
    }
    return QueryResult(data, applied, has_more=len(groups) > q.limit)


async def series(reader: TenantReader, q: RangeQuery | RateQuery, now: datetime) -> QueryResult:
    applied = q.timeRange.resolve(now, "metrics")
    step = step_for(applied, q.interval, MAX_POINTS, "interval")
    sql = reader.sql()
    build = sql_metrics.rate_sql if q.queryType == "rate" else sql_metrics.range_sql
    text = build(
        sql, q.metricName, applied, q.filter_list(), q.groupBy, q.aggregation, step, MAX_ROWS
    )
    rows = await reader.rows(sql.build(text))
    out: dict[tuple[str, ...], dict[str, Any]] = {}
    truncated = False
    for row in rows:
        dims = _dimensions(row, q.groupBy)
        key = tuple(dims.values())
        entry = out.get(key)
        if entry is None:
            if len(out) >= q.limit:
                truncated = True
                continue
            entry = out[key] = {"dimensions": dims, "points": []}
        entry["points"].append(
            {"timestamp": iso(int(row["bucket"]) * NS_PER_MS), "value": number(row["v"])}
        )
    data = {
        "metricName": q.metricName,
        "aggregation": q.aggregation,
        "groupBy": q.groupBy,
        "interval": f"{step // NS_PER_S}s",
        "series": list(out.values()),
    }
    return QueryResult(data, applied, has_more=truncated or len(rows) >= MAX_ROWS)
