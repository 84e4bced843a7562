"""Project API keys: created with a one-time plaintext, stored as SHA-256, revocable."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from brokle_server.auth import keys
from brokle_server.catalog import audit
from brokle_server.catalog.audit import Actor
from brokle_server.catalog.models import DEFAULT_SCOPES, ApiKey, Project, Scope
from brokle_server.catalog.projects import get_environment
from brokle_server.core.pagination import Page, PageRequest
from brokle_server.errors import Conflict, NotFound, ValidationFailed


async def create(
    session: AsyncSession,
    project: Project,
    *,
    name: str,
    scopes: list[Scope] | None,
    environment: str | None,
    expires_at: datetime | None,
    created_by: uuid.UUID | None,
    now: datetime,
    actor: Actor,
    plaintext: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the plaintext, which is never stored."""
    if expires_at is not None and expires_at <= now:
        raise ValidationFailed(
            "expires_at must be in the future",
            details=[{"field": "expires_at", "message": "must be in the future"}],
        )
    env_id = (await get_environment(session, project.id, environment)).id if environment else None
    key = plaintext or keys.generate()
    if not keys.is_well_formed(key):
        raise ValidationFailed("API keys are 'bk_' followed by 40 letters or digits")
    digest = keys.digest(key)
    if await session.scalar(select(ApiKey.id).where(ApiKey.key_hash == digest)):
        raise Conflict("This API key already exists", code="key_exists")
    chosen = sorted({s.value for s in (scopes or DEFAULT_SCOPES)})
    row = ApiKey(
        project_id=project.id,
        environment_id=env_id,
        name=name.strip(),
        key_hash=digest,
        preview=keys.preview(key),
        scopes=chosen,
        created_by=created_by,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    await session.refresh(row, ["environment"])
    audit.record(
        session,
        actor,
        "api_key.create",
        "api_key",
        row.id,
        organization_id=project.organization_id,
        project_id=project.id,
        details={"name": row.name, "scopes": chosen, "environment": environment},
    )
    return row, key


async def list_for_project(session: AsyncSession, project_id: uuid.UUID, page: PageRequest) -> Page:
    where = ApiKey.project_id == project_id
    total = await session.scalar(select(func.count()).select_from(ApiKey).where(where))
    rows = await session.scalars(
        select(ApiKey)
        .where(where)
        .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
        .offset(page.offset)
        .limit(page.limit)
    )
    return Page(list(rows.unique()), total or 0, page)


async def get_by_digest(session: AsyncSession, digest: str) -> tuple[ApiKey, Project] | None:
    row = (
        await session.execute(
            select(ApiKey, Project)
            .join(Project, Project.id == ApiKey.project_id)
            .where(ApiKey.key_hash == digest)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def revoke(
    session: AsyncSession, project: Project, key_id: uuid.UUID, *, now: datetime, actor: Actor
) -> ApiKey:
    row = await session.get(ApiKey, key_id)
    if row is None or row.project_id != project.id:
        raise NotFound("API key not found", code="api_key_not_found")
    if row.revoked_at is None:
        row.revoked_at = now
        audit.record(
            session,
            actor,
            "api_key.revoke",
            "api_key",
            row.id,
            organization_id=project.organization_id,
            project_id=project.id,
            details={"name": row.name},
        )
    return row


async def touch(session: AsyncSession, key_id: uuid.UUID, now: datetime) -> None:
    row = await session.get(ApiKey, key_id)
    if row is not None:
        row.last_used_at = now
