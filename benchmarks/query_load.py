"""Query latency over a loaded store: p50/p95 per query type of the unified query API.

Loads synthetic telemetry straight into an embedded store (chDB) in a temporary directory
with ``Store.insert`` in time-ordered batches (six hours, within one day partition), then runs each
query type through the query layer (request model → scoped SQL → store → reply shaping,
i.e. everything but HTTP) and reports latency percentiles.

Data (default; ``--quick`` loads 1M spans and 1M samples):

* 10M spans over 7 days and 50 projects of skewed size (the largest holds ~9%): traces of
  2-6 spans — an HTTP root, optional retrieval and tool spans, one or two LLM generations
  with a realistic model/provider mix, tokens, cost, time to first token, ~0.5 KB prompts;
  80% production / 20% staging, 5 services, 2,000 users per project.
* 10M metric samples: per project ``cpu_usage{host}`` (4 series) and
  ``http_requests_total{host,code}`` (8 counters), one sample every ~36 s for 7 days.

Queries run against the largest project (the worst case) and a median one; targets from the
issue: trace by id ≤ 20 ms p95; trace list (1 h, one filter) ≤ 100 ms p95; analytics over
7 days ≤ 300 ms p95; metric range over 24 h ≤ 100 ms p95.

Run: ``python -m benchmarks query_load [--quick]`` once registered, or alone:
``.venv/bin/python -m benchmarks.query_load [--quick] [--spans N] [--samples N] [--iterations N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from benchmarks.common import Result, latency_summary
from brokle_server.query.request import QueryRequest, run_query
from brokle_server.query.scope import QueryScope, TenantReader
from brokle_server.store import migrate
from brokle_server.store.client import Store
from brokle_server.store.config import StoreSettings
from brokle_server.store.schema import SAMPLE_COLUMNS, SERIES_COLUMNS, SPAN_COLUMNS, series_id

NS = 1_000_000_000
MS_NS = 1_000_000
DAY_S = 86_400
DAYS = 7
PROJECTS = 50
SLICE_S = 3600  # spans are generated an hour at a time
BATCH_SLICES = 6  # and inserted six hours at a time
MODELS = [  # (provider, model, weight, input $/token, output $/token)
    ("openai", "gpt-4o-mini", 35, 0.15e-6, 0.6e-6),
    ("openai", "gpt-4o", 20, 2.5e-6, 10e-6),
    ("anthropic", "claude-3-5-sonnet", 15, 3e-6, 15e-6),
    ("anthropic", "claude-3-haiku", 10, 0.25e-6, 1.25e-6),
    ("google", "gemini-1.5-pro", 8, 1.25e-6, 5e-6),
    ("groq", "llama-3.1-70b", 7, 0.59e-6, 0.79e-6),
    ("openai", "text-embedding-3-small", 5, 0.02e-6, 0.0),
]
SERVICES = ["chatbot", "search-api", "summarizer", "agent-worker", "embedder"]
ROUTES = ["/v1/chat", "/v1/search", "/v1/summarize", "/v1/agent", "/v1/embed"]
PROMPTS = [
    "You are a helpful assistant for an online store. Answer briefly and cite the policy. " * 6,
    "Summarize the following support ticket in three bullet points for the on-call engineer. " * 5,
    "Translate the customer's message to English, keep product names as they are. " * 6,
]
COMPLETIONS = ["Sure - here is what I found.", "The ticket reports a failed payment.", "OK."]
DEFAULTS: dict[str, Any] = dict.fromkeys(SPAN_COLUMNS, "")
DEFAULTS.update(
    retention_days=30,
    kind="internal",
    status_code="ok",
    status_message="",
    span_type="span",
    level="DEFAULT",
    attributes={},
    resource_attributes={},
    event_times=[],
    event_names=[],
    event_attributes=[],
    link_trace_ids=[],
    link_span_ids=[],
    input_tokens=0,
    output_tokens=0,
    total_tokens=0,
    cached_tokens=0,
    cache_write_tokens=0,
    reasoning_tokens=0,
    cost_usd=0.0,
    input_cost_usd=0.0,
    output_cost_usd=0.0,
    ttft_ms=None,
    tags=[],
)
_INDEX = {c: i for i, c in enumerate(SPAN_COLUMNS)}


def _project_ids() -> list[str]:
    return [f"0193a0f4-0000-7000-8000-{i:012d}" for i in range(PROJECTS)]


def _weights() -> list[float]:
    raw = [1 / (i + 1) ** 0.6 for i in range(PROJECTS)]
    total = sum(raw)
    return [w / total for w in raw]


class SpanFactory:
    """Builds span rows as tuples in SPAN_COLUMNS order, from a template row."""

    def __init__(self, rng: random.Random, now_ns: int) -> None:
        self.rng = rng
        self.now_ns = now_ns
        self.template = [DEFAULTS[c] for c in SPAN_COLUMNS]
        self.model_weights = [m[2] for m in MODELS]
        self.resources = {
            (svc, env): {
                "service.name": svc,
                "deployment.environment.name": env,
                "telemetry.sdk.language": "python",
            }
            for svc in SERVICES
            for env in ("production", "staging")
        }
        self.trace_ids: dict[str, list[str]] = {}

    def _row(self, **values: Any) -> tuple[Any, ...]:
        row = list(self.template)
        for key, value in values.items():
            row[_INDEX[key]] = value
        return tuple(row)

    def trace(self, project: str, start_ns: int) -> list[tuple[Any, ...]]:
        rng = self.rng
        trace_id = f"{rng.getrandbits(128):032x}"
        env = "production" if rng.random() < 0.8 else "staging"
        k = rng.randrange(len(SERVICES))
        service, route = SERVICES[k], ROUTES[k]
        user = f"user-{rng.randrange(2000)}"
        session = f"sess-{rng.randrange(8000)}"
        resource = self.resources[(service, env)]
        common = {
            "project_id": project,
            "environment": env,
            "trace_id": trace_id,
            "service_name": service,
            "resource_attributes": resource,
            "user_id": user,
            "session_id": session,
            "api_key_id": f"key-{project[-2:]}",
            "ingested_at": self.now_ns // MS_NS,
        }
        root_id = f"{rng.getrandbits(64):016x}"
        failed = rng.random() < 0.03
        rows = []
        offset = 2 * MS_NS
        if rng.random() < 0.5:
            dur = rng.randint(5, 60) * MS_NS
            rows.append(
                self._row(
                    **common,
                    span_id=f"{rng.getrandbits(64):016x}",
                    parent_span_id=root_id,
                    name="vector.search",
                    span_type="retrieval",
                    start_time=start_ns + offset,
                    end_time=start_ns + offset + dur,
                    duration_ns=dur,
                    attributes={"db.system": "qdrant", "db.operation": "search"},
                )
            )
            offset += dur
        for n in range(1 if rng.random() < 0.7 else 2):
            provider, model, _, in_price, out_price = rng.choices(
                MODELS, weights=self.model_weights
            )[0]
            in_tok = rng.randint(50, 4000)
            out_tok = 0 if model.startswith("text-embedding") else rng.randint(10, 800)
            cached = in_tok // 2 if rng.random() < 0.25 else 0
            dur = rng.randint(200, 6000) * MS_NS
            error = failed and n == 0
            rows.append(
                self._row(
                    **common,
                    span_id=f"{rng.getrandbits(64):016x}",
                    parent_span_id=root_id,
                    name=f"{provider}.chat",
                    kind="client",
                    span_type="generation",
                    status_code="error" if error else "ok",
                    status_message="rate limited" if error else "",
                    level="ERROR" if error else "DEFAULT",
                    start_time=start_ns + offset,
                    end_time=start_ns + offset + dur,
                    duration_ns=dur,
                    provider=provider,
                    model=model,
                    operation="chat",
                    input_tokens=in_tok,
                    output_tokens=out_tok,
                    total_tokens=in_tok + out_tok,
                    cached_tokens=cached,
                    cost_usd=in_tok * in_price + out_tok * out_price,
                    input_cost_usd=in_tok * in_price,
                    output_cost_usd=out_tok * out_price,
                    price_version="2026.11",
                    ttft_ms=float(rng.randint(80, 1500)),
                    input=rng.choice(PROMPTS),
                    output=rng.choice(COMPLETIONS),
                    attributes={
                        "gen_ai.system": provider,
                        "gen_ai.request.model": model,
                        "gen_ai.operation.name": "chat",
                        "gen_ai.request.temperature": "0.2",
                        "gen_ai.response.finish_reasons": '["stop"]',
                        "user.id": user,
                        "session.id": session,
                    },
                    tags=["prod"] if env == "production" else [],
                )
            )
            offset += dur
        if rng.random() < 0.3:
            dur = rng.randint(1, 300) * MS_NS
            rows.append(
                self._row(
                    **common,
                    span_id=f"{rng.getrandbits(64):016x}",
                    parent_span_id=root_id,
                    name="tool.call",
                    span_type="tool",
                    start_time=start_ns + offset,
                    end_time=start_ns + offset + dur,
                    duration_ns=dur,
                    attributes={"tool.name": rng.choice(["web", "calculator", "sql"])},
                )
            )
            offset += dur
        total = offset + MS_NS
        rows.insert(
            0,
            self._row(
                **common,
                span_id=root_id,
                name=f"POST {route}",
                kind="server",
                status_code="error" if failed else "ok",
                start_time=start_ns,
                end_time=start_ns + total,
                duration_ns=total,
                attributes={
                    "http.request.method": "POST",
                    "http.route": route,
                    "http.response.status_code": "500" if failed else "200",
                    "user.id": user,
                },
            ),
        )
        ids = self.trace_ids.setdefault(project, [])
        if len(ids) < 500 or rng.random() < 0.01:
            ids.append(trace_id)
        return rows


def span_batches(factory: SpanFactory, n_spans: int) -> Iterator[list[tuple[Any, ...]]]:
    """Hour-by-hour batches of about ``n_spans`` spans in total over the last 7 days."""
    rng, now_ns = factory.rng, factory.now_ns
    projects, weights = _project_ids(), _weights()
    slices = DAYS * DAY_S // SLICE_S
    per_slice = n_spans / slices / 3.1  # 3.1 spans per trace on average
    end_s = now_ns // NS
    start_s = end_s - DAYS * DAY_S
    carry = 0.0
    batch: list[tuple[Any, ...]] = []
    for k in range(slices):
        slice_start = start_s + k * SLICE_S
        carry += per_slice
        count, carry = int(carry), carry - int(carry)
        chosen = rng.choices(projects, weights=weights, k=count)
        for project in chosen:
            start_ns = (slice_start + rng.random() * SLICE_S) * NS
            batch.extend(factory.trace(project, int(start_ns)))
        # Inserts are fixed-cost heavy: send a few hours at once, within one day partition.
        if (k + 1) % BATCH_SLICES == 0 or k == slices - 1:
            yield batch
            batch = []


def metric_batches(n_samples: int, now_ns: int) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    """Series rows (one per series per day) and day-by-day sample batches."""
    projects = _project_ids()
    per_project = 12
    series_total = PROJECTS * per_project
    step_ms = max(1000, DAYS * DAY_S * 1000 * series_total // max(n_samples, 1))
    end_ms = now_ns // MS_NS
    start_ms = end_ms - DAYS * DAY_S * 1000
    labels_by_project = []
    for project in projects:
        entries = []
        for h in range(4):
            labels = {"host": f"host-{h}"}
            entries.append(("cpu_usage", labels, "gauge", series_id("cpu_usage", labels)))
            for code in ("200", "500"):
                labels = {"host": f"host-{h}", "code": code}
                sid = series_id("http_requests_total", labels)
                entries.append(("http_requests_total", labels, "counter", sid))
        labels_by_project.append((project, entries))
    rng = random.Random(7)
    counters: dict[tuple[str, int], float] = {}
    for day in range(DAYS):
        day_start = start_ms + day * DAY_S * 1000
        day_end = min(end_ms, day_start + DAY_S * 1000)
        series_rows = []
        samples = []
        for project, entries in labels_by_project:
            for name, labels, kind, sid in entries:
                series_rows.append(
                    (
                        project,
                        "production",
                        90,
                        name,
                        sid,
                        labels,
                        kind,
                        "",
                        "",
                        day_start,
                        day_end - 1,
                    )
                )
                for ts in range(day_start, day_end, step_ms):
                    if kind == "gauge":
                        value = 20 + 60 * rng.random()
                    else:
                        key = (project, sid)
                        value = counters.get(key, 0.0) + rng.randint(0, 50)
                        if rng.random() < 0.0005:
                            value = 0.0  # a restart resets the counter
                        counters[key] = value
                    samples.append((project, "production", 90, name, sid, ts, value))
        yield "series", series_rows
        for i in range(0, len(samples), 500_000):
            yield "samples", samples[i : i + 500_000]


def load(store: Store, factory: SpanFactory, n_spans: int, n_samples: int) -> dict[str, Any]:
    now_ns = factory.now_ns
    started = time.monotonic()
    spans = 0
    for batch in span_batches(factory, n_spans):
        store.insert("spans", SPAN_COLUMNS, batch)
        spans += len(batch)
    span_seconds = time.monotonic() - started
    started = time.monotonic()
    samples = 0
    for table, rows in metric_batches(n_samples, now_ns):
        store.insert(table, SERIES_COLUMNS if table == "series" else SAMPLE_COLUMNS, rows)
        if table == "samples":
            samples += len(rows)
    sample_seconds = time.monotonic() - started
    started = time.monotonic()
    for table in ("spans", "trace_index", "series", "samples"):
        store.command(f"OPTIMIZE TABLE {table} FINAL", settings={"max_execution_time": 3600})
    return {
        "spans": spans,
        "samples": samples,
        "span_load_s": round(span_seconds, 1),
        "spans_per_s": round(spans / span_seconds),
        "sample_load_s": round(sample_seconds, 1),
        "samples_per_s": round(samples / sample_seconds),
        "optimize_s": round(time.monotonic() - started, 1),
    }


def _queries(trace_ids: list[str], rng: random.Random) -> dict[str, Any]:
    """Query type -> a function returning a fresh request body."""
    models = [m[1] for m in MODELS]
    return {
        "trace_by_id": lambda: {"queryType": "trace", "traceId": rng.choice(trace_ids)},
        "trace_list_1h_one_filter": lambda: {
            "queryType": "traces",
            "timeRange": {"relative": "1h"},
            "model": rng.choice(models),
            "limit": 50,
        },
        "trace_list_24h_two_filters_by_cost": lambda: {
            "queryType": "traces",
            "timeRange": {"relative": "24h"},
            "service": rng.choice(SERVICES),
            "status": "error",
            "sort": "cost",
        },
        "analytics_7d_by_model_daily": lambda: {
            "queryType": "analytics",
            "timeRange": {"relative": "7d"},
            "interval": "1d",
            "groupBy": ["model"],
        },
        "analytics_7d_totals_filtered": lambda: {
            "queryType": "analytics",
            "timeRange": {"relative": "7d"},
            "filters": [{"field": "environment", "op": "eq", "value": "production"}],
        },
        "sessions_24h": lambda: {"queryType": "sessions", "timeRange": {"relative": "24h"}},
        "users_7d_by_cost": lambda: {
            "queryType": "users",
            "timeRange": {"relative": "7d"},
            "sort": "cost",
        },
        "metric_range_24h": lambda: {
            "queryType": "range",
            "metricName": "cpu_usage",
            "timeRange": {"relative": "24h"},
            "aggregation": rng.choice(["avg", "p95", "max"]),
            "interval": "5m",
            "groupBy": ["host"],
        },
        "metric_rate_24h": lambda: {
            "queryType": "rate",
            "metricName": "http_requests_total",
            "timeRange": {"relative": "24h"},
            "interval": "5m",
            "groupBy": ["code"],
        },
        "metric_aggregate_24h": lambda: {
            "queryType": "aggregate",
            "metricName": "cpu_usage",
            "timeRange": {"relative": "24h"},
            "aggregation": "p99",
            "groupBy": ["host"],
        },
    }


async def measure(
    store: Store, project: str, trace_ids: list[str], iterations: int
) -> dict[str, Any]:
    reader = TenantReader(store, QueryScope(project))
    adapter: TypeAdapter[Any] = TypeAdapter(QueryRequest)
    rng = random.Random(1)
    results: dict[str, Any] = {}
    for name, make in _queries(trace_ids, rng).items():
        for _ in range(3):  # warm caches (marks, uncompressed blocks) as a live server has
            await run_query(reader, adapter.validate_python(make()), datetime.now(UTC))
        times = []
        for _ in range(iterations):
            request = adapter.validate_python(make())
            start = time.perf_counter()
            await run_query(reader, request, datetime.now(UTC))
            times.append(time.perf_counter() - start)
        summary = latency_summary(times)
        results[name] = {k: summary[k] for k in ("p50_ms", "p95_ms", "max_ms")}
    return results


TARGETS_MS = {
    "trace_by_id": 20,
    "trace_list_1h_one_filter": 100,
    "analytics_7d_by_model_daily": 300,
    "analytics_7d_totals_filtered": 300,
    "metric_range_24h": 100,
}


def run(n_spans: int, n_samples: int, iterations: int) -> Result:
    workdir = Path(tempfile.mkdtemp(prefix="brokle-query-bench-"))
    now_ns = time.time_ns()
    try:
        with Store(f"chdb://{workdir / 'clickhouse'}", StoreSettings(pool_size=4)) as store:
            migrate.up(store)
            factory = SpanFactory(random.Random(42), now_ns)
            loaded = load(store, factory, n_spans, n_samples)
            counts = store.query(
                "SELECT project_id, count() AS n FROM spans GROUP BY project_id ORDER BY n DESC"
            )
            largest, median = counts[0], counts[len(counts) // 2]
            result: Result = {"load": loaded}
            for label, (project, n) in (("largest_project", largest), ("median_project", median)):
                before = os.getloadavg()[0]
                figures = asyncio.run(
                    measure(store, project, factory.trace_ids[project], iterations)
                )
                # Other processes on the machine inflate tail latencies: say how busy it was.
                result[label] = {
                    "spans": n,
                    "machine_load_1m": [round(before, 2), round(os.getloadavg()[0], 2)],
                    "queries": figures,
                }
            big = result["largest_project"]["queries"]
            result["targets_p95_ms"] = {
                name: {
                    "target": target,
                    "p95": big[name]["p95_ms"],
                    "met": big[name]["p95_ms"] <= target,
                }
                for name, target in TARGETS_MS.items()
            }
            result["disk_bytes"] = int(
                store.query(
                    "SELECT sum(bytes_on_disk) FROM system.parts "
                    "WHERE active AND database = currentDatabase()"
                )[0][0]
            )
            return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(quick: bool = False) -> Result:
    """Harness entry point: 10M spans and samples, or 1M of each with ``quick``."""
    if quick:
        return run(1_000_000, 1_000_000, 30)
    return run(10_000_000, 10_000_000, 60)


bench = main


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M spans and samples")
    parser.add_argument("--spans", type=int, default=None)
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=None)
    args = parser.parse_args(argv)
    default_n = 1_000_000 if args.quick else 10_000_000
    result = run(
        args.spans or default_n,
        args.samples or default_n,
        args.iterations or (30 if args.quick else 60),
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
