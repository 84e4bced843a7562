"""Fixtures for pipeline integration tests against the real Redis on 127.0.0.1:6379.

An unreachable Redis skips these tests locally and fails them under ``CI=true``. Each test
gets its own key prefix, deleted afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from brokle_server.pipeline.redis_streams import RedisStreamQueue

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379

QueueOpener = Callable[..., Awaitable[RedisStreamQueue]]


@pytest.fixture
async def pipeline_redis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        reason = f"Redis at {REDIS_HOST}:{REDIS_PORT} is unreachable: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: a missing service is a failure)")
        pytest.skip(reason)
    yield client
    await client.aclose()


@pytest.fixture
async def stream_base(pipeline_redis: aioredis.Redis) -> AsyncIterator[str]:
    base = f"test:pipeline:{uuid.uuid4().hex}"
    yield base
    keys = [key async for key in pipeline_redis.scan_iter(match=f"{{{base}}}:*")]
    if keys:
        await pipeline_redis.delete(*keys)


@pytest.fixture
async def open_queue(
    pipeline_redis: aioredis.Redis, stream_base: str
) -> AsyncIterator[QueueOpener]:
    """Open queues on the test's keys; ``consumer`` names who reads (default: unique)."""
    opened: list[RedisStreamQueue] = []

    async def opener(**options: object) -> RedisStreamQueue:
        queue = RedisStreamQueue(
            pipeline_redis,
            base=stream_base,
            owns_client=False,
            **options,  # type: ignore[arg-type]
        )
        await queue.setup()
        opened.append(queue)
        return queue

    yield opener
    for queue in opened:
        await queue.close()
