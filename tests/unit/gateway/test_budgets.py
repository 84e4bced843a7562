"""Reserve-then-settle budgets, alone and under concurrency, in memory and in Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from brokle_server.gateway.budgets import (
    BudgetExceeded,
    BudgetRule,
    Budgets,
    BudgetStore,
    MemoryBudgetStore,
    RedisBudgetStore,
    period_start,
)

NOW = datetime(2026, 11, 18, 15, 30, tzinfo=UTC)  # a Wednesday


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[BudgetStore]:
    if request.param == "memory":
        yield MemoryBudgetStore()
        return
    redis = Redis.from_url(request.getfixturevalue("redis_url"))
    prefix = f"test:budget:{uuid.uuid4().hex}:"
    yield RedisBudgetStore(redis, prefix=prefix)
    keys = [k async for k in redis.scan_iter(match=prefix + "*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def test_period_starts() -> None:
    assert period_start("daily", NOW) == datetime(2026, 11, 18, tzinfo=UTC)
    assert period_start("weekly", NOW) == datetime(2026, 11, 16, tzinfo=UTC)
    assert period_start("monthly", NOW) == datetime(2026, 11, 1, tzinfo=UTC)
    assert period_start("total", NOW).year == 1970


async def test_reserve_settle_and_refuse(store: BudgetStore) -> None:
    seeded: list[str] = []

    async def seeder(project_id: str, rule: BudgetRule, start: datetime) -> float:
        seeded.append(rule.id)
        return 0.5  # spend already recorded this period

    budgets = Budgets(store, seeder, lambda: NOW)
    rule = BudgetRule(id="b1", limit_usd=1.0, period="daily", api_key_id=None)
    first = await budgets.reserve("p", [rule], 0.3)
    await budgets.settle(first, 0.1)  # real cost below the reservation: 0.6 used
    second = await budgets.reserve("p", [rule], 0.4)  # 1.0 used
    with pytest.raises(BudgetExceeded) as info:
        await budgets.reserve("p", [rule], 0.01)
    assert info.value.code == "budget_exceeded" and info.value.retry_after > 3600
    await budgets.settle(second, 0.2)  # 0.8 used
    assert await budgets.reserve("p", [rule], 0.15) is not None
    assert seeded == ["b1"]


async def test_concurrent_requests_overspend_by_at_most_one(store: BudgetStore) -> None:
    async def seeder(project_id: str, rule: BudgetRule, start: datetime) -> float:
        return 0.0

    budgets = Budgets(store, seeder, lambda: NOW)
    project = BudgetRule(id="proj", limit_usd=1.0, period="monthly", api_key_id=None)
    key = BudgetRule(id="key", limit_usd=5.0, period="monthly", api_key_id="k")
    spent: list[float] = []

    async def call() -> None:
        try:
            reservation = await budgets.reserve("p", [project, key], 0.05)  # worst case
        except BudgetExceeded:
            return
        await asyncio.sleep(0.01)
        spent.append(0.04)
        await budgets.settle(reservation, 0.04)

    await asyncio.gather(*(call() for _ in range(100)))
    assert sum(spent) <= 1.0 + 0.05
    assert len(spent) >= 20  # the budget was used, not refused wholesale
