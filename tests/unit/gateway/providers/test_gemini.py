"""Gemini provider: request translation, whole function calls in streams, usage, embeddings."""

from __future__ import annotations

import array
import base64
from typing import Any

import pytest

from brokle_server.errors import InvalidInput
from brokle_server.gateway.types import UnsupportedParameter, Usage
from tests.fakes import FakeUpstream, FakeUsage, ToolCall
from tests.unit.gateway.providers.conftest import MakeProvider

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather", "parameters": SCHEMA},
    }
]
CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Weather?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "image_url", "image_url": {"url": "https://example.test/photo.png?x=1"}},
        ],
    },
    {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 18}'},
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
]


async def test_request_translation(
    make_provider: MakeProvider, fake_upstream: FakeUpstream
) -> None:
    body = {
        "messages": CONVERSATION,
        "tools": TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "temperature": 0.3,
        "top_p": 0.8,
        "max_tokens": 100,
        "stop": ["END"],
        "n": 2,
        "seed": 3,
        "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": SCHEMA}},
    }
    await make_provider("gemini", api_key="g-key").chat(body, "gemini-test", timeout=5)

    sent = fake_upstream.last("gemini.generate")
    assert sent.path == "/v1beta/models/gemini-test:generateContent"
    assert sent.headers["x-goog-api-key"] == "g-key"
    assert sent.body == {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "Weather?"},
                    {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
                    {
                        "fileData": {
                            "mimeType": "image/png",
                            "fileUri": "https://example.test/photo.png?x=1",
                        }
                    },
                ],
            },
            {
                "role": "model",
                "parts": [
                    {"text": "Checking."},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"temp": 18}}},
                    {"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}},
                ],
            },
        ],
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Weather",
                        "parametersJsonSchema": SCHEMA,
                    }
                ]
            }
        ],
        "toolConfig": {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
        },
        "generationConfig": {
            "temperature": 0.3,
            "topP": 0.8,
            "candidateCount": 2,
            "seed": 3,
            "maxOutputTokens": 100,
            "stopSequences": ["END"],
            "responseMimeType": "application/json",
            "responseJsonSchema": SCHEMA,
        },
    }


async def test_response_with_function_calls_and_usage(
    make_provider: MakeProvider, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.reply(
        tool_calls=(ToolCall("get_weather", {"city": "Paris"}),),
        usage=FakeUsage(prompt=200, completion=70, cached=150, reasoning=40),
    )
    result = await make_provider("gemini").chat(
        {"messages": [{"role": "user", "content": "x"}], "tools": TOOLS}, "gemini-test", timeout=5
    )

    choice = result.response["choices"][0]
    calls = choice["message"]["tool_calls"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert [c["function"] for c in calls] == [
        {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    ]
    assert calls[0]["id"].startswith("call_")
    # promptTokenCount includes the cached 150; thoughts (40) are output tokens too.
    assert result.usage == Usage(200, 70, cached_tokens=150, reasoning_tokens=40)
    assert result.model == "gemini-test"


async def test_n_maps_to_candidates(make_provider: MakeProvider) -> None:
    result = await make_provider("gemini").chat(
        {"messages": [{"role": "user", "content": "hi"}], "n": 2}, "gemini-test", timeout=5
    )
    assert [(c["index"], c["message"]["content"]) for c in result.response["choices"]] == [
        (0, "Echo: hi"),
        (1, "Echo: hi"),
    ]


async def test_stream_whole_function_calls_and_last_usage(
    make_provider: MakeProvider, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.reply(
        text="Two cities.",
        tool_calls=(
            ToolCall("get_weather", {"city": "Paris"}),
            ToolCall("get_weather", {"city": "Rome"}),
        ),
        usage=FakeUsage(prompt=80, completion=25, cached=64, reasoning=10),
    )
    stream = make_provider("gemini").stream_chat(
        {"messages": [{"role": "user", "content": "x"}], "tools": TOOLS}, "gemini-test", timeout=5
    )
    chunks = [c async for c in stream]

    sent = fake_upstream.last("gemini.stream")
    assert sent.path == "/v1beta/models/gemini-test:streamGenerateContent"
    assert sent.query == {"alt": "sse"}
    deltas = [(c["choices"][0]["delta"], c["choices"][0]["finish_reason"]) for c in chunks[:-1]]
    for delta, _ in deltas:
        for call in delta.get("tool_calls", []):
            assert call.pop("id").startswith("call_")
    assert deltas == [
        ({"role": "assistant", "content": "Two "}, None),
        ({"content": "cities."}, None),
        (
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ]
            },
            None,
        ),
        (
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    }
                ]
            },
            None,
        ),
        ({}, "tool_calls"),
    ]
    usage = Usage(80, 25, cached_tokens=64, reasoning_tokens=10)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == usage.to_openai()
    assert stream.usage == usage


async def test_unknown_tool_call_id_and_unsupported_parameters(make_provider: MakeProvider) -> None:
    provider = make_provider("gemini")
    orphan = [{"role": "tool", "tool_call_id": "nope", "content": "x"}]
    with pytest.raises(InvalidInput):
        await provider.chat({"messages": orphan}, "g", timeout=5)
    user = [{"role": "user", "content": "x"}]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"logprobs": True}, "logprobs"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"logit_bias": {"1": 2}}, "logit_bias"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages[].content[].type=input_audio",
        ),
    ]
    for extra, param in cases:
        with pytest.raises(UnsupportedParameter) as caught:
            await provider.chat({"messages": user, **extra}, "g", timeout=5)
        assert caught.value.param == param


@pytest.mark.parametrize("encoding", ["float", "base64"])
async def test_embeddings(
    make_provider: MakeProvider, fake_upstream: FakeUpstream, encoding: str
) -> None:
    result = await make_provider("gemini").embeddings(
        {"input": ["a", "b"], "dimensions": 3, "encoding_format": encoding}, "embed-g", timeout=5
    )

    sent = fake_upstream.last("gemini.embed")
    assert sent.path == "/v1beta/models/embed-g:batchEmbedContents"
    assert sent.body["requests"][1] == {
        "model": "models/embed-g",
        "outputDimensionality": 3,
        "content": {"parts": [{"text": "b"}]},
    }
    vectors = [d["embedding"] for d in result.response["data"]]
    if encoding == "base64":
        vectors = [list(array.array("f", base64.b64decode(v))) for v in vectors]
    assert [len(v) for v in vectors] == [3, 3]
    assert vectors[0] == pytest.approx(
        (
            await make_provider("gemini").embeddings(
                {"input": "a", "dimensions": 3}, "e", timeout=5
            )
        ).response["data"][0]["embedding"],
        rel=1e-6,
    )


async def test_list_models(make_provider: MakeProvider) -> None:
    assert await make_provider("gemini").list_models(timeout=5) == ["fake-model"]
