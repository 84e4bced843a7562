"""Projects and their environments."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from brokle_server.catalog import audit
from brokle_server.catalog.audit import Actor
from brokle_server.catalog.models import DEFAULT_ENVIRONMENT, Environment, Project
from brokle_server.catalog.slugs import check_slug, slugify
from brokle_server.core.pagination import Page, PageRequest
from brokle_server.errors import Conflict, NotFound, ValidationFailed

# The names the Brokle SDK accepts for environments: lowercase, digits, dash, underscore.
ENVIRONMENT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
MAX_RETENTION_DAYS = 3650


def check_environment_name(name: str) -> str:
    if not ENVIRONMENT_RE.match(name) or name.startswith("brokle"):
        raise ValidationFailed(
            "Environment name must be 1-40 lowercase letters, digits, '-' or '_', and must "
            "not start with 'brokle'",
            details=[{"field": "name", "message": "invalid environment name"}],
        )
    return name


async def create(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    name: str,
    slug: str | None,
    description: str,
    retention_days: int,
    actor: Actor,
) -> Project:
    slug = check_slug(slug) if slug else slugify(name)
    clash = await session.scalar(
        select(Project.id).where(Project.organization_id == organization_id, Project.slug == slug)
    )
    if clash:
        raise Conflict(f"Project slug '{slug}' is taken in this organization", code="slug_taken")
    project = Project(
        organization_id=organization_id,
        name=name.strip(),
        slug=slug,
        description=description,
        retention_days=retention_days,
    )
    session.add(project)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"Project slug '{slug}' is taken", code="slug_taken") from exc
    session.add(Environment(project_id=project.id, name=DEFAULT_ENVIRONMENT))
    audit.record(
        session,
        actor,
        "project.create",
        "project",
        project.id,
        organization_id=organization_id,
        project_id=project.id,
        details={"name": project.name, "slug": slug},
    )
    return project


async def list_for_org(
    session: AsyncSession, organization_id: uuid.UUID, page: PageRequest
) -> Page:
    where = Project.organization_id == organization_id
    total = await session.scalar(select(func.count()).select_from(Project).where(where))
    rows = await session.scalars(
        select(Project)
        .where(where)
        .order_by(Project.created_at, Project.id)
        .offset(page.offset)
        .limit(page.limit)
    )
    return Page(list(rows), total or 0, page)


async def update(
    session: AsyncSession,
    project: Project,
    *,
    name: str | None,
    description: str | None,
    retention_days: int | None,
    actor: Actor,
) -> Project:
    changes: dict[str, object] = {}
    if name is not None:
        project.name = changes["name"] = name.strip()
    if description is not None:
        project.description = changes["description"] = description
    if retention_days is not None:
        project.retention_days = changes["retention_days"] = retention_days
    audit.record(
        session,
        actor,
        "project.update",
        "project",
        project.id,
        organization_id=project.organization_id,
        project_id=project.id,
        details=changes,
    )
    return project


async def delete(session: AsyncSession, project: Project, *, actor: Actor) -> None:
    audit.record(
        session,
        actor,
        "project.delete",
        "project",
        project.id,
        organization_id=project.organization_id,
        project_id=project.id,
        details={"slug": project.slug},
    )
    await session.delete(project)


async def list_environments(session: AsyncSession, project_id: uuid.UUID) -> list[Environment]:
    rows = await session.scalars(
        select(Environment).where(Environment.project_id == project_id).order_by(Environment.name)
    )
    return list(rows)


async def get_environment(session: AsyncSession, project_id: uuid.UUID, name: str) -> Environment:
    env = await session.scalar(
        select(Environment).where(Environment.project_id == project_id, Environment.name == name)
    )
    if env is None:
        raise NotFound(
            f"Environment '{name}' not found in this project", code="environment_not_found"
        )
    return env


async def create_environment(
    session: AsyncSession, project: Project, *, name: str, actor: Actor
) -> Environment:
    check_environment_name(name)
    clash = await session.scalar(
        select(Environment.id).where(Environment.project_id == project.id, Environment.name == name)
    )
    if clash:
        raise Conflict(f"Environment '{name}' already exists", code="environment_exists")
    env = Environment(project_id=project.id, name=name)
    session.add(env)
    await session.flush()
    audit.record(
        session,
        actor,
        "environment.create",
        "environment",
        env.id,
        organization_id=project.organization_id,
        project_id=project.id,
        details={"name": name},
    )
    return env
