"""LLM providers behind one OpenAI-format interface — the contract the gateway service uses.

Internal format: OpenAI Chat Completions JSON in plain dicts (``JSONDict``). Providers take
the client's body as is, translate it for
their upstream and translate the answer back. They never mutate the body they are given.

Making one::

    provider = build_provider(ProviderConfig(name, kind, api_key, base_url, options), client)

``client`` is the gateway's shared ``httpx.AsyncClient`` (owned and closed by the app);
``kind`` is one of :data:`KINDS` (``capabilities(kind)`` describes it).

Calling it (``model`` is the target's own model name; ``timeout`` in seconds)::

    provider.validate(body)                                   # UnsupportedParameter → 400
    result = await provider.chat(body, model, timeout=30)     # ChatResult
    result.response, result.usage, result.model               # OpenAI dict, Usage, upstream model

    stream = provider.stream_chat(body, model, timeout=30)   # ChatStream; nothing sent yet
    try:
        await stream.open()       # UpstreamError(mid_stream=False): retry/fall back safely
        async for chunk in stream:  # OpenAI chat.completion.chunk dicts
            ...                     # UpstreamError(mid_stream=True, retryable=False) here
    finally:
        await stream.aclose()
    stream.usage, stream.model, stream.finish_reason, stream.completed

    await provider.completion(body, model, timeout=30)        # legacy /v1/completions
    provider.stream_completion(body, model, timeout=30)       # ChatStream of text_completion
    await provider.embeddings(body, model, timeout=30)        # EmbeddingResult
    await provider.list_models(timeout=10)                    # list[str]
    # an API the target lacks raises UnsupportedEndpoint (400)

Streamed usage: when the upstream reports usage (providers ask for it), the stream's LAST
chunk is ``{"choices": [], "usage": {...}}`` — whether or not the client set
``stream_options.include_usage``; no earlier chunk carries ``usage``. Forward that chunk only
if the client asked for it. ``stream.usage`` (:class:`Usage`) has the same numbers once the
stream ends, and the last partial numbers after a failure (None if none were seen). It stays
None for a compatible service that reports no streamed usage; estimate then.

Errors (see :mod:`brokle_server.gateway.types`): every upstream failure is an
:class:`UpstreamError` (``status``, ``retryable``, ``retry_after``, ``upstream_code``,
``mid_stream``, ``client_status``); a parameter the target cannot honour is
:class:`UnsupportedParameter`; a malformed body is :class:`~brokle_server.errors.InvalidInput`.

Modules: ``base`` (Provider, ChatStream), ``http`` (JSON calls, SSE, error mapping),
``openai`` (OpenAI and compatible services), ``compat`` (the compatible-service table),
``azure``, ``anthropic`` + ``anthropic_wire``, ``gemini`` + ``gemini_wire``, ``common``
(content helpers), ``registry`` (kinds, capabilities, build_provider).
"""

from brokle_server.gateway.providers.base import ChatStream, Provider
from brokle_server.gateway.providers.registry import (
    CAPABILITIES,
    KINDS,
    build_provider,
    capabilities,
)

__all__ = ["CAPABILITIES", "KINDS", "ChatStream", "Provider", "build_provider", "capabilities"]
