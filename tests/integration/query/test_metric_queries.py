"""Metric queries (aggregate, range, rate) and metric discovery over remote_write and
Luminate data, and the admin metric deletion."""

from __future__ import annotations

import pytest

from .conftest import World

pytestmark = pytest.mark.asyncio(loop_scope="package")


async def test_aggregate_luminate_shape(world: World) -> None:
    body = {
        "queryType": "aggregate",
        "metricName": "cpu",
        "timeRange": {"relative": "24h"},
        "aggregation": "avg",
        "groupBy": ["host"],
    }
    reply = await world.query(world.key_a, body)
    assert reply["success"] is True
    data = reply["data"]
    assert data["groups"] == [
        {"dimensions": {"host": "a"}, "value": 14.5, "samples": 10},
        {"dimensions": {"host": "b"}, "value": 24.5, "samples": 10},
    ]
    meta = reply["meta"]
    assert meta["queryType"] == "aggregate"
    assert set(meta["timeRange"]) == {"start", "end"}
    assert meta["cursor"] is None and meta["hasMore"] is False


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        ("sum", 145.0),
        ("min", 10.0),
        ("max", 19.0),
        ("count", 10.0),
        ("p50", 14.5),
        ("p99", 18.91),
    ],
)
async def test_aggregations_with_filters(world: World, aggregation: str, expected: float) -> None:
    body = {
        "queryType": "aggregate",
        "metricName": "cpu",
        "timeRange": {"relative": "2h"},
        "aggregation": aggregation,
        "filters": {"region": "eu"},
    }
    groups = (await world.query(world.key_a, body))["data"]["groups"]
    assert len(groups) == 1
    assert groups[0]["value"] == pytest.approx(expected, rel=0.01)


async def test_filter_operators_on_dimensions(world: World) -> None:
    async def hosts(filters: list[dict[str, object]]) -> list[str]:
        body = {
            "queryType": "aggregate",
            "metricName": "cpu",
            "timeRange": {"relative": "2h"},
            "groupBy": ["host"],
            "filters": filters,
        }
        groups = (await world.query(world.key_a, body))["data"]["groups"]
        return [g["dimensions"]["host"] for g in groups]

    assert await hosts([{"field": "host", "op": "neq", "value": "a"}]) == ["b"]
    assert await hosts([{"field": "region", "op": "in", "value": ["eu", "us"]}]) == ["a", "b"]
    assert await hosts([{"field": "region", "op": "contains", "value": "U"}]) == ["a", "b"]
    assert await hosts([{"field": "region", "op": "exists"}]) == ["a", "b"]
    assert await hosts([{"field": "missing", "op": "exists", "value": False}]) == ["a", "b"]
    assert await hosts([{"field": "missing", "op": "exists"}]) == []


async def test_range_series(world: World) -> None:
    body = {
        "queryType": "range",
        "metricName": "cpu",
        "timeRange": {"relative": "1h"},
        "aggregation": "max",
        "interval": "5m",
        "groupBy": ["host"],
    }
    data = (await world.query(world.key_a, body))["data"]
    assert data["interval"] == "300s"
    by_host = {s["dimensions"]["host"]: s["points"] for s in data["series"]}
    assert set(by_host) == {"a", "b"}
    values = [p["value"] for p in by_host["a"]]
    assert max(values) == 19.0 and min(values) >= 10.0
    times = [p["timestamp"] for p in by_host["a"]]
    assert times == sorted(times)


async def test_rate_handles_counter_reset(world: World) -> None:
    body = {
        "queryType": "rate",
        "metricName": "http_requests_total",
        "timeRange": {"relative": "1h"},
        "interval": "1h",
        "groupBy": ["code"],
    }
    data = (await world.query(world.key_a, body))["data"]
    total = {
        s["dimensions"]["code"]: sum(p["value"] for p in s["points"]) * 3600 for s in data["series"]
    }
    # 0, 10, 20, 30, 5 (reset), 15 -> 10 + 10 + 10 + 5 + 10 = 45 over the hour.
    assert total["200"] == pytest.approx(45.0)
    assert total["500"] == pytest.approx(5.0)


async def test_metric_discovery(world: World) -> None:
    h = world.h(world.key_a)
    names = (await world.client.get("/api/v1/metrics", headers=h)).json()
    by_name = {m["name"]: m for m in names["data"]}
    assert {"cpu", "http_requests_total"} <= set(by_name)
    assert by_name["cpu"]["series"] == 2
    assert names["meta"]["timeRange"]["start"] < names["meta"]["timeRange"]["end"]
    dims = (await world.client.get("/api/v1/metrics/cpu/dimensions", headers=h)).json()["data"]
    assert [d["key"] for d in dims] == ["host", "region"]
    values = await world.client.get("/api/v1/metrics/cpu/dimensions/host/values", headers=h)
    assert [v["value"] for v in values.json()["data"]] == ["a", "b"]
    searched = await world.client.get(
        "/api/v1/metrics", params={"search": "HTTP", "range": "2h"}, headers=h
    )
    assert [m["name"] for m in searched.json()["data"]] == ["http_requests_total"]


async def test_delete_metric_needs_admin_and_removes_it(world: World) -> None:
    path = "/api/v1/admin/metrics/doomed_metric"
    refused = await world.client.delete(path, headers=world.h(world.key_a))
    assert refused.status_code == 404  # a query key is not an admin of the project
    other = await world.client.delete(path, headers=world.h(world.key_b))
    assert other.status_code == 404
    done = await world.client.delete(path, headers=world.h(world.key_a_admin))
    assert done.status_code == 200, done.text
    assert done.json()["data"] == {
        "metricName": "doomed_metric",
        "deleted": {"series": 1, "samples": 3},
    }
    body = {
        "queryType": "aggregate",
        "metricName": "doomed_metric",
        "timeRange": {"relative": "2h"},
    }
    assert (await world.query(world.key_a, body))["data"]["groups"] == []
    again = await world.client.delete(path, headers=world.h(world.key_a_admin))
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "metric_not_found"
