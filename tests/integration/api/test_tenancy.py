"""Tenant isolation of the management API, on SQLite and PostgreSQL.

Two organizations with different owners. Whatever A's owner (or A's API key) does with B's
ids answers 404, never 403, and the reply carries nothing of B beyond the id in the URL.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from brokle_server.auth import passwords
from brokle_server.settings import Settings
from tests.conftest import STRONG_PASSWORD, running_app
from tests.integration.api.helpers import (
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


@dataclass
class Tenant:
    headers: dict[str, str]
    user: dict[str, Any]
    org: dict[str, Any]
    project: dict[str, Any]
    environment: dict[str, Any]
    key: dict[str, Any]
    admin_key: dict[str, Any]
    invitation: dict[str, Any]
    member: dict[str, Any]


async def make_tenant(client: httpx.AsyncClient, tag: str) -> Tenant:
    headers = await login(client, f"owner-{tag}@{tag}.example", name=f"Owner {tag.upper()}")
    user = data(await client.get("/api/v1/auth/me", headers=headers))
    org = await create_org(client, headers, f"Org {tag.upper()} Secret")
    project = await create_project(client, headers, org["id"], f"Project {tag.upper()} Secret")
    environment = data(
        await client.post(
            f"/api/v1/projects/{project['id']}/environments",
            json={"name": f"only-in-{tag}"},
            headers=headers,
        ),
        201,
    )
    key = await create_key(client, headers, project["id"], name=f"key {tag}")
    admin_key = await create_key(
        client, headers, project["id"], name=f"admin key {tag}", scopes=["admin"]
    )
    invitation = data(
        await client.post(
            f"/api/v1/organizations/{org['id']}/invitations",
            json={"email": f"pending-{tag}@{tag}.example", "role": "viewer"},
            headers=headers,
        ),
        201,
    )
    # The member only needs to exist: sign it up without logging in (one password hash).
    member_email = f"member-{tag}@{tag}.example"
    member = data(
        await client.post(
            "/api/v1/auth/signup",
            json={"email": member_email, "password": STRONG_PASSWORD, "name": "Member"},
        ),
        201,
    )
    data(
        await client.post(
            f"/api/v1/organizations/{org['id']}/members",
            json={"email": member_email, "role": "developer"},
            headers=headers,
        ),
        201,
    )
    return Tenant(headers, user, org, project, environment, key, admin_key, invitation, member)


def secrets_of(t: Tenant) -> set[str]:
    """Every identifying value of a tenant that must never show up in another's replies."""
    values = {
        t.user["id"],
        t.user["email"],
        t.org["id"],
        t.org["name"],
        t.org["slug"],
        t.project["id"],
        t.project["name"],
        t.project["slug"],
        t.environment["id"],
        t.environment["name"],
        t.invitation["id"],
        t.invitation["email"],
        t.invitation["token"],
        t.member["id"],
        t.member["email"],
    }
    for key in (t.key, t.admin_key):
        values |= {key["id"], key["key"], key["preview"], key["name"]}
    return values


def assert_hidden(
    response: httpx.Response, code: str, secrets: set[str], url_ids: set[str]
) -> None:
    """404 with ``code`` and an envelope that names nothing secret but the URL's own ids."""
    err = error(response, 404)
    assert err["code"] == code, response.text
    assert err["details"] is None
    leaked = {s for s in secrets - url_ids if s in response.text}
    assert not leaked, f"{response.request.method} {response.request.url} leaked {leaked}"


async def b_is_untouched(client: httpx.AsyncClient, a: Tenant, b: Tenant) -> None:
    h = b.headers
    org = data(await client.get(f"/api/v1/organizations/{b.org['id']}", headers=h))
    assert (org["name"], org["slug"]) == (b.org["name"], b.org["slug"])
    members = data(await client.get(f"/api/v1/organizations/{b.org['id']}/members", headers=h))
    assert [(m["user_id"], m["role"]) for m in members] == [
        (b.user["id"], "owner"),
        (b.member["id"], "developer"),
    ]
    invitations = data(
        await client.get(f"/api/v1/organizations/{b.org['id']}/invitations", headers=h)
    )
    assert [i["id"] for i in invitations] == [b.invitation["id"]]
    projects = data(await client.get(f"/api/v1/organizations/{b.org['id']}/projects", headers=h))
    assert [(p["id"], p["name"]) for p in projects] == [(b.project["id"], b.project["name"])]
    envs = data(await client.get(f"/api/v1/projects/{b.project['id']}/environments", headers=h))
    assert [e["name"] for e in envs] == ["default", b.environment["name"]]
    keys = data(await client.get(f"/api/v1/projects/{b.project['id']}/api-keys", headers=h))
    assert sorted((k["id"], k["revoked_at"]) for k in keys) == sorted(
        [(b.key["id"], None), (b.admin_key["id"], None)]
    )
    valid = data(await client.post("/v1/auth/validate-key", headers={"X-API-Key": b.key["key"]}))
    assert valid["project_id"] == b.project["id"]
    # Nothing A did shows up in B's audit log.
    audit = data(await client.get(f"/api/v1/organizations/{b.org['id']}/audit-log", headers=h))
    assert {row["actor_id"] for row in audit} == {b.user["id"]}
    assert a.user["id"] not in str(audit)


async def test_a_user_gets_404_for_every_id_of_another_org(client: httpx.AsyncClient) -> None:
    a = await make_tenant(client, "a")
    b = await make_tenant(client, "b")
    hidden = secrets_of(b)
    h = a.headers
    org_b, proj_b = b.org["id"], b.project["id"]
    org_url = f"/api/v1/organizations/{org_b}"
    proj_url = f"/api/v1/projects/{proj_b}"

    org_probes: list[tuple[str, str, dict[str, Any] | None, set[str]]] = [
        ("GET", org_url, None, {org_b}),
        ("PATCH", org_url, {"name": "Taken over"}, {org_b}),
        ("DELETE", org_url, None, {org_b}),
        ("GET", f"{org_url}/members", None, {org_b}),
        ("POST", f"{org_url}/members", {"email": a.member["email"], "role": "owner"}, {org_b}),
        (
            "PATCH",
            f"{org_url}/members/{b.member['id']}",
            {"role": "viewer"},
            {org_b, b.member["id"]},
        ),
        ("DELETE", f"{org_url}/members/{b.member['id']}", None, {org_b, b.member["id"]}),
        ("DELETE", f"{org_url}/members/{b.user['id']}", None, {org_b, b.user["id"]}),
        ("GET", f"{org_url}/invitations", None, {org_b}),
        ("POST", f"{org_url}/invitations", {"email": "spy@a.example", "role": "owner"}, {org_b}),
        (
            "DELETE",
            f"{org_url}/invitations/{b.invitation['id']}",
            None,
            {org_b, b.invitation["id"]},
        ),
        ("GET", f"{org_url}/audit-log", None, {org_b}),
        ("GET", f"{org_url}/projects", None, {org_b}),
        ("POST", f"{org_url}/projects", {"name": "Implant"}, {org_b}),
    ]
    for method, url, body, url_ids in org_probes:
        response = await client.request(method, url, json=body, headers=h)
        assert_hidden(response, "organization_not_found", hidden, url_ids)

    project_probes: list[tuple[str, str, dict[str, Any] | None, set[str]]] = [
        ("GET", proj_url, None, {proj_b}),
        ("PATCH", proj_url, {"name": "Taken over", "retention_days": 1}, {proj_b}),
        ("DELETE", proj_url, None, {proj_b}),
        ("GET", f"{proj_url}/environments", None, {proj_b}),
        ("POST", f"{proj_url}/environments", {"name": "implant"}, {proj_b}),
        ("GET", f"{proj_url}/api-keys", None, {proj_b}),
        ("POST", f"{proj_url}/api-keys", {"name": "implant", "scopes": ["admin"]}, {proj_b}),
        ("DELETE", f"{proj_url}/api-keys/{b.key['id']}", None, {proj_b, b.key["id"]}),
    ]
    for method, url, body, url_ids in project_probes:
        response = await client.request(method, url, json=body, headers=h)
        assert_hidden(response, "project_not_found", hidden, url_ids)

    # B's ids smuggled into A's own paths are not found either.
    a_org = f"/api/v1/organizations/{a.org['id']}"
    a_proj = f"/api/v1/projects/{a.project['id']}"
    mixed: list[tuple[str, str, dict[str, Any] | None, str, set[str]]] = [
        (
            "PATCH",
            f"{a_org}/members/{b.user['id']}",
            {"role": "viewer"},
            "member_not_found",
            {b.user["id"]},
        ),
        ("DELETE", f"{a_org}/members/{b.member['id']}", None, "member_not_found", {b.member["id"]}),
        (
            "DELETE",
            f"{a_org}/invitations/{b.invitation['id']}",
            None,
            "invitation_not_found",
            {b.invitation["id"]},
        ),
        ("DELETE", f"{a_proj}/api-keys/{b.key['id']}", None, "api_key_not_found", {b.key["id"]}),
        (
            "POST",
            f"{a_proj}/api-keys",
            {"name": "x", "environment": b.environment["name"]},
            "environment_not_found",
            {b.environment["name"]},
        ),
        (
            "POST",
            f"/api/v1/invitations/{b.invitation['token']}/accept",
            None,
            "invitation_not_found",
            {b.invitation["token"]},
        ),
    ]
    for method, url, body, code, url_ids in mixed:
        response = await client.request(method, url, json=body, headers=h)
        assert_hidden(response, code, hidden, url_ids)

    # A's own listings show only A.
    for url in (
        "/api/v1/organizations",
        "/api/v1/auth/me",
        f"{a_org}/members",
        f"{a_org}/projects",
        f"{a_org}/audit-log",
        f"{a_org}/invitations",
        f"{a_proj}/api-keys",
        f"{a_proj}/environments",
    ):
        response = await client.get(url, headers=h)
        data(response)
        assert not {s for s in hidden if s in response.text}, url
    orgs = data(await client.get("/api/v1/organizations", headers=h))
    assert [o["id"] for o in orgs] == [a.org["id"]]

    await b_is_untouched(client, a, b)


async def test_an_api_key_reaches_only_its_own_project(client: httpx.AsyncClient) -> None:
    a = await make_tenant(client, "a")
    b = await make_tenant(client, "b")
    hidden = secrets_of(b)
    proj_b = b.project["id"]
    proj_url = f"/api/v1/projects/{proj_b}"
    for headers in (
        {"X-API-Key": a.admin_key["key"]},
        {"Authorization": f"Bearer {a.admin_key['key']}"},
    ):
        # The admin-scoped key works on its own project...
        own = data(await client.get(f"/api/v1/projects/{a.project['id']}", headers=headers))
        assert (own["id"], own["role"]) == (a.project["id"], "admin")
        # ...and sees nothing of B's.
        probes: list[tuple[str, str, dict[str, Any] | None, set[str]]] = [
            ("GET", proj_url, None, {proj_b}),
            ("PATCH", proj_url, {"name": "Taken over"}, {proj_b}),
            ("GET", f"{proj_url}/environments", None, {proj_b}),
            ("POST", f"{proj_url}/environments", {"name": "implant"}, {proj_b}),
            ("GET", f"{proj_url}/api-keys", None, {proj_b}),
            ("POST", f"{proj_url}/api-keys", {"name": "implant"}, {proj_b}),
            ("DELETE", f"{proj_url}/api-keys/{b.key['id']}", None, {proj_b, b.key["id"]}),
        ]
        for method, url, body, url_ids in probes:
            response = await client.request(method, url, json=body, headers=headers)
            assert_hidden(response, "project_not_found", hidden, url_ids)

        # Organization and account endpoints are for users only, whoever owns the id.
        user_only: list[tuple[str, str, dict[str, Any] | None]] = [
            ("GET", "/api/v1/organizations", None),
            ("POST", "/api/v1/organizations", {"name": "Key Org"}),
            ("GET", f"/api/v1/organizations/{a.org['id']}", None),
            ("GET", f"/api/v1/organizations/{b.org['id']}", None),
            ("DELETE", f"/api/v1/organizations/{a.org['id']}", None),
            ("GET", f"/api/v1/organizations/{a.org['id']}/members", None),
            ("GET", f"/api/v1/organizations/{a.org['id']}/audit-log", None),
            ("GET", f"/api/v1/organizations/{a.org['id']}/projects", None),
            ("POST", f"/api/v1/organizations/{a.org['id']}/projects", {"name": "K"}),
            ("POST", f"/api/v1/organizations/{b.org['id']}/invitations", {"email": "k@a.example"}),
            ("POST", f"/api/v1/invitations/{b.invitation['token']}/accept", None),
            ("DELETE", f"/api/v1/projects/{a.project['id']}", None),
            ("DELETE", proj_url, None),
            ("GET", "/api/v1/auth/me", None),
        ]
        for method, url, body in user_only:
            response = await client.request(method, url, json=body, headers=headers)
            err = error(response, 401)
            assert err == {
                "code": "user_required",
                "message": "This endpoint needs a user session; API keys cannot call it",
                "details": None,
            }, url
            assert not {s for s in hidden if s in response.text}, url

    # A key without the admin scope cannot manage even its own project.
    plain = {"X-API-Key": a.key["key"]}
    for method, url in (
        ("GET", f"/api/v1/projects/{a.project['id']}"),
        ("GET", f"/api/v1/projects/{a.project['id']}/api-keys"),
        ("GET", proj_url),
    ):
        err = error(await client.request(method, url, headers=plain), 404)
        assert err["code"] == "project_not_found"

    await b_is_untouched(client, a, b)


ORG_PATHS = [
    ("GET", "/api/v1/organizations/{id}"),
    ("PATCH", "/api/v1/organizations/{id}"),
    ("DELETE", "/api/v1/organizations/{id}"),
    ("GET", "/api/v1/organizations/{id}/members"),
    ("POST", "/api/v1/organizations/{id}/members"),
    ("GET", "/api/v1/organizations/{id}/invitations"),
    ("POST", "/api/v1/organizations/{id}/invitations"),
    ("GET", "/api/v1/organizations/{id}/audit-log"),
    ("GET", "/api/v1/organizations/{id}/projects"),
    ("POST", "/api/v1/organizations/{id}/projects"),
]
PROJECT_PATHS = [
    ("GET", "/api/v1/projects/{id}"),
    ("PATCH", "/api/v1/projects/{id}"),
    ("DELETE", "/api/v1/projects/{id}"),
    ("GET", "/api/v1/projects/{id}/environments"),
    ("POST", "/api/v1/projects/{id}/environments"),
    ("GET", "/api/v1/projects/{id}/api-keys"),
    ("POST", "/api/v1/projects/{id}/api-keys"),
]
VALID_BODIES: dict[str, dict[str, Any]] = {
    "/api/v1/organizations/{id}": {"name": "X"},
    "/api/v1/organizations/{id}/members": {"email": "nobody@x.example", "role": "viewer"},
    "/api/v1/organizations/{id}/invitations": {"email": "nobody@x.example", "role": "viewer"},
    "/api/v1/organizations/{id}/projects": {"name": "X"},
    "/api/v1/projects/{id}": {"name": "X"},
    "/api/v1/projects/{id}/environments": {"name": "x"},
    "/api/v1/projects/{id}/api-keys": {"name": "X"},
}


async def test_unknown_and_malformed_ids(settings_factory: Callable[..., Settings]) -> None:
    # Many requests from one user: lift its rate limit out of the way.
    settings = settings_factory(rate_limit={"user_per_minute": 100_000, "user_burst": 10_000})
    async with running_app(settings) as client:
        await _probe_unknown_and_malformed_ids(client)


async def _probe_unknown_and_malformed_ids(client: httpx.AsyncClient) -> None:
    a = await make_tenant(client, "a")
    h = a.headers

    def body_for(method: str, template: str) -> dict[str, Any] | None:
        return VALID_BODIES[template] if method in ("POST", "PATCH") else None

    # Random UUIDs: not found, with the resource's own code.
    for paths, code in (
        (ORG_PATHS, "organization_not_found"),
        (PROJECT_PATHS, "project_not_found"),
    ):
        for method, template in paths:
            url = template.format(id=uuid.uuid4())
            err = error(
                await client.request(method, url, json=body_for(method, template), headers=h), 404
            )
            assert err["code"] == code, (method, url)
    random_id = uuid.uuid4()
    nested = [
        (
            "PATCH",
            f"/api/v1/organizations/{a.org['id']}/members/{random_id}",
            {"role": "viewer"},
            "member_not_found",
        ),
        (
            "DELETE",
            f"/api/v1/organizations/{a.org['id']}/members/{random_id}",
            None,
            "member_not_found",
        ),
        (
            "DELETE",
            f"/api/v1/organizations/{a.org['id']}/invitations/{random_id}",
            None,
            "invitation_not_found",
        ),
        (
            "DELETE",
            f"/api/v1/projects/{a.project['id']}/api-keys/{random_id}",
            None,
            "api_key_not_found",
        ),
        (
            "DELETE",
            f"/api/v1/projects/{random_id}/api-keys/{a.key['id']}",
            None,
            "project_not_found",
        ),
        (
            "DELETE",
            f"/api/v1/organizations/{random_id}/members/{a.user['id']}",
            None,
            "organization_not_found",
        ),
    ]
    for method, url, body, code in nested:
        assert error(await client.request(method, url, json=body, headers=h), 404)["code"] == code

    # Ids that are not UUIDs at all: a clear 4xx in the envelope, never a 500.
    bad_ids = ["not-a-uuid", "1", "0" * 33, "01a2-zz", "%00", "%E2%98%83", "a" * 300, "null"]
    observed: set[tuple[int, str]] = set()
    for bad in bad_ids:
        for method, template in ORG_PATHS + PROJECT_PATHS:
            url = template.replace("{id}", bad)
            response = await client.request(method, url, json=body_for(method, template), headers=h)
            assert 400 <= response.status_code < 500, (method, url, response.text)
            err = error(response, response.status_code)
            observed.add((response.status_code, err["code"]))
        for url in (
            f"/api/v1/organizations/{a.org['id']}/members/{bad}",
            f"/api/v1/organizations/{a.org['id']}/invitations/{bad}",
            f"/api/v1/projects/{a.project['id']}/api-keys/{bad}",
        ):
            response = await client.delete(url, headers=h)
            err = error(response, response.status_code)
            assert 400 <= response.status_code < 500, (url, response.text)
            observed.add((response.status_code, err["code"]))
    assert observed == {(400, "validation_error")}
    # An overlong or odd invitation token is simply not found.
    for token in ("x" * 5000, "%E2%98%83", "..."):
        err = error(await client.post(f"/api/v1/invitations/{token}/accept", headers=h), 404)
        assert err["code"] == "invitation_not_found"
