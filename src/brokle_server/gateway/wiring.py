"""Builds the gateway's long-lived parts for the app container."""

from __future__ import annotations

from datetime import datetime

import httpx
import structlog
from redis.asyncio import Redis

from brokle_server.auth.ratelimit import RateLimiter
from brokle_server.catalog.db import Database
from brokle_server.core.clock import Clock
from brokle_server.core.secretbox import SecretBox
from brokle_server.gateway.budgets import (
    BudgetRule,
    Budgets,
    BudgetStore,
    MemoryBudgetStore,
    RedisBudgetStore,
    Seeder,
)
from brokle_server.gateway.cache import MemoryCache, RedisCache, ResponseCache
from brokle_server.gateway.config import GatewaySettings
from brokle_server.gateway.project_config import ProjectConfigCache
from brokle_server.gateway.service import GatewayService, Publish
from brokle_server.gateway.tracing import SpanRecorder
from brokle_server.pipeline.queue import Batch, DurableQueue
from brokle_server.store.client import Store, StoreError

log = structlog.get_logger("brokle.gateway")


def spend_seeder(store: Store) -> Seeder:
    """Spend the gateway already recorded in the store for a budget's current period."""

    async def seeder(project_id: str, rule: BudgetRule, start: datetime) -> float:
        if not store.is_open:
            return 0.0
        sql = (
            "SELECT sum(cost_usd) FROM spans WHERE project_id = {p:String} "
            "AND start_time >= fromUnixTimestamp64Nano({t:Int64}, 'UTC') "
            "AND service_name = 'brokle-gateway'"
        )
        params: dict[str, object] = {"p": project_id, "t": int(start.timestamp() * 1e9)}
        if rule.api_key_id:
            sql += " AND api_key_id = {k:String}"
            params["k"] = rule.api_key_id
        try:
            rows = await store.aquery(sql, params)
        except StoreError as exc:
            log.warning("budget spend not read from the store", error=str(exc))
            return 0.0
        return float(rows[0][0] or 0.0) if rows else 0.0

    return seeder


def build_gateway(
    *,
    settings: GatewaySettings,
    db: Database,
    box: SecretBox,
    redis: Redis | None,
    limiter: RateLimiter,
    queue: DurableQueue,
    store: Store,
    publish: Publish,
    clock: Clock,
) -> GatewayService:
    client = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=2000, max_keepalive_connections=500),
        timeout=httpx.Timeout(settings.default_timeout_ms / 1000),
    )
    budget_store: BudgetStore = RedisBudgetStore(redis) if redis else MemoryBudgetStore()
    cache: ResponseCache = RedisCache(redis) if redis else MemoryCache(settings.cache_max_entries)

    async def submit(batches: list[Batch]) -> None:
        await queue.enqueue(batches)

    recorder = SpanRecorder(submit, settings.trace_buffer)
    return GatewayService(
        settings=settings,
        configs=ProjectConfigCache(db, box),
        client=client,
        limiter=limiter,
        budgets=Budgets(budget_store, spend_seeder(store), clock),
        cache=cache,
        recorder=recorder,
        publish=publish,
    )
