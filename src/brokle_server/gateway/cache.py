"""Response caches: exact (hash of the normalised request) and semantic (similar last user
turn after an identical earlier conversation).

Both store the final OpenAI-format response; a streamed request served from cache is replayed
as a stream. In process by default (bounded LRU with TTL); in Redis when configured, shared by
every instance.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis

# Request fields that do not change the answer (or are handled by the gateway itself).
_IGNORED_FIELDS = frozenset({"stream", "stream_options", "user", "metadata", "store"})


def request_key(project_id: str, endpoint: str, model: str, body: dict[str, Any]) -> str:
    """Stable hash of everything in the request that shapes the response."""
    significant = {k: v for k, v in body.items() if k not in _IGNORED_FIELDS}
    significant["model"] = model
    digest = hashlib.sha256(
        orjson.dumps([project_id, endpoint, significant], option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
    return digest


def conversation_prefix_key(project_id: str, model: str, body: dict[str, Any]) -> str | None:
    """Hash of the request minus its last user message, for semantic lookups; None when the
    request has no trailing user text to compare."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    rest = {k: v for k, v in body.items() if k not in _IGNORED_FIELDS and k != "messages"}
    return hashlib.sha256(
        orjson.dumps([project_id, model, rest, messages[:-1]], option=orjson.OPT_SORT_KEYS)
    ).hexdigest()


def last_user_text(body: dict[str, Any]) -> str:
    content = body["messages"][-1].get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


class ResponseCache(Protocol):
    async def get(self, key: str) -> dict[str, Any] | None: ...

    async def set(self, key: str, response: dict[str, Any], ttl_s: int) -> None: ...

    async def similar(
        self, prefix: str, vector: Sequence[float], threshold: float
    ) -> dict[str, Any] | None: ...

    async def add_vector(
        self, prefix: str, vector: Sequence[float], response: dict[str, Any], ttl_s: int
    ) -> None: ...


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


@dataclass(slots=True)
class _Entry:
    value: dict[str, Any]
    expires: float


class MemoryCache:
    """Bounded LRU with per-entry TTL; semantic entries are scanned per conversation prefix."""

    def __init__(self, max_entries: int = 10_000, max_vectors_per_prefix: int = 256) -> None:
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._vectors: OrderedDict[str, list[tuple[list[float], _Entry]]] = OrderedDict()
        self._max = max_entries
        self._max_vectors = max_vectors_per_prefix

    async def get(self, key: str) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires < time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.value

    async def set(self, key: str, response: dict[str, Any], ttl_s: int) -> None:
        if self._max == 0:
            return
        self._entries[key] = _Entry(response, time.monotonic() + ttl_s)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def similar(
        self, prefix: str, vector: Sequence[float], threshold: float
    ) -> dict[str, Any] | None:
        now = time.monotonic()
        best: tuple[float, dict[str, Any]] | None = None
        for stored, entry in self._vectors.get(prefix, ()):
            if entry.expires < now:
                continue
            score = cosine(vector, stored)
            if score >= threshold and (best is None or score > best[0]):
                best = (score, entry.value)
        return best[1] if best else None

    async def add_vector(
        self, prefix: str, vector: Sequence[float], response: dict[str, Any], ttl_s: int
    ) -> None:
        bucket = self._vectors.setdefault(prefix, [])
        bucket.append((list(vector), _Entry(response, time.monotonic() + ttl_s)))
        del bucket[: -self._max_vectors]
        self._vectors.move_to_end(prefix)
        while len(self._vectors) > self._max:
            self._vectors.popitem(last=False)


class RedisCache:
    def __init__(self, redis: Redis, prefix: str = "brokle:cache:") -> None:
        self._redis = redis
        self._prefix = prefix

    async def get(self, key: str) -> dict[str, Any] | None:
        raw = await self._redis.get(self._prefix + key)
        return orjson.loads(raw) if raw else None

    async def set(self, key: str, response: dict[str, Any], ttl_s: int) -> None:
        await self._redis.set(self._prefix + key, orjson.dumps(response), ex=max(1, ttl_s))

    async def similar(
        self, prefix: str, vector: Sequence[float], threshold: float
    ) -> dict[str, Any] | None:
        raw_entries = await self._redis.lrange(f"{self._prefix}sem:{prefix}", 0, 255)
        best: tuple[float, dict[str, Any]] | None = None
        for raw in raw_entries:
            entry = orjson.loads(raw)
            score = cosine(vector, entry["v"])
            if score >= threshold and (best is None or score > best[0]):
                best = (score, entry["r"])
        return best[1] if best else None

    async def add_vector(
        self, prefix: str, vector: Sequence[float], response: dict[str, Any], ttl_s: int
    ) -> None:
        key = f"{self._prefix}sem:{prefix}"
        pipe = self._redis.pipeline(transaction=True)
        pipe.lpush(key, orjson.dumps({"v": list(vector), "r": response}))
        pipe.ltrim(key, 0, 255)
        pipe.expire(key, max(1, ttl_s))
        await pipe.execute()
