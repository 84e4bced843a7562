"""Request models of the trace queries: ``traces`` (a list), ``trace`` (one, as a tree),
``sessions`` and ``users``.

The named filter fields of ``traces`` (``service``, ``model``, ``minDurationMs``...) are
shorthands for entries of ``filters``; both may be combined and all conditions must hold.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from brokle_server.query.fields import (
    AttributeKey,
    EnvironmentName,
    Name,
    TraceId,
)
from brokle_server.query.filters import Filter
from brokle_server.query.models_base import ListQuery, QueryBase
from brokle_server.query.timerange import TimeRange


def _one_or_many(field: str, value: str | list[str] | None) -> list[Filter]:
    if value is None:
        return []
    if isinstance(value, list):
        return [Filter(field=field, op="in", value=list(value))] if value else []
    return [Filter(field=field, op="eq", value=value)]


class TracesQuery(ListQuery):
    """Traces with a span in the time range, newest first by default."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "queryType": "traces",
                    "timeRange": {"relative": "1h"},
                    "service": "chatbot",
                    "model": ["gpt-4o", "gpt-4o-mini"],
                    "status": "error",
                    "minDurationMs": 500,
                    "filters": [{"field": "attributes.http.route", "op": "eq", "value": "/chat"}],
                    "sort": "duration",
                    "limit": 50,
                }
            ]
        }
    )

    queryType: Literal["traces"]
    timeRange: TimeRange
    environment: EnvironmentName | list[EnvironmentName] | None = None
    service: Name | list[Name] | None = None
    name: Name | None = Field(None, description="The trace's (root span's) name.")
    model: Name | list[Name] | None = None
    provider: Name | list[Name] | None = None
    status: Literal["ok", "error"] | None = Field(
        None, description="'error' when any span failed, else 'ok'."
    )
    userId: Name | None = None
    sessionId: Name | None = None
    tags: list[Name] | None = Field(None, max_length=20, description="Traces carrying all tags.")
    minDurationMs: float | None = Field(None, ge=0)
    maxDurationMs: float | None = Field(None, ge=0)
    minCost: float | None = Field(None, ge=0, description="USD.")
    maxCost: float | None = Field(None, ge=0, description="USD.")
    attributes: dict[AttributeKey, Name] | None = Field(
        None, max_length=20, description="Span attribute equality: some span has each."
    )
    sort: Literal["startTime", "duration", "cost", "tokens", "spans"] = "startTime"

    def all_filters(self) -> list[Filter]:
        out = list(self.filters)
        out += _one_or_many("environment", self.environment)
        out += _one_or_many("service", self.service)
        out += _one_or_many("model", self.model)
        out += _one_or_many("provider", self.provider)
        for field, value in (
            ("name", self.name),
            ("status", self.status),
            ("userId", self.userId),
            ("sessionId", self.sessionId),
        ):
            out += _one_or_many(field, value)
        out += [Filter(field="tags", op="eq", value=tag) for tag in self.tags or ()]
        for field, op, number in (
            ("duration", "gte", self.minDurationMs),
            ("duration", "lte", self.maxDurationMs),
            ("cost", "gte", self.minCost),
            ("cost", "lte", self.maxCost),
        ):
            if number is not None:
                out.append(Filter(field=field, op=op, value=number))
        for key, value in (self.attributes or {}).items():
            out.append(Filter(field=f"attributes.{key}", op="eq", value=value))
        return out


class TraceQuery(QueryBase):
    """One trace: its spans as a tree, with the scores given to it and its spans."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"queryType": "trace", "traceId": "4bf92f3577b34da6a3ce929d0e0e4736"}]
        }
    )

    queryType: Literal["trace"]
    traceId: TraceId = Field(description="32 hex characters.")
    timeRange: TimeRange | None = Field(
        None, description="Where to look; defaults to the longest range allowed (31 days)."
    )


class SessionsQuery(ListQuery):
    """Sessions (spans sharing a session id) active in the time range."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "queryType": "sessions",
                    "timeRange": {"relative": "7d"},
                    "userId": "user-42",
                    "sort": "cost",
                }
            ]
        }
    )

    queryType: Literal["sessions"]
    timeRange: TimeRange
    userId: Name | None = None
    environment: EnvironmentName | None = None
    sort: Literal["lastActivity", "firstActivity", "duration", "cost", "tokens", "traces"] = (
        "lastActivity"
    )

    def all_filters(self) -> list[Filter]:
        return [
            *self.filters,
            *_one_or_many("userId", self.userId),
            *_one_or_many("environment", self.environment),
        ]


class UsersQuery(ListQuery):
    """End users (spans' user ids) active in the time range."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"queryType": "users", "timeRange": {"relative": "7d"}, "sort": "tokens"}]
        }
    )

    queryType: Literal["users"]
    timeRange: TimeRange
    environment: EnvironmentName | None = None
    sort: Literal["lastSeen", "firstSeen", "cost", "tokens", "traces", "sessions"] = "lastSeen"

    def all_filters(self) -> list[Filter]:
        return [*self.filters, *_one_or_many("environment", self.environment)]
