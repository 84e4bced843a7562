"""Retention settings per project (``GET|PUT /api/v1/projects/{id}/retention``), applied to
the store: rows older than the new limit go at once, and new rows carry the new setting."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from .conftest import MIN_NS, MS, PROTOBUF, World, metrics_json, span_id, trace_id
from .payloads import SpanSpec, traces_body

pytestmark = pytest.mark.asyncio(loop_scope="package")
DAY_NS = 24 * 60 * MIN_NS


async def _count(world: World, table: str) -> int:
    rows = await world.store.aquery(
        f"SELECT count() FROM {table} WHERE project_id = {{p:String}}",
        {"p": world.project_c},
    )
    return int(rows[0][0])


async def _wait(world: World, table: str, expected: int) -> None:
    deadline = time.monotonic() + 20
    while await _count(world, table) < expected:
        assert time.monotonic() < deadline, f"{table} never reached {expected} rows"
        await asyncio.sleep(0.1)


async def test_retention_read_set_and_applied(world: World) -> None:
    key, path = world.key_c_admin, f"/api/v1/projects/{world.project_c}/retention"
    now = time.time_ns()
    spans = [
        SpanSpec(trace_id("c", 1), span_id("c", 1, 1), "fresh", now - 10 * MIN_NS, 5.0),
        SpanSpec(trace_id("c", 2), span_id("c", 2, 1), "old", now - 3 * DAY_NS, 5.0),
    ]
    body = traces_body("svc-c", "production", spans)
    reply = await world.client.post(
        "/v1/traces", content=body, headers={**world.h(key), **PROTOBUF}
    )
    assert reply.status_code == 200
    old_ms = (now - 3 * DAY_NS) // MS
    points = [({"host": "c"}, 1.0, old_ms), ({"host": "c"}, 2.0, now // MS - 60_000)]
    reply = await world.client.post(
        "/api/v1/write",
        content=metrics_json("c_metric", points),
        headers={**world.h(key), "Content-Type": "application/json"},
    )
    assert reply.status_code == 200
    await _wait(world, "spans", 2)
    await _wait(world, "samples", 2)

    current = await world.client.get(path, headers=world.h(key))
    assert current.status_code == 200
    assert current.json()["data"]["retentionDays"] == 30
    assert "spans" in current.json()["data"]["tables"]

    changed = await world.client.put(path, json={"retentionDays": 2}, headers=world.h(key))
    assert changed.status_code == 200, changed.text
    data = changed.json()["data"]
    assert (data["retentionDays"], data["previousDays"]) == (2, 30)
    purged = datetime.fromisoformat(data["purgedBefore"]).timestamp()
    assert abs(purged - (now - 2 * DAY_NS) / 1e9) < 60

    assert await _count(world, "spans") == 1
    assert await _count(world, "samples") == 1
    listed = await world.query(key, {"queryType": "traces", "timeRange": {"relative": "7d"}})
    assert [t["name"] for t in listed["data"]] == ["fresh"]
    project = await world.client.get(f"/api/v1/projects/{world.project_c}", headers=world.owner)
    assert project.json()["data"]["retention_days"] == 2
    assert (await world.client.get(path, headers=world.owner)).json()["data"]["retentionDays"] == 2

    # New telemetry is checked against the new setting at once: a 3-day-old span is refused.
    again = traces_body("svc-c", "production", [spans[1]])
    reply = await world.client.post(
        "/v1/traces", content=again, headers={**world.h(key), **PROTOBUF}
    )
    assert reply.status_code == 200
    partial = ExportTraceServiceResponse.FromString(reply.content).partial_success
    assert partial.rejected_spans == 1


async def test_retention_permissions_and_validation(world: World) -> None:
    path_a = f"/api/v1/projects/{world.project_a}/retention"
    assert (await world.client.get(path_a, headers=world.h(world.key_a))).status_code == 404
    assert (await world.client.get(path_a, headers=world.h(world.key_c_admin))).status_code == 404
    assert (await world.client.get(path_a, headers=world.outsider)).status_code == 404
    owner = await world.client.get(path_a, headers=world.owner)
    assert owner.json()["data"]["retentionDays"] == 30
    for bad in ({"retentionDays": 0}, {"retentionDays": 4000}, {"days": 3}, {}):
        reply = await world.client.put(path_a, json=bad, headers=world.owner)
        assert reply.status_code == 400, bad
        assert reply.json()["error"]["details"][0]["field"] in ("retentionDays", "days")
    assert (await world.client.get(path_a, headers=world.owner)).json()["data"][
        "retentionDays"
    ] == 30


async def test_delete_metric_as_user(world: World) -> None:
    path = "/api/v1/admin/metrics/never_sent"
    missing = await world.client.delete(path, headers=world.owner)
    assert missing.status_code == 400
    assert missing.json()["error"]["details"][0]["field"] == "project_id"
    reply = await world.client.delete(
        path, params={"project_id": world.project_a}, headers=world.owner
    )
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "metric_not_found"
    stranger = await world.client.delete(
        path, params={"project_id": world.project_a}, headers=world.outsider
    )
    assert stranger.status_code == 404
    assert orjson.loads(stranger.content)["error"]["code"] == "project_not_found"
