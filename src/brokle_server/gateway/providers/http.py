"""HTTP plumbing shared by the providers: JSON calls, SSE parsing and error mapping.

Every failure that reaches a provider's caller is an :class:`UpstreamError`; this module
decides which ones are retryable and reads the provider's retry hints.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
import orjson

from brokle_server.gateway.types import JSONDict, UpstreamError

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
_JSON_HEADERS = {"content-type": "application/json", "accept": "application/json"}


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _google_retry_delay(error: Mapping[str, Any]) -> float | None:
    """Gemini puts a ``google.rpc.RetryInfo`` with ``retryDelay: "30s"`` in ``details``."""
    for item in error.get("details") or ():
        if isinstance(item, Mapping) and str(item.get("@type", "")).endswith("RetryInfo"):
            delay = str(item.get("retryDelay", ""))
            try:
                return float(delay.rstrip("s"))
            except ValueError:
                return None
    return None


def describe_error_body(body: bytes) -> tuple[str | None, str | None, float | None]:
    """(message, provider error code/type, retry delay) from an OpenAI, Anthropic or Gemini
    error body; Nones when the body is not one of those shapes."""
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return (text[:500] or None), None, None
    if not isinstance(data, Mapping):
        return None, None, None
    error = data.get("error", data)
    if isinstance(error, str):
        return error, None, None
    if not isinstance(error, Mapping):
        return None, None, None
    message = error.get("message")
    code = error.get("type") or error.get("status") or error.get("code")
    return (
        str(message) if message is not None else None,
        str(code) if code is not None else None,
        _google_retry_delay(error),
    )


def error_from_response(
    provider: str, status: int, headers: Mapping[str, str], body: bytes
) -> UpstreamError:
    message, upstream_code, delay = describe_error_body(body)
    retry_after = parse_retry_after(headers)
    if retry_after is None:
        retry_after = delay
    if status == 429:
        code = "upstream_rate_limited"
    elif status in (401, 403):
        code = "upstream_auth_failed"
    elif status >= 500:
        code = "upstream_unavailable"
    else:
        code = "upstream_rejected"
    return UpstreamError(
        f"Provider '{provider}' answered {status}: {message or 'no message'}",
        provider=provider,
        status=status,
        retryable=status in RETRYABLE_STATUSES,
        retry_after=retry_after,
        code=code,
        upstream_code=upstream_code,
    )


def error_from_exception(provider: str, exc: Exception, *, mid_stream: bool) -> UpstreamError:
    """Map a transport failure (httpx error or our own deadline) to a retryable error."""
    if isinstance(exc, httpx.TimeoutException | TimeoutError | asyncio.TimeoutError):
        code, what = "upstream_timeout", "timed out"
    elif isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError) and mid_stream:
        code, what = "upstream_stream_error", "closed the stream early"
    else:
        code, what = "upstream_unreachable", "could not be reached"
    detail = type(exc).__name__
    return UpstreamError(
        f"Provider '{provider}' {what} ({detail})",
        provider=provider,
        retryable=True,
        code=code,
        mid_stream=mid_stream,
    )


def stream_event_error(
    provider: str, error: object, *, retryable_types: frozenset[str]
) -> UpstreamError:
    """An error event the upstream sent inside a 200 stream."""
    message, upstream_code = "stream error", None
    if isinstance(error, Mapping):
        message = str(error.get("message") or message)
        raw = error.get("type") or error.get("status") or error.get("code")
        upstream_code = str(raw) if raw is not None else None
    return UpstreamError(
        f"Provider '{provider}' sent an error mid-stream: {message}",
        provider=provider,
        retryable=upstream_code in retryable_types,
        code="upstream_stream_error",
        upstream_code=upstream_code,
    )


@contextmanager
def upstream_shape(provider: str) -> Iterator[None]:
    """An upstream answer we cannot read is the provider's fault: a retryable 502, not a 500."""
    try:
        yield
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
        raise UpstreamError(
            f"Provider '{provider}' sent a response we cannot read",
            provider=provider,
            status=200,
            retryable=True,
            code="upstream_bad_response",
        ) from exc


def dumps(body: Mapping[str, Any]) -> bytes:
    return orjson.dumps(body)


async def request_json(
    client: httpx.AsyncClient,
    provider: str,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    body: Mapping[str, Any] | None,
    timeout: float,  # noqa: ASYNC109 - also httpx's per-phase timeout
) -> JSONDict:
    """One JSON call with a total deadline of ``timeout`` seconds; errors as UpstreamError."""
    content = dumps(body) if body is not None else None
    try:
        async with asyncio.timeout(timeout):
            response = await client.request(
                method,
                url,
                content=content,
                headers={**_JSON_HEADERS, **headers},
                timeout=httpx.Timeout(timeout),
            )
    except (httpx.HTTPError, TimeoutError) as exc:
        raise error_from_exception(provider, exc, mid_stream=False) from exc
    if response.status_code >= 400:
        raise error_from_response(
            provider, response.status_code, response.headers, response.content
        )
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(
            f"Provider '{provider}' sent a body that is not JSON",
            provider=provider,
            status=response.status_code,
            retryable=True,
            code="upstream_bad_response",
        ) from exc
    if not isinstance(data, dict):
        raise UpstreamError(
            f"Provider '{provider}' sent a JSON body that is not an object",
            provider=provider,
            status=response.status_code,
            retryable=True,
            code="upstream_bad_response",
        )
    return data


async def iter_sse(response: httpx.Response) -> AsyncIterator[tuple[str | None, str]]:
    """Server-sent events as ``(event name or None, data)``; comments and ids are skipped."""
    event: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = None, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:
        yield event, "\n".join(data)
