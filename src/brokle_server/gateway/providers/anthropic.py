"""Anthropic's Messages API behind the OpenAI interface.

Streams map Anthropic's events onto OpenAI chunks: ``message_start`` gives the role chunk
and the input usage, each ``tool_use`` content block gets the next OpenAI tool-call index
(Anthropic numbers all content blocks, OpenAI numbers tool calls only), ``text_delta`` and
``input_json_delta`` become content and argument deltas, ``message_delta`` carries the
finish reason and the cumulative usage, ``message_stop`` ends the stream and ``error``
raises :class:`UpstreamError`. Thinking blocks are not forwarded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson

from brokle_server.errors import ConfigurationError
from brokle_server.gateway.providers.anthropic_wire import (
    FINISH_REASONS,
    KNOWN_PARAMS,
    from_anthropic,
    to_anthropic,
)
from brokle_server.gateway.providers.base import ChatStream, Provider
from brokle_server.gateway.providers.common import delta_choice, malformed_input
from brokle_server.gateway.providers.http import request_json, stream_event_error, upstream_shape
from brokle_server.gateway.types import (
    Capabilities,
    ChatResult,
    JSONDict,
    ProviderConfig,
    Usage,
)

CAPABILITIES = Capabilities(
    kind="anthropic",
    label="Anthropic",
    default_base_url="https://api.anthropic.com",
    logprobs=False,
    max_n=1,
    response_format=False,
)
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
_RETRYABLE_STREAM_ERRORS = frozenset(
    {"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}
)


class AnthropicStream(ChatStream):
    def __init__(
        self, provider: str, client: httpx.AsyncClient, request: httpx.Request, model: str
    ) -> None:
        super().__init__(provider, client, request, model)
        self._tool_index: dict[int, int] = {}
        self._start_usage: JSONDict = {}

    def _delta(self, delta: JSONDict, finish: str | None = None) -> Sequence[JSONDict]:
        return (self.chunk([delta_choice(0, delta, finish)]),)

    def translate(self, event: str | None, data: str) -> Sequence[JSONDict]:
        obj = orjson.loads(data)
        kind = obj.get("type") or event
        if kind == "content_block_delta":
            delta = obj["delta"]
            if delta.get("type") == "text_delta":
                return self._delta({"content": delta["text"]})
            if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                index = self._tool_index[obj["index"]]
                call = {"index": index, "function": {"arguments": delta["partial_json"]}}
                return self._delta({"tool_calls": [call]})
            return ()
        if kind == "content_block_start":
            block = obj["content_block"]
            if block.get("type") == "tool_use":
                index = self._tool_index[obj["index"]] = len(self._tool_index)
                function = {"name": block["name"], "arguments": ""}
                call = {"index": index, "id": block["id"], "type": "function", "function": function}
                return self._delta({"tool_calls": [call]})
            if block.get("type") == "text" and block.get("text"):
                return self._delta({"content": block["text"]})
            return ()
        if kind == "message_start":
            message = obj["message"]
            self.id = str(message.get("id") or self.id)
            self.model = str(message.get("model") or self.model)
            self._start_usage = dict(message.get("usage") or {})
            self.set_usage(Usage.from_anthropic(self._start_usage))
            return self._delta({"role": "assistant", "content": ""})
        if kind == "message_delta":
            updates = {k: v for k, v in (obj.get("usage") or {}).items() if v is not None}
            self._start_usage.update(updates)
            self.set_usage(Usage.from_anthropic(self._start_usage))
            reason = obj.get("delta", {}).get("stop_reason")
            self.finish_reason = FINISH_REASONS.get(str(reason), "stop")
            return self._delta({}, self.finish_reason)
        if kind == "message_stop":
            self.mark_terminated()
        elif kind == "error":
            raise stream_event_error(
                self.provider, obj.get("error"), retryable_types=_RETRYABLE_STREAM_ERRORS
            )
        return ()  # ping, content_block_stop and event types added later


class AnthropicProvider(Provider):
    kind = "anthropic"

    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient) -> None:
        super().__init__(config, client, CAPABILITIES)
        options = config.options
        self._headers = {
            "x-api-key": config.api_key,
            "anthropic-version": options.get("anthropic_version") or API_VERSION,
        }
        if beta := options.get("anthropic_beta"):
            self._headers["anthropic-beta"] = beta
        self._headers.update(config.extra_headers())
        try:
            self.default_max_tokens = int(options.get("default_max_tokens") or DEFAULT_MAX_TOKENS)
        except ValueError as exc:
            raise ConfigurationError(
                f"Provider '{config.name}': default_max_tokens must be an integer"
            ) from exc

    def validate(self, body: Mapping[str, Any]) -> None:
        super().validate(body)
        self._reject_unknown(body, KNOWN_PARAMS)

    def _translate(self, body: Mapping[str, Any], model: str) -> JSONDict:
        self.validate(body)
        with malformed_input("chat request"):
            return to_anthropic(
                body, model, provider=self.name, default_max_tokens=self.default_max_tokens
            )

    async def chat(self, body: JSONDict, model: str, *, timeout: float) -> ChatResult:  # noqa: ASYNC109
        payload = self._translate(body, model)
        data = await request_json(
            self.client,
            self.name,
            "POST",
            f"{self.base_url}/v1/messages",
            headers=self._headers,
            body=payload,
            timeout=timeout,
        )
        with upstream_shape(self.name):
            response, usage, upstream_model = from_anthropic(data, model)
        return ChatResult(response, usage, upstream_model)

    def stream_chat(self, body: JSONDict, model: str, *, timeout: float) -> ChatStream:
        payload = self._translate(body, model)
        payload["stream"] = True
        request = ChatStream.build_request(
            self.client, f"{self.base_url}/v1/messages", self._headers, payload, timeout
        )
        return AnthropicStream(self.name, self.client, request, model)

    async def list_models(self, *, timeout: float) -> list[str]:  # noqa: ASYNC109
        data = await request_json(
            self.client,
            self.name,
            "GET",
            f"{self.base_url}/v1/models",
            headers=self._headers,
            body=None,
            timeout=timeout,
        )
        return [str(m["id"]) for m in data.get("data") or () if isinstance(m, dict) and "id" in m]
