"""``analytics``: LLM usage over time and by dimension, from the spans that are LLM calls.

An LLM call is a span of type ``generation`` or one that names a model. Per bucket and
group: requests, errors, tokens by type, cost, latency and time-to-first-token percentiles,
and the prompt-cache hit rate (share of calls that read cached input tokens) with the share
of input tokens served from cache. The totals over the whole range come with every reply.

Spans are read without the ``LIMIT 1 BY`` copy folding of the listings: over days of data it
costs about as much as the aggregation itself, and copies are rare and short-lived (retried
batches are dropped at insert by their token; a copy that slipped through lives until the
next merge folds it), so usage totals tolerate them as the spans table's design intends.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from brokle_server.query import fields
from brokle_server.query.filters import Filter, row_conditions
from brokle_server.query.models_usage import AnalyticsQuery
from brokle_server.query.results import QueryResult, number, ratio
from brokle_server.query.scope import Sql, TenantReader
from brokle_server.query.sql_traces import ns_bounds, source_columns
from brokle_server.query.timerange import NS_PER_MS, NS_PER_S, AppliedRange, iso, step_for

MAX_BUCKETS: Final = 1000
DIMENSIONS: Final = {
    "model": "model",
    "provider": "provider",
    "environment": "environment",
    "user": "user_id",
    "apiKey": "api_key_id",
    "service": "service_name",
    "operation": "operation",
    "name": "name",
}
LLM_CALL: Final = "span_type = 'generation' OR model != ''"
_COLUMNS: Final = (
    "trace_id", "span_id", "start_time", "status_code", "duration_ns", "ttft_ms",
    "input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens", "reasoning_tokens",
    "total_tokens", "cost_usd",
)  # fmt: skip
_METRICS: Final = (
    "count() AS m_requests",
    "countIf(status_code = 'error') AS m_errors",
    "sum(input_tokens) AS m_input",
    "sum(output_tokens) AS m_output",
    "sum(cached_tokens) AS m_cached",
    "sum(cache_write_tokens) AS m_cache_write",
    "sum(reasoning_tokens) AS m_reasoning",
    "sum(total_tokens) AS m_total",
    "sum(cost_usd) AS m_cost",
    "quantiles(0.5, 0.9, 0.95, 0.99)(duration_ns) AS m_latency_ns",
    "quantiles(0.5, 0.9, 0.95, 0.99)(ttft_ms) AS m_ttft",
    "countIf(cached_tokens > 0) AS m_cache_hits",
)
_PERCENTILES: Final = ("p50", "p90", "p95", "p99")


def analytics_sql(
    sql: Sql,
    applied: AppliedRange,
    filters: Sequence[Filter],
    group_by: Sequence[str],
    step_ns: int | None,
    limit: int,
) -> str:
    """One scan for the rows and the totals: ``GROUPING SETS ((bucket, k0...), ())``; the
    totals row comes first (``g_set`` > 0), then ``limit`` rows by bucket and busiest group."""
    columns = source_columns(fields.ANALYTICS, filters)
    columns += [c for c in _COLUMNS if c not in columns]
    columns += [DIMENSIONS[d] for d in group_by if DIMENSIONS[d] not in columns]
    where = [*ns_bounds(sql, applied), LLM_CALL, *row_conditions(sql, fields.ANALYTICS, filters)]
    keys = [f"{DIMENSIONS[d]} AS k{i}" for i, d in enumerate(group_by)]
    names = [f"k{i}" for i in range(len(group_by))]
    if step_ns is not None:
        step = sql.bind(step_ns // NS_PER_MS, "Int64")
        keys.insert(0, f"intDiv(toUnixTimestamp64Milli(start_time), {step}) * {step} AS bucket")
        names.insert(0, "bucket")
    if not names:
        return sql.select("spans", ["1 AS g_set", *_METRICS], where=where)
    dims = [f"k{i}" for i in range(len(group_by))]
    order = ["g_set DESC", *(["bucket"] if step_ns is not None else []), "m_requests DESC", *dims]
    return sql.select(
        "spans",
        [*keys, f"grouping({', '.join(names)}) AS g_set", *_METRICS],
        where=where,
        group_by=[f"GROUPING SETS (({', '.join(names)}), ())"],
        order_by=order,
        limit=limit + 1,
    )


def _percentiles(values: Sequence[float]) -> dict[str, float | None]:
    return {p: number(v) for p, v in zip(_PERCENTILES, values, strict=False)}


def metrics_out(row: dict[str, Any]) -> dict[str, Any]:
    requests = int(row["m_requests"])
    input_tokens = int(row["m_input"])
    return {
        "requests": requests,
        "errors": int(row["m_errors"]),
        "errorRate": ratio(int(row["m_errors"]), requests),
        "tokens": {
            "input": input_tokens,
            "output": int(row["m_output"]),
            "cached": int(row["m_cached"]),
            "cacheWrite": int(row["m_cache_write"]),
            "reasoning": int(row["m_reasoning"]),
            "total": int(row["m_total"]),
        },
        "cost": number(row["m_cost"]),
        "latencyMs": _percentiles([v / NS_PER_MS for v in row["m_latency_ns"]]),
        "ttftMs": _percentiles(row["m_ttft"]),
        "cacheHitRate": ratio(int(row["m_cache_hits"]), requests),
        "cachedTokenRatio": ratio(int(row["m_cached"]), input_tokens),
    }


async def run(reader: TenantReader, q: AnalyticsQuery, now: datetime) -> QueryResult:
    applied = q.timeRange.resolve(now)
    fields.ANALYTICS.check(q.filters)
    step = step_for(applied, q.interval, MAX_BUCKETS, "interval") if q.interval else None
    sql = reader.sql()
    text = analytics_sql(sql, applied, q.filters, q.groupBy, step, q.limit + 1)
    result = await reader.rows(sql.build(text))
    totals = metrics_out(result[0]) if result and result[0]["g_set"] else None
    grouped = [row for row in result if not row["g_set"]]
    rows: list[dict[str, Any]] = []
    for row in grouped[: q.limit]:
        out: dict[str, Any] = {}
        if step is not None:
            out["time"] = iso(int(row["bucket"]) * NS_PER_MS)
        out["group"] = {d: row[f"k{i}"] for i, d in enumerate(q.groupBy)}
        rows.append(out | metrics_out(row))
    data = {
        "groupBy": q.groupBy,
        "interval": f"{step // NS_PER_S}s" if step is not None else None,
        "totals": totals,
        "rows": rows,
    }
    return QueryResult(data, applied, has_more=len(grouped) > q.limit)
