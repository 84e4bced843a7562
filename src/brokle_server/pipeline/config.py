"""Settings for the ingest pipeline (``BROKLE_PIPELINE__*``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PipelineSettings(BaseModel):
    run_writers: bool = Field(
        True,
        description="Run the batch writers inside `brokle serve`; turn off when separate "
        "`brokle worker` processes drain a shared Redis queue.",
    )
    batch_rows: int = Field(
        20_000,
        ge=1,
        description="Rows a writer inserts at most at once (larger batches cost less per row).",
    )
    flush_interval_ms: int = Field(200, ge=1, description="Longest wait before a batch is written.")
    writer_concurrency: int = Field(
        1, ge=1, description="Writer loops per process draining the queue in parallel."
    )
    max_attempts: int = Field(
        5,
        ge=1,
        description=(
            "Failed deliveries (rejected inserts, or reclaims from dead consumers) after which "
            "a batch moves to the dead-letter area. Store outages never count."
        ),
    )
    retry_backoff_initial_ms: int = Field(
        200, ge=1, description="First wait before retrying a failed insert; doubles each time."
    )
    retry_backoff_max_ms: int = Field(
        30_000, ge=1, description="Longest wait between retries of a failed insert."
    )
    drain_timeout_s: float = Field(
        10.0, ge=0, description="On shutdown, how long writers keep draining the queue."
    )
    retry_after_s: float = Field(
        1.0, gt=0, description="Retry-After sent to clients when the queue is full."
    )
    spool_max_bytes: int = Field(
        1 << 30,
        ge=1 << 16,
        description="Embedded spool: bytes waiting for the store before ingest answers 503.",
    )
    spool_segment_bytes: int = Field(
        64 << 20, ge=1 << 12, description="Embedded spool: size at which a segment file rolls."
    )
    redis_key: str = Field(
        "brokle:ingest",
        min_length=1,
        description="Redis: base name of the stream and its bookkeeping keys (one hash slot).",
    )
    redis_group: str = Field("writers", min_length=1, description="Redis: consumer group name.")
    redis_consumer: str | None = Field(
        None,
        description=(
            "Redis: this process's consumer name. A stable name resumes its own pending "
            "batches at once after a restart; unset means host-pid-random."
        ),
    )
    redis_max_entries: int = Field(
        100_000, ge=1, description="Redis: queued messages before ingest answers 503."
    )
    redis_max_bytes: int = Field(
        512 << 20, ge=1 << 16, description="Redis: queued payload bytes before ingest answers 503."
    )
    redis_claim_idle_ms: int = Field(
        60_000,
        ge=100,
        description="Redis: a batch pending this long belongs to a dead writer and is reclaimed.",
    )
