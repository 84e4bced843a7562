"""Gemini's ``generateContent`` wire format as the fake upstream speaks it: candidates with
text and whole ``functionCall`` parts, ``usageMetadata`` repeated with running totals on
every streamed chunk, ``batchEmbedContents``, model lists and ``google.rpc`` error bodies."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.script import Resolved, pieces, vector

FINISH_REASONS = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "content_filter": "SAFETY",
}
STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def last_user_text(body: dict[str, Any]) -> str:
    for content in reversed(body.get("contents") or []):
        if content.get("role", "user") == "user":
            texts = [p["text"] for p in content.get("parts") or [] if "text" in p]
            if texts:
                return "".join(texts)
    return ""


def usage(r: Resolved, completion: int | None = None) -> dict[str, Any]:
    u = r.usage
    visible = (u.completion - u.reasoning) if completion is None else completion
    out: dict[str, Any] = {
        "promptTokenCount": u.prompt,
        "candidatesTokenCount": visible,
        "totalTokenCount": u.prompt + visible + u.reasoning,
    }
    if u.cached:
        out["cachedContentTokenCount"] = u.cached
    if u.reasoning:
        out["thoughtsTokenCount"] = u.reasoning
    return out


def _parts(r: Resolved) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"text": r.text}] if r.text else []
    parts += [{"functionCall": {"name": c.name, "args": c.arguments}} for c in r.tool_calls]
    return parts


def _candidate(parts: list[dict[str, Any]], finish: str | None, index: int) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": index}
    if finish is not None:
        candidate["finishReason"] = finish
    return candidate


def generate_body(r: Resolved, model: str) -> dict[str, Any]:
    finish = FINISH_REASONS[r.finish]
    return {
        "candidates": [_candidate(_parts(r), finish, i) for i in range(r.n)],
        "usageMetadata": usage(r),
        "modelVersion": model,
        "responseId": "fake-response",
    }


def _sse(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data)}\r\n\r\n".encode()


def stream_events(r: Resolved, model: str) -> list[bytes]:
    """One chunk per text piece, one per function call; the last carries finishReason."""
    parts: list[dict[str, Any]] = [{"text": p} for p in pieces(r.text)]
    parts += [{"functionCall": {"name": c.name, "args": c.arguments}} for c in r.tool_calls]
    if not parts:
        parts = [{"text": ""}]
    events = []
    visible = r.usage.completion - r.usage.reasoning
    for position, part in enumerate(parts):
        last = position == len(parts) - 1
        running = visible if last else min(visible, position + 1)
        candidates = [
            _candidate([part], FINISH_REASONS[r.finish] if last else None, i) for i in range(r.n)
        ]
        body = {
            "candidates": candidates,
            "usageMetadata": usage(r, running),
            "modelVersion": model,
            "responseId": "fake-response",
        }
        events.append(_sse(body))
    return events


def embed_body(request: dict[str, Any]) -> dict[str, Any]:
    embeddings = []
    for item in request.get("requests") or []:
        text = "".join(p.get("text", "") for p in item["content"]["parts"])
        values = vector(text, int(item.get("outputDimensionality") or 8))
        embeddings.append({"values": values})
    return {"embeddings": embeddings}


def models_body(models: list[str]) -> dict[str, Any]:
    return {"models": [{"name": f"models/{m}", "displayName": m} for m in models]}


def error_body(
    status: int, message: str, error_type: str | None = None, retry_after: float | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": error_type or STATUSES.get(status, "UNKNOWN"),
    }
    if retry_after is not None:
        error["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after}s"}
        ]
    return {"error": error}


def error_event(message: str, error_type: str | None = None) -> bytes:
    return _sse(error_body(503, message, error_type))
