"""Both pub/sub adapters deliver to every subscriber of a channel and only that channel."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from brokle_server.realtime.pubsub import Event, MemoryPubSub, PubSub, RedisPubSub


@pytest.fixture(params=["memory", "redis"])
async def pubsub(request: pytest.FixtureRequest) -> AsyncIterator[PubSub]:
    if request.param == "memory":
        yield MemoryPubSub(buffer=3)
        return
    url: str = request.getfixturevalue("redis_url")
    redis = Redis.from_url(url)
    yield RedisPubSub(redis, prefix=f"test:{uuid.uuid4().hex}:")
    await redis.aclose()


async def _collect(pubsub: PubSub, channel: str, count: int, ready: asyncio.Event) -> list[Event]:
    seen: list[Event] = []
    stream = pubsub.subscribe(channel)
    iterator = stream.__aiter__()
    first = asyncio.ensure_future(iterator.__anext__())
    await asyncio.sleep(0.1)  # let the subscription register (Redis SUBSCRIBE round trip)
    ready.set()
    seen.append(await first)
    while len(seen) < count:
        seen.append(await iterator.__anext__())
    await stream.aclose()  # type: ignore[attr-defined]
    return seen


async def test_fan_out_to_subscribers_of_one_channel(pubsub: PubSub) -> None:
    ready_a, ready_b = asyncio.Event(), asyncio.Event()
    a = asyncio.create_task(_collect(pubsub, "project:a", 2, ready_a))
    b = asyncio.create_task(_collect(pubsub, "project:a", 2, ready_b))
    await asyncio.wait_for(asyncio.gather(ready_a.wait(), ready_b.wait()), 5)
    await pubsub.publish("project:b", {"type": "span.ingested", "n": 0})
    await pubsub.publish("project:a", {"type": "span.ingested", "n": 1})
    await pubsub.publish("project:a", {"type": "span.ingested", "n": 2})
    got = await asyncio.wait_for(asyncio.gather(a, b), 5)
    assert got == [[{"type": "span.ingested", "n": 1}, {"type": "span.ingested", "n": 2}]] * 2


async def test_memory_subscriber_that_lags_loses_oldest_events() -> None:
    pubsub = MemoryPubSub(buffer=2)
    stream = pubsub.subscribe("c").__aiter__()
    first = asyncio.ensure_future(stream.__anext__())  # subscribes, then waits
    await asyncio.sleep(0)
    await pubsub.publish("c", {"n": 0})
    assert await first == {"n": 0}
    for n in range(1, 6):
        await pubsub.publish("c", {"n": n})
    assert [await stream.__anext__() for _ in range(2)] == [{"n": 4}, {"n": 5}]
    assert pubsub.dropped == 3
