"""Admin operations on a project's stored telemetry: delete a metric, apply retention.

Both run lightweight ``DELETE``s (rows vanish from reads at once; parts are rewritten by
later merges), scoped to the tenant like every read.

Retention: every row carries the ``retention_days`` it was written with, and the tables'
TTL drops whole day-partitions after that many days. Applying a new setting (1) stores it
on the project, so rows ingested from now on carry it, and (2) deletes the project's rows
older than the new limit at once. Rows already stored keep the expiry they were written with
(``retention_days`` is part of the partition key), so lengthening retention protects new data
only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from brokle_server.errors import NotFound
from brokle_server.query.scope import TenantReader
from brokle_server.query.timerange import DAY_NS, NS_PER_MS, datetime_ns, iso

# table -> (time column, its precision)
RETENTION_COLUMNS: Final = {
    "spans": ("start_time", "ns"),
    "trace_index": ("start_time", "ns"),
    "logs": ("timestamp", "ns"),
    "series": ("last_seen", "ms"),
    "samples": ("timestamp", "ms"),
    "scores": ("timestamp", "ms"),
    "events": ("timestamp", "ms"),
}


async def delete_metric(reader: TenantReader, metric: str) -> dict[str, Any]:
    """Delete every series and sample of ``metric``; 404 when there is none."""
    counts: dict[str, int] = {}
    for table in ("series", "samples"):
        sql = reader.sql()
        text = sql.select(
            table, ["count() AS n"], where=[f"metric_name = {sql.bind(metric, 'String')}"]
        )
        rows = await reader.rows(sql.build(text))
        counts[table] = int(rows[0]["n"]) if rows else 0
    if not any(counts.values()):
        raise NotFound(f"Metric '{metric}' not found", code="metric_not_found")
    cluster = reader.store.target.cluster
    for table in ("samples", "series"):
        sql = reader.sql()
        text = sql.delete(table, [f"metric_name = {sql.bind(metric, 'String')}"], cluster)
        await reader.execute(sql.build(text))
    return {
        "metricName": metric,
        "deleted": {"series": counts["series"], "samples": counts["samples"]},
    }


async def purge_older_than(reader: TenantReader, days: int, now: datetime) -> str:
    """Delete the tenant's rows older than ``days`` in every table; returns the cutoff."""
    cutoff_ns = datetime_ns(now) - days * DAY_NS
    cluster = reader.store.target.cluster
    for table, (column, unit) in RETENTION_COLUMNS.items():
        sql = reader.sql()
        if unit == "ns":
            bound = f"fromUnixTimestamp64Nano({sql.bind(cutoff_ns, 'Int64')}, 'UTC')"
        else:
            bound = f"fromUnixTimestamp64Milli({sql.bind(cutoff_ns // NS_PER_MS, 'Int64')}, 'UTC')"
        await reader.execute(sql.build(sql.delete(table, [f"{column} < {bound}"], cluster)))
    return iso(cutoff_ns)
