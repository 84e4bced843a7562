"""Discovery endpoints: metric names, dimensions and values; span attributes; services; models.

Each takes ``project_id`` (user sessions; an API key reads its own project), a time range
(``range=24h`` by default, or ``start``/``end``), and ``limit``; most take ``search``
(case-insensitive substring). Replies list items in ``data``; ``meta.timeRange`` is the
range applied.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from brokle_server.core.envelope import ok
from brokle_server.deps import PrincipalDep, ServicesDep
from brokle_server.query import discovery
from brokle_server.query.callers import QueryRoute, query_scope, tenant_reader
from brokle_server.query.errors import field_error
from brokle_server.query.fields import (
    ATTRIBUTE_KEY_PATTERN,
    DIMENSION_PATTERN,
    METRIC_NAME_PATTERN,
)
from brokle_server.query.scope import TenantReader
from brokle_server.query.timerange import (
    DURATION_PATTERN,
    AppliedRange,
    Family,
    TimeRange,
    datetime_ns,
)

router = APIRouter(prefix="/api/v1", tags=["query: discovery"], route_class=QueryRoute)

Limit = Annotated[int, Query(ge=1, le=1000, description="Most items returned.")]
Search = Annotated[
    str | None,
    Query(max_length=200, pattern=r"^[^\x00]*$", description="Case-insensitive substring."),
]
Source = Annotated[
    discovery.Source, Query(description="'span' attributes or 'resource' attributes.")
]
MetricPath = Annotated[str, Path(pattern=METRIC_NAME_PATTERN, description="Metric name.")]


@dataclass(frozen=True, slots=True)
class Discovery:
    reader: TenantReader
    applied: AppliedRange

    def reply(self, items: list[dict[str, Any]], limit: int) -> dict[str, Any]:
        return ok(items, timeRange=self.applied.meta(), cursor=None, hasMore=len(items) >= limit)


def _discovery(family: Family) -> Callable[..., Coroutine[Any, Any, Discovery]]:
    async def dependency(
        principal: PrincipalDep,
        services: ServicesDep,
        project_id: Annotated[
            uuid.UUID | None, Query(description="Project (required with a user session).")
        ] = None,
        range_: Annotated[
            str | None,
            Query(
                alias="range",
                pattern=DURATION_PATTERN,
                description="Relative range back from now (default 24h).",
            ),
        ] = None,
        start: Annotated[datetime | None, Query(description="Range start (RFC 3339).")] = None,
        end: Annotated[datetime | None, Query(description="Range end (RFC 3339).")] = None,
    ) -> Discovery:
        scope = await query_scope(services, principal, project_id, field="project_id")
        if start is not None:
            if range_ is not None:
                raise field_error("range", "give either 'range' or 'start'/'end', not both")
            if end is not None and datetime_ns(end) <= datetime_ns(start):
                raise field_error("end", "'end' must be after 'start'")
            time_range = TimeRange(start=start, end=end)
        elif end is not None:
            raise field_error("start", "'end' needs 'start'")
        else:
            time_range = TimeRange(relative=range_ or "24h")
        applied = time_range.resolve(services.clock(), family, "range")
        return Discovery(tenant_reader(services, scope), applied)

    return dependency


MetricsDiscovery = Annotated[Discovery, Depends(_discovery("metrics"))]
SpansDiscovery = Annotated[Discovery, Depends(_discovery("spans"))]


@router.get("/metrics", summary="Metric names with their type, unit and series count")
async def list_metrics(d: MetricsDiscovery, search: Search = None, limit: Limit = 500) -> Any:
    return d.reply(await discovery.metric_names(d.reader, d.applied, search, limit), limit)


@router.get("/metrics/{name}/dimensions", summary="Dimension (label) keys of a metric")
async def list_dimensions(name: MetricPath, d: MetricsDiscovery, limit: Limit = 500) -> Any:
    return d.reply(await discovery.metric_dimensions(d.reader, name, d.applied, limit), limit)


@router.get("/metrics/{name}/dimensions/{key}/values", summary="Values of a metric dimension")
async def list_dimension_values(
    name: MetricPath,
    key: Annotated[str, Path(pattern=DIMENSION_PATTERN, description="Dimension key.")],
    d: MetricsDiscovery,
    search: Search = None,
    limit: Limit = 500,
) -> Any:
    items = await discovery.dimension_values(d.reader, name, key, d.applied, search, limit)
    return d.reply(items, limit)


@router.get("/spans/attributes", summary="Span (or resource) attribute keys, most used first")
async def list_attribute_keys(
    d: SpansDiscovery, source: Source = "span", search: Search = None, limit: Limit = 500
) -> Any:
    items = await discovery.attribute_keys(d.reader, source, d.applied, search, limit)
    return d.reply(items, limit)


@router.get("/spans/attributes/{key}/values", summary="Values of a span attribute")
async def list_attribute_values(
    key: Annotated[str, Path(pattern=ATTRIBUTE_KEY_PATTERN, description="Attribute key.")],
    d: SpansDiscovery,
    source: Source = "span",
    search: Search = None,
    limit: Limit = 500,
) -> Any:
    items = await discovery.attribute_values(d.reader, source, key, d.applied, search, limit)
    return d.reply(items, limit)


@router.get("/services", summary="Services that sent spans, with span/trace/error counts")
async def list_services(d: SpansDiscovery, limit: Limit = 500) -> Any:
    return d.reply(await discovery.services(d.reader, d.applied, limit), limit)


@router.get("/models", summary="LLM models seen in spans, with requests, tokens and cost")
async def list_models(d: SpansDiscovery, limit: Limit = 500) -> Any:
    return d.reply(await discovery.models(d.reader, d.applied, limit), limit)
