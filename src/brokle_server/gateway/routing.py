"""Choosing upstream targets: strategies, latency averages, circuit breakers, retry delays.

A request's model resolves to a :class:`RoutePlan`; :meth:`Router.order` turns it into the
sequence of targets to try. Health is per process (each instance learns from its own calls),
keyed by (project, provider credential, model).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from brokle_server.catalog.gateway_models import Strategy


@dataclass(frozen=True, slots=True)
class Target:
    provider: str  # the credential's name in the project
    model: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class RoutePlan:
    alias: str
    strategy: Strategy
    targets: tuple[Target, ...]
    retries: int = 2
    timeout_s: float = 60.0
    cache_ttl_s: int | None = None
    semantic_threshold: float | None = None
    semantic_embeddings: str | None = None
    route_id: str | None = None


@dataclass(slots=True)
class _Health:
    latency_ema: float | None = None
    failures: int = 0
    opened_at: float | None = None
    trial_in_flight: bool = False


@dataclass(slots=True)
class Router:
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0
    ema_alpha: float = 0.2
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)
    _health: dict[tuple[str, str, str], _Health] = field(default_factory=dict)

    def _get(self, key: tuple[str, str, str]) -> _Health:
        health = self._health.get(key)
        if health is None:
            health = self._health[key] = _Health()
        return health

    def order(
        self,
        project: str,
        plan: RoutePlan,
        price_per_mtok: Callable[[Target], float] | None = None,
    ) -> list[Target]:
        """Targets to try, best first; those behind an open breaker are left out unless
        every target is, in which case the one that failed longest ago gets a trial."""
        targets = list(plan.targets)
        if plan.strategy is Strategy.WEIGHTED:
            targets = self._weighted_order(targets)
        elif plan.strategy is Strategy.LOWEST_LATENCY:
            # Unmeasured targets first, so every target gets measured.
            targets.sort(key=lambda t: self._get((project, t.provider, t.model)).latency_ema or 0)
        elif plan.strategy is Strategy.LOWEST_COST and price_per_mtok is not None:
            targets.sort(key=price_per_mtok)
        allowed = [t for t in targets if self.available(project, t)]
        if allowed:
            return allowed
        oldest = min(
            targets, key=lambda t: self._get((project, t.provider, t.model)).opened_at or 0.0
        )
        return [oldest]

    def _weighted_order(self, targets: Sequence[Target]) -> list[Target]:
        remaining = list(targets)
        ordered: list[Target] = []
        while remaining:
            pick = self.rng.choices(remaining, weights=[t.weight for t in remaining])[0]
            ordered.append(pick)
            remaining.remove(pick)
        return ordered

    def available(self, project: str, target: Target) -> bool:
        health = self._get((project, target.provider, target.model))
        if health.opened_at is None:
            return True
        if self.clock() - health.opened_at < self.breaker_cooldown_s:
            return False
        # Half-open: one trial at a time after the cooldown.
        return not health.trial_in_flight

    def started(self, project: str, target: Target) -> None:
        health = self._get((project, target.provider, target.model))
        if health.opened_at is not None:
            health.trial_in_flight = True

    def succeeded(self, project: str, target: Target, latency_s: float) -> None:
        health = self._get((project, target.provider, target.model))
        health.failures = 0
        health.opened_at = None
        health.trial_in_flight = False
        health.latency_ema = (
            latency_s
            if health.latency_ema is None
            else self.ema_alpha * latency_s + (1 - self.ema_alpha) * health.latency_ema
        )

    def failed(self, project: str, target: Target) -> None:
        health = self._get((project, target.provider, target.model))
        health.failures += 1
        health.trial_in_flight = False
        if health.opened_at is not None or health.failures >= self.breaker_failures:
            health.opened_at = self.clock()

    def snapshot(self) -> dict[str, dict[str, float | None]]:
        """Per-target health for diagnostics and tests."""
        return {
            f"{p}/{prov}/{model}": {
                "latency_ema": h.latency_ema,
                "failures": float(h.failures),
                "open": 1.0 if h.opened_at is not None else 0.0,
            }
            for (p, prov, model), h in self._health.items()
        }


def backoff_delay(
    attempt: int,
    *,
    initial: float,
    maximum: float,
    retry_after: float | None,
    rng: random.Random,
) -> float:
    """Full-jitter exponential backoff; an upstream's Retry-After wins when it is longer."""
    ceiling = min(maximum, initial * (2 ** max(0, attempt - 1)))
    delay = rng.uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, maximum))
    return delay
