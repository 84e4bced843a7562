"""Providers under test talk real HTTP to one fake upstream server on loopback."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx
import pytest

from brokle_server.gateway.providers import Provider, build_provider
from brokle_server.gateway.types import ProviderConfig
from tests.fakes import FakeUpstream
from tests.fakes.fixtures import fake_upstream, fake_upstream_server, http_client

__all__ = ["fake_upstream", "fake_upstream_server", "http_client"]

MakeProvider = Callable[..., Provider]
_NATIVE_BASE = {"anthropic", "gemini", "azure"}


@pytest.fixture
def make_provider(fake_upstream: FakeUpstream, http_client: httpx.AsyncClient) -> MakeProvider:
    def make(
        kind: str,
        *,
        api_key: str = "sk-test",
        base_url: str | None = None,
        options: Mapping[str, str] | None = None,
    ) -> Provider:
        if base_url is None:
            native = kind in _NATIVE_BASE
            base_url = fake_upstream.base_url if native else fake_upstream.openai_base_url
        config = ProviderConfig(f"test-{kind}", kind, api_key, base_url, dict(options or {}))
        return build_provider(config, http_client)

    return make
