"""Request bodies of the management API and the public shape of catalog objects."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from brokle_server.catalog.models import (
    ApiKey,
    AuditLog,
    Environment,
    Invitation,
    Membership,
    Organization,
    Project,
    Role,
    Scope,
    User,
)

# No control characters in names (PostgreSQL refuses NUL; none belongs in a display name).
Name = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$"
    ),
]
Description = Annotated[
    str, StringConstraints(max_length=2000, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")
]
Slug = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("must include a timezone, e.g. 2027-01-01T00:00:00Z")
    return value


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignupIn(Body):
    email: EmailStr = Field(examples=["ada@example.com"])
    password: Password
    name: Name


class LoginIn(Body):
    email: EmailStr
    password: Password


class OrganizationIn(Body):
    name: Name
    slug: Slug | None = None


class OrganizationPatch(Body):
    name: Name | None = None
    slug: Slug | None = None


class MemberIn(Body):
    email: EmailStr
    role: Role = Role.DEVELOPER


class MemberPatch(Body):
    role: Role


class InvitationIn(Body):
    email: EmailStr
    role: Role = Role.DEVELOPER


class ProjectIn(Body):
    name: Name
    slug: Slug | None = None
    description: Description = ""
    retention_days: int = Field(30, ge=1, le=3650)


class ProjectPatch(Body):
    name: Name | None = None
    description: Description | None = None
    retention_days: int | None = Field(None, ge=1, le=3650)


class EnvironmentIn(Body):
    name: Annotated[str, StringConstraints(min_length=1, max_length=40)]


class ApiKeyIn(Body):
    name: Name
    scopes: list[Scope] | None = Field(
        None,
        description="Defaults to ingest, query and gateway when omitted.",
        min_length=1,
        max_length=4,
    )
    environment: Annotated[str, StringConstraints(max_length=40)] | None = Field(
        None, description="Bind the key to one environment of the project."
    )
    expires_at: Annotated[datetime | None, AfterValidator(_aware)] = None


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def user_out(user: User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "email": user.email,
        "name": user.name,
        "created_at": iso(user.created_at),
        "last_login_at": iso(user.last_login_at),
    }


def organization_out(org: Organization, role: str | None = None) -> dict[str, Any]:
    out = {
        "id": str(org.id),
        "name": org.name,
        "slug": org.slug,
        "created_at": iso(org.created_at),
        "updated_at": iso(org.updated_at),
    }
    if role is not None:
        out["role"] = role
    return out


def member_out(membership: Membership) -> dict[str, Any]:
    return {
        "user_id": str(membership.user_id),
        "email": membership.user.email,
        "name": membership.user.name,
        "role": membership.role,
        "joined_at": iso(membership.created_at),
    }


def invitation_out(invitation: Invitation, token: str | None = None) -> dict[str, Any]:
    out = {
        "id": str(invitation.id),
        "organization_id": str(invitation.organization_id),
        "email": invitation.email,
        "role": invitation.role,
        "created_at": iso(invitation.created_at),
        "expires_at": iso(invitation.expires_at),
    }
    if token is not None:
        out["token"] = token
    return out


def project_out(project: Project) -> dict[str, Any]:
    return {
        "id": str(project.id),
        "organization_id": str(project.organization_id),
        "name": project.name,
        "slug": project.slug,
        "description": project.description,
        "retention_days": project.retention_days,
        "created_at": iso(project.created_at),
        "updated_at": iso(project.updated_at),
    }


def environment_out(env: Environment) -> dict[str, Any]:
    return {
        "id": str(env.id),
        "project_id": str(env.project_id),
        "name": env.name,
        "created_at": iso(env.created_at),
    }


def api_key_out(key: ApiKey, plaintext: str | None = None) -> dict[str, Any]:
    out = {
        "id": str(key.id),
        "project_id": str(key.project_id),
        "name": key.name,
        "preview": key.preview,
        "scopes": list(key.scopes),
        "environment": key.environment.name if key.environment else None,
        "created_at": iso(key.created_at),
        "expires_at": iso(key.expires_at),
        "revoked_at": iso(key.revoked_at),
        "last_used_at": iso(key.last_used_at),
    }
    if plaintext is not None:
        out["key"] = plaintext
    return out


def audit_out(row: AuditLog) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "created_at": iso(row.created_at),
        "organization_id": str(row.organization_id) if row.organization_id else None,
        "project_id": str(row.project_id) if row.project_id else None,
        "actor_type": row.actor_type,
        "actor_id": row.actor_id,
        "action": row.action,
        "resource_type": row.resource_type,
        "resource_id": row.resource_id,
        "ip": row.ip,
        "user_agent": row.user_agent,
        "request_id": row.request_id,
        "details": row.details,
    }
