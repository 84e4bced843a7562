"""Settings for the gateway (``BROKLE_GATEWAY__*``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class GatewaySettings(BaseModel):
    default_timeout_ms: int = Field(
        60_000, ge=100, description="Per-attempt upstream timeout when a route sets none."
    )
    max_attempts: int = Field(
        6, ge=1, le=50, description="Upper bound on upstream attempts per request, all targets."
    )
    backoff_initial_ms: int = Field(200, ge=0, description="First retry delay (jittered).")
    backoff_max_ms: int = Field(8_000, ge=0, description="Longest retry delay.")
    breaker_failures: int = Field(
        5, ge=1, description="Consecutive failures that open a target's circuit breaker."
    )
    breaker_cooldown_s: float = Field(
        30.0, gt=0, description="How long an open breaker skips its target before a trial."
    )
    cache_max_entries: int = Field(
        10_000, ge=0, description="Entries of the in-process exact cache (no Redis)."
    )
    default_max_output_tokens: int = Field(
        4096,
        ge=1,
        description="Output tokens assumed when reserving budget for a request without a limit.",
    )
    unknown_input_price_per_mtok: float = Field(
        10.0, ge=0, description="USD per million input tokens reserved for an unpriced model."
    )
    unknown_output_price_per_mtok: float = Field(
        30.0, ge=0, description="USD per million output tokens reserved for an unpriced model."
    )
    trace_buffer: int = Field(
        10_000, ge=1, description="Gateway spans held for recording; beyond it spans are dropped."
    )
