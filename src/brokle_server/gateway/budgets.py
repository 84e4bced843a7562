"""USD budgets that reserve the worst case before a call and settle the real cost after.

Each budget has one counter per period ("used" = settled spend + outstanding reservations).
A reservation succeeds only if it keeps every counter within its limit, checked and applied
atomically, so N concurrent calls against a nearly spent budget overspend by at most the
error of one estimate. Counters live in Redis when configured (shared by every instance),
else in process; a counter missing for the current period is seeded from the store's record
of spend so a restart does not hand out the budget again. Amounts are kept in integer
micro-dollars so sums are exact.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from redis.asyncio import Redis

from brokle_server.errors import RateLimited


@dataclass(frozen=True, slots=True)
class BudgetRule:
    id: str
    limit_usd: float
    period: str  # daily | weekly | monthly | total
    api_key_id: str | None


def period_start(period: str, now: datetime) -> datetime:
    now = now.astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return day
    if period == "weekly":
        return day - timedelta(days=day.weekday())
    if period == "monthly":
        return day.replace(day=1)
    return datetime(1970, 1, 1, tzinfo=UTC)


def period_end(period: str, start: datetime) -> datetime | None:
    if period == "daily":
        return start + timedelta(days=1)
    if period == "weekly":
        return start + timedelta(days=7)
    if period == "monthly":
        return (start + timedelta(days=32)).replace(day=1)
    return None


MICROS = 1_000_000


def to_micros(usd: float, *, up: bool = False) -> int:
    return math.ceil(usd * MICROS) if up else round(usd * MICROS)


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    keys: tuple[str, ...]
    amount: int  # micro-dollars


class BudgetExceeded(RateLimited):
    code = "budget_exceeded"


Seeder = Callable[[str, BudgetRule, datetime], Awaitable[float]]
"""(project id, budget, period start) -> USD already spent in the period."""


class BudgetStore(Protocol):
    """Counters in micro-dollars."""

    async def reserve(
        self,
        keys: Sequence[str],
        limits: Sequence[int],
        amount: int,
        seeds: Sequence[Callable[[], Awaitable[int]]],
    ) -> int:
        """Add ``amount`` to every key if all stay within their limits; else return the
        index of the first key that would overflow (and change nothing). -1 on success."""
        ...

    async def adjust(self, keys: Sequence[str], delta: int) -> None: ...


class MemoryBudgetStore:
    def __init__(self) -> None:
        self._used: dict[str, int] = {}
        self._lock = asyncio.Lock()

    async def reserve(
        self,
        keys: Sequence[str],
        limits: Sequence[int],
        amount: int,
        seeds: Sequence[Callable[[], Awaitable[int]]],
    ) -> int:
        async with self._lock:
            for key, seed in zip(keys, seeds, strict=True):
                if key not in self._used:
                    self._used[key] = await seed()
            for index, (key, limit) in enumerate(zip(keys, limits, strict=True)):
                if self._used[key] + amount > limit:
                    return index
            for key in keys:
                self._used[key] += amount
            return -1

    async def adjust(self, keys: Sequence[str], delta: int) -> None:
        async with self._lock:
            for key in keys:
                self._used[key] = self._used.get(key, 0) + delta


_LUA_RESERVE = """
local amount = tonumber(ARGV[1])
local n = #KEYS
for i = 1, n do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used + amount > tonumber(ARGV[i + 1]) then return i - 1 end
end
for i = 1, n do
  redis.call('INCRBY', KEYS[i], amount)
  local ttl = tonumber(ARGV[n + i + 1])
  if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl) end
end
return -1
"""


class RedisBudgetStore:
    def __init__(self, redis: Redis, prefix: str = "brokle:budget:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._script = redis.register_script(_LUA_RESERVE)
        self._ttl_s = 40 * 86400

    async def reserve(
        self,
        keys: Sequence[str],
        limits: Sequence[int],
        amount: int,
        seeds: Sequence[Callable[[], Awaitable[int]]],
    ) -> int:
        full = [self._prefix + k for k in keys]
        for key, seed in zip(full, seeds, strict=True):
            if not await self._redis.exists(key):
                await self._redis.set(key, str(await seed()), nx=True, ex=self._ttl_s)
        ttls = [self._ttl_s] * len(full)
        result = await self._script(keys=full, args=[amount, *limits, *ttls])
        return int(result)

    async def adjust(self, keys: Sequence[str], delta: int) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.incrby(self._prefix + key, delta)
        await pipe.execute()


class Budgets:
    """Reserve, then settle, against every budget that applies to a request."""

    def __init__(self, store: BudgetStore, seeder: Seeder, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._seeder = seeder
        self._clock = clock

    async def reserve(
        self, project_id: str, rules: Sequence[BudgetRule], amount: float
    ) -> Reservation | None:
        if not rules:
            return None
        now = self._clock()
        micros = to_micros(amount, up=True)
        keys: list[str] = []
        limits: list[int] = []
        seeds: list[Callable[[], Awaitable[int]]] = []
        for rule in rules:
            start = period_start(rule.period, now)
            keys.append(f"{project_id}:{rule.id}:{start.date().isoformat()}")
            limits.append(to_micros(rule.limit_usd))
            seeds.append(_bind(self._seeder, project_id, rule, start))
        blocked = await self._store.reserve(keys, limits, micros, seeds)
        if blocked >= 0:
            rule = rules[blocked]
            end = period_end(rule.period, period_start(rule.period, now))
            retry = (end - now).total_seconds() if end else 86400.0
            whose = "this API key" if rule.api_key_id else "this project"
            raise BudgetExceeded(
                f"The {rule.period} budget of ${rule.limit_usd:.2f} for {whose} is spent "
                f"(this request may cost up to ${amount:.4f})",
                retry_after=max(1.0, retry),
                details={"budget_id": rule.id, "period": rule.period, "limit_usd": rule.limit_usd},
            )
        return Reservation(uuid.uuid4().hex, tuple(keys), micros)

    async def settle(self, reservation: Reservation | None, actual: float) -> None:
        if reservation is not None:
            await self._store.adjust(reservation.keys, to_micros(actual) - reservation.amount)


def _bind(
    seeder: Seeder, project_id: str, rule: BudgetRule, start: datetime
) -> Callable[[], Awaitable[int]]:
    async def seed() -> int:
        return to_micros(await seeder(project_id, rule, start))

    return seed
