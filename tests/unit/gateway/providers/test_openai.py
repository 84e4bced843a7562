"""OpenAI provider: pass-through chat, streams with forced usage, completions, embeddings."""

from __future__ import annotations

import pytest

from brokle_server.gateway.types import UnsupportedParameter, Usage
from tests.fakes import FakeUpstream, FakeUsage, Reply, ToolCall
from tests.unit.gateway.providers.conftest import MakeProvider

USER = {"role": "user", "content": "What is the weather in Paris?"}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_767_000_000,
        "model": "gpt-test",
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


async def test_chat_passes_the_body_through_with_the_target_model(
    make_provider: MakeProvider, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider("openai", options={"organization": "org-1", "header:X-Extra": "1"})
    body = {"model": "alias", "messages": [USER], "stream": False, "temperature": 0.2, "seed": 7}

    result = await provider.chat(body, "gpt-test", timeout=5)

    sent = fake_upstream.last("openai.chat")
    assert sent.body == {"model": "gpt-test", "messages": [USER], "temperature": 0.2, "seed": 7}
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.headers["openai-organization"] == "org-1"
    assert sent.headers["x-extra"] == "1"
    assert body["model"] == "alias"  # the caller's body is untouched
    assert result.response["choices"][0]["message"]["content"] == (
        "Echo: What is the weather in Paris?"
    )
    assert result.model == "gpt-test"
    assert result.usage == Usage(input_tokens=12, output_tokens=8)


async def test_chat_reads_cached_and_reasoning_tokens(
    make_provider: MakeProvider, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.reply(usage=FakeUsage(prompt=100, completion=40, cached=64, reasoning=30))

    result = await make_provider("openai").chat({"messages": [USER]}, "gpt-test", timeout=5)

    assert result.usage == Usage(100, 40, cached_tokens=64, reasoning_tokens=30)


async def test_stream_forces_usage_and_emits_it_as_the_last_chunk(
    make_provider: MakeProvider, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.reply(
        tool_calls=(ToolCall("get_weather", {"city": "Paris"}, id="call_1"),),
        usage=FakeUsage(prompt=30, completion=9, cached=10),
    )
    stream = make_provider("openai").stream_chat(
        {"messages": [USER], "tools": TOOLS, "stream": True}, "gpt-test", timeout=5
    )

    chunks = [c async for c in stream]

    sent = fake_upstream.last("openai.chat").body
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    head = {"index": 0, "id": "call_1", "type": "function"}
    expected_usage = {
        "prompt_tokens": 30,
        "completion_tokens": 9,
        "total_tokens": 39,
        "prompt_tokens_details": {"cached_tokens": 10, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }
    assert chunks == [
        chunk({"role": "assistant", "content": "", "refusal": None}),
        chunk({"tool_calls": [{**head, "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "Paris"}'}}]}),
        chunk({}, "tool_calls"),
        {**chunk({}), "choices": [], "usage": expected_usage},
    ]
    assert stream.usage == Usage(30, 9, cached_tokens=10)
    assert stream.finish_reason == "tool_calls"
    assert stream.completed


async def test_stream_keeps_the_clients_stream_options(
    make_provider: MakeProvider, fake_upstream: FakeUpstream
) -> None:
    body = {"messages": [USER], "stream_options": {"include_usage": False, "x": 1}}
    async with make_provider("openai").stream_chat(body, "gpt-test", timeout=5) as stream:
        [c async for c in stream]
    assert fake_upstream.last().body["stream_options"] == {"include_usage": True, "x": 1}


async def test_n_and_logprobs_pass_through(
    make_provider: MakeProvider, fake_upstream: FakeUpstream
) -> None:
    body = {"messages": [USER], "n": 2, "logprobs": True, "top_logprobs": 2}
    result = await make_provider("openai").chat(body, "gpt-test", timeout=5)

    choices = result.response["choices"]
    assert [c["index"] for c in choices] == [0, 1]
    assert choices[0]["logprobs"]["content"][0]["token"] == "Echo: "
    assert fake_upstream.last().body["top_logprobs"] == 2


async def test_openai_refuses_top_k(make_provider: MakeProvider) -> None:
    with pytest.raises(UnsupportedParameter) as caught:
        await make_provider("openai").chat({"messages": [USER], "top_k": 5}, "m", timeout=5)
    assert caught.value.param == "top_k"
    assert "test-openai" in caught.value.message


async def test_legacy_completion_plain_and_streamed(
    make_provider: MakeProvider, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider("openai")
    result = await provider.completion({"prompt": "Say hi"}, "davinci-test", timeout=5)
    assert result.response["choices"][0]["text"] == "Echo: Say hi"
    assert result.usage == Usage(12, 8)

    stream = provider.stream_completion({"prompt": "Say hi"}, "davinci-test", timeout=5)
    chunks = [c async for c in stream]
    assert "".join(c["choices"][0]["text"] for c in chunks[:-1]) == "Echo: Say hi"
    assert chunks[-1]["object"] == "text_completion"
    assert chunks[-1]["choices"] == []
    assert stream.usage == Usage(12, 8)
    assert fake_upstream.count("openai.completions") == 2


async def test_embeddings_and_models(
    make_provider: MakeProvider, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider("openai")
    result = await provider.embeddings(
        {"input": ["a", "b"], "dimensions": 4}, "embed-test", timeout=5
    )
    assert [len(d["embedding"]) for d in result.response["data"]] == [4, 4]
    assert result.usage == Usage(input_tokens=12)
    assert fake_upstream.last("openai.embeddings").body["model"] == "embed-test"

    assert await provider.list_models(timeout=5) == ["fake-model"]


async def test_usage_on_a_content_chunk_is_moved_to_the_final_usage_chunk(
    make_provider: MakeProvider, fake_upstream: FakeUpstream
) -> None:
    """Some compatible servers put usage on the finish chunk; the contract stays the same."""
    fake_upstream.reply(Reply(text="hi"))
    stream = make_provider("openai").stream_chat({"messages": [USER]}, "gpt-test", timeout=5)
    chunks = [c async for c in stream]
    assert all("usage" not in c for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 20
