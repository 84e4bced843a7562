"""The composition root: ``create_app(settings)`` wires every part; the lifespan builds them."""

from __future__ import annotations

import gc
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from redis.asyncio import Redis
from redis.exceptions import RedisError
from rich.console import Console
from rich.panel import Panel

from brokle_server import __version__, http_errors
from brokle_server.auth import routes as auth_routes
from brokle_server.auth.principals import KeyVerifier
from brokle_server.auth.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from brokle_server.bootstrap import FirstRun, bootstrap
from brokle_server.catalog import routes_gateway, routes_orgs, routes_projects
from brokle_server.catalog.db import Database
from brokle_server.container import Services
from brokle_server.core.clock import Clock, utcnow
from brokle_server.core.secretbox import SecretBox
from brokle_server.errors import ConfigurationError
from brokle_server.gateway import routes as gateway_routes
from brokle_server.gateway.wiring import build_gateway
from brokle_server.ingest import routes as ingest_routes
from brokle_server.ingest.service import IngestService
from brokle_server.ops import health
from brokle_server.ops.logging import configure as configure_logging
from brokle_server.ops.metrics import Metrics
from brokle_server.ops.middleware import ApiBodyMiddleware, RequestContextMiddleware
from brokle_server.pipeline.runtime import TelemetryRuntime
from brokle_server.query import routes as query_routes
from brokle_server.realtime.pubsub import MemoryPubSub, PubSub, RedisPubSub
from brokle_server.settings import Settings

log = structlog.get_logger("brokle")

# Paths under /api whose bodies are telemetry, with their own size and type rules.
INGEST_API_PATHS = ("/api/v1/write", "/api/v1/ingest")


def create_app(settings: Settings | None = None, *, clock: Clock = utcnow) -> FastAPI:
    """Build the ASGI app. Nothing touches disk or network until the lifespan starts."""
    settings = settings or Settings()
    metrics = Metrics()
    renderers = http_errors.ErrorRenderers()
    for path in gateway_routes.OPENAI_PATHS:
        renderers.register(path, gateway_routes.openai_error_renderer)
    for path in gateway_routes.ANTHROPIC_PATHS:
        renderers.register(path, gateway_routes.anthropic_error_renderer)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings.resolved()
        configure_logging(resolved.log_level, json=resolved.log_json)
        services = await _build_services(resolved, clock, metrics)
        app.state.services = services
        try:
            first_run = await bootstrap(services.db, resolved, clock)
            if first_run is not None:
                _announce(first_run, resolved)
            _tune_gc()
            log.info("brokle started", version=__version__, data_dir=str(resolved.data_dir))
            yield
        finally:
            await _close_services(services)

    app = FastAPI(
        title="Brokle",
        version=__version__,
        summary="AI gateway and LLM observability platform",
        lifespan=lifespan,
    )
    http_errors.install(app, renderers)
    app.include_router(health.router)
    app.include_router(auth_routes.router)
    app.include_router(auth_routes.sdk_router)
    app.include_router(routes_orgs.router)
    app.include_router(routes_projects.router)
    app.include_router(routes_gateway.router)
    app.include_router(ingest_routes.router)
    app.include_router(gateway_routes.router)
    app.include_router(query_routes.router)

    app.add_middleware(
        ApiBodyMiddleware,
        prefix="/api/",
        max_bytes=settings.http.max_json_body_bytes,
        renderers=renderers,
        exempt=INGEST_API_PATHS,
    )
    if settings.http.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.http.cors_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    return app


async def _build_services(settings: Settings, clock: Clock, metrics: Metrics) -> Services:
    assert settings.database_url is not None
    db = Database(settings.database_url)
    if settings.auto_migrate:
        await db.migrate()
    redis: Redis | None = None
    limiter: RateLimiter
    pubsub: PubSub
    if settings.redis_url:
        redis = Redis.from_url(settings.redis_url)
        limiter = RedisRateLimiter(redis)
        pubsub = RedisPubSub(redis)
    else:
        limiter = MemoryRateLimiter()
        pubsub = MemoryPubSub()
    telemetry = TelemetryRuntime(settings, run_writers=settings.pipeline.run_writers)
    try:
        await telemetry.start()
    except (RedisError, OSError) as exc:
        if redis is not None:
            await redis.aclose()
        await db.dispose()
        raise ConfigurationError(
            f"cannot open the ingest queue ({'Redis' if settings.redis_url else 'spool'}): {exc}"
        ) from exc
    box = SecretBox(settings.secret)
    services = Services(
        settings=settings,
        clock=clock,
        db=db,
        redis=redis,
        limiter=limiter,
        keys=KeyVerifier(db, clock, settings.auth.api_key_cache_seconds),
        metrics=metrics,
        secrets=box,
        telemetry=telemetry,
        pubsub=pubsub,
        ingest=IngestService(telemetry.queue, pubsub),
        gateway=build_gateway(
            settings=settings.gateway,
            db=db,
            box=box,
            redis=redis,
            limiter=limiter,
            queue=telemetry.queue,
            store=telemetry.store,
            publish=pubsub.publish,
            clock=clock,
        ),
    )
    services.gateway.recorder.start()
    services.checks["catalog"] = db.ping
    services.checks["store"] = telemetry.ping_store
    metrics.add_gauges(
        "brokle_pipeline", "Ingest pipeline counters and queue depth.", telemetry.counters
    )
    metrics.add_gauges(
        "brokle_gateway_spans",
        "Gateway call spans: recorded, dropped (buffer full), failed, buffered.",
        services.gateway.recorder.counters,
    )
    metrics.add_gauges(
        "brokle_ingest_accepted_rows",
        "Rows made durable by ingest, by table.",
        services.ingest.counters,
        label="table",
    )
    if redis is not None:
        services.checks["redis"] = redis.ping
    return services


async def _close_services(services: Services) -> None:
    await services.gateway.recorder.stop()
    await services.gateway.client.aclose()
    await services.telemetry.stop()
    await services.pubsub.close()
    await services.limiter.close()
    if services.redis is not None:
        await services.redis.aclose()
    await services.db.dispose()


def _tune_gc() -> None:
    """Ingest allocates many short-lived objects per span; with CPython's default thresholds
    the cyclic collector ran for ~40% of ingest CPU. Objects alive after start-up are frozen
    out of collection and young-generation collections run far less often (measured ~30%
    less CPU per ingested span)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _announce(first_run: FirstRun, settings: Settings) -> None:
    lines = [
        f"Dashboard/API: http://{settings.host}:{settings.port}",
        f"Admin email:   {first_run.admin_email}",
    ]
    if first_run.admin_password:
        lines.append(f"Admin password: {first_run.admin_password}")
    lines += [
        f"Organization:  {first_run.organization}",
        f"Project:       {first_run.project} ({first_run.project_id})",
    ]
    if first_run.api_key:
        lines.append(f"API key:       {first_run.api_key}")
    if first_run.admin_password or first_run.api_key:
        lines.append("")
        lines.append("These secrets are shown only this once. Store them now.")
    Console(file=sys.stdout).print(
        Panel("\n".join(lines), title="Brokle first run", border_style="green")
    )
