"""Google Gemini (``generateContent`` / ``streamGenerateContent?alt=sse``) behind the OpenAI
interface, authenticated with ``x-goog-api-key``.

Gemini streams whole function calls (one ``functionCall`` part per call, never split), so
each becomes a single OpenAI tool-call delta with id, name and all its arguments, indexed
per candidate. Every chunk repeats ``usageMetadata`` with running totals; the last one wins.
Candidates map to OpenAI choices (``n`` → ``candidateCount``). Embeddings use
``batchEmbedContents``; ``encoding_format="base64"`` (the OpenAI SDK's default) is encoded
here as little-endian float32, as OpenAI does.
"""

from __future__ import annotations

import array
import base64
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from brokle_server.errors import InvalidInput
from brokle_server.gateway.providers.base import ChatStream, Provider
from brokle_server.gateway.providers.common import (
    assistant_message,
    delta_choice,
    malformed_input,
    openai_response,
)
from brokle_server.gateway.providers.gemini_wire import (
    KNOWN_PARAMS,
    candidate_parts,
    finish_reason,
    to_gemini,
    usage_from_gemini,
)
from brokle_server.gateway.providers.http import request_json, stream_event_error, upstream_shape
from brokle_server.gateway.types import (
    Capabilities,
    ChatResult,
    EmbeddingResult,
    JSONDict,
    ProviderConfig,
    UnsupportedParameter,
    Usage,
)

CAPABILITIES = Capabilities(
    kind="gemini",
    label="Google Gemini",
    default_base_url="https://generativelanguage.googleapis.com",
    embeddings=True,
    logprobs=False,
)
_RETRYABLE_STREAM_ERRORS = frozenset(
    {"UNAVAILABLE", "RESOURCE_EXHAUSTED", "INTERNAL", "500", "503"}
)


class GeminiStream(ChatStream):
    terminal_required = True

    def __init__(
        self, provider: str, client: httpx.AsyncClient, request: httpx.Request, model: str
    ) -> None:
        super().__init__(provider, client, request, model)
        self._tool_counts: dict[int, int] = {}

    def translate(self, event: str | None, data: str) -> Sequence[JSONDict]:
        obj = orjson.loads(data)
        if "error" in obj:
            raise stream_event_error(
                self.provider, obj["error"], retryable_types=_RETRYABLE_STREAM_ERRORS
            )
        if obj.get("modelVersion"):
            self.model = str(obj["modelVersion"])
        if obj.get("usageMetadata"):
            self.set_usage(usage_from_gemini(obj["usageMetadata"]))
        chunks: list[JSONDict] = []
        candidates = obj.get("candidates") or ()
        for position, candidate in enumerate(candidates):
            index = int(candidate.get("index", position))
            text, calls = candidate_parts(candidate)
            delta: JSONDict = {}
            if index not in self._tool_counts:
                self._tool_counts[index] = 0
                delta["role"] = "assistant"
            if text:
                delta["content"] = text
            if calls:
                first = self._tool_counts[index]
                delta["tool_calls"] = [{"index": first + i, **c} for i, c in enumerate(calls)]
                self._tool_counts[index] += len(calls)
            if delta:
                chunks.append(self.chunk([delta_choice(index, delta)]))
            reason = finish_reason(candidate, self._tool_counts[index] > 0)
            if reason is not None:
                self.finish_reason = reason
                self.mark_terminated()
                chunks.append(self.chunk([delta_choice(index, {}, reason)]))
        feedback = obj.get("promptFeedback") or {}
        if not candidates and feedback.get("blockReason"):
            self.finish_reason = "content_filter"
            self.mark_terminated()
            delta = {"role": "assistant", "content": ""}
            chunks.append(self.chunk([delta_choice(0, delta, "content_filter")]))
        return chunks


def _response(data: Mapping[str, Any], model: str) -> tuple[JSONDict, Usage, str]:
    choices: list[JSONDict] = []
    for position, candidate in enumerate(data.get("candidates") or ()):
        text, calls = candidate_parts(candidate)
        choices.append(
            {
                "index": int(candidate.get("index", position)),
                "message": assistant_message(text, calls),
                "logprobs": None,
                "finish_reason": finish_reason(candidate, bool(calls)) or "stop",
            }
        )
    if not choices:  # the prompt itself was blocked
        message = assistant_message("", [])
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": "content_filter",
        }
        choices.append(choice)
    usage = usage_from_gemini(data.get("usageMetadata"))
    upstream_model = str(data.get("modelVersion") or model)
    response_id = f"chatcmpl-{data.get('responseId') or int(time.time() * 1000)}"
    response = openai_response(
        response_id, int(time.time()), upstream_model, choices, usage.to_openai()
    )
    return response, usage, upstream_model


def _float32_base64(values: Sequence[float]) -> str:
    packed = array.array("f", values)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()


class GeminiProvider(Provider):
    kind = "gemini"

    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient) -> None:
        super().__init__(config, client, CAPABILITIES)
        self._headers = {"x-goog-api-key": config.api_key, **config.extra_headers()}

    def _url(self, model: str, method: str) -> str:
        return f"{self.base_url}/v1beta/models/{quote(model, safe='')}:{method}"

    def validate(self, body: Mapping[str, Any]) -> None:
        super().validate(body)
        self._reject_unknown(body, KNOWN_PARAMS)

    def _translate(self, body: Mapping[str, Any]) -> JSONDict:
        self.validate(body)
        with malformed_input("chat request"):
            return to_gemini(body, provider=self.name)

    async def chat(self, body: JSONDict, model: str, *, timeout: float) -> ChatResult:  # noqa: ASYNC109
        payload = self._translate(body)
        data = await request_json(
            self.client,
            self.name,
            "POST",
            self._url(model, "generateContent"),
            headers=self._headers,
            body=payload,
            timeout=timeout,
        )
        with upstream_shape(self.name):
            response, usage, upstream_model = _response(data, model)
        return ChatResult(response, usage, upstream_model)

    def stream_chat(self, body: JSONDict, model: str, *, timeout: float) -> ChatStream:
        payload = self._translate(body)
        url = self._url(model, "streamGenerateContent") + "?alt=sse"
        request = ChatStream.build_request(self.client, url, self._headers, payload, timeout)
        return GeminiStream(self.name, self.client, request, model)

    async def embeddings(self, body: JSONDict, model: str, *, timeout: float) -> EmbeddingResult:  # noqa: ASYNC109
        self._reject_unknown(
            body, frozenset({"model", "input", "dimensions", "encoding_format", "user"})
        )
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise UnsupportedParameter("input", self.name, "only strings or lists of strings")
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise InvalidInput("'encoding_format' must be 'float' or 'base64'")
        request: JSONDict = {"model": f"models/{model}"}
        if body.get("dimensions") is not None:
            request["outputDimensionality"] = body["dimensions"]
        requests = [{**request, "content": {"parts": [{"text": text}]}} for text in texts]
        data = await request_json(
            self.client,
            self.name,
            "POST",
            self._url(model, "batchEmbedContents"),
            headers=self._headers,
            body={"requests": requests},
            timeout=timeout,
        )
        with upstream_shape(self.name):
            vectors = [list(item["values"]) for item in data["embeddings"]]
        items = [
            {
                "object": "embedding",
                "index": i,
                "embedding": _float32_base64(v) if encoding == "base64" else v,
            }
            for i, v in enumerate(vectors)
        ]
        usage = Usage()
        response = {
            "object": "list",
            "data": items,
            "model": model,
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        }
        return EmbeddingResult(response, usage, model)

    async def list_models(self, *, timeout: float) -> list[str]:  # noqa: ASYNC109
        data = await request_json(
            self.client,
            self.name,
            "GET",
            f"{self.base_url}/v1beta/models",
            headers=self._headers,
            body=None,
            timeout=timeout,
        )
        names = (m.get("name", "") for m in data.get("models") or () if isinstance(m, dict))
        return [str(name).removeprefix("models/") for name in names if name]
