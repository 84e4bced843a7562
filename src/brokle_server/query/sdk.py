"""The ``brokle`` SDK's span query (``client.query.query(...)``): filter, page by offset,
and answer in the shape its ``QueryResult.from_dict`` reads.

Request: ``{"filter": "service.name=chatbot AND ...", "limit": 1000, "offset": 0,
"start_time"?: RFC 3339, "end_time"?: RFC 3339}``; no ``start_time`` means the last 7 days.
Reply ``data``: ``{"spans": [...], "total_count", "has_more", "next_offset"}``, each span
with ``trace_id, span_id, parent_span_id, span_name, start_time, end_time, duration`` (ns),
``status, status_message, service_name, resource_attributes, span_attributes, events,
input, output, model_name, usage_details`` and a few extra columns.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from brokle_server.query import sdk_filter
from brokle_server.query.results import QueryResult, number
from brokle_server.query.scope import Sql, TenantReader
from brokle_server.query.spans import events_out
from brokle_server.query.sql_traces import SPAN_DETAIL_COLUMNS, ns_bounds
from brokle_server.query.timerange import DAY_NS, AppliedRange, check_range, datetime_ns, iso

DEFAULT_RANGE_NS: Final = 7 * DAY_NS
MAX_OFFSET: Final = 100_000


class SpanQuery(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "filter": "service.name=chatbot AND gen_ai.request.model=gpt-4o",
                    "limit": 100,
                    "offset": 0,
                    "start_time": "2026-11-15T00:00:00Z",
                }
            ]
        },
    )

    filter: str = Field("", max_length=sdk_filter.MAX_CHARS, description="Filter expression.")
    limit: int = Field(1000, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    start_time: datetime | None = Field(None, description="Default: 7 days before end_time.")
    end_time: datetime | None = Field(None, description="Default: now.")


class FilterCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: str = Field(max_length=sdk_filter.MAX_CHARS)


def applied_range(q: SpanQuery, now: datetime) -> AppliedRange:
    end = datetime_ns(q.end_time) if q.end_time is not None else datetime_ns(now)
    start = datetime_ns(q.start_time) if q.start_time is not None else end - DEFAULT_RANGE_NS
    return check_range(AppliedRange(start, end), "spans", "start_time")


def _where(sql: Sql, q: SpanQuery, applied: AppliedRange) -> list[str]:
    where = ns_bounds(sql, applied)
    node = sdk_filter.parse(q.filter)
    if node is not None:
        where.append(sdk_filter.compile_node(sql, node))
    return where


def span_dict(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "trace_id": row["trace_id"],
        "span_id": row["span_id"],
        "parent_span_id": row["parent_span_id"] or None,
        "span_name": row["name"],
        "span_kind": row["kind"],
        "service_name": row["service_name"],
        "start_time": iso(int(row["start_ns"])),
        "end_time": iso(int(row["end_ns"])),
        "duration": int(row["duration_ns"]),
        "status": row["status_code"],
        "status_message": row["status_message"] or None,
        "resource_attributes": dict(row["resource_attributes"]),
        "span_attributes": dict(row["attributes"]),
        "events": events_out(row),
        "input": row["input"] or None,
        "output": row["output"] or None,
        "model_name": row["model"] or None,
        "provider": row["provider"] or None,
        "usage_details": {
            "prompt_tokens": int(row["input_tokens"]),
            "completion_tokens": int(row["output_tokens"]),
            "total_tokens": int(row["total_tokens"]),
        },
        "cost": number(row["cost_usd"]),
        "environment": row["environment"],
        "span_type": row["span_type"],
        "user_id": row["user_id"] or None,
        "session_id": row["session_id"] or None,
    }


async def query_spans(reader: TenantReader, q: SpanQuery, now: datetime) -> QueryResult:
    applied = applied_range(q, now)
    page_sql, count_sql = reader.sql(), reader.sql()
    page = page_sql.select(
        "spans",
        SPAN_DETAIL_COLUMNS,
        where=_where(page_sql, q, applied),
        order_by=["start_time DESC", "trace_id", "span_id"],
        limit_by=(1, ["trace_id", "span_id"]),
        limit=q.limit,
        offset=q.offset,
    )
    count = count_sql.select(
        "spans", ["uniqExact(trace_id, span_id) AS n"], where=_where(count_sql, q, applied)
    )
    rows, counted = await asyncio.gather(
        reader.rows(page_sql.build(page)), reader.rows(count_sql.build(count))
    )
    total = int(counted[0]["n"]) if counted else 0
    has_more = q.offset + len(rows) < total
    data = {
        "spans": [span_dict(r) for r in rows],
        "total_count": total,
        "has_more": has_more,
        "next_offset": q.offset + len(rows) if has_more else None,
    }
    return QueryResult(data, applied, has_more=has_more)
