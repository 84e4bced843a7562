"""Organizations, memberships and invitations."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from brokle_server.catalog import audit
from brokle_server.catalog.audit import Actor
from brokle_server.catalog.models import Invitation, Membership, Organization, Role, User
from brokle_server.catalog.slugs import check_slug, slugify
from brokle_server.catalog.users import get_by_email, normalize_email
from brokle_server.core.pagination import Page, PageRequest
from brokle_server.errors import Conflict, InvalidInput, NotFound, PermissionDenied

INVITATION_TTL = timedelta(days=7)


async def create(
    session: AsyncSession, *, name: str, slug: str | None, owner: User, actor: Actor
) -> Organization:
    slug = check_slug(slug) if slug else slugify(name)
    if await session.scalar(select(Organization.id).where(Organization.slug == slug)):
        raise Conflict(f"Organization slug '{slug}' is taken", code="slug_taken")
    org = Organization(name=name.strip(), slug=slug)
    session.add(org)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"Organization slug '{slug}' is taken", code="slug_taken") from exc
    session.add(Membership(organization_id=org.id, user_id=owner.id, role=Role.OWNER.value))
    audit.record(
        session,
        actor,
        "organization.create",
        "organization",
        org.id,
        organization_id=org.id,
        details={"name": org.name, "slug": slug},
    )
    return org


async def list_for_user(
    session: AsyncSession, user_id: uuid.UUID, page: PageRequest
) -> tuple[Page, dict[uuid.UUID, str]]:
    """The user's organizations with the user's role in each."""
    base = (
        select(Organization, Membership.role)
        .join(Membership, Membership.organization_id == Organization.id)
        .where(Membership.user_id == user_id)
    )
    total = await session.scalar(select(func.count()).select_from(base.subquery()))
    rows = (
        await session.execute(
            base.order_by(Organization.created_at, Organization.id)
            .offset(page.offset)
            .limit(page.limit)
        )
    ).all()
    roles = {org.id: role for org, role in rows}
    return Page([org for org, _ in rows], total or 0, page), roles


async def get(session: AsyncSession, org_id: uuid.UUID) -> Organization:
    org = await session.get(Organization, org_id)
    if org is None:
        raise NotFound("Organization not found", code="organization_not_found")
    return org


async def update(
    session: AsyncSession, org: Organization, *, name: str | None, slug: str | None, actor: Actor
) -> Organization:
    changes: dict[str, str] = {}
    if name is not None:
        org.name = changes["name"] = name.strip()
    if slug is not None and slug != org.slug:
        check_slug(slug)
        if await session.scalar(select(Organization.id).where(Organization.slug == slug)):
            raise Conflict(f"Organization slug '{slug}' is taken", code="slug_taken")
        org.slug = changes["slug"] = slug
    audit.record(
        session,
        actor,
        "organization.update",
        "organization",
        org.id,
        organization_id=org.id,
        details=changes,
    )
    return org


async def delete(session: AsyncSession, org: Organization, *, actor: Actor) -> None:
    audit.record(
        session,
        actor,
        "organization.delete",
        "organization",
        org.id,
        organization_id=org.id,
        details={"slug": org.slug},
    )
    await session.delete(org)


async def list_members(session: AsyncSession, org_id: uuid.UUID, page: PageRequest) -> Page:
    where = Membership.organization_id == org_id
    total = await session.scalar(select(func.count()).select_from(Membership).where(where))
    rows = await session.scalars(
        select(Membership)
        .where(where)
        .order_by(Membership.created_at)
        .offset(page.offset)
        .limit(page.limit)
    )
    return Page(list(rows.unique()), total or 0, page)


def _check_grant(actor_role: Role, target_role: Role, current: Role | None = None) -> None:
    """Only owners grant or take away ownership."""
    touches_owner = target_role is Role.OWNER or current is Role.OWNER
    if touches_owner and actor_role is not Role.OWNER:
        raise PermissionDenied("Only an owner can grant or change the owner role")


async def _owner_count(session: AsyncSession, org_id: uuid.UUID) -> int:
    return (
        await session.scalar(
            select(func.count())
            .select_from(Membership)
            .where(Membership.organization_id == org_id, Membership.role == Role.OWNER.value)
        )
    ) or 0


async def add_member(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    email: str,
    role: Role,
    actor_role: Role,
    actor: Actor,
) -> Membership:
    _check_grant(actor_role, role)
    user = await get_by_email(session, email)
    if user is None:
        raise NotFound("No user with this email; send an invitation instead", code="user_not_found")
    if await session.get(Membership, (org_id, user.id)) is not None:
        raise Conflict("This user is already a member", code="already_member")
    membership = Membership(organization_id=org_id, user_id=user.id, role=role.value)
    session.add(membership)
    await session.flush()
    await session.refresh(membership, ["user"])
    audit.record(
        session,
        actor,
        "member.add",
        "membership",
        user.id,
        organization_id=org_id,
        details={"role": role.value},
    )
    return membership


async def change_role(
    session: AsyncSession,
    org_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    role: Role,
    actor_role: Role,
    actor: Actor,
) -> Membership:
    membership = await session.get(Membership, (org_id, user_id))
    if membership is None:
        raise NotFound("Member not found", code="member_not_found")
    current = Role(membership.role)
    _check_grant(actor_role, role, current)
    if (
        current is Role.OWNER
        and role is not Role.OWNER
        and await _owner_count(session, org_id) == 1
    ):
        raise InvalidInput("An organization needs at least one owner", code="last_owner")
    membership.role = role.value
    audit.record(
        session,
        actor,
        "member.role_change",
        "membership",
        user_id,
        organization_id=org_id,
        details={"from": current.value, "to": role.value},
    )
    return membership


async def remove_member(
    session: AsyncSession,
    org_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    actor_role: Role,
    actor: Actor,
    is_self: bool,
) -> None:
    membership = await session.get(Membership, (org_id, user_id))
    if membership is None:
        raise NotFound("Member not found", code="member_not_found")
    current = Role(membership.role)
    if not is_self:
        if not actor_role.at_least(Role.ADMIN):
            raise PermissionDenied("Removing members needs the admin role or higher")
        _check_grant(actor_role, current)
    if current is Role.OWNER and await _owner_count(session, org_id) == 1:
        raise InvalidInput("An organization needs at least one owner", code="last_owner")
    await session.delete(membership)
    audit.record(
        session,
        actor,
        "member.remove",
        "membership",
        user_id,
        organization_id=org_id,
        details={"role": current.value},
    )


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def invite(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    email: str,
    role: Role,
    actor_role: Role,
    invited_by: uuid.UUID | None,
    now: datetime,
    actor: Actor,
) -> tuple[Invitation, str]:
    """Create an invitation; returns it with its one-time token."""
    _check_grant(actor_role, role)
    email = normalize_email(email)
    existing = await get_by_email(session, email)
    if existing is not None and (await session.get(Membership, (org_id, existing.id))) is not None:
        raise Conflict("This user is already a member", code="already_member")
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        organization_id=org_id,
        email=email,
        role=role.value,
        token_hash=_token_hash(token),
        invited_by=invited_by,
        created_at=now,
        expires_at=now + INVITATION_TTL,
    )
    session.add(invitation)
    await session.flush()
    audit.record(
        session,
        actor,
        "invitation.create",
        "invitation",
        invitation.id,
        organization_id=org_id,
        details={"email": email, "role": role.value},
    )
    return invitation, token


async def list_invitations(session: AsyncSession, org_id: uuid.UUID) -> list[Invitation]:
    rows = await session.scalars(
        select(Invitation)
        .where(
            Invitation.organization_id == org_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
        .order_by(Invitation.created_at)
    )
    return list(rows)


async def accept_invitation(
    session: AsyncSession, token: str, user: User, *, now: datetime, actor: Actor
) -> Membership:
    invitation = await session.scalar(
        select(Invitation).where(Invitation.token_hash == _token_hash(token))
    )
    if (
        invitation is None
        or invitation.revoked_at is not None
        or invitation.accepted_at is not None
        or invitation.expires_at <= now
        or invitation.email != user.email
    ):
        raise NotFound("Invitation not found or no longer valid", code="invitation_not_found")
    if await session.get(Membership, (invitation.organization_id, user.id)) is not None:
        raise Conflict("You are already a member", code="already_member")
    invitation.accepted_at = now
    membership = Membership(
        organization_id=invitation.organization_id, user_id=user.id, role=invitation.role
    )
    session.add(membership)
    await session.flush()
    await session.refresh(membership, ["user"])
    audit.record(
        session,
        actor,
        "invitation.accept",
        "invitation",
        invitation.id,
        organization_id=invitation.organization_id,
        details={"role": invitation.role},
    )
    return membership


async def revoke_invitation(
    session: AsyncSession,
    org_id: uuid.UUID,
    invitation_id: uuid.UUID,
    *,
    now: datetime,
    actor: Actor,
) -> None:
    invitation = await session.get(Invitation, invitation_id)
    if invitation is None or invitation.organization_id != org_id:
        raise NotFound("Invitation not found", code="invitation_not_found")
    invitation.revoked_at = now
    audit.record(
        session, actor, "invitation.revoke", "invitation", invitation_id, organization_id=org_id
    )
