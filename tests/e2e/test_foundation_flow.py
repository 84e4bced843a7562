"""The foundation end to end against a real `brokle serve`: the curl walk-through of the
README, the Brokle SDK's handshake, and restarts keeping state."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import httpx
import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e


def test_signup_to_revoked_key_with_plain_http(server: Server) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        body = {"email": "lin@example.com", "password": "Quiet-Harbor-42", "name": "Lin"}
        assert http.post("/api/v1/auth/signup", json=body).status_code == 201
        login = http.post("/api/v1/auth/login", json={k: body[k] for k in ("email", "password")})
        token = login.json()["data"]["token"]
        http.cookies.clear()
        auth = {"Authorization": f"Bearer {token}"}
        org = http.post("/api/v1/organizations", json={"name": "Lin Labs"}, headers=auth)
        org_id = org.json()["data"]["id"]
        project = http.post(
            f"/api/v1/organizations/{org_id}/projects", json={"name": "Agent"}, headers=auth
        ).json()["data"]
        key = http.post(
            f"/api/v1/projects/{project['id']}/api-keys", json={"name": "prod"}, headers=auth
        ).json()["data"]
        assert key["key"].startswith("bk_")

        valid = http.post("/v1/auth/validate-key", headers={"X-API-Key": key["key"]})
        assert valid.status_code == 200
        assert valid.json()["data"]["project_id"] == project["id"]
        assert (
            http.delete(
                f"/api/v1/projects/{project['id']}/api-keys/{key['id']}", headers=auth
            ).status_code
            == 200
        )
        refused = http.post("/v1/auth/validate-key", headers={"X-API-Key": key["key"]})
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "api_key_revoked"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_can_validate_the_first_run_key(server: Server) -> None:
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-X",
            "POST",
            f"{server.base_url}/v1/auth/validate-key",
            "-H",
            f"X-API-Key: {server.first_run['api_key']}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    ).stdout
    assert '"success":true' in out and server.first_run["project_id"] in out


def test_brokle_sdk_handshake(server: Server) -> None:
    from brokle import Brokle

    good = Brokle(
        api_key=server.first_run["api_key"], base_url=server.base_url, metrics_enabled=False
    )
    try:
        assert good.auth_check() is True
    finally:
        good.shutdown()
    forged = Brokle(api_key="bk_" + "Z" * 40, base_url=server.base_url, metrics_enabled=False)
    try:
        assert forged.auth_check() is False
    finally:
        forged.shutdown()


def test_state_survives_a_restart(server_factory: Callable[..., Server]) -> None:
    first = server_factory()
    key = first.first_run["api_key"]
    first.stop()
    second = server_factory(first.data_dir)
    assert second.first_run == {}  # nothing new printed
    response = httpx.post(f"{second.base_url}/v1/auth/validate-key", headers={"X-API-Key": key})
    assert response.status_code == 200
