"""The ``brokle`` SDK's span query endpoints: ``POST /v1/spans/query`` and ``.../validate``.

Both need an API key with the ``query`` scope. A filter that does not parse answers 400 with
code ``invalid_filter`` from the query endpoint (the SDK raises ``InvalidFilterError``), and
``{"valid": false, "error": ...}`` from the validation endpoint.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from brokle_server.auth.principals import KeyPrincipal
from brokle_server.catalog.models import Scope
from brokle_server.core.envelope import ok
from brokle_server.deps import ServicesDep, require_key
from brokle_server.query import sdk_filter
from brokle_server.query.callers import QueryRoute, query_scope, tenant_reader
from brokle_server.query.sdk import FilterCheck, SpanQuery, query_spans

router = APIRouter(prefix="/v1/spans", tags=["query: brokle SDK"], route_class=QueryRoute)
QueryKey = Annotated[KeyPrincipal, Depends(require_key(Scope.QUERY))]


@router.post("/query", summary="Query spans with a filter expression (brokle SDK)")
async def sdk_query(body: SpanQuery, principal: QueryKey, services: ServicesDep) -> Any:
    scope = await query_scope(services, principal, None)
    result = await query_spans(tenant_reader(services, scope), body, services.clock())
    return ok(result.data, **result.meta())


@router.post("/query/validate", summary="Check a filter expression's syntax (brokle SDK)")
async def sdk_validate(body: FilterCheck, principal: QueryKey) -> dict[str, Any]:
    try:
        sdk_filter.check(body.filter)
    except sdk_filter.FilterSyntaxError as exc:
        return ok({"valid": False, "error": exc.message})
    return ok({"valid": True, "message": "Filter is valid"})
