"""Bad input answers 400 with a message naming the field; injection attempts never reach SQL
(names are refused, values are bound parameters and simply match nothing)."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import World

pytestmark = pytest.mark.asyncio(loop_scope="package")

INJECTION = "x' OR '1'='1'; DROP TABLE spans; --"
AGG = {"queryType": "aggregate", "metricName": "cpu", "timeRange": {"relative": "1h"}}
TRACES = {"queryType": "traces", "timeRange": {"relative": "1h"}}
LOGS = {"queryType": "logs", "timeRange": {"relative": "1h"}}


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"queryType": "nope"}, "queryType", "must be one of"),
        ({"timeRange": {"relative": "1h"}}, "queryType", "must be one of"),
        ({**AGG, "colour": "red"}, "colour", "unknown field"),
        ({**AGG, "timeRange": {"relative": "1h", "extra": 1}}, "timeRange.extra", "unknown"),
        ({**AGG, "timeRange": {"relative": "24x"}}, "timeRange.relative", "invalid duration"),
        ({**AGG, "timeRange": {"relative": "0h"}}, "timeRange.relative", "invalid duration"),
        ({**AGG, "timeRange": {}}, "timeRange", "give 'relative'"),
        (
            {**AGG, "timeRange": {"relative": "1h", "start": "2026-01-01T00:00:00Z"}},
            "timeRange",
            "not both",
        ),
        (
            {**AGG, "timeRange": {"start": "2026-11-02T00:00:00Z", "end": "2026-11-01T00:00:00Z"}},
            "timeRange",
            "after",
        ),
        ({**AGG, "timeRange": {"start": "yesterday"}}, "timeRange.start", "datetime"),
        ({**TRACES, "timeRange": {"relative": "32d"}}, "timeRange", "too large"),
        ({**AGG, "timeRange": {"relative": "100d"}}, "timeRange", "too large"),
        ({**AGG, "aggregation": "median"}, "aggregation", "sum"),
        ({**AGG, "queryType": "range", "interval": "1ms"}, "interval", "at least 1s"),
        ({**AGG, "queryType": "range", "interval": "1s"}, "interval", "points"),
        ({**AGG, "queryType": "range", "interval": "soon"}, "interval", "pattern"),
        (
            {**TRACES, "filters": [{"field": "password", "value": "x"}]},
            "filters[0].field",
            "unknown field 'password'",
        ),
        (
            {**LOGS, "filters": [{"field": "model", "value": "x"}]},
            "filters[0].field",
            "unknown field 'model'",
        ),
        (
            {**TRACES, "filters": [{"field": "model", "op": "like", "value": "x"}]},
            "filters[0].op",
            "eq",
        ),
        (
            {**TRACES, "filters": [{"field": "model", "op": "in", "value": "x"}]},
            "filters[0]",
            "list",
        ),
        ({**TRACES, "filters": [{"field": "model"}]}, "filters[0]", "one value"),
        (
            {**TRACES, "filters": [{"field": "duration", "op": "gt", "value": "slow"}]},
            "filters[0].value",
            "not a number",
        ),
        (
            {**TRACES, "filters": [{"field": "cost", "op": "contains", "value": "1"}]},
            "filters[0].op",
            "text field",
        ),
        (
            {**TRACES, "filters": [{"field": "tags", "op": "gt", "value": "a"}]},
            "filters[0].op",
            "list field",
        ),
        ({**TRACES, "sort": "name"}, "sort", "startTime"),
        ({**TRACES, "limit": 0}, "limit", "greater than"),
        ({**TRACES, "cursor": "bm9wZQ"}, "cursor", "not a cursor"),
        ({"queryType": "trace", "traceId": "xyz"}, "traceId", "pattern"),
        ({**LOGS, "severity": "LOUD"}, "severity", "TRACE"),
        ({**AGG, "projectId": "not-a-uuid"}, "projectId", "UUID"),
        ({**AGG, "groupBy": ["host", "host"]}, "groupBy", "twice"),
        (
            {"queryType": "analytics", "timeRange": {"relative": "1h"}, "groupBy": ["cost"]},
            "groupBy[0]",
            "model",
        ),
    ],
)
async def test_invalid_requests_name_the_field(
    world: World, body: dict[str, Any], field: str, words: str
) -> None:
    reply = await world.query(world.key_a, body, 400)
    error = reply["error"]
    assert error["code"] == "validation_error"
    assert error["details"][0]["field"] == field, error
    assert words in error["message"], error
    assert error["message"].startswith(f"Invalid field '{field}'")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**AGG, "metricName": INJECTION}, "metricName"),
        ({**AGG, "groupBy": [INJECTION]}, "groupBy[0]"),
        ({**AGG, "filters": [{"field": INJECTION, "value": "a"}]}, "filters[0].field"),
        ({**AGG, "filters": {INJECTION: "a"}}, "filters"),
        ({**AGG, "aggregation": INJECTION}, "aggregation"),
        ({**AGG, "timeRange": {"relative": INJECTION}}, "timeRange.relative"),
        ({**AGG, "timeRange": {"start": INJECTION}}, "timeRange.start"),
        ({**TRACES, "service": INJECTION}, "service"),
        ({**TRACES, "model": ["gpt-4o", INJECTION]}, "model"),
        ({**TRACES, "environment": INJECTION}, "environment"),
        ({**TRACES, "name": INJECTION}, "name"),
        ({**TRACES, "userId": INJECTION}, "userId"),
        ({**TRACES, "sessionId": INJECTION}, "sessionId"),
        ({**TRACES, "tags": [INJECTION]}, "tags[0]"),
        ({**TRACES, "attributes": {INJECTION: "x"}}, "attributes"),
        ({**TRACES, "attributes": {"k": INJECTION}}, "attributes.k"),
        ({**TRACES, "sort": INJECTION}, "sort"),
        ({**TRACES, "order": INJECTION}, "order"),
        ({**TRACES, "cursor": INJECTION}, "cursor"),
        ({**TRACES, "status": INJECTION}, "status"),
        ({"queryType": "trace", "traceId": INJECTION}, "traceId"),
        ({**LOGS, "traceId": INJECTION}, "traceId"),
        ({**LOGS, "spanId": INJECTION}, "spanId"),
        ({**LOGS, "minSeverity": INJECTION}, "minSeverity"),
        (
            {"queryType": "analytics", "timeRange": {"relative": "1h"}, "interval": INJECTION},
            "interval",
        ),
        ({"queryType": INJECTION}, "queryType"),
        ({**AGG, "projectId": INJECTION}, "projectId"),
    ],
)
async def test_injection_in_names_is_refused(
    world: World, body: dict[str, Any], field: str
) -> None:
    reply = await world.query(world.key_a, body, 400)
    assert reply["error"]["details"][0]["field"].startswith(field), reply["error"]


@pytest.mark.parametrize(
    "body",
    [
        {**TRACES, "filters": [{"field": "model", "value": INJECTION}]},
        {
            **TRACES,
            "filters": [{"field": "attributes.http.route", "op": "in", "value": [INJECTION]}],
        },
        {**TRACES, "filters": [{"field": "input", "op": "contains", "value": INJECTION}]},
        {**LOGS, "search": INJECTION},
        {**LOGS, "filters": [{"field": "body", "op": "gt", "value": INJECTION}]},
        {**AGG, "filters": [{"field": "host", "value": INJECTION}]},
    ],
)
async def test_injection_in_values_is_just_data(world: World, body: dict[str, Any]) -> None:
    data = (await world.query(world.key_a, body))["data"]
    assert data == [] if isinstance(data, list) else data["groups"] == []


async def test_tables_survive_and_other_endpoints_refuse_names(world: World) -> None:
    h = world.h(world.key_a)
    bad_paths = [
        "/api/v1/metrics/cpu'%20OR%201=1/dimensions",
        "/api/v1/metrics/cpu/dimensions/host'--/values",
        "/api/v1/spans/attributes/a%3Bdrop/values",
        "/api/v1/services?range=1h;drop",
        "/api/v1/models?start=2026-11-01T00:00:00Z&range=1h",
        "/api/v1/services?range=40d",
        "/api/v1/spans/attributes?source=everything",
    ]
    for path in bad_paths:
        reply = await world.client.get(path, headers=h)
        assert reply.status_code == 400, (path, reply.text)
        assert reply.json()["error"]["details"][0]["field"], path
    sdk = await world.client.post(
        "/v1/spans/query", json={"filter": "service.name='x' OR 1=1 --"}, headers=h
    )
    assert sdk.status_code == 400 and sdk.json()["error"]["code"] == "invalid_filter"
    reply = await world.query(world.key_a, {**TRACES, "timeRange": {"relative": "2h"}})
    assert len(reply["data"]) == 12


async def test_malformed_bodies(world: World) -> None:
    h = {**world.h(world.key_a), "Content-Type": "application/json"}
    broken = await world.client.post("/api/v1/query", content=b"{not json", headers=h)
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "invalid_json"
    listed = await world.client.post("/api/v1/query", json=[AGG], headers=h)
    assert listed.status_code == 400
    text = await world.client.post(
        "/api/v1/query", content=b"a=b", headers={**h, "Content-Type": "text/plain"}
    )
    assert text.status_code == 415
