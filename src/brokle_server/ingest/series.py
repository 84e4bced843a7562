"""Metric rows shared by OTLP metrics, Prometheus remote_write and Luminate JSON.

A :class:`SeriesCollector` turns (name, labels, value, time) samples into ``samples`` rows
and one ``series`` row per distinct (environment, series) in the request, with the first
and last sample time seen. Series ids come from :func:`brokle_server.store.schema.series_id`
so every producer agrees on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from brokle_server.core.types import ProjectScope
from brokle_server.ingest.common import (
    NS_PER_MS,
    ItemStatus,
    Rejections,
    Row,
    TimeWindow,
    normalize_environment,
    resolve_environment,
)
from brokle_server.store.schema import SAMPLE_COLUMNS, SERIES_COLUMNS, series_id

_SERIES_ORDER: Final = (
    "project_id", "environment", "retention_days", "metric_name", "series_id", "labels",
    "metric_type", "unit", "description", "first_seen", "last_seen",
)  # fmt: skip
_SAMPLE_ORDER: Final = (
    "project_id", "environment", "retention_days", "metric_name", "series_id", "timestamp",
    "value",
)  # fmt: skip
if tuple(SERIES_COLUMNS) != _SERIES_ORDER or tuple(SAMPLE_COLUMNS) != _SAMPLE_ORDER:
    raise RuntimeError(
        "store.schema metric columns changed; update ingest.series"
    )  # pragma: no cover


@dataclass(slots=True)
class MetricBatch:
    """``series`` and ``samples`` rows plus what was rejected (data points or samples)."""

    series: list[Row]
    samples: list[Row]
    rejected: Rejections
    errors: list[ItemStatus] = field(default_factory=list)


class SeriesCollector:
    """Accumulates sample rows and the series rows they imply, for one request."""

    __slots__ = (
        "_series",
        "bound_environment",
        "fallback_environment",
        "project_id",
        "retention_days",
        "samples",
        "window",
    )

    def __init__(
        self,
        scope: ProjectScope,
        received_at: datetime,
        future_skew_s: int,
        fallback_environment: str | None = None,
    ) -> None:
        self.project_id = str(scope.project_id)
        self.retention_days = scope.retention_days
        self.bound_environment = scope.environment
        self.fallback_environment = (
            normalize_environment(fallback_environment) if fallback_environment else None
        )
        self.window = TimeWindow.build(received_at, scope.retention_days, future_skew_s)
        self.samples: list[Row] = []
        # (environment, series_id) -> [name, labels, type, unit, description, first, last]
        self._series: dict[tuple[str, int], list[object]] = {}

    @property
    def received_ms(self) -> int:
        return self.window.received_ns // NS_PER_MS

    def environment(self, *candidates: str | None) -> str:
        return resolve_environment(self.bound_environment, *candidates, self.fallback_environment)

    def check_ms(self, ts_ms: int) -> str | None:
        """Why a sample time (ms) is outside the accepted window, or ``None``."""
        return self.window.reject_reason(ts_ms * NS_PER_MS)

    def add(
        self,
        environment: str,
        name: str,
        labels: dict[str, str],
        ts_ms: int,
        value: float,
        metric_type: str = "unknown",
        unit: str = "",
        description: str = "",
        sid: int | None = None,
    ) -> None:
        """One sample; ``sid`` may be passed when the caller already computed it."""
        if sid is None:
            sid = series_id(name, labels)
        self.samples.append(
            (self.project_id, environment, self.retention_days, name, sid, ts_ms, value)
        )
        key = (environment, sid)
        entry = self._series.get(key)
        if entry is None:
            self._series[key] = [name, labels, metric_type, unit, description, ts_ms, ts_ms]
        else:
            if ts_ms < entry[5]:  # type: ignore[operator]
                entry[5] = ts_ms
            if ts_ms > entry[6]:  # type: ignore[operator]
                entry[6] = ts_ms

    def series_rows(self) -> list[Row]:
        return [
            (
                self.project_id,
                env,
                self.retention_days,
                name,
                sid,
                labels,
                metric_type,
                unit,
                description,
                first,
                last,
            )
            for (env, sid), (
                name,
                labels,
                metric_type,
                unit,
                description,
                first,
                last,
            ) in self._series.items()
        ]

    def finish(self, rejected: Rejections) -> MetricBatch:
        return MetricBatch(self.series_rows(), self.samples, rejected)
