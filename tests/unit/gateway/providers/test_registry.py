"""The registry, OpenAI-compatible services and Azure OpenAI."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from brokle_server.errors import ConfigurationError, InvalidInput
from brokle_server.gateway.providers import KINDS, build_provider, capabilities
from brokle_server.gateway.providers.compat import COMPAT_BY_ID, CompatSpec
from brokle_server.gateway.providers.openai import OpenAIProvider
from brokle_server.gateway.types import (
    ProviderConfig,
    UnsupportedEndpoint,
    UnsupportedParameter,
    Usage,
)
from tests.fakes import FakeUpstream
from tests.unit.gateway.providers.conftest import MakeProvider

USER = {"role": "user", "content": "hi"}
REQUIRED = {
    "groq",
    "together",
    "fireworks",
    "deepseek",
    "mistral",
    "openrouter",
    "xai",
    "perplexity",
    "ollama",
    "vllm",
    "lmstudio",
}


def test_known_kinds() -> None:
    assert {"openai", "azure", "anthropic", "gemini"} | REQUIRED <= set(KINDS)
    for kind in REQUIRED:
        assert COMPAT_BY_ID[kind].base_url
    assert capabilities("gemini").embeddings
    assert not capabilities("anthropic").logprobs
    assert not capabilities("ollama").requires_api_key
    with pytest.raises(InvalidInput, match="Unknown provider kind 'nope'"):
        capabilities("nope")


async def test_build_provider_refusals(http_client: httpx.AsyncClient) -> None:
    with pytest.raises(InvalidInput):
        build_provider(ProviderConfig("p", "nope"), http_client)
    with pytest.raises(ConfigurationError):
        build_provider(ProviderConfig("p", "azure", "k"), http_client)
    with pytest.raises(ConfigurationError):
        build_provider(ProviderConfig("p", "openai-compatible"), http_client)


def test_config_repr_hides_the_key() -> None:
    assert "secret" not in repr(ProviderConfig("p", "openai", "secret"))


@pytest.mark.parametrize("kind", sorted(REQUIRED))
async def test_every_compat_service_chats_and_streams(
    make_provider: MakeProvider, fake_upstream: FakeUpstream, kind: str
) -> None:
    provider = make_provider(kind)
    result = await provider.chat({"messages": [USER]}, "m", timeout=5)
    assert result.response["choices"][0]["message"]["content"] == "Echo: hi"
    stream = provider.stream_chat({"messages": [USER]}, "m", timeout=5)
    chunks = [c async for c in stream]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1]) == "Echo: hi"
    assert stream.usage == Usage(12, 8)
    assert fake_upstream.last().headers["authorization"] == "Bearer sk-test"


async def test_local_servers_send_no_auth_without_a_key(
    make_provider: MakeProvider, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.require_auth = False
    await make_provider("ollama", api_key="").chat({"messages": [USER]}, "llama", timeout=5)
    assert "authorization" not in fake_upstream.last().headers


@pytest.mark.parametrize(
    ("kind", "extra", "param"),
    [
        ("groq", {"logprobs": True}, "logprobs"),
        ("groq", {"n": 2}, "n"),
        ("groq", {"logit_bias": {"1": 1}}, "logit_bias"),
        ("perplexity", {"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ("deepseek", {"top_k": 3}, "top_k"),
    ],
)
async def test_compat_quirks_are_refused(
    make_provider: MakeProvider, kind: str, extra: dict[str, object], param: str
) -> None:
    with pytest.raises(UnsupportedParameter) as caught:
        await make_provider(kind).chat({"messages": [USER], **extra}, "m", timeout=5)
    assert caught.value.param == param
    assert caught.value.details == {"param": param, "provider": f"test-{kind}"}


async def test_top_k_passes_where_supported(
    make_provider: MakeProvider, fake_upstream: FakeUpstream
) -> None:
    await make_provider("vllm").chat({"messages": [USER], "top_k": 3}, "m", timeout=5)
    assert fake_upstream.last().body["top_k"] == 3


async def test_missing_endpoints_are_refused(make_provider: MakeProvider) -> None:
    with pytest.raises(UnsupportedEndpoint):
        await make_provider("groq").embeddings({"input": "x"}, "m", timeout=5)
    with pytest.raises(UnsupportedEndpoint):
        await make_provider("anthropic").embeddings({"input": "x"}, "m", timeout=5)
    with pytest.raises(UnsupportedEndpoint):
        await make_provider("gemini").completion({"prompt": "x"}, "m", timeout=5)
    with pytest.raises(UnsupportedEndpoint):
        make_provider("anthropic").stream_completion({"prompt": "x"}, "m", timeout=5)


async def test_azure_uses_deployment_urls_and_the_api_key_header(
    make_provider: MakeProvider, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider("azure", api_key="az-key", options={"api_version": "2025-01-01"})
    result = await provider.chat({"model": "alias", "messages": [USER]}, "my-gpt", timeout=5)

    sent = fake_upstream.last("azure.chat")
    assert sent.path == "/openai/deployments/my-gpt/chat/completions"
    assert sent.query == {"api-version": "2025-01-01"}
    assert sent.headers["api-key"] == "az-key"
    assert "authorization" not in sent.headers
    assert "model" not in sent.body
    assert result.usage == Usage(12, 8)

    stream = provider.stream_chat({"messages": [USER]}, "my-gpt", timeout=5)
    assert [c async for c in stream][-1]["usage"]["total_tokens"] == 20
    assert fake_upstream.last("azure.chat").body["stream_options"] == {"include_usage": True}

    embedded = await provider.embeddings({"input": "x"}, "my-embed", timeout=5)
    assert len(embedded.response["data"]) == 1
    assert fake_upstream.last().path == "/openai/deployments/my-embed/embeddings"
    with pytest.raises(UnsupportedEndpoint):
        await provider.list_models(timeout=5)


async def test_a_service_without_stream_options_gets_none(
    fake_upstream: FakeUpstream, http_client: httpx.AsyncClient
) -> None:
    spec = CompatSpec(id="legacy", label="Legacy", base_url=fake_upstream.openai_base_url)
    provider = OpenAIProvider(
        ProviderConfig("legacy", "legacy", "k"), http_client, replace(spec, stream_options=False)
    )
    body = {"messages": [USER], "stream_options": {"include_usage": True}}
    stream = provider.stream_chat(body, "m", timeout=5)
    chunks = [c async for c in stream]
    assert "stream_options" not in fake_upstream.last().body
    assert stream.usage is None  # the upstream sent none; the gateway must estimate
    assert all(c["choices"] for c in chunks)
