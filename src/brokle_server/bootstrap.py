"""First run: make sure an admin, an organization, a project and a key exist.

With ``BROKLE_INIT_*`` settings, create whichever of those is missing (safe to repeat on every
start). With none set and an empty catalog, create a default set and report the generated
credentials once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from brokle_server.auth import keys
from brokle_server.catalog import api_keys, organizations, projects, users
from brokle_server.catalog.audit import Actor
from brokle_server.catalog.db import Database
from brokle_server.catalog.models import ApiKey, Organization, Project, User
from brokle_server.catalog.slugs import slugify
from brokle_server.core.clock import Clock
from brokle_server.errors import ConfigurationError
from brokle_server.settings import Settings

DEFAULT_ADMIN_EMAIL = "admin@example.com"


@dataclass(frozen=True, slots=True)
class FirstRun:
    """What a first start created; secrets are set only when Brokle generated them."""

    admin_email: str
    organization: str
    project: str
    project_id: str
    admin_password: str | None = None
    api_key: str | None = None


async def bootstrap(db: Database, settings: Settings, clock: Clock) -> FirstRun | None:
    actor = Actor.system()
    async with db.session() as session:
        if _init_requested(settings):
            return await _ensure_init(session, settings, clock, actor)
        if await session.scalar(select(func.count()).select_from(User)):
            return None
        password = secrets.token_urlsafe(18)
        return await _create_all(
            session,
            settings,
            clock,
            actor,
            email=DEFAULT_ADMIN_EMAIL,
            password=password,
            org_name="Default",
            project_name="Default",
            key=None,
            generated_password=password,
        )


def _init_requested(settings: Settings) -> bool:
    return any(
        (
            settings.init_admin_email,
            settings.init_org,
            settings.init_project,
            settings.init_project_api_key,
        )
    )


async def _ensure_init(
    session: AsyncSession, settings: Settings, clock: Clock, actor: Actor
) -> FirstRun | None:
    email = settings.init_admin_email
    password = (
        settings.init_admin_password.get_secret_value() if settings.init_admin_password else None
    )
    if not email or not password:
        raise ConfigurationError(
            "BROKLE_INIT_ADMIN_EMAIL and BROKLE_INIT_ADMIN_PASSWORD are both needed to bootstrap"
        )
    key = (
        settings.init_project_api_key.get_secret_value() if settings.init_project_api_key else None
    )
    if key is not None and not keys.is_well_formed(key):
        raise ConfigurationError("BROKLE_INIT_PROJECT_API_KEY must be 'bk_' + 40 letters/digits")
    return await _create_all(
        session,
        settings,
        clock,
        actor,
        email=email,
        password=password,
        org_name=settings.init_org or "Default",
        project_name=settings.init_project or "Default",
        key=key,
        generated_password=None,
    )


async def _create_all(
    session: AsyncSession,
    settings: Settings,
    clock: Clock,
    actor: Actor,
    *,
    email: str,
    password: str,
    org_name: str,
    project_name: str,
    key: str | None,
    generated_password: str | None,
) -> FirstRun | None:
    created = False
    user = await users.get_by_email(session, email)
    if user is None:
        user = await users.create_user(
            session,
            email=email,
            password=password,
            name="Admin",
            min_password_length=settings.auth.min_password_length,
            actor=actor,
        )
        created = True
    org = await session.scalar(select(Organization).where(Organization.slug == slugify(org_name)))
    if org is None:
        org = await organizations.create(session, name=org_name, slug=None, owner=user, actor=actor)
        created = True
    project = await session.scalar(
        select(Project).where(
            Project.organization_id == org.id, Project.slug == slugify(project_name)
        )
    )
    if project is None:
        project = await projects.create(
            session,
            organization_id=org.id,
            name=project_name,
            slug=None,
            description="",
            retention_days=30,
            actor=actor,
        )
        created = True
    plaintext: str | None = None
    if key is not None:
        if not await session.scalar(select(ApiKey.id).where(ApiKey.key_hash == keys.digest(key))):
            await api_keys.create(
                session,
                project,
                name="bootstrap",
                scopes=None,
                environment=None,
                expires_at=None,
                created_by=user.id,
                now=clock(),
                actor=actor,
                plaintext=key,
            )
            created = True
    elif generated_password is not None:
        _, plaintext = await api_keys.create(
            session,
            project,
            name="default",
            scopes=None,
            environment=None,
            expires_at=None,
            created_by=user.id,
            now=clock(),
            actor=actor,
        )
    if not created:
        return None
    return FirstRun(
        admin_email=user.email,
        organization=org.name,
        project=project.name,
        project_id=str(project.id),
        admin_password=generated_password,
        api_key=plaintext,
    )
