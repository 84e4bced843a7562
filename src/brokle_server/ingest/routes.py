"""Ingest endpoints: OTLP/HTTP, Prometheus remote_write + Luminate JSON, native batches, scores.

Every handler answers 2xx only after the rows are durable in the queue. OTLP endpoints reply
in OTLP's own shapes (Export*ServiceResponse, ``google.rpc.Status``) in the request's encoding;
the others use the management envelope.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request, Response

from brokle_server.auth.principals import KeyPrincipal
from brokle_server.catalog.models import Scope
from brokle_server.core.envelope import ok
from brokle_server.deps import ServicesDep, authenticate_key
from brokle_server.errors import BrokleError
from brokle_server.http_errors import json_response, retry_headers
from brokle_server.ingest.decode import BodyEncoding, Signal, body_encoding
from brokle_server.ingest.dispatch import decode_otlp, decode_write, otlp_error_reply
from brokle_server.ingest.native import decode_native_batch
from brokle_server.ingest.scores import decode_score, decode_score_batch
from brokle_server.ingest.service import (
    ENVIRONMENT_HEADER,
    metric_batches,
    read_body,
    run_decoder,
    table_batch,
)

router = APIRouter(tags=["ingest"])

_OTLP_TABLES: Final[dict[str, str]] = {"traces": "spans", "logs": "logs"}
_OTLP_DOC = (
    "OTLP/HTTP export: protobuf (`application/x-protobuf`) or JSON (`application/json`), "
    "optionally gzip/deflate. Replies with the Export*ServiceResponse in the same encoding."
)


async def _ingest_key(request: Request, response: Response, services: ServicesDep) -> KeyPrincipal:
    return await authenticate_key(request, response, services, Scope.INGEST)


async def _otlp(signal: Signal, request: Request, services: ServicesDep) -> Response:
    content_type = request.headers.get("content-type")
    limits = Response()  # collects the rate-limit headers
    del limits.headers["content-length"]
    try:
        principal = await _ingest_key(request, limits, services)
        raw = await read_body(request, services.settings.ingest.max_body_bytes)
        now = services.clock()
        result = await run_decoder(
            raw,
            lambda: decode_otlp(
                signal,
                raw,
                content_type=content_type,
                content_encoding=request.headers.get("content-encoding"),
                scope=principal.scope,
                received_at=now,
                settings=services.settings.ingest,
                api_key_id=str(principal.key_id),
                fallback_environment=request.headers.get(ENVIRONMENT_HEADER),
            ),
        )
        if result.metrics is not None:
            batches = metric_batches(result.metrics)
        else:
            batches = [table_batch(_OTLP_TABLES[signal], result.rows)]
        await services.ingest.submit(principal, batches)
        body, media = result.reply()
        return Response(body, 200, media_type=media, headers=dict(limits.headers))
    except BrokleError as exc:
        status, body, media = otlp_error_reply(exc, content_type)
        headers = {**dict(limits.headers), **retry_headers(exc)}
        return Response(body, status, media_type=media, headers=headers)


@router.post("/v1/traces", summary="OTLP traces", description=_OTLP_DOC)
async def otlp_traces(request: Request, services: ServicesDep) -> Response:
    return await _otlp("traces", request, services)


@router.post("/v1/metrics", summary="OTLP metrics", description=_OTLP_DOC)
async def otlp_metrics(request: Request, services: ServicesDep) -> Response:
    return await _otlp("metrics", request, services)


@router.post("/v1/logs", summary="OTLP logs", description=_OTLP_DOC)
async def otlp_logs(request: Request, services: ServicesDep) -> Response:
    return await _otlp("logs", request, services)


@router.post(
    "/api/v1/write",
    summary="Prometheus remote_write, or a Luminate JSON metric batch",
    description=(
        "Snappy-compressed protobuf `WriteRequest` (remote_write 1.0): 204 on success, 400 "
        "naming rejected samples (the valid ones are kept). `application/json` "
        '`{"metrics":[{"name","timestamp","value","dimensions"}]}`: 200 with per-item errors.'
    ),
    status_code=204,
)
async def remote_write(request: Request, response: Response, services: ServicesDep) -> Response:
    principal = await _ingest_key(request, response, services)
    raw = await read_body(request, services.settings.ingest.max_body_bytes)
    content_type = request.headers.get("content-type")
    encoding = body_encoding(content_type)
    now = services.clock()
    metrics = await run_decoder(
        raw,
        lambda: decode_write(
            raw,
            content_type=content_type,
            content_encoding=request.headers.get("content-encoding"),
            scope=principal.scope,
            received_at=now,
            settings=services.settings.ingest,
            fallback_environment=request.headers.get(ENVIRONMENT_HEADER),
        ),
    )
    accepted = await services.ingest.submit(principal, metric_batches(metrics))
    headers = dict(response.headers)
    if encoding is BodyEncoding.PROTOBUF:
        if metrics.rejected.count:
            message = metrics.rejected.message("samples")
            body = {
                "success": False,
                "data": {"accepted_samples": len(metrics.samples)},
                "error": {"code": "invalid_samples", "message": message, "details": None},
                "meta": {},
            }
            return json_response(body, 400, headers)
        return Response(status_code=204, headers=headers)
    data: dict[str, Any] = {
        "accepted": len(metrics.samples),
        "rejected": len(metrics.errors),
        "errors": [e.as_dict() for e in metrics.errors],
    }
    if metrics.errors and not accepted:
        body = {
            "success": False,
            "data": data,
            "error": {
                "code": "invalid_metrics",
                "message": "No metric in the batch was valid",
                "details": data["errors"],
            },
            "meta": {},
        }
        return json_response(body, 400, headers)
    return json_response(ok(data), 200, headers)


@router.post(
    "/api/v1/ingest",
    summary="Native event batch (trace, span, generation, score, event)",
    description="Each item is accepted or refused on its own: 200 when all were, 207 otherwise.",
)
async def native_ingest(request: Request, response: Response, services: ServicesDep) -> Response:
    principal = await _ingest_key(request, response, services)
    raw = await read_body(request, services.settings.ingest.max_body_bytes)
    now = services.clock()
    native = await run_decoder(
        raw,
        lambda: decode_native_batch(
            raw,
            principal.scope,
            now,
            settings=services.settings.ingest,
            api_key_id=str(principal.key_id),
            fallback_environment=request.headers.get(ENVIRONMENT_HEADER),
        ),
    )
    await services.ingest.submit(
        principal,
        [
            table_batch("spans", native.spans),
            table_batch("scores", native.scores),
            table_batch("events", native.events),
        ],
    )
    return json_response(ok(native.response_data()), native.http_status, dict(response.headers))


@router.post("/v1/scores", status_code=201, summary="Record one score (Brokle SDK)")
async def create_score(request: Request, response: Response, services: ServicesDep) -> Response:
    principal = await _ingest_key(request, response, services)
    raw = await read_body(request, services.settings.http.max_json_body_bytes)
    batch = decode_score(
        raw,
        principal.scope,
        services.clock(),
        settings=services.settings.ingest,
        fallback_environment=request.headers.get(ENVIRONMENT_HEADER),
    )
    await services.ingest.submit(principal, [table_batch("scores", batch.rows)])
    return json_response(ok(batch.single_response()), 201, dict(response.headers))


@router.post("/v1/scores/batch", summary="Record many scores (Brokle SDK)")
async def create_scores(request: Request, response: Response, services: ServicesDep) -> Response:
    principal = await _ingest_key(request, response, services)
    raw = await read_body(request, services.settings.ingest.max_body_bytes)
    batch = await run_decoder(
        raw,
        lambda: decode_score_batch(
            raw,
            principal.scope,
            services.clock(),
            settings=services.settings.ingest,
            fallback_environment=request.headers.get(ENVIRONMENT_HEADER),
        ),
    )
    await services.ingest.submit(principal, [table_batch("scores", batch.rows)])
    status = 207 if batch.errors else 200
    return json_response(ok(batch.batch_response()), status, dict(response.headers))
