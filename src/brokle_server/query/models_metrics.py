"""Request models of the metric queries (Luminate's shape): ``aggregate``, ``range``, ``rate``.

::

    {"queryType": "aggregate", "metricName": "cpu", "timeRange": {"relative": "24h"},
     "aggregation": "avg", "groupBy": ["host"], "filters": {"region": "eu"}}

``filters`` is Luminate's ``{dimension: value}`` equality map or a list of
:class:`~brokle_server.query.filters.Filter` on dimension names.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from brokle_server.query.fields import Dimension, MetricName
from brokle_server.query.filters import Filter, Scalar, equality_filters
from brokle_server.query.models_base import MAX_FILTERS, QueryBase
from brokle_server.query.timerange import DURATION_PATTERN, TimeRange

Aggregation = Literal["sum", "avg", "min", "max", "count", "p50", "p90", "p95", "p99"]


class MetricQuery(QueryBase):
    metricName: MetricName = Field(description="The metric's name.")
    timeRange: TimeRange
    filters: list[Filter] | dict[Dimension, Scalar] = Field(
        default_factory=list,
        max_length=MAX_FILTERS,
        description="Dimension filters: a {dimension: value} map (equality) or a list of "
        "filters whose field is a dimension name.",
    )
    groupBy: list[Dimension] = Field(
        default_factory=list, max_length=10, description="Dimensions to group by."
    )

    @field_validator("groupBy")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("groupBy names a dimension twice")
        return value

    def filter_list(self) -> list[Filter]:
        if isinstance(self.filters, dict):
            return equality_filters(self.filters)
        return self.filters


class AggregateQuery(MetricQuery):
    """One value per group over the whole time range."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "queryType": "aggregate",
                    "metricName": "cpu",
                    "timeRange": {"relative": "24h"},
                    "aggregation": "avg",
                    "groupBy": ["host"],
                    "filters": {"region": "eu"},
                }
            ]
        }
    )

    queryType: Literal["aggregate"]
    aggregation: Aggregation = Field("avg", description="How samples are combined.")
    limit: int = Field(1000, ge=1, le=10_000, description="Most groups returned.")


class RangeQuery(MetricQuery):
    """A time series per group: samples combined per ``interval`` bucket."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "queryType": "range",
                    "metricName": "http_request_duration_seconds",
                    "timeRange": {"start": "2026-11-21T00:00:00Z", "end": "2026-11-22T00:00:00Z"},
                    "aggregation": "p95",
                    "interval": "5m",
                    "groupBy": ["route"],
                    "filters": [{"field": "method", "op": "in", "value": ["GET", "POST"]}],
                }
            ]
        }
    )

    queryType: Literal["range"]
    aggregation: Aggregation = Field("avg", description="How samples in a bucket combine.")
    interval: str | None = Field(
        None, pattern=DURATION_PATTERN, description="Bucket width (e.g. '1m'); ~120 if unset."
    )
    limit: int = Field(100, ge=1, le=1000, description="Most series returned.")


class RateQuery(MetricQuery):
    """Per-second increase of a counter per ``interval``, resets handled, per group."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "queryType": "rate",
                    "metricName": "http_requests_total",
                    "timeRange": {"relative": "1h"},
                    "interval": "1m",
                    "groupBy": ["code"],
                }
            ]
        }
    )

    queryType: Literal["rate"]
    aggregation: Literal["sum", "avg", "min", "max"] = Field(
        "sum", description="How the rates of the series in a group combine."
    )
    interval: str | None = Field(
        None, pattern=DURATION_PATTERN, description="Bucket width (e.g. '1m'); ~120 if unset."
    )
    limit: int = Field(100, ge=1, le=1000, description="Most series returned.")
