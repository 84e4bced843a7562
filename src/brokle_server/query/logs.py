"""``logs``: log records of the range, filtered, newest (or oldest) first, keyset-paged.

Logs have no id, so the page key is ``(timestamp, cityHash64(body, trace_id, span_id))``:
records sharing a timestamp still sort the same way on every page. ``search`` is a
case-insensitive substring match on the body. Severity names cover OTel's number ranges;
a record with no number (0) is matched by its severity text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from brokle_server.query import fields
from brokle_server.query.cursor import CursorValue, decode_cursor, encode_cursor
from brokle_server.query.filters import Filter, row_conditions
from brokle_server.query.models_usage import SEVERITY_RANGES, LogsQuery
from brokle_server.query.results import QueryResult
from brokle_server.query.scope import Sql, TenantReader
from brokle_server.query.timerange import AppliedRange, iso

_TIE: Final = "cityHash64(body, trace_id, span_id)"
_COLUMNS: Final = (
    "toUnixTimestamp64Nano(timestamp) AS ts_ns",
    "toUnixTimestamp64Nano(observed_timestamp) AS observed_ns",
    f"{_TIE} AS tie",
    "environment", "severity_text", "severity_number", "service_name", "scope_name", "body",
    "trace_id", "span_id", "attributes", "resource_attributes",
)  # fmt: skip


def severity_condition(sql: Sql, names: Sequence[str]) -> str:
    ranges = [
        f"severity_number BETWEEN {sql.bind(SEVERITY_RANGES[n][0], 'UInt8')} "
        f"AND {sql.bind(SEVERITY_RANGES[n][1], 'UInt8')}"
        for n in names
    ]
    texts = sql.bind(list(names), "Array(String)")
    by_text = f"severity_number = 0 AND upperUTF8(severity_text) IN {texts}"
    return " OR ".join(f"({c})" for c in [*ranges, by_text])


def logs_sql(
    sql: Sql,
    q: LogsQuery,
    applied: AppliedRange,
    filters: Sequence[Filter],
    after: Sequence[CursorValue] | None,
    limit: int,
) -> str:
    start, end = sql.bind(applied.start_ns, "Int64"), sql.bind(applied.end_ns, "Int64")
    where = [
        f"timestamp >= fromUnixTimestamp64Nano({start}, 'UTC')",
        f"timestamp < fromUnixTimestamp64Nano({end}, 'UTC')",
        *row_conditions(sql, fields.LOGS, filters),
    ]
    if q.severity is not None:
        names = q.severity if isinstance(q.severity, list) else [q.severity]
        if names:
            where.append(severity_condition(sql, names))
    if q.minSeverity is not None:
        order = list(SEVERITY_RANGES)
        where.append(severity_condition(sql, order[order.index(q.minSeverity) :]))
    if q.search is not None:
        where.append(f"positionCaseInsensitiveUTF8(body, {sql.bind(q.search, 'String')}) > 0")
    descending = q.order == "desc"
    if after is not None:
        ts = f"fromUnixTimestamp64Nano({sql.bind(after[0], 'Int64')}, 'UTC')"
        tie = sql.bind(after[1], "UInt64")
        where.append(f"(timestamp, {_TIE}) {'<' if descending else '>'} ({ts}, {tie})")
    direction = "DESC" if descending else "ASC"
    return sql.select(
        "logs",
        _COLUMNS,
        where=where,
        order_by=[f"timestamp {direction}", f"tie {direction}"],
        limit=limit,
    )


def log_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "timestamp": iso(int(row["ts_ns"])),
        "observedTimestamp": iso(int(row["observed_ns"])),
        "severity": row["severity_text"],
        "severityNumber": int(row["severity_number"]),
        "service": row["service_name"],
        "scope": row["scope_name"],
        "environment": row["environment"],
        "body": row["body"],
        "traceId": row["trace_id"] or None,
        "spanId": row["span_id"] or None,
        "attributes": dict(row["attributes"]),
        "resourceAttributes": dict(row["resource_attributes"]),
    }


async def run(reader: TenantReader, q: LogsQuery, now: datetime) -> QueryResult:
    applied = q.timeRange.resolve(now)
    fields.LOGS.check(q.filters)
    sort = f"timestamp:{q.order}"
    after = decode_cursor(q.cursor, "logs", sort, [int, int]) if q.cursor else None
    sql = reader.sql()
    rows = await reader.rows(
        sql.build(logs_sql(sql, q, applied, q.all_filters(), after, q.limit + 1))
    )
    has_more = len(rows) > q.limit
    rows = rows[: q.limit]
    cursor = None
    if has_more:
        cursor = encode_cursor("logs", sort, [int(rows[-1]["ts_ns"]), int(rows[-1]["tie"])])
    return QueryResult([log_out(r) for r in rows], applied, cursor=cursor, has_more=has_more)
