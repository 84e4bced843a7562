"""The one place that turns exceptions into HTTP responses.

Each API family answers in its own error shape: the management API in the
``{success, data, error, meta}`` envelope; other families (OpenAI-compatible gateway, OTLP)
register a renderer for their path prefix. Unexpected exceptions become a 500 that names the
request id and nothing of the internals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from brokle_server.core.envelope import failure
from brokle_server.errors import (
    BrokleError,
    InvalidInput,
    RetryableError,
    ValidationFailed,
    status_for,
)

log = structlog.get_logger("brokle.errors")

# (error, status, request id) -> response
Renderer = Callable[[BrokleError, int, str | None], Response]

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def json_response(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, headers=headers, media_type="application/json"
    )


def retry_headers(error: BrokleError) -> dict[str, str]:
    if isinstance(error, RetryableError):
        return {"Retry-After": str(max(1, round(error.retry_after))), **error.headers}
    return {}


def envelope_renderer(error: BrokleError, status: int, request_id: str | None) -> Response:
    body = failure(error.code, error.message, error.details, request_id=request_id)
    return json_response(body, status, retry_headers(error))


class ErrorRenderers:
    """Chooses the renderer by path prefix; the longest matching prefix wins."""

    def __init__(self, default: Renderer = envelope_renderer) -> None:
        self._default = default
        self._by_prefix: list[tuple[str, Renderer]] = []

    def register(self, prefix: str, renderer: Renderer) -> None:
        self._by_prefix.append((prefix, renderer))
        self._by_prefix.sort(key=lambda item: len(item[0]), reverse=True)

    def for_path(self, path: str) -> Renderer:
        for prefix, renderer in self._by_prefix:
            if path.startswith(prefix):
                return renderer
        return self._default

    def render(self, error: BrokleError, path: str, request_id: str | None) -> Response:
        return self.for_path(path)(error, status_for(error), request_id)


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _field_path(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def validation_error(exc: RequestValidationError) -> BrokleError:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return InvalidInput("Request body is not valid JSON", code="invalid_json")
    details = [
        {"field": _field_path(e.get("loc", ())), "message": e.get("msg", "")} for e in errors
    ]
    first = details[0] if details else {"field": "body", "message": "invalid"}
    return ValidationFailed(
        f"Invalid field '{first['field']}': {first['message']}", details=details
    )


def install(app: FastAPI, renderers: ErrorRenderers) -> None:
    async def on_brokle_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BrokleError)
        return renderers.render(exc, request.url.path, _request_id(request))

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        error = validation_error(exc)
        renderer = renderers.for_path(request.url.path)
        return renderer(error, 400, _request_id(request))

    async def on_http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = "No such endpoint" if exc.status_code == 404 else str(exc.detail)
        renderer = renderers.for_path(request.url.path)
        response = renderer(BrokleError(message, code=code), exc.status_code, _request_id(request))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        request_id = _request_id(request)
        log.exception("unhandled error", path=request.url.path, request_id=request_id)
        error = BrokleError(
            f"Internal error; quote request id {request_id} when reporting it",
            code="internal_error",
        )
        return renderers.for_path(request.url.path)(error, 500, request_id)

    app.add_exception_handler(BrokleError, on_brokle_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(Exception, on_unexpected)
