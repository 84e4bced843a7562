"""First-run bootstrap: generated defaults once, BROKLE_INIT_* idempotently."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from brokle_server.settings import Settings
from tests.conftest import running_app
from tests.integration.api.helpers import data, error

INIT_KEY = "bk_" + "A1b2C3d4E5" * 4


async def test_first_start_creates_defaults_and_prints_them_once(
    settings_factory: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_factory()
    async with running_app(settings) as client:
        assert (await client.get("/health/live")).status_code == 200
    printed = capsys.readouterr().out
    assert "Brokle first run" in printed and "admin@example.com" in printed
    key = next(w for w in printed.split() if w.startswith("bk_"))
    password = printed.split("Admin password:")[1].split()[0]

    async with running_app(settings) as client:
        assert "Brokle first run" not in capsys.readouterr().out
        found = data(await client.post("/v1/auth/validate-key", headers={"X-API-Key": key}))
        assert found["project_name"] == "Default"
        assert found["scopes"] == ["gateway", "ingest", "query"]
        login = await client.post(
            "/api/v1/auth/login", json={"email": "admin@example.com", "password": password}
        )
        me = data(await client.get("/api/v1/auth/me"))
        assert login.status_code == 200
        assert [(o["slug"], o["role"]) for o in me["organizations"]] == [("default", "owner")]


async def test_init_settings_are_idempotent(
    settings_factory: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_factory(
        init_admin_email="ops@acme.io",
        init_admin_password="Sup3r-secret-pass",
        init_org="Acme Corp",
        init_project="Support Bot",
        init_project_api_key=INIT_KEY,
    )
    for _ in range(2):
        async with running_app(settings) as client:
            found = data(
                await client.post("/v1/auth/validate-key", headers={"X-API-Key": INIT_KEY})
            )
            assert found["project_name"] == "Support Bot"
            data(
                await client.post(
                    "/api/v1/auth/login",
                    json={"email": "ops@acme.io", "password": "Sup3r-secret-pass"},
                )
            )
            me = data(await client.get("/api/v1/auth/me"))
            assert [o["slug"] for o in me["organizations"]] == ["acme-corp"]
            projects = data(
                await client.get(f"/api/v1/organizations/{me['organizations'][0]['id']}/projects")
            )
            assert [p["slug"] for p in projects] == ["support-bot"]
            keys = data(await client.get(f"/api/v1/projects/{projects[0]['id']}/api-keys"))
            assert [k["name"] for k in keys] == ["bootstrap"]
    # No generated secrets are printed when the operator supplied them.
    assert "Admin password" not in capsys.readouterr().out


async def test_init_refuses_a_malformed_key(settings_factory: Callable[..., Settings]) -> None:
    from brokle_server.errors import ConfigurationError

    settings = settings_factory(
        init_admin_email="ops@acme.io",
        init_admin_password="Sup3r-secret-pass",
        init_project_api_key="sk-not-a-brokle-key",
    )
    with pytest.raises(ConfigurationError, match="BROKLE_INIT_PROJECT_API_KEY"):
        async with running_app(settings):
            pass


async def test_default_admin_cannot_log_in_with_a_guess(
    settings_factory: Callable[..., Settings],
) -> None:
    async with running_app(settings_factory()) as client:
        error(
            await client.post(
                "/api/v1/auth/login", json={"email": "admin@example.com", "password": "admin"}
            ),
            401,
        )
