"""Luminate JSON metric batches → series and samples, with per-entry validation."""

from __future__ import annotations

import orjson
import pytest

from brokle_server.core.types import ProjectScope
from brokle_server.errors import InvalidInput
from brokle_server.ingest.config import IngestSettings
from brokle_server.ingest.decode import PayloadDecodeError
from brokle_server.ingest.luminate import decode_luminate
from brokle_server.store.schema import SAMPLE_COLUMNS, SERIES_COLUMNS

from .conftest import NOW, NOW_NS

NOW_MS = NOW_NS // 1_000_000


def body(*metrics: object) -> bytes:
    return orjson.dumps({"metrics": list(metrics)})


def test_timestamps_and_dimensions(scope: ProjectScope) -> None:
    batch = decode_luminate(
        body(
            {
                "name": "api_latency_ms",
                "value": 12.5,
                "timestamp": "2026-11-22T11:59:00Z",
                "dimensions": {"region": "eu", "code": 200, "canary": True},
            },
            {
                "name": "api_latency_ms",
                "value": 7,
                "timestamp": NOW_MS // 1000 - 30,
                "dimensions": {"region": "eu", "code": 200, "canary": True},
            },
            {"name": "queue:depth", "value": 3, "timestamp": NOW_MS - 1000},
            {"name": "no_ts", "value": 1},
        ),
        scope,
        NOW,
    )
    assert batch.errors == [] and batch.rejected.count == 0
    samples = [dict(zip(SAMPLE_COLUMNS, r, strict=True)) for r in batch.samples]
    assert [(s["metric_name"], s["timestamp"], s["value"]) for s in samples] == [
        ("api_latency_ms", NOW_MS - 60_000, 12.5),
        ("api_latency_ms", NOW_MS - 30_000, 7.0),
        ("queue:depth", NOW_MS - 1000, 3.0),
        ("no_ts", NOW_MS, 1.0),
    ]
    series = [dict(zip(SERIES_COLUMNS, r, strict=True)) for r in batch.series]
    assert len(series) == 3
    assert series[0]["labels"] == {"region": "eu", "code": "200", "canary": "true"}
    assert (series[0]["first_seen"], series[0]["last_seen"]) == (NOW_MS - 60_000, NOW_MS - 30_000)
    assert series[0]["metric_type"] == "gauge"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"value": 1}, "name is required"),
        ({"name": "bad-name", "value": 1}, "invalid metric name"),
        ({"name": "m", "value": "1"}, "value must be a number"),
        ({"name": "m", "value": True}, "value must be a number"),
        ({"name": "m", "value": 1, "timestamp": "yesterday"}, "invalid timestamp"),
        ({"name": "m", "value": 1, "timestamp": 1}, "older than"),
        ({"name": "m", "value": 1, "timestamp": "2030-01-01T00:00:00Z"}, "in the future"),
        ({"name": "m", "value": 1, "dimensions": {f"d{i}": "v" for i in range(21)}}, "at most 20"),
        ({"name": "m", "value": 1, "dimensions": {"bad-key": "v"}}, "invalid dimension name"),
        ({"name": "m", "value": 1, "dimensions": {"__name__": "v"}}, "reserved"),
        ({"name": "m", "value": 1, "dimensions": {"_tenant_id": "other"}}, "reserved"),
        ({"name": "m", "value": 1, "dimensions": {"k": {"nested": 1}}}, "string, number"),
        ({"name": "m", "value": 1, "dimensions": ["k"]}, "must be a JSON object"),
        ("not an object", "JSON object"),
    ],
)
def test_invalid_entries_are_reported_by_index(
    scope: ProjectScope, entry: object, message: str
) -> None:
    batch = decode_luminate(body({"name": "ok", "value": 1}, entry), scope, NOW)
    assert len(batch.samples) == 1
    (error,) = batch.errors
    assert error.index == 1 and message in error.message
    assert batch.rejected.count == 1


def test_whole_body_errors(scope: ProjectScope) -> None:
    with pytest.raises(InvalidInput, match="metrics"):
        decode_luminate(b'{"data": []}', scope, NOW)
    with pytest.raises(PayloadDecodeError):
        decode_luminate(b'{"metrics": [', scope, NOW)
    with pytest.raises(InvalidInput, match="at most 2"):
        decode_luminate(
            body(*[{"name": "m", "value": 1}] * 3),
            scope,
            NOW,
            settings=IngestSettings(max_batch_items=2),
        )


def test_numbers_beyond_float_range_are_per_entry_errors(scope: ProjectScope) -> None:
    huge = "9" * 400  # orjson refuses the whole body; each entry is judged on its own
    raw = body(
        {"name": "a", "value": "@HUGE@"},
        {"name": "b", "value": "@-HUGE@"},
        {"name": "c", "value": "@1e400@"},
        {"name": "d", "value": 1, "timestamp": "@HUGE@"},
        {"name": "ok", "value": 2, "dimensions": {"region": "eu"}},
    )
    for token, text in (
        ("@HUGE@", huge),
        ("@-HUGE@", "-" + huge),
        ("@1e400@", "1e400"),
    ):
        raw = raw.replace(f'"{token}"'.encode(), text.encode())
    batch = decode_luminate(raw, scope, NOW)
    assert [(e.index, e.message) for e in batch.errors] == [
        (0, "value must be finite"),
        (1, "value must be finite"),
        (2, "value must be finite"),
        (3, "invalid timestamp: timestamp out of range"),
    ]
    samples = [dict(zip(SAMPLE_COLUMNS, r, strict=True)) for r in batch.samples]
    assert [(s["metric_name"], s["value"]) for s in samples] == [("ok", 2.0)]
    series = dict(zip(SERIES_COLUMNS, batch.series[0], strict=True))
    assert series["labels"] == {"region": "eu"}
    # Still a decode error: invalid JSON, or a body that is not an object.
    for bad in (b'{"metrics": [1e400', b"[1e400]"):
        with pytest.raises(PayloadDecodeError):
            decode_luminate(bad, scope, NOW)
