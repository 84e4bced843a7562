"""Settings for the telemetry store (``BROKLE_STORE__*``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class StoreSettings(BaseModel):
    database: str = Field("brokle", description="ClickHouse database holding Brokle's tables.")
    cluster: str | None = Field(
        None, description="Cluster name: DDL is rendered ON CLUSTER with Replicated engines."
    )
