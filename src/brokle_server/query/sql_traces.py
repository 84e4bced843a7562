"""SQL for the span-group listings (traces, sessions, users) and for one trace.

A listing reads the spans of the range once, groups them by trace / session / user and
filters the groups in ``HAVING``: a span field holds for a group when one of its spans
matches (see :func:`filters.group_conditions`). Pages are keyset-paginated on
``(sort value, group key)``.

The trace list reads each span once (``LIMIT 1 BY trace_id, span_id`` drops the copies a
retried export may have left before a merge folded them), so its span counts agree with the
trace view. Sessions and users, which aggregate days of spans like ``analytics``, skip that
step (it costs as much as the grouping over long ranges) and count traces and sessions with
``uniq`` (exact below ~65k distinct values per group).

One trace is found through ``trace_index`` (its time window and environments), then its
spans are read inside that window with the spans sorting key, latest copy of each span first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from brokle_server.query import fields
from brokle_server.query.cursor import CursorValue
from brokle_server.query.filters import Catalog, Filter, group_conditions
from brokle_server.query.scope import Sql
from brokle_server.query.timerange import AppliedRange

MAX_TRACE_SPANS: Final = 10_000
MAX_TRACE_SCORES: Final = 2_000
_ROOT_FIRST: Final = "(parent_span_id != '', start_time)"


@dataclass(frozen=True, slots=True)
class GroupList:
    """How one listing groups spans: the key column, its aggregates, its sorts, and whether
    span copies are folded before grouping (see the module docstring)."""

    kind: str
    key: str
    catalog: Catalog
    aggregates: tuple[str, ...]
    sorts: dict[str, tuple[str, type]]  # request sort name -> (alias, cursor value type)
    fold_copies: bool = False


_COMMON: Final = (
    "count() AS g_spans",
    "countIf(status_code = 'error') AS g_errors",
    "round(sum(cost_usd), 9) AS g_cost",
    "sum(total_tokens) AS g_tokens",
    "sum(input_tokens) AS g_input_tokens",
    "sum(output_tokens) AS g_output_tokens",
    "arraySort(groupUniqArray(environment)) AS g_environments",
)

TRACES: Final = GroupList(
    "traces",
    "trace_id",
    fields.TRACES,
    (
        f"argMin(name, {_ROOT_FIRST}) AS g_name",
        f"argMin(service_name, {_ROOT_FIRST}) AS g_service",
        "toUnixTimestamp64Nano(min(start_time)) AS g_start_ns",
        "toUnixTimestamp64Nano(max(end_time)) AS g_end_ns",
        "g_end_ns - g_start_ns AS g_duration_ns",
        *_COMMON,
        "if(g_errors > 0, 'error', 'ok') AS g_status",
        "arraySort(groupUniqArrayIf(model, model != '')) AS g_models",
        "arraySort(groupUniqArrayIf(provider, provider != '')) AS g_providers",
        "anyIf(user_id, user_id != '') AS g_user",
        "anyIf(session_id, session_id != '') AS g_session",
        "arraySort(groupUniqArrayArray(tags)) AS g_tags",
    ),
    {
        "startTime": ("g_start_ns", int),
        "duration": ("g_duration_ns", int),
        "cost": ("g_cost", float),
        "tokens": ("g_tokens", int),
        "spans": ("g_spans", int),
    },
    fold_copies=True,
)

_ACTIVITY: Final = (
    "toUnixTimestamp64Nano(min(start_time)) AS g_first_ns",
    "toUnixTimestamp64Nano(max(end_time)) AS g_last_ns",
    "uniq(trace_id) AS g_traces",
)

SESSIONS: Final = GroupList(
    "sessions",
    "session_id",
    fields.SESSIONS,
    (
        *_ACTIVITY,
        "g_last_ns - g_first_ns AS g_duration_ns",
        *_COMMON,
        "arraySort(groupUniqArrayIf(user_id, user_id != '')) AS g_users",
    ),
    {
        "lastActivity": ("g_last_ns", int),
        "firstActivity": ("g_first_ns", int),
        "duration": ("g_duration_ns", int),
        "cost": ("g_cost", float),
        "tokens": ("g_tokens", int),
        "traces": ("g_traces", int),
    },
)

USERS: Final = GroupList(
    "users",
    "user_id",
    fields.USERS,
    (
        *_ACTIVITY,
        "uniqIf(session_id, session_id != '') AS g_sessions",
        *_COMMON,
        "arraySort(groupUniqArrayIf(model, model != '')) AS g_models",
    ),
    {
        "lastSeen": ("g_last_ns", int),
        "firstSeen": ("g_first_ns", int),
        "cost": ("g_cost", float),
        "tokens": ("g_tokens", int),
        "traces": ("g_traces", int),
        "sessions": ("g_sessions", int),
    },
)

# Columns every listing's span source provides; filters may add map columns.
_SOURCE_COLUMNS: Final = (
    "trace_id", "span_id", "parent_span_id", "name", "service_name", "environment",
    "start_time", "end_time", "status_code", "cost_usd", "total_tokens", "input_tokens",
    "output_tokens", "model", "provider", "user_id", "session_id", "tags",
)  # fmt: skip


def ns_bounds(sql: Sql, applied: AppliedRange, column: str = "start_time") -> list[str]:
    start = sql.bind(applied.start_ns, "Int64")
    end = sql.bind(applied.end_ns, "Int64")
    return [
        f"{column} >= fromUnixTimestamp64Nano({start}, 'UTC')",
        f"{column} < fromUnixTimestamp64Nano({end}, 'UTC')",
    ]


def source_columns(catalog: Catalog, filters: Sequence[Filter]) -> list[str]:
    """The span columns a listing and its filters read."""
    columns = list(_SOURCE_COLUMNS)
    for f in filters:
        resolved = catalog.resolve(f.field)
        if resolved is None or resolved[0].level == "group":
            continue
        column = resolved[0].expr
        if column not in columns:
            columns.append(column)
    return columns


def group_list_sql(
    sql: Sql,
    spec: GroupList,
    applied: AppliedRange,
    filters: Sequence[Filter],
    sort: str,
    descending: bool,
    after: Sequence[CursorValue] | None,
    limit: int,
) -> str:
    where = ns_bounds(sql, applied)
    if spec.key != "trace_id":
        where.append(f"{spec.key} != ''")
    source = sql.select(
        "spans",
        source_columns(spec.catalog, filters),
        where=where,
        limit_by=(1, ["trace_id", "span_id"]) if spec.fold_copies else None,
    )
    having = group_conditions(sql, spec.catalog, filters)
    alias, value_type = spec.sorts[sort]
    if after is not None:
        bound = sql.bind(after[0], "Float64" if value_type is float else "Int64")
        key = sql.bind(after[1], "String")
        having.append(f"({alias}, {spec.key}) {'<' if descending else '>'} ({bound}, {key})")
    direction = "DESC" if descending else "ASC"
    text = f"SELECT {spec.key}, {', '.join(spec.aggregates)}\nFROM ({source})\nGROUP BY {spec.key}"
    if having:
        text += "\nHAVING " + " AND ".join(f"({c})" for c in having)
    return f"{text}\nORDER BY {alias} {direction}, {spec.key} {direction}\nLIMIT {int(limit)}"


# -- one trace ------------------------------------------------------------------------------

SPAN_DETAIL_COLUMNS: Final = (
    "trace_id", "span_id", "parent_span_id", "trace_state", "name", "kind", "service_name",
    "scope_name", "scope_version", "environment",
    "toUnixTimestamp64Nano(start_time) AS start_ns", "toUnixTimestamp64Nano(end_time) AS end_ns",
    "duration_ns", "status_code", "status_message", "span_type", "level", "attributes",
    "resource_attributes", "arrayMap(t -> toUnixTimestamp64Nano(t), event_times) AS event_ns",
    "event_names", "event_attributes", "link_trace_ids", "link_span_ids", "provider", "model",
    "operation", "input_tokens", "output_tokens", "total_tokens", "cached_tokens",
    "cache_write_tokens", "reasoning_tokens", "cost_usd", "input_cost_usd", "output_cost_usd",
    "price_version", "ttft_ms", "input", "output", "user_id", "session_id", "tags",
    "api_key_id", "release", "version",
)  # fmt: skip


def trace_window_sql(sql: Sql, trace_id: str) -> str:
    return sql.select(
        "trace_index",
        [
            "toUnixTimestamp64Nano(min(start_time)) AS start_ns",
            "toUnixTimestamp64Nano(max(end_time)) AS end_ns",
            "groupUniqArrayArray(environments) AS envs",
            "count() AS n",
        ],
        where=[f"trace_id = {sql.bind(trace_id, 'String')}"],
    )


def trace_spans_sql(
    sql: Sql, trace_id: str, start_ns: int, end_ns: int, environments: Sequence[str]
) -> str:
    where = [
        f"trace_id = {sql.bind(trace_id, 'String')}",
        f"start_time >= fromUnixTimestamp64Nano({sql.bind(start_ns, 'Int64')}, 'UTC')",
        f"start_time <= fromUnixTimestamp64Nano({sql.bind(end_ns, 'Int64')}, 'UTC')",
    ]
    if environments:
        where.append(f"environment IN {sql.bind(list(environments), 'Array(String)')}")
    return sql.select(
        "spans",
        SPAN_DETAIL_COLUMNS,
        where=where,
        order_by=["span_id", "ingested_at DESC"],
        limit_by=(1, ["span_id"]),
        limit=MAX_TRACE_SPANS,
    )


def trace_scores_sql(sql: Sql, trace_id: str, since_ms: int) -> str:
    return sql.select(
        "scores",
        [
            "score_id", "span_id", "name", "value", "string_value", "data_type", "source",
            "comment", "toUnixTimestamp64Milli(timestamp) AS ts_ms",
        ],
        where=[
            f"trace_id = {sql.bind(trace_id, 'String')}",
            f"timestamp >= fromUnixTimestamp64Milli({sql.bind(since_ms, 'Int64')}, 'UTC')",
        ],
        order_by=["score_id", "ingested_at DESC"],
        limit_by=(1, ["score_id"]),
        limit=MAX_TRACE_SCORES,
    )  # fmt: skip
