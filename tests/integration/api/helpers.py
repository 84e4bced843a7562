"""Small steps the API tests repeat: sign up and log in, create an org, project or key."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import STRONG_PASSWORD


def data(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is True
    return body["data"]


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["data"] is None
    err: dict[str, Any] = body["error"]
    assert err["code"] and err["message"]
    return err


async def login(
    client: httpx.AsyncClient, email: str, password: str = STRONG_PASSWORD, name: str = "Test User"
) -> dict[str, str]:
    """Sign up (if needed) and log in; returns Bearer headers. Cookies are cleared so one
    client can act as several users."""
    await client.post(
        "/api/v1/auth/signup", json={"email": email, "password": password, "name": name}
    )
    token = data(
        await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    )["token"]
    client.cookies.clear()
    return {"Authorization": f"Bearer {token}"}


async def create_org(client: httpx.AsyncClient, headers: dict[str, str], name: str) -> Any:
    return data(
        await client.post("/api/v1/organizations", json={"name": name}, headers=headers), 201
    )


async def create_project(
    client: httpx.AsyncClient, headers: dict[str, str], org_id: str, name: str = "Chatbot"
) -> Any:
    return data(
        await client.post(
            f"/api/v1/organizations/{org_id}/projects", json={"name": name}, headers=headers
        ),
        201,
    )


async def create_key(
    client: httpx.AsyncClient, headers: dict[str, str], project_id: str, **body: Any
) -> Any:
    body.setdefault("name", "test key")
    return data(
        await client.post(f"/api/v1/projects/{project_id}/api-keys", json=body, headers=headers),
        201,
    )


async def add_member(
    client: httpx.AsyncClient, owner: dict[str, str], org_id: str, email: str, role: str
) -> dict[str, str]:
    """Create a user with ``role`` in the org; returns that user's headers."""
    headers = await login(client, email)
    data(
        await client.post(
            f"/api/v1/organizations/{org_id}/members",
            json={"email": email, "role": role},
            headers=owner,
        ),
        201,
    )
    return headers
