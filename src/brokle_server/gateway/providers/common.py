"""Small pieces the translating providers share: content parts, data URLs, tool arguments.

Request bodies come from clients, so every reader here either returns a value of the right
type or raises :class:`InvalidInput` naming what is wrong; :func:`malformed_input` turns a
stray ``KeyError``/``TypeError`` deep in a translation into the same 400.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import orjson

from brokle_server.errors import InvalidInput
from brokle_server.gateway.types import JSONDict


@contextmanager
def malformed_input(what: str) -> Iterator[None]:
    """Report a body that does not have the expected shape as a 400, not a 500."""
    try:
        yield
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else "unexpected value"
        raise InvalidInput(f"Malformed {what}: {detail}", code="invalid_request") from exc


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``data:image/png;base64,AAAA`` → ``("image/png", "AAAA")``; None for other URLs."""
    if not url.startswith("data:"):
        return None
    header, sep, data = url[5:].partition(",")
    if not sep or not header.endswith(";base64"):
        raise InvalidInput("Image data URLs must be base64 encoded (data:<type>;base64,...)")
    return header[: -len(";base64")] or "application/octet-stream", data


def parse_arguments(arguments: object) -> JSONDict:
    """A tool call's ``arguments`` (a JSON string) as an object."""
    if isinstance(arguments, dict):
        return arguments
    if arguments in (None, ""):
        return {}
    try:
        value = orjson.loads(arguments)  # type: ignore[arg-type]
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise InvalidInput("Tool call arguments must be a JSON object string") from exc
    if not isinstance(value, dict):
        raise InvalidInput("Tool call arguments must be a JSON object string")
    return value


def dump_arguments(value: object) -> str:
    return orjson.dumps(value if value is not None else {}).decode()


def content_parts(content: object) -> list[Mapping[str, Any]]:
    """OpenAI message ``content`` (string, list of parts or None) as a list of parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, Mapping):
                raise InvalidInput("Message content parts must be objects")
            parts.append(part)
        return parts
    raise InvalidInput("Message content must be a string or a list of parts")


def text_of(content: object) -> str:
    """The text of a message's content; non-text parts are refused."""
    texts = []
    for part in content_parts(content):
        if part.get("type") not in ("text", "refusal"):
            raise InvalidInput(f"Only text content is allowed here, not '{part.get('type')}'")
        texts.append(str(part.get("text") or part.get("refusal") or ""))
    return "".join(texts)


def stop_list(stop: object) -> list[str]:
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return list(stop)
    raise InvalidInput("'stop' must be a string or a list of strings")


def max_output_tokens(body: Mapping[str, Any]) -> int | None:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInput("'max_tokens' must be a positive integer")
    return value


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def messages_of(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("'messages' must be a non-empty list")
    for message in messages:
        if not isinstance(message, Mapping):
            raise InvalidInput("Each message must be an object")
    return messages


def openai_response(
    response_id: str,
    created: int,
    model: str,
    choices: list[JSONDict],
    usage: JSONDict,
) -> JSONDict:
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage,
    }


def assistant_message(text: str, tool_calls: list[JSONDict]) -> JSONDict:
    message: JSONDict = {
        "role": "assistant",
        "content": text if text or not tool_calls else None,
        "refusal": None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def delta_choice(index: int, delta: JSONDict, finish_reason: str | None = None) -> JSONDict:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


# Chat parameters a translating provider understands (and may still refuse by value);
# anything else in a body is refused by name rather than silently dropped.
TRANSLATED_CHAT_PARAMS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "stream",
        "stream_options",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "user",
        "n",
        "logprobs",
        "top_logprobs",
        "response_format",
    }
)
