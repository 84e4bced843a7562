"""A running app with a project key, providers pointing at the fake upstream, and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from brokle_server.settings import Settings
from tests.conftest import make_settings, running_app
from tests.fakes.fixtures import fake_upstream, fake_upstream_server  # noqa: F401
from tests.fakes.upstreams import FakeUpstream

KEY = "bk_" + "Gw7" * 13 + "x"
ADMIN = {"email": "gw-admin@example.com", "password": "Gateway-Admin-42"}


@dataclass
class Gateway:
    client: httpx.AsyncClient  # ASGI client into the app
    admin: dict[str, str]  # Bearer headers of the admin user
    project_id: str
    key: str
    fake: FakeUpstream

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.client.request(
            method, f"/api/v1/projects/{self.project_id}{path}", json=body, headers=self.admin
        )
        assert response.status_code < 300, response.text
        self.client.app.state.services.gateway.configs.invalidate(self.project_id)  # type: ignore[attr-defined]
        return response.json()["data"]

    def http_client(self) -> httpx.AsyncClient:
        """An httpx client the SDKs can use, speaking ASGI straight into the app."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(self.client.app))  # type: ignore[attr-defined]


@pytest.fixture
def gateway_settings(tmp_path: Path) -> Callable[..., Settings]:
    def factory(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "init_admin_email": ADMIN["email"],
            "init_admin_password": ADMIN["password"],
            "init_project": "Gateway",
            "init_project_api_key": KEY,
            "gateway": {"backoff_initial_ms": 1, "backoff_max_ms": 20},
        }
        base.update(overrides)
        return make_settings(tmp_path, **base)

    return factory


@pytest.fixture
async def gateway(
    gateway_settings: Callable[..., Settings],
    fake_upstream: FakeUpstream,  # noqa: F811
) -> AsyncIterator[Gateway]:
    async with running_app(gateway_settings()) as client:
        token = (await client.post("/api/v1/auth/login", json=ADMIN)).json()["data"]["token"]
        client.cookies.clear()
        admin = {"Authorization": f"Bearer {token}"}
        validated = await client.post("/v1/auth/validate-key", headers={"X-API-Key": KEY})
        gw = Gateway(client, admin, validated.json()["data"]["project_id"], KEY, fake_upstream)
        for name, kind, base in (
            ("oai", "openai", fake_upstream.openai_base_url),
            ("backup", "openai", fake_upstream.openai_base_url),
            ("claude", "anthropic", fake_upstream.base_url),
            ("gem", "gemini", fake_upstream.base_url),
        ):
            await gw.api(
                "POST",
                "/providers",
                {"name": name, "provider": kind, "api_key": "sk-upstream", "base_url": base},
            )
        yield gw
