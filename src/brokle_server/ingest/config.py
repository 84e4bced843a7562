"""Settings for the ingest endpoints (``BROKLE_INGEST__*``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class IngestSettings(BaseModel):
    max_body_bytes: int = Field(
        16 << 20, ge=1024, description="Largest ingest request body, after decompression."
    )
