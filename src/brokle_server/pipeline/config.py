"""Settings for the ingest pipeline (``BROKLE_PIPELINE__*``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PipelineSettings(BaseModel):
    batch_rows: int = Field(5000, ge=1, description="Rows a writer inserts at most at once.")
    flush_interval_ms: int = Field(200, ge=1, description="Longest wait before a batch is written.")
