"""Error mapping for every provider: statuses, retry hints, timeouts and broken streams."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest

from brokle_server.gateway.providers import build_provider
from brokle_server.gateway.types import ProviderConfig, UpstreamError, Usage
from tests.fakes import FakeUpstream, FakeUsage
from tests.unit.gateway.providers.conftest import MakeProvider

KINDS = ["openai", "azure", "anthropic", "gemini"]
BODY: dict[str, Any] = {"messages": [{"role": "user", "content": "one two three four five"}]}
RATE_LIMIT_CODES = {
    "openai": "rate_limit_exceeded",
    "azure": "rate_limit_exceeded",
    "anthropic": "rate_limit_error",
    "gemini": "RESOURCE_EXHAUSTED",
}
STREAM_ERROR_CODES = {
    "openai": "server_error",
    "azure": "server_error",
    "anthropic": "overloaded_error",
    "gemini": "UNAVAILABLE",
}
# Events before the first content chunk: OpenAI's role chunk; Anthropic's message_start and
# ping and the empty text block start; Gemini sends content in its first event.
PREAMBLE = {"openai": 1, "azure": 1, "anthropic": 3, "gemini": 0}


async def drain(stream: Any, into: list[dict[str, Any]] | None = None) -> None:
    async for chunk in stream:
        if into is not None:
            into.append(chunk)


async def chat_error(provider: Any, timeout: float = 5) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        await provider.chat(BODY, "m", timeout=timeout)
    return caught.value


@pytest.mark.parametrize("kind", KINDS)
async def test_rate_limit_is_retryable_with_retry_after(
    make_provider: MakeProvider, fake_upstream: FakeUpstream, kind: str
) -> None:
    fake_upstream.fail(status=429, retry_after=2, message="slow down")
    error = await chat_error(make_provider(kind))
    assert (error.status, error.retryable, error.retry_after) == (429, True, 2.0)
    assert error.code == "upstream_rate_limited"
    assert error.upstream_code == RATE_LIMIT_CODES[kind]
    assert error.client_status == 429
    assert "slow down" in error.message and f"test-{kind}" in error.message
    assert not error.mid_stream


async def test_retry_after_ms_wins(
    make_provider: MakeProvider, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.fail(status=429, retry_after=3, retry_after_ms=1500)
    assert (await chat_error(make_provider("openai"))).retry_after == 1.5


async def test_gemini_retry_info(make_provider: MakeProvider, fake_upstream: FakeUpstream) -> None:
    fake_upstream.fail(status=429)
    assert (await chat_error(make_provider("gemini"))).retry_after is None
    fake_upstream.reset()
    fake_upstream.fail(status=429, retry_after=7)
    fake_upstream.fail(status=429, retry_after=7)
    error = await chat_error(make_provider("gemini"))
    assert error.retry_after == 7.0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("status", "retryable", "code", "client_status"),
    [
        (400, False, "upstream_rejected", 400),
        (401, False, "upstream_auth_failed", 502),
        (404, False, "upstream_rejected", 404),
        (500, True, "upstream_unavailable", 502),
        (503, True, "upstream_unavailable", 502),
        (529, True, "upstream_unavailable", 502),
    ],
)
async def test_status_mapping(
    make_provider: MakeProvider,
    fake_upstream: FakeUpstream,
    kind: str,
    status: int,
    retryable: bool,
    code: str,
    client_status: int,
) -> None:
    fake_upstream.fail(status=status)
    error = await chat_error(make_provider(kind))
    assert (error.status, error.retryable, error.code) == (status, retryable, code)
    assert error.client_status == client_status


@pytest.mark.parametrize("kind", KINDS)
async def test_hang_times_out_retryably(
    make_provider: MakeProvider, fake_upstream: FakeUpstream, kind: str
) -> None:
    fake_upstream.fail(hang=True, hang_for=3)
    error = await chat_error(make_provider(kind), timeout=0.3)
    assert (error.code, error.status, error.retryable, error.client_status) == (
        "upstream_timeout",
        0,
        True,
        504,
    )


async def test_latency_is_injected(
    make_provider: MakeProvider, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.fail(latency=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await make_provider("openai").chat(BODY, "m", timeout=5)
    assert loop.time() - started >= 0.3


async def test_unreachable_upstream(http_client: httpx.AsyncClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = build_provider(
        ProviderConfig("down", "openai", "k", f"http://127.0.0.1:{port}/v1"), http_client
    )
    error = await chat_error(provider)
    assert (error.code, error.retryable, error.client_status) == ("upstream_unreachable", True, 502)
    stream = provider.stream_chat(BODY, "m", timeout=5)
    with pytest.raises(UpstreamError) as caught:
        await stream.open()
    assert caught.value.retryable and not caught.value.mid_stream


@pytest.mark.parametrize("kind", KINDS)
async def test_stream_refused_at_start_is_retryable(
    make_provider: MakeProvider, fake_upstream: FakeUpstream, kind: str
) -> None:
    fake_upstream.fail(status=503, retry_after=1)
    stream = make_provider(kind).stream_chat(BODY, "m", timeout=5)
    with pytest.raises(UpstreamError) as caught:
        async for _ in stream:  # iterating opens implicitly
            pass
    error = caught.value
    assert (error.status, error.retryable, error.mid_stream, error.retry_after) == (
        503,
        True,
        False,
        1.0,
    )


@pytest.mark.parametrize("kind", KINDS)
async def test_connection_lost_before_content_is_retryable(
    make_provider: MakeProvider, fake_upstream: FakeUpstream, kind: str
) -> None:
    fake_upstream.fail(close_after=PREAMBLE[kind])
    stream = make_provider(kind).stream_chat(BODY, "m", timeout=5)
    with pytest.raises(UpstreamError) as caught:
        await stream.open()
    assert caught.value.retryable and not caught.value.mid_stream


@pytest.mark.parametrize("kind", KINDS)
async def test_connection_lost_mid_stream_is_final(
    make_provider: MakeProvider, fake_upstream: FakeUpstream, kind: str
) -> None:
    fake_upstream.reply(usage=FakeUsage(prompt=40, completion=9, cached=8))
    fake_upstream.fail(close_after=PREAMBLE[kind] + 2)
    stream = make_provider(kind).stream_chat(BODY, "m", timeout=5)
    await stream.open()
    received: list[dict[str, Any]] = []
    with pytest.raises(UpstreamError) as caught:
        await drain(stream, received)
    error = caught.value
    assert (error.mid_stream, error.retryable, error.code) == (True, False, "upstream_stream_error")
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in received) == "Echo: one "
    assert not stream.completed
    if kind == "anthropic":  # message_start already reported the input side
        assert stream.usage == Usage(40, 1, cached_tokens=8)
    if kind == "gemini":  # every chunk repeats running usage
        assert stream.usage is not None and stream.usage.input_tokens == 40


@pytest.mark.parametrize("kind", KINDS)
async def test_error_event_mid_stream(
    make_provider: MakeProvider, fake_upstream: FakeUpstream, kind: str
) -> None:
    fake_upstream.fail(error_after=PREAMBLE[kind] + 2, message="overloaded now")
    stream = make_provider(kind).stream_chat(BODY, "m", timeout=5)
    await stream.open()
    with pytest.raises(UpstreamError) as caught:
        async for _ in stream:
            pass
    error = caught.value
    assert (error.mid_stream, error.retryable) == (True, False)
    assert error.upstream_code == STREAM_ERROR_CODES[kind]
    assert "overloaded now" in error.message


async def test_error_event_before_content_can_fall_back(
    make_provider: MakeProvider, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.fail(error_after=2, error_type="overloaded_error")
    stream = make_provider("anthropic").stream_chat(BODY, "m", timeout=5)
    with pytest.raises(UpstreamError) as caught:
        await stream.open()
    assert (caught.value.retryable, caught.value.mid_stream) == (True, False)
    assert caught.value.upstream_code == "overloaded_error"


@pytest.mark.parametrize("kind", KINDS)
async def test_stalled_stream_times_out(
    make_provider: MakeProvider, fake_upstream: FakeUpstream, kind: str
) -> None:
    fake_upstream.fail(chunk_delay=1.0)
    stream = make_provider(kind).stream_chat(BODY, "m", timeout=0.3)
    with pytest.raises(UpstreamError) as caught:
        async for _ in stream:
            pass
    assert caught.value.code == "upstream_timeout"


async def test_closing_a_stream_early_releases_the_upstream(
    make_provider: MakeProvider, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.fail(chunk_delay=0.05)
    async with make_provider("openai").stream_chat(BODY, "m", timeout=5) as stream:
        await anext(stream)
    for _ in range(100):
        if fake_upstream.in_flight == 0:
            break
        await asyncio.sleep(0.02)
    assert fake_upstream.in_flight == 0
    assert not stream.completed


def _mock(handler: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_truncated_stream_without_end_marker() -> None:
    chunk = b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
    async with _mock(lambda request: httpx.Response(200, content=chunk)) as client:
        provider = build_provider(ProviderConfig("p", "openai", "k"), client)
        stream = provider.stream_chat(BODY, "m", timeout=5)
        await stream.open()
        assert (await anext(stream))["choices"][0]["delta"] == {"content": "hi"}
        with pytest.raises(UpstreamError) as caught:
            await anext(stream)
    assert (caught.value.code, caught.value.mid_stream) == ("upstream_stream_error", True)


@pytest.mark.parametrize("content", [b"<html>oops</html>", b"[1, 2]"])
async def test_unreadable_bodies_are_retryable(content: bytes) -> None:
    async with _mock(lambda request: httpx.Response(200, content=content)) as client:
        provider = build_provider(ProviderConfig("p", "openai", "k"), client)
        error = await chat_error(provider)
    assert (error.code, error.retryable) == ("upstream_bad_response", True)


async def test_unreadable_anthropic_message_is_an_upstream_error() -> None:
    async with _mock(
        lambda request: httpx.Response(200, json={"content": [{"type": "tool_use"}]})
    ) as client:
        provider = build_provider(ProviderConfig("p", "anthropic", "k"), client)
        error = await chat_error(provider)
    assert error.code == "upstream_bad_response"


async def test_unreadable_stream_event() -> None:
    content = b"event: message_start\ndata: not json\n\n"
    async with _mock(lambda request: httpx.Response(200, content=content)) as client:
        provider = build_provider(ProviderConfig("p", "anthropic", "k"), client)
        with pytest.raises(UpstreamError) as caught:
            await provider.stream_chat(BODY, "m", timeout=5).open()
    assert (caught.value.code, caught.value.retryable) == ("upstream_bad_response", True)
