"""The gateway's HTTP face: OpenAI-compatible and Anthropic-compatible endpoints.

Requests are authenticated with a project key carrying the ``gateway`` scope; replies and
errors use each API's own shapes; streams are Server-Sent Events.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from brokle_server.auth.principals import KeyPrincipal
from brokle_server.catalog.models import Scope
from brokle_server.deps import ServicesDep, authenticate_key
from brokle_server.errors import BrokleError, InvalidInput
from brokle_server.gateway import anthropic_api
from brokle_server.gateway.service import Call, Completed, StreamingCall
from brokle_server.gateway.shaping import replay
from brokle_server.gateway.tracing import CallRecord, new_span_id, new_trace_id, parse_traceparent
from brokle_server.http_errors import json_response, retry_headers
from brokle_server.ingest.service import read_body

router = APIRouter(tags=["gateway"])
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_MAX_BODY = 32 << 20


async def _call(
    request: Request, response: Response, services: ServicesDep, endpoint: str, name: str
) -> tuple[Call, dict[str, str]]:
    principal = await authenticate_key(request, response, services, Scope.GATEWAY)
    raw = await read_body(request, _MAX_BODY)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"Request body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise InvalidInput("Request body must be a JSON object", code="invalid_request")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidInput("'model' is required", code="missing_model")
    return _make_call(request, principal, endpoint, name, body), dict(response.headers)


def _make_call(
    request: Request, principal: KeyPrincipal, endpoint: str, name: str, body: dict[str, Any]
) -> Call:
    parent = parse_traceparent(request.headers.get("traceparent"))
    trace_id, parent_span = parent if parent else (new_trace_id(), "")
    record = CallRecord(
        principal=principal,
        trace_id=trace_id,
        span_id=new_span_id(),
        parent_span_id=parent_span,
        name=f"{name} {body.get('model', '')}",
        operation=name,
        start_ns=time.time_ns(),
        requested_model=str(body.get("model", "")),
        user_id=str(body.get("user") or request.headers.get("x-brokle-user-id") or ""),
        session_id=str(request.headers.get("x-brokle-session-id") or ""),
    )
    mode = (request.headers.get("x-brokle-cache") or "").strip().lower()
    if mode not in ("", "no-cache", "no-store"):
        raise InvalidInput("x-brokle-cache must be 'no-cache' or 'no-store'", code="invalid_header")
    ttl_header = request.headers.get("x-brokle-cache-ttl")
    ttl: int | None = None
    if ttl_header is not None:
        if not ttl_header.isdigit() or int(ttl_header) > 30 * 86400:
            raise InvalidInput(
                "x-brokle-cache-ttl must be whole seconds (at most 30 days)", code="invalid_header"
            )
        ttl = int(ttl_header)
    return Call(principal, endpoint, body, bool(body.get("stream")), record, mode, ttl)


def _headers(
    call: Call, limits: dict[str, str], provider: str, cache: str, cost: float | None
) -> dict[str, str]:
    headers = {
        **limits,
        "x-brokle-trace-id": call.record.trace_id,
        "x-brokle-provider": provider,
        "x-brokle-cache": cache,
    }
    if cost is not None:
        headers["x-brokle-cost-usd"] = f"{cost:.8f}"
    return headers


def _completed(call: Call, done: Completed, limits: dict[str, str]) -> Response:
    cost = done.cost.total if done.cost else 0.0
    return json_response(
        done.response, 200, _headers(call, limits, done.provider, done.cache, cost)
    )


async def _openai_sse(call: Call, streaming: StreamingCall) -> AsyncIterator[bytes]:
    include_usage = bool((call.body.get("stream_options") or {}).get("include_usage"))
    output: list[str] = []
    error: BrokleError | None = None
    usage = None
    try:
        if streaming.cached is not None:
            async for chunk in replay(streaming.cached, include_usage):
                yield b"data: " + orjson.dumps(chunk) + b"\n\n"
        else:
            stream = streaming.stream
            assert stream is not None
            async for chunk in stream:
                if "usage" in chunk and not chunk.get("choices"):
                    if include_usage:
                        yield b"data: " + orjson.dumps(chunk) + b"\n\n"
                    continue
                streaming.chunks.append(chunk)
                for choice in chunk.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content") or choice.get("text")
                    if piece:
                        output.append(piece)
                yield b"data: " + orjson.dumps(chunk) + b"\n\n"
            usage = stream.usage
        yield b"data: [DONE]\n\n"
    except BrokleError as exc:
        error = exc
        yield b"data: " + orjson.dumps(openai_error_body(exc)) + b"\n\n"
    finally:
        if streaming.stream is not None:
            usage = usage or streaming.stream.usage
            await streaming.stream.aclose()
        await streaming.finish(usage, "".join(output), error)


def _streaming_response(body: AsyncIterator[bytes], headers: dict[str, str]) -> Response:
    return StreamingResponse(
        body, media_type="text/event-stream", headers={**SSE_HEADERS, **headers}
    )


@router.post("/v1/chat/completions", summary="OpenAI-compatible chat completions")
async def chat_completions(request: Request, response: Response, services: ServicesDep) -> Response:
    call, limits = await _call(request, response, services, "chat", "chat")
    if not isinstance(call.body.get("messages"), list) or not call.body["messages"]:
        raise InvalidInput("'messages' must be a non-empty list", code="invalid_messages")
    if call.stream:
        streaming = await services.gateway.open_stream(call)
        headers = _headers(call, limits, streaming.provider, streaming.cache, None)
        return _streaming_response(_openai_sse(call, streaming), headers)
    return _completed(call, await services.gateway.complete(call), limits)


@router.post("/v1/completions", summary="OpenAI-compatible legacy text completions")
async def completions(request: Request, response: Response, services: ServicesDep) -> Response:
    call, limits = await _call(request, response, services, "completions", "text_completion")
    if "prompt" not in call.body:
        raise InvalidInput("'prompt' is required", code="missing_prompt")
    if call.stream:
        streaming = await services.gateway.open_stream(call)
        headers = _headers(call, limits, streaming.provider, streaming.cache, None)
        return _streaming_response(_openai_sse(call, streaming), headers)
    return _completed(call, await services.gateway.complete(call), limits)


@router.post("/v1/embeddings", summary="OpenAI-compatible embeddings")
async def embeddings(request: Request, response: Response, services: ServicesDep) -> Response:
    call, limits = await _call(request, response, services, "embeddings", "embeddings")
    if "input" not in call.body:
        raise InvalidInput("'input' is required", code="missing_input")
    call.stream = False
    return _completed(call, await services.gateway.complete(call), limits)


@router.get("/v1/models", summary="Models this key may call: route aliases and provider/model")
async def list_models(request: Request, response: Response, services: ServicesDep) -> Response:
    principal = await authenticate_key(request, response, services, Scope.GATEWAY)
    cfg = await services.gateway.configs.get(principal.project_id)
    ids = list(cfg.routes)
    for plan in cfg.routes.values():
        ids.extend(f"{t.provider}/{t.model}" for t in plan.targets)
    created = int(time.time())
    data = [
        {"id": model_id, "object": "model", "created": created, "owned_by": "brokle"}
        for model_id in dict.fromkeys(ids)
    ]
    return json_response({"object": "list", "data": data}, 200, dict(response.headers))


@router.post("/v1/messages", summary="Anthropic-compatible Messages API")
async def messages(request: Request, response: Response, services: ServicesDep) -> Response:
    principal = await authenticate_key(request, response, services, Scope.GATEWAY)
    raw = await read_body(request, _MAX_BODY)
    try:
        inbound = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"Request body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(inbound, dict) or not isinstance(inbound.get("model"), str):
        raise InvalidInput("Request body must be a JSON object with a 'model'")
    body = anthropic_api.to_internal(inbound)
    call = _make_call(request, principal, "chat", "chat", body)
    limits = dict(response.headers)
    requested = inbound["model"]
    if call.stream:
        streaming = await services.gateway.open_stream(call)
        headers = _headers(call, limits, streaming.provider, streaming.cache, None)
        return _streaming_response(_anthropic_sse(call, streaming, requested), headers)
    done = await services.gateway.complete(call)
    message = anthropic_api.to_anthropic_message(done.response, done.usage, model=requested)
    cost = done.cost.total if done.cost else 0.0
    return json_response(message, 200, _headers(call, limits, done.provider, done.cache, cost))


async def _anthropic_sse(call: Call, streaming: StreamingCall, model: str) -> AsyncIterator[bytes]:
    encoder = anthropic_api.AnthropicStreamEncoder(model)
    output: list[str] = []
    error: BrokleError | None = None
    usage = None
    try:
        if streaming.cached is not None:
            chunks: AsyncIterator[dict[str, Any]] = replay(streaming.cached, True)
        else:
            assert streaming.stream is not None
            chunks = streaming.stream
        async for chunk in chunks:
            if chunk.get("choices"):
                streaming.chunks.append(chunk)
                for choice in chunk["choices"]:
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        output.append(piece)
            for event in encoder.feed(chunk):
                yield anthropic_api.encode_event(event)
        if streaming.stream is not None:
            usage = streaming.stream.usage
        for event in encoder.finish(usage):
            yield anthropic_api.encode_event(event)
    except BrokleError as exc:
        error = exc
        yield anthropic_api.encode_event(anthropic_api.error_event(exc, 500))
    finally:
        if streaming.stream is not None:
            usage = usage or streaming.stream.usage
            await streaming.stream.aclose()
        await streaming.finish(usage, "".join(output), error)


# -- error shapes ----------------------------------------------------------------------

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


def gateway_headers(error: BrokleError) -> dict[str, str]:
    """Retry-After for our own limits and for an upstream that asked for one."""
    headers = retry_headers(error)
    upstream_wait = getattr(error, "retry_after", None)
    if "Retry-After" not in headers and isinstance(upstream_wait, int | float):
        headers["Retry-After"] = str(max(1, math.ceil(upstream_wait)))
    return headers


def gateway_status(error: BrokleError, status: int) -> int:
    client_status = getattr(error, "client_status", None)
    return client_status if isinstance(client_status, int) else status


def openai_error_body(error: BrokleError, status: int | None = None) -> dict[str, Any]:
    status = gateway_status(error, status or 500)
    details = error.details if isinstance(error.details, dict) else {}
    return {
        "error": {
            "message": error.message,
            "type": _OPENAI_TYPES.get(status, "api_error"),
            "param": details.get("param"),
            "code": error.code,
        }
    }


def openai_error_renderer(error: BrokleError, status: int, request_id: str | None) -> Response:
    status = gateway_status(error, status)
    headers = gateway_headers(error)
    if request_id:
        headers["x-request-id"] = request_id
    return json_response(openai_error_body(error, status), status, headers)


def anthropic_error_renderer(error: BrokleError, status: int, request_id: str | None) -> Response:
    status = gateway_status(error, status)
    return json_response(anthropic_api.error_body(error, status), status, gateway_headers(error))


OPENAI_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models")
ANTHROPIC_PATHS = ("/v1/messages",)
