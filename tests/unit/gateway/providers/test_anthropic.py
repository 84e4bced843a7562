"""Anthropic provider: request translation, responses, usage normalisation, streams."""

from __future__ import annotations

from typing import Any

import pytest

from brokle_server.errors import InvalidInput
from brokle_server.gateway.types import UnsupportedParameter, Usage
from tests.fakes import FakeUpstream, FakeUsage, Reply, ToolCall
from tests.unit.gateway.providers.conftest import MakeProvider

PNG = "iVBORw0KGgo="
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather by city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Weather here?", "cache_control": {"type": "ephemeral"}},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "image_url", "image_url": {"url": "https://example.test/a.jpg"}},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "toolu_2",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
    {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "25C"}]},
    {"role": "user", "content": "Thanks"},
]


async def test_request_translation(
    make_provider: MakeProvider, fake_upstream: FakeUpstream
) -> None:
    body = {
        "model": "alias",
        "messages": CONVERSATION,
        "tools": TOOLS,
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "stop": "END",
        "temperature": 0.5,
        "top_p": 0.9,
        "user": "u-1",
    }
    await make_provider("anthropic").chat(body, "claude-test", timeout=5)

    sent = fake_upstream.last("anthropic.messages")
    assert sent.headers["x-api-key"] == "sk-test"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.body == {
        "model": "claude-test",
        "max_tokens": 4096,
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use tools."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "Weather here?",
                        "cache_control": {"type": "ephemeral"},
                    },
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.test/a.jpg"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                    {
                        "type": "tool_use",
                        "id": "toolu_2",
                        "name": "get_weather",
                        "input": {"city": "Rome"},
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
                        "content": [{"type": "text", "text": "25C"}],
                    },
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
        "tools": [
            {
                "name": "get_weather",
                "description": "Weather by city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "stop_sequences": ["END"],
        "temperature": 0.5,
        "top_p": 0.9,
        "metadata": {"user_id": "u-1"},
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ({"type": "function", "function": {"name": "f"}}, {"type": "tool", "name": "f"}),
    ],
)
async def test_tool_choice(
    make_provider: MakeProvider, fake_upstream: FakeUpstream, choice: object, expected: object
) -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "tools": TOOLS, "tool_choice": choice}
    await make_provider("anthropic").chat(body, "claude-test", timeout=5)
    assert fake_upstream.last().body["tool_choice"] == expected


async def test_max_tokens_default_comes_from_options(
    make_provider: MakeProvider, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider("anthropic", options={"default_max_tokens": "512"})
    await provider.chat({"messages": [{"role": "user", "content": "x"}]}, "c", timeout=5)
    assert fake_upstream.last().body["max_tokens"] == 512
    await provider.chat(
        {"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 9}, "c", timeout=5
    )
    assert fake_upstream.last().body["max_tokens"] == 9


async def test_response_with_tool_calls_and_cache_usage(
    make_provider: MakeProvider, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.reply(
        text="Let me check.",
        tool_calls=(ToolCall("get_weather", {"city": "Paris"}, id="toolu_9"),),
        usage=FakeUsage(prompt=1000, completion=50, cached=600, cache_write=300, reasoning=20),
    )
    result = await make_provider("anthropic").chat(
        {"messages": [{"role": "user", "content": "x"}], "tools": TOOLS}, "claude-test", timeout=5
    )

    assert result.response["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Let me check.",
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "toolu_9",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ]
    # Anthropic said input_tokens=100 (without 600 read + 300 written); we count all 1000.
    assert result.usage == Usage(
        1000, 50, cached_tokens=600, cache_write_tokens=300, reasoning_tokens=20
    )
    assert result.response["usage"]["prompt_tokens"] == 1000
    assert result.response["usage"]["prompt_tokens_details"] == {
        "cached_tokens": 600,
        "cache_write_tokens": 300,
    }
    assert result.response["id"] == "msg_fake"


@pytest.mark.parametrize(
    ("finish", "expected"), [("length", "length"), ("content_filter", "content_filter")]
)
async def test_stop_reasons(
    make_provider: MakeProvider, fake_upstream: FakeUpstream, finish: str, expected: str
) -> None:
    fake_upstream.reply(Reply(text="cut", finish=finish))
    result = await make_provider("anthropic").chat(
        {"messages": [{"role": "user", "content": "x"}]}, "c", timeout=5
    )
    assert result.response["choices"][0]["finish_reason"] == expected


def _strip(chunks: list[dict[str, Any]]) -> list[Any]:
    return [(c["choices"], c.get("usage")) for c in chunks]


async def test_stream_maps_content_block_indexes_to_tool_call_indexes(
    make_provider: MakeProvider, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.reply(
        text="Checking both.",
        tool_calls=(
            ToolCall("get_weather", {"city": "Paris"}, id="toolu_a"),
            ToolCall("get_weather", {"city": "Rome"}, id="toolu_b"),
        ),
        usage=FakeUsage(prompt=50, completion=30, cached=20, cache_write=10),
    )
    stream = make_provider("anthropic").stream_chat(
        {"messages": [{"role": "user", "content": "x"}], "tools": TOOLS}, "claude-test", timeout=5
    )
    chunks = [c async for c in stream]

    assert fake_upstream.last().body["stream"] is True

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[Any]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    def head(index: int, call_id: str) -> list[Any]:
        function = {"name": "get_weather", "arguments": ""}
        call = {"index": index, "id": call_id, "type": "function", "function": function}
        return choice({"tool_calls": [call]})

    def args(index: int, text: str) -> list[Any]:
        return choice({"tool_calls": [{"index": index, "function": {"arguments": text}}]})

    usage = Usage(50, 30, cached_tokens=20, cache_write_tokens=10)
    assert _strip(chunks) == [
        (choice({"role": "assistant", "content": ""}), None),
        (choice({"content": "Checking "}), None),
        (choice({"content": "both."}), None),
        (head(0, "toolu_a"), None),  # content block 1 → tool call 0
        (args(0, '{"city":'), None),
        (args(0, ' "Paris"}'), None),
        (head(1, "toolu_b"), None),  # content block 2 → tool call 1
        (args(1, '{"city":'), None),
        (args(1, ' "Rome"}'), None),
        (choice({}, "tool_calls"), None),
        ([], usage.to_openai()),
    ]
    assert {c["id"] for c in chunks} == {"msg_fake"}
    assert {c["model"] for c in chunks} == {"claude-test"}
    assert stream.usage == usage
    assert stream.finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"n": 2}, "n"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"temperature": 1.5}, "temperature"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"reasoning_effort": "high"}, "reasoning_effort"),
    ],
)
async def test_unsupported_parameters_are_refused(
    make_provider: MakeProvider, fake_upstream: FakeUpstream, body: dict[str, Any], param: str
) -> None:
    provider = make_provider("anthropic")
    full = {"messages": [{"role": "user", "content": "x"}], **body}
    with pytest.raises(UnsupportedParameter) as caught:
        await provider.chat(full, "c", timeout=5)
    assert caught.value.param == param
    with pytest.raises(UnsupportedParameter):
        provider.stream_chat(full, "c", timeout=5)
    assert fake_upstream.count() == 0


async def test_harmless_defaults_are_accepted(make_provider: MakeProvider) -> None:
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "n": 1,
        "logprobs": False,
        "response_format": {"type": "text"},
        "stream": False,
    }
    result = await make_provider("anthropic").chat(body, "c", timeout=5)
    assert result.response["choices"][0]["message"]["content"] == "Echo: x"


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "user", "content": 5}],
        [{"role": "user"}, "oops"],
        [
            {
                "role": "assistant",
                "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": "{"}}],
            }
        ],
        [{"role": "tool", "content": "x"}],
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:x,abc"}}]}],
    ],
)
async def test_malformed_messages_are_a_400(
    make_provider: MakeProvider, messages: list[Any]
) -> None:
    with pytest.raises(InvalidInput):
        await make_provider("anthropic").chat({"messages": messages}, "c", timeout=5)


async def test_list_models(make_provider: MakeProvider) -> None:
    assert await make_provider("anthropic").list_models(timeout=5) == ["fake-model"]
