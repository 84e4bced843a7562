"""OpenAI's wire format (also Azure's and every OpenAI-compatible service's), as the fake
upstream speaks it: chat completions (plain and SSE, tool calls, usage chunk), legacy
completions, embeddings (float or base64), model lists and ``{"error": {...}}`` bodies."""

from __future__ import annotations

import array
import base64
import json
from typing import Any

from tests.fakes.script import Resolved, halves, pieces, vector

CREATED = 1_767_000_000


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return "".join(p.get("text", "") for p in content or [] if p.get("type") == "text")
    return str(body.get("prompt") or "")


def usage(r: Resolved) -> dict[str, Any]:
    u = r.usage
    return {
        "prompt_tokens": u.prompt,
        "completion_tokens": u.completion,
        "total_tokens": u.prompt + u.completion,
        "prompt_tokens_details": {"cached_tokens": u.cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning, "audio_tokens": 0},
    }


def _calls(r: Resolved) -> list[dict[str, Any]]:
    return [
        {
            "id": c.id,
            "type": "function",
            "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
        }
        for c in r.tool_calls
    ]


def _logprobs(text: str) -> dict[str, Any]:
    tokens: list[dict[str, Any]] = [
        {"token": t, "logprob": -0.25, "bytes": None, "top_logprobs": []} for t in pieces(text)
    ]
    return {"content": tokens, "refusal": None}


def chat_body(r: Resolved, model: str, request: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": r.text or None, "refusal": None}
    if r.tool_calls:
        message["tool_calls"] = _calls(r)
    choices = [
        {
            "index": i,
            "message": message,
            "logprobs": _logprobs(r.text) if request.get("logprobs") else None,
            "finish_reason": r.finish,
        }
        for i in range(r.n)
    ]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": choices,
        "usage": usage(r),
        "system_fingerprint": "fp_fake",
    }


def _sse(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    return f"data: {text}\n\n".encode()


def chat_events(r: Resolved, model: str, request: dict[str, Any]) -> list[bytes]:
    include_usage = bool((request.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> bytes:
        body: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
        }
        if include_usage:
            body["usage"] = None
        return _sse(body)

    events: list[bytes] = []
    for i in range(r.n):
        events.append(chunk({"role": "assistant", "content": "", "refusal": None}, index=i))
        events += [chunk({"content": piece}, index=i) for piece in pieces(r.text)]
        for position, call in enumerate(_calls(r)):
            head = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
            events.append(chunk({"tool_calls": [{"index": position, **head}]}, index=i))
            for part in halves(call["function"]["arguments"]):
                delta = {"tool_calls": [{"index": position, "function": {"arguments": part}}]}
                events.append(chunk(delta, index=i))
        events.append(chunk({}, r.finish, index=i))
    if include_usage:
        tail = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [],
            "usage": usage(r),
        }
        events.append(_sse(tail))
    events.append(_sse("[DONE]"))
    return events


def completion_body(r: Resolved, model: str) -> dict[str, Any]:
    choice = {"text": r.text, "index": 0, "logprobs": None, "finish_reason": r.finish}
    return {
        "id": "cmpl-fake",
        "object": "text_completion",
        "created": CREATED,
        "model": model,
        "choices": [choice],
        "usage": usage(r),
    }


def completion_events(r: Resolved, model: str, request: dict[str, Any]) -> list[bytes]:
    def chunk(text: str, finish: str | None) -> bytes:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}
        body = {
            "id": "cmpl-fake",
            "object": "text_completion",
            "created": CREATED,
            "model": model,
            "choices": [choice],
        }
        return _sse(body)

    events = [chunk(piece, None) for piece in pieces(r.text)] + [chunk("", r.finish)]
    if (request.get("stream_options") or {}).get("include_usage"):
        tail = {
            "id": "cmpl-fake",
            "object": "text_completion",
            "created": CREATED,
            "model": model,
            "choices": [],
            "usage": usage(r),
        }
        events.append(_sse(tail))
    return [*events, _sse("[DONE]")]


def embeddings_body(request: dict[str, Any], model: str, prompt_tokens: int) -> dict[str, Any]:
    inputs = request.get("input")
    texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
    dimensions = int(request.get("dimensions") or 8)
    data = []
    for i, text in enumerate(texts):
        values = vector(str(text), dimensions)
        embedding: Any = values
        if request.get("encoding_format") == "base64":
            embedding = base64.b64encode(array.array("f", values).tobytes()).decode()
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def models_body(models: list[str]) -> dict[str, Any]:
    data = [{"id": m, "object": "model", "created": CREATED, "owned_by": "fake"} for m in models]
    return {"object": "list", "data": data}


ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
}


def error_body(status: int, message: str, error_type: str | None = None) -> dict[str, Any]:
    kind = error_type or ERROR_TYPES.get(status, "server_error")
    code = "rate_limit_exceeded" if status == 429 else None
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def error_event(message: str, error_type: str | None = None) -> bytes:
    return _sse({"error": {"message": message, "type": error_type or "server_error"}})
