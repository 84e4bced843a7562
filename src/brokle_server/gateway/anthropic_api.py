"""The inbound Anthropic Messages API (``POST /v1/messages``) on top of the internal format.

- :func:`to_internal`: an Anthropic request → an OpenAI-format chat body (system string or
  blocks, text/image/tool_use/tool_result blocks, tools, tool_choice, stop_sequences, ...).
- :func:`to_anthropic_message`: an internal (OpenAI) response + :class:`Usage` → a Message.
- :class:`AnthropicStreamEncoder`: OpenAI chunks → Anthropic SSE events (``message_start``,
  ``content_block_start``/``delta``/``stop`` for text and ``tool_use`` blocks, one
  ``message_delta`` with the stop reason and usage, ``message_stop``); :func:`encode_event`
  frames one event for the wire.
- :func:`error_body`: any Brokle error in Anthropic's shape
  ``{"type": "error", "error": {"type": ..., "message": ...}}``.

Not carried over: ``thinking`` (refused unless disabled), thinking blocks of earlier turns
(dropped: the internal format has no place for them) and ``is_error`` on tool results.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from brokle_server.errors import BrokleError, InvalidInput
from brokle_server.gateway.providers.common import (
    dump_arguments,
    malformed_input,
    parse_arguments,
)
from brokle_server.gateway.types import JSONDict, Usage

Event = tuple[str, JSONDict]
"""An SSE event: (event name, JSON data)."""

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_KNOWN = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "stream",
        "metadata",
        "thinking",
    }
)
_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def _unsupported(what: str) -> InvalidInput:
    return InvalidInput(f"{what} is not supported by this gateway", code="unsupported_parameter")


def _image_part(block: Mapping[str, Any]) -> JSONDict:
    source = block["source"]
    if source.get("type") == "base64":
        url = f"data:{source['media_type']};base64,{source['data']}"
    elif source.get("type") == "url":
        url = source["url"]
    else:
        raise _unsupported(f"Image source type '{source.get('type')}'")
    return {"type": "image_url", "image_url": {"url": url}}


def _user_part(block: Mapping[str, Any]) -> JSONDict:
    kind = block.get("type")
    part: JSONDict
    if kind == "text":
        part = {"type": "text", "text": str(block["text"])}
    elif kind == "image":
        part = _image_part(block)
    else:
        raise _unsupported(f"Content block type '{kind}'")
    if "cache_control" in block:
        part["cache_control"] = block["cache_control"]
    return part


def _blocks(content: object) -> list[Mapping[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not all(isinstance(b, Mapping) for b in content):
        raise InvalidInput("Message content must be a string or a list of content blocks")
    return content


def _tool_result(block: Mapping[str, Any]) -> JSONDict:
    content = block.get("content", "")
    if not isinstance(content, str):
        texts = []
        for item in _blocks(content):
            if item.get("type") != "text":
                raise _unsupported(f"A '{item.get('type')}' block inside tool_result")
            texts.append(str(item["text"]))
        content = "".join(texts)
    return {"role": "tool", "tool_call_id": str(block["tool_use_id"]), "content": content}


def _user_messages(content: object) -> list[JSONDict]:
    tool_messages: list[JSONDict] = []
    parts: list[JSONDict] = []
    for block in _blocks(content):
        if block.get("type") == "tool_result":
            tool_messages.append(_tool_result(block))
        else:
            parts.append(_user_part(block))
    if parts:
        only_text = len(parts) == 1 and parts[0]["type"] == "text" and len(parts[0]) == 2
        tool_messages.append({"role": "user", "content": parts[0]["text"] if only_text else parts})
    return tool_messages


def _assistant_message(content: object) -> JSONDict:
    texts: list[str] = []
    calls: list[JSONDict] = []
    for block in _blocks(content):
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block["text"]))
        elif kind == "tool_use":
            function = {"name": str(block["name"]), "arguments": dump_arguments(block.get("input"))}
            calls.append({"id": str(block["id"]), "type": "function", "function": function})
        elif kind not in ("thinking", "redacted_thinking"):
            raise _unsupported(f"Assistant content block type '{kind}'")
    message: JSONDict = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _system(system: object) -> JSONDict:
    if isinstance(system, str):
        return {"role": "system", "content": system}
    return {"role": "system", "content": [_user_part(b) for b in _blocks(system)]}


def _tools(tools: object) -> list[JSONDict]:
    if not isinstance(tools, list):
        raise InvalidInput("'tools' must be a list")
    out = []
    for tool in tools:
        if tool.get("type") not in (None, "custom"):
            raise _unsupported(f"Server tool '{tool.get('type')}'")
        function: JSONDict = {"name": str(tool["name"]), "parameters": tool["input_schema"]}
        if tool.get("description"):
            function["description"] = tool["description"]
        spec: JSONDict = {"type": "function", "function": function}
        if "cache_control" in tool:
            spec["cache_control"] = tool["cache_control"]
        out.append(spec)
    return out


def _apply_tool_choice(out: JSONDict, choice: Mapping[str, Any]) -> None:
    kind = choice.get("type")
    if kind == "tool":
        out["tool_choice"] = {"type": "function", "function": {"name": str(choice["name"])}}
    elif kind in _TOOL_CHOICES:
        out["tool_choice"] = _TOOL_CHOICES[str(kind)]
    else:
        raise InvalidInput("'tool_choice.type' must be auto, any, tool or none")
    if choice.get("disable_parallel_tool_use"):
        out["parallel_tool_calls"] = False


def to_internal(body: Mapping[str, Any]) -> JSONDict:
    """An Anthropic Messages request → the internal OpenAI chat body. Raises InvalidInput."""
    for key in body:
        if key not in _KNOWN:
            raise _unsupported(f"Parameter '{key}'")
    model, max_tokens, messages = body.get("model"), body.get("max_tokens"), body.get("messages")
    if not isinstance(model, str) or not model:
        raise InvalidInput("'model' is required")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidInput("'max_tokens' is required and must be a positive integer")
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("'messages' must be a non-empty list")
    thinking = body.get("thinking")
    if thinking is not None and (
        not isinstance(thinking, Mapping) or thinking.get("type") != "disabled"
    ):
        raise _unsupported("Extended thinking")
    with malformed_input("Messages request"):
        internal: list[JSONDict] = []
        if body.get("system"):
            internal.append(_system(body["system"]))
        for message in messages:
            role = message["role"]
            if role == "user":
                internal.extend(_user_messages(message["content"]))
            elif role == "assistant":
                internal.append(_assistant_message(message["content"]))
            else:
                raise InvalidInput(f"Message role must be user or assistant, not '{role}'")
        out: JSONDict = {"model": model, "messages": internal, "max_tokens": max_tokens}
        for key in ("temperature", "top_p", "top_k"):
            if body.get(key) is not None:
                out[key] = body[key]
        if body.get("stop_sequences"):
            out["stop"] = list(body["stop_sequences"])
        if body.get("tools"):
            out["tools"] = _tools(body["tools"])
        if body.get("tool_choice"):
            _apply_tool_choice(out, body["tool_choice"])
        user_id = (body.get("metadata") or {}).get("user_id")
        if user_id:
            out["user"] = str(user_id)
        if body.get("stream"):
            out["stream"] = True
            out["stream_options"] = {"include_usage": True}
        return out


def _message_id(response_id: object) -> str:
    text = str(response_id or "")
    if text.startswith("msg_"):
        return text
    return f"msg_{text or uuid.uuid4().hex[:24]}"


def _tool_input(arguments: object) -> JSONDict:
    try:
        return parse_arguments(arguments)
    except InvalidInput:
        return {}  # the model produced invalid JSON; Anthropic clients expect an object


def to_anthropic_message(response: Mapping[str, Any], usage: Usage, *, model: str) -> JSONDict:
    """An internal chat.completion + its usage → an Anthropic Message (first choice only)."""
    choices = response.get("choices") or [{}]
    choice = choices[0]
    message = choice.get("message") or {}
    content: list[JSONDict] = []
    if message.get("content"):
        content.append({"type": "text", "text": str(message["content"])})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": str(call.get("id")),
                "name": str(function.get("name")),
                "input": _tool_input(function.get("arguments")),
            }
        )
    return {
        "id": _message_id(response.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS.get(str(choice.get("finish_reason")), "end_turn"),
        "stop_sequence": None,
        "usage": usage.to_anthropic(),
    }


class AnthropicStreamEncoder:
    """Re-frames an internal chunk stream as Anthropic events; feed chunks, then finish.

    Text and each tool call become their own content block, numbered in order of first
    appearance (OpenAI's tool-call index is mapped to the block index). Usage is taken from
    the final usage chunk, or given to :meth:`finish`; it goes out in ``message_delta``.
    """

    def __init__(self, model: str, message_id: str | None = None) -> None:
        self.model = model
        self.message_id = message_id
        self.usage: Usage | None = None
        self.stop_reason = "end_turn"
        self._started = False
        self._open: int | None = None
        self._open_is_text = False
        self._next_index = 0
        self._tool_blocks: dict[int, int] = {}

    def _start(self, chunk_id: object) -> list[Event]:
        self._started = True
        message: JSONDict = {
            "id": self.message_id or _message_id(chunk_id),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [("message_start", {"type": "message_start", "message": message})]

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        index, self._open = self._open, None
        return [("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _open_block(self, block: JSONDict) -> tuple[int, list[Event]]:
        events = self._close()
        index = self._open = self._next_index
        self._next_index += 1
        self._open_is_text = block["type"] == "text"
        start = {"type": "content_block_start", "index": index, "content_block": block}
        return index, [*events, ("content_block_start", start)]

    @staticmethod
    def _delta(index: int, delta: JSONDict) -> Event:
        return (
            "content_block_delta",
            {"type": "content_block_delta", "index": index, "delta": delta},
        )

    def feed(self, chunk: Mapping[str, Any]) -> list[Event]:
        events = [] if self._started else self._start(chunk.get("id"))
        if chunk.get("usage"):
            self.usage = Usage.from_openai(chunk["usage"])
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # Anthropic messages have a single choice
            delta = choice.get("delta") or {}
            if delta.get("content"):
                index = self._open
                if index is None or not self._open_is_text:
                    index, opened = self._open_block({"type": "text", "text": ""})
                    events += opened
                text_delta = {"type": "text_delta", "text": delta["content"]}
                events.append(self._delta(index, text_delta))
            for call in delta.get("tool_calls") or ():
                events += self._tool_call(call)
            if choice.get("finish_reason"):
                self.stop_reason = STOP_REASONS.get(str(choice["finish_reason"]), "end_turn")
        return events

    def _tool_call(self, call: Mapping[str, Any]) -> list[Event]:
        events: list[Event] = []
        position = int(call.get("index", 0))
        function = call.get("function") or {}
        if position not in self._tool_blocks:
            block = {
                "type": "tool_use",
                "id": str(call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}"),
                "name": str(function.get("name") or ""),
                "input": {},
            }
            self._tool_blocks[position], opened = self._open_block(block)
            events += opened
        if function.get("arguments"):
            delta = {"type": "input_json_delta", "partial_json": str(function["arguments"])}
            events.append(self._delta(self._tool_blocks[position], delta))
        return events

    def finish(self, usage: Usage | None = None) -> list[Event]:
        """Close the message; ``usage`` overrides what the usage chunk said."""
        events = [] if self._started else self._start(None)
        events += self._close()
        final = (usage or self.usage or Usage()).to_anthropic()
        delta = {"stop_reason": self.stop_reason, "stop_sequence": None}
        events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": final}))
        events.append(("message_stop", {"type": "message_stop"}))
        return events


def error_type(status: int) -> str:
    """Anthropic's error ``type`` for an HTTP status."""
    known = {
        400: "invalid_request_error",
        401: "authentication_error",
        402: "billing_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        503: "overloaded_error",
        504: "timeout_error",
        529: "overloaded_error",
    }
    if status in known:
        return known[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(error: BrokleError, status: int) -> JSONDict:
    return {"type": "error", "error": {"type": error_type(status), "message": error.message}}


def error_event(error: BrokleError, status: int) -> Event:
    """The ``error`` event to send when a stream fails after it started."""
    return ("error", error_body(error, status))


def encode_event(event: Event) -> bytes:
    name, data = event
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
