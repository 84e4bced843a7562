"""Settings for the telemetry store (``BROKLE_STORE__*``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class StoreSettings(BaseModel):
    database: str = Field("brokle", description="ClickHouse database holding Brokle's tables.")
    cluster: str | None = Field(
        None, description="Cluster name: DDL is rendered ON CLUSTER with Replicated engines."
    )
    pool_size: int = Field(
        4,
        ge=1,
        le=64,
        description="Clients (chDB handles or HTTP clients) kept open; each runs one call at a "
        "time, so this bounds the store calls running in parallel.",
    )
    query_timeout_seconds: float = Field(
        30.0, gt=0, description="max_execution_time applied to every query unless overridden."
    )
    dedup_window: int = Field(
        10_000,
        ge=1,
        description="Insert blocks each table remembers for deduplication (applied when the "
        "tables are created): a retried batch older than this many inserts is not recognised.",
    )
    connect_timeout_seconds: int = Field(
        10, ge=1, description="Connect timeout for a ClickHouse server (not used by chDB)."
    )
    send_receive_timeout_seconds: int = Field(
        300, ge=1, description="Socket read/write timeout for a ClickHouse server (not chDB)."
    )
