"""A project's gateway configuration, loaded from the catalog and cached for the hot path.

Every gateway request needs the project's providers, routes, limits, budgets and prices; they
are read once and kept for a few seconds (changes through this process's API drop the entry
at once; other instances see them within ``ttl``). Provider secrets are decrypted here, once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import select

from brokle_server.catalog import gateway as catalog_gateway
from brokle_server.catalog.db import Database
from brokle_server.catalog.gateway_models import (
    Budget,
    GatewayLimit,
    GatewayRoute,
    PriceOverride,
    Strategy,
)
from brokle_server.catalog.models import Project
from brokle_server.core.secretbox import SecretBox
from brokle_server.errors import NotFound
from brokle_server.gateway.budgets import BudgetRule
from brokle_server.gateway.pricing import Price, Pricer
from brokle_server.gateway.routing import RoutePlan, Target
from brokle_server.gateway.types import ProviderConfig


@dataclass(frozen=True, slots=True)
class LimitRule:
    api_key_id: str | None
    rpm: int | None
    tpm: int | None


@dataclass(slots=True)
class ProjectGateway:
    project_id: str
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    routes: dict[str, RoutePlan] = field(default_factory=dict)
    budgets: list[BudgetRule] = field(default_factory=list)
    limits: list[LimitRule] = field(default_factory=list)
    prices: dict[tuple[str, str], Price] = field(default_factory=dict)
    _pricer: Pricer | None = field(default=None, repr=False)

    @property
    def pricer(self) -> Pricer:
        """Prices with this project's overrides; built once per loaded configuration."""
        if self._pricer is None:
            self._pricer = Pricer(self.prices)
        return self._pricer

    def budgets_for(self, api_key_id: str) -> list[BudgetRule]:
        return [b for b in self.budgets if b.api_key_id in (None, api_key_id)]

    def limits_for(self, api_key_id: str) -> list[LimitRule]:
        return [r for r in self.limits if r.api_key_id in (None, api_key_id)]

    def resolve(self, model: str, *, default_timeout_s: float) -> RoutePlan:
        """A route alias, or ``<provider name>/<model>`` straight to one credential."""
        plan = self.routes.get(model)
        if plan is not None:
            return plan
        provider, sep, upstream_model = model.partition("/")
        if sep and upstream_model and provider in self.providers:
            return RoutePlan(
                alias=model,
                strategy=Strategy.FALLBACK,
                targets=(Target(provider, upstream_model),),
                retries=2,
                timeout_s=default_timeout_s,
            )
        raise NotFound(
            f"The model '{model}' is not routed in this project: add a route for it, or call "
            f"'<provider>/<model>' with one of: {', '.join(sorted(self.providers)) or 'none'}",
            code="model_not_found",
        )


class ProjectConfigCache:
    def __init__(self, db: Database, box: SecretBox, ttl: float = 5.0) -> None:
        self._db = db
        self._box = box
        self._ttl = ttl
        self._entries: dict[str, tuple[float, ProjectGateway]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def invalidate(self, project_id: str | uuid.UUID) -> None:
        self._entries.pop(str(project_id), None)

    async def get(self, project_id: uuid.UUID) -> ProjectGateway:
        key = str(project_id)
        entry = self._entries.get(key)
        if entry is not None and time.monotonic() - entry[0] < self._ttl:
            return entry[1]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one load per project at a time, not one per waiting request
            entry = self._entries.get(key)
            if entry is not None and time.monotonic() - entry[0] < self._ttl:
                return entry[1]
            config = await self._load(project_id)
            self._entries[key] = (time.monotonic(), config)
            return config

    async def _load(self, project_id: uuid.UUID) -> ProjectGateway:
        config = ProjectGateway(project_id=str(project_id))
        async with self._db.session() as session:
            project = await session.get(Project, project_id)
            if project is None:
                return config
            credentials = await catalog_gateway.visible_credentials(session, project)
            routes = await session.scalars(
                select(GatewayRoute).where(GatewayRoute.project_id == project_id)
            )
            budgets = await session.scalars(select(Budget).where(Budget.project_id == project_id))
            limits = await session.scalars(
                select(GatewayLimit).where(GatewayLimit.project_id == project_id)
            )
            prices = await session.scalars(
                select(PriceOverride).where(PriceOverride.project_id == project_id)
            )
            for cred in credentials:
                if cred.name in config.providers:  # a project credential shadows a shared one
                    continue
                config.providers[cred.name] = ProviderConfig(
                    name=cred.name,
                    kind=cred.provider,
                    api_key=self._box.open(cred.secret_encrypted) if cred.secret_encrypted else "",
                    base_url=cred.base_url,
                    options={str(k): str(v) for k, v in (cred.options or {}).items()},
                )
            for route in routes:
                config.routes[route.model] = RoutePlan(
                    alias=route.model,
                    strategy=Strategy(route.strategy),
                    targets=tuple(
                        Target(t["provider"], t["model"], float(t.get("weight", 1.0)))
                        for t in route.targets
                    ),
                    retries=route.retries,
                    timeout_s=route.timeout_ms / 1000,
                    cache_ttl_s=route.cache_ttl_seconds,
                    semantic_threshold=route.semantic_threshold,
                    semantic_embeddings=route.semantic_embeddings,
                    route_id=str(route.id),
                )
            config.budgets = [
                BudgetRule(
                    str(b.id), b.limit_usd, b.period, str(b.api_key_id) if b.api_key_id else None
                )
                for b in budgets
            ]
            config.limits = [
                LimitRule(str(r.api_key_id) if r.api_key_id else None, r.rpm, r.tpm) for r in limits
            ]
            kinds = {c.name: c.provider for c in credentials}
            for p in prices:
                price = Price(p.input_per_mtok, p.output_per_mtok, p.cached_input_per_mtok)
                # Overrides name a provider credential; pricing looks up by kind and model.
                config.prices[(kinds.get(p.provider, p.provider), p.model)] = price
        return config
