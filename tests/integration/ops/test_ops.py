"""Health checks, Prometheus metrics, request ids and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from brokle_server.errors import ConfigurationError
from brokle_server.settings import Settings
from tests.conftest import make_settings, running_app


async def test_health_live_ready_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["checks"]["catalog"]["status"] == "ok"
    health = (await client.get("/health")).json()
    assert health["status"] == "ok" and health["version"]

    await client.get("/api/v1/auth/me")  # a 401, counted by route template
    text = (await client.get("/metrics")).text
    assert (
        'brokle_http_requests_total{method="GET",route="/api/v1/auth/me",status="401"} 1.0' in text
    )
    assert "brokle_http_request_duration_seconds_bucket" in text


async def test_ready_checks_redis_and_refuses_to_start_without_it(
    tmp_path: Path, redis_url: str
) -> None:
    async with running_app(make_settings(tmp_path, redis_url=redis_url)) as client:
        checks = (await client.get("/health/ready")).json()["checks"]
        assert checks["redis"]["status"] == "ok"
    # A Redis URL nobody listens on: start-up stops with an error that names the cause.
    with pytest.raises(ConfigurationError, match=r"cannot open the ingest queue \(Redis\)"):
        async with running_app(make_settings(tmp_path, redis_url="redis://127.0.0.1:1/0")):
            pass


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    mine = await client.get("/health/live", headers={"X-Request-Id": "abc-123"})
    assert mine.headers["x-request-id"] == "abc-123"
    generated = await client.get("/health/live", headers={"X-Request-Id": "bad id\n"})
    assert len(generated.headers["x-request-id"]) == 32


async def test_unknown_paths_and_methods_use_the_envelope(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong_method = await client.put("/api/v1/auth/login", json={})
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"


async def test_openapi_documents_the_contract(
    settings_factory: Callable[..., Settings],
) -> None:
    async with running_app(settings_factory()) as client:
        spec = (await client.get("/openapi.json")).json()
        paths = set(spec["paths"])
        for path in (
            "/api/v1/auth/signup",
            "/api/v1/auth/login",
            "/api/v1/auth/logout",
            "/api/v1/auth/me",
            "/api/v1/organizations",
            "/api/v1/organizations/{org_id}",
            "/api/v1/organizations/{org_id}/members",
            "/api/v1/organizations/{org_id}/invitations",
            "/api/v1/organizations/{org_id}/projects",
            "/api/v1/projects/{project_id}",
            "/api/v1/projects/{project_id}/environments",
            "/api/v1/projects/{project_id}/api-keys",
            "/api/v1/projects/{project_id}/api-keys/{key_id}",
            "/v1/auth/validate-key",
            "/health",
            "/health/live",
            "/health/ready",
            "/metrics",
        ):
            assert path in paths, path
        assert (await client.get("/docs")).status_code == 200
