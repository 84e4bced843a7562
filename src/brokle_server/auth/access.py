"""Resolving what a caller (user or API key) may do to a project."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from brokle_server.auth import rbac
from brokle_server.auth.principals import KeyPrincipal, Principal
from brokle_server.auth.rbac import Permission
from brokle_server.catalog.models import Project, Role, Scope
from brokle_server.errors import NotFound


async def authorize_project(
    session: AsyncSession, principal: Principal, project_id: uuid.UUID, permission: Permission
) -> tuple[Project, Role]:
    """A user acts with their organization role; an ``admin``-scoped key acts as an admin of
    its own project only. Anything else is 404."""
    if isinstance(principal, KeyPrincipal):
        project = await session.get(Project, project_id)
        if (
            project is None
            or principal.project_id != project_id
            or Scope.ADMIN.value not in principal.scopes
        ):
            raise NotFound("Project not found", code="project_not_found")
        rbac.check(Role.ADMIN, permission)
        return project, Role.ADMIN
    return await rbac.authorize_project(session, project_id, principal.user.id, permission)
