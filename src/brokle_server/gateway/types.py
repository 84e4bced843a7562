"""Shared gateway types: provider credentials, normalised usage, results and provider errors.

The gateway's internal wire format is OpenAI Chat Completions JSON held in plain dicts
(``JSONDict``); only the values that the gateway itself reasons about (usage, errors,
capabilities) get a typed shape here. Nothing in this module does I/O.

Errors (both are :class:`~brokle_server.errors.BrokleError`):

    UpstreamError(BrokleError)        the provider failed or refused; ``status``, ``retryable``,
                                      ``retry_after``, ``upstream_code``, ``mid_stream``
    UnsupportedParameter(InvalidInput) 400: the target cannot honour a request parameter
    UnsupportedEndpoint(InvalidInput)  400: the target has no such API (e.g. embeddings)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from brokle_server.errors import BrokleError, InvalidInput

JSONDict = dict[str, Any]
"""A decoded JSON object. Request and response bodies stay plain dicts on the hot path."""


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One provider credential of a project, as the gateway resolved it.

    ``options`` are plain strings. Keys understood by the providers: ``api_version`` (azure),
    ``organization`` and ``project`` (openai), ``anthropic_version``, ``anthropic_beta`` and
    ``default_max_tokens`` (anthropic), and ``header:<Name>`` for any extra request header.
    """

    name: str
    kind: str
    api_key: str = field(default="", repr=False)
    base_url: str | None = None
    options: Mapping[str, str] = field(default_factory=dict, hash=False)

    def extra_headers(self) -> dict[str, str]:
        return {k[7:]: v for k, v in self.options.items() if k.startswith("header:")}


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage in OpenAI's accounting, whatever the provider.

    ``input_tokens`` counts every prompt token, INCLUDING ``cached_tokens`` (read from a
    prompt cache) and ``cache_write_tokens`` (written to one), like OpenAI's
    ``prompt_tokens``. Anthropic reports ``input_tokens`` without cache reads and writes; its
    numbers are added up on the way in (:meth:`from_anthropic`) and split on the way out
    (:meth:`to_anthropic`). ``output_tokens`` includes ``reasoning_tokens``.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_openai(self) -> JSONDict:
        """OpenAI ``usage`` object. A non-zero cache write is added as
        ``prompt_tokens_details.cache_write_tokens`` (an extension OpenAI clients ignore)."""
        prompt_details: JSONDict = {"cached_tokens": self.cached_tokens}
        if self.cache_write_tokens:
            prompt_details["cache_write_tokens"] = self.cache_write_tokens
        return {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": prompt_details,
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }

    @classmethod
    def from_openai(cls, usage: Mapping[str, Any] | None) -> Usage:
        """Read an OpenAI-style ``usage`` object, including DeepSeek's cache-hit field."""
        if not usage:
            return cls()
        prompt = _mapping(usage.get("prompt_tokens_details"))
        completion = _mapping(usage.get("completion_tokens_details"))
        cached = _int(prompt.get("cached_tokens")) or _int(usage.get("prompt_cache_hit_tokens"))
        return cls(
            input_tokens=_int(usage.get("prompt_tokens")),
            output_tokens=_int(usage.get("completion_tokens")),
            cached_tokens=cached,
            cache_write_tokens=_int(prompt.get("cache_write_tokens")),
            reasoning_tokens=_int(completion.get("reasoning_tokens")),
        )

    @classmethod
    def from_anthropic(cls, usage: Mapping[str, Any] | None) -> Usage:
        """Read an Anthropic ``usage`` object; its ``input_tokens`` exclude cache reads/writes."""
        if not usage:
            return cls()
        read = _int(usage.get("cache_read_input_tokens"))
        write = _int(usage.get("cache_creation_input_tokens"))
        details = _mapping(usage.get("output_tokens_details"))
        return cls(
            input_tokens=_int(usage.get("input_tokens")) + read + write,
            output_tokens=_int(usage.get("output_tokens")),
            cached_tokens=read,
            cache_write_tokens=write,
            reasoning_tokens=_int(details.get("thinking_tokens")),
        )

    def to_anthropic(self) -> JSONDict:
        """Anthropic ``usage`` object (``input_tokens`` without the cached and written tokens)."""
        return {
            "input_tokens": max(
                0, self.input_tokens - self.cached_tokens - self.cache_write_tokens
            ),
            "output_tokens": self.output_tokens,
            "cache_read_input_tokens": self.cached_tokens,
            "cache_creation_input_tokens": self.cache_write_tokens,
        }


@dataclass(slots=True)
class ChatResult:
    """A finished non-streaming call.

    ``response`` is the OpenAI-format body to send back (``chat.completion``, or
    ``text_completion`` for the legacy completions API) and already carries ``usage`` in
    OpenAI form; ``usage`` is the same numbers, typed; ``model`` is the model name the
    upstream reported (the requested target model when it reported none).
    """

    response: JSONDict
    usage: Usage
    model: str


CompletionResult = ChatResult
"""Legacy ``/v1/completions`` results have the same shape (``response`` is a text_completion)."""


@dataclass(slots=True)
class EmbeddingResult:
    """An OpenAI-format ``list`` of embeddings, its usage and the upstream model name."""

    response: JSONDict
    usage: Usage
    model: str


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider kind can do; drives validation and the ``/v1/models`` listing."""

    kind: str
    label: str
    default_base_url: str | None
    chat: bool = True
    streaming: bool = True
    tools: bool = True
    images: bool = True
    embeddings: bool = False
    completions: bool = False
    logprobs: bool = False
    max_n: int | None = None
    """Largest ``n`` accepted; ``None`` means no limit of our own."""
    response_format: bool = True
    requires_api_key: bool = True


class UpstreamError(BrokleError):
    """The provider failed, refused, or could not be reached.

    ``status`` is the upstream HTTP status (0 when there was no HTTP answer: timeout,
    connection error). ``retryable`` is true for 408/409/429/5xx/529, timeouts and connection
    errors, and always false once ``mid_stream`` is true (the provider had already handed a
    chunk to the caller). ``retry_after`` comes from ``retry-after-ms``/``Retry-After`` (or
    Gemini's RetryInfo). ``upstream_code`` is the provider's own error type or code.
    ``client_status`` is the status a gateway should answer with.
    """

    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int = 0,
        retryable: bool = False,
        retry_after: float | None = None,
        code: str | None = None,
        upstream_code: str | None = None,
        mid_stream: bool = False,
    ) -> None:
        super().__init__(message, code=code, details={"provider": provider, "status": status})
        self.provider = provider
        self.status = status
        self.retryable = retryable and not mid_stream
        self.retry_after = retry_after
        self.upstream_code = upstream_code
        self.mid_stream = mid_stream

    @property
    def client_status(self) -> int:
        """429 and the client's own 4xx pass through; our bad credentials or an upstream
        failure are a 502; a timeout is a 504."""
        if self.code == "upstream_timeout":
            return 504
        if self.status in (400, 404, 413, 422, 429):
            return self.status
        return 502

    def __repr__(self) -> str:
        return (
            f"UpstreamError({self.message!r}, provider={self.provider!r}, status={self.status},"
            f" code={self.code!r}, retryable={self.retryable}, mid_stream={self.mid_stream})"
        )


class UnsupportedParameter(InvalidInput):
    """A request parameter (or parameter value) the target provider cannot honour."""

    code = "unsupported_parameter"

    def __init__(self, param: str, provider: str, reason: str = "") -> None:
        message = f"Parameter '{param}' is not supported by provider '{provider}'"
        super().__init__(
            f"{message}: {reason}" if reason else message,
            details={"param": param, "provider": provider},
        )
        self.param = param
        self.provider = provider


class UnsupportedEndpoint(InvalidInput):
    """The target provider has no such API (embeddings, legacy completions, model listing)."""

    code = "unsupported_endpoint"

    def __init__(self, endpoint: str, provider: str) -> None:
        super().__init__(
            f"Provider '{provider}' does not support {endpoint}",
            details={"endpoint": endpoint, "provider": provider},
        )
        self.endpoint = endpoint
        self.provider = provider


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
