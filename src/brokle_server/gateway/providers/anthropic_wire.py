"""Pure translation between OpenAI Chat Completions and Anthropic's Messages API.

Requests: system/developer messages become ``system`` blocks, assistant ``tool_calls``
become ``tool_use`` blocks, ``tool`` messages become ``tool_result`` blocks in a user turn,
images become ``base64`` (data URLs) or ``url`` sources, and consecutive turns of one role
are merged. ``cache_control`` on a content part or tool is carried over. Responses go back
the other way; stop reasons map as in :data:`FINISH_REASONS`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from brokle_server.errors import InvalidInput
from brokle_server.gateway.providers.common import (
    TRANSLATED_CHAT_PARAMS,
    assistant_message,
    content_parts,
    dump_arguments,
    max_output_tokens,
    messages_of,
    openai_response,
    parse_arguments,
    parse_data_url,
    stop_list,
)
from brokle_server.gateway.types import JSONDict, UnsupportedParameter, Usage

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

KNOWN_PARAMS = TRANSLATED_CHAT_PARAMS


def _block(part: Mapping[str, Any], provider: str) -> JSONDict | None:
    kind = part.get("type")
    block: JSONDict
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise InvalidInput("Text content parts need a 'text' string")
        if not text:
            return None  # Anthropic refuses empty text blocks
        block = {"type": "text", "text": text}
    elif kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        if not isinstance(url, str):
            raise InvalidInput("Image content parts need 'image_url.url'")
        data_url = parse_data_url(url)
        if data_url is None:
            block = {"type": "image", "source": {"type": "url", "url": url}}
        else:
            media_type, data = data_url
            source = {"type": "base64", "media_type": media_type, "data": data}
            block = {"type": "image", "source": source}
    else:
        raise UnsupportedParameter(f"messages[].content[].type={kind}", provider)
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _blocks(content: object, provider: str) -> list[JSONDict]:
    return [b for part in content_parts(content) if (b := _block(part, provider)) is not None]


def _append(messages: list[JSONDict], role: str, blocks: list[JSONDict]) -> None:
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _assistant_blocks(message: Mapping[str, Any], provider: str) -> list[JSONDict]:
    blocks = [
        b
        for part in content_parts(message.get("content"))
        if part.get("type") != "refusal"
        if (b := _block(part, provider)) is not None
    ]
    for call in message.get("tool_calls") or ():
        function = call["function"]
        blocks.append(
            {
                "type": "tool_use",
                "id": call["id"],
                "name": function["name"],
                "input": parse_arguments(function.get("arguments")),
            }
        )
    return blocks


def _tool_result(message: Mapping[str, Any], provider: str) -> JSONDict:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str):
        raise InvalidInput("Tool messages need a 'tool_call_id'")
    content = message.get("content")
    result: Any = content if isinstance(content, str) else _blocks(content, provider)
    return {"type": "tool_result", "tool_use_id": call_id, "content": result}


def _tools(tools: object, provider: str) -> list[JSONDict]:
    if not isinstance(tools, list):
        raise InvalidInput("'tools' must be a list")
    out = []
    for tool in tools:
        if not isinstance(tool, Mapping) or tool.get("type") != "function":
            raise UnsupportedParameter("tools[].type", provider, "only function tools")
        function = tool["function"]
        spec: JSONDict = {
            "name": function["name"],
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            spec["description"] = function["description"]
        if "cache_control" in tool:
            spec["cache_control"] = tool["cache_control"]
        out.append(spec)
    return out


def _tool_choice(body: Mapping[str, Any]) -> JSONDict | None:
    choice = body.get("tool_choice")
    out: JSONDict | None
    if choice is None:
        out = None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        out = {"type": "none"}
    elif isinstance(choice, Mapping) and choice.get("type") == "function":
        out = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise InvalidInput("'tool_choice' must be auto, required, none or a function")
    if body.get("parallel_tool_calls") is False and out is not None and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    elif body.get("parallel_tool_calls") is False and out is None:
        out = {"type": "auto", "disable_parallel_tool_use": True}
    return out


def to_anthropic(
    body: Mapping[str, Any], model: str, *, provider: str, default_max_tokens: int
) -> JSONDict:
    """OpenAI chat body → Anthropic Messages body (``stream`` is set by the caller)."""
    system: list[JSONDict] = []
    messages: list[JSONDict] = []
    for message in messages_of(body):
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_blocks(message.get("content"), provider))
        elif role == "user":
            _append(messages, "user", _blocks(message.get("content"), provider))
        elif role == "assistant":
            _append(messages, "assistant", _assistant_blocks(message, provider))
        elif role == "tool":
            _append(messages, "user", [_tool_result(message, provider)])
        else:
            raise UnsupportedParameter(f"messages[].role={role}", provider)
    out: JSONDict = {
        "model": model,
        "messages": messages,
        "max_tokens": max_output_tokens(body) or default_max_tokens,
    }
    if system:
        out["system"] = system
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, int | float) or not 0 <= temperature <= 1:
            raise UnsupportedParameter("temperature", provider, "Anthropic accepts 0 to 1")
        out["temperature"] = temperature
    for param in ("top_p", "top_k"):
        if body.get(param) is not None:
            out[param] = body[param]
    if stops := stop_list(body.get("stop")):
        out["stop_sequences"] = stops
    if body.get("tools"):
        out["tools"] = _tools(body["tools"], provider)
    if (choice := _tool_choice(body)) is not None:
        out["tool_choice"] = choice
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    return out


def from_anthropic(data: Mapping[str, Any], model: str) -> tuple[JSONDict, Usage, str]:
    """Anthropic Messages response → (OpenAI chat.completion, usage, upstream model)."""
    texts: list[str] = []
    calls: list[JSONDict] = []
    for block in data.get("content") or ():
        if block.get("type") == "text":
            texts.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {
                        "name": block["name"],
                        "arguments": dump_arguments(block.get("input")),
                    },
                }
            )
    usage = Usage.from_anthropic(data.get("usage"))
    upstream_model = str(data.get("model") or model)
    finish = FINISH_REASONS.get(str(data.get("stop_reason")), "stop")
    choice = {
        "index": 0,
        "message": assistant_message("".join(texts), calls),
        "logprobs": None,
        "finish_reason": finish,
    }
    response = openai_response(
        str(data.get("id") or ""), int(time.time()), upstream_model, [choice], usage.to_openai()
    )
    return response, usage, upstream_model
