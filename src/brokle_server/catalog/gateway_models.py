"""Catalog tables of the gateway: provider credentials, routes, budgets, limits, prices."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from brokle_server.catalog.models import Base, TimestampMixin
from brokle_server.catalog.types import JsonValue, UtcDateTime
from brokle_server.core.clock import utcnow
from brokle_server.core.ids import uuid7


class Strategy(StrEnum):
    FALLBACK = "fallback"
    WEIGHTED = "weighted"
    LOWEST_LATENCY = "lowest_latency"
    LOWEST_COST = "lowest_cost"


class BudgetPeriod(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    TOTAL = "total"


class ProviderCredential(TimestampMixin, Base):
    """An upstream account. Owned by a project, or by an organization for all its projects;
    the secret is encrypted with a key derived from ``BROKLE_SECRET_KEY``."""

    __tablename__ = "provider_credentials"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    project_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(40))
    secret_encrypted: Mapped[str] = mapped_column(Text, default="")
    secret_preview: Mapped[str] = mapped_column(String(20), default="")
    base_url: Mapped[str | None] = mapped_column(String(500))
    options: Mapped[dict[str, Any]] = mapped_column(JsonValue, default=dict)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )

    __table_args__ = (
        Index("ix_provider_credentials_organization_id", "organization_id"),
        Index("ix_provider_credentials_project_id", "project_id"),
    )


class GatewayRoute(TimestampMixin, Base):
    """A model alias of a project and the ordered targets it resolves to."""

    __tablename__ = "gateway_routes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(200))
    strategy: Mapped[str] = mapped_column(String(20), default=Strategy.FALLBACK.value)
    targets: Mapped[list[dict[str, Any]]] = mapped_column(JsonValue, default=list)
    retries: Mapped[int] = mapped_column(Integer, default=2)
    timeout_ms: Mapped[int] = mapped_column(Integer, default=60_000)
    cache_ttl_seconds: Mapped[int | None] = mapped_column(Integer)
    semantic_threshold: Mapped[float | None] = mapped_column(Float)
    semantic_embeddings: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        UniqueConstraint("project_id", "model", name="uq_gateway_routes_project_id_model"),
    )


class Budget(TimestampMixin, Base):
    """A USD spending cap for a project, or for one of its API keys, per period."""

    __tablename__ = "budgets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE")
    )
    period: Mapped[str] = mapped_column(String(10))
    limit_usd: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_budgets_project_id", "project_id"),)


class GatewayLimit(TimestampMixin, Base):
    """Requests and tokens per minute for a project, or for one of its API keys."""

    __tablename__ = "gateway_limits"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE")
    )
    rpm: Mapped[int | None] = mapped_column(Integer)
    tpm: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (Index("ix_gateway_limits_project_id", "project_id"),)


class PriceOverride(Base):
    """A project's own price for a model, in USD per million tokens."""

    __tablename__ = "price_overrides"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(200))
    input_per_mtok: Mapped[float] = mapped_column(Float)
    output_per_mtok: Mapped[float] = mapped_column(Float)
    cached_input_per_mtok: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint(
            "project_id", "provider", "model", name="uq_price_overrides_project_id_provider"
        ),
    )
