"""Project API keys through the HTTP API, on SQLite and PostgreSQL: creation, scopes,
environments, validation (the SDK handshake), revocation, expiry and admin-scoped keys."""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from brokle_server.app import create_app
from brokle_server.auth import passwords
from brokle_server.settings import Settings
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


KEY_RE = re.compile(r"^bk_[A-Za-z0-9]{40}$")
KEY_FIELDS = {
    "id",
    "project_id",
    "name",
    "preview",
    "scopes",
    "environment",
    "created_at",
    "expires_at",
    "revoked_at",
    "last_used_at",
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


async def setup_project(client: httpx.AsyncClient) -> tuple[dict[str, str], dict[str, Any], str]:
    """Owner headers, a fresh project and the owner's user id."""
    owner = await login(client, "keys-owner@keys.example")
    org = await create_org(client, owner, "Key Org")
    project = await create_project(client, owner, org["id"], "Key Project")
    user_id: str = data(await client.get("/api/v1/auth/me", headers=owner))["id"]
    return owner, project, user_id


async def validate(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/v1/auth/validate-key", headers=headers)


async def audit_rows(
    client: httpx.AsyncClient, headers: dict[str, str], org_id: str, prefix: str
) -> list[dict[str, Any]]:
    rows = data(await client.get(f"/api/v1/organizations/{org_id}/audit-log", headers=headers))
    return [r for r in rows if r["action"].startswith(prefix)]


async def test_create_shows_the_plaintext_once(client: httpx.AsyncClient) -> None:
    owner, project, user_id = await setup_project(client)
    url = f"/api/v1/projects/{project['id']}/api-keys"
    before = datetime.now(UTC)
    created = await create_key(client, owner, project["id"], name="  Backend  ")
    plaintext = created.pop("key")
    assert KEY_RE.match(plaintext)
    assert created == {
        "id": created["id"],
        "project_id": project["id"],
        "name": "Backend",
        "preview": f"{plaintext[:7]}...{plaintext[-4:]}",
        "scopes": ["gateway", "ingest", "query"],
        "environment": None,
        "created_at": created["created_at"],
        "expires_at": None,
        "revoked_at": None,
        "last_used_at": None,
    }
    assert before - timedelta(seconds=5) <= _ts(created["created_at"]) <= datetime.now(UTC)

    explicit = await create_key(client, owner, project["id"], scopes=["query", "admin", "query"])
    assert explicit["scopes"] == ["admin", "query"]
    every = await create_key(
        client, owner, project["id"], scopes=["ingest", "query", "gateway", "admin"]
    )
    assert every["scopes"] == ["admin", "gateway", "ingest", "query"]
    assert len({plaintext, explicit["key"], every["key"]}) == 3

    # Listings show previews only: never the plaintext, never its hash.
    response = await client.get(url, headers=owner)
    listed = data(response)
    assert [set(k) for k in listed] == [KEY_FIELDS] * 3
    assert [k["id"] for k in listed] == [every["id"], explicit["id"], created["id"]]
    assert listed[2] == created
    assert response.json()["meta"] == {"page": 1, "limit": 50, "total": 3, "has_more": False}
    for key in (plaintext, explicit["key"], every["key"]):
        assert key not in response.text
        assert hashlib.sha256(key.encode()).hexdigest() not in response.text
    page = await client.get(url, params={"limit": 2, "page": 2}, headers=owner)
    assert [k["id"] for k in data(page)] == [created["id"]]
    assert page.json()["meta"] == {"page": 2, "limit": 2, "total": 3, "has_more": False}

    # Each creation is audited with the creating user.
    rows = await audit_rows(client, owner, project["organization_id"], "api_key.")
    assert [
        (
            r["action"],
            r["resource_id"],
            r["actor_type"],
            r["actor_id"],
            r["project_id"],
            r["details"],
        )
        for r in rows
    ] == [
        (
            "api_key.create",
            every["id"],
            "user",
            user_id,
            project["id"],
            {
                "name": "test key",
                "scopes": ["admin", "gateway", "ingest", "query"],
                "environment": None,
            },
        ),
        (
            "api_key.create",
            explicit["id"],
            "user",
            user_id,
            project["id"],
            {"name": "test key", "scopes": ["admin", "query"], "environment": None},
        ),
        (
            "api_key.create",
            created["id"],
            "user",
            user_id,
            project["id"],
            {"name": "Backend", "scopes": ["gateway", "ingest", "query"], "environment": None},
        ),
    ]


async def test_create_rejects_bad_input(client: httpx.AsyncClient) -> None:
    owner, project, _ = await setup_project(client)
    url = f"/api/v1/projects/{project['id']}/api-keys"
    future = _iso(datetime.now(UTC) + timedelta(days=1))
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({"name": "k", "scopes": ["superuser"]}, 400, "validation_error", "scopes.0"),
        ({"name": "k", "scopes": ["ingest", "admin", "root"]}, 400, "validation_error", "scopes.2"),
        ({"name": "k", "scopes": "ingest"}, 400, "validation_error", "scopes"),
        ({"name": "k", "scopes": ["ingest"] * 5}, 400, "validation_error", "scopes"),
        ({"scopes": ["ingest"]}, 400, "validation_error", "name"),
        ({"name": "   "}, 400, "validation_error", "name"),
        ({"name": "k", "key": "bk_" + "a" * 40}, 400, "validation_error", "key"),
        (
            {"name": "k", "expires_at": "2020-01-01T00:00:00Z"},
            400,
            "validation_error",
            "expires_at",
        ),
        ({"name": "k", "expires_at": future[:-1]}, 400, "validation_error", "expires_at"),
        ({"name": "k", "expires_at": "tomorrow"}, 400, "validation_error", "expires_at"),
        ({"name": "k", "environment": "nope"}, 404, "environment_not_found", ""),
        ({"name": "k", "environment": "x" * 41}, 400, "validation_error", "environment"),
    ]
    for body, status, code, field in cases:
        err = error(await client.post(url, json=body, headers=owner), status)
        assert err["code"] == code, body
        if code == "validation_error":
            assert [d["field"] for d in err["details"]][:1] == [field], (body, err)
    assert error(
        await client.post(url, json={"name": "k", "environment": "nope"}, headers=owner), 404
    ) == {
        "code": "environment_not_found",
        "message": "Environment 'nope' not found in this project",
        "details": None,
    }
    # Nothing was created by the refused requests.
    assert data(await client.get(url, headers=owner)) == []


async def test_validate_key_by_header_or_bearer_and_environment_binding(
    client: httpx.AsyncClient,
) -> None:
    owner, project, _ = await setup_project(client)
    pid = project["id"]
    data(
        await client.post(
            f"/api/v1/projects/{pid}/environments", json={"name": "staging"}, headers=owner
        ),
        201,
    )
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    bound = await create_key(
        client,
        owner,
        pid,
        name="Staging",
        environment="staging",
        scopes=["ingest"],
        expires_at=_iso(expires),
    )
    assert (bound["environment"], bound["expires_at"]) == ("staging", _iso(expires))
    unbound = await create_key(client, owner, pid, name="Anywhere")

    expected = {
        "valid": True,
        "key_id": bound["id"],
        "name": "Staging",
        "organization_id": project["organization_id"],
        "project_id": pid,
        "project_name": "Key Project",
        "environment": "staging",
        "scopes": ["ingest"],
        "expires_at": expires.isoformat(),
    }
    for headers in (
        {"X-API-Key": bound["key"]},
        {"Authorization": f"Bearer {bound['key']}"},
        {"authorization": f"bearer   {bound['key']}  "},
        {"X-API-Key": f"  {bound['key']} "},
    ):
        response = await validate(client, headers)
        assert response.json() == {
            "success": True,
            "data": expected,
            "error": None,
            "meta": {},
        }, headers
    assert data(await validate(client, {"X-API-Key": unbound["key"]})) == {
        "valid": True,
        "key_id": unbound["id"],
        "name": "Anywhere",
        "organization_id": project["organization_id"],
        "project_id": pid,
        "project_name": "Key Project",
        "environment": None,
        "scopes": ["gateway", "ingest", "query"],
        "expires_at": None,
    }

    # last_used_at is recorded on use.
    listed = {
        k["id"]: k
        for k in data(await client.get(f"/api/v1/projects/{pid}/api-keys", headers=owner))
    }
    for key in (bound, unbound):
        used = listed[key["id"]]["last_used_at"]
        assert used is not None
        assert _ts(key["created_at"]) <= _ts(used) <= datetime.now(UTC)
        assert listed[key["id"]] == {k: v for k, v in key.items() if k != "key"} | {
            "last_used_at": used
        }

    # A user session is not an API key.
    assert error(await validate(client, owner), 401) == {
        "code": "api_key_required",
        "message": "Send the project API key as X-API-Key",
        "details": None,
    }


async def test_forged_and_malformed_keys_are_refused(client: httpx.AsyncClient) -> None:
    owner, project, _ = await setup_project(client)
    real = await create_key(client, owner, project["id"])
    alphabet = string.ascii_letters + string.digits
    forged = "bk_" + "".join(secrets.choice(alphabet) for _ in range(40))
    unknown = error(await validate(client, {"X-API-Key": forged}), 401)
    assert unknown == {"code": "invalid_api_key", "message": "Unknown API key", "details": None}
    assert error(await validate(client, {"Authorization": f"Bearer {forged}"}), 401) == unknown
    # One character off from a real key is just as unknown.
    flipped = real["key"][:-1] + ("A" if real["key"][-1] != "A" else "B")
    assert error(await validate(client, {"X-API-Key": flipped}), 401) == unknown

    malformed = {
        "code": "invalid_api_key",
        "message": "Malformed API key: expected 'bk_' followed by 40 letters or digits",
        "details": None,
    }
    for bad in (
        "bk_short",
        real["key"] + "x",
        real["key"][:-1],
        "bk_" + "-" * 40,
        "BK_" + real["key"][3:],
        "sk-" + real["key"][3:],
        "pk_" + "a" * 40,
        (real["key"][:20] + "é" + real["key"][21:]).encode(),
        (real["key"][:20] + "é" + real["key"][22:]).encode("latin-1"),
    ):
        assert error(await validate(client, {"X-API-Key": bad}), 401) == malformed, bad
    # A Bearer value without the key prefix is read as a session token.
    assert (
        error(await validate(client, {"Authorization": "Bearer sk-" + "a" * 40}), 401)["code"]
        == "invalid_token"
    )
    assert error(await validate(client, {}), 401)["code"] == "unauthenticated"
    # The real key still works after all that.
    assert data(await validate(client, {"X-API-Key": real["key"]}))["key_id"] == real["id"]


async def test_revoke(client: httpx.AsyncClient) -> None:
    owner, project, user_id = await setup_project(client)
    url = f"/api/v1/projects/{project['id']}/api-keys"
    key = await create_key(client, owner, project["id"], name="Doomed")
    keeper = await create_key(client, owner, project["id"], name="Keeper")
    assert data(await validate(client, {"X-API-Key": key["key"]}))["key_id"] == key["id"]

    revoked = data(await client.delete(f"{url}/{key['id']}", headers=owner))
    assert revoked["revoked_at"] is not None
    assert revoked == {k: v for k, v in key.items() if k != "key"} | {
        "revoked_at": revoked["revoked_at"],
        "last_used_at": revoked["last_used_at"],
    }
    # Revocation is immediate, even though the key was just verified (and cached).
    for headers in ({"X-API-Key": key["key"]}, {"Authorization": f"Bearer {key['key']}"}):
        assert error(await validate(client, headers), 401) == {
            "code": "api_key_revoked",
            "message": "This API key has been revoked",
            "details": None,
        }
    assert data(await validate(client, {"X-API-Key": keeper["key"]}))["key_id"] == keeper["id"]
    # Revoking again changes nothing and is not audited twice.
    again = data(await client.delete(f"{url}/{key['id']}", headers=owner))
    assert again["revoked_at"] == revoked["revoked_at"]
    listed = {k["id"]: k["revoked_at"] for k in data(await client.get(url, headers=owner))}
    assert listed == {key["id"]: revoked["revoked_at"], keeper["id"]: None}
    assert error(await client.delete(f"{url}/{project['id']}", headers=owner), 404)["code"] == (
        "api_key_not_found"
    )
    rows = await audit_rows(client, owner, project["organization_id"], "api_key.revoke")
    assert [(r["resource_id"], r["actor_type"], r["actor_id"], r["details"]) for r in rows] == [
        (key["id"], "user", user_id, {"name": "Doomed"})
    ]


@asynccontextmanager
async def clocked_app(
    settings: Settings, clock: Callable[[], datetime]
) -> AsyncIterator[httpx.AsyncClient]:
    """Like ``running_app``, with the app's clock injected."""
    app = create_app(settings, clock=clock)
    async with LifespanManager(app, startup_timeout=60) as manager:
        transport = httpx.ASGITransport(manager.app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://brokle.test") as client:
            yield client


async def test_expired_key_is_refused(settings_factory: Callable[..., Settings]) -> None:
    now = [datetime.now(UTC).replace(microsecond=0)]
    async with clocked_app(settings_factory(), lambda: now[0]) as client:
        owner, project, _ = await setup_project(client)
        expires = now[0] + timedelta(hours=1)
        key = await create_key(client, owner, project["id"], expires_at=_iso(expires))
        lasting = await create_key(client, owner, project["id"], name="lasting")
        valid = data(await validate(client, {"X-API-Key": key["key"]}))
        assert valid["expires_at"] == expires.isoformat()
        listed = data(await client.get(f"/api/v1/projects/{project['id']}/api-keys", headers=owner))
        assert {k["id"]: k["last_used_at"] for k in listed} == {
            key["id"]: _iso(now[0]),
            lasting["id"]: None,
        }

        now[0] = expires - timedelta(seconds=1)
        assert data(await validate(client, {"X-API-Key": key["key"]}))["key_id"] == key["id"]
        now[0] = expires
        expired = {
            "code": "api_key_expired",
            "message": "This API key has expired",
            "details": None,
        }
        assert error(await validate(client, {"X-API-Key": key["key"]}), 401) == expired
        now[0] = expires + timedelta(days=1)
        assert (
            error(await validate(client, {"Authorization": f"Bearer {key['key']}"}), 401) == expired
        )
        assert (
            data(await validate(client, {"X-API-Key": lasting["key"]}))["key_id"] == lasting["id"]
        )
        # Relative to the app's clock, an expiry in the past is refused at creation.
        err = error(
            await client.post(
                f"/api/v1/projects/{project['id']}/api-keys",
                json={"name": "late", "expires_at": _iso(expires + timedelta(hours=1))},
                headers=owner,
            ),
            400,
        )
        assert err == {
            "code": "validation_error",
            "message": "expires_at must be in the future",
            "details": [{"field": "expires_at", "message": "must be in the future"}],
        }


async def test_admin_scoped_key_manages_its_own_projects_keys(client: httpx.AsyncClient) -> None:
    owner, project, user_id = await setup_project(client)
    other = await create_project(client, owner, project["organization_id"], "Sibling")
    url = f"/api/v1/projects/{project['id']}/api-keys"
    admin = await create_key(client, owner, project["id"], name="Admin", scopes=["admin"])
    plain = await create_key(client, owner, project["id"], name="Plain")
    by_key = {"X-API-Key": admin["key"]}

    listed = data(await client.get(url, headers=by_key))
    assert [k["id"] for k in listed] == [plain["id"], admin["id"]]
    assert admin["key"] not in str(listed) and plain["key"] not in str(listed)
    made = await create_key(client, by_key, project["id"], name="Made by key", scopes=["ingest"])
    assert KEY_RE.match(made["key"])
    assert (made["project_id"], made["scopes"]) == (project["id"], ["ingest"])
    assert data(await validate(client, {"X-API-Key": made["key"]}))["scopes"] == ["ingest"]
    revoked = data(await client.delete(f"{url}/{plain['id']}", headers=by_key))
    assert revoked["id"] == plain["id"] and revoked["revoked_at"] is not None
    assert (
        error(await validate(client, {"X-API-Key": plain["key"]}), 401)["code"] == "api_key_revoked"
    )

    # The admin key is confined to its project; keys without the admin scope get nothing.
    sibling = f"/api/v1/projects/{other['id']}/api-keys"
    assert error(await client.get(sibling, headers=by_key), 404)["code"] == "project_not_found"
    assert (
        error(await client.post(sibling, json={"name": "x"}, headers=by_key), 404)["code"]
        == "project_not_found"
    )
    for key in (
        made,
        await create_key(
            client, owner, project["id"], name="Full", scopes=["ingest", "query", "gateway"]
        ),
    ):
        without_admin = {"X-API-Key": key["key"]}
        for response in (
            await client.get(url, headers=without_admin),
            await client.post(
                url, json={"name": "escalate", "scopes": ["admin"]}, headers=without_admin
            ),
            await client.delete(f"{url}/{admin['id']}", headers=without_admin),
        ):
            assert error(response, 404) == {
                "code": "project_not_found",
                "message": "Project not found",
                "details": None,
            }
    # Deleting the project needs a user.
    assert (
        error(await client.delete(f"/api/v1/projects/{project['id']}", headers=by_key), 401)["code"]
        == "user_required"
    )

    # The audit log names the key as the actor of what it did.
    rows = await audit_rows(client, owner, project["organization_id"], "api_key.")
    assert [(r["action"], r["resource_id"], r["actor_type"], r["actor_id"]) for r in rows] == [
        ("api_key.create", rows[0]["resource_id"], "user", user_id),
        ("api_key.revoke", plain["id"], "api_key", admin["id"]),
        ("api_key.create", made["id"], "api_key", admin["id"]),
        ("api_key.create", plain["id"], "user", user_id),
        ("api_key.create", admin["id"], "user", user_id),
    ]


async def _delete_project_then_validate(client: httpx.AsyncClient) -> httpx.Response:
    owner, project, _ = await setup_project(client)
    key = await create_key(client, owner, project["id"])
    assert data(await validate(client, {"X-API-Key": key["key"]}))["project_id"] == project["id"]
    assert data(await client.delete(f"/api/v1/projects/{project['id']}", headers=owner)) == {
        "id": project["id"],
        "deleted": True,
    }
    return await validate(client, {"X-API-Key": key["key"]})


async def test_keys_of_a_deleted_project_are_gone_without_the_key_cache(
    settings_factory: Callable[..., Settings],
) -> None:
    async with clocked_app(settings_factory(auth={"api_key_cache_seconds": 0}), _utcnow) as client:
        response = await _delete_project_then_validate(client)
    assert error(response, 401) == {
        "code": "invalid_api_key",
        "message": "Unknown API key",
        "details": None,
    }


async def test_keys_of_a_deleted_project_stop_working_at_once(client: httpx.AsyncClient) -> None:
    response = await _delete_project_then_validate(client)
    assert error(response, 401) == {
        "code": "invalid_api_key",
        "message": "Unknown API key",
        "details": None,
    }


async def test_an_empty_scope_list_never_grants_the_defaults(client: httpx.AsyncClient) -> None:
    owner, project, _ = await setup_project(client)
    response = await client.post(
        f"/api/v1/projects/{project['id']}/api-keys",
        json={"name": "nothing", "scopes": []},
        headers=owner,
    )
    # Either refused, or a key with exactly the (no) scopes asked for.
    if response.status_code == 400:
        assert error(response, 400)["code"] == "validation_error"
    else:
        assert data(response, 201)["scopes"] == []
