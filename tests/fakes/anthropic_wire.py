"""Anthropic's Messages API wire format as the fake upstream speaks it: a Message body, the
SSE event sequence (message_start, ping, content blocks with text_delta / input_json_delta,
message_delta with the output count, message_stop), model lists and error bodies/events."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.script import Resolved, halves, pieces

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = [b.get("text", "") for b in content or [] if b.get("type") == "text"]
        if texts:
            return "".join(texts)
    return ""


def usage(r: Resolved) -> dict[str, Any]:
    u = r.usage
    out: dict[str, Any] = {
        "input_tokens": u.prompt - u.cached - u.cache_write,
        "cache_creation_input_tokens": u.cache_write,
        "cache_read_input_tokens": u.cached,
        "output_tokens": u.completion,
    }
    if u.reasoning:
        out["output_tokens_details"] = {"thinking_tokens": u.reasoning}
    return out


def _blocks(r: Resolved) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if r.text:
        blocks.append({"type": "text", "text": r.text})
    for call in r.tool_calls:
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        )
    return blocks


def message_body(r: Resolved, model: str) -> dict[str, Any]:
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": _blocks(r),
        "stop_reason": STOP_REASONS[r.finish],
        "stop_sequence": None,
        "usage": usage(r),
    }


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def message_events(r: Resolved, model: str) -> list[bytes]:
    start_usage = {**usage(r), "output_tokens": 1}
    start_usage.pop("output_tokens_details", None)
    message = {**message_body(r, model), "content": [], "stop_reason": None, "usage": start_usage}
    events = [
        _event("message_start", {"type": "message_start", "message": message}),
        _event("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(_blocks(r)):
        if block["type"] == "text":
            head: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in pieces(block["text"])]
        else:
            head = {**block, "input": {}}
            parts = ["", *halves(json.dumps(block["input"]))]
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in parts]
        start = {"type": "content_block_start", "index": index, "content_block": head}
        events.append(_event("content_block_start", start))
        for delta in deltas:
            body = {"type": "content_block_delta", "index": index, "delta": delta}
            events.append(_event("content_block_delta", body))
        events.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    final_usage: dict[str, Any] = {"output_tokens": r.usage.completion}
    if r.usage.reasoning:
        final_usage["output_tokens_details"] = {"thinking_tokens": r.usage.reasoning}
    stop = {"stop_reason": STOP_REASONS[r.finish], "stop_sequence": None}
    events.append(
        _event("message_delta", {"type": "message_delta", "delta": stop, "usage": final_usage})
    )
    events.append(_event("message_stop", {"type": "message_stop"}))
    return events


def models_body(models: list[str]) -> dict[str, Any]:
    data = [
        {"type": "model", "id": m, "display_name": m, "created_at": "2026-01-01T00:00:00Z"}
        for m in models
    ]
    first, last = (models[0], models[-1]) if models else (None, None)
    return {"data": data, "has_more": False, "first_id": first, "last_id": last}


def error_body(status: int, message: str, error_type: str | None = None) -> dict[str, Any]:
    kind = error_type or ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def error_event(message: str, error_type: str | None = None) -> bytes:
    return _event("error", error_body(529, message, error_type))
