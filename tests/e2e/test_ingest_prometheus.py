"""A real Prometheus (Debian's package) remote-writing to a real ``brokle serve``, plus the
Luminate JSON batch on the same ``/api/v1/write`` endpoint.

Prometheus scrapes Brokle's own ``/metrics`` every second (so the data is real and changes)
and remote-writes it back with the project's key. The module's fixture waits until Brokle
reports accepted samples, stops Prometheus (flushing its queue) and then Brokle, and reads the
tables once; the tests check series and samples rows, the tenant and the label sets.
"""

from __future__ import annotations

import itertools
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, dump_store, start_server
from tests.e2e.prometheus import prometheus_binary, start_prometheus

pytestmark = pytest.mark.e2e

RUN = uuid.uuid4().hex[:8]
PROJECT_RETENTION_DAYS = 30  # a project's default retention
WAIT_SECONDS = 40
MIN_SAMPLES = 300  # a few scrapes of Brokle's /metrics
_ACCEPTED = re.compile(r'^brokle_ingest_accepted_rows\{table="samples"\} (\S+)$', re.M)


QUERIES = {
    "series": """
        SELECT project_id, environment, retention_days, metric_name, series_id,
               argMax(labels, last_seen) AS labels, argMax(metric_type, last_seen) AS metric_type,
               argMax(unit, last_seen) AS unit, argMax(description, last_seen) AS description
        FROM series
        GROUP BY project_id, environment, retention_days, metric_name, series_id""",
    "samples": """
        SELECT project_id, environment, retention_days, metric_name, series_id,
               toUnixTimestamp64Milli(timestamp) AS timestamp, value
        FROM samples ORDER BY project_id, metric_name, series_id, timestamp""",
}


def accepted_samples(base_url: str) -> float:
    """``brokle_ingest_accepted_rows{table="samples"}`` from Brokle's own /metrics."""
    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    match = _ACCEPTED.search(text)
    return float(match.group(1)) if match else 0.0


@dataclass
class Run:
    server: Server
    project_a: str
    project_b: str
    target: str
    prometheus_started_ms: int = 0
    stopped_ms: int = 0
    accepted_at_stop: float = 0.0
    prometheus_counters: dict[str, float] = field(default_factory=dict)
    prometheus_log: str = ""
    luminate_sent: list[dict[str, Any]] = field(default_factory=list)
    luminate_ms: list[int] = field(default_factory=list)
    luminate_replies: dict[str, httpx.Response] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def series(self, project_id: str, metric_name: str) -> list[dict[str, Any]]:
        return [
            s
            for s in self.tables["series"]
            if s["project_id"] == project_id and s["metric_name"] == metric_name
        ]

    def samples_of(self, row: dict[str, Any]) -> list[tuple[int, float]]:
        return [
            (s["timestamp"], s["value"])
            for s in self.tables["samples"]
            if s["project_id"] == row["project_id"]
            and s["metric_name"] == row["metric_name"]
            and s["series_id"] == row["series_id"]
        ]


def _second_project_key(server: Server) -> tuple[str, str]:
    with httpx.Client(base_url=server.base_url, timeout=15) as http:
        login = http.post(
            "/api/v1/auth/login",
            json={"email": "admin@example.com", "password": server.first_run["admin_password"]},
        )
        assert login.status_code == 200, login.text
        http.cookies.clear()
        auth = {"Authorization": f"Bearer {login.json()['data']['token']}"}
        org_id = http.get("/api/v1/organizations", headers=auth).json()["data"][0]["id"]
        project = http.post(
            f"/api/v1/organizations/{org_id}/projects",
            json={"name": f"Metrics other {RUN}"},
            headers=auth,
        ).json()["data"]
        key = http.post(
            f"/api/v1/projects/{project['id']}/api-keys", json={"name": "metrics"}, headers=auth
        ).json()["data"]
        return project["id"], key["key"]


def _epoch_ms(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _rfc3339_ms(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _send_luminate(run: Run, key_a: str, key_b: str) -> None:
    moment = datetime.now(UTC)
    now = moment.replace(microsecond=moment.microsecond // 1000 * 1000)  # whole milliseconds
    earlier = now - timedelta(seconds=5)
    run.luminate_ms = [_epoch_ms(earlier), _epoch_ms(now)]
    dims = {"region": "eu", "endpoint": "/chat", "canary": True, "shard": 3}
    run.luminate_sent = [
        {
            "name": "api_latency_ms",
            "timestamp": _rfc3339_ms(earlier),  # RFC 3339 text
            "value": 12.5,
            "dimensions": dims,
        },
        {
            "name": "api_latency_ms",
            "timestamp": run.luminate_ms[1],  # epoch milliseconds
            "value": 30,
            "dimensions": {"region": "us"},
        },
        {"name": "queue_size", "value": 7, "dimensions": {f"d{i}": "x" for i in range(21)}},
    ]
    url = f"{run.server.base_url}/api/v1/write"
    run.luminate_replies["mixed"] = httpx.post(
        url, json={"metrics": run.luminate_sent}, headers={"X-API-Key": key_a}, timeout=15
    )
    run.luminate_replies["all_invalid"] = httpx.post(
        url, json={"metrics": run.luminate_sent[2:]}, headers={"X-API-Key": key_a}, timeout=15
    )
    run.luminate_replies["other_project"] = httpx.post(
        url,
        json={"metrics": [{"name": "api_latency_ms", "value": 99, "dimensions": dims}]},
        headers={"X-API-Key": key_b},
        timeout=15,
    )


def _prometheus_counters(url: str) -> dict[str, float]:
    """Prometheus' own remote-storage counters, summed over shards, from its /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    out: dict[str, float] = {}
    for name in (
        "prometheus_remote_storage_samples_total",
        "prometheus_remote_storage_samples_failed_total",
        "prometheus_remote_storage_samples_retried_total",
        "prometheus_remote_storage_samples_dropped_total",
    ):
        values = re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
        out[name] = sum(float(v) for v in values)
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    prometheus_binary()  # skips (or fails under CI=true) when Prometheus is not installed
    tmp = tmp_path_factory.mktemp("prometheus")
    server = start_server(tmp / "data", tmp / "server.log")
    try:
        project_b, key_b = _second_project_key(server)
        key_a = server.first_run["api_key"]
        result = Run(
            server, server.first_run["project_id"], project_b, server.base_url.split("//")[1]
        )
        result.prometheus_started_ms = int(time.time() * 1000)
        prometheus = start_prometheus(
            tmp / "prom",
            scrape_target=result.target,
            remote_write_url=f"{server.base_url}/api/v1/write",
            api_key=key_a,
        )
        try:
            deadline = time.monotonic() + WAIT_SECONDS
            while accepted_samples(server.base_url) < MIN_SAMPLES:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"Brokle accepted fewer than {MIN_SAMPLES} samples in {WAIT_SECONDS}s"
                        f"\n{prometheus.log_path.read_text(errors='replace')[-3000:]}"
                    )
                time.sleep(0.5)
            result.prometheus_counters = _prometheus_counters(prometheus.url)
        finally:
            prometheus.stop()  # flushes its remote-write queue
            result.prometheus_log = prometheus.log_path.read_text(errors="replace")
        _send_luminate(result, key_a, key_b)
        result.accepted_at_stop = accepted_samples(server.base_url)
    finally:
        server.stop()
    result.stopped_ms = int(time.time() * 1000)
    result.tables = dump_store(server.data_dir, QUERIES)
    return result


# --------------------------------------------------------------------------- remote_write


def test_prometheus_reports_no_failed_sends(run: Run) -> None:
    counters = run.prometheus_counters
    assert counters["prometheus_remote_storage_samples_total"] > 0
    assert counters["prometheus_remote_storage_samples_failed_total"] == 0
    assert counters["prometheus_remote_storage_samples_retried_total"] == 0
    assert counters["prometheus_remote_storage_samples_dropped_total"] == 0
    errors = [
        line
        for line in run.prometheus_log.splitlines()
        if "level=error" in line and "remote" in line.lower()
    ]
    assert errors == []
    assert "Traceback" not in run.server.log()


def _labels(run: Run, **extra: str) -> dict[str, str]:
    """A scraped series' labels: the target's job and instance, the external label, its own."""
    return {"job": "brokle", "instance": run.target, "cluster": "e2e", **extra}


def test_up_series_and_samples(run: Run) -> None:
    (up,) = run.series(run.project_a, "up")
    assert {k: v for k, v in up.items() if k != "series_id"} == {
        "project_id": run.project_a,
        "environment": "default",
        "retention_days": PROJECT_RETENTION_DAYS,
        "metric_name": "up",
        "labels": _labels(run),
        "metric_type": up["metric_type"],
        "unit": "",
        "description": up["description"],
    }
    assert up["metric_type"] in ("gauge", "unknown")  # typed only if metadata came along
    samples = run.samples_of(up)
    assert len(samples) >= 3
    # 1 per successful scrape; a scrape slower than the 1s interval on a loaded machine
    # would honestly record 0, so only require that most are up.
    values = [value for _, value in samples]
    assert set(values) <= {0.0, 1.0} and values.count(1.0) >= 3
    times = [ts for ts, _ in samples]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert run.prometheus_started_ms - 1000 <= times[0] and times[-1] <= run.stopped_ms
    # scrape_interval is 1s: consecutive scrapes are about a second apart
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(500 <= gap <= 5000 for gap in gaps), gaps


def test_http_request_counter_rows(run: Run) -> None:
    rows = run.series(run.project_a, "brokle_http_requests_total")
    by_route = {
        (r["labels"]["route"], r["labels"]["method"], r["labels"]["status"]): r for r in rows
    }
    assert ("/metrics", "GET", "200") in by_route
    assert ("/health/live", "GET", "200") in by_route  # start_server's readiness polls
    for (route, method, status), row in by_route.items():
        assert {k: v for k, v in row.items() if k != "series_id"} == {
            "project_id": run.project_a,
            "environment": "default",
            "retention_days": PROJECT_RETENTION_DAYS,
            "metric_name": "brokle_http_requests_total",
            "labels": _labels(run, route=route, method=method, status=status),
            "metric_type": "counter",
            "unit": "",
            "description": row["description"],
        }
        samples = run.samples_of(row)
        assert samples, route
        values = [v for _, v in samples]
        assert values == sorted(values), route  # a counter never goes down here
        assert all(v >= 1 and v == int(v) for v in values), route
        for ts, _ in samples:
            assert run.prometheus_started_ms - 1000 <= ts <= run.stopped_ms
    scrapes = run.samples_of(by_route[("/metrics", "GET", "200")])
    assert scrapes[-1][1] > scrapes[0][1]  # each scrape counts the one before it
    # Samples of one scrape share its timestamp: every /metrics sample time is an `up` time.
    (up,) = run.series(run.project_a, "up")
    assert {ts for ts, _ in scrapes} <= {ts for ts, _ in run.samples_of(up)}


def test_histogram_rows_are_consistent(run: Run) -> None:
    name = "brokle_http_request_duration_seconds"
    buckets = [
        r for r in run.series(run.project_a, f"{name}_bucket") if r["labels"]["route"] == "/metrics"
    ]
    (count,) = [
        r for r in run.series(run.project_a, f"{name}_count") if r["labels"]["route"] == "/metrics"
    ]
    assert count["labels"] == _labels(run, route="/metrics", method="GET")
    assert {b["labels"]["le"] for b in buckets} >= {"0.001", "0.01", "0.1", "1.0", "10.0", "+Inf"}
    for row in buckets:
        assert row["metric_type"] == "histogram"
        assert row["labels"] == _labels(run, route="/metrics", method="GET", le=row["labels"]["le"])
    (inf,) = [b for b in buckets if b["labels"]["le"] == "+Inf"]
    assert dict(run.samples_of(inf)) == dict(run.samples_of(count))


def test_remote_write_tenant_and_counts(run: Run) -> None:
    prometheus_samples = [
        s for s in run.tables["samples"] if s["metric_name"] not in ("api_latency_ms", "queue_size")
    ]
    assert {(s["project_id"], s["environment"]) for s in prometheus_samples} == {
        (run.project_a, "default")
    }
    assert all(s["retention_days"] == PROJECT_RETENTION_DAYS for s in prometheus_samples)
    # Everything Brokle acknowledged is stored (3 Luminate samples included), nothing more.
    assert len(run.tables["samples"]) == run.accepted_at_stop
    assert len(prometheus_samples) >= MIN_SAMPLES
    # Only the Luminate batch sent with B's key is in project B.
    assert {
        s["metric_name"] for s in run.tables["samples"] if s["project_id"] == run.project_b
    } == {"api_latency_ms"}
    for row in run.tables["series"]:
        assert "__name__" not in row["labels"]
        if row["project_id"] == run.project_a and row["metric_name"] != "api_latency_ms":
            assert row["labels"]["job"] == "brokle" and row["labels"]["cluster"] == "e2e"


# --------------------------------------------------------------------------- Luminate JSON


def test_luminate_replies(run: Run) -> None:
    mixed = run.luminate_replies["mixed"]
    assert mixed.status_code == 200, mixed.text
    body = mixed.json()
    assert body["success"] is True
    assert body["data"] == {
        "accepted": 2,
        "rejected": 1,
        "errors": [
            {"index": 2, "id": "", "status": 400, "message": "at most 20 dimensions, got 21"}
        ],
    }
    bad = run.luminate_replies["all_invalid"]
    assert bad.status_code == 400, bad.text
    assert bad.json()["success"] is False
    assert bad.json()["error"]["code"] == "invalid_metrics"
    assert bad.json()["data"]["accepted"] == 0
    other = run.luminate_replies["other_project"]
    assert other.status_code == 200, other.text
    assert other.json()["data"] == {"accepted": 1, "rejected": 0, "errors": []}


def test_luminate_rows(run: Run) -> None:
    eu_labels = {"region": "eu", "endpoint": "/chat", "canary": "true", "shard": "3"}
    common = {
        "environment": "default",
        "retention_days": PROJECT_RETENTION_DAYS,
        "metric_name": "api_latency_ms",
        "metric_type": "gauge",
        "unit": "",
        "description": "",
    }
    rows_a = {
        json.dumps(r["labels"], sort_keys=True): r
        for r in run.series(run.project_a, "api_latency_ms")
    }
    assert sorted(rows_a) == sorted(
        json.dumps(labels, sort_keys=True) for labels in (eu_labels, {"region": "us"})
    )
    eu = rows_a[json.dumps(eu_labels, sort_keys=True)]
    us = rows_a[json.dumps({"region": "us"}, sort_keys=True)]
    for row, labels in ((eu, eu_labels), (us, {"region": "us"})):
        assert {k: v for k, v in row.items() if k != "series_id"} == common | {
            "project_id": run.project_a,
            "labels": labels,
        }
    first_ms, second_ms = run.luminate_ms
    assert run.samples_of(eu) == [(first_ms, 12.5)]
    assert run.samples_of(us) == [(second_ms, 30.0)]
    assert run.series(run.project_a, "queue_size") == []
    assert run.series(run.project_b, "queue_size") == []

    (eu_b,) = run.series(run.project_b, "api_latency_ms")
    assert {k: v for k, v in eu_b.items() if k != "series_id"} == common | {
        "project_id": run.project_b,
        "labels": eu_labels,
    }
    assert eu_b["series_id"] == eu["series_id"]  # same labels, same id: the tenant tells apart
    ((ts, value),) = run.samples_of(eu_b)
    assert value == 99.0
    assert run.prometheus_started_ms <= ts <= run.stopped_ms  # no timestamp: time received
