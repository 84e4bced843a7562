"""Role-based access: what each organization role may do, checked against memberships.

A caller with no membership in an organization gets 404 for everything in it, so ids of
other tenants' resources reveal nothing.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from brokle_server.catalog.models import Membership, Project, Role
from brokle_server.errors import NotFound, PermissionDenied


class Permission(StrEnum):
    ORG_READ = "org:read"
    ORG_UPDATE = "org:update"
    ORG_DELETE = "org:delete"
    MEMBERS_MANAGE = "members:manage"
    AUDIT_READ = "audit:read"
    PROJECT_READ = "project:read"
    PROJECT_CREATE = "project:create"
    PROJECT_UPDATE = "project:update"
    PROJECT_DELETE = "project:delete"
    ENVIRONMENT_CREATE = "environment:create"
    KEYS_READ = "keys:read"
    KEYS_MANAGE = "keys:manage"


MIN_ROLE: dict[Permission, Role] = {
    Permission.ORG_READ: Role.VIEWER,
    Permission.ORG_UPDATE: Role.ADMIN,
    Permission.ORG_DELETE: Role.OWNER,
    Permission.MEMBERS_MANAGE: Role.ADMIN,
    Permission.AUDIT_READ: Role.ADMIN,
    Permission.PROJECT_READ: Role.VIEWER,
    Permission.PROJECT_CREATE: Role.DEVELOPER,
    Permission.PROJECT_UPDATE: Role.DEVELOPER,
    Permission.PROJECT_DELETE: Role.ADMIN,
    Permission.ENVIRONMENT_CREATE: Role.DEVELOPER,
    Permission.KEYS_READ: Role.VIEWER,
    Permission.KEYS_MANAGE: Role.DEVELOPER,
}


def allows(role: Role, permission: Permission) -> bool:
    return role.at_least(MIN_ROLE[permission])


def check(role: Role, permission: Permission) -> None:
    if not allows(role, permission):
        raise PermissionDenied(
            f"Your role ({role.value}) cannot do this; it needs "
            f"{MIN_ROLE[permission].value} or higher",
            details={"permission": permission.value, "role": role.value},
        )


async def org_role(session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID) -> Role:
    membership = await session.get(Membership, (organization_id, user_id))
    if membership is None:
        raise NotFound("Organization not found", code="organization_not_found")
    return Role(membership.role)


async def authorize_org(
    session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID, permission: Permission
) -> Role:
    role = await org_role(session, organization_id, user_id)
    check(role, permission)
    return role


async def authorize_project(
    session: AsyncSession, project_id: uuid.UUID, user_id: uuid.UUID, permission: Permission
) -> tuple[Project, Role]:
    project = await session.get(Project, project_id)
    membership = (
        await session.get(Membership, (project.organization_id, user_id)) if project else None
    )
    if project is None or membership is None:
        raise NotFound("Project not found", code="project_not_found")
    role = Role(membership.role)
    check(role, permission)
    return project, role
