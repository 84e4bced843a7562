"""Organizations, members, invitations and the audit log under ``/api/v1``."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from brokle_server.auth import rbac
from brokle_server.auth.rbac import Permission
from brokle_server.catalog import audit, organizations
from brokle_server.catalog.schemas import (
    InvitationIn,
    MemberIn,
    MemberPatch,
    OrganizationIn,
    OrganizationPatch,
    audit_out,
    invitation_out,
    member_out,
    organization_out,
)
from brokle_server.core.envelope import ok
from brokle_server.core.params import PageDep
from brokle_server.deps import ActorDep, ServicesDep, SessionDep, UserDep

router = APIRouter(prefix="/api/v1", tags=["organizations"])


@router.get("/organizations", summary="Organizations you belong to")
async def list_organizations(
    principal: UserDep, session: SessionDep, page: PageDep
) -> dict[str, Any]:
    result, roles = await organizations.list_for_user(session, principal.user.id, page)
    return ok([organization_out(o, roles[o.id]) for o in result.items], **result.meta())


@router.post("/organizations", status_code=201, summary="Create an organization you own")
async def create_organization(
    body: OrganizationIn, principal: UserDep, session: SessionDep, actor: ActorDep
) -> dict[str, Any]:
    org = await organizations.create(
        session, name=body.name, slug=body.slug, owner=principal.user, actor=actor
    )
    return ok(organization_out(org, "owner"))


@router.get("/organizations/{org_id}")
async def get_organization(
    org_id: uuid.UUID, principal: UserDep, session: SessionDep
) -> dict[str, Any]:
    role = await rbac.authorize_org(session, org_id, principal.user.id, Permission.ORG_READ)
    return ok(organization_out(await organizations.get(session, org_id), role.value))


@router.patch("/organizations/{org_id}")
async def update_organization(
    org_id: uuid.UUID,
    body: OrganizationPatch,
    principal: UserDep,
    session: SessionDep,
    actor: ActorDep,
) -> dict[str, Any]:
    role = await rbac.authorize_org(session, org_id, principal.user.id, Permission.ORG_UPDATE)
    org = await organizations.get(session, org_id)
    org = await organizations.update(session, org, name=body.name, slug=body.slug, actor=actor)
    await session.flush()
    return ok(organization_out(org, role.value))


@router.delete("/organizations/{org_id}", summary="Delete an organization and all it holds")
async def delete_organization(
    org_id: uuid.UUID,
    principal: UserDep,
    session: SessionDep,
    services: ServicesDep,
    actor: ActorDep,
) -> dict[str, Any]:
    await rbac.authorize_org(session, org_id, principal.user.id, Permission.ORG_DELETE)
    await organizations.delete(session, await organizations.get(session, org_id), actor=actor)
    await session.commit()
    services.keys.forget(organization_id=org_id)
    return ok({"id": str(org_id), "deleted": True})


@router.get("/organizations/{org_id}/members")
async def list_members(
    org_id: uuid.UUID, principal: UserDep, session: SessionDep, page: PageDep
) -> dict[str, Any]:
    await rbac.authorize_org(session, org_id, principal.user.id, Permission.ORG_READ)
    result = await organizations.list_members(session, org_id, page)
    return ok([member_out(m) for m in result.items], **result.meta())


@router.post(
    "/organizations/{org_id}/members",
    status_code=201,
    summary="Add an existing user to the organization",
)
async def add_member(
    org_id: uuid.UUID, body: MemberIn, principal: UserDep, session: SessionDep, actor: ActorDep
) -> dict[str, Any]:
    role = await rbac.authorize_org(session, org_id, principal.user.id, Permission.MEMBERS_MANAGE)
    membership = await organizations.add_member(
        session, org_id, email=body.email, role=body.role, actor_role=role, actor=actor
    )
    return ok(member_out(membership))


@router.patch("/organizations/{org_id}/members/{user_id}", summary="Change a member's role")
async def change_member_role(
    org_id: uuid.UUID,
    user_id: uuid.UUID,
    body: MemberPatch,
    principal: UserDep,
    session: SessionDep,
    actor: ActorDep,
) -> dict[str, Any]:
    role = await rbac.authorize_org(session, org_id, principal.user.id, Permission.MEMBERS_MANAGE)
    membership = await organizations.change_role(
        session, org_id, user_id, role=body.role, actor_role=role, actor=actor
    )
    return ok(member_out(membership))


@router.delete(
    "/organizations/{org_id}/members/{user_id}", summary="Remove a member (or leave, for yourself)"
)
async def remove_member(
    org_id: uuid.UUID,
    user_id: uuid.UUID,
    principal: UserDep,
    session: SessionDep,
    actor: ActorDep,
) -> dict[str, Any]:
    role = await rbac.authorize_org(session, org_id, principal.user.id, Permission.ORG_READ)
    await organizations.remove_member(
        session,
        org_id,
        user_id,
        actor_role=role,
        actor=actor,
        is_self=user_id == principal.user.id,
    )
    return ok({"user_id": str(user_id), "removed": True})


@router.get("/organizations/{org_id}/invitations")
async def list_invitations(
    org_id: uuid.UUID, principal: UserDep, session: SessionDep
) -> dict[str, Any]:
    await rbac.authorize_org(session, org_id, principal.user.id, Permission.MEMBERS_MANAGE)
    rows = await organizations.list_invitations(session, org_id)
    return ok([invitation_out(i) for i in rows])


@router.post(
    "/organizations/{org_id}/invitations",
    status_code=201,
    summary="Invite someone by email; the token in the reply is shown once",
)
async def create_invitation(
    org_id: uuid.UUID,
    body: InvitationIn,
    principal: UserDep,
    session: SessionDep,
    services: ServicesDep,
    actor: ActorDep,
) -> dict[str, Any]:
    role = await rbac.authorize_org(session, org_id, principal.user.id, Permission.MEMBERS_MANAGE)
    invitation, token = await organizations.invite(
        session,
        org_id,
        email=body.email,
        role=body.role,
        actor_role=role,
        invited_by=principal.user.id,
        now=services.clock(),
        actor=actor,
    )
    return ok(invitation_out(invitation, token))


@router.delete("/organizations/{org_id}/invitations/{invitation_id}")
async def revoke_invitation(
    org_id: uuid.UUID,
    invitation_id: uuid.UUID,
    principal: UserDep,
    session: SessionDep,
    services: ServicesDep,
    actor: ActorDep,
) -> dict[str, Any]:
    await rbac.authorize_org(session, org_id, principal.user.id, Permission.MEMBERS_MANAGE)
    await organizations.revoke_invitation(
        session, org_id, invitation_id, now=services.clock(), actor=actor
    )
    return ok({"id": str(invitation_id), "revoked": True})


@router.post("/invitations/{token}/accept", summary="Accept an invitation sent to your email")
async def accept_invitation(
    token: str, principal: UserDep, session: SessionDep, services: ServicesDep, actor: ActorDep
) -> dict[str, Any]:
    membership = await organizations.accept_invitation(
        session, token[:200], principal.user, now=services.clock(), actor=actor
    )
    return ok({"organization_id": str(membership.organization_id), "role": membership.role})


@router.get("/organizations/{org_id}/audit-log", summary="Who changed what, newest first")
async def list_audit_log(
    org_id: uuid.UUID, principal: UserDep, session: SessionDep, page: PageDep
) -> dict[str, Any]:
    await rbac.authorize_org(session, org_id, principal.user.id, Permission.AUDIT_READ)
    result = await audit.list_for_organization(session, org_id, page)
    return ok([audit_out(r) for r in result.items], **result.meta())
