"""The typed container of long-lived services, built once in the app's lifespan."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis

from brokle_server.auth.principals import KeyVerifier
from brokle_server.auth.ratelimit import RateLimiter
from brokle_server.catalog.db import Database
from brokle_server.core.clock import Clock
from brokle_server.core.secretbox import SecretBox
from brokle_server.gateway.service import GatewayService
from brokle_server.ingest.service import IngestService
from brokle_server.ops.metrics import Metrics
from brokle_server.pipeline.runtime import TelemetryRuntime
from brokle_server.realtime.pubsub import PubSub
from brokle_server.settings import Settings


@dataclass(slots=True)
class Services:
    settings: Settings
    clock: Clock
    db: Database
    redis: Redis | None
    limiter: RateLimiter
    keys: KeyVerifier
    metrics: Metrics
    secrets: SecretBox
    telemetry: TelemetryRuntime
    pubsub: PubSub
    ingest: IngestService
    gateway: GatewayService
    # name -> probe raising when that backend is unusable; used by /health/ready
    checks: dict[str, Callable[[], Awaitable[object]]] = field(default_factory=dict)
