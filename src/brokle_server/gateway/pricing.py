"""Cost of a call from the provider's own usage numbers.

Prices come from the maintained ``genai-prices`` snapshot bundled with the package (never
updated at run time), or from a project's own override; every priced call records which
(``price_version``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version

from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from brokle_server.gateway.types import Usage

PRICE_LIBRARY_VERSION = f"genai-prices-{version('genai-prices')}"
UNPRICED = "unpriced"

# Our provider kinds -> the library's provider ids (where they differ).
_PROVIDER_IDS = {"gemini": "google", "azure": "azure", "xai": "x-ai", "together": "together"}


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None


@dataclass(frozen=True, slots=True)
class Cost:
    total: float
    input: float
    output: float
    version: str


class Pricer:
    def __init__(self, overrides: dict[tuple[str, str], Price] | None = None) -> None:
        self._overrides = overrides or {}

    def cost(self, provider: str, model: str, usage: Usage) -> Cost:
        override = self._overrides.get((provider, model))
        if override is not None:
            return _cost_from(override, usage, "override")
        price = library_price(provider, model)
        if price is None:
            return Cost(0.0, 0.0, 0.0, UNPRICED)
        return _cost_from(price, usage, PRICE_LIBRARY_VERSION)

    def price(self, provider: str, model: str) -> Price | None:
        return self._overrides.get((provider, model)) or library_price(provider, model)


def _cost_from(price: Price, usage: Usage, version_tag: str) -> Cost:
    # input_tokens include cache reads and cache writes, each with its own rate.
    cached = min(usage.cached_tokens, usage.input_tokens)
    written = min(usage.cache_write_tokens, usage.input_tokens - cached)
    fresh = usage.input_tokens - cached - written
    cached_rate = price.cached_input if price.cached_input is not None else price.input
    write_rate = price.cache_write if price.cache_write is not None else price.input
    input_cost = (fresh * price.input + cached * cached_rate + written * write_rate) / 1e6
    output_cost = usage.output_tokens * price.output / 1e6
    return Cost(input_cost + output_cost, input_cost, output_cost, version_tag)


@lru_cache(maxsize=4096)
def library_price(provider: str, model: str) -> Price | None:
    """Per-million prices from the bundled snapshot, probed with a million tokens each."""
    provider_id = _PROVIDER_IDS.get(provider, provider)
    try:
        full = calc_price(
            PriceUsage(input_tokens=1_000_000, output_tokens=1_000_000),
            model_ref=model,
            provider_id=provider_id,
        )
        cached = calc_price(
            PriceUsage(input_tokens=1_000_000, cache_read_tokens=1_000_000),
            model_ref=model,
            provider_id=provider_id,
        )
        written = calc_price(
            PriceUsage(input_tokens=1_000_000, cache_write_tokens=1_000_000),
            model_ref=model,
            provider_id=provider_id,
        )
    except LookupError:
        return None
    except Exception:  # the library raises its own errors for unknown models/providers
        return None
    return Price(
        input=float(full.input_price),
        output=float(full.output_price),
        cached_input=float(cached.input_price),
        cache_write=float(written.input_price),
    )
