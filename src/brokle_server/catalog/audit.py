"""Who did what: the actor attached to every mutation, and the audit_log writer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from brokle_server.catalog.models import AuditLog
from brokle_server.core.pagination import Page, PageRequest

ActorType = Literal["user", "api_key", "system"]


@dataclass(frozen=True, slots=True)
class Actor:
    type: ActorType
    id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    user_id: uuid.UUID | None = field(default=None)

    @classmethod
    def system(cls) -> Actor:
        return cls(type="system", id="system")


def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: object | None,
    *,
    organization_id: uuid.UUID | None = None,
    project_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Add an audit row to the session; it commits with the mutation it describes."""
    session.add(
        AuditLog(
            organization_id=organization_id,
            project_id=project_id,
            actor_type=actor.type,
            actor_id=actor.id,
            action=action,
            resource_type=resource_type,
            resource_id=None if resource_id is None else str(resource_id),
            ip=actor.ip,
            user_agent=(actor.user_agent or "")[:512] or None,
            request_id=actor.request_id,
            details=details or {},
        )
    )


async def list_for_organization(
    session: AsyncSession, organization_id: uuid.UUID, page: PageRequest
) -> Page:
    where = AuditLog.organization_id == organization_id
    total = await session.scalar(select(func.count()).select_from(AuditLog).where(where))
    rows = await session.scalars(
        select(AuditLog)
        .where(where)
        .order_by(AuditLog.created_at.desc(), AuditLog.id.desc())
        .offset(page.offset)
        .limit(page.limit)
    )
    return Page(list(rows), total or 0, page)
