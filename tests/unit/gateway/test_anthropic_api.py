"""Inbound Anthropic Messages API ↔ the internal OpenAI format, both ways, streams included."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import httpx2
import pytest

from brokle_server.errors import BrokleError, InvalidInput, RateLimited
from brokle_server.gateway.anthropic_api import (
    AnthropicStreamEncoder,
    Event,
    encode_event,
    error_body,
    error_event,
    to_anthropic_message,
    to_internal,
)
from brokle_server.gateway.providers import build_provider
from brokle_server.gateway.types import ProviderConfig, UpstreamError, Usage
from tests.fakes import FakeUpstream, FakeUsage, ToolCall
from tests.fakes.fixtures import fake_upstream, fake_upstream_server

__all__ = ["fake_upstream", "fake_upstream_server"]

SCHEMA: dict[str, Any] = {"type": "object", "properties": {"city": {"type": "string"}}}


def test_request_to_internal() -> None:
    body = {
        "model": "claude-alias",
        "max_tokens": 300,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "weather",
                        "input": {"city": "P"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": [{"type": "text", "text": "2"}, {"type": "text", "text": "5C"}],
                    },
                    {"type": "text", "text": "Thanks"},
                ],
            },
            {"role": "user", "content": "And tomorrow?"},
        ],
        "tools": [{"name": "weather", "description": "Weather", "input_schema": SCHEMA}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "stop_sequences": ["END"],
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 5,
        "metadata": {"user_id": "u-1"},
        "stream": True,
    }

    assert to_internal(body) == {
        "model": "claude-alias",
        "max_tokens": 300,
        "messages": [
            {
                "role": "system",
                "content": [
                    {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"P"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "25C"},
            {"role": "user", "content": "Thanks"},
            {"role": "user", "content": "And tomorrow?"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {"name": "weather", "parameters": SCHEMA, "description": "Weather"},
            }
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "stop": ["END"],
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 5,
        "user": "u-1",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "w"}, {"type": "function", "function": {"name": "w"}}),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: object) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    assert to_internal({**body, "tool_choice": choice})["tool_choice"] == expected


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"model": ""}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "x"}]}, "role"),
        ({"messages": [{"role": "user", "content": [{"type": "document"}]}]}, "document"),
        ({"messages": [{"role": "user"}]}, "Malformed"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "Server tool"),
        ({"service_tier": "auto"}, "service_tier"),
    ],
)
def test_bad_requests_are_400(patch: dict[str, Any], message: str) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], **patch}
    with pytest.raises(InvalidInput, match=message):
        to_internal(body)


def test_response_to_message() -> None:
    response = {
        "id": "chatcmpl-1",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city": "P"}'},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "weather", "arguments": "{oops"},
                        },
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
    }
    usage = Usage(100, 20, cached_tokens=60, cache_write_tokens=30)

    assert to_anthropic_message(response, usage, model="claude-alias") == {
        "id": "msg_chatcmpl-1",
        "type": "message",
        "role": "assistant",
        "model": "claude-alias",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "P"}},
            {"type": "tool_use", "id": "call_2", "name": "weather", "input": {}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 20,
            "cache_read_input_tokens": 60,
            "cache_creation_input_tokens": 30,
        },
    }


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-9", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def call(index: int, **fields: Any) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, **fields}]}


def test_stream_encoder_text_then_tool_calls() -> None:
    encoder = AnthropicStreamEncoder("claude-alias")
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Two "}),
        chunk({"content": "cities."}),
        chunk(call(0, id="call_a", type="function", function={"name": "w", "arguments": ""})),
        chunk(call(0, function={"arguments": '{"city":'})),
        chunk(call(0, function={"arguments": '"P"}'})),
        chunk(call(1, id="call_b", type="function", function={"name": "w", "arguments": "{}"})),
        chunk({}, "tool_calls"),
        {"id": "chatcmpl-9", "choices": [], "usage": Usage(50, 9, cached_tokens=20).to_openai()},
    ]
    events: list[Event] = []
    for item in chunks:
        events += encoder.feed(item)
    events += encoder.finish()

    def delta(index: int, body: dict[str, Any]) -> Event:
        return (
            "content_block_delta",
            {"type": "content_block_delta", "index": index, "delta": body},
        )

    def start(index: int, block: dict[str, Any]) -> Event:
        data = {"type": "content_block_start", "index": index, "content_block": block}
        return ("content_block_start", data)

    def stop(index: int) -> Event:
        return ("content_block_stop", {"type": "content_block_stop", "index": index})

    message: dict[str, Any] = {
        "id": "msg_chatcmpl-9",
        "type": "message",
        "role": "assistant",
        "model": "claude-alias",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }
    assert events == [
        ("message_start", {"type": "message_start", "message": message}),
        start(0, {"type": "text", "text": ""}),
        delta(0, {"type": "text_delta", "text": "Two "}),
        delta(0, {"type": "text_delta", "text": "cities."}),
        stop(0),
        start(1, {"type": "tool_use", "id": "call_a", "name": "w", "input": {}}),
        delta(1, {"type": "input_json_delta", "partial_json": '{"city":'}),
        delta(1, {"type": "input_json_delta", "partial_json": '"P"}'}),
        stop(1),
        start(2, {"type": "tool_use", "id": "call_b", "name": "w", "input": {}}),
        delta(2, {"type": "input_json_delta", "partial_json": "{}"}),
        stop(2),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {
                    "input_tokens": 30,
                    "output_tokens": 9,
                    "cache_read_input_tokens": 20,
                    "cache_creation_input_tokens": 0,
                },
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def test_stream_encoder_with_nothing_to_say() -> None:
    encoder = AnthropicStreamEncoder("m", message_id="msg_1")
    events = encoder.finish(Usage(3, 1))
    assert [name for name, _ in events] == ["message_start", "message_delta", "message_stop"]
    assert events[0][1]["message"]["id"] == "msg_1"
    assert events[1][1]["usage"]["input_tokens"] == 3


def test_errors_in_anthropic_shape() -> None:
    assert error_body(RateLimited("Too many requests"), 429) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Too many requests"},
    }
    upstream = UpstreamError("Provider timed out", provider="p", code="upstream_timeout")
    assert error_body(upstream, upstream.client_status)["error"]["type"] == "timeout_error"
    assert error_body(BrokleError("boom"), 500)["error"]["type"] == "api_error"
    assert error_body(BrokleError("busy"), 529)["error"]["type"] == "overloaded_error"
    assert error_body(InvalidInput("bad"), 400)["error"]["type"] == "invalid_request_error"
    event = error_event(BrokleError("gone"), 502)
    assert encode_event(event) == (
        b'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"gone"}}\n\n'
    )


def _sdk(handler: Any) -> anthropic.AsyncAnthropic:
    # The Anthropic SDK runs on httpx2, a fork of httpx with the same API.
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return anthropic.AsyncAnthropic(
        api_key="bk_test", base_url="http://gateway.test", http_client=client
    )


def _replay(events: list[Event]) -> Iterator[bytes]:
    for event in events:
        yield encode_event(event)


async def test_anthropic_sdk_reads_a_translated_stream_end_to_end(
    fake_upstream: FakeUpstream,
) -> None:
    """Anthropic SDK → to_internal → OpenAI upstream (fake) → encoder → Anthropic SDK."""
    fake_upstream.reply(
        text="Checking.",
        tool_calls=(ToolCall("weather", {"city": "Paris"}, id="call_7"),),
        usage=FakeUsage(prompt=40, completion=12, cached=16),
    )

    async def gateway(request: httpx2.Request) -> httpx2.Response:
        internal = to_internal(json.loads(request.content))
        async with httpx.AsyncClient() as client:
            config = ProviderConfig("up", "openai", "k", fake_upstream.openai_base_url)
            provider = build_provider(config, client)
            stream = provider.stream_chat(internal, "gpt-test", timeout=5)
            encoder = AnthropicStreamEncoder(internal["model"])
            events: list[Event] = []
            async for item in stream:
                events += encoder.feed(item)
            events += encoder.finish()
        body = b"".join(_replay(events))
        return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})

    client = _sdk(gateway)
    async with client.messages.stream(
        model="claude-alias",
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[{"name": "weather", "input_schema": SCHEMA}],
    ) as stream:
        message = await stream.get_final_message()

    assert fake_upstream.last().body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert message.model == "claude-alias"
    assert message.stop_reason == "tool_use"
    assert [block.model_dump(exclude_none=True) for block in message.content] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_7", "name": "weather", "input": {"city": "Paris"}},
    ]
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (24, 16)
    assert message.usage.output_tokens == 12


async def test_anthropic_sdk_reads_a_translated_message() -> None:
    response = {
        "id": "chatcmpl-2",
        "choices": [{"index": 0, "message": {"content": "Hi"}, "finish_reason": "length"}],
    }

    async def gateway(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=to_anthropic_message(response, Usage(5, 1), model="m"))

    message = await _sdk(gateway).messages.create(
        model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}]
    )
    assert (message.content[0].type, message.stop_reason) == ("text", "max_tokens")
    assert message.usage.input_tokens == 5
