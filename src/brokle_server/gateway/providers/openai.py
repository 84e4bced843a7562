"""OpenAI and every OpenAI-compatible service: a pass-through with minimal changes.

The body goes upstream as sent, with the target model name. Streams always ask for usage
(``stream_options.include_usage``) where the service accepts it, so streamed calls can be
accounted even when the client did not ask; the usage chunk is re-emitted last.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx
import orjson

from brokle_server.gateway.providers.base import ChatStream, Provider
from brokle_server.gateway.providers.compat import BEARER, HEADER, OPENAI, CompatSpec
from brokle_server.gateway.providers.http import request_json, stream_event_error
from brokle_server.gateway.types import (
    ChatResult,
    EmbeddingResult,
    JSONDict,
    ProviderConfig,
    UnsupportedEndpoint,
    UnsupportedParameter,
    Usage,
)

_RETRYABLE_STREAM_ERRORS = frozenset({"server_error", "rate_limit_exceeded", "overloaded"})


class OpenAIStream(ChatStream):
    """Pass-through of OpenAI SSE chunks; lifts ``usage`` out into the final usage chunk."""

    object_name: ClassVar[str] = "chat.completion.chunk"
    _seen_first = False
    _usage_tail: JSONDict | None = None

    def translate(self, event: str | None, data: str) -> Sequence[JSONDict]:
        if data == "[DONE]":
            self.mark_terminated()
            return ()
        chunk = orjson.loads(data)
        if not isinstance(chunk, dict):
            raise TypeError("chunk is not an object")
        if "error" in chunk and not chunk.get("choices"):
            raise stream_event_error(
                self.provider, chunk["error"], retryable_types=_RETRYABLE_STREAM_ERRORS
            )
        if not self._seen_first and chunk.get("id"):
            self._seen_first = True
            self.id = str(chunk["id"])
            self.created = int(chunk.get("created") or self.created)
        if chunk.get("model"):
            self.model = str(chunk["model"])
        usage = chunk.pop("usage", None)
        if isinstance(usage, dict):
            self.set_usage(Usage.from_openai(usage), usage)
        choices = chunk.get("choices")
        if not choices:
            if isinstance(usage, dict):  # OpenAI's own usage chunk: re-emitted as is, last
                self._usage_tail = {**chunk, "usage": usage}
            return ()
        for choice in choices:
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
                self.mark_terminated()
        return (chunk,)

    def chunk(self, choices: list[JSONDict]) -> JSONDict:
        return {**super().chunk(choices), "object": self.object_name}

    def usage_chunk(self) -> JSONDict:
        return self._usage_tail or super().usage_chunk()


class CompletionStream(OpenAIStream):
    object_name = "text_completion"


class OpenAIProvider(Provider):
    """OpenAI itself or, with a :class:`CompatSpec`, any OpenAI-compatible service."""

    kind = "openai"

    def __init__(
        self,
        config: ProviderConfig,
        client: httpx.AsyncClient,
        spec: CompatSpec = OPENAI,
    ) -> None:
        super().__init__(config, client, spec.capabilities())
        self.spec = spec
        self._headers = self._auth_headers()

    def _auth_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        key = self.config.api_key
        if self.spec.auth == HEADER:
            headers[self.spec.auth_header] = key
        elif key or self.spec.auth == BEARER:
            headers["authorization"] = f"Bearer {key}"
        if org := self.config.options.get("organization"):
            headers["openai-organization"] = org
        if project := self.config.options.get("project"):
            headers["openai-project"] = project
        headers.update(self.config.extra_headers())
        return headers

    def url(self, path: str, model: str) -> str:
        return f"{self.base_url}/{path}"

    def validate(self, body: Mapping[str, Any]) -> None:
        super().validate(body)
        if "top_k" in body and not self.spec.top_k:
            raise UnsupportedParameter("top_k", self.name)
        for param in self.spec.unsupported:
            if param in body:
                raise UnsupportedParameter(param, self.name)

    def payload(self, body: Mapping[str, Any], model: str, *, stream: bool) -> JSONDict:
        """The upstream body: the caller's, with the target model and our stream settings."""
        out = {**body, "model": model}
        _strip_cache_control(out)
        if stream:
            out["stream"] = True
            if self.spec.stream_options:
                options = body.get("stream_options")
                base = options if isinstance(options, Mapping) else {}
                out["stream_options"] = {**base, "include_usage": True}
            else:
                out.pop("stream_options", None)
        else:
            out.pop("stream", None)
            out.pop("stream_options", None)
        return out

    async def chat(self, body: JSONDict, model: str, *, timeout: float) -> ChatResult:  # noqa: ASYNC109
        self.validate(body)
        data = await request_json(
            self.client,
            self.name,
            "POST",
            self.url("chat/completions", model),
            headers=self._headers,
            body=self.payload(body, model, stream=False),
            timeout=timeout,
        )
        return ChatResult(
            data, Usage.from_openai(data.get("usage")), str(data.get("model") or model)
        )

    def stream_chat(self, body: JSONDict, model: str, *, timeout: float) -> ChatStream:
        self.validate(body)
        request = ChatStream.build_request(
            self.client,
            self.url("chat/completions", model),
            self._headers,
            self.payload(body, model, stream=True),
            timeout,
        )
        return OpenAIStream(self.name, self.client, request, model)

    def _require(self, supported: bool, endpoint: str) -> None:
        if not supported:
            raise UnsupportedEndpoint(endpoint, self.name)

    async def completion(self, body: JSONDict, model: str, *, timeout: float) -> ChatResult:  # noqa: ASYNC109
        self._require(self.capabilities.completions, "the legacy completions API")
        self.validate(body)
        data = await request_json(
            self.client,
            self.name,
            "POST",
            self.url("completions", model),
            headers=self._headers,
            body=self.payload(body, model, stream=False),
            timeout=timeout,
        )
        return ChatResult(
            data, Usage.from_openai(data.get("usage")), str(data.get("model") or model)
        )

    def stream_completion(self, body: JSONDict, model: str, *, timeout: float) -> ChatStream:
        self._require(self.capabilities.completions, "the legacy completions API")
        self.validate(body)
        request = ChatStream.build_request(
            self.client,
            self.url("completions", model),
            self._headers,
            self.payload(body, model, stream=True),
            timeout,
        )
        return CompletionStream(self.name, self.client, request, model)

    async def embeddings(self, body: JSONDict, model: str, *, timeout: float) -> EmbeddingResult:  # noqa: ASYNC109
        self._require(self.capabilities.embeddings, "embeddings")
        data = await request_json(
            self.client,
            self.name,
            "POST",
            self.url("embeddings", model),
            headers=self._headers,
            body={**body, "model": model},
            timeout=timeout,
        )
        usage = Usage.from_openai(data.get("usage"))
        return EmbeddingResult(data, usage, str(data.get("model") or model))

    async def list_models(self, *, timeout: float) -> list[str]:  # noqa: ASYNC109
        data = await request_json(
            self.client,
            self.name,
            "GET",
            self.url("models", ""),
            headers=self._headers,
            body=None,
            timeout=timeout,
        )
        return [str(m["id"]) for m in data.get("data") or () if isinstance(m, dict) and "id" in m]


def _strip_cache_control(body: JSONDict) -> None:
    """Drop Anthropic's ``cache_control`` markers (they arrive through ``/v1/messages``); strict
    OpenAI-compatible services refuse unknown fields. Copies only what it changes."""
    messages = body.get("messages")
    if isinstance(messages, list) and any(_has_marker(m) for m in messages):
        body["messages"] = [_without_marker(m) for m in messages]
    tools = body.get("tools")
    if isinstance(tools, list) and any(isinstance(t, dict) and "cache_control" in t for t in tools):
        body["tools"] = [
            {k: v for k, v in t.items() if k != "cache_control"} if isinstance(t, dict) else t
            for t in tools
        ]


def _has_marker(message: object) -> bool:
    if not isinstance(message, dict):
        return False
    content = message.get("content")
    return "cache_control" in message or (
        isinstance(content, list)
        and any(isinstance(p, dict) and "cache_control" in p for p in content)
    )


def _without_marker(message: object) -> object:
    if not _has_marker(message):
        return message
    assert isinstance(message, dict)
    out = {k: v for k, v in message.items() if k != "cache_control"}
    content = out.get("content")
    if isinstance(content, list):
        out["content"] = [
            {k: v for k, v in p.items() if k != "cache_control"} if isinstance(p, dict) else p
            for p in content
        ]
    return out
