"""Token-bucket arithmetic of the in-process limiter."""

from __future__ import annotations

import pytest

from brokle_server.auth import ratelimit
from brokle_server.auth.ratelimit import Limit, MemoryRateLimiter


async def test_burst_then_refuse_then_refill(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: now[0])
    limiter = MemoryRateLimiter()
    limit = Limit(rate=2.0, burst=3)
    decisions = [await limiter.hit("k", limit) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    refused = decisions[-1]
    assert refused.retry_after == pytest.approx(0.5)
    assert refused.headers() == {
        "X-RateLimit-Limit": "3",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "2",
        "Retry-After": "1",
    }
    now[0] += 0.5
    assert (await limiter.hit("k", limit)).allowed
    assert not (await limiter.hit("k", limit)).allowed
    assert (await limiter.hit("other", limit)).allowed  # separate bucket
    await limiter.reset("k")
    assert (await limiter.hit("k", limit)).remaining == 2


async def test_cost_larger_than_one() -> None:
    limiter = MemoryRateLimiter()
    limit = Limit.per_minute(600, burst=100)
    assert (await limiter.hit("tpm", limit, cost=80)).allowed
    refused = await limiter.hit("tpm", limit, cost=80)
    assert not refused.allowed and refused.retry_after > 5


async def test_forced_charge_goes_into_debt(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: now[0])
    limiter = MemoryRateLimiter()
    limit = Limit(rate=10.0, burst=100)
    assert (await limiter.hit("tpm", limit, cost=60)).allowed
    forced = await limiter.hit("tpm", limit, cost=90, force=True)  # 40 left, 90 used
    assert not forced.allowed and forced.remaining == 0
    assert forced.retry_after == pytest.approx(5.0)  # 50 tokens of debt at 10/s
    assert not (await limiter.hit("tpm", limit, cost=1)).allowed
    now[0] = 5.1
    assert (await limiter.hit("tpm", limit, cost=1)).allowed
