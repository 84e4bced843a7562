"""``analytics`` and ``logs``, and the span discovery endpoints (services, models,
attribute keys and values)."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import World, trace_id

pytestmark = pytest.mark.asyncio(loop_scope="package")


def analytics(**extra: Any) -> dict[str, Any]:
    return {"queryType": "analytics", "timeRange": {"relative": "2h"}, **extra}


async def test_totals(world: World) -> None:
    data = (await world.query(world.key_a, analytics()))["data"]
    totals = data["totals"]
    assert totals["requests"] == 12  # the LLM spans only
    assert totals["errors"] == 1
    assert totals["errorRate"] == pytest.approx(1 / 12)
    assert totals["tokens"]["input"] == 100 * 78
    assert totals["tokens"]["output"] == 10 * 78
    assert totals["tokens"]["cached"] == 50 * 6
    assert totals["tokens"]["total"] == 110 * 78
    assert totals["cost"] == pytest.approx(0.078)
    assert totals["cacheHitRate"] == pytest.approx(0.5)
    assert totals["cachedTokenRatio"] == pytest.approx(300 / 7800)
    assert totals["latencyMs"]["p50"] == pytest.approx(520, rel=0.05)
    assert totals["latencyMs"]["p99"] <= 960
    assert 100 <= totals["ttftMs"]["p50"] <= 210
    assert data["rows"] == []


async def test_grouped_by_model_and_provider(world: World) -> None:
    data = (await world.query(world.key_a, analytics(groupBy=["provider", "model"])))["data"]
    rows = {(r["group"]["provider"], r["group"]["model"]): r for r in data["rows"]}
    assert set(rows) == {
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-3-5-sonnet"),
    }
    assert all(r["requests"] == 4 for r in rows.values())
    assert rows[("anthropic", "claude-3-5-sonnet")]["errors"] == 1
    assert rows[("openai", "gpt-4o")]["cost"] == pytest.approx(0.001 + 0.004 + 0.007 + 0.010)


@pytest.mark.parametrize("dimension", ["environment", "user", "apiKey", "service", "operation"])
async def test_other_dimensions(world: World, dimension: str) -> None:
    data = (await world.query(world.key_a, analytics(groupBy=[dimension])))["data"]
    assert sum(r["requests"] for r in data["rows"]) == 12
    assert all(r["group"][dimension] for r in data["rows"])


async def test_over_time_with_filter(world: World) -> None:
    body = analytics(
        interval="10m",
        groupBy=["model"],
        filters=[{"field": "environment", "op": "eq", "value": "production"}],
    )
    data = (await world.query(world.key_a, body))["data"]
    assert data["interval"] == "600s"
    assert sum(r["requests"] for r in data["rows"]) == 11
    times = [r["time"] for r in data["rows"]]
    assert times == sorted(times)


async def test_logs_filters(world: World) -> None:
    async def bodies(**extra: Any) -> list[str]:
        body = {"queryType": "logs", "timeRange": {"relative": "2h"}, **extra}
        return [r["body"] for r in (await world.query(world.key_a, body))["data"]]

    assert await bodies(minSeverity="warn") == [
        "db down",
        "payment failed: Timeout",
        "slow response from upstream",
    ]
    assert await bodies(severity=["ERROR", "FATAL"], order="asc") == [
        "payment failed: Timeout",
        "db down",
    ]
    assert await bodies(search="TIMEOUT") == ["payment failed: Timeout"]
    assert await bodies(traceId=trace_id("a", 5)) == ["payment failed: Timeout"]
    assert await bodies(attributes={"order.id": "17"}) == ["payment failed: Timeout"]
    assert await bodies(service="chatbot", limit=100) == await bodies(limit=100)
    assert len(await bodies(limit=100)) == 6
    assert await bodies(service="nope") == []
    assert (
        await bodies(filters=[{"field": "severityNumber", "op": "lt", "value": 10}])
        == ["request ok"] * 3
    )
    assert await bodies(filters=[{"field": "body", "op": "contains", "value": "slow"}]) == [
        "slow response from upstream"
    ]


async def test_log_record_shape_and_pagination(world: World) -> None:
    body: dict[str, Any] = {"queryType": "logs", "timeRange": {"relative": "2h"}, "limit": 4}
    first = await world.query(world.key_a, body)
    assert len(first["data"]) == 4 and first["meta"]["hasMore"] is True
    record = first["data"][1]
    assert record["severity"] == "ERROR" and record["severityNumber"] == 17
    assert record["service"] == "chatbot" and record["environment"] == "production"
    assert record["traceId"] == trace_id("a", 5)
    assert record["attributes"] == {"order.id": "17"}
    rest = await world.query(world.key_a, {**body, "cursor": first["meta"]["cursor"]})
    assert [r["body"] for r in rest["data"]] == ["request ok", "request ok"]
    assert rest["meta"]["cursor"] is None


async def test_span_discovery(world: World) -> None:
    h = world.h(world.key_a)
    services = (await world.client.get("/api/v1/services", headers=h)).json()["data"]
    assert services == [
        {
            "name": "chatbot",
            "spans": 30,
            "traces": 12,
            "errors": 1,
            "environments": ["production", "staging"],
        }
    ]
    models = (await world.client.get("/api/v1/models", headers=h)).json()["data"]
    assert {(m["provider"], m["model"], m["requests"]) for m in models} == {
        ("openai", "gpt-4o", 4),
        ("openai", "gpt-4o-mini", 4),
        ("anthropic", "claude-3-5-sonnet", 4),
    }
    keys = (await world.client.get("/api/v1/spans/attributes", headers=h)).json()["data"]
    by_key = {k["key"]: k["spans"] for k in keys}
    assert by_key["http.route"] == 12 and by_key["tool.name"] == 6
    resource = await world.client.get(
        "/api/v1/spans/attributes", params={"source": "resource"}, headers=h
    )
    assert {k["key"] for k in resource.json()["data"]} == {
        "service.name",
        "deployment.environment.name",
    }
    values = await world.client.get(
        "/api/v1/spans/attributes/gen_ai.request.model/values",
        params={"search": "MINI"},
        headers=h,
    )
    assert values.json()["data"] == [{"value": "gpt-4o-mini", "spans": 4}]
    user = await world.client.get(
        "/api/v1/services",
        params={"project_id": world.project_a, "range": "1h"},
        headers=world.owner,
    )
    assert user.status_code == 200 and user.json()["data"][0]["name"] == "chatbot"
