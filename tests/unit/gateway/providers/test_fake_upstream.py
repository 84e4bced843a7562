"""The fake upstream speaks wire formats the official SDKs accept, and its script works."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from tests.fakes import FakeUpstream, FakeUsage, Fault, ToolCall

TOOL = {"name": "weather", "input_schema": {"type": "object", "properties": {}}}


async def test_openai_sdk_streams_tool_calls_and_usage(fake_upstream: FakeUpstream) -> None:
    fake_upstream.reply(
        text="Sure.",
        tool_calls=(ToolCall("weather", {"city": "Paris"}, id="call_1"),),
        usage=FakeUsage(prompt=30, completion=7, cached=10, reasoning=2),
    )
    client = openai.AsyncOpenAI(api_key="sk", base_url=fake_upstream.openai_base_url)
    async with client:
        stream = await client.chat.completions.create(
            model="gpt-test",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        text, arguments, usage = "", "", None
        async for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                text += choice.delta.content or ""
                for call in choice.delta.tool_calls or ():
                    arguments += call.function.arguments or "" if call.function else ""
        embedded = await client.embeddings.create(model="e", input=["a", "b"])  # base64 default
        models = await client.models.list()

    assert (text, arguments) == ("Sure.", '{"city": "Paris"}')
    assert usage is not None and usage.prompt_tokens_details is not None
    assert (usage.prompt_tokens, usage.prompt_tokens_details.cached_tokens) == (30, 10)
    assert [len(item.embedding) for item in embedded.data] == [8, 8]
    assert [m.id for m in models.data] == ["fake-model"]


async def test_anthropic_sdk_reads_the_fake_stream(fake_upstream: FakeUpstream) -> None:
    fake_upstream.reply(
        text="Let me look.",
        tool_calls=(ToolCall("weather", {"city": "Rome"}, id="toolu_1"),),
        usage=FakeUsage(prompt=100, completion=20, cached=60, cache_write=10),
    )
    client = anthropic.AsyncAnthropic(api_key="k", base_url=fake_upstream.base_url)
    async with client.messages.stream(
        model="claude-test",
        max_tokens=50,
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[TOOL],  # type: ignore[list-item]
    ) as stream:
        message = await stream.get_final_message()

    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.content[1].input == {"city": "Rome"}  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (30, 60)
    assert message.usage.output_tokens == 20


async def test_faults_are_counted_and_consumed(fake_upstream: FakeUpstream) -> None:
    fake_upstream.fail(Fault(status=500), model="flaky", times=2)
    client = openai.AsyncOpenAI(api_key="sk", base_url=fake_upstream.openai_base_url, max_retries=0)
    async with client:
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                await client.chat.completions.create(
                    model="flaky", messages=[{"role": "user", "content": "x"}]
                )
        ok = await client.chat.completions.create(
            model="flaky", messages=[{"role": "user", "content": "x"}]
        )
        other = await client.chat.completions.create(
            model="steady", messages=[{"role": "user", "content": "y"}]
        )
    assert ok.choices[0].message.content == "Echo: x"
    assert other.choices[0].message.content == "Echo: y"
    assert fake_upstream.count("openai.chat", model="flaky") == 3
    assert fake_upstream.count("openai.chat") == 4
    assert fake_upstream.last("openai.chat").body["model"] == "steady"


async def test_missing_credentials_are_refused(fake_upstream: FakeUpstream) -> None:
    async with httpx.AsyncClient(base_url=fake_upstream.base_url) as client:
        anthropic_reply = await client.post(
            "/v1/messages", json={"model": "c"}, headers={"anthropic-version": "2023-06-01"}
        )
        gemini_reply = await client.post("/v1beta/models/g:generateContent", json={})
        openai_reply = await client.get("/v1/models")
    assert anthropic_reply.status_code == 401
    assert anthropic_reply.json()["error"]["type"] == "authentication_error"
    assert gemini_reply.json()["error"]["status"] == "UNAUTHENTICATED"
    assert openai_reply.status_code == 401
    assert fake_upstream.count() == 3
