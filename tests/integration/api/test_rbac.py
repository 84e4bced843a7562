"""Organization roles through the HTTP API, on SQLite and PostgreSQL.

One org with an owner, an admin, a developer and a viewer: every management action is tried
by every role and the observed outcomes are compared with the whole expected matrix. Then the
owner-role rules (only owners touch ownership, the last owner stays), leaving an org, and
invitations.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from brokle_server.auth import passwords
from tests.conftest import STRONG_PASSWORD
from tests.integration.api.helpers import (
    add_member,
    create_key,
    create_org,
    create_project,
    data,
    error,
    login,
)


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about access, not password storage (test_auth.py runs the real cost):
    argon2id at its lowest cost takes ~100 ms off every signup, login and app bootstrap."""
    cheap = Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(passwords, "_hasher", PasswordHash((cheap,)))


ROLES = ("owner", "admin", "developer", "viewer")
FORBIDDEN = "403 forbidden"


async def signup(client: httpx.AsyncClient, email: str, name: str = "Someone") -> dict[str, Any]:
    """Create an account without logging in (one password hash instead of two)."""
    user: dict[str, Any] = data(
        await client.post(
            "/api/v1/auth/signup", json={"email": email, "password": STRONG_PASSWORD, "name": name}
        ),
        201,
    )
    return user


async def me(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    user: dict[str, Any] = data(await client.get("/api/v1/auth/me", headers=headers))
    return user


def outcome(response: httpx.Response) -> int | str:
    """The status of a 2xx (envelope checked), or ``"<status> <code>"`` of an error."""
    body = response.json()
    if response.is_success:
        assert body["success"] is True and body["error"] is None, response.text
        assert body["data"] is not None
        return response.status_code
    assert body["success"] is False and body["data"] is None, response.text
    assert body["error"]["message"]
    return f"{response.status_code} {body['error']['code']}"


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# Which roles may do what; everyone else gets 403 forbidden.
ALLOWED: dict[str, tuple[tuple[str, ...], int]] = {
    "read_org": (ROLES, 200),
    "list_members": (ROLES, 200),
    "update_org": (("owner", "admin"), 200),
    "add_member": (("owner", "admin"), 201),
    "change_role": (("owner", "admin"), 200),
    "remove_member": (("owner", "admin"), 200),
    "invite": (("owner", "admin"), 201),
    "list_invitations": (("owner", "admin"), 200),
    "read_audit_log": (("owner", "admin"), 200),
    "list_projects": (ROLES, 200),
    "read_project": (ROLES, 200),
    "create_project": (("owner", "admin", "developer"), 201),
    "update_project": (("owner", "admin", "developer"), 200),
    "delete_project": (("owner", "admin"), 200),
    "list_environments": (ROLES, 200),
    "create_environment": (("owner", "admin", "developer"), 201),
    "list_api_keys": (ROLES, 200),
    "create_api_key": (("owner", "admin", "developer"), 201),
    "revoke_api_key": (("owner", "admin", "developer"), 200),
}


def expected_matrix() -> dict[str, dict[str, int | str]]:
    return {
        role: {
            action: status if role in allowed else FORBIDDEN
            for action, (allowed, status) in ALLOWED.items()
        }
        for role in ROLES
    }


async def test_role_matrix(client: httpx.AsyncClient) -> None:
    owner = await login(client, "owner@org.example", name="Olive Owner")
    org = await create_org(client, owner, "Matrix Org")
    org_id = org["id"]
    headers = {"owner": owner}
    for role in ROLES[1:]:
        headers[role] = await add_member(client, owner, org_id, f"{role}@org.example", role)
    shared = await create_project(client, owner, org_id, "Shared")
    doomed = {role: await create_project(client, owner, org_id, f"Doomed {role}") for role in ROLES}
    victim_keys = {
        role: await create_key(client, owner, shared["id"], name=f"victim {role}") for role in ROLES
    }
    targets = {role: await signup(client, f"target-{role}@org.example") for role in ROLES}

    observed: dict[str, dict[str, int | str]] = {}
    for role in ROLES:
        h = headers[role]
        target = targets[role]
        results: dict[str, int | str] = {}
        org_url = f"/api/v1/organizations/{org_id}"
        project_url = f"/api/v1/projects/{shared['id']}"
        member_url = f"{org_url}/members/{target['id']}"

        results["read_org"] = outcome(await client.get(org_url, headers=h))
        results["list_members"] = outcome(await client.get(f"{org_url}/members", headers=h))
        results["update_org"] = outcome(
            await client.patch(org_url, json={"name": f"Org by {role}"}, headers=h)
        )
        add = await client.post(
            f"{org_url}/members", json={"email": target["email"], "role": "viewer"}, headers=h
        )
        results["add_member"] = outcome(add)
        if add.status_code != 201:  # the owner adds the target so the next steps have one
            await add_member(client, owner, org_id, target["email"], "viewer")
        results["change_role"] = outcome(
            await client.patch(member_url, json={"role": "developer"}, headers=h)
        )
        results["remove_member"] = outcome(await client.delete(member_url, headers=h))
        results["invite"] = outcome(
            await client.post(
                f"{org_url}/invitations",
                json={"email": f"invited-by-{role}@org.example", "role": "viewer"},
                headers=h,
            )
        )
        results["list_invitations"] = outcome(await client.get(f"{org_url}/invitations", headers=h))
        results["read_audit_log"] = outcome(await client.get(f"{org_url}/audit-log", headers=h))
        results["list_projects"] = outcome(await client.get(f"{org_url}/projects", headers=h))
        results["read_project"] = outcome(await client.get(project_url, headers=h))
        results["create_project"] = outcome(
            await client.post(f"{org_url}/projects", json={"name": f"By {role}"}, headers=h)
        )
        results["update_project"] = outcome(
            await client.patch(project_url, json={"description": f"edited by {role}"}, headers=h)
        )
        results["delete_project"] = outcome(
            await client.delete(f"/api/v1/projects/{doomed[role]['id']}", headers=h)
        )
        results["list_environments"] = outcome(
            await client.get(f"{project_url}/environments", headers=h)
        )
        results["create_environment"] = outcome(
            await client.post(
                f"{project_url}/environments", json={"name": f"env-{role}"}, headers=h
            )
        )
        results["list_api_keys"] = outcome(await client.get(f"{project_url}/api-keys", headers=h))
        results["create_api_key"] = outcome(
            await client.post(f"{project_url}/api-keys", json={"name": f"by {role}"}, headers=h)
        )
        results["revoke_api_key"] = outcome(
            await client.delete(f"{project_url}/api-keys/{victim_keys[role]['id']}", headers=h)
        )
        observed[role] = results

    assert observed == expected_matrix()

    # A refusal says which permission and role were involved.
    refused = error(
        await client.post(
            f"/api/v1/projects/{shared['id']}/api-keys",
            json={"name": "x"},
            headers=headers["viewer"],
        ),
        403,
    )
    assert refused == {
        "code": "forbidden",
        "message": "Your role (viewer) cannot do this; it needs developer or higher",
        "details": {"permission": "keys:manage", "role": "viewer"},
    }
    no_delete = error(
        await client.delete(f"/api/v1/projects/{shared['id']}", headers=headers["developer"]), 403
    )
    assert no_delete["details"] == {"permission": "project:delete", "role": "developer"}

    # The state the allowed actions left behind, seen by the owner.
    org_now = data(await client.get(f"/api/v1/organizations/{org_id}", headers=owner))
    assert org_now["name"] == "Org by admin"
    members = data(await client.get(f"/api/v1/organizations/{org_id}/members", headers=owner))
    assert [(m["email"], m["role"]) for m in members] == [
        ("owner@org.example", "owner"),
        ("admin@org.example", "admin"),
        ("developer@org.example", "developer"),
        ("viewer@org.example", "viewer"),
        ("target-developer@org.example", "viewer"),
        ("target-viewer@org.example", "viewer"),
    ]
    invitations = data(
        await client.get(f"/api/v1/organizations/{org_id}/invitations", headers=owner)
    )
    assert sorted(i["email"] for i in invitations) == [
        "invited-by-admin@org.example",
        "invited-by-owner@org.example",
    ]
    projects = data(await client.get(f"/api/v1/organizations/{org_id}/projects", headers=owner))
    assert sorted(p["name"] for p in projects) == [
        "By admin",
        "By developer",
        "By owner",
        "Doomed developer",
        "Doomed viewer",
        "Shared",
    ]
    project_now = data(await client.get(f"/api/v1/projects/{shared['id']}", headers=owner))
    assert project_now["description"] == "edited by developer"
    envs = data(await client.get(f"/api/v1/projects/{shared['id']}/environments", headers=owner))
    assert [e["name"] for e in envs] == ["default", "env-admin", "env-developer", "env-owner"]
    keys = data(await client.get(f"/api/v1/projects/{shared['id']}/api-keys", headers=owner))
    assert {k["name"]: k["revoked_at"] is not None for k in keys} == {
        "victim owner": True,
        "victim admin": True,
        "victim developer": True,
        "victim viewer": False,
        "by owner": False,
        "by admin": False,
        "by developer": False,
    }
    # Each role sees its own role on the org and the project.
    for role in ROLES:
        got = data(await client.get(f"/api/v1/organizations/{org_id}", headers=headers[role]))
        assert got["role"] == role
        got = data(await client.get(f"/api/v1/projects/{shared['id']}", headers=headers[role]))
        assert got["role"] == role

    # Only the owner may delete the organization.
    org_url = f"/api/v1/organizations/{org_id}"
    deletes = {
        role: outcome(await client.delete(org_url, headers=headers[role])) for role in ROLES[::-1]
    }
    assert deletes == {
        "viewer": FORBIDDEN,
        "developer": FORBIDDEN,
        "admin": FORBIDDEN,
        "owner": 200,
    }
    for role in ROLES:
        assert error(await client.get(org_url, headers=headers[role]), 404)["code"] == (
            "organization_not_found"
        )


async def test_only_owners_touch_ownership_and_the_last_owner_stays(
    client: httpx.AsyncClient,
) -> None:
    owner = await login(client, "owner@org.example")
    org = await create_org(client, owner, "Owned Org")
    org_url = f"/api/v1/organizations/{org['id']}"
    admin = await add_member(client, owner, org["id"], "admin@org.example", "admin")
    developer = await add_member(client, owner, org["id"], "dev@org.example", "developer")
    owner_id = (await me(client, owner))["id"]
    admin_id = (await me(client, admin))["id"]
    dev_id = (await me(client, developer))["id"]
    newcomer = await signup(client, "newcomer@org.example")
    only_owner = "Only an owner can grant or change the owner role"

    # An admin can neither grant ownership nor touch an owner.
    attempts = {
        "add as owner": await client.post(
            f"{org_url}/members", json={"email": newcomer["email"], "role": "owner"}, headers=admin
        ),
        "invite as owner": await client.post(
            f"{org_url}/invitations",
            json={"email": "x@org.example", "role": "owner"},
            headers=admin,
        ),
        "promote to owner": await client.patch(
            f"{org_url}/members/{dev_id}", json={"role": "owner"}, headers=admin
        ),
        "promote self to owner": await client.patch(
            f"{org_url}/members/{admin_id}", json={"role": "owner"}, headers=admin
        ),
        "demote owner": await client.patch(
            f"{org_url}/members/{owner_id}", json={"role": "viewer"}, headers=admin
        ),
        "remove owner": await client.delete(f"{org_url}/members/{owner_id}", headers=admin),
    }
    for label, response in attempts.items():
        assert error(response, 403) == {
            "code": "forbidden",
            "message": only_owner,
            "details": None,
        }, label
    # A developer cannot manage members at all, not even its own role.
    assert error(
        await client.patch(
            f"{org_url}/members/{dev_id}", json={"role": "admin"}, headers=developer
        ),
        403,
    )["details"] == {"permission": "members:manage", "role": "developer"}
    # An admin may manage non-owner roles.
    assert (
        data(
            await client.patch(
                f"{org_url}/members/{dev_id}", json={"role": "viewer"}, headers=admin
            )
        )["role"]
        == "viewer"
    )

    # The last owner can be neither demoted nor removed, not even by itself.
    last = {
        "code": "last_owner",
        "message": "An organization needs at least one owner",
        "details": None,
    }
    assert (
        error(
            await client.patch(
                f"{org_url}/members/{owner_id}", json={"role": "admin"}, headers=owner
            ),
            400,
        )
        == last
    )
    assert error(await client.delete(f"{org_url}/members/{owner_id}", headers=owner), 400) == last

    # An owner grants ownership; then the two owners can demote each other.
    promoted = data(
        await client.patch(f"{org_url}/members/{admin_id}", json={"role": "owner"}, headers=owner)
    )
    assert promoted == {
        "user_id": admin_id,
        "email": "admin@org.example",
        "name": "Test User",
        "role": "owner",
        "joined_at": promoted["joined_at"],
    }
    assert (
        data(
            await client.patch(
                f"{org_url}/members/{owner_id}", json={"role": "developer"}, headers=admin
            )
        )["role"]
        == "developer"
    )
    # The original owner is now a developer and lost its powers.
    assert (
        error(
            await client.patch(
                f"{org_url}/members/{admin_id}", json={"role": "viewer"}, headers=owner
            ),
            403,
        )["code"]
        == "forbidden"
    )
    # The promoted admin is now the last owner.
    assert error(await client.delete(f"{org_url}/members/{admin_id}", headers=admin), 400) == last
    assert (
        error(
            await client.patch(
                f"{org_url}/members/{admin_id}", json={"role": "admin"}, headers=admin
            ),
            400,
        )
        == last
    )
    # An owner may add someone directly as owner.
    added = data(
        await client.post(
            f"{org_url}/members",
            json={"email": "NewComer@ORG.example", "role": "owner"},
            headers=admin,
        ),
        201,
    )
    assert (added["user_id"], added["email"], added["role"]) == (
        newcomer["id"],
        "newcomer@org.example",
        "owner",
    )
    # Unknown users and members, and duplicates, are refused with their own codes.
    assert (
        error(
            await client.post(
                f"{org_url}/members",
                json={"email": "ghost@org.example", "role": "viewer"},
                headers=admin,
            ),
            404,
        )["code"]
        == "user_not_found"
    )
    assert (
        error(
            await client.post(
                f"{org_url}/members",
                json={"email": "dev@org.example", "role": "viewer"},
                headers=admin,
            ),
            409,
        )["code"]
        == "already_member"
    )
    assert (
        error(
            await client.patch(
                f"{org_url}/members/{newcomer['id'][:-4]}beef",
                json={"role": "viewer"},
                headers=admin,
            ),
            404,
        )["code"]
        == "member_not_found"
    )
    assert (
        error(
            await client.patch(f"{org_url}/members/{dev_id}", json={"role": "root"}, headers=admin),
            400,
        )["code"]
        == "validation_error"
    )

    members = data(await client.get(f"{org_url}/members", headers=admin))
    assert [(m["email"], m["role"]) for m in members] == [
        ("owner@org.example", "developer"),
        ("admin@org.example", "owner"),
        ("dev@org.example", "viewer"),
        ("newcomer@org.example", "owner"),
    ]
    actions = [
        (row["action"], row["details"])
        for row in data(await client.get(f"{org_url}/audit-log", headers=admin))
        if row["action"].startswith("member.")
    ]
    assert actions == [
        ("member.add", {"role": "owner"}),
        ("member.role_change", {"from": "owner", "to": "developer"}),
        ("member.role_change", {"from": "admin", "to": "owner"}),
        ("member.role_change", {"from": "developer", "to": "viewer"}),
        ("member.add", {"role": "developer"}),
        ("member.add", {"role": "admin"}),
    ]


async def test_members_can_leave_but_not_remove_others(client: httpx.AsyncClient) -> None:
    owner = await login(client, "owner@org.example")
    org = await create_org(client, owner, "Leaving Org")
    org_url = f"/api/v1/organizations/{org['id']}"
    developer = await add_member(client, owner, org["id"], "dev@org.example", "developer")
    viewer = await add_member(client, owner, org["id"], "viewer@org.example", "viewer")
    owner_id = (await me(client, owner))["id"]
    dev_id = (await me(client, developer))["id"]
    viewer_id = (await me(client, viewer))["id"]

    # Removing someone else needs admin or higher.
    for actor, victim in ((developer, viewer_id), (viewer, dev_id), (viewer, owner_id)):
        assert error(await client.delete(f"{org_url}/members/{victim}", headers=actor), 403) == {
            "code": "forbidden",
            "message": "Removing members needs the admin role or higher",
            "details": None,
        }
    # Anyone may leave.
    assert data(await client.delete(f"{org_url}/members/{viewer_id}", headers=viewer)) == {
        "user_id": viewer_id,
        "removed": True,
    }
    assert error(await client.get(org_url, headers=viewer), 404)["code"] == "organization_not_found"
    assert data(await client.get("/api/v1/organizations", headers=viewer)) == []
    assert (
        error(await client.delete(f"{org_url}/members/{viewer_id}", headers=viewer), 404)["code"]
        == "organization_not_found"
    )

    # An owner can leave once someone else owns the org.
    data(await client.patch(f"{org_url}/members/{dev_id}", json={"role": "owner"}, headers=owner))
    assert data(await client.delete(f"{org_url}/members/{owner_id}", headers=owner))["removed"]
    assert error(await client.get(org_url, headers=owner), 404)["code"] == "organization_not_found"
    members = data(await client.get(f"{org_url}/members", headers=developer))
    assert [(m["user_id"], m["role"]) for m in members] == [(dev_id, "owner")]
    audit = data(await client.get(f"{org_url}/audit-log", headers=developer))
    removals = [(r["action"], r["resource_id"], r["actor_id"]) for r in audit][:3]
    assert removals == [
        ("member.remove", owner_id, owner_id),
        ("member.role_change", dev_id, owner_id),
        ("member.remove", viewer_id, viewer_id),
    ]


async def test_invitations(client: httpx.AsyncClient) -> None:
    owner = await login(client, "owner@org.example")
    org = await create_org(client, owner, "Inviting Org")
    org_url = f"/api/v1/organizations/{org['id']}"
    invitee = await login(client, "invitee@org.example", name="Ivy")
    other = await login(client, "other@org.example")

    response = await client.post(
        f"{org_url}/invitations",
        json={"email": "Invitee@Org.Example", "role": "admin"},
        headers=owner,
    )
    invitation = data(response, 201)
    token = invitation.pop("token")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    assert invitation == {
        "id": invitation["id"],
        "organization_id": org["id"],
        "email": "invitee@org.example",
        "role": "admin",
        "created_at": invitation["created_at"],
        "expires_at": invitation["expires_at"],
    }
    assert _ts(invitation["expires_at"]) - _ts(invitation["created_at"]) == timedelta(days=7)
    # The token is shown once: listings never carry it.
    listed = await client.get(f"{org_url}/invitations", headers=owner)
    assert data(listed) == [invitation]
    assert token not in listed.text

    # Someone else cannot use the token; the invitee can, once.
    not_yours = error(await client.post(f"/api/v1/invitations/{token}/accept", headers=other), 404)
    assert not_yours["code"] == "invitation_not_found"
    accepted = data(await client.post(f"/api/v1/invitations/{token}/accept", headers=invitee))
    assert accepted == {"organization_id": org["id"], "role": "admin"}
    got = data(await client.get(org_url, headers=invitee))
    assert (got["id"], got["role"]) == (org["id"], "admin")
    assert (
        error(await client.post(f"/api/v1/invitations/{token}/accept", headers=invitee), 404)[
            "code"
        ]
        == "invitation_not_found"
    )
    assert data(await client.get(f"{org_url}/invitations", headers=owner)) == []
    # An existing member cannot be invited again.
    assert (
        error(
            await client.post(
                f"{org_url}/invitations", json={"email": "invitee@org.example"}, headers=owner
            ),
            409,
        )["code"]
        == "already_member"
    )

    # A revoked invitation is dead.
    second = data(
        await client.post(
            f"{org_url}/invitations", json={"email": "other@org.example"}, headers=owner
        ),
        201,
    )
    assert second["role"] == "developer"
    revoked = data(await client.delete(f"{org_url}/invitations/{second['id']}", headers=invitee))
    assert revoked == {"id": second["id"], "revoked": True}
    assert (
        error(
            await client.post(f"/api/v1/invitations/{second['token']}/accept", headers=other), 404
        )["code"]
        == "invitation_not_found"
    )
    assert error(await client.get(org_url, headers=other), 404)["code"] == "organization_not_found"
    # Unknown tokens and API keys are refused.
    assert (
        error(await client.post("/api/v1/invitations/no-such-token/accept", headers=other), 404)[
            "code"
        ]
        == "invitation_not_found"
    )
    project = await create_project(client, owner, org["id"])
    key = await create_key(client, owner, project["id"], scopes=["admin"])
    assert (
        error(
            await client.post(
                f"/api/v1/invitations/{token}/accept", headers={"X-API-Key": key["key"]}
            ),
            401,
        )["code"]
        == "user_required"
    )

    owner_id = (await me(client, owner))["id"]
    invitee_id = (await me(client, invitee))["id"]
    audit = data(await client.get(f"{org_url}/audit-log", headers=owner))
    rows = [
        (r["action"], r["resource_id"], r["actor_id"], r["details"])
        for r in audit
        if r["action"].startswith("invitation.")
    ]
    assert rows == [
        ("invitation.revoke", second["id"], invitee_id, {}),
        (
            "invitation.create",
            second["id"],
            owner_id,
            {"email": "other@org.example", "role": "developer"},
        ),
        ("invitation.accept", invitation["id"], invitee_id, {"role": "admin"}),
        (
            "invitation.create",
            invitation["id"],
            owner_id,
            {"email": "invitee@org.example", "role": "admin"},
        ),
    ]
