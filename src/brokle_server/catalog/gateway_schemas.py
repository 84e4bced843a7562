"""Request bodies and reply shapes of the gateway configuration API."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import Field, HttpUrl, StringConstraints, model_validator

from brokle_server.catalog.gateway_models import (
    Budget,
    BudgetPeriod,
    GatewayLimit,
    GatewayRoute,
    PriceOverride,
    ProviderCredential,
    Strategy,
)
from brokle_server.catalog.schemas import Body, iso

# Provider kinds the gateway can call (checked against the provider registry by a test).
PROVIDER_KINDS = (
    "openai",
    "azure",
    "anthropic",
    "gemini",
    "groq",
    "together",
    "fireworks",
    "deepseek",
    "mistral",
    "openrouter",
    "xai",
    "perplexity",
    "ollama",
    "vllm",
    "lmstudio",
)
ProviderName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class ProviderIn(Body):
    name: ProviderName = Field(description='How routes and `model: "<name>/<model>"` refer to it.')
    provider: str = Field(description="Provider kind.", examples=["openai"])
    api_key: Annotated[str, StringConstraints(max_length=4096)] = Field(
        "", description="Upstream credential; stored encrypted, never returned."
    )
    base_url: HttpUrl | None = None
    options: dict[
        Annotated[str, StringConstraints(max_length=64)],
        Annotated[str, StringConstraints(max_length=500)],
    ] = Field(default_factory=dict, max_length=20, description="e.g. api_version for Azure.")
    shared: bool = Field(False, description="Share with every project of the organization.")

    @model_validator(mode="after")
    def _known_kind(self) -> ProviderIn:
        if self.provider not in PROVIDER_KINDS:
            raise ValueError(
                f"unknown provider '{self.provider}'; one of {', '.join(PROVIDER_KINDS)}"
            )
        return self


class RouteTarget(Body):
    provider: ProviderName
    model: ModelName
    weight: float = Field(1.0, gt=0, le=1000)


class RouteIn(Body):
    model: ModelName = Field(description="The alias clients send as `model`.")
    strategy: Strategy = Strategy.FALLBACK
    targets: list[RouteTarget] = Field(min_length=1, max_length=20)
    retries: int = Field(2, ge=0, le=10)
    timeout_ms: int = Field(60_000, ge=100, le=600_000)
    cache_ttl_seconds: int | None = Field(None, ge=0, le=30 * 86400)
    semantic_threshold: float | None = Field(
        None, ge=0.5, le=1.0, description="Cosine similarity a semantic cache hit needs."
    )
    semantic_embeddings: ModelName | None = Field(
        None,
        description="Embeddings model (a route alias or `<provider>/<model>`) for the semantic "
        "cache; needs cache_ttl_seconds and semantic_threshold.",
    )

    @model_validator(mode="after")
    def _semantic_complete(self) -> RouteIn:
        semantic = (self.semantic_threshold, self.semantic_embeddings)
        if any(v is not None for v in semantic) and (
            None in semantic or not self.cache_ttl_seconds
        ):
            raise ValueError(
                "the semantic cache needs semantic_threshold, semantic_embeddings and "
                "cache_ttl_seconds together"
            )
        return self

    def fields(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        return data


class RoutingFile(Body):
    routes: list[RouteIn] = Field(max_length=500)


class BudgetIn(Body):
    period: BudgetPeriod
    limit_usd: float = Field(gt=0, le=1e9)
    api_key_id: uuid.UUID | None = None


class LimitIn(Body):
    rpm: int | None = Field(None, ge=1, le=10_000_000)
    tpm: int | None = Field(None, ge=1, le=10_000_000_000)
    api_key_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _one_of(self) -> LimitIn:
        if self.rpm is None and self.tpm is None:
            raise ValueError("set rpm, tpm or both")
        return self


class PriceIn(Body):
    provider: ProviderName
    model: ModelName
    input_per_mtok: float = Field(ge=0, le=1e6)
    output_per_mtok: float = Field(ge=0, le=1e6)
    cached_input_per_mtok: float | None = Field(None, ge=0, le=1e6)


def provider_out(row: ProviderCredential) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "provider": row.provider,
        "base_url": row.base_url,
        "options": row.options,
        "shared": row.project_id is None,
        "api_key_preview": row.secret_preview or None,
        "created_at": iso(row.created_at),
    }


def route_out(row: GatewayRoute) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "model": row.model,
        "strategy": row.strategy,
        "targets": row.targets,
        "retries": row.retries,
        "timeout_ms": row.timeout_ms,
        "cache_ttl_seconds": row.cache_ttl_seconds,
        "semantic_threshold": row.semantic_threshold,
        "semantic_embeddings": row.semantic_embeddings,
        "updated_at": iso(row.updated_at),
    }


def budget_out(row: Budget) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "period": row.period,
        "limit_usd": row.limit_usd,
        "api_key_id": str(row.api_key_id) if row.api_key_id else None,
        "created_at": iso(row.created_at),
    }


def limit_out(row: GatewayLimit) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "rpm": row.rpm,
        "tpm": row.tpm,
        "api_key_id": str(row.api_key_id) if row.api_key_id else None,
        "created_at": iso(row.created_at),
    }


def price_out(row: PriceOverride) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "provider": row.provider,
        "model": row.model,
        "input_per_mtok": row.input_per_mtok,
        "output_per_mtok": row.output_per_mtok,
        "cached_input_per_mtok": row.cached_input_per_mtok,
    }
