"""``/v1/spans/query`` and ``/validate`` driven by the ``brokle`` SDK's own query manager
(its request building and response parsing), over the in-process app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from brokle._http.client import AsyncHTTPClient
from brokle.config import BrokleConfig
from brokle.query import AsyncQueryManager, InvalidFilterError

from .conftest import World, span_id, trace_id

pytestmark = pytest.mark.asyncio(loop_scope="package")


@pytest_asyncio.fixture(loop_scope="package")
async def sdk(world: World) -> AsyncIterator[AsyncQueryManager]:
    config = BrokleConfig(api_key=world.key_a, base_url="http://brokle.test")
    http = AsyncHTTPClient(config)
    http._client = httpx.AsyncClient(
        transport=httpx.ASGITransport(world.app),
        base_url=config.base_url,
        headers={"X-API-Key": world.key_a, "Content-Type": "application/json"},
    )
    yield AsyncQueryManager(http, config)
    await http._client.aclose()


async def test_filter_expression_from_the_issue(sdk: AsyncQueryManager) -> None:
    result = await sdk.query("service.name=chatbot AND gen_ai.request.model=gpt-4o")
    assert result.total == 4 and not result.has_more
    assert {s.trace_id for s in result.spans} == {trace_id("a", i) for i in (0, 3, 6, 9)}
    span = next(s for s in result.spans if s.trace_id == trace_id("a", 0))
    assert span.span_id == span_id("a", 0, 2)
    assert span.name == "llm.call" and span.service_name == "chatbot"
    assert span.model == "gpt-4o"
    assert span.token_usage is not None and span.token_usage.prompt_tokens == 100
    assert span.input == '[{"role":"user","content":"question 0"}]'
    assert span.duration == 80_000  # microseconds
    assert span.attributes["gen_ai.system"] == "openai"
    assert span.attributes["service.name"] == "chatbot"  # resource attributes merged in
    assert span.parent_span_id == span_id("a", 0, 1)


async def test_offset_pagination_with_query_iter(sdk: AsyncQueryManager) -> None:
    names = [s.name async for s in sdk.query_iter("service.name=chatbot", batch_size=7)]
    assert len(names) == 30
    page = await sdk.query("", limit=10, offset=25)
    assert len(page.spans) == 5 and page.total == 30 and not page.has_more


async def test_operators_and_time_range(sdk: AsyncQueryManager) -> None:
    errors = await sdk.query("status = ERROR OR http.status_code >= 500")
    assert {(s.trace_id, s.name) for s in errors.spans} == {
        (trace_id("a", 5), "llm.call"),
        (trace_id("a", 5), "search-request"),
    }
    tools = await sdk.query('tool.name EXISTS AND NOT (span.name IN ("llm.call", "x"))')
    assert tools.total == 6
    slow = await sdk.query("duration > 900 AND gen_ai.system ~ anthrop")
    assert [s.trace_id for s in slow.spans] == [trace_id("a", 11)]
    old = await sdk.query(
        "service.name=chatbot",
        start_time=datetime.now(UTC) - timedelta(days=3),
        end_time=datetime.now(UTC) - timedelta(days=2),
    )
    assert old.total == 0


async def test_invalid_filters(sdk: AsyncQueryManager) -> None:
    with pytest.raises(InvalidFilterError):
        await sdk.query("service.name=")
    with pytest.raises(InvalidFilterError):
        await sdk.query("cost ~ cheap")
    assert (await sdk.validate("a=b AND (c!=d OR e IN (1,2))")).valid is True
    bad = await sdk.validate("a=b AND")
    assert bad.valid is False
    assert bad.error == "Invalid filter: expected a key at the end"


async def test_sdk_endpoints_are_tenant_scoped(world: World) -> None:
    reply = await world.client.post(
        "/v1/spans/query", json={"filter": "", "limit": 100}, headers=world.h(world.key_b)
    )
    body = reply.json()["data"]
    assert body["total_count"] == 6
    assert all("bravo" in s["span_name"] for s in body["spans"])
    ingest_only = await world.client.post(
        "/v1/spans/query", json={"filter": ""}, headers=world.h(world.key_a_ingest_only)
    )
    assert ingest_only.status_code == 403
    user = await world.client.post("/v1/spans/query", json={"filter": ""}, headers=world.owner)
    assert user.status_code == 401
    too_long = await world.client.post(
        "/v1/spans/query",
        json={"filter": "", "start_time": "2026-01-01T00:00:00Z"},
        headers=world.h(world.key_a),
    )
    assert too_long.status_code == 400
    assert too_long.json()["error"]["details"][0]["field"] == "start_time"
