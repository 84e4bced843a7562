"""Target ordering, breakers and retry delays."""

from __future__ import annotations

import random
from collections import Counter

from brokle_server.catalog.gateway_models import Strategy
from brokle_server.gateway.routing import RoutePlan, Router, Target, backoff_delay

A, B, C = Target("a", "m1"), Target("b", "m2", weight=3), Target("c", "m3")


def plan(strategy: Strategy, *targets: Target) -> RoutePlan:
    return RoutePlan(alias="alias", strategy=strategy, targets=targets or (A, B, C))


def test_fallback_keeps_order_and_breaker_skips_then_half_opens() -> None:
    now = [0.0]
    router = Router(breaker_failures=2, breaker_cooldown_s=10, clock=lambda: now[0])
    assert router.order("p", plan(Strategy.FALLBACK)) == [A, B, C]
    router.failed("p", A)
    assert router.order("p", plan(Strategy.FALLBACK)) == [A, B, C]  # one failure: still closed
    router.failed("p", A)
    assert router.order("p", plan(Strategy.FALLBACK)) == [B, C]
    assert router.order("other-project", plan(Strategy.FALLBACK)) == [A, B, C]
    now[0] = 11
    assert router.order("p", plan(Strategy.FALLBACK)) == [A, B, C]  # half-open trial
    router.started("p", A)
    assert router.order("p", plan(Strategy.FALLBACK)) == [B, C]  # one trial at a time
    router.failed("p", A)  # the trial failed: open again for a full cooldown
    now[0] = 15
    assert router.order("p", plan(Strategy.FALLBACK)) == [B, C]
    now[0] = 22
    router.started("p", A)
    router.succeeded("p", A, 0.1)
    assert router.order("p", plan(Strategy.FALLBACK)) == [A, B, C]


def test_all_open_gives_the_oldest_failure_a_trial() -> None:
    now = [0.0]
    router = Router(breaker_failures=1, breaker_cooldown_s=100, clock=lambda: now[0])
    router.failed("p", A)
    now[0] = 1
    router.failed("p", B)
    assert router.order("p", plan(Strategy.FALLBACK, A, B)) == [A]


def test_weighted_follows_weights() -> None:
    router = Router(rng=random.Random(7))
    firsts = Counter(router.order("p", plan(Strategy.WEIGHTED, A, B))[0] for _ in range(4000))
    assert 0.70 < firsts[B] / 4000 < 0.80  # weight 3 of 4
    assert sorted(map(str, router.order("p", plan(Strategy.WEIGHTED, A, B)))) == sorted(
        map(str, [A, B])
    )


def test_lowest_latency_measures_unknown_targets_first() -> None:
    router = Router()
    router.succeeded("p", A, 0.5)
    router.succeeded("p", C, 0.1)
    assert router.order("p", plan(Strategy.LOWEST_LATENCY)) == [B, C, A]
    router.succeeded("p", B, 2.0)
    assert router.order("p", plan(Strategy.LOWEST_LATENCY)) == [C, A, B]


def test_lowest_cost_uses_the_price_function() -> None:
    prices = {"a": 5.0, "b": 1.0, "c": 3.0}
    ordered = Router().order("p", plan(Strategy.LOWEST_COST), lambda t: prices[t.provider])
    assert ordered == [B, C, A]


def test_backoff_is_jittered_capped_and_honours_retry_after() -> None:
    rng = random.Random(1)
    delays = [
        backoff_delay(n, initial=0.2, maximum=2.0, retry_after=None, rng=rng) for n in range(1, 8)
    ]
    assert all(0 <= d <= 2.0 for d in delays)
    assert backoff_delay(1, initial=0.2, maximum=2.0, retry_after=1.5, rng=rng) >= 1.5
    assert backoff_delay(1, initial=0.2, maximum=2.0, retry_after=60, rng=rng) == 2.0
