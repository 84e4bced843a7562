"""The official OpenAI SDK through the gateway: routing, streaming, tools, fallback, cache,
budgets, limits, and the span each call records."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest

from tests.fakes.script import FakeUsage, Fault, Reply, ToolCall
from tests.integration.gateway.conftest import Gateway


def sdk(gw: Gateway, **kwargs: object) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=gw.key,
        base_url="http://brokle.test/v1",
        http_client=gw.http_client(),
        max_retries=0,
        **kwargs,  # type: ignore[arg-type]
    )


async def spans(gw: Gateway, expected: int) -> list[dict[str, object]]:
    store = gw.client.app.state.services.telemetry.store  # type: ignore[attr-defined]
    for _ in range(100):
        rows = await store.aquery_dicts(
            "SELECT * FROM spans WHERE project_id = {p:String} ORDER BY start_time",
            {"p": gw.project_id},
        )
        if len(rows) >= expected:
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {expected} spans, found {len(rows)}")


async def test_chat_direct_provider_with_usage_cost_and_span(gateway: Gateway) -> None:
    gateway.fake.reply(
        Reply(
            text="Hello there",
            usage=FakeUsage(prompt=1000, completion=200, cached=400, reasoning=50),
        )
    )
    client = sdk(gateway)
    raw = await client.chat.completions.with_raw_response.create(
        model="oai/gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello there"
    assert completion.usage is not None and completion.usage.prompt_tokens == 1000
    assert raw.headers["x-brokle-provider"] == "oai"
    assert raw.headers["x-brokle-cache"] == "bypass"
    cost = float(raw.headers["x-brokle-cost-usd"])
    # 600 fresh + 400 cached input and 200 output tokens at gpt-4o-mini's list prices
    assert cost == pytest.approx((600 * 0.15 + 400 * 0.075 + 200 * 0.6) / 1e6)
    trace_id = raw.headers["x-brokle-trace-id"]
    upstream = gateway.fake.last("openai.chat")
    assert upstream.body["model"] == "gpt-4o-mini"
    assert upstream.headers["authorization"] == "Bearer sk-upstream"

    [span] = await spans(gateway, 1)
    assert span["trace_id"] == trace_id
    assert (span["provider"], span["model"], span["operation"]) == ("openai", "gpt-4o-mini", "chat")
    assert (
        span["input_tokens"],
        span["output_tokens"],
        span["cached_tokens"],
        span["reasoning_tokens"],
    ) == (1000, 200, 400, 50)
    assert span["cost_usd"] == pytest.approx(cost)
    assert str(span["price_version"]).startswith("genai-prices-")
    assert span["api_key_id"] and span["span_type"] == "generation"
    assert "Say hello" in str(span["input"]) and "Hello there" in str(span["output"])
    assert span["attributes"]["brokle.gateway.attempts"] == "1"  # type: ignore[index]


async def test_streaming_with_tools_and_usage(gateway: Gateway) -> None:
    gateway.fake.reply(
        Reply(
            tool_calls=(ToolCall("get_weather", {"city": "Oslo"}),),
            usage=FakeUsage(prompt=30, completion=12),
        )
    )
    client = sdk(gateway)
    stream = await client.chat.completions.create(
        model="oai/gpt-4o",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "weather in Oslo?"}],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
    )
    calls: dict[int, dict[str, str]] = {}
    usage = None
    async for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                slot = calls.setdefault(call.index, {"name": "", "arguments": ""})
                slot["name"] += call.function.name or "" if call.function else ""
                slot["arguments"] += call.function.arguments or "" if call.function else ""
    assert [c["name"] for c in calls.values()] == ["get_weather"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Oslo"}
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (30, 12)
    [span] = await spans(gateway, 1)
    assert (span["input_tokens"], span["output_tokens"]) == (30, 12)
    assert span["ttft_ms"] is not None and span["attributes"]["brokle.gateway.stream"] == "true"  # type: ignore[index]


async def test_fallback_after_retries_and_breaker(gateway: Gateway) -> None:
    await gateway.api(
        "POST",
        "/routes",
        {
            "model": "smart",
            "strategy": "fallback",
            "retries": 1,
            "targets": [
                {"provider": "oai", "model": "primary"},
                {"provider": "backup", "model": "secondary"},
            ],
        },
    )
    gateway.fake.fail(Fault(status=503), model="primary", times=None)
    client = sdk(gateway)
    raw = await client.chat.completions.with_raw_response.create(
        model="smart", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-brokle-provider"] == "backup"
    assert gateway.fake.count("openai.chat", model="primary") == 2  # first try + one retry
    assert gateway.fake.count("openai.chat", model="secondary") == 1
    [span] = await spans(gateway, 1)
    assert span["attributes"]["brokle.gateway.attempts"] == "3"  # type: ignore[index]


async def test_client_errors_are_not_retried_and_use_openai_shape(gateway: Gateway) -> None:
    gateway.fake.fail(Fault(status=400, message="bad tool schema"), model="m")
    client = sdk(gateway)
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="oai/m", messages=[{"role": "user", "content": "x"}]
        )
    assert "bad tool schema" in str(info.value)
    assert gateway.fake.count("openai.chat") == 1
    with pytest.raises(openai.NotFoundError) as missing:
        await client.chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}]
        )
    assert missing.value.code == "model_not_found"
    bad_key = openai.AsyncOpenAI(
        api_key="bk_" + "z" * 40,
        base_url="http://brokle.test/v1",
        http_client=gateway.http_client(),
        max_retries=0,
    )
    with pytest.raises(openai.AuthenticationError):
        await bad_key.chat.completions.create(
            model="oai/m", messages=[{"role": "user", "content": "x"}]
        )


async def test_exact_cache_serves_plain_and_streamed_requests(gateway: Gateway) -> None:
    await gateway.api(
        "POST",
        "/routes",
        {
            "model": "cached",
            "cache_ttl_seconds": 60,
            "targets": [{"provider": "oai", "model": "c1"}],
        },
    )
    client = sdk(gateway)
    messages = [{"role": "user", "content": "What is 2+2?"}]
    first = await client.chat.completions.with_raw_response.create(
        model="cached", messages=messages
    )
    second = await client.chat.completions.with_raw_response.create(
        model="cached", messages=messages
    )
    assert (first.headers["x-brokle-cache"], second.headers["x-brokle-cache"]) == ("miss", "hit")
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    streamed = await client.chat.completions.create(model="cached", messages=messages, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in streamed if c.choices])
    assert text == first.parse().choices[0].message.content
    bypass = await client.chat.completions.with_raw_response.create(
        model="cached", messages=messages, extra_headers={"x-brokle-cache": "no-cache"}
    )
    assert bypass.headers["x-brokle-cache"] == "miss"
    assert gateway.fake.count("openai.chat") == 2


async def test_budget_holds_under_concurrency(gateway: Gateway) -> None:
    # Each call reserves its worst case (max_tokens=1000 at gpt-4o prices ~ $0.01) and
    # really costs 10 output tokens; a $0.05 budget admits a handful at a time.
    await gateway.api("POST", "/budgets", {"period": "daily", "limit_usd": 0.05})
    gateway.fake.reply(Reply(text="ok", usage=FakeUsage(prompt=10, completion=10)))
    gateway.fake.fail(Fault(latency=0.05), times=None)  # slow upstream: calls overlap
    client = sdk(gateway)

    async def one() -> int:
        try:
            await client.chat.completions.create(
                model="oai/gpt-4o", max_tokens=1000, messages=[{"role": "user", "content": "x"}]
            )
            return 200
        except openai.RateLimitError as exc:
            return 429 if exc.code == "budget_exceeded" else 0

    results = await asyncio.gather(*(one() for _ in range(40)))
    assert 200 in results and 429 in results
    assert gateway.fake.count("openai.chat") == results.count(200)


async def test_rpm_limit_per_key(gateway: Gateway) -> None:
    await gateway.api("POST", "/rate-limits", {"rpm": 2})
    client = sdk(gateway)
    for _ in range(2):
        await client.chat.completions.create(
            model="oai/m", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(
            model="oai/m", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.response.headers["retry-after"]


async def test_embeddings_and_models(gateway: Gateway) -> None:
    await gateway.api(
        "POST",
        "/routes",
        {"model": "embed", "targets": [{"provider": "oai", "model": "text-embedding-3-small"}]},
    )
    client = sdk(gateway)
    result = await client.embeddings.create(model="embed", input=["a", "b"])
    assert len(result.data) == 2 and result.data[0].embedding
    models = [m.id async for m in client.models.list()]
    assert models == ["embed", "oai/text-embedding-3-small"]


async def test_semantic_cache_matches_the_same_question_after_the_same_conversation(
    gateway: Gateway,
) -> None:
    await gateway.api(
        "POST",
        "/routes",
        {"model": "embedder", "targets": [{"provider": "oai", "model": "text-embedding-3-small"}]},
    )
    await gateway.api(
        "POST",
        "/routes",
        {
            "model": "sem",
            "cache_ttl_seconds": 60,
            "semantic_threshold": 0.95,
            "semantic_embeddings": "embedder",
            "targets": [{"provider": "oai", "model": "s1"}],
        },
    )
    client = sdk(gateway)
    system = {"role": "system", "content": "You are terse."}
    first = await client.chat.completions.with_raw_response.create(
        model="sem", messages=[system, {"role": "user", "content": "capital of France?"}]
    )
    # Same question as content parts: a different request (no exact hit), the same meaning.
    parts = [{"type": "text", "text": "capital of France?"}]
    second = await client.chat.completions.with_raw_response.create(
        model="sem", messages=[system, {"role": "user", "content": parts}]
    )
    assert (first.headers["x-brokle-cache"], second.headers["x-brokle-cache"]) == ("miss", "hit")
    # Another question, or the same question after another conversation: no hit.
    other = await client.chat.completions.with_raw_response.create(
        model="sem", messages=[system, {"role": "user", "content": "capital of Peru?"}]
    )
    context = await client.chat.completions.with_raw_response.create(
        model="sem", messages=[{"role": "user", "content": "capital of France?"}]
    )
    assert (other.headers["x-brokle-cache"], context.headers["x-brokle-cache"]) == ("miss", "miss")
    assert gateway.fake.count("openai.chat") == 3
    assert gateway.fake.count("openai.embeddings") == 4
    rows = await spans(gateway, 4)
    kinds = [r["attributes"].get("brokle.gateway.cache_kind") for r in rows]  # type: ignore[union-attr]
    assert kinds.count("semantic") == 1

    incomplete = {
        "model": "x",
        "semantic_threshold": 0.9,
        "targets": [{"provider": "oai", "model": "m"}],
    }
    response = await gateway.client.post(
        f"/api/v1/projects/{gateway.project_id}/routes", json=incomplete, headers=gateway.admin
    )
    assert response.status_code == 400 and "semantic" in response.json()["error"]["message"]
