"""Liveness, readiness and the Prometheus exposition of Brokle's own metrics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from brokle_server import __version__
from brokle_server.deps import ServicesDep

router = APIRouter(tags=["operations"])
CHECK_TIMEOUT_SECONDS = 3.0


async def _run_checks(services: ServicesDep) -> tuple[bool, dict[str, Any]]:
    results: dict[str, Any] = {}
    healthy = True
    for name, check in services.checks.items():
        started = time.perf_counter()
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                await check()
            results[name] = {"status": "ok"}
        except Exception as exc:
            healthy = False
            results[name] = {"status": "error", "error": type(exc).__name__}
        results[name]["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return healthy, results


@router.get("/health", summary="Overall status with each backend's check")
async def health(services: ServicesDep) -> JSONResponse:
    healthy, checks = await _run_checks(services)
    body = {"status": "ok" if healthy else "degraded", "version": __version__, "checks": checks}
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/health/live", summary="The process is up")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready", summary="Every configured backend answers")
async def ready(services: ServicesDep) -> JSONResponse:
    healthy, checks = await _run_checks(services)
    return JSONResponse(
        {"status": "ready" if healthy else "not_ready", "checks": checks},
        status_code=200 if healthy else 503,
    )


@router.get("/metrics", summary="Prometheus metrics of this Brokle process")
async def metrics(services: ServicesDep) -> Response:
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
