"""The gateway configuration API: write-only provider secrets, routes and routing files,
budgets, rate limits and price overrides."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from brokle_server.catalog.gateway_models import ProviderCredential
from tests.integration.api.helpers import add_member, create_org, create_project, data, error, login

ROUTING_YAML = b"""
routes:
  - model: smart
    strategy: fallback
    targets:
      - {provider: oai, model: gpt-4o}
      - {provider: claude, model: claude-sonnet-4}
    retries: 3
  - model: cheap
    strategy: weighted
    targets:
      - {provider: oai, model: gpt-4o-mini, weight: 3}
      - {provider: claude, model: claude-haiku-4, weight: 1}
"""


async def _setup(client: httpx.AsyncClient) -> tuple[dict[str, str], str, str]:
    owner = await login(client, "gw-owner@example.com")
    org = await create_org(client, owner, "Gateway Org")
    project = await create_project(client, owner, org["id"], "Router")
    return owner, org["id"], project["id"]


async def test_provider_secrets_are_write_only_and_encrypted(client: httpx.AsyncClient) -> None:
    owner, _, pid = await _setup(client)
    base = f"/api/v1/projects/{pid}/providers"
    created = data(
        await client.post(
            base,
            json={"name": "oai", "provider": "openai", "api_key": "sk-test-1234567890abcdef"},
            headers=owner,
        ),
        201,
    )
    assert created["api_key_preview"] == "sk-...cdef"
    assert "sk-test-1234567890abcdef" not in str(created)
    listed = data(await client.get(base, headers=owner))
    assert [(p["name"], p["provider"], p["shared"]) for p in listed] == [("oai", "openai", False)]
    assert "1234567890" not in (await client.get(base, headers=owner)).text

    services = client.app.state.services  # type: ignore[attr-defined]
    async with services.db.session() as session:
        row = await session.scalar(select(ProviderCredential))
        assert row is not None and "1234567890" not in row.secret_encrypted
        assert services.secrets.open(row.secret_encrypted) == "sk-test-1234567890abcdef"

    dup = {"name": "oai", "provider": "openai", "api_key": "x"}
    assert error(await client.post(base, json=dup, headers=owner), 409)["code"] == "provider_exists"
    bad = {"name": "x", "provider": "nope", "api_key": "x"}
    assert (
        "unknown provider"
        in error(await client.post(base, json=bad, headers=owner), 400)["message"]
    )
    bad_name = {"name": "Has Space", "provider": "openai"}
    error(await client.post(base, json=bad_name, headers=owner), 400)


async def test_routes_and_routing_files(client: httpx.AsyncClient) -> None:
    owner, _, pid = await _setup(client)
    for name, kind in (("oai", "openai"), ("claude", "anthropic")):
        data(
            await client.post(
                f"/api/v1/projects/{pid}/providers",
                json={"name": name, "provider": kind, "api_key": "k-" + "x" * 20},
                headers=owner,
            ),
            201,
        )
    routes = f"/api/v1/projects/{pid}/routes"
    unknown = {"model": "smart", "targets": [{"provider": "ghost", "model": "m"}]}
    assert "ghost" in error(await client.post(routes, json=unknown, headers=owner), 400)["message"]

    one = {"model": "smart", "targets": [{"provider": "oai", "model": "gpt-4o"}]}
    made = data(await client.post(routes, json=one, headers=owner), 201)
    assert made["strategy"] == "fallback" and made["retries"] == 2

    applied = data(
        await client.put(
            routes, content=ROUTING_YAML, headers=owner | {"content-type": "application/yaml"}
        )
    )
    assert sorted(r["model"] for r in applied) == ["cheap", "smart"]
    listed = {r["model"]: r for r in data(await client.get(routes, headers=owner))}
    assert listed["smart"]["retries"] == 3
    assert listed["cheap"]["targets"] == [
        {"provider": "oai", "model": "gpt-4o-mini", "weight": 3.0},
        {"provider": "claude", "model": "claude-haiku-4", "weight": 1.0},
    ]
    as_json = {"routes": [{"model": "only", "targets": [{"provider": "oai", "model": "o"}]}]}
    data(await client.put(routes, json=as_json, headers=owner))
    assert [r["model"] for r in data(await client.get(routes, headers=owner))] == ["only"]

    broken = await client.put(
        routes, content=b"routes: [", headers=owner | {"content-type": "application/yaml"}
    )
    assert error(broken, 400)["code"] == "invalid_routing_file"
    invalid = await client.put(
        routes, json={"routes": [{"model": "x", "targets": []}]}, headers=owner
    )
    assert "routes.0.targets" in error(invalid, 400)["message"]


async def test_budgets_limits_prices_and_roles(client: httpx.AsyncClient) -> None:
    owner, org_id, pid = await _setup(client)
    base = f"/api/v1/projects/{pid}"
    budget = data(
        await client.post(
            f"{base}/budgets", json={"period": "monthly", "limit_usd": 50}, headers=owner
        ),
        201,
    )
    assert budget["period"] == "monthly" and budget["api_key_id"] is None
    limit = data(await client.post(f"{base}/rate-limits", json={"rpm": 60}, headers=owner), 201)
    assert (limit["rpm"], limit["tpm"]) == (60, None)
    error(await client.post(f"{base}/rate-limits", json={}, headers=owner), 400)
    price = {"provider": "oai", "model": "gpt-4o", "input_per_mtok": 2.5, "output_per_mtok": 10}
    data(await client.post(f"{base}/prices", json=price, headers=owner), 201)
    updated = data(
        await client.post(f"{base}/prices", json=price | {"output_per_mtok": 8}, headers=owner), 201
    )
    assert updated["output_per_mtok"] == 8
    assert len(data(await client.get(f"{base}/prices", headers=owner))) == 1
    assert [b["id"] for b in data(await client.get(f"{base}/budgets", headers=owner))] == [
        budget["id"]
    ]
    data(await client.delete(f"{base}/budgets/{budget['id']}", headers=owner))
    assert data(await client.get(f"{base}/budgets", headers=owner)) == []
    stranger_key = {
        "period": "daily",
        "limit_usd": 1,
        "api_key_id": "00000000-0000-7000-8000-000000000000",
    }
    assert error(await client.post(f"{base}/budgets", json=stranger_key, headers=owner), 404)

    viewer = await add_member(client, owner, org_id, "gw-viewer@example.com", "viewer")
    assert data(await client.get(f"{base}/rate-limits", headers=viewer))
    error(
        await client.post(
            f"{base}/budgets", json={"period": "daily", "limit_usd": 1}, headers=viewer
        ),
        403,
    )
    outsider = await login(client, "gw-outsider@example.com")
    error(await client.get(f"{base}/providers", headers=outsider), 404)
