"""Read-time folding of span copies (an exporter retry that reached the store twice, before a
merge folded it): listings, the trace view and the SDK query show each span once."""

from __future__ import annotations

import time

import pytest

from brokle_server.store.schema import SPAN_COLUMNS
from tests.integration.api.helpers import create_key, create_project

from .conftest import MS, World, span_id, trace_id

pytestmark = pytest.mark.asyncio(loop_scope="package")


def _span(project: str, j: int, start_ns: int, ingested_ms: int, name: str) -> tuple[object, ...]:
    row: dict[str, object] = dict.fromkeys(SPAN_COLUMNS, "")
    row.update(
        project_id=project, environment="default", retention_days=30,
        trace_id=trace_id("d", 1), span_id=span_id("d", 1, j),
        parent_span_id="" if j == 1 else span_id("d", 1, 1), kind="internal",
        start_time=start_ns, end_time=start_ns + 5 * MS, duration_ns=5 * MS,
        status_code="ok", span_type="generation" if j == 2 else "span", level="DEFAULT",
        name=name, attributes={}, resource_attributes={}, event_times=[], event_names=[],
        event_attributes=[], link_trace_ids=[], link_span_ids=[], model="m" if j == 2 else "",
        input_tokens=0, output_tokens=0, total_tokens=10, cached_tokens=0,
        cache_write_tokens=0, reasoning_tokens=0, cost_usd=1.0, input_cost_usd=0.0,
        output_cost_usd=0.0, ttft_ms=None, tags=[], ingested_at=ingested_ms,
    )  # fmt: skip
    return tuple(row[c] for c in SPAN_COLUMNS)


async def test_span_copies_are_shown_once(world: World) -> None:
    project = await create_project(world.client, world.owner, await _org(world), "Delta")
    key = (await create_key(world.client, world.owner, project["id"]))["key"]
    now = time.time_ns()
    first = [_span(project["id"], j, now - 60_000 * MS, now // MS - 1000, "v1") for j in (1, 2)]
    second = [_span(project["id"], j, now - 60_000 * MS, now // MS, "v2") for j in (1, 2)]
    await world.store.ainsert("spans", SPAN_COLUMNS, first, dedup_token="copy-1")
    await world.store.ainsert("spans", SPAN_COLUMNS, second, dedup_token="copy-2")

    listed = await world.query(key, {"queryType": "traces", "timeRange": {"relative": "1h"}})
    (row,) = listed["data"]
    assert (row["spanCount"], row["cost"], row["totalTokens"]) == (2, 2.0, 20)
    detail = await world.query(key, {"queryType": "trace", "traceId": trace_id("d", 1)})
    (root,) = detail["data"]["spans"]
    assert root["name"] == "v2"  # the latest copy wins, as a merge would decide
    assert [c["name"] for c in root["children"]] == ["v2"]
    sdk = await world.client.post("/v1/spans/query", json={"filter": ""}, headers=world.h(key))
    body = sdk.json()["data"]
    assert body["total_count"] == 2 and len(body["spans"]) == 2


async def _org(world: World) -> str:
    reply = await world.client.get("/api/v1/organizations", headers=world.owner)
    return str(next(o["id"] for o in reply.json()["data"] if o["name"] == "Query Org"))
