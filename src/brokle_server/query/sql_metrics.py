"""SQL for the metric queries over ``series`` (label sets) and ``samples`` (points).

Every query first narrows the metric's series to those active in the range that match the
dimension filters (``series`` keeps one row per series per day with the first/last sample
time seen, so ``last_seen >= start AND first_seen < end`` finds every series with a sample in
range), then reads only those series' samples (``series_id IN (...)`` uses the samples
sorting key) and joins them to the group values. Group columns come out as ``d0, d1...``.

``rate`` takes each sample's increase over the previous one of its series (a drop is a
counter reset: the increase is the new value), sums the increases per bucket and divides by
the bucket width; the first sample of a series in the range has no predecessor and adds 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from brokle_server.query import fields
from brokle_server.query.filters import Filter, row_conditions
from brokle_server.query.scope import Sql
from brokle_server.query.timerange import NS_PER_MS, NS_PER_S, AppliedRange

AGGREGATES: Final = {
    "sum": "sum(value)",
    "avg": "avg(value)",
    "min": "min(value)",
    "max": "max(value)",
    "count": "toFloat64(count())",
    "p50": "quantile(0.5)(value)",
    "p90": "quantile(0.9)(value)",
    "p95": "quantile(0.95)(value)",
    "p99": "quantile(0.99)(value)",
}
RATE_COMBINE: Final = {
    "sum": "sum(rate)",
    "avg": "avg(rate)",
    "min": "min(rate)",
    "max": "max(rate)",
}


def _ms_bounds(sql: Sql, applied: AppliedRange) -> tuple[str, str]:
    start = f"fromUnixTimestamp64Milli({sql.bind(applied.start_ms, 'Int64')}, 'UTC')"
    end = f"fromUnixTimestamp64Milli({sql.bind(applied.end_ms, 'Int64')}, 'UTC')"
    return start, end


def _series_where(
    sql: Sql, metric: str, applied: AppliedRange, filters: Sequence[Filter]
) -> list[str]:
    start, end = _ms_bounds(sql, applied)
    return [
        f"metric_name = {sql.bind(metric, 'String')}",
        f"last_seen >= {start}",
        f"first_seen < {end}",
        *row_conditions(sql, fields.METRICS, filters),
    ]


def _groups(
    sql: Sql, metric: str, applied: AppliedRange, filters: Sequence[Filter], group_by: Sequence[str]
) -> str:
    """``(series_id, d0, d1...)`` of the matching series."""
    columns = ["series_id"] + [
        f"any(labels[{sql.bind(key, 'String')}]) AS d{i}" for i, key in enumerate(group_by)
    ]
    return sql.select(
        "series",
        columns,
        where=_series_where(sql, metric, applied, filters),
        group_by=["series_id"],
    )


def _samples(
    sql: Sql,
    metric: str,
    applied: AppliedRange,
    filters: Sequence[Filter],
    columns: Sequence[str],
) -> str:
    ids = sql.select("series", ["series_id"], where=_series_where(sql, metric, applied, filters))
    start, end = _ms_bounds(sql, applied)
    return sql.select(
        "samples",
        columns,
        where=[
            f"metric_name = {sql.bind(metric, 'String')}",
            f"timestamp >= {start}",
            f"timestamp < {end}",
            f"series_id IN ({ids})",
        ],
    )


def _dims(group_by: Sequence[str]) -> list[str]:
    return [f"g.d{i} AS d{i}" for i in range(len(group_by))]


def aggregate_sql(
    sql: Sql,
    metric: str,
    applied: AppliedRange,
    filters: Sequence[Filter],
    group_by: Sequence[str],
    aggregation: str,
    limit: int,
) -> str:
    samples = _samples(sql, metric, applied, filters, ["series_id", "value"])
    groups = _groups(sql, metric, applied, filters, group_by)
    dims = [f"d{i}" for i in range(len(group_by))]
    select = [*_dims(group_by), f"{AGGREGATES[aggregation]} AS v", "count() AS n_samples"]
    text = (
        f"SELECT {', '.join(select)}\nFROM ({samples}) AS s\n"
        f"INNER JOIN ({groups}) AS g ON s.series_id = g.series_id"
    )
    if dims:
        text += f"\nGROUP BY {', '.join(dims)}\nORDER BY {', '.join(dims)}"
    return text + f"\nLIMIT {int(limit)}"


def _bucket(sql: Sql, step_ns: int) -> str:
    step = sql.bind(max(1, step_ns // NS_PER_MS), "Int64")
    return f"intDiv(toUnixTimestamp64Milli(timestamp), {step}) * {step} AS bucket"


def range_sql(
    sql: Sql,
    metric: str,
    applied: AppliedRange,
    filters: Sequence[Filter],
    group_by: Sequence[str],
    aggregation: str,
    step_ns: int,
    max_rows: int,
) -> str:
    samples = _samples(sql, metric, applied, filters, ["series_id", _bucket(sql, step_ns), "value"])
    groups = _groups(sql, metric, applied, filters, group_by)
    dims = [f"d{i}" for i in range(len(group_by))]
    select = [*_dims(group_by), "s.bucket AS bucket", f"{AGGREGATES[aggregation]} AS v"]
    keys = ", ".join([*dims, "bucket"])
    return (
        f"SELECT {', '.join(select)}\nFROM ({samples}) AS s\n"
        f"INNER JOIN ({groups}) AS g ON s.series_id = g.series_id\n"
        f"GROUP BY {keys}\nORDER BY {keys}\nLIMIT {int(max_rows)}"
    )


_WINDOW: Final = "(PARTITION BY environment, series_id ORDER BY timestamp)"
_LAG_FRAME: Final = (
    "(PARTITION BY environment, series_id ORDER BY timestamp "
    "ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)"
)


def rate_sql(
    sql: Sql,
    metric: str,
    applied: AppliedRange,
    filters: Sequence[Filter],
    group_by: Sequence[str],
    aggregation: str,
    step_ns: int,
    max_rows: int,
) -> str:
    samples = _samples(
        sql,
        metric,
        applied,
        filters,
        [
            "environment AS env",
            "series_id",
            _bucket(sql, step_ns),
            "value",
            f"lagInFrame(value, 1) OVER {_LAG_FRAME} AS prev",
            f"row_number() OVER {_WINDOW} AS n",
        ],
    )
    groups = _groups(sql, metric, applied, filters, group_by)
    dims = [f"d{i}" for i in range(len(group_by))]
    seconds = sql.bind(step_ns / NS_PER_S, "Float64")
    per_series = (
        f"SELECT {', '.join([*_dims(group_by), 's.env AS env', 's.series_id AS sid'])}, "
        "s.bucket AS bucket, "
        f"sum(if(s.n = 1, 0, if(s.value >= s.prev, s.value - s.prev, s.value))) / {seconds} "
        "AS rate\n"
        f"FROM ({samples}) AS s\n"
        f"INNER JOIN ({groups}) AS g ON s.series_id = g.series_id\n"
        f"GROUP BY {', '.join([*dims, 'env', 'sid', 'bucket'])}"
    )
    keys = ", ".join([*dims, "bucket"])
    return (
        f"SELECT {', '.join([*dims, 'bucket'])}, {RATE_COMBINE[aggregation]} AS v\n"
        f"FROM ({per_series})\nGROUP BY {keys}\nORDER BY {keys}\nLIMIT {int(max_rows)}"
    )
