"""Tenant safety, as a property: random queries of every type (and random SDK filters and
discovery calls) made for project A over data from A and B never answer anything of B.

Every name in project B contains ``bravo`` and B's own trace ids start with ``b``; B also
reuses A's first trace id and A's metric names, so a missing tenant filter shows up.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brokle_server.query import fields

from .conftest import World, trace_id

pytestmark = pytest.mark.asyncio(loop_scope="package")

B_TRACE_IDS = [trace_id("b", 1), trace_id("b", 2)]
VALUES = st.sampled_from(
    [
        "bravo-svc", "bravo-model", "bravo-user", "bravo-sess", "bravo-tag", "/bravo",
        "bravo-host", "bravo-provider", "chatbot", "gpt-4o", "user-1", "sess-2", "/chat",
        "production", "staging", "error", "ok", "a", "eu", "", "x' OR 1=1 --",
        B_TRACE_IDS[0], trace_id("a", 0), "500", "0.5",
    ]
)  # fmt: skip
SCALARS = st.one_of(VALUES, st.integers(-5, 5000), st.floats(0, 10, allow_nan=False))
OPS = st.sampled_from(["eq", "neq", "in", "contains", "gt", "gte", "lt", "lte", "exists"])
RANGES = st.sampled_from(["15m", "1h", "2h", "24h", "7d"])
MAP_FIELDS = ["attributes.http.route", "attributes.gen_ai.request.model", "resource.service.name"]


@st.composite
def filters(draw: st.DrawFn, names: list[str]) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(0, 3))):
        op = draw(OPS)
        item: dict[str, Any] = {"field": draw(st.sampled_from(names)), "op": op}
        if op == "in":
            item["value"] = draw(st.lists(SCALARS, min_size=1, max_size=3))
        elif op == "exists":
            item["value"] = draw(st.sampled_from([True, False, None]))
        else:
            item["value"] = draw(SCALARS)
        out.append(item)
    return out


def _names(catalog: Any) -> list[str]:
    return sorted(catalog.fields) + MAP_FIELDS


@st.composite
def queries(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            [
                "aggregate",
                "range",
                "rate",
                "traces",
                "trace",
                "sessions",
                "users",
                "analytics",
                "logs",
            ]
        )
    )
    body: dict[str, Any] = {"queryType": kind, "timeRange": {"relative": draw(RANGES)}}
    if kind in ("aggregate", "range", "rate"):
        body["metricName"] = draw(st.sampled_from(["cpu", "http_requests_total", "c_metric"]))
        body["groupBy"] = draw(
            st.lists(st.sampled_from(["host", "region", "job", "code"]), unique=True, max_size=2)
        )
        body["filters"] = draw(filters(["host", "region", "job", "code"]))
        if kind != "aggregate":
            body["interval"] = draw(st.sampled_from(["1m", "10m", "1h"]))
    elif kind == "trace":
        body = {
            "queryType": "trace",
            "traceId": draw(st.sampled_from([trace_id("a", 0), trace_id("a", 5), *B_TRACE_IDS])),
        }
    elif kind in ("traces", "sessions", "users", "logs"):
        catalog = {
            "traces": fields.TRACES,
            "sessions": fields.SESSIONS,
            "users": fields.USERS,
            "logs": fields.LOGS,
        }[kind]
        body["filters"] = draw(filters(_names(catalog)))
        body["limit"] = draw(st.integers(1, 20))
        body["order"] = draw(st.sampled_from(["asc", "desc"]))
        if kind == "traces" and draw(st.booleans()):
            body["service"] = draw(st.sampled_from(["chatbot", "bravo-svc"]))
        if kind == "logs" and draw(st.booleans()):
            body["search"] = draw(st.sampled_from(["bravo", "secret", "ok", "timeout"]))
    else:
        body["filters"] = draw(filters(_names(fields.ANALYTICS)))
        body["groupBy"] = draw(
            st.lists(
                st.sampled_from(["model", "provider", "user", "service", "environment"]),
                unique=True,
                max_size=2,
            )
        )
        if draw(st.booleans()):
            body["interval"] = "1h"
    return body


def assert_no_bravo(payload: bytes) -> None:
    """Nothing of B in what was read (an error may echo the request, which is A's own)."""
    reply = orjson.loads(payload)
    text = orjson.dumps([reply.get("data"), reply.get("meta")]).decode()
    assert "bravo" not in text.lower(), text[:2000]
    for tid in B_TRACE_IDS:
        assert tid not in text


async def _pages(world: World, body: dict[str, Any]) -> None:
    """Follow cursors so the property covers every page, not only the first."""
    for _ in range(5):
        reply = await world.client.post("/api/v1/query", json=body, headers=world.h(world.key_a))
        assert reply.status_code in (200, 400, 404), reply.text
        assert_no_bravo(reply.content)
        if reply.status_code != 200:
            return
        cursor = orjson.loads(reply.content)["meta"]["cursor"]
        if not cursor:
            return
        body = {**body, "cursor": cursor}


PROPERTY = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY
@given(body=queries())
async def test_random_queries_never_see_project_b(world: World, body: dict[str, Any]) -> None:
    await _pages(world, body)


SDK_KEYS = st.sampled_from(
    ["service.name", "span.name", "gen_ai.request.model", "gen_ai.system", "user.id",
     "session.id", "http.route", "status", "duration", "trace_id", "tags"]
)  # fmt: skip


@st.composite
def sdk_filters(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        key = draw(SDK_KEYS)
        op = draw(st.sampled_from(["=", "!=", "~", ">", "EXISTS", "IN"]))
        value = draw(VALUES).replace('"', "")
        if op == "EXISTS":
            parts.append(f"{key} EXISTS")
        elif op == "IN":
            parts.append(f'{key} IN ("{value}", "chatbot")')
        else:
            parts.append(f'{key} {op} "{value}"')
    joiner = draw(st.sampled_from([" AND ", " OR "]))
    return joiner.join(parts)


@PROPERTY
@given(expression=sdk_filters(), offset=st.integers(0, 40))
async def test_random_sdk_filters_never_see_project_b(
    world: World, expression: str, offset: int
) -> None:
    reply = await world.client.post(
        "/v1/spans/query",
        json={"filter": expression, "limit": 50, "offset": offset},
        headers=world.h(world.key_a),
    )
    assert reply.status_code in (200, 400), reply.text
    assert_no_bravo(reply.content)


DISCOVERY = st.sampled_from(
    [
        "/api/v1/metrics",
        "/api/v1/metrics/cpu/dimensions",
        "/api/v1/metrics/cpu/dimensions/host/values",
        "/api/v1/metrics/http_requests_total/dimensions/job/values",
        "/api/v1/spans/attributes",
        "/api/v1/spans/attributes/http.route/values",
        "/api/v1/spans/attributes/gen_ai.request.model/values",
        "/api/v1/services",
        "/api/v1/models",
    ]
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=DISCOVERY, range_=RANGES, search=st.sampled_from([None, "bravo", "a", "o"]))
async def test_discovery_never_sees_project_b(
    world: World, path: str, range_: str, search: str | None
) -> None:
    params = {"range": range_} | ({"search": search} if search else {})
    reply = await world.client.get(path, params=params, headers=world.h(world.key_a))
    assert reply.status_code == 200, reply.text
    assert_no_bravo(reply.content)
