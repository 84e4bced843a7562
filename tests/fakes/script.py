"""What a fake upstream answers: replies, usage numbers and injected faults.

Usage numbers are provider-neutral and OpenAI-like: ``prompt`` includes ``cached`` and
``cache_write``; ``completion`` includes ``reasoning``. Each wire module renders them the
way its provider reports them (Anthropic excludes cache reads/writes from ``input_tokens``,
Gemini reports thoughts apart from candidates).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str | None = None


@dataclass(frozen=True)
class FakeUsage:
    prompt: int = 12
    completion: int = 8
    cached: int = 0
    cache_write: int = 0
    reasoning: int = 0


@dataclass(frozen=True)
class Reply:
    """``text=None`` echoes ``"Echo: <last user text>"`` (nothing when there are tool calls);
    ``finish`` is neutral (stop | length | tool_calls | content_filter), derived if None."""

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: FakeUsage = field(default_factory=FakeUsage)
    finish: str | None = None


@dataclass(frozen=True)
class Fault:
    """A scripted misbehaviour for one request.

    ``status``: answer that HTTP status with the provider's error body (``retry_after``
    seconds go in ``Retry-After``, ``retry_after_ms`` in ``retry-after-ms``). ``latency``:
    wait before answering. ``hang``: never answer (until ``hang_for`` seconds pass or the
    server stops). ``close_after`` / ``error_after``: in a stream, drop the connection, or
    send the provider's error event, after that many events. ``chunk_delay``: pause between
    stream events.
    """

    status: int | None = None
    retry_after: float | None = None
    retry_after_ms: float | None = None
    latency: float = 0.0
    hang: bool = False
    hang_for: float = 60.0
    close_after: int | None = None
    error_after: int | None = None
    chunk_delay: float = 0.0
    message: str = "injected fault"
    error_type: str | None = None


@dataclass
class Resolved:
    """A reply made concrete for one request."""

    text: str
    tool_calls: list[ToolCall]
    usage: FakeUsage
    finish: str
    n: int = 1


def resolve(reply: Reply, last_user_text: str, n: int = 1) -> Resolved:
    text = reply.text
    if text is None:
        text = "" if reply.tool_calls else f"Echo: {last_user_text}"
    finish = reply.finish or ("tool_calls" if reply.tool_calls else "stop")
    calls = [
        ToolCall(c.name, c.arguments, c.id or f"call_fake{i}")
        for i, c in enumerate(reply.tool_calls)
    ]
    return Resolved(text, calls, reply.usage, finish, max(1, n))


def pieces(text: str) -> list[str]:
    """Stream pieces: words with their trailing space (deterministic)."""
    return re.findall(r"\S+\s*|\s+", text)


def halves(text: str) -> list[str]:
    middle = len(text) // 2
    return [p for p in (text[:middle], text[middle:]) if p]


def vector(text: str, dimensions: int = 8) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 128) / 128, 6) for i in range(dimensions)]
