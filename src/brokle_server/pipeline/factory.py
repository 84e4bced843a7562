"""Choose and open the durable queue: the embedded spool, or Redis Streams when configured."""

from __future__ import annotations

from pathlib import Path

from brokle_server.pipeline.config import PipelineSettings
from brokle_server.pipeline.queue import DurableQueue
from brokle_server.pipeline.redis_streams import RedisStreamQueue
from brokle_server.pipeline.spool import SpoolQueue
from brokle_server.pipeline.writer import BatchWriter, Sink, is_transient


async def build_queue(
    data_dir: Path, redis_url: str | None, settings: PipelineSettings
) -> DurableQueue:
    """Open the queue: ``<data_dir>/spool`` without a Redis URL, Redis Streams with one.

    The caller owns the result and must ``await queue.close()`` (in the app's lifespan).
    """
    if redis_url:
        return await RedisStreamQueue.connect(
            redis_url,
            base=settings.redis_key,
            group=settings.redis_group,
            consumer=settings.redis_consumer,
            max_entries=settings.redis_max_entries,
            max_bytes=settings.redis_max_bytes,
            claim_idle=settings.redis_claim_idle_ms / 1000,
            retry_after=settings.retry_after_s,
        )
    return await SpoolQueue.open(
        data_dir / "spool",
        max_bytes=settings.spool_max_bytes,
        segment_bytes=settings.spool_segment_bytes,
        retry_after=settings.retry_after_s,
    )


def build_writer(queue: DurableQueue, sink: Sink, settings: PipelineSettings) -> BatchWriter:
    """A writer over ``queue`` with the configured batching and retry policy (not started)."""
    return BatchWriter(
        queue,
        sink,
        batch_rows=settings.batch_rows,
        flush_interval_ms=settings.flush_interval_ms,
        max_attempts=settings.max_attempts,
        backoff_initial=settings.retry_backoff_initial_ms / 1000,
        backoff_max=settings.retry_backoff_max_ms / 1000,
        concurrency=settings.writer_concurrency,
        transient=is_transient,
    )
