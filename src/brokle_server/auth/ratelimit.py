"""Token-bucket rate limiting behind one port, with an in-process and a Redis adapter.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second. A hit takes
``cost`` tokens (1 for a request; the gateway charges tokens for TPM limits) or is refused with
the time until enough tokens are back.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger("brokle.ratelimit")


@dataclass(frozen=True, slots=True)
class Limit:
    rate: float  # tokens per second
    burst: int

    @classmethod
    def per_minute(cls, count: int, burst: int | None = None) -> Limit:
        return cls(rate=count / 60.0, burst=burst if burst is not None else count)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: float  # seconds until the bucket is full again
    retry_after: float  # seconds until this hit would succeed (0 when allowed)

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_after)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: Limit, cost: int = 1, *, force: bool = False) -> Decision:
        """Take ``cost`` tokens if available. With ``force``, take them regardless (the
        bucket may go negative): for usage that already happened and must still count."""
        ...

    async def reset(self, key: str) -> None: ...

    async def close(self) -> None: ...


def _take(
    tokens: float, last: float, now: float, limit: Limit, cost: int, force: bool = False
) -> tuple[float, Decision]:
    """Refill then try to take ``cost`` tokens; the shared arithmetic of both adapters."""
    tokens = min(float(limit.burst), tokens + max(0.0, now - last) * limit.rate)
    allowed = tokens >= cost
    if force and not allowed:
        tokens -= cost
        return tokens, Decision(
            False, limit.burst, 0, (limit.burst - tokens) / limit.rate, -tokens / limit.rate
        )
    if allowed:
        tokens -= cost
        retry_after = 0.0
    else:
        retry_after = (cost - tokens) / limit.rate
    reset_after = (limit.burst - tokens) / limit.rate
    decision = Decision(allowed, limit.burst, int(tokens), reset_after, retry_after)
    return tokens, decision


class MemoryRateLimiter:
    """Buckets in a bounded LRU map; right for one process."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max_keys = max_keys

    async def hit(self, key: str, limit: Limit, cost: int = 1, *, force: bool = False) -> Decision:
        now = time.monotonic()
        tokens, last = self._buckets.pop(key, (float(limit.burst), now))
        tokens, decision = _take(tokens, last, now, limit, cost, force)
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return decision

    async def reset(self, key: str) -> None:
        self._buckets.pop(key, None)

    async def close(self) -> None:
        self._buckets.clear()


# Refill-and-take in one atomic step on the server, using the server's clock so that
# instances with skewed clocks share one view of time.
_LUA_TAKE = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local force = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local last = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - last) * rate)
local allowed = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
elseif force == 1 then
  tokens = tokens - cost
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', key, math.ceil((burst / rate) * 1000) + 1000)
return {allowed, tostring(tokens)}
"""


class RedisRateLimiter:
    """Buckets shared by every Brokle instance through Redis."""

    def __init__(self, redis: Redis, prefix: str = "brokle:rl:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._script = redis.register_script(_LUA_TAKE)

    async def hit(self, key: str, limit: Limit, cost: int = 1, *, force: bool = False) -> Decision:
        try:
            allowed, raw_tokens = await self._script(
                keys=[self._prefix + key], args=[limit.rate, limit.burst, cost, int(force)]
            )
        except (RedisError, OSError) as exc:
            # Fail open: losing rate limiting for a while beats refusing every request.
            log.warning("rate limiter unavailable; allowing request", error=str(exc))
            return Decision(True, limit.burst, limit.burst, 0.0, 0.0)
        tokens = float(raw_tokens)
        ok = bool(int(allowed))
        return Decision(
            allowed=ok,
            limit=limit.burst,
            remaining=max(0, int(tokens)),
            reset_after=(limit.burst - tokens) / limit.rate,
            retry_after=0.0 if ok else max(cost - tokens, -tokens) / limit.rate,
        )

    async def reset(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)

    async def close(self) -> None:
        """The Redis connection belongs to the app container, which closes it."""
        await asyncio.sleep(0)
