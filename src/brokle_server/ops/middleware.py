"""Per-request plumbing as plain ASGI middleware (no per-request Starlette objects).

- a request id (the caller's ``X-Request-Id`` when sane, else a new one) bound into every log
  line and echoed in the response;
- one access-log line and the Prometheus counters/histogram, labelled by route template;
- the management API's body rules: a size cap (413) and JSON-only bodies (415).
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from brokle_server.errors import BrokleError, PayloadTooLarge, UnsupportedMediaType
from brokle_server.http_errors import ErrorRenderers
from brokle_server.ops.metrics import Metrics

log = structlog.get_logger("brokle.http")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Management bodies are JSON; routing files may also be sent as YAML.
_API_MEDIA_TYPES = frozenset(
    {"application/json", "application/yaml", "application/x-yaml", "text/yaml"}
)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id")
        if not request_id or not _REQUEST_ID_RE.match(request_id):
            request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            method = scope["method"]
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(elapsed)
            if route != "/metrics" and not route.startswith("/health"):
                log.info(
                    "request",
                    method=method,
                    path=scope["path"],
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )
            structlog.contextvars.unbind_contextvars("request_id")


class ApiBodyMiddleware:
    """Caps and type-checks request bodies under the management API prefix."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        prefix: str,
        max_bytes: int,
        renderers: ErrorRenderers,
        exempt: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.renderers = renderers
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] not in _BODY_METHODS
            or not path.startswith(self.prefix)
            or path.startswith(self.exempt)
        ):
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        rejection: BrokleError | None = None
        if length and length.isdigit() and int(length) > self.max_bytes:
            rejection = PayloadTooLarge(f"Request body is over the {self.max_bytes}-byte limit")
        elif content_type and content_type not in _API_MEDIA_TYPES and length != "0":
            rejection = UnsupportedMediaType(
                f"Content-Type '{content_type}' is not accepted here; send application/json"
            )
        if rejection is not None:
            request_id = scope.get("state", {}).get("request_id")
            response = self.renderers.render(rejection, path, request_id)
            await response(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise PayloadTooLarge(f"Request body is over the {self.max_bytes}-byte limit")
            return message

        await self.app(scope, limited_receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return "unmatched"
