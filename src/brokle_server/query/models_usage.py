"""Request models of ``analytics`` (LLM usage) and ``logs``."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import ConfigDict, Field, field_validator

from brokle_server.query.fields import AttributeKey, FreeText, Name, SpanId, TraceId
from brokle_server.query.filters import Filter
from brokle_server.query.models_base import MAX_FILTERS, ListQuery, QueryBase
from brokle_server.query.timerange import DURATION_PATTERN, TimeRange

AnalyticsDimension = Literal[
    "model", "provider", "environment", "user", "apiKey", "service", "operation", "name"
]


class AnalyticsQuery(QueryBase):
    """LLM calls (generation spans, or any span naming a model) summed over the time range,
    per ``interval`` bucket when one is given, per ``groupBy`` dimension."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "queryType": "analytics",
                    "timeRange": {"relative": "7d"},
                    "interval": "1d",
                    "groupBy": ["model"],
                    "filters": [{"field": "environment", "op": "eq", "value": "production"}],
                }
            ]
        }
    )

    queryType: Literal["analytics"]
    timeRange: TimeRange
    interval: str | None = Field(
        None, pattern=DURATION_PATTERN, description="Bucket width for a time series (e.g. '1h')."
    )
    groupBy: list[AnalyticsDimension] = Field(
        default_factory=list, max_length=3, description="Dimensions to group by."
    )
    filters: list[Filter] = Field(default_factory=list, max_length=MAX_FILTERS)
    limit: int = Field(1000, ge=1, le=10_000, description="Most rows returned.")

    @field_validator("groupBy")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("groupBy names a dimension twice")
        return value


Severity = Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
# OTel severity numbers: each name covers four (TRACE 1-4 ... FATAL 21-24).
SEVERITY_RANGES: Final[dict[str, tuple[int, int]]] = {
    "TRACE": (1, 4),
    "DEBUG": (5, 8),
    "INFO": (9, 12),
    "WARN": (13, 16),
    "ERROR": (17, 20),
    "FATAL": (21, 24),
}


class LogsQuery(ListQuery):
    """Log records in the time range, newest first by default."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "queryType": "logs",
                    "timeRange": {"relative": "15m"},
                    "minSeverity": "WARN",
                    "service": "chatbot",
                    "search": "timeout",
                    "limit": 100,
                }
            ]
        }
    )

    queryType: Literal["logs"]
    timeRange: TimeRange
    severity: Severity | list[Severity] | None = Field(
        None, description="Only these severities (OTel names)."
    )
    minSeverity: Severity | None = Field(None, description="This severity or worse.")
    service: Name | list[Name] | None = None
    traceId: TraceId | None = None
    spanId: SpanId | None = None
    search: FreeText | None = Field(
        None, description="Case-insensitive text the body must contain."
    )
    attributes: dict[AttributeKey, Name] | None = Field(None, max_length=20)

    @field_validator("severity", "minSeverity", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        if isinstance(value, str):
            return value.upper()
        if isinstance(value, list):
            return [v.upper() if isinstance(v, str) else v for v in value]
        return value

    def all_filters(self) -> list[Filter]:
        out = list(self.filters)
        if isinstance(self.service, list):
            out.append(Filter(field="service", op="in", value=list(self.service)))
        elif self.service is not None:
            out.append(Filter(field="service", op="eq", value=self.service))
        if self.traceId is not None:
            out.append(Filter(field="traceId", op="eq", value=self.traceId))
        if self.spanId is not None:
            out.append(Filter(field="spanId", op="eq", value=self.spanId))
        for key, value in (self.attributes or {}).items():
            out.append(Filter(field=f"attributes.{key}", op="eq", value=value))
        return out
