"""``POST /api/v1/query``: the unified query endpoint, one model per ``queryType``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from brokle_server.core.envelope import ok
from brokle_server.deps import PrincipalDep, ServicesDep
from brokle_server.query.callers import QueryRoute, query_scope, tenant_reader
from brokle_server.query.request import OPENAPI_EXAMPLES, QueryRequest, run_query

router = APIRouter(prefix="/api/v1", tags=["query"], route_class=QueryRoute)

_DESCRIPTION = """\
One endpoint for every read, chosen by `queryType`:

* `aggregate`, `range`, `rate`: metrics (Prometheus remote_write, OTLP metrics, Luminate
  batches), grouped by dimensions; `rate` is the per-second increase of a counter.
* `traces` (a filtered, sorted, paged list), `trace` (one trace as a span tree with its
  scores), `sessions`, `users`.
* `analytics`: LLM requests, errors, tokens, cost, latency and time-to-first-token
  percentiles and cache hit rate, over time and by model, provider, environment, user or key.
* `logs`: by severity, service, trace, body text and attributes.

Every query but `trace` needs a `timeRange` (at most 31 days; 93 for metrics). `filters`
take `{"field", "op", "value"}` with `op` one of `eq neq in contains gt gte lt lte exists`.
The reply's `meta` carries the applied `timeRange`, a `cursor` for the next page (null on
the last) and `hasMore`. Unknown fields, values or filter fields answer 400 naming the field.
"""


@router.post("/query", summary="Query telemetry (unified endpoint)", description=_DESCRIPTION)
async def query(
    body: Annotated[QueryRequest, Body(openapi_examples=OPENAPI_EXAMPLES)],
    principal: PrincipalDep,
    services: ServicesDep,
) -> dict[str, Any]:
    scope = await query_scope(services, principal, body.projectId)
    result = await run_query(tenant_reader(services, scope), body, services.clock())
    return ok(result.data, queryType=body.queryType, **result.meta())
