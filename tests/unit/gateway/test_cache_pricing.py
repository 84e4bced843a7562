"""Cache keys, the in-process cache, and pricing from the bundled price data."""

from __future__ import annotations

import pytest

from brokle_server.gateway.cache import (
    MemoryCache,
    conversation_prefix_key,
    last_user_text,
    request_key,
)
from brokle_server.gateway.pricing import PRICE_LIBRARY_VERSION, UNPRICED, Price, Pricer
from brokle_server.gateway.types import Usage

BODY = {
    "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    "temperature": 0,
}


def test_request_key_ignores_transport_fields_only() -> None:
    base = request_key("p", "chat", "gpt-4o", BODY)
    assert base == request_key("p", "chat", "gpt-4o", BODY | {"stream": True, "user": "u1"})
    assert base != request_key("p2", "chat", "gpt-4o", BODY)
    assert base != request_key("p", "chat", "gpt-4o", BODY | {"temperature": 1})
    assert base != request_key("p", "chat", "gpt-4o-mini", BODY)


def test_semantic_prefix_is_the_conversation_before_the_last_user_turn() -> None:
    other_question = BODY | {
        "messages": [*BODY["messages"][:-1], {"role": "user", "content": "yo"}]
    }
    assert conversation_prefix_key("p", "m", BODY) == conversation_prefix_key(
        "p", "m", other_question
    )
    different_system = BODY | {
        "messages": [{"role": "system", "content": "x"}, BODY["messages"][1]]
    }
    assert conversation_prefix_key("p", "m", BODY) != conversation_prefix_key(
        "p", "m", different_system
    )
    assert last_user_text(BODY) == "hi"
    assert (
        conversation_prefix_key("p", "m", {"messages": [{"role": "assistant", "content": "x"}]})
        is None
    )


async def test_memory_cache_lru_ttl_and_similarity(monkeypatch: pytest.MonkeyPatch) -> None:
    import brokle_server.gateway.cache as cache_module

    now = [100.0]
    monkeypatch.setattr(cache_module.time, "monotonic", lambda: now[0])
    cache = MemoryCache(max_entries=2)
    await cache.set("a", {"id": "a"}, ttl_s=10)
    await cache.set("b", {"id": "b"}, ttl_s=10)
    assert await cache.get("a") == {"id": "a"}
    await cache.set("c", {"id": "c"}, ttl_s=10)  # evicts b, the least recently used
    assert await cache.get("b") is None and await cache.get("a") == {"id": "a"}
    now[0] = 111
    assert await cache.get("a") is None

    await cache.add_vector("conv", [1.0, 0.0], {"id": "x"}, ttl_s=100)
    assert await cache.similar("conv", [0.99, 0.05], threshold=0.95) == {"id": "x"}
    assert await cache.similar("conv", [0.0, 1.0], threshold=0.95) is None
    assert await cache.similar("other", [1.0, 0.0], threshold=0.5) is None


def test_pricing_from_library_and_overrides() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=100_000, cached_tokens=400_000)
    cost = Pricer().cost("openai", "gpt-4o-mini", usage)
    # 600k fresh input at $0.15/M + 400k cached at $0.075/M + 100k output at $0.60/M
    assert cost.input == pytest.approx(0.09 + 0.03)
    assert cost.output == pytest.approx(0.06)
    assert cost.version == PRICE_LIBRARY_VERSION
    override = Pricer({("openai", "gpt-4o-mini"): Price(input=1.0, output=2.0)})
    assert override.cost("openai", "gpt-4o-mini", usage).total == pytest.approx(1.0 + 0.2)
    assert override.cost("openai", "gpt-4o-mini", usage).version == "override"
    unknown = Pricer().cost("openai", "model-that-does-not-exist", usage)
    assert (unknown.total, unknown.version) == (0.0, UNPRICED)
