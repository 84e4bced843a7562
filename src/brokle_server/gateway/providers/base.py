"""The provider interface (:class:`Provider`) and the streamed-call object (:class:`ChatStream`).

A provider turns one OpenAI-format request body into one upstream call and the answer back
into OpenAI format. It holds no per-request state and never mutates the body it is given,
so the gateway can retry the same body on another target.
"""

from __future__ import annotations

import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, Self

import httpx

from brokle_server.gateway.providers.http import (
    dumps,
    error_from_exception,
    error_from_response,
    iter_sse,
)
from brokle_server.gateway.types import (
    Capabilities,
    ChatResult,
    EmbeddingResult,
    JSONDict,
    ProviderConfig,
    UnsupportedEndpoint,
    UnsupportedParameter,
    UpstreamError,
    Usage,
)


class Provider(ABC):
    """One provider credential bound to a shared ``httpx.AsyncClient``.

    ``model`` is always the target's own model name; ``timeout`` is in seconds (a total
    deadline for non-streaming calls, the longest silence allowed for streams). It is a
    parameter rather than the caller's ``asyncio.timeout`` (hence the ``noqa: ASYNC109``)
    because it also sets httpx's connect/read timeouts, which a stream needs per read.
    """

    kind: ClassVar[str]

    def __init__(
        self,
        config: ProviderConfig,
        client: httpx.AsyncClient,
        capabilities: Capabilities,
    ) -> None:
        self.config = config
        self.client = client
        self.capabilities = capabilities
        base = config.base_url or capabilities.default_base_url or ""
        self.base_url = base.rstrip("/")

    @property
    def name(self) -> str:
        return self.config.name

    def validate(self, body: Mapping[str, Any]) -> None:
        """Raise :class:`UnsupportedParameter` for anything this target cannot honour.

        ``chat`` and ``stream_chat`` call it too; calling it first is cheap and lets the
        gateway refuse before reserving budget.
        """
        caps = self.capabilities
        n = body.get("n")
        if caps.max_n is not None and isinstance(n, int) and n > caps.max_n:
            raise UnsupportedParameter("n", self.name, f"at most {caps.max_n} here")
        if not caps.logprobs:
            for param in ("logprobs", "top_logprobs"):
                if body.get(param):
                    raise UnsupportedParameter(param, self.name)
        if not caps.tools and (body.get("tools") or body.get("functions")):
            raise UnsupportedParameter("tools", self.name)
        response_format = body.get("response_format")
        if (
            not caps.response_format
            and isinstance(response_format, Mapping)
            and response_format.get("type") not in (None, "text")
        ):
            raise UnsupportedParameter("response_format", self.name)

    @abstractmethod
    async def chat(self, body: JSONDict, model: str, *, timeout: float) -> ChatResult:  # noqa: ASYNC109
        """One non-streaming chat completion (``stream`` in the body is ignored)."""

    @abstractmethod
    def stream_chat(self, body: JSONDict, model: str, *, timeout: float) -> ChatStream:
        """A streamed chat completion; nothing is sent until the stream is opened/iterated."""

    async def completion(self, body: JSONDict, model: str, *, timeout: float) -> ChatResult:  # noqa: ASYNC109
        """Legacy ``/v1/completions`` (non-streaming)."""
        raise UnsupportedEndpoint("the legacy completions API", self.name)

    def stream_completion(self, body: JSONDict, model: str, *, timeout: float) -> ChatStream:
        """Legacy ``/v1/completions`` streamed; chunks are ``text_completion`` objects."""
        raise UnsupportedEndpoint("the legacy completions API", self.name)

    async def embeddings(self, body: JSONDict, model: str, *, timeout: float) -> EmbeddingResult:  # noqa: ASYNC109
        raise UnsupportedEndpoint("embeddings", self.name)

    async def list_models(self, *, timeout: float) -> list[str]:  # noqa: ASYNC109
        """Model ids the upstream offers to this credential."""
        raise UnsupportedEndpoint("model listing", self.name)

    def _reject_unknown(self, body: Mapping[str, Any], known: frozenset[str]) -> None:
        for param in body:
            if param not in known:
                raise UnsupportedParameter(param, self.name)


def _is_substantive(chunk: Mapping[str, Any]) -> bool:
    """True once a chunk carries more than an empty role announcement."""
    choices = chunk.get("choices")
    if not choices:
        return True
    for choice in choices:
        if choice.get("finish_reason") or choice.get("text"):
            return True
        delta = choice.get("delta") or {}
        if any(value for key, value in delta.items() if key != "role"):
            return True
    return False


class ChatStream(ABC):
    """An async iterator of OpenAI ``chat.completion.chunk`` dicts from one upstream call.

    Lifecycle: ``await stream.open()`` sends the request, checks the HTTP status and reads
    ahead to the first chunk with content (role-only chunks are held back). Any failure up to
    then raises :class:`UpstreamError` with ``mid_stream=False`` and the usual ``retryable``,
    so the gateway can retry or fall back without the client noticing. Iterating then yields
    the held-back chunks and the rest; a failure after the first chunk was handed out raises
    ``UpstreamError(mid_stream=True, retryable=False)``. Iterating without ``open()`` opens
    implicitly. Always ``aclose()`` (or use ``async with``) to release the connection early.

    Usage: when the upstream reported usage, the LAST chunk is a usage chunk
    ``{"choices": [], "usage": {...OpenAI usage...}, ...}`` (no earlier chunk has a
    ``usage`` key), whatever the client asked for; forward it only when the client set
    ``stream_options.include_usage``. After the stream ends, ``usage`` holds the same numbers
    typed (after a failure: the last partial numbers seen, or None), ``model`` the upstream
    model name, ``finish_reason`` the last finish reason and ``completed`` whether the stream
    ended normally.
    """

    terminal_required: ClassVar[bool] = True
    """Whether an upstream stream that ends without its end marker counts as cut off."""

    def __init__(
        self, provider: str, client: httpx.AsyncClient, request: httpx.Request, model: str
    ) -> None:
        self.provider = provider
        self.model = model
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.completed = False
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self._client = client
        self._request = request
        self._response: httpx.Response | None = None
        self._events: AsyncIterator[tuple[str | None, str]] | None = None
        self._pending: list[JSONDict] = []
        self._handed_out = 0
        self._opened = False
        self._ended = False
        self._terminated = False
        self._usage_payload: JSONDict | None = None

    @staticmethod
    def build_request(
        client: httpx.AsyncClient,
        url: str,
        headers: Mapping[str, str],
        body: Mapping[str, Any],
        timeout: float,
    ) -> httpx.Request:
        return client.build_request(
            "POST",
            url,
            content=dumps(body),
            headers={"content-type": "application/json", "accept": "text/event-stream", **headers},
            timeout=httpx.Timeout(timeout),
        )

    # -- subclass hooks ------------------------------------------------------------------

    @abstractmethod
    def translate(self, event: str | None, data: str) -> Sequence[JSONDict]:
        """Turn one upstream SSE event into zero or more OpenAI chunks. Call
        :meth:`mark_terminated` on the upstream's end marker, :meth:`set_usage` when usage
        arrives, and raise :class:`UpstreamError` for an error event."""

    def mark_terminated(self) -> None:
        self._terminated = True

    def set_usage(self, usage: Usage, payload: JSONDict | None = None) -> None:
        """Record usage; ``payload`` is the OpenAI usage dict to emit (defaults to ``usage``)."""
        self.usage = usage
        self._usage_payload = payload

    def usage_chunk(self) -> JSONDict:
        """The final ``{"choices": [], "usage": {...}}`` chunk (only called with usage set)."""
        usage = self._usage_payload or (self.usage or Usage()).to_openai()
        return {**self.chunk([]), "usage": usage}

    def chunk(self, choices: list[JSONDict]) -> JSONDict:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    # -- iteration -----------------------------------------------------------------------

    async def open(self) -> None:
        if self._opened:
            return
        self._opened = True
        try:
            response = await self._client.send(self._request, stream=True)
        except httpx.HTTPError as exc:
            raise error_from_exception(self.provider, exc, mid_stream=False) from exc
        self._response = response
        if response.status_code >= 400:
            try:
                body = await response.aread()
            except httpx.HTTPError:
                body = b""
            await self.aclose()
            raise error_from_response(self.provider, response.status_code, response.headers, body)
        self._events = iter_sse(response)
        held: list[JSONDict] = []
        while True:
            chunk = await self._pull()
            if chunk is None:
                break
            held.append(chunk)
            if _is_substantive(chunk):
                break
        self._pending[:0] = held

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> JSONDict:
        if not self._opened:
            await self.open()
        chunk = self._pending.pop(0) if self._pending else await self._pull()
        if chunk is None:
            raise StopAsyncIteration
        self._handed_out += 1
        return chunk

    async def _pull(self) -> JSONDict | None:
        """The next translated chunk, or None at the end (after the usage chunk)."""
        while not self._pending:
            if self._ended:
                return None
            await self._read_event()
        return self._pending.pop(0)

    async def _read_event(self) -> None:
        mid_stream = self._handed_out > 0
        if self._events is None:
            raise RuntimeError("the stream was not opened")
        try:
            event, data = await anext(self._events)
        except StopAsyncIteration:
            await self._finish()
            return
        except httpx.HTTPError as exc:
            await self.aclose()
            raise error_from_exception(self.provider, exc, mid_stream=mid_stream) from exc
        try:
            self._pending.extend(self.translate(event, data))
        except UpstreamError as exc:
            await self.aclose()
            raise UpstreamError(
                exc.message,
                provider=exc.provider,
                status=exc.status,
                retryable=exc.retryable,
                retry_after=exc.retry_after,
                code=exc.code,
                upstream_code=exc.upstream_code,
                mid_stream=mid_stream,
            ) from exc
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            await self.aclose()
            raise UpstreamError(
                f"Provider '{self.provider}' sent a stream event we cannot read",
                provider=self.provider,
                retryable=True,
                code="upstream_bad_response",
                mid_stream=mid_stream,
            ) from exc

    async def _finish(self) -> None:
        await self.aclose()
        if self.terminal_required and not self._terminated:
            raise UpstreamError(
                f"Provider '{self.provider}' ended the stream before it was complete",
                provider=self.provider,
                retryable=True,
                code="upstream_stream_error",
                mid_stream=self._handed_out > 0,
            )
        self.completed = True
        if self.usage is not None:
            self._pending.append(self.usage_chunk())

    async def aclose(self) -> None:
        self._ended = True
        if self._response is not None:
            response, self._response = self._response, None
            await response.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
