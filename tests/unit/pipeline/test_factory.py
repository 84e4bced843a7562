"""The factory picks the spool without a Redis URL."""

from __future__ import annotations

from pathlib import Path

from brokle_server.pipeline.config import PipelineSettings
from brokle_server.pipeline.factory import build_queue, build_writer
from brokle_server.pipeline.spool import SpoolQueue

from .helpers import message
from .test_writer import FakeStore


async def test_spool_in_data_dir_without_redis(tmp_path: Path) -> None:
    settings = PipelineSettings(batch_rows=10, flush_interval_ms=5)
    queue = await build_queue(tmp_path, None, settings)
    try:
        assert isinstance(queue, SpoolQueue)
        assert (tmp_path / "spool").is_dir()
        store = FakeStore()
        writer = build_writer(queue, store, settings)
        await queue.enqueue(message(1, rows=25))
        await writer.start()
        await writer.stop(grace=5)
        assert store.numbers() == [1] * 25
    finally:
        await queue.close()
