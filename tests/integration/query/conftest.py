"""One in-process app for the query tests, with telemetry for two projects ingested through
the real HTTP ingest endpoints (OTLP protobuf traces and logs, Prometheus remote_write,
Luminate JSON, brokle scores), waited for until the writers have flushed it to the store.

Project A ("alpha") holds 12 chatbot traces (root + LLM call, + a tool span on even ones;
trace 11 in ``staging``), 6 logs, ``cpu`` gauges, an ``http_requests_total`` counter with a
reset and two scores. Project B ("bravo") holds look-alike data whose every name contains
``bravo``, including a trace that reuses A's first trace id and a ``cpu`` metric: a reply to
A that contains ``bravo`` is a tenant leak.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio

from tests.conftest import make_settings, running_app
from tests.integration.api.helpers import create_key, create_org, create_project, data, login

from .payloads import (
    REMOTE_WRITE_HEADERS,
    LogSpec,
    SpanSpec,
    logs_body,
    remote_write_body,
    traces_body,
)

MS = 1_000_000
MIN_NS = 60_000 * MS
PROTOBUF = {"Content-Type": "application/x-protobuf"}


def trace_id(project: str, i: int) -> str:
    return f"{project}{i:031x}"


def span_id(project: str, i: int, j: int) -> str:
    return f"{project}{i:07x}{j:08x}"


MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-3-5-sonnet")]


@dataclass
class World:
    client: httpx.AsyncClient
    app: Any
    owner: dict[str, str]
    outsider: dict[str, str]
    project_a: str
    project_b: str
    project_c: str
    key_a: str
    key_b: str
    key_a_staging: str
    key_a_ingest_only: str
    key_a_admin: str
    key_c_admin: str
    base_ns: int
    now_ns: int
    shared_trace: str
    extra: dict[str, Any] = field(default_factory=dict)

    def h(self, key: str) -> dict[str, str]:
        return {"X-API-Key": key}

    async def query(self, key: str, body: dict[str, Any], status: int = 200) -> Any:
        reply = await self.client.post("/api/v1/query", json=body, headers=self.h(key))
        assert reply.status_code == status, reply.text
        return reply.json()

    @property
    def store(self) -> Any:
        return self.app.state.services.telemetry.store


def alpha_traces(base_ns: int) -> tuple[list[SpanSpec], list[SpanSpec]]:
    """(production spans, staging spans) of project A."""
    production, staging = [], []
    for i in range(12):
        tid = trace_id("a", i)
        start = base_ns + i * MIN_NS
        provider, model = MODELS[i % 3]
        root = SpanSpec(
            tid,
            span_id("a", i, 1),
            "chat-request" if i % 2 == 0 else "search-request",
            start,
            100.0 * (i + 1),
            attributes={
                "user.id": f"user-{i % 3}",
                "session.id": f"sess-{i % 4}",
                "tags": ["prod", "vip"] if i % 2 == 0 else ["prod"],
                "http.route": "/chat",
                "http.status_code": 500 if i == 5 else 200,
            },
        )
        llm = SpanSpec(
            tid,
            span_id("a", i, 2),
            "llm.call",
            start + 5 * MS,
            80.0 * (i + 1),
            parent_id=root.span_id,
            error=i == 5,
            attributes={
                "gen_ai.system": provider,
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": model,
                "gen_ai.response.model": model,
                "gen_ai.usage.input_tokens": 100 * (i + 1),
                "gen_ai.usage.output_tokens": 10 * (i + 1),
                "gen_ai.usage.cache_read.input_tokens": 50 if i % 2 == 0 else 0,
                "brokle.cost.total": round(0.001 * (i + 1), 6),
                "gen_ai.response.time_to_first_token": 100.0 + 10 * i,
                "gen_ai.input.messages": f'[{{"role":"user","content":"question {i}"}}]',
                "user.id": f"user-{i % 3}",
                "session.id": f"sess-{i % 4}",
            },
        )
        spans = [root, llm]
        if i % 2 == 0:
            spans.append(
                SpanSpec(
                    tid,
                    span_id("a", i, 3),
                    "tool.search",
                    start + 2 * MS,
                    3.0,
                    parent_id=root.span_id,
                    attributes={"tool.name": "web"},
                )
            )
        (staging if i == 11 else production).extend(spans)
    return production, staging


def bravo_traces(base_ns: int, shared: str) -> list[SpanSpec]:
    spans = []
    for i, tid in enumerate([shared, trace_id("b", 1), trace_id("b", 2)]):
        start = base_ns + (i * 3 + 1) * MIN_NS
        root = SpanSpec(
            tid,
            span_id("b", i, 1),
            "bravo-request",
            start,
            700.0,
            attributes={
                "user.id": "bravo-user",
                "session.id": "bravo-sess",
                "tags": ["bravo-tag"],
                "http.route": "/bravo",
            },
        )
        llm = SpanSpec(
            tid,
            span_id("b", i, 2),
            "bravo-llm",
            start + MS,
            500.0,
            parent_id=root.span_id,
            error=i == 1,
            attributes={
                "gen_ai.system": "bravo-provider",
                "gen_ai.request.model": "bravo-model",
                "gen_ai.usage.input_tokens": 7000,
                "gen_ai.usage.output_tokens": 700,
                "brokle.cost.total": 7.0,
                "user.id": "bravo-user",
                "session.id": "bravo-sess",
            },
        )
        spans += [root, llm]
    return spans


def metrics_json(name: str, points: list[tuple[dict[str, str], float, int]]) -> bytes:
    return orjson.dumps(
        {
            "metrics": [
                {"name": name, "value": value, "timestamp": ts_ms, "dimensions": dims}
                for dims, value, ts_ms in points
            ]
        }
    )


async def _post(
    client: httpx.AsyncClient, path: str, key: str, body: bytes, **headers: str
) -> None:
    reply = await client.post(path, content=body, headers={"X-API-Key": key, **headers})
    assert reply.status_code in (200, 201, 204), (path, reply.status_code, reply.text)


async def ingest_alpha(w: World) -> None:
    production, staging = alpha_traces(w.base_ns)
    c, key = w.client, w.key_a
    await _post(c, "/v1/traces", key, traces_body("chatbot", "production", production), **PROTOBUF)
    await _post(c, "/v1/traces", key, traces_body("chatbot", "staging", staging), **PROTOBUF)
    b = w.base_ns
    logs = [
        LogSpec(b + 1 * MS, 9, "INFO", "request ok", trace_id("a", 0)),
        LogSpec(b + 2 * MS, 9, "INFO", "request ok", trace_id("a", 1)),
        LogSpec(b + 3 * MS, 9, "INFO", "request ok", trace_id("a", 2)),
        LogSpec(b + 4 * MS, 13, "WARN", "slow response from upstream"),
        LogSpec(
            b + 5 * MS, 17, "ERROR", "payment failed: Timeout", trace_id("a", 5), {"order.id": 17}
        ),
        LogSpec(b + 6 * MS, 21, "FATAL", "db down"),
    ]
    await _post(c, "/v1/logs", key, logs_body("chatbot", "production", logs), **PROTOBUF)
    base_ms = b // MS
    cpu = [({"host": "a", "region": "eu"}, 10.0 + k, base_ms + k * 60_000) for k in range(10)]
    cpu += [({"host": "b", "region": "us"}, 20.0 + k, base_ms + k * 60_000) for k in range(10)]
    json_headers = {"Content-Type": "application/json"}
    await _post(c, "/api/v1/write", key, metrics_json("cpu", cpu), **json_headers)
    doomed = [({"host": "a"}, 1.0, base_ms + k * 60_000) for k in range(3)]
    await _post(c, "/api/v1/write", key, metrics_json("doomed_metric", doomed), **json_headers)
    ok_points = [(v, base_ms + k * 60_000) for k, v in enumerate([0, 10, 20, 30, 5, 15])]
    err_points = [(float(k), base_ms + k * 60_000) for k in range(6)]
    body = remote_write_body(
        [
            ({"__name__": "http_requests_total", "job": "api", "code": "200"}, ok_points),
            ({"__name__": "http_requests_total", "job": "api", "code": "500"}, err_points),
        ]
    )
    await _post(c, "/api/v1/write", key, body, **REMOTE_WRITE_HEADERS)
    tid = trace_id("a", 0)
    for score in (
        {"trace_id": tid, "name": "accuracy", "value": 0.9, "type": "NUMERIC", "source": "code"},
        {
            "trace_id": tid,
            "span_id": span_id("a", 0, 2),
            "name": "helpfulness",
            "value": 0.7,
            "type": "NUMERIC",
            "source": "llm",
            "reason": "clear answer",
        },
    ):
        await _post(c, "/v1/scores", key, orjson.dumps(score), **json_headers)


async def ingest_bravo(w: World) -> None:
    c, key = w.client, w.key_b
    spans = bravo_traces(w.base_ns, w.shared_trace)
    await _post(c, "/v1/traces", key, traces_body("bravo-svc", "production", spans), **PROTOBUF)
    logs = [LogSpec(w.base_ns + 7 * MS, 17, "ERROR", "bravo secret log", w.shared_trace)]
    await _post(c, "/v1/logs", key, logs_body("bravo-svc", "production", logs), **PROTOBUF)
    base_ms = w.base_ns // MS
    cpu = [({"host": "bravo-host", "region": "eu"}, 99.0, base_ms + k * 60_000) for k in range(5)]
    await _post(
        c, "/api/v1/write", key, metrics_json("cpu", cpu), **{"Content-Type": "application/json"}
    )
    body = remote_write_body(
        [({"__name__": "http_requests_total", "job": "bravo", "code": "200"}, [(1.0, base_ms)])]
    )
    await _post(c, "/api/v1/write", key, body, **REMOTE_WRITE_HEADERS)
    score = {"trace_id": w.shared_trace, "name": "bravo-score", "value": 0.1, "type": "NUMERIC"}
    await _post(c, "/v1/scores", key, orjson.dumps(score), **{"Content-Type": "application/json"})


EXPECTED = {
    "a": {"spans": 30, "logs": 6, "samples": 35, "scores": 2},
    "b": {"spans": 6, "logs": 1, "samples": 6, "scores": 1},
}


async def wait_flushed(w: World, timeout: float = 30.0) -> None:
    """Poll the store until every row ingested above is readable."""
    deadline = time.monotonic() + timeout
    projects = {"a": w.project_a, "b": w.project_b}
    while True:
        missing = []
        for name, tables in EXPECTED.items():
            for table, expected in tables.items():
                rows = await w.store.aquery(
                    f"SELECT count() FROM {table} WHERE project_id = {{p:String}}",
                    {"p": projects[name]},
                )
                if rows[0][0] < expected:
                    missing.append(f"{name}.{table}={rows[0][0]}/{expected}")
        if not missing:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"ingested rows did not reach the store: {missing}")
        await asyncio.sleep(0.1)


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    tmp: Path = tmp_path_factory.mktemp("query")
    settings = make_settings(
        tmp,
        database_url=f"sqlite+aiosqlite:///{tmp / 'catalog.db'}",
        rate_limit={"enabled": False},
    )
    async with running_app(settings) as client:
        owner = await login(client, "owner@example.com")
        outsider = await login(client, "outsider@example.com")
        org = await create_org(client, owner, "Query Org")
        projects = [
            await create_project(client, owner, org["id"], name)
            for name in ("Alpha", "Bravo", "Charlie")
        ]
        a, b, c = (p["id"] for p in projects)
        data(
            await client.post(
                f"/api/v1/projects/{a}/environments", json={"name": "staging"}, headers=owner
            ),
            201,
        )
        keys = {
            "a": await create_key(client, owner, a),
            "b": await create_key(client, owner, b),
            "a_staging": await create_key(client, owner, a, environment="staging"),
            "a_ingest": await create_key(client, owner, a, scopes=["ingest"]),
            "a_admin": await create_key(client, owner, a, scopes=["admin", "query", "ingest"]),
            "c_admin": await create_key(client, owner, c, scopes=["admin", "query", "ingest"]),
        }
        now_ns = time.time_ns()
        w = World(
            client=client,
            app=client.app,  # type: ignore[attr-defined]
            owner=owner,
            outsider=outsider,
            project_a=a,
            project_b=b,
            project_c=c,
            key_a=keys["a"]["key"],
            key_b=keys["b"]["key"],
            key_a_staging=keys["a_staging"]["key"],
            key_a_ingest_only=keys["a_ingest"]["key"],
            key_a_admin=keys["a_admin"]["key"],
            key_c_admin=keys["c_admin"]["key"],
            base_ns=now_ns - 30 * MIN_NS,
            now_ns=now_ns,
            shared_trace=trace_id("a", 0),
        )
        await ingest_alpha(w)
        await ingest_bravo(w)
        await wait_flushed(w)
        yield w
