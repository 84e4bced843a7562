"""A local fake LLM provider server speaking OpenAI, Azure OpenAI, Anthropic and Gemini.

It runs a Starlette app under uvicorn in a background thread on a free loopback port, so
pytest fixtures and benchmarks can point real HTTP clients at it::

    with FakeUpstream() as fake:                      # or fake.start() ... fake.stop()
        fake.reply(Reply(text="hi", usage=FakeUsage(prompt=20, cached=5)), model="m1")
        fake.fail(Fault(status=429, retry_after=2), model="m1", times=1)
        fake.fail(Fault(close_after=3), route="anthropic.messages")
        ... call fake.openai_base_url, fake.base_url (Anthropic, Gemini, Azure) ...
        fake.count("openai.chat"), fake.last("openai.chat").body, fake.max_in_flight

Routes (names used by ``fail``, ``count`` and ``last``): ``openai.chat``,
``openai.completions``, ``openai.embeddings``, ``openai.models`` under ``/v1``; ``azure.chat``,
``azure.completions``, ``azure.embeddings`` under ``/openai/deployments/{deployment}/``;
``anthropic.messages``, ``anthropic.models`` (``/v1/messages``, ``/v1/models`` with Anthropic
headers); ``gemini.generate``, ``gemini.stream``, ``gemini.embed``, ``gemini.models`` under
``/v1beta/models``. Credentials must be present (any value) unless ``require_auth`` is off.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes import anthropic_wire, gemini_wire, openai_wire
from tests.fakes.script import Fault, Reply, Resolved, resolve

_WIRES: dict[str, Any] = {"openai": openai_wire, "anthropic": anthropic_wire, "gemini": gemini_wire}


class _DropConnection(Exception):
    """Raised inside a streamed body to cut the connection mid-stream."""


def _is_drop(exc: BaseException | None) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_drop(e) for e in exc.exceptions)
    return isinstance(exc, _DropConnection)


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and _is_drop(record.exc_info[1]))


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


@dataclass(frozen=True)
class Recorded:
    route: str
    model: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class _Rule:
    fault: Fault
    model: str | None
    route: str | None
    remaining: int | None


class FakeUpstream:
    def __init__(self, *, host: str = "127.0.0.1", models: tuple[str, ...] = ("fake-model",)):
        self.host = host
        self.port = 0
        self.models = list(models)
        self.require_auth = True
        self.requests: list[Recorded] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._replies: dict[str | None, Reply] = {}
        self._stopping = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = self._build_app()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    def start(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="fake-upstream"
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake upstream did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting ---------------------------------------------------------------------------

    def reply(self, reply: Reply | None = None, *, model: str | None = None, **fields: Any) -> None:
        """Set the reply for ``model`` (None: every model without its own reply)."""
        self._replies[model] = replace(reply or Reply(), **fields)

    def fail(
        self,
        fault: Fault | None = None,
        *,
        model: str | None = None,
        route: str | None = None,
        times: int | None = 1,
        **fields: Any,
    ) -> None:
        """Apply ``fault`` to the next ``times`` matching requests (None: all of them)."""
        rule = _Rule(replace(fault or Fault(), **fields), model, route, times)
        with self._lock:
            self._rules.append(rule)

    def reset(self) -> None:
        with self._lock:
            self._rules.clear()
            self._replies.clear()
            self.requests.clear()
            self.require_auth = True
            self.max_in_flight = self.in_flight  # streams of earlier tests may still end

    # -- inspection --------------------------------------------------------------------------

    def count(self, route: str | None = None, *, model: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (route is None or r.route == route) and (model is None or r.model == model)
            )

    def last(self, route: str | None = None) -> Recorded:
        with self._lock:
            for r in reversed(self.requests):
                if route is None or r.route == route:
                    return r
        raise LookupError(f"no request on route {route!r}")

    # -- serving -----------------------------------------------------------------------------

    def _take_fault(self, route: str, model: str) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if rule.route not in (None, route) or rule.model not in (None, model):
                    continue
                if rule.remaining is not None:
                    if rule.remaining <= 0:
                        continue
                    rule.remaining -= 1
                return rule.fault
        return None

    def _resolved(self, model: str, last_user_text: str, n: int = 1) -> Resolved:
        reply = self._replies.get(model) or self._replies.get(None) or Reply()
        return resolve(reply, last_user_text, n)

    def _authorised(self, family: str, request: Request) -> bool:
        if not self.require_auth:
            return True
        headers = request.headers
        if family == "azure":
            return bool(headers.get("api-key")) and "api-version" in request.query_params
        if family == "anthropic":  # newer SDKs send the key as a Bearer token
            key = headers.get("x-api-key") or headers.get("authorization", "")[7:]
            return bool(key) and bool(headers.get("anthropic-version"))
        if family == "gemini":
            return bool(headers.get("x-goog-api-key") or request.query_params.get("key"))
        return headers.get("authorization", "").startswith("Bearer ") and len(
            headers.get("authorization", "")
        ) > len("Bearer ")

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    async def _hang(self, request: Request, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._stopping.is_set():
            await asyncio.sleep(0.05)

    def _error(self, wire_family: str, status: int, fault: Fault) -> Response:
        wire = _WIRES[wire_family]
        if wire_family == "gemini":
            body = wire.error_body(status, fault.message, fault.error_type, fault.retry_after)
        else:
            body = wire.error_body(status, fault.message, fault.error_type)
        headers = {}
        if fault.retry_after is not None:
            headers["retry-after"] = f"{fault.retry_after:g}"
        if fault.retry_after_ms is not None:
            headers["retry-after-ms"] = f"{fault.retry_after_ms:g}"
        return JSONResponse(body, status_code=status, headers=headers)

    async def _events(
        self, events: list[bytes], wire_family: str, fault: Fault | None
    ) -> AsyncIterator[bytes]:
        try:
            for i, event in enumerate(events):
                if fault is not None:
                    if fault.close_after is not None and i >= fault.close_after:
                        raise _DropConnection
                    if fault.error_after is not None and i >= fault.error_after:
                        yield _WIRES[wire_family].error_event(fault.message, fault.error_type)
                        return
                    if fault.chunk_delay and i:
                        await asyncio.sleep(fault.chunk_delay)
                yield event
        finally:
            self._leave()

    async def _serve(
        self,
        request: Request,
        route: str,
        family: str,
        model_of: Callable[[Request, Any], str],
        respond: Callable[[Any, str], Any],
    ) -> Response:
        body = await request.json() if request.method == "POST" else None
        model = model_of(request, body)
        record = Recorded(
            route,
            model,
            request.method,
            request.url.path,
            dict(request.query_params),
            dict(request.headers),
            body,
        )
        wire_family = "openai" if family == "azure" else family
        with self._lock:
            self.requests.append(record)
        self._enter()
        streaming = False
        try:
            if not self._authorised(family, request):
                return self._error(wire_family, 401, Fault(message="missing credentials"))
            fault = self._take_fault(route, model)
            if fault is not None:
                if fault.latency:
                    await asyncio.sleep(fault.latency)
                if fault.hang:
                    await self._hang(request, fault.hang_for)
                    return self._error(wire_family, 504, fault)
                if fault.status is not None:
                    return self._error(wire_family, fault.status, fault)
            result = respond(body, model)
            if isinstance(result, list):
                streaming = True
                return StreamingResponse(
                    self._events(result, wire_family, fault), media_type="text/event-stream"
                )
            return JSONResponse(result)
        finally:
            if not streaming:
                self._leave()

    def _build_app(self) -> Starlette:
        from tests.fakes.routes import build_routes

        routes: list[Route] = build_routes(self)
        return Starlette(routes=routes)
