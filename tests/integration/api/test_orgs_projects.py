"""Organizations, projects and environments: CRUD through the HTTP API and the audit trail
every mutation leaves, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import func, select

from brokle_server.app import create_app
from brokle_server.auth import passwords
from brokle_server.catalog.db import Database
from brokle_server.catalog.models import (
    ApiKey,
    AuditLog,
    Environment,
    Invitation,
    Membership,
    Organization,
    Project,
)
from brokle_server.settings import Settings
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


CLIENT_IP = "203.0.113.7"  # the address running_app's transport reports


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def recent(value: str) -> bool:
    return datetime.now(UTC) - timedelta(minutes=5) <= _ts(value) <= datetime.now(UTC)


async def user_id(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    uid: str = data(await client.get("/api/v1/auth/me", headers=headers))["id"]
    return uid


async def test_create_organization_and_slugs(client: httpx.AsyncClient) -> None:
    owner = await login(client, "founder@orgs.example")
    org = await create_org(client, owner, "  Acme Corp  ")
    assert org == {
        "id": org["id"],
        "name": "Acme Corp",
        "slug": "acme-corp",
        "created_at": org["created_at"],
        "updated_at": org["updated_at"],
        "role": "owner",
    }
    assert uuid.UUID(org["id"]) and recent(org["created_at"]) and recent(org["updated_at"])
    assert data(await client.get(f"/api/v1/organizations/{org['id']}", headers=owner)) == org

    derived = {
        "Ünïcödé Labs": "unicode-labs",
        "R&D -- Team #2": "r-d-team-2",
        "x" * 100: "x" * 64,
    }
    for name, slug in derived.items():
        got = data(
            await client.post("/api/v1/organizations", json={"name": name}, headers=owner), 201
        )
        assert (got["name"], got["slug"]) == (name, slug)
    explicit = data(
        await client.post(
            "/api/v1/organizations", json={"name": "Whatever", "slug": "my-team-2"}, headers=owner
        ),
        201,
    )
    assert (explicit["name"], explicit["slug"]) == ("Whatever", "my-team-2")

    # Duplicates, whether derived or explicit, clash on the slug.
    for body, slug in (
        ({"name": "ACME corp!"}, "acme-corp"),
        ({"name": "Other", "slug": "acme-corp"}, "acme-corp"),
        ({"name": "My Team 2"}, "my-team-2"),
    ):
        assert error(await client.post("/api/v1/organizations", json=body, headers=owner), 409) == {
            "code": "slug_taken",
            "message": f"Organization slug '{slug}' is taken",
            "details": None,
        }
    # The bootstrap organization "Default" holds the "default" slug.
    assert (
        error(
            await client.post("/api/v1/organizations", json={"name": "Default"}, headers=owner), 409
        )["code"]
        == "slug_taken"
    )

    for slug in ("Bad Slug", "UPPER", "-lead", "trail-", "under_score", "dots.no", "x" * 65, ""):
        err = error(
            await client.post(
                "/api/v1/organizations", json={"name": "N", "slug": slug}, headers=owner
            ),
            400,
        )
        assert err["code"] == "validation_error", slug
        assert [d["field"] for d in err["details"]] == ["slug"], slug
    for name in ("!!!", "日本語"):
        assert error(
            await client.post("/api/v1/organizations", json={"name": name}, headers=owner), 400
        ) == {
            "code": "validation_error",
            "message": "Cannot derive a slug from this name; pass an explicit slug",
            "details": [{"field": "slug", "message": "required for this name"}],
        }
    assert (
        data(
            await client.post(
                "/api/v1/organizations", json={"name": "日本語", "slug": "nihongo"}, headers=owner
            ),
            201,
        )["name"]
        == "日本語"
    )
    for body in (
        {},
        {"name": ""},
        {"name": "   "},
        {"name": "n" * 201},
        {"name": "ok", "plan": "pro"},
    ):
        assert (
            error(await client.post("/api/v1/organizations", json=body, headers=owner), 400)["code"]
            == "validation_error"
        ), body
    orgs = data(await client.get("/api/v1/organizations", headers=owner))
    assert [o["slug"] for o in orgs] == [
        "acme-corp",
        "unicode-labs",
        "r-d-team-2",
        "x" * 64,
        "my-team-2",
        "nihongo",
    ]
    assert {o["role"] for o in orgs} == {"owner"}


async def test_list_organizations_paginates(client: httpx.AsyncClient) -> None:
    owner = await login(client, "pager@orgs.example")
    made = [await create_org(client, owner, f"Paged {i}") for i in range(5)]

    async def page(**params: Any) -> tuple[list[str], dict[str, Any]]:
        response = await client.get("/api/v1/organizations", params=params, headers=owner)
        return [o["id"] for o in data(response)], response.json()["meta"]

    ids = [o["id"] for o in made]
    assert await page() == (ids, {"page": 1, "limit": 50, "total": 5, "has_more": False})
    assert await page(limit=2) == (ids[:2], {"page": 1, "limit": 2, "total": 5, "has_more": True})
    assert await page(limit=2, page=2) == (
        ids[2:4],
        {"page": 2, "limit": 2, "total": 5, "has_more": True},
    )
    assert await page(limit=2, page=3) == (
        ids[4:],
        {"page": 3, "limit": 2, "total": 5, "has_more": False},
    )
    assert await page(limit=2, page=9) == (
        [],
        {"page": 9, "limit": 2, "total": 5, "has_more": False},
    )
    assert await page(limit=5) == (ids, {"page": 1, "limit": 5, "total": 5, "has_more": False})
    assert await page(limit=200) == (ids, {"page": 1, "limit": 200, "total": 5, "has_more": False})
    for params, field in (
        ({"limit": 0}, "limit"),
        ({"limit": 500}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"page": 0}, "page"),
        ({"page": "x"}, "page"),
    ):
        err = error(await client.get("/api/v1/organizations", params=params, headers=owner), 400)
        assert err["code"] == "validation_error" and err["details"][0]["field"] == field, params
    # The same meta on the other listings.
    org_id = ids[0]
    for i in range(3):
        await create_project(client, owner, org_id, f"P{i}")
    response = await client.get(
        f"/api/v1/organizations/{org_id}/projects", params={"limit": 2, "page": 2}, headers=owner
    )
    assert [p["name"] for p in data(response)] == ["P2"]
    assert response.json()["meta"] == {"page": 2, "limit": 2, "total": 3, "has_more": False}
    response = await client.get(
        f"/api/v1/organizations/{org_id}/members", params={"limit": 1}, headers=owner
    )
    assert [m["email"] for m in data(response)] == ["pager@orgs.example"]
    assert response.json()["meta"] == {"page": 1, "limit": 1, "total": 1, "has_more": False}
    err = error(
        await client.get(
            f"/api/v1/organizations/{org_id}/audit-log", params={"limit": 0}, headers=owner
        ),
        400,
    )
    assert err["code"] == "validation_error"


async def test_update_organization(client: httpx.AsyncClient) -> None:
    owner = await login(client, "editor@orgs.example")
    org = await create_org(client, owner, "Before")
    await create_org(client, owner, "Neighbour")
    url = f"/api/v1/organizations/{org['id']}"

    renamed = data(await client.patch(url, json={"name": " After "}, headers=owner))
    assert renamed == org | {"name": "After", "updated_at": renamed["updated_at"]}
    assert _ts(renamed["updated_at"]) >= _ts(org["updated_at"])
    moved = data(await client.patch(url, json={"slug": "after"}, headers=owner))
    assert (moved["name"], moved["slug"]) == ("After", "after")
    same = data(await client.patch(url, json={"slug": "after", "name": "After"}, headers=owner))
    assert (same["name"], same["slug"]) == ("After", "after")
    assert data(await client.patch(url, json={}, headers=owner))["slug"] == "after"
    assert error(await client.patch(url, json={"slug": "neighbour"}, headers=owner), 409) == {
        "code": "slug_taken",
        "message": "Organization slug 'neighbour' is taken",
        "details": None,
    }
    for body in (
        {"slug": "Not OK"},
        {"name": ""},
        {"name": None, "owner": "me"},
        {"slug": "x" * 65},
    ):
        assert error(await client.patch(url, json=body, headers=owner), 400)["code"] == (
            "validation_error"
        ), body
    got = data(await client.get(url, headers=owner))
    assert got == org | {"name": "After", "slug": "after", "updated_at": got["updated_at"]}


async def test_delete_organization_cascades(client: httpx.AsyncClient, database_url: str) -> None:
    owner = await login(client, "deleter@orgs.example")
    org = await create_org(client, owner, "Short Lived")
    keep = await create_org(client, owner, "Keeper")
    member = await add_member(client, owner, org["id"], "member@orgs.example", "developer")
    project = await create_project(client, owner, org["id"], "Doomed")
    data(
        await client.post(
            f"/api/v1/projects/{project['id']}/environments", json={"name": "prod"}, headers=owner
        ),
        201,
    )
    key = await create_key(client, owner, project["id"], environment="prod")
    admin_key = await create_key(client, owner, project["id"], scopes=["admin"])
    invitation = data(
        await client.post(
            f"/api/v1/organizations/{org['id']}/invitations",
            json={"email": "late@orgs.example"},
            headers=owner,
        ),
        201,
    )
    kept_project = await create_project(client, owner, keep["id"], "Survivor")
    kept_key = await create_key(client, owner, kept_project["id"])

    url = f"/api/v1/organizations/{org['id']}"
    assert data(await client.delete(url, headers=owner)) == {"id": org["id"], "deleted": True}

    for who in (owner, member):
        assert error(await client.get(url, headers=who), 404)["code"] == "organization_not_found"
        assert (
            error(await client.get(f"/api/v1/projects/{project['id']}", headers=who), 404)["code"]
            == "project_not_found"
        )
    assert error(await client.delete(url, headers=owner), 404)["code"] == "organization_not_found"
    assert [o["id"] for o in data(await client.get("/api/v1/organizations", headers=owner))] == [
        keep["id"]
    ]
    assert data(await client.get("/api/v1/organizations", headers=member)) == []
    # Its keys are gone with it.
    for k in (key, admin_key):
        assert error(
            await client.post("/v1/auth/validate-key", headers={"X-API-Key": k["key"]}), 401
        ) == {"code": "invalid_api_key", "message": "Unknown API key", "details": None}
    late = await login(client, "late@orgs.example")
    assert (
        error(
            await client.post(f"/api/v1/invitations/{invitation['token']}/accept", headers=late),
            404,
        )["code"]
        == "invitation_not_found"
    )
    # The other organization is untouched.
    assert data(await client.get(f"/api/v1/projects/{kept_project['id']}", headers=owner))[
        "name"
    ] == ("Survivor")
    valid = data(await client.post("/v1/auth/validate-key", headers={"X-API-Key": kept_key["key"]}))
    assert valid["project_id"] == kept_project["id"]
    # The catalog rows are gone on both databases; the audit trail keeps the deletion.
    db = Database(database_url)
    try:
        async with db.session() as session:
            rows = (
                await session.scalars(
                    select(AuditLog)
                    .where(AuditLog.organization_id == uuid.UUID(org["id"]))
                    .order_by(AuditLog.created_at.desc())
                )
            ).all()
            gone = {
                table.__tablename__: await session.scalar(
                    select(func.count()).select_from(table).where(where)
                )
                for table, where in (
                    (Organization, Organization.id == uuid.UUID(org["id"])),
                    (Membership, Membership.organization_id == uuid.UUID(org["id"])),
                    (Invitation, Invitation.organization_id == uuid.UUID(org["id"])),
                    (Project, Project.organization_id == uuid.UUID(org["id"])),
                    (Environment, Environment.project_id == uuid.UUID(project["id"])),
                    (ApiKey, ApiKey.project_id == uuid.UUID(project["id"])),
                )
            }
    finally:
        await db.dispose()
    assert gone == {
        "organizations": 0,
        "memberships": 0,
        "invitations": 0,
        "projects": 0,
        "environments": 0,
        "api_keys": 0,
    }
    assert (rows[0].action, rows[0].resource_id, rows[0].details) == (
        "organization.delete",
        org["id"],
        {"slug": "short-lived"},
    )
    assert rows[0].actor_id == await user_id(client, owner)
    assert rows[-1].action == "organization.create"


async def test_projects_and_environments(client: httpx.AsyncClient) -> None:
    owner = await login(client, "builder@orgs.example")
    org = await create_org(client, owner, "Builders")
    other_org = await create_org(client, owner, "Other Builders")
    projects_url = f"/api/v1/organizations/{org['id']}/projects"

    project = data(
        await client.post(
            projects_url,
            json={"name": "Chat Bot", "description": "Support assistant"},
            headers=owner,
        ),
        201,
    )
    assert project == {
        "id": project["id"],
        "organization_id": org["id"],
        "name": "Chat Bot",
        "slug": "chat-bot",
        "description": "Support assistant",
        "retention_days": 30,
        "created_at": project["created_at"],
        "updated_at": project["updated_at"],
    }
    url = f"/api/v1/projects/{project['id']}"
    assert data(await client.get(url, headers=owner)) == project | {"role": "owner"}
    envs = data(await client.get(f"{url}/environments", headers=owner))
    assert envs == [
        {
            "id": envs[0]["id"],
            "project_id": project["id"],
            "name": "default",
            "created_at": envs[0]["created_at"],
        }
    ]

    # Slugs are unique per organization only.
    assert error(
        await client.post(projects_url, json={"name": "chat bot"}, headers=owner), 409
    ) == {
        "code": "slug_taken",
        "message": "Project slug 'chat-bot' is taken in this organization",
        "details": None,
    }
    twin = await create_project(client, owner, other_org["id"], "Chat Bot")
    assert twin["slug"] == "chat-bot" and twin["id"] != project["id"]
    custom = data(
        await client.post(
            projects_url, json={"name": "Custom", "slug": "cst", "retention_days": 1}, headers=owner
        ),
        201,
    )
    assert (custom["slug"], custom["retention_days"], custom["description"]) == ("cst", 1, "")
    longest = data(
        await client.post(
            projects_url, json={"name": "Long", "retention_days": 3650}, headers=owner
        ),
        201,
    )
    assert longest["retention_days"] == 3650
    for body in (
        {"name": "R", "retention_days": 0},
        {"name": "R", "retention_days": 3651},
        {"name": "R", "retention_days": -5},
        {"name": "R", "retention_days": "forever"},
        {"name": "R", "slug": "Bad Slug"},
        {"name": "R", "description": "d" * 2001},
        {"name": ""},
        {"name": "R", "environments": ["x"]},
    ):
        assert error(await client.post(projects_url, json=body, headers=owner), 400)["code"] == (
            "validation_error"
        ), body

    updated = data(
        await client.patch(
            url, json={"name": "Chat Bot 2", "description": "", "retention_days": 90}, headers=owner
        )
    )
    assert updated == project | {
        "name": "Chat Bot 2",
        "description": "",
        "retention_days": 90,
        "updated_at": updated["updated_at"],
    }
    assert _ts(updated["updated_at"]) >= _ts(project["updated_at"])
    for body in ({"retention_days": 0}, {"retention_days": 3651}, {"slug": "nope"}, {"name": ""}):
        assert error(await client.patch(url, json=body, headers=owner), 400)["code"] == (
            "validation_error"
        ), body
    assert data(await client.get(url, headers=owner)) == updated | {"role": "owner"}

    # Environments: SDK-compatible names, unique per project.
    staging = data(
        await client.post(f"{url}/environments", json={"name": "staging"}, headers=owner), 201
    )
    assert staging == {
        "id": staging["id"],
        "project_id": project["id"],
        "name": "staging",
        "created_at": staging["created_at"],
    }
    for name in ("prod_eu-1", "0", "a" * 40):
        data(await client.post(f"{url}/environments", json={"name": name}, headers=owner), 201)
    bad_names = ("Prod", "brokle", "brokle-internal", "-dash", "_under", "a b", "é", "a" * 41, "")
    for name in bad_names:
        err = error(
            await client.post(f"{url}/environments", json={"name": name}, headers=owner), 400
        )
        assert err["code"] == "validation_error", name
        assert [d["field"] for d in err["details"]] == ["name"], name
    for name in ("staging", "default"):
        assert error(
            await client.post(f"{url}/environments", json={"name": name}, headers=owner), 409
        ) == {
            "code": "environment_exists",
            "message": f"Environment '{name}' already exists",
            "details": None,
        }
    names = [e["name"] for e in data(await client.get(f"{url}/environments", headers=owner))]
    assert names == sorted(["default", "staging", "prod_eu-1", "0", "a" * 40])
    # The same name is fine in another project.
    data(
        await client.post(
            f"/api/v1/projects/{twin['id']}/environments", json={"name": "staging"}, headers=owner
        ),
        201,
    )

    listed = await client.get(projects_url, headers=owner)
    assert [p["id"] for p in data(listed)] == [project["id"], custom["id"], longest["id"]]
    assert data(listed)[0] == updated
    assert listed.json()["meta"] == {"page": 1, "limit": 50, "total": 3, "has_more": False}

    # Deleting a project takes its environments and keys with it.
    key = await create_key(client, owner, project["id"], environment="staging")
    assert data(await client.delete(url, headers=owner)) == {"id": project["id"], "deleted": True}
    for path in ("", "/environments", "/api-keys"):
        assert (
            error(await client.get(url + path, headers=owner), 404)["code"] == "project_not_found"
        )
    assert error(await client.delete(url, headers=owner), 404)["code"] == "project_not_found"
    assert (
        error(await client.post("/v1/auth/validate-key", headers={"X-API-Key": key["key"]}), 401)[
            "code"
        ]
        == "invalid_api_key"
    )
    assert [p["id"] for p in data(await client.get(projects_url, headers=owner))] == [
        custom["id"],
        longest["id"],
    ]


async def test_every_mutation_is_audited(client: httpx.AsyncClient) -> None:
    owner = await login(client, "auditor@orgs.example")
    owner_id = await user_id(client, owner)
    mate = await login(client, "mate@orgs.example")
    mate_id = await user_id(client, mate)
    agent = "brokle-tests/1.0"
    request_ids: list[str] = []

    async def act(
        method: str, url: str, body: dict[str, Any] | None, status: int, as_: dict[str, str]
    ) -> Any:
        """One mutation with its own request id, which the reply echoes."""
        request_id = f"req-{len(request_ids)}-{uuid.uuid4().hex[:8]}"
        headers = as_ | {"X-Request-Id": request_id, "User-Agent": agent}
        response = await client.request(method, url, json=body, headers=headers)
        result = data(response, status)
        assert response.headers["x-request-id"] == request_id
        request_ids.append(request_id)
        return result

    org = await act("POST", "/api/v1/organizations", {"name": "Audited"}, 201, owner)
    org_url = f"/api/v1/organizations/{org['id']}"
    await act("PATCH", org_url, {"name": "Audited Inc"}, 200, owner)
    member_body = {"email": "mate@orgs.example", "role": "viewer"}
    await act("POST", f"{org_url}/members", member_body, 201, owner)
    await act("PATCH", f"{org_url}/members/{mate_id}", {"role": "admin"}, 200, owner)
    invite_body = {"email": "guest@orgs.example", "role": "viewer"}
    invitation = await act("POST", f"{org_url}/invitations", invite_body, 201, mate)
    await act("DELETE", f"{org_url}/invitations/{invitation['id']}", None, 200, owner)
    project = await act("POST", f"{org_url}/projects", {"name": "Tracked"}, 201, owner)
    pid = project["id"]
    project_url = f"/api/v1/projects/{pid}"
    await act("PATCH", project_url, {"retention_days": 7}, 200, owner)
    env = await act("POST", f"{project_url}/environments", {"name": "prod"}, 201, owner)
    key_body = {"name": "CI", "environment": "prod"}
    key = await act("POST", f"{project_url}/api-keys", key_body, 201, mate)
    await act("DELETE", f"{project_url}/api-keys/{key['id']}", None, 200, owner)
    doomed = await act("POST", f"{org_url}/projects", {"name": "Doomed"}, 201, owner)
    await act("DELETE", f"/api/v1/projects/{doomed['id']}", None, 200, owner)
    await act("DELETE", f"{org_url}/members/{mate_id}", None, 200, mate)

    # Refused and read-only requests leave no trace.
    error(await client.patch(org_url, json={"slug": "Bad Slug"}, headers=owner), 400)
    error(await client.get(org_url, headers=mate), 404)
    data(await client.get(f"{org_url}/members", headers=owner))

    # A request without an X-Request-Id gets one, and the audit row carries the same id.
    response = await client.post(f"{project_url}/environments", json={"name": "dev"}, headers=owner)
    dev = data(response, 201)
    generated = response.headers["x-request-id"]
    assert len(generated) == 32 and int(generated, 16) >= 0

    # (action, resource type, resource id, project id, actor, details), oldest first.
    expected = [
        ("organization.create", "organization", org["id"], None, owner_id,
         {"name": "Audited", "slug": "audited"}),
        ("organization.update", "organization", org["id"], None, owner_id,
         {"name": "Audited Inc"}),
        ("member.add", "membership", mate_id, None, owner_id, {"role": "viewer"}),
        ("member.role_change", "membership", mate_id, None, owner_id,
         {"from": "viewer", "to": "admin"}),
        ("invitation.create", "invitation", invitation["id"], None, mate_id, invite_body),
        ("invitation.revoke", "invitation", invitation["id"], None, owner_id, {}),
        ("project.create", "project", pid, pid, owner_id, {"name": "Tracked", "slug": "tracked"}),
        ("project.update", "project", pid, pid, owner_id, {"retention_days": 7}),
        ("environment.create", "environment", env["id"], pid, owner_id, {"name": "prod"}),
        ("api_key.create", "api_key", key["id"], pid, mate_id,
         {"name": "CI", "scopes": ["gateway", "ingest", "query"], "environment": "prod"}),
        ("api_key.revoke", "api_key", key["id"], pid, owner_id, {"name": "CI"}),
        ("project.create", "project", doomed["id"], doomed["id"], owner_id,
         {"name": "Doomed", "slug": "doomed"}),
        ("project.delete", "project", doomed["id"], doomed["id"], owner_id, {"slug": "doomed"}),
        ("member.remove", "membership", mate_id, None, mate_id, {"role": "admin"}),
    ]  # fmt: skip
    assert len(expected) == len(request_ids)

    response = await client.get(f"{org_url}/audit-log", headers=owner)
    rows = data(response)
    assert response.json()["meta"] == {
        "page": 1,
        "limit": 50,
        "total": len(expected) + 1,
        "has_more": False,
    }
    assert rows[0] == {
        "id": rows[0]["id"],
        "created_at": rows[0]["created_at"],
        "organization_id": org["id"],
        "project_id": pid,
        "actor_type": "user",
        "actor_id": owner_id,
        "action": "environment.create",
        "resource_type": "environment",
        "resource_id": dev["id"],
        "ip": CLIENT_IP,
        "user_agent": rows[0]["user_agent"],
        "request_id": generated,
        "details": {"name": "dev"},
    }
    assert rows[0]["user_agent"].startswith("python-httpx/")
    assert [{k: v for k, v in r.items() if k not in ("id", "created_at")} for r in rows[1:]] == [
        {
            "organization_id": org["id"],
            "project_id": project_id,
            "actor_type": "user",
            "actor_id": actor_id,
            "action": action,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "ip": CLIENT_IP,
            "user_agent": agent,
            "request_id": request_id,
            "details": details,
        }
        for (action, resource_type, resource_id, project_id, actor_id, details), request_id in (
            reversed(list(zip(expected, request_ids, strict=True)))
        )
    ]
    stamps = [_ts(r["created_at"]) for r in rows]
    assert stamps == sorted(stamps, reverse=True)
    assert all(recent(r["created_at"]) for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)


# --- bugs: input the databases disagree on, concurrent duplicates, stale key cache ----------


@asynccontextmanager
async def lenient_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Like ``running_app``, but an unhandled error comes back as the app's 500 reply
    instead of being raised into the test."""
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=60) as manager:
        transport = httpx.ASGITransport(
            manager.app, client=(CLIENT_IP, 50000), raise_app_exceptions=False
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://brokle.test") as client:
            yield client


async def test_nul_characters_in_names_are_refused(
    settings_factory: Callable[..., Settings],
) -> None:
    async with lenient_app(settings_factory()) as client:
        owner = await login(client, "nul@orgs.example")
        org = await create_org(client, owner, "Clean")
        project = await create_project(client, owner, org["id"])
        attempts = {
            "create org": ("POST", "/api/v1/organizations", {"name": "a\x00b", "slug": "nul"}),
            "rename org": ("PATCH", f"/api/v1/organizations/{org['id']}", {"name": "a\x00b"}),
            "create project": (
                "POST",
                f"/api/v1/organizations/{org['id']}/projects",
                {"name": "p", "description": "a\x00b"},
            ),
            "rename project": ("PATCH", f"/api/v1/projects/{project['id']}", {"name": "a\x00b"}),
            "create key": (
                "POST",
                f"/api/v1/projects/{project['id']}/api-keys",
                {"name": "a\x00b"},
            ),
        }
        observed = {}
        for label, (method, url, body) in attempts.items():
            response = await client.request(method, url, json=body, headers=owner)
            observed[label] = (
                response.status_code,
                response.json()["error"]["code"] if response.json()["error"] else None,
            )
    assert observed == {label: (400, "validation_error") for label in attempts}


class WriteLock:
    """Holds back writes to ``table`` (SQLite: the whole database) from outside the app, so
    concurrent requests all pass their read-side checks before any of them can insert."""

    def __init__(self, database_url: str, table: str) -> None:
        self.url = database_url
        self.table = table
        self.sqlite: sqlite3.Connection | None = None
        self.pg: Any = None

    async def __aenter__(self) -> WriteLock:
        if self.url.startswith("sqlite"):
            self.sqlite = sqlite3.connect(self.url.split(":///", 1)[1], isolation_level=None)
            self.sqlite.execute("BEGIN IMMEDIATE")
        else:
            import asyncpg

            self.pg = await asyncpg.connect(self.url.replace("postgresql+asyncpg", "postgresql"))
            await self.pg.execute("BEGIN")
            await self.pg.execute(f"LOCK TABLE {self.table} IN SHARE MODE")
        return self

    async def wait_for_blocked(self, count: int) -> None:
        if self.sqlite is not None:  # SQLite shows no lock queue; give the requests time
            await asyncio.sleep(0.5)
            return
        for _ in range(200):
            blocked = await self.pg.fetchval(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid IN "
                "(SELECT pid FROM pg_stat_activity WHERE datname = current_database())"
            )
            if blocked >= count:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"only {blocked} of {count} requests blocked on {self.table}")

    async def __aexit__(self, *exc: object) -> None:
        if self.sqlite is not None:
            self.sqlite.execute("ROLLBACK")
            self.sqlite.close()
        else:
            await self.pg.execute("ROLLBACK")
            await self.pg.close()


async def race(
    client: httpx.AsyncClient,
    database_url: str,
    table: str,
    requests: list[tuple[str, str, dict[str, Any] | None, dict[str, str]]],
) -> list[tuple[int, str | None]]:
    """Send ``requests`` at once while writes to ``table`` are held; their outcomes, sorted."""
    async with WriteLock(database_url, table) as lock:
        tasks = [
            asyncio.create_task(client.request(method, url, json=body, headers=headers))
            for method, url, body, headers in requests
        ]
        await lock.wait_for_blocked(len(tasks))
    responses = await asyncio.gather(*tasks)
    return sorted(
        (r.status_code, r.json()["error"]["code"] if r.json()["error"] else None) for r in responses
    )


async def test_concurrent_creates_that_catch_the_clash_answer_409(
    settings_factory: Callable[..., Settings], database_url: str
) -> None:
    """The control for the race below: where the service catches the unique violation, the
    same held-back concurrency yields one success and one clean 409."""
    async with lenient_app(settings_factory()) as client:
        owner = await login(client, "control@orgs.example")
        org = await create_org(client, owner, "Control")
        orgs = await race(
            client,
            database_url,
            "organizations",
            [("POST", "/api/v1/organizations", {"name": "Same Name"}, owner)] * 2,
        )
        projects = await race(
            client,
            database_url,
            "projects",
            [("POST", f"/api/v1/organizations/{org['id']}/projects", {"name": "Twin"}, owner)] * 2,
        )
        listed = data(await client.get("/api/v1/organizations", headers=owner))
        twins = data(await client.get(f"/api/v1/organizations/{org['id']}/projects", headers=owner))
    assert orgs == [(201, None), (409, "slug_taken")]
    assert projects == [(201, None), (409, "slug_taken")]
    assert [o["slug"] for o in listed] == ["control", "same-name"]
    assert [p["slug"] for p in twins] == ["twin"]


async def test_concurrent_duplicates_get_409_not_500(
    settings_factory: Callable[..., Settings], database_url: str
) -> None:
    async with lenient_app(settings_factory()) as client:
        owner = await login(client, "racer@orgs.example")
        joiner = await login(client, "joiner@orgs.example")
        org = await create_org(client, owner, "Racing")
        other = await create_org(client, owner, "Racing Two")
        project = await create_project(client, owner, org["id"])
        invitation = data(
            await client.post(
                f"/api/v1/organizations/{org['id']}/invitations",
                json={"email": "joiner@orgs.example"},
                headers=owner,
            ),
            201,
        )
        org_url = f"/api/v1/organizations/{org['id']}"
        observed = {
            "new slug for two orgs": await race(
                client,
                database_url,
                "organizations",
                [
                    ("PATCH", org_url, {"slug": "contested"}, owner),
                    ("PATCH", f"/api/v1/organizations/{other['id']}", {"slug": "contested"}, owner),
                ],
            ),
            "same environment twice": await race(
                client,
                database_url,
                "environments",
                [
                    (
                        "POST",
                        f"/api/v1/projects/{project['id']}/environments",
                        {"name": "twin"},
                        owner,
                    )
                ]
                * 2,
            ),
            "accept one invitation twice": await race(
                client,
                database_url,
                "memberships",
                [("POST", f"/api/v1/invitations/{invitation['token']}/accept", None, joiner)] * 2,
            ),
        }
        joiner_id = await user_id(client, joiner)
        data(await client.delete(f"{org_url}/members/{joiner_id}", headers=owner))
        observed["add one member twice"] = await race(
            client,
            database_url,
            "memberships",
            [("POST", f"{org_url}/members", {"email": "joiner@orgs.example"}, owner)] * 2,
        )
    assert observed == {
        # The loser of a race learns of the clash from the database: a generic 409 conflict.
        "new slug for two orgs": [(200, None), (409, "conflict")],
        "same environment twice": [(201, None), (409, "conflict")],
        "accept one invitation twice": [(200, None), (409, "conflict")],
        "add one member twice": [(201, None), (409, "conflict")],
    }


async def test_a_just_used_key_dies_with_its_organization(client: httpx.AsyncClient) -> None:
    owner = await login(client, "cache@orgs.example")
    org = await create_org(client, owner, "Cached")
    project = await create_project(client, owner, org["id"])
    key = await create_key(client, owner, project["id"])
    by_key = {"X-API-Key": key["key"]}
    assert data(await client.post("/v1/auth/validate-key", headers=by_key))["key_id"] == key["id"]
    data(await client.delete(f"/api/v1/organizations/{org['id']}", headers=owner))
    assert error(await client.post("/v1/auth/validate-key", headers=by_key), 401)["code"] == (
        "invalid_api_key"
    )
