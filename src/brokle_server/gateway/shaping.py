"""Request and response shaping for the gateway: token estimates for limits and budgets,
the text a span records, and conversions between a finished response and a stream."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from brokle_server.gateway.tracing import text_of
from brokle_server.gateway.types import Usage

_NOT_PROMPT = frozenset(
    {
        "model",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "temperature",
        "top_p",
        "user",
        "metadata",
        "seed",
        "stop",
    }
)


def estimate_input_tokens(body: dict[str, Any]) -> int:
    """A cheap upper-leaning estimate of the billed input: about one token per 3 characters of
    everything that reaches the model (messages, tools and schemas included)."""
    prompt = {k: v for k, v in body.items() if k not in _NOT_PROMPT}
    return max(1, len(text_of(prompt)) // 3)


def max_output_tokens(body: dict[str, Any], default: int) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and value > 0:
            return value * max(1, int(body.get("n") or 1))
    return default


def output_of(endpoint: str, response: dict[str, Any]) -> Any:
    if endpoint == "embeddings":
        return ""
    choices = response.get("choices") or []
    if endpoint == "completions":
        return "".join(str(c.get("text", "")) for c in choices)
    return [c.get("message") for c in choices]


def assemble(chunks: list[dict[str, Any]], usage: Usage, model: str) -> dict[str, Any]:
    """A chat.completion built from a finished stream, for the cache."""
    content: dict[int, list[str]] = {}
    tools: dict[int, dict[int, dict[str, Any]]] = {}
    finish: dict[int, str | None] = {}
    first_id = ""
    for chunk in chunks:
        first_id = first_id or str(chunk.get("id", ""))
        for choice in chunk.get("choices") or []:
            index = int(choice.get("index", 0))
            delta = choice.get("delta") or {}
            if delta.get("content"):
                content.setdefault(index, []).append(delta["content"])
            for call in delta.get("tool_calls") or []:
                slot = tools.setdefault(index, {}).setdefault(
                    int(call.get("index", 0)),
                    {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                )
                slot["id"] = call.get("id") or slot["id"]
                fn = call.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                finish[index] = choice["finish_reason"]
    indexes = sorted(set(content) | set(tools) | set(finish)) or [0]
    choices = []
    for index in indexes:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(content.get(index, []))}
        if index in tools:
            message["tool_calls"] = [tools[index][i] for i in sorted(tools[index])]
        choices.append(
            {"index": index, "message": message, "finish_reason": finish.get(index, "stop")}
        )
    return {
        "id": first_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage.to_openai(),
    }


async def replay(response: dict[str, Any], include_usage: bool) -> AsyncIterator[dict[str, Any]]:
    """A cached chat.completion as a stream of chunks."""
    base = {
        "id": response.get("id", ""),
        "object": "chat.completion.chunk",
        "created": response.get("created", int(time.time())),
        "model": response.get("model", ""),
    }
    for choice in response.get("choices") or []:
        message = choice.get("message") or {}
        delta: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
        if message.get("tool_calls"):
            delta["tool_calls"] = [
                {"index": i, **call} for i, call in enumerate(message["tool_calls"])
            ]
        yield base | {
            "choices": [{"index": choice.get("index", 0), "delta": delta, "finish_reason": None}]
        }
        yield base | {
            "choices": [
                {
                    "index": choice.get("index", 0),
                    "delta": {},
                    "finish_reason": choice.get("finish_reason", "stop"),
                }
            ]
        }
    if include_usage:
        yield base | {"choices": [], "usage": response.get("usage")}
