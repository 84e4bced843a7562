"""Per-key and per-user rate limits, through the HTTP API (SQLite and PostgreSQL; in-process
limiter and Redis) and directly on the two limiter adapters."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from redis.asyncio import Redis

from brokle_server.auth import passwords, ratelimit
from brokle_server.auth.ratelimit import Decision, Limit, MemoryRateLimiter, RedisRateLimiter
from brokle_server.settings import Settings
from tests.conftest import running_app
from tests.integration.api.helpers import (
    create_key,
    create_org,
    create_project,
    data,
    login,
)


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about access, not password storage (test_auth.py runs the real cost):
    argon2id at its lowest cost takes ~100 ms off every signup, login and app bootstrap."""
    cheap = Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(passwords, "_hasher", PasswordHash((cheap,)))


TINY = {"api_key_per_minute": 3, "api_key_burst": 3, "user_per_minute": 3, "user_burst": 3}
RATE = 3 / 60  # tokens per second of the tiny limits
LIMITED_MESSAGE = "Rate limit exceeded; retry after the time in Retry-After"


@pytest.fixture(params=["memory", "redis"])
def limiter_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        request.getfixturevalue("redis_url")  # skips (or fails under CI) without Redis
    return str(request.param)


@asynccontextmanager
async def redis_cleanup(redis_url: str | None, keys: list[str]) -> AsyncIterator[None]:
    """Delete the Redis keys named in ``keys`` (filled in by the caller) on the way out."""
    try:
        yield
    finally:
        if redis_url is not None and keys:
            redis = Redis.from_url(redis_url)
            try:
                await redis.delete(*keys)
            finally:
                await redis.aclose()


async def prepare(settings_factory: Callable[..., Settings]) -> dict[str, Any]:
    """A user with a project and two keys, made through an app with the default limits."""
    async with running_app(settings_factory()) as client:
        email = f"limited-{uuid.uuid4().hex[:10]}@limits.example"
        user = await login(client, email)
        me = data(await client.get("/api/v1/auth/me", headers=user))
        org = await create_org(client, user, "Limited Org")
        project = await create_project(client, user, org["id"])
        first = await create_key(client, user, project["id"], name="first")
        second = await create_key(client, user, project["id"], name="second")
    return {"user": user, "user_id": me["id"], "project": project, "first": first, "second": second}


def limit_headers(response: httpx.Response) -> tuple[str, str, int]:
    return (
        response.headers["x-ratelimit-limit"],
        response.headers["x-ratelimit-remaining"],
        int(response.headers["x-ratelimit-reset"]),
    )


def assert_allowed_sequence(responses: list[httpx.Response]) -> None:
    """Three allowed hits on a full bucket of 3: remaining 2, 1, 0; reset ~20 s per token."""
    seen = [limit_headers(r) for r in responses]
    for r in responses:
        data(r)
        assert "retry-after" not in r.headers
    assert [(limit, remaining) for limit, remaining, _ in seen] == [
        ("3", "2"),
        ("3", "1"),
        ("3", "0"),
    ]
    resets = [reset for _, _, reset in seen]
    assert resets == sorted(resets)
    for used, reset in enumerate(resets, start=1):
        assert used / RATE - 3 <= reset <= used / RATE, resets


def assert_limited(response: httpx.Response) -> None:
    body = response.json()
    assert response.status_code == 429, response.text
    assert body == {
        "success": False,
        "data": None,
        "error": {"code": "rate_limited", "message": LIMITED_MESSAGE, "details": None},
        "meta": {"request_id": response.headers["x-request-id"]},
    }
    retry_after = int(response.headers["retry-after"])
    # The next token comes back 20 s after the first hit (1 / RATE), minus the time spent since.
    assert 1 <= retry_after <= math.ceil(1 / RATE)
    assert response.headers["x-ratelimit-limit"] == "3"
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert 0 < int(response.headers["x-ratelimit-reset"]) <= math.ceil(3 / RATE)


async def test_key_and_user_buckets(
    settings_factory: Callable[..., Settings], limiter_kind: str, request: pytest.FixtureRequest
) -> None:
    made = await prepare(settings_factory)
    redis_url = request.getfixturevalue("redis_url") if limiter_kind == "redis" else None
    first, second = made["first"], made["second"]
    bucket_keys = [
        f"brokle:rl:key:{first['id']}",
        f"brokle:rl:key:{second['id']}",
        f"brokle:rl:user:{made['user_id']}",
    ]
    settings = settings_factory(rate_limit=TINY, redis_url=redis_url)
    async with redis_cleanup(redis_url, bucket_keys):
        await _exercise_buckets(settings, made, redis_url, bucket_keys)
        # The in-process limiter lives and dies with its app; Redis buckets outlive it.
        async with running_app(settings) as client:
            response = await client.post(
                "/v1/auth/validate-key", headers={"X-API-Key": first["key"]}
            )
            if limiter_kind == "memory":
                assert limit_headers(response)[:2] == ("3", "2")
            else:
                assert_limited(response)


async def _exercise_buckets(
    settings: Settings, made: dict[str, Any], redis_url: str | None, bucket_keys: list[str]
) -> None:
    first, second = made["first"], made["second"]
    async with running_app(settings) as client:
        by_first = {"X-API-Key": first["key"]}
        allowed = [await client.post("/v1/auth/validate-key", headers=by_first) for _ in range(3)]
        assert_allowed_sequence(allowed)
        assert_limited(await client.post("/v1/auth/validate-key", headers=by_first))
        # Bearer or header, it is the same key and the same empty bucket.
        assert_limited(
            await client.post(
                "/v1/auth/validate-key", headers={"Authorization": f"Bearer {first['key']}"}
            )
        )
        # A second key has its own bucket.
        other = await client.post("/v1/auth/validate-key", headers={"X-API-Key": second["key"]})
        assert data(other)["key_id"] == second["id"]
        assert limit_headers(other)[:2] == ("3", "2")

        # Users have their own buckets, apart from their keys'.
        user = made["user"]
        allowed = [await client.get("/api/v1/auth/me", headers=user) for _ in range(3)]
        assert_allowed_sequence(allowed)
        assert_limited(await client.get("/api/v1/auth/me", headers=user))
        project_url = f"/api/v1/projects/{made['project']['id']}"
        assert_limited(await client.get(project_url, headers=user))
        # The second key's bucket was touched by nothing but its own hit.
        again = await client.post("/v1/auth/validate-key", headers={"X-API-Key": second["key"]})
        assert limit_headers(again)[:2] == ("3", "1")

        if redis_url is not None:
            redis = Redis.from_url(redis_url)
            try:
                for key in bucket_keys:
                    state = await redis.hgetall(key)
                    assert set(state) == {b"tokens", b"ts"}, key
                    assert 0 < await redis.pttl(key) <= math.ceil(3 / RATE * 1000) + 1000
                # Refused hits take nothing: the empty bucket is not driven below zero.
                assert 0 <= float((await redis.hget(bucket_keys[0], "tokens")) or -1) < 1
                assert 1 <= float((await redis.hget(bucket_keys[1], "tokens")) or -1) < 2
            finally:
                await redis.aclose()


async def test_instances_sharing_redis_share_buckets(
    settings_factory: Callable[..., Settings], redis_url: str
) -> None:
    made = await prepare(settings_factory)
    key, user = made["first"], made["user"]
    bucket_keys = [f"brokle:rl:key:{key['id']}", f"brokle:rl:user:{made['user_id']}"]
    settings = settings_factory(rate_limit=TINY, redis_url=redis_url)
    async with (
        redis_cleanup(redis_url, bucket_keys),
        running_app(settings) as one,
        running_app(settings) as two,
    ):
        by_key = {"X-API-Key": key["key"]}
        allowed = [
            await one.post("/v1/auth/validate-key", headers=by_key),
            await two.post("/v1/auth/validate-key", headers=by_key),
            await one.post("/v1/auth/validate-key", headers=by_key),
        ]
        assert_allowed_sequence(allowed)
        assert_limited(await two.post("/v1/auth/validate-key", headers=by_key))
        assert_limited(await one.post("/v1/auth/validate-key", headers=by_key))

        allowed = [
            await two.get("/api/v1/auth/me", headers=user),
            await two.get("/api/v1/auth/me", headers=user),
            await one.get("/api/v1/auth/me", headers=user),
        ]
        assert_allowed_sequence(allowed)
        assert_limited(await one.get("/api/v1/auth/me", headers=user))
        assert_limited(await two.get("/api/v1/auth/me", headers=user))


async def test_limits_can_be_switched_off(settings_factory: Callable[..., Settings]) -> None:
    made = await prepare(settings_factory)
    settings = settings_factory(rate_limit=TINY | {"enabled": False})
    async with running_app(settings) as client:
        for _ in range(5):
            response = await client.post(
                "/v1/auth/validate-key", headers={"X-API-Key": made["first"]["key"]}
            )
            assert data(response)["key_id"] == made["first"]["id"]
            assert not any(h.startswith("x-ratelimit") for h in response.headers)
            me = await client.get("/api/v1/auth/me", headers=made["user"])
            assert data(me)["id"] == made["user_id"]
            assert "x-ratelimit-limit" not in me.headers


# --- the limiter adapters themselves -------------------------------------------------------


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeMonotonic:
    """Freeze the clock of ``MemoryRateLimiter`` only (not the event loop's)."""
    clock = FakeMonotonic()
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(monotonic=clock))
    return clock


def test_limit_per_minute() -> None:
    assert Limit.per_minute(60) == Limit(rate=1.0, burst=60)
    assert Limit.per_minute(30, burst=5) == Limit(rate=0.5, burst=5)
    assert Limit.per_minute(3, 3) == Limit(rate=RATE, burst=3)


def test_decision_headers() -> None:
    allowed = Decision(allowed=True, limit=10, remaining=7, reset_after=2.1, retry_after=0.0)
    assert allowed.headers() == {
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "7",
        "X-RateLimit-Reset": "3",
    }
    refused = Decision(allowed=False, limit=10, remaining=0, reset_after=9.5, retry_after=0.2)
    assert refused.headers() == {
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "10",
        "Retry-After": "1",
    }
    slow = Decision(allowed=False, limit=1, remaining=0, reset_after=59.2, retry_after=59.2)
    assert slow.headers()["Retry-After"] == "60"


async def test_memory_limiter_refills_at_its_rate(fake_time: FakeMonotonic) -> None:
    limiter = MemoryRateLimiter()
    limit = Limit(rate=2.0, burst=4)  # one token every 0.5 s
    hits = [await limiter.hit("k", limit) for _ in range(4)]
    assert hits == [
        Decision(True, 4, 3, 0.5, 0.0),
        Decision(True, 4, 2, 1.0, 0.0),
        Decision(True, 4, 1, 1.5, 0.0),
        Decision(True, 4, 0, 2.0, 0.0),
    ]
    assert await limiter.hit("k", limit) == Decision(False, 4, 0, 2.0, 0.5)
    fake_time.now += 0.25
    assert await limiter.hit("k", limit) == Decision(False, 4, 0, 1.75, 0.25)
    fake_time.now += 0.25
    assert await limiter.hit("k", limit) == Decision(True, 4, 0, 2.0, 0.0)
    # A costly hit waits for all the tokens it needs; a refused hit takes none.
    fake_time.now += 0.5
    assert await limiter.hit("k", limit, cost=3) == Decision(False, 4, 1, 1.5, 1.0)
    fake_time.now += 1.0
    assert await limiter.hit("k", limit, cost=3) == Decision(True, 4, 0, 2.0, 0.0)
    # Idle time refills up to the burst, never beyond.
    fake_time.now += 3600
    assert await limiter.hit("k", limit) == Decision(True, 4, 3, 0.5, 0.0)
    # A cost above the burst can never pass.
    refused = await limiter.hit("k", limit, cost=5)
    assert (refused.allowed, refused.remaining) == (False, 3)
    # Other keys and reset buckets start full.
    assert (await limiter.hit("other", limit)).remaining == 3
    await limiter.reset("k")
    assert (await limiter.hit("k", limit)).remaining == 3


async def test_memory_limiter_forgets_the_oldest_bucket(fake_time: FakeMonotonic) -> None:
    limiter = MemoryRateLimiter(max_keys=2)
    limit = Limit(rate=0.001, burst=1)
    assert (await limiter.hit("a", limit)).allowed
    assert (await limiter.hit("b", limit)).allowed
    assert not (await limiter.hit("a", limit)).allowed  # "a" is now the most recent
    assert (await limiter.hit("c", limit)).allowed  # evicts "b"
    assert (await limiter.hit("b", limit)).allowed  # full again; evicts "a"
    assert (await limiter.hit("a", limit)).allowed
    assert not (await limiter.hit("b", limit)).allowed
    await limiter.close()
    assert (await limiter.hit("b", limit)).allowed


async def test_redis_limiter_refills_and_is_shared(redis_url: str) -> None:
    prefix = f"brokle:rl:test-{uuid.uuid4().hex}:"
    one, two = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        first, second = RedisRateLimiter(one, prefix=prefix), RedisRateLimiter(two, prefix=prefix)
        limit = Limit(rate=4.0, burst=2)  # one token every 0.25 s
        a = await first.hit("bucket", limit)
        b = await second.hit("bucket", limit)
        assert (a.allowed, a.limit, a.remaining) == (True, 2, 1)
        assert (b.allowed, b.limit, b.remaining) == (True, 2, 0)
        # Full again after the missing tokens refill: 1 token -> 0.25 s, ~2 tokens -> ~0.5 s.
        assert 0.2 <= a.reset_after <= 0.25 and 0.25 < b.reset_after <= 0.5
        assert a.retry_after == b.retry_after == 0.0
        refused = await first.hit("bucket", limit)
        assert (refused.allowed, refused.remaining) == (False, 0)
        assert 0 < refused.retry_after <= 0.25
        assert refused.reset_after == pytest.approx(refused.retry_after + 0.25)
        assert refused.headers()["Retry-After"] == "1"
        # The bucket expires once it would be full again, plus a second.
        assert 0 < await one.pttl(prefix + "bucket") <= 1500
        # A costly hit is refused without taking tokens, and its wait covers the whole cost.
        costly = await second.hit("bucket", limit, cost=2)
        assert not costly.allowed and 0.25 < costly.retry_after <= 0.5

        await asyncio.sleep(0.55)
        refilled = await first.hit("bucket", limit)
        assert (refilled.allowed, refilled.remaining) == (True, 1)
        assert (await first.hit("other", limit)).remaining == 1
        await second.reset("bucket")
        assert await one.exists(prefix + "bucket") == 0
        assert (await second.hit("bucket", limit)).remaining == 1
        await first.close()  # the limiter does not own the connection
        assert await one.ping()
    finally:
        stale = [k async for k in one.scan_iter(match=prefix + "*")]
        if stale:
            await one.delete(*stale)
        await one.aclose()
        await two.aclose()
