"""Who may query which project, resolved to a :class:`QueryScope`; and the query routes' class.

* An API key needs the ``query`` scope and reads its own project (and only its environment
  when it is bound to one); naming another project answers 404, as for any foreign id.
* A dashboard user names the project (``projectId`` in the body, ``project_id`` in the query
  string) and must be a member of its organization (``project:read``).

:class:`QueryRoute` rewrites FastAPI's request validation errors into the query layer's 400
(``Invalid field 'filters[0].op': ...``) before the app's handlers see them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from brokle_server.auth import access
from brokle_server.auth.principals import KeyPrincipal, Principal
from brokle_server.auth.rbac import Permission
from brokle_server.catalog.models import Scope
from brokle_server.container import Services
from brokle_server.errors import NotFound, Unavailable
from brokle_server.query.errors import field_error, request_error
from brokle_server.query.scope import QueryScope, TenantReader


class QueryRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                raise request_error(list(exc.errors())) from None

        return checked


async def query_scope(
    services: Services,
    principal: Principal,
    project_id: uuid.UUID | None,
    *,
    field: str = "projectId",
    permission: Permission = Permission.PROJECT_READ,
) -> QueryScope:
    if isinstance(principal, KeyPrincipal):
        principal.require(Scope.QUERY)
        if project_id is not None and project_id != principal.project_id:
            raise NotFound("Project not found", code="project_not_found")
        return QueryScope(str(principal.project_id), principal.environment)
    if project_id is None:
        raise field_error(field, "required when calling with a user session")
    async with services.db.session() as session:
        await access.authorize_project(session, principal, project_id, permission)
    return QueryScope(str(project_id))


def tenant_reader(services: Services, scope: QueryScope) -> TenantReader:
    telemetry = services.telemetry
    if not telemetry.store_ready:
        raise Unavailable("The telemetry store is starting; retry shortly", retry_after=2.0)
    return TenantReader(telemetry.store, scope)
