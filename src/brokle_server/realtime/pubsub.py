"""Publish/subscribe of small JSON events on named channels (e.g. ``project:<id>``).

Delivery is best effort, as live updates are: a slow subscriber loses its oldest events
rather than slowing publishers or growing memory. Durable data never travels this way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis

Event = dict[str, Any]


class PubSub(Protocol):
    async def publish(self, channel: str, event: Event) -> None: ...

    def subscribe(self, channel: str) -> AsyncIterator[Event]: ...

    async def close(self) -> None: ...


class MemoryPubSub:
    def __init__(self, buffer: int = 1000) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Event]]] = {}
        self._buffer = buffer
        self.dropped = 0

    async def publish(self, channel: str, event: Event) -> None:
        for queue in self._subscribers.get(channel, ()):
            if queue.full():
                queue.get_nowait()
                self.dropped += 1
            queue.put_nowait(event)

    async def subscribe(self, channel: str) -> AsyncIterator[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self._buffer)
        self._subscribers.setdefault(channel, set()).add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            subscribers = self._subscribers.get(channel)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[channel]

    async def close(self) -> None:
        self._subscribers.clear()


class RedisPubSub:
    """Channels shared by every Brokle instance through Redis PUBLISH/SUBSCRIBE."""

    def __init__(self, redis: Redis, prefix: str = "brokle:events:") -> None:
        self._redis = redis
        self._prefix = prefix

    async def publish(self, channel: str, event: Event) -> None:
        await self._redis.publish(self._prefix + channel, orjson.dumps(event))

    async def subscribe(self, channel: str) -> AsyncIterator[Event]:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self._prefix + channel)
        try:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    with contextlib.suppress(orjson.JSONDecodeError):
                        yield orjson.loads(message["data"])
        finally:
            await pubsub.unsubscribe()
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        """The Redis connection belongs to the app container, which closes it."""
