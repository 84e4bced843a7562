"""The official OpenAI SDK through the gateway to Anthropic- and Gemini-shaped upstreams
(``model="claude/..."``, ``"gem/..."``): text, streamed tool calls, usage with cached and
reasoning tokens, finish reasons, parameters a target cannot honour, the legacy completions
API and embeddings."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.fakes.script import FakeUsage, Reply, ToolCall, vector
from tests.integration.gateway import test_anthropic_sdk as shared
from tests.integration.gateway.conftest import Gateway
from tests.integration.gateway.test_anthropic_sdk import (
    CLAUDE,
    GEMINI,
    OPENAI,
    span_of,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")
# This module's own app (module scope), and a fresh project on it per test.
shared_app = shared.shared_app
gateway = shared.gateway

TRANSLATED = (CLAUDE, GEMINI)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def sdk(gw: Gateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=gw.key,
        base_url="http://brokle.test/v1",
        http_client=gw.http_client(),
        max_retries=0,
    )


async def test_text_usage_and_cost_from_anthropic_and_gemini(gateway: Gateway) -> None:
    usage = FakeUsage(prompt=1000, completion=200, cached=400, reasoning=50)
    gateway.fake.reply(Reply(text="The answer is 42.", usage=usage))
    client = sdk(gateway)
    for family in TRANSLATED:
        raw = await client.chat.completions.with_raw_response.create(
            model=family.model,
            messages=[
                {"role": "system", "content": "Be exact."},
                {"role": "user", "content": "What is six times seven?"},
            ],
            stop=["\n\n"],
            max_tokens=300,
        )
        completion = raw.parse()
        assert completion.object == "chat.completion"
        [choice] = completion.choices
        assert choice.message.role == "assistant"
        assert choice.message.content == "The answer is 42."
        assert choice.finish_reason == "stop"
        u = completion.usage
        assert u is not None
        assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (1000, 200, 1200)
        assert u.prompt_tokens_details is not None and u.prompt_tokens_details.cached_tokens == 400
        assert u.completion_tokens_details is not None
        assert u.completion_tokens_details.reasoning_tokens == 50, family.model
        assert raw.headers["x-brokle-provider"] == family.provider
        assert float(raw.headers["x-brokle-cost-usd"]) == pytest.approx(family.cost(usage))

        sent = gateway.fake.last(family.route).body
        if family is CLAUDE:
            assert sent["system"] == [{"type": "text", "text": "Be exact."}]
            assert sent["messages"] == [
                {"role": "user", "content": [{"type": "text", "text": "What is six times seven?"}]}
            ]
            assert (sent["max_tokens"], sent["stop_sequences"]) == (300, ["\n\n"])
        else:
            assert sent["systemInstruction"] == {"parts": [{"text": "Be exact."}]}
            assert sent["generationConfig"] == {"maxOutputTokens": 300, "stopSequences": ["\n\n"]}

        span = await span_of(gateway, raw.headers["x-brokle-trace-id"])
        assert (span["provider"], span["model"]) == (family.kind, family.upstream_model)
        assert (
            span["input_tokens"],
            span["output_tokens"],
            span["cached_tokens"],
            span["reasoning_tokens"],
        ) == (1000, 200, 400, 50)
        assert span["cost_usd"] == pytest.approx(family.cost(usage)) and span["cost_usd"] > 0


async def test_finish_reasons_are_mapped_to_openai(gateway: Gateway) -> None:
    client = sdk(gateway)
    for family in TRANSLATED:
        for neutral in ("stop", "length", "content_filter"):
            gateway.fake.reply(Reply(text="partial", finish=neutral), model=family.upstream_model)
            done = await client.chat.completions.create(
                model=family.model, messages=[{"role": "user", "content": "x"}]
            )
            assert done.choices[0].finish_reason == neutral, (family.model, neutral)
            stream = await client.chat.completions.create(
                model=family.model, messages=[{"role": "user", "content": "x"}], stream=True
            )
            reasons = [c.choices[0].finish_reason async for c in stream if c.choices]
            assert reasons[-1] == neutral and set(reasons[:-1]) == {None}
        gateway.fake.reply(
            Reply(tool_calls=(ToolCall("get_weather", {"city": "Rome"}),)),
            model=family.upstream_model,
        )
        called = await client.chat.completions.create(
            model=family.model, messages=[{"role": "user", "content": "x"}], tools=[WEATHER]
        )
        assert called.choices[0].finish_reason == "tool_calls"
        assert called.choices[0].message.content is None
        [call] = called.choices[0].message.tool_calls or []
        assert call.type == "function" and call.function.name == "get_weather"  # type: ignore[union-attr]
        assert json.loads(call.function.arguments) == {"city": "Rome"}  # type: ignore[union-attr]


async def _collect(stream: Any) -> tuple[str, dict[int, dict[str, str]], list[Any], list[Any]]:
    text, calls, finishes, usages = "", {}, [], []
    async for chunk in stream:
        if chunk.usage:
            usages.append(chunk.usage)
        for choice in chunk.choices:
            assert choice.index == 0
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] += call.id or ""
                if call.function:
                    slot["name"] += call.function.name or ""
                    slot["arguments"] += call.function.arguments or ""
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    return text, calls, finishes, usages


async def test_streamed_tool_calls_keep_their_indexes(gateway: Gateway) -> None:
    usage = FakeUsage(prompt=90, completion=40, cached=30, reasoning=10)
    gateway.fake.reply(
        Reply(
            text="Checking both.",
            tool_calls=(
                ToolCall("get_weather", {"city": "Oslo"}),
                ToolCall("get_time", {"tz": "Europe/Oslo"}),
            ),
            usage=usage,
        )
    )
    client = sdk(gateway)
    for family in TRANSLATED:
        raw = await client.chat.completions.with_raw_response.create(
            model=family.model,
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "Weather and time in Oslo?"}],
            tools=[WEATHER, {"type": "function", "function": {"name": "get_time"}}],
        )
        text, calls, finishes, usages = await _collect(raw.parse())
        # Text comes first, yet the tool calls are numbered 0 and 1 (OpenAI numbers tool
        # calls only; Anthropic numbers every content block).
        assert text == "Checking both."
        assert sorted(calls) == [0, 1], family.model
        assert (calls[0]["name"], json.loads(calls[0]["arguments"])) == (
            "get_weather",
            {"city": "Oslo"},
        )
        assert (calls[1]["name"], json.loads(calls[1]["arguments"])) == (
            "get_time",
            {"tz": "Europe/Oslo"},
        )
        assert calls[0]["id"] and calls[1]["id"] and calls[0]["id"] != calls[1]["id"]
        assert finishes == ["tool_calls"]
        [u] = usages
        assert (u.prompt_tokens, u.completion_tokens) == (90, 40)
        assert u.prompt_tokens_details.cached_tokens == 30
        assert u.completion_tokens_details.reasoning_tokens == 10
        span = await span_of(gateway, raw.headers["x-brokle-trace-id"])
        assert (span["input_tokens"], span["output_tokens"], span["cached_tokens"]) == (90, 40, 30)
        assert span["reasoning_tokens"] == 10 and span["cost_usd"] == pytest.approx(
            family.cost(usage)
        )

        # Without include_usage no usage chunk reaches the client, but the span still has it.
        quiet = await client.chat.completions.with_raw_response.create(
            model=family.model,
            stream=True,
            messages=[{"role": "user", "content": "again"}],
            tools=[WEATHER, {"type": "function", "function": {"name": "get_time"}}],
        )
        _, again, _, none = await _collect(quiet.parse())
        assert sorted(again) == [0, 1] and none == []
        span = await span_of(gateway, quiet.headers["x-brokle-trace-id"])
        assert (span["input_tokens"], span["output_tokens"]) == (90, 40)


async def test_tool_results_go_back_in_the_upstream_shape(gateway: Gateway) -> None:
    client = sdk(gateway)
    gateway.fake.reply(Reply(text="Sunny."))
    history: list[Any] = [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "clear"}'},
    ]
    for family in TRANSLATED:
        done = await client.chat.completions.create(
            model=family.model, messages=history, tools=[WEATHER]
        )
        assert done.choices[0].message.content == "Sunny."
    claude = gateway.fake.last(CLAUDE.route).body["messages"]
    assert claude[1:] == [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": '{"sky": "clear"}'}
            ],
        },
    ]
    gemini = gateway.fake.last(GEMINI.route).body["contents"]
    assert gemini[1:] == [
        {
            "role": "model",
            "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}],
        },
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "get_weather", "response": {"sky": "clear"}}}],
        },
    ]


async def test_parameters_a_target_cannot_honour_are_refused(gateway: Gateway) -> None:
    client = sdk(gateway)
    hello: Any = [{"role": "user", "content": "hi"}]
    refused: list[tuple[str, dict[str, Any], str]] = [
        (CLAUDE.model, {"logprobs": True}, "logprobs"),
        (CLAUDE.model, {"top_logprobs": 2, "logprobs": True}, "logprobs"),
        (CLAUDE.model, {"n": 2}, "n"),
        (CLAUDE.model, {"response_format": {"type": "json_object"}}, "response_format"),
        (CLAUDE.model, {"temperature": 1.5}, "temperature"),
        (CLAUDE.model, {"seed": 7}, "seed"),
        (GEMINI.model, {"logprobs": True}, "logprobs"),
        (GEMINI.model, {"parallel_tool_calls": False, "tools": [WEATHER]}, "parallel_tool_calls"),
        (GEMINI.model, {"logit_bias": {"1": 2}}, "logit_bias"),
    ]
    for model, params, name in refused:
        for stream in (False, True):
            with pytest.raises(openai.BadRequestError) as info:
                await client.chat.completions.create(
                    model=model, messages=hello, stream=stream, **params
                )
            assert info.value.status_code == 400
            assert info.value.code == "unsupported_parameter", (model, params)
            assert info.value.param == name, (model, params)
            assert f"'{name}'" in info.value.message
    assert gateway.fake.count() == 0  # refused before anything went upstream

    # Gemini can honour n (candidateCount): two choices come back.
    gateway.fake.reply(Reply(text="twin"))
    both = await client.chat.completions.create(model=GEMINI.model, messages=hello, n=2)
    assert [(c.index, c.message.content) for c in both.choices] == [(0, "twin"), (1, "twin")]
    assert gateway.fake.last(GEMINI.route).body["generationConfig"]["candidateCount"] == 2


async def test_legacy_completions_through_an_openai_upstream(gateway: Gateway) -> None:
    client = sdk(gateway)
    usage = FakeUsage(prompt=7, completion=5)
    gateway.fake.reply(Reply(text="once upon a time", usage=usage))

    raw = await client.completions.with_raw_response.create(
        model="oai/gpt-3.5-turbo-instruct", prompt="Tell a story", max_tokens=5
    )
    legacy = raw.parse()
    assert legacy.object == "text_completion" and legacy.choices[0].text == "once upon a time"
    assert legacy.usage is not None and legacy.usage.total_tokens == 12
    assert raw.headers["x-brokle-provider"] == OPENAI.provider
    assert gateway.fake.last("openai.completions").body["prompt"] == "Tell a story"
    span = await span_of(gateway, raw.headers["x-brokle-trace-id"])
    assert (span["operation"], span["input_tokens"], span["output_tokens"]) == (
        "text_completion",
        7,
        5,
    )
    assert span["cost_usd"] == pytest.approx((7 * 1.5 + 5 * 2.0) / 1e6)
    assert span["output"] == "once upon a time"

    streamed = await client.completions.with_raw_response.create(
        model="oai/gpt-3.5-turbo-instruct",
        prompt="Tell a story",
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in streamed.parse()]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "once upon a time"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    span = await span_of(gateway, streamed.headers["x-brokle-trace-id"])
    assert (span["output_tokens"], span["output"]) == (5, "once upon a time")


async def test_an_endpoint_the_target_lacks_is_named_in_the_error(gateway: Gateway) -> None:
    client = sdk(gateway)
    for family in TRANSLATED:
        with pytest.raises(openai.BadRequestError) as no_legacy:
            await client.completions.create(model=family.model, prompt="x")
        assert no_legacy.value.code == "unsupported_endpoint", no_legacy.value.message
        assert "legacy completions" in no_legacy.value.message
    with pytest.raises(openai.BadRequestError) as no_embeddings:
        await client.embeddings.create(model=CLAUDE.model, input="x")
    assert no_embeddings.value.code == "unsupported_endpoint", no_embeddings.value.message


async def test_gemini_embeddings(gateway: Gateway) -> None:
    client = sdk(gateway)
    # batchEmbedContents, with the SDK's default base64 encoding decoded by the SDK.
    raw = await client.embeddings.with_raw_response.create(
        model="gem/text-embedding-004", input=["alpha", "beta"], dimensions=4
    )
    embedded = raw.parse()
    assert [d.index for d in embedded.data] == [0, 1]
    for item, text in zip(embedded.data, ["alpha", "beta"], strict=True):
        assert item.embedding == pytest.approx(vector(text, 4), abs=1e-6)
    request = gateway.fake.last("gemini.embed").body["requests"]
    assert [r["outputDimensionality"] for r in request] == [4, 4]
    assert [r["content"]["parts"][0]["text"] for r in request] == ["alpha", "beta"]
    span = await span_of(gateway, raw.headers["x-brokle-trace-id"])
    assert (span["span_type"], span["operation"], span["provider"]) == (
        "embedding",
        "embeddings",
        "gemini",
    )
