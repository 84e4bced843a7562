"""Admin metric and retention endpoints (Luminate's admin operations).

* ``DELETE /api/v1/admin/metrics/{name}``: drop a metric's series and samples. Needs an
  admin of the project: an ``admin``-scoped key (its own project) or a user with the admin
  role or above.
* ``GET|PUT /api/v1/projects/{id}/retention``: read or set the project's retention in days
  (``project:read`` / ``project:update``); a PUT deletes the rows older than the new limit.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from brokle_server.auth import access
from brokle_server.auth.principals import KeyPrincipal, Principal
from brokle_server.auth.rbac import Permission
from brokle_server.catalog import projects
from brokle_server.catalog.models import ApiKey, Project
from brokle_server.catalog.projects import MAX_RETENTION_DAYS
from brokle_server.core.envelope import ok
from brokle_server.deps import ActorDep, PrincipalDep, ServicesDep, SessionDep
from brokle_server.query import admin
from brokle_server.query.callers import QueryRoute, tenant_reader
from brokle_server.query.errors import field_error
from brokle_server.query.fields import METRIC_NAME_PATTERN
from brokle_server.query.scope import QueryScope

router = APIRouter(prefix="/api/v1", tags=["query: admin"], route_class=QueryRoute)


class RetentionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"retentionDays": 14}]}
    )

    retentionDays: int = Field(ge=1, le=MAX_RETENTION_DAYS, description="Days to keep telemetry.")


def _retention_out(project: Project) -> dict[str, Any]:
    return {
        "projectId": str(project.id),
        "retentionDays": project.retention_days,
        "tables": sorted(admin.RETENTION_COLUMNS),
    }


async def _project(
    session: AsyncSession,
    principal: Principal,
    project_id: uuid.UUID | None,
    permission: Permission,
) -> Project:
    if project_id is None:
        if not isinstance(principal, KeyPrincipal):
            raise field_error("project_id", "required when calling with a user session")
        project_id = principal.project_id
    project, _ = await access.authorize_project(session, principal, project_id, permission)
    return project


@router.delete("/admin/metrics/{name}", summary="Delete a metric's series and samples")
async def delete_metric(
    name: Annotated[str, Path(pattern=METRIC_NAME_PATTERN)],
    principal: PrincipalDep,
    session: SessionDep,
    services: ServicesDep,
    project_id: Annotated[uuid.UUID | None, Query(description="Required for users.")] = None,
) -> dict[str, Any]:
    project = await _project(session, principal, project_id, Permission.PROJECT_DELETE)
    env = principal.environment if isinstance(principal, KeyPrincipal) else None
    reader = tenant_reader(services, QueryScope(str(project.id), env))
    return ok(await admin.delete_metric(reader, name))


@router.get("/projects/{project_id}/retention", summary="The project's telemetry retention")
async def get_retention(
    project_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    project = await _project(session, principal, project_id, Permission.PROJECT_READ)
    return ok(_retention_out(project))


@router.put(
    "/projects/{project_id}/retention",
    summary="Set the project's retention; rows older than the new limit are deleted",
)
async def set_retention(
    project_id: uuid.UUID,
    body: RetentionIn,
    principal: PrincipalDep,
    session: SessionDep,
    services: ServicesDep,
    actor: ActorDep,
) -> dict[str, Any]:
    project = await _project(session, principal, project_id, Permission.PROJECT_UPDATE)
    previous = project.retention_days
    reader = tenant_reader(services, QueryScope(str(project.id)))
    await projects.update(
        session,
        project,
        name=None,
        description=None,
        retention_days=body.retentionDays,
        actor=actor,
    )
    await session.flush()
    cutoff = await admin.purge_older_than(reader, body.retentionDays, services.clock())
    # Keys cache their project's retention for a few seconds: new rows take the setting now.
    for key_id in await session.scalars(select(ApiKey.id).where(ApiKey.project_id == project.id)):
        services.keys.forget(key_id)
    return ok(_retention_out(project) | {"previousDays": previous, "purgedBefore": cutoff})
