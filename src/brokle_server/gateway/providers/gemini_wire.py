"""Pure translation between OpenAI Chat Completions and Gemini's ``generateContent``.

Requests: system/developer messages become ``systemInstruction``, ``assistant`` becomes the
``model`` role, tool calls become ``functionCall`` parts and ``tool`` messages
``functionResponse`` parts (named by looking up the call id), images become ``inlineData``
(data URLs) or ``fileData`` (other URLs), tools become ``functionDeclarations`` with
``parametersJsonSchema``, and sampling settings go into ``generationConfig``. Responses:
text parts (not thoughts) are joined, each ``functionCall`` becomes one tool call with a
fresh id, and ``usageMetadata`` maps per :func:`usage_from_gemini`.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from typing import Any

import orjson

from brokle_server.errors import InvalidInput
from brokle_server.gateway.providers.common import (
    TRANSLATED_CHAT_PARAMS,
    content_parts,
    dump_arguments,
    max_output_tokens,
    messages_of,
    new_call_id,
    parse_arguments,
    parse_data_url,
    stop_list,
)
from brokle_server.gateway.types import JSONDict, UnsupportedParameter, Usage

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "LANGUAGE": "content_filter",
}

KNOWN_PARAMS = TRANSLATED_CHAT_PARAMS | {"frequency_penalty", "presence_penalty", "seed"}

_GENERATION_FIELDS = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "n": "candidateCount",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "seed": "seed",
}


def usage_from_gemini(meta: Mapping[str, Any] | None) -> Usage:
    """``promptTokenCount`` already includes cached tokens; thoughts are billed as output."""
    if not meta:
        return Usage()
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    return Usage(
        input_tokens=int(meta.get("promptTokenCount") or 0)
        + int(meta.get("toolUsePromptTokenCount") or 0),
        output_tokens=int(meta.get("candidatesTokenCount") or 0) + thoughts,
        cached_tokens=int(meta.get("cachedContentTokenCount") or 0),
        reasoning_tokens=thoughts,
    )


def _part(part: Mapping[str, Any], provider: str) -> JSONDict | None:
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise InvalidInput("Text content parts need a 'text' string")
        return {"text": text} if text else None
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        if not isinstance(url, str):
            raise InvalidInput("Image content parts need 'image_url.url'")
        data_url = parse_data_url(url)
        if data_url is not None:
            return {"inlineData": {"mimeType": data_url[0], "data": data_url[1]}}
        mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"
        return {"fileData": {"mimeType": mime, "fileUri": url}}
    raise UnsupportedParameter(f"messages[].content[].type={kind}", provider)


def _parts(content: object, provider: str) -> list[JSONDict]:
    return [p for part in content_parts(content) if (p := _part(part, provider)) is not None]


def _function_response(content: object) -> JSONDict:
    text = (
        content
        if isinstance(content, str)
        else "".join(str(p.get("text", "")) for p in content_parts(content))
    )
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"content": text}


def _append(contents: list[JSONDict], role: str, parts: list[JSONDict]) -> None:
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _tools(tools: object, provider: str) -> list[JSONDict]:
    if not isinstance(tools, list):
        raise InvalidInput("'tools' must be a list")
    declarations = []
    for tool in tools:
        if not isinstance(tool, Mapping) or tool.get("type") != "function":
            raise UnsupportedParameter("tools[].type", provider, "only function tools")
        function = tool["function"]
        declaration: JSONDict = {"name": function["name"]}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters"):
            declaration["parametersJsonSchema"] = function["parameters"]
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}]


def _tool_config(choice: object) -> JSONDict | None:
    if choice is None:
        return None
    if choice in ("auto", "required", "none"):
        mode = {"auto": "AUTO", "required": "ANY", "none": "NONE"}[str(choice)]
        return {"functionCallingConfig": {"mode": mode}}
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        name = choice["function"]["name"]
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    raise InvalidInput("'tool_choice' must be auto, required, none or a function")


def _generation_config(body: Mapping[str, Any]) -> JSONDict:
    config: JSONDict = {}
    for source, target in _GENERATION_FIELDS.items():
        if body.get(source) is not None:
            config[target] = body[source]
    if (limit := max_output_tokens(body)) is not None:
        config["maxOutputTokens"] = limit
    if stops := stop_list(body.get("stop")):
        config["stopSequences"] = stops
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping):
        kind = response_format.get("type")
        if kind == "json_object":
            config["responseMimeType"] = "application/json"
        elif kind == "json_schema":
            schema = response_format.get("json_schema") or {}
            config["responseMimeType"] = "application/json"
            config["responseJsonSchema"] = schema.get("schema") or {}
    return config


def to_gemini(body: Mapping[str, Any], *, provider: str) -> JSONDict:
    """OpenAI chat body → Gemini ``generateContent`` body."""
    if body.get("parallel_tool_calls") is False:
        raise UnsupportedParameter("parallel_tool_calls", provider, "Gemini cannot turn it off")
    system: list[JSONDict] = []
    contents: list[JSONDict] = []
    call_names: dict[str, str] = {}
    for message in messages_of(body):
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_parts(message.get("content"), provider))
        elif role == "user":
            _append(contents, "user", _parts(message.get("content"), provider))
        elif role == "assistant":
            parts = [p for p in _parts(message.get("content"), provider)]
            for call in message.get("tool_calls") or ():
                function = call["function"]
                call_names[str(call.get("id"))] = function["name"]
                args = parse_arguments(function.get("arguments"))
                parts.append({"functionCall": {"name": function["name"], "args": args}})
            _append(contents, "model", parts)
        elif role == "tool":
            name = call_names.get(str(message.get("tool_call_id")))
            if name is None:
                raise InvalidInput(
                    "A tool message answers a tool_call_id no assistant message made"
                )
            response = _function_response(message.get("content"))
            _append(contents, "user", [{"functionResponse": {"name": name, "response": response}}])
        else:
            raise UnsupportedParameter(f"messages[].role={role}", provider)
    out: JSONDict = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    if body.get("tools"):
        out["tools"] = _tools(body["tools"], provider)
    if (tool_config := _tool_config(body.get("tool_choice"))) is not None:
        out["toolConfig"] = tool_config
    if config := _generation_config(body):
        out["generationConfig"] = config
    return out


def candidate_parts(candidate: Mapping[str, Any]) -> tuple[str, list[JSONDict]]:
    """(visible text, OpenAI tool calls) of one candidate; thought parts are skipped."""
    texts: list[str] = []
    calls: list[JSONDict] = []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if "functionCall" in part:
            call = part["functionCall"]
            function = {"name": call["name"], "arguments": dump_arguments(call.get("args"))}
            calls.append({"id": new_call_id(), "type": "function", "function": function})
        elif "text" in part and not part.get("thought"):
            texts.append(str(part["text"]))
    return "".join(texts), calls


def finish_reason(candidate: Mapping[str, Any], has_calls: bool) -> str | None:
    raw = candidate.get("finishReason")
    if raw is None:
        return None
    reason = FINISH_REASONS.get(str(raw), "stop")
    return "tool_calls" if has_calls and reason == "stop" else reason
