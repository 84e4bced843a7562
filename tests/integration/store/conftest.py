"""Fixtures for store tests on a real embedded chDB.

chDB opens one data path per process, so every store in these tests shares one temporary
directory (created for this package and released when its tests are done, so other test
packages may open their own path afterwards); isolation comes from a database per module,
and from distinct project ids per test inside a module.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from brokle_server.store import Store, schema
from brokle_server.store.config import StoreSettings
from brokle_server.store.migrate import up

RowFactory = Callable[..., tuple[Any, ...]]


@pytest.fixture(scope="package")
def chdb_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("chdb")
    return f"chdb://{path}"


def fresh_database(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def store(chdb_url: str) -> Iterator[Store]:
    """An open, migrated store on its own database, shared by one test module."""
    with Store(chdb_url, StoreSettings(database=fresh_database())) as opened:
        up(opened)
        yield opened


@pytest.fixture
def empty_store(chdb_url: str) -> Iterator[Store]:
    """An open store on a new, empty database (no migrations applied)."""
    with Store(chdb_url, StoreSettings(database=fresh_database("m"))) as opened:
        yield opened


@pytest.fixture
def project_id() -> str:
    return f"proj_{uuid.uuid4().hex[:10]}"


NOW_NS = time.time_ns()
NOW_MS = NOW_NS // 1_000_000

_DEFAULTS: dict[str, dict[str, object]] = {
    "spans": {
        "environment": "production",
        "retention_days": schema.DEFAULT_SPAN_RETENTION_DAYS,
        "trace_id": "0" * 32,
        "span_id": "0" * 16,
        "parent_span_id": "",
        "trace_state": "",
        "name": "chat gpt-4o-mini",
        "kind": "client",
        "service_name": "svc",
        "scope_name": "brokle",
        "scope_version": "0.4.0",
        "start_time": NOW_NS,
        "end_time": NOW_NS + 1_500_000,
        "duration_ns": 1_500_000,
        "status_code": "ok",
        "status_message": "",
        "span_type": "generation",
        "level": "DEFAULT",
        "attributes": {"gen_ai.system": "openai"},
        "resource_attributes": {"service.name": "svc"},
        "event_times": [NOW_NS + 10],
        "event_names": ["first_token"],
        "event_attributes": [{"k": "v"}],
        "link_trace_ids": [],
        "link_span_ids": [],
        "provider": "openai",
        "model": "gpt-4o-mini",
        "operation": "chat",
        "input_tokens": 10,
        "output_tokens": 5,
        "total_tokens": 15,
        "cached_tokens": 2,
        "cache_write_tokens": 0,
        "reasoning_tokens": 1,
        "cost_usd": 0.00001,
        "input_cost_usd": 0.000004,
        "output_cost_usd": 0.000006,
        "price_version": "genai-prices-0.2.3",
        "ttft_ms": 120.5,
        "input": '[{"role":"user","content":"hi"}]',
        "output": '{"role":"assistant","content":"hello"}',
        "user_id": "user-1",
        "session_id": "sess-1",
        "tags": ["a", "b"],
        "api_key_id": "key-1",
        "release": "1.0",
        "version": "v1",
        "ingested_at": NOW_MS,
    },
    "logs": {
        "environment": "production",
        "retention_days": schema.DEFAULT_LOG_RETENTION_DAYS,
        "timestamp": NOW_NS,
        "observed_timestamp": NOW_NS + 1,
        "trace_id": "",
        "span_id": "",
        "trace_flags": 1,
        "severity_text": "INFO",
        "severity_number": 9,
        "service_name": "svc",
        "scope_name": "app",
        "body": "user logged in from the mobile app",
        "attributes": {"http.method": "GET"},
        "resource_attributes": {"service.name": "svc"},
        "ingested_at": NOW_MS,
    },
    "series": {
        "environment": "production",
        "retention_days": schema.DEFAULT_METRIC_RETENTION_DAYS,
        "metric_name": "http_requests_total",
        "series_id": 0,
        "labels": {"method": "GET"},
        "metric_type": "counter",
        "unit": "1",
        "description": "requests",
        "first_seen": NOW_MS,
        "last_seen": NOW_MS,
    },
    "samples": {
        "environment": "production",
        "retention_days": schema.DEFAULT_METRIC_RETENTION_DAYS,
        "metric_name": "http_requests_total",
        "series_id": 0,
        "timestamp": NOW_MS,
        "value": 1.0,
    },
    "scores": {
        "environment": "production",
        "retention_days": schema.DEFAULT_SCORE_RETENTION_DAYS,
        "score_id": "score-1",
        "trace_id": "0" * 32,
        "span_id": "",
        "name": "accuracy",
        "value": 0.9,
        "string_value": "",
        "data_type": "NUMERIC",
        "source": "API",
        "comment": "",
        "timestamp": NOW_MS,
        "ingested_at": NOW_MS,
    },
    "events": {
        "environment": "production",
        "retention_days": schema.DEFAULT_EVENT_RETENTION_DAYS,
        "event_id": "evt-1",
        "timestamp": NOW_MS,
        "type": "audit",
        "name": "api_key.created",
        "source": "api",
        "trace_id": "",
        "span_id": "",
        "attributes": {"actor": "user-1"},
        "body": "{}",
        "ingested_at": NOW_MS,
    },
}


def make_row(table: str, project_id: str, **values: object) -> tuple[Any, ...]:
    """A row for ``table`` in contract order: defaults overridden by ``values``."""
    merged = {"project_id": project_id, **_DEFAULTS[table], **values}
    unknown = set(merged) - set(schema.COLUMNS_BY_TABLE[table])
    assert not unknown, f"not {table} columns: {unknown}"
    return tuple(merged[column] for column in schema.COLUMNS_BY_TABLE[table])


@pytest.fixture
def row() -> Callable[..., tuple[Any, ...]]:
    """``row(table, project_id, **columns)`` builds one contract-ordered row."""
    return make_row
