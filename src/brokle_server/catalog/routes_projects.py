"""Projects, environments and API keys under ``/api/v1``."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from brokle_server.auth import access, rbac
from brokle_server.auth.principals import UserPrincipal
from brokle_server.auth.rbac import Permission
from brokle_server.catalog import api_keys, projects
from brokle_server.catalog.schemas import (
    ApiKeyIn,
    EnvironmentIn,
    ProjectIn,
    ProjectPatch,
    api_key_out,
    environment_out,
    project_out,
)
from brokle_server.core.envelope import ok
from brokle_server.core.params import PageDep
from brokle_server.deps import ActorDep, PrincipalDep, ServicesDep, SessionDep, UserDep

router = APIRouter(prefix="/api/v1", tags=["projects"])


@router.get("/organizations/{org_id}/projects")
async def list_projects(
    org_id: uuid.UUID, principal: UserDep, session: SessionDep, page: PageDep
) -> dict[str, Any]:
    await rbac.authorize_org(session, org_id, principal.user.id, Permission.PROJECT_READ)
    result = await projects.list_for_org(session, org_id, page)
    return ok([project_out(p) for p in result.items], **result.meta())


@router.post(
    "/organizations/{org_id}/projects",
    status_code=201,
    summary="Create a project (with its 'default' environment)",
)
async def create_project(
    org_id: uuid.UUID, body: ProjectIn, principal: UserDep, session: SessionDep, actor: ActorDep
) -> dict[str, Any]:
    await rbac.authorize_org(session, org_id, principal.user.id, Permission.PROJECT_CREATE)
    project = await projects.create(
        session,
        organization_id=org_id,
        name=body.name,
        slug=body.slug,
        description=body.description,
        retention_days=body.retention_days,
        actor=actor,
    )
    return ok(project_out(project))


@router.get("/projects/{project_id}")
async def get_project(
    project_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    project, role = await access.authorize_project(
        session, principal, project_id, Permission.PROJECT_READ
    )
    return ok(project_out(project) | {"role": role.value})


@router.patch("/projects/{project_id}")
async def update_project(
    project_id: uuid.UUID,
    body: ProjectPatch,
    principal: PrincipalDep,
    session: SessionDep,
    actor: ActorDep,
) -> dict[str, Any]:
    project, _ = await access.authorize_project(
        session, principal, project_id, Permission.PROJECT_UPDATE
    )
    project = await projects.update(
        session,
        project,
        name=body.name,
        description=body.description,
        retention_days=body.retention_days,
        actor=actor,
    )
    await session.flush()
    return ok(project_out(project))


@router.delete("/projects/{project_id}", summary="Delete a project, its environments and keys")
async def delete_project(
    project_id: uuid.UUID,
    principal: UserDep,
    session: SessionDep,
    services: ServicesDep,
    actor: ActorDep,
) -> dict[str, Any]:
    project, _ = await rbac.authorize_project(
        session, project_id, principal.user.id, Permission.PROJECT_DELETE
    )
    await projects.delete(session, project, actor=actor)
    await session.commit()
    services.keys.forget(project_id=project_id)
    return ok({"id": str(project_id), "deleted": True})


@router.get("/projects/{project_id}/environments")
async def list_environments(
    project_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    await access.authorize_project(session, principal, project_id, Permission.PROJECT_READ)
    return ok([environment_out(e) for e in await projects.list_environments(session, project_id)])


@router.post("/projects/{project_id}/environments", status_code=201)
async def create_environment(
    project_id: uuid.UUID,
    body: EnvironmentIn,
    principal: PrincipalDep,
    session: SessionDep,
    actor: ActorDep,
) -> dict[str, Any]:
    project, _ = await access.authorize_project(
        session, principal, project_id, Permission.ENVIRONMENT_CREATE
    )
    env = await projects.create_environment(session, project, name=body.name, actor=actor)
    return ok(environment_out(env))


@router.get("/projects/{project_id}/api-keys", summary="API keys (previews only)")
async def list_api_keys(
    project_id: uuid.UUID, principal: PrincipalDep, session: SessionDep, page: PageDep
) -> dict[str, Any]:
    await access.authorize_project(session, principal, project_id, Permission.KEYS_READ)
    result = await api_keys.list_for_project(session, project_id, page)
    return ok([api_key_out(k) for k in result.items], **result.meta())


@router.post(
    "/projects/{project_id}/api-keys",
    status_code=201,
    summary="Create an API key; the plaintext is in data.key, shown once",
)
async def create_api_key(
    project_id: uuid.UUID,
    body: ApiKeyIn,
    principal: PrincipalDep,
    session: SessionDep,
    services: ServicesDep,
    actor: ActorDep,
) -> dict[str, Any]:
    project, _ = await access.authorize_project(
        session, principal, project_id, Permission.KEYS_MANAGE
    )
    created_by = principal.user.id if isinstance(principal, UserPrincipal) else None
    row, plaintext = await api_keys.create(
        session,
        project,
        name=body.name,
        scopes=body.scopes,
        environment=body.environment,
        expires_at=body.expires_at,
        created_by=created_by,
        now=services.clock(),
        actor=actor,
    )
    return ok(api_key_out(row, plaintext))


@router.delete("/projects/{project_id}/api-keys/{key_id}", summary="Revoke an API key")
async def revoke_api_key(
    project_id: uuid.UUID,
    key_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    services: ServicesDep,
    actor: ActorDep,
) -> dict[str, Any]:
    project, _ = await access.authorize_project(
        session, principal, project_id, Permission.KEYS_MANAGE
    )
    row = await api_keys.revoke(session, project, key_id, now=services.clock(), actor=actor)
    await session.commit()
    services.keys.forget(key_id)
    return ok(api_key_out(row))
