"""``traces``, ``trace``, ``sessions`` and ``users`` over spans ingested as OTLP protobuf."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import World, span_id, trace_id

pytestmark = pytest.mark.asyncio(loop_scope="package")


def traces(**extra: Any) -> dict[str, Any]:
    return {"queryType": "traces", "timeRange": {"relative": "2h"}, **extra}


async def ids(world: World, body: dict[str, Any], key: str | None = None) -> list[str]:
    reply = await world.query(key or world.key_a, body)
    return [t["traceId"] for t in reply["data"]]


async def test_list_newest_first_with_summary(world: World) -> None:
    reply = await world.query(world.key_a, traces(limit=100))
    rows = reply["data"]
    assert [t["traceId"] for t in rows] == [trace_id("a", i) for i in reversed(range(12))]
    first = next(t for t in rows if t["traceId"] == trace_id("a", 0))
    assert first["name"] == "chat-request"
    assert first["service"] == "chatbot"
    assert first["spanCount"] == 3
    assert first["models"] == ["gpt-4o"] and first["providers"] == ["openai"]
    assert first["cost"] == pytest.approx(0.001)
    assert first["totalTokens"] == 110
    assert first["userId"] == "user-0" and first["sessionId"] == "sess-0"
    assert first["tags"] == ["prod", "vip"]
    assert first["durationMs"] == pytest.approx(100.0)
    assert first["status"] == "ok" and first["environments"] == ["production"]
    assert reply["meta"]["cursor"] is None and reply["meta"]["hasMore"] is False


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"model": "gpt-4o"}, [9, 6, 3, 0]),
        ({"model": ["gpt-4o", "claude-3-5-sonnet"], "provider": "anthropic"}, [11, 8, 5, 2]),
        ({"status": "error"}, [5]),
        ({"environment": "staging"}, [11]),
        ({"userId": "user-1", "sessionId": "sess-1"}, [1]),
        ({"tags": ["vip"]}, [10, 8, 6, 4, 2, 0]),
        ({"name": "search-request", "minDurationMs": 900}, [11, 9]),
        ({"maxDurationMs": 200}, [1, 0]),
        ({"minCost": 0.0105}, [11, 10]),
        ({"maxCost": 0.0015}, [0]),
        ({"service": "chatbot", "attributes": {"http.route": "/chat"}}, list(reversed(range(12)))),
        ({"filters": [{"field": "attributes.http.status_code", "op": "gte", "value": 500}]}, [5]),
        (
            {"filters": [{"field": "model", "op": "neq", "value": "gpt-4o"}]},
            [11, 10, 8, 7, 5, 4, 2, 1],
        ),
        (
            {"filters": [{"field": "spanName", "op": "eq", "value": "tool.search"}]},
            [10, 8, 6, 4, 2, 0],
        ),
        ({"filters": [{"field": "input", "op": "contains", "value": "QUESTION 7"}]}, [7]),
        ({"filters": [{"field": "ttft", "op": "gt", "value": 200}]}, [11]),
        (
            {
                "filters": [
                    {"field": "spans", "op": "eq", "value": 3},
                    {"field": "cost", "op": "lt", "value": 0.004},
                ]
            },
            [2, 0],
        ),
        ({"filters": [{"field": "tags", "op": "contains", "value": "VI"}]}, [10, 8, 6, 4, 2, 0]),
        (
            {"filters": [{"field": "attributes.tool.name", "op": "exists", "value": False}]},
            [11, 9, 7, 5, 3, 1],
        ),
    ],
)
async def test_filters(world: World, extra: dict[str, Any], expected: list[int]) -> None:
    assert await ids(world, traces(limit=100, **extra)) == [trace_id("a", i) for i in expected]


@pytest.mark.parametrize(
    ("sort", "order", "first"),
    [("duration", "desc", 11), ("cost", "asc", 0), ("tokens", "desc", 11), ("spans", "desc", 10)],
)
async def test_sorts(world: World, sort: str, order: str, first: int) -> None:
    got = await ids(world, traces(sort=sort, order=order, limit=1))
    assert got == [trace_id("a", first)]


@pytest.mark.parametrize(
    ("sort", "order"), [("startTime", "desc"), ("cost", "asc"), ("spans", "desc")]
)
async def test_cursor_pagination_visits_every_trace_once(
    world: World, sort: str, order: str
) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        body = traces(limit=5, sort=sort, order=order)
        if cursor:
            body["cursor"] = cursor
        reply = await world.query(world.key_a, body)
        seen += [t["traceId"] for t in reply["data"]]
        cursor = reply["meta"]["cursor"]
        assert reply["meta"]["hasMore"] is (cursor is not None)
        if cursor is None:
            break
    assert sorted(seen) == sorted(trace_id("a", i) for i in range(12))
    assert len(seen) == 12


async def test_cursor_is_bound_to_its_sort(world: World) -> None:
    first = await world.query(world.key_a, traces(limit=2))
    cursor = first["meta"]["cursor"]
    reply = await world.query(world.key_a, traces(limit=2, sort="cost", cursor=cursor), 400)
    assert "cursor" in reply["error"]["message"]


async def test_trace_tree_with_scores(world: World) -> None:
    tid = trace_id("a", 0)
    reply = await world.query(world.key_a, {"queryType": "trace", "traceId": tid.upper()})
    data = reply["data"]
    assert data["trace"]["traceId"] == tid
    assert data["trace"]["spanCount"] == 3  # project B's spans under the same id stay hidden
    assert data["trace"]["name"] == "chat-request"
    assert [s["name"] for s in data["scores"]] == ["accuracy"]
    (root,) = data["spans"]
    assert root["spanId"] == span_id("a", 0, 1) and root["parentSpanId"] is None
    assert [c["name"] for c in root["children"]] == ["tool.search", "llm.call"]
    llm = root["children"][1]
    assert llm["model"] == "gpt-4o" and llm["provider"] == "openai"
    assert llm["usage"]["input"] == 100 and llm["usage"]["cached"] == 50
    assert llm["ttftMs"] == 100.0
    assert llm["input"] == '[{"role":"user","content":"question 0"}]'
    assert [(s["name"], s["value"], s["comment"]) for s in llm["scores"]] == [
        ("helpfulness", 0.7, "clear answer")
    ]
    assert root["resourceAttributes"]["service.name"] == "chatbot"
    assert reply["meta"]["timeRange"]["start"] <= root["startTime"]


async def test_trace_not_found(world: World) -> None:
    reply = await world.query(world.key_b, {"queryType": "trace", "traceId": trace_id("a", 3)}, 404)
    assert reply["error"]["code"] == "trace_not_found"


async def test_sessions(world: World) -> None:
    body = {"queryType": "sessions", "timeRange": {"relative": "2h"}, "sort": "traces"}
    rows = (await world.query(world.key_a, body))["data"]
    assert [r["sessionId"] for r in rows] == ["sess-3", "sess-2", "sess-1", "sess-0"]
    sess0 = rows[-1]
    assert sess0["traceCount"] == 3
    assert sess0["userIds"] == ["user-0", "user-1", "user-2"]
    filtered = {**body, "userId": "user-2", "sort": "cost", "order": "asc"}
    assert [r["sessionId"] for r in (await world.query(world.key_a, filtered))["data"]] == [
        "sess-0",
        "sess-1",
        "sess-2",
        "sess-3",
    ]
    page = await world.query(world.key_a, {**body, "limit": 3})
    rest = await world.query(world.key_a, {**body, "limit": 3, "cursor": page["meta"]["cursor"]})
    assert [r["sessionId"] for r in rest["data"]] == ["sess-0"]


async def test_users(world: World) -> None:
    body = {"queryType": "users", "timeRange": {"relative": "2h"}, "sort": "cost", "order": "desc"}
    rows = (await world.query(world.key_a, body))["data"]
    assert [r["userId"] for r in rows] == ["user-2", "user-1", "user-0"]
    user2 = rows[0]
    assert user2["traceCount"] == 4
    assert user2["sessionCount"] == 4
    assert user2["models"] == ["claude-3-5-sonnet"]
    assert user2["cost"] == pytest.approx(0.003 + 0.006 + 0.009 + 0.012)


async def test_environment_bound_key_sees_only_its_environment(world: World) -> None:
    assert await ids(world, traces(limit=100), world.key_a_staging) == [trace_id("a", 11)]
    await world.query(world.key_a_staging, {"queryType": "trace", "traceId": trace_id("a", 0)}, 404)


async def test_user_session_queries_a_member_project(world: World) -> None:
    body = traces(projectId=world.project_a, limit=1)
    reply = await world.client.post("/api/v1/query", json=body, headers=world.owner)
    assert reply.status_code == 200 and len(reply.json()["data"]) == 1
    missing = await world.client.post("/api/v1/query", json=traces(), headers=world.owner)
    assert missing.status_code == 400
    assert missing.json()["error"]["details"][0]["field"] == "projectId"
    stranger = await world.client.post("/api/v1/query", json=body, headers=world.outsider)
    assert stranger.status_code == 404


async def test_key_scope_rules(world: World) -> None:
    other = await world.client.post(
        "/api/v1/query", json=traces(projectId=world.project_b), headers=world.h(world.key_a)
    )
    assert other.status_code == 404
    no_scope = await world.client.post(
        "/api/v1/query", json=traces(), headers=world.h(world.key_a_ingest_only)
    )
    assert no_scope.status_code == 403
    assert no_scope.json()["error"]["code"] == "missing_scope"
    anonymous = await world.client.post("/api/v1/query", json=traces())
    assert anonymous.status_code == 401
