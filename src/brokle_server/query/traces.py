"""Readers of ``traces``, ``sessions``, ``users`` (keyset-paged listings) and ``trace``.

A listing row is the group's summary (camelCase). ``trace`` answers ``{"trace": summary,
"spans": [root spans, each with "children"], "scores": [trace-level scores]}``; a span's own
scores sit on the span. Spans whose parent is not in the trace become roots.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from brokle_server.errors import NotFound
from brokle_server.query import sql_traces
from brokle_server.query.cursor import decode_cursor, encode_cursor
from brokle_server.query.models_traces import SessionsQuery, TraceQuery, TracesQuery, UsersQuery
from brokle_server.query.results import QueryResult, number
from brokle_server.query.scope import TenantReader
from brokle_server.query.spans import span_out
from brokle_server.query.timerange import (
    MAX_RANGE_NS,
    NS_PER_MS,
    AppliedRange,
    datetime_ns,
    iso,
)

DAY_MS = 86_400_000


def _common(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "spanCount": int(row["g_spans"]),
        "errorCount": int(row["g_errors"]),
        "cost": number(row["g_cost"]),
        "totalTokens": int(row["g_tokens"]),
        "inputTokens": int(row["g_input_tokens"]),
        "outputTokens": int(row["g_output_tokens"]),
        "environments": list(row["g_environments"]),
    }


def trace_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "traceId": row["trace_id"],
        "name": row["g_name"],
        "service": row["g_service"],
        "startTime": iso(int(row["g_start_ns"])),
        "endTime": iso(int(row["g_end_ns"])),
        "durationMs": int(row["g_duration_ns"]) / NS_PER_MS,
        "status": row["g_status"],
        **_common(row),
        "models": list(row["g_models"]),
        "providers": list(row["g_providers"]),
        "userId": row["g_user"] or None,
        "sessionId": row["g_session"] or None,
        "tags": list(row["g_tags"]),
    }


def session_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "sessionId": row["session_id"],
        "firstActivity": iso(int(row["g_first_ns"])),
        "lastActivity": iso(int(row["g_last_ns"])),
        "durationMs": int(row["g_duration_ns"]) / NS_PER_MS,
        "traceCount": int(row["g_traces"]),
        **_common(row),
        "userIds": list(row["g_users"]),
    }


def user_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "userId": row["user_id"],
        "firstSeen": iso(int(row["g_first_ns"])),
        "lastSeen": iso(int(row["g_last_ns"])),
        "traceCount": int(row["g_traces"]),
        "sessionCount": int(row["g_sessions"]),
        **_common(row),
        "models": list(row["g_models"]),
    }


async def _group_list(
    reader: TenantReader,
    spec: sql_traces.GroupList,
    q: TracesQuery | SessionsQuery | UsersQuery,
    now: datetime,
    shape: Callable[[dict[str, Any]], dict[str, Any]],
) -> QueryResult:
    applied = q.timeRange.resolve(now)
    filters = q.all_filters()
    spec.catalog.check(q.filters)
    alias, value_type = spec.sorts[q.sort]
    after = None
    if q.cursor is not None:
        after = decode_cursor(q.cursor, spec.kind, f"{q.sort}:{q.order}", [value_type, str])
    sql = reader.sql()
    text = sql_traces.group_list_sql(
        sql, spec, applied, filters, q.sort, q.order == "desc", after, q.limit + 1
    )
    rows = await reader.rows(sql.build(text))
    has_more = len(rows) > q.limit
    rows = rows[: q.limit]
    cursor = None
    if has_more:
        last = rows[-1]
        value = last[alias]
        cursor = encode_cursor(
            spec.kind,
            f"{q.sort}:{q.order}",
            [float(value) if value_type is float else int(value), str(last[spec.key])],
        )
    return QueryResult([shape(r) for r in rows], applied, cursor=cursor, has_more=has_more)


async def list_traces(reader: TenantReader, q: TracesQuery, now: datetime) -> QueryResult:
    return await _group_list(reader, sql_traces.TRACES, q, now, trace_row)


async def list_sessions(reader: TenantReader, q: SessionsQuery, now: datetime) -> QueryResult:
    return await _group_list(reader, sql_traces.SESSIONS, q, now, session_row)


async def list_users(reader: TenantReader, q: UsersQuery, now: datetime) -> QueryResult:
    return await _group_list(reader, sql_traces.USERS, q, now, user_row)


def _score_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["score_id"],
        "spanId": row["span_id"] or None,
        "name": row["name"],
        "value": number(row["value"]),
        "stringValue": row["string_value"] or None,
        "dataType": row["data_type"],
        "source": row["source"],
        "comment": row["comment"] or None,
        "timestamp": iso(int(row["ts_ms"]) * NS_PER_MS),
    }


def build_tree(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nest spans under their parents (children by start time); orphans become roots."""
    by_id = {s["spanId"]: s for s in spans}
    roots = []
    for span in sorted(spans, key=lambda s: (s["startTime"], s["spanId"])):
        parent = by_id.get(span["parentSpanId"] or "")
        if parent is None or parent is span:
            roots.append(span)
        else:
            parent["children"].append(span)
    return roots


async def get_trace(reader: TenantReader, q: TraceQuery, now: datetime) -> QueryResult:
    if q.timeRange is not None:
        applied = q.timeRange.resolve(now)
    else:
        now_ns = datetime_ns(now)
        applied = AppliedRange(now_ns - MAX_RANGE_NS["spans"], now_ns)
    # The trace's window (from trace_index) and its scores are independent reads: run them
    # together, then read the spans inside the window with the spans sorting key.
    window_sql, scores_sql = reader.sql(), reader.sql()
    since_ms = applied.start_ns // NS_PER_MS - DAY_MS
    window, score_rows = await asyncio.gather(
        reader.rows(window_sql.build(sql_traces.trace_window_sql(window_sql, q.traceId))),
        reader.rows(scores_sql.build(sql_traces.trace_scores_sql(scores_sql, q.traceId, since_ms))),
    )
    found = window[0] if window else None
    if found is None or not found["n"]:
        raise NotFound(f"Trace {q.traceId} not found", code="trace_not_found")
    start_ns = max(int(found["start_ns"]), applied.start_ns)
    end_ns = min(int(found["end_ns"]), applied.end_ns)
    if start_ns > end_ns:
        raise NotFound(f"Trace {q.traceId} not found in this time range", code="trace_not_found")
    spans_sql = reader.sql()
    span_rows = await reader.rows(
        spans_sql.build(
            sql_traces.trace_spans_sql(spans_sql, q.traceId, start_ns, end_ns, list(found["envs"]))
        )
    )
    if not span_rows:
        raise NotFound(f"Trace {q.traceId} not found", code="trace_not_found")
    spans = [span_out(r) | {"scores": [], "children": []} for r in span_rows]
    by_id = {s["spanId"]: s for s in spans}
    trace_scores: list[dict[str, Any]] = []
    for score in map(_score_out, score_rows):
        owner = by_id.get(score["spanId"] or "")
        (owner["scores"] if owner is not None else trace_scores).append(score)
    roots = build_tree(spans)
    root = roots[0] if roots else spans[0]
    first = min(int(r["start_ns"]) for r in span_rows)
    last = max(int(r["end_ns"]) for r in span_rows)
    summary = {
        "traceId": q.traceId,
        "name": root["name"],
        "service": root["service"],
        "startTime": iso(first),
        "endTime": iso(last),
        "durationMs": (last - first) / NS_PER_MS,
        "status": "error" if any(s["status"] == "error" for s in spans) else "ok",
        "spanCount": len(spans),
        "cost": sum(s["cost"]["total"] or 0.0 for s in spans),
        "totalTokens": sum(s["usage"]["total"] for s in spans),
        "environments": sorted({s["environment"] for s in spans}),
        "userId": next((s["userId"] for s in spans if s["userId"]), None),
        "sessionId": next((s["sessionId"] for s in spans if s["sessionId"]), None),
    }
    data = {"trace": summary, "spans": roots, "scores": trace_scores}
    return QueryResult(data, AppliedRange(start_ns, max(end_ns, start_ns + 1)))
