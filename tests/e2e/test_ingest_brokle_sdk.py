"""The ``brokle`` Python SDK (0.4.x) against a real ``brokle serve``, used as its README shows.

One server for the module: a fixture builds a trace with ``@observe`` (user, session, tags,
metadata), a nested retrieval span, a generation and a failing tool; records GenAI metrics;
submits scores one by one, through a scorer and in a batch; flushes and shuts the client down,
then stops the server and reads the tables once. Expected rows come from the SDK's own span
objects (exact times and ids) and from the documented attribute → column mapping.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from tests.e2e.conftest import Server, dump_store, flat_map, start_server

pytestmark = pytest.mark.e2e

RUN = uuid.uuid4().hex[:8]
SERVICE = f"brokle-sdk-e2e-{RUN}"
QUESTION = "Capital of France?"
INPUT_MESSAGES = [{"role": "user", "content": QUESTION}]
OUTPUT_MESSAGES = [{"role": "assistant", "content": "Paris"}]
PROJECT_RETENTION_DAYS = 30  # the bootstrap project's (and any new project's) default


QUERIES = {
    "spans": """
        SELECT * REPLACE (
            toUnixTimestamp64Nano(start_time) AS start_time,
            toUnixTimestamp64Nano(end_time) AS end_time,
            arrayMap(t -> toUnixTimestamp64Nano(t), event_times) AS event_times,
            toUnixTimestamp64Milli(ingested_at) AS ingested_at)
        FROM spans ORDER BY start_time""",
    "trace_index": """
        SELECT project_id, trace_id,
               toUnixTimestamp64Nano(min(start_time)) AS start_time,
               toUnixTimestamp64Nano(max(end_time)) AS end_time,
               arraySort(groupUniqArrayArray(environments)) AS environments,
               sum(span_count) AS span_count, sum(error_count) AS error_count,
               sum(total_tokens) AS total_tokens
        FROM trace_index GROUP BY project_id, trace_id""",
    "scores": """
        SELECT * REPLACE (
            toUnixTimestamp64Milli(timestamp) AS timestamp,
            toUnixTimestamp64Milli(ingested_at) AS ingested_at)
        FROM scores ORDER BY name""",
    "series": """
        SELECT project_id, environment, metric_name, series_id,
               argMax(labels, last_seen) AS labels, argMax(metric_type, last_seen) AS metric_type,
               argMax(unit, last_seen) AS unit
        FROM series GROUP BY project_id, environment, metric_name, series_id""",
    "samples": """
        SELECT project_id, environment, metric_name, series_id,
               toUnixTimestamp64Milli(timestamp) AS timestamp, value
        FROM samples ORDER BY metric_name, series_id, timestamp""",
}


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Run:
    server: Server
    project_id: str
    key_id: str
    started_ms: int = 0
    stopped_ms: int = 0
    auth_ok: bool = False
    flushed: bool = False
    shut_down: bool = False
    problems: list[str] = field(default_factory=list)
    spans: dict[str, ReadableSpan] = field(default_factory=dict)
    answer: str = ""
    single: dict[str, Any] = field(default_factory=dict)
    scored: dict[str, Any] = field(default_factory=dict)
    batch: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def trace_id(self) -> str:
        return format(self.spans["root"].context.trace_id, "032x")

    def span_id(self, name: str) -> str:
        return format(self.spans[name].context.span_id, "016x")


def _produce_trace(client: Any, run: Run) -> None:
    """The documented SDK usage: @observe around nested spans and a generation."""
    from brokle import observe, set_client

    set_client(client)  # @observe finds the client through the context

    @observe(as_type="tool", name="lookup-weather", capture_output=False)
    def failing_tool(city: str) -> str:
        run.spans["tool"] = trace.get_current_span()
        raise ValueError(f"no weather for {city}")

    @observe(
        name="answer-question",
        user_id="user-7",
        session_id="sess-9",
        tags=["e2e", "sdk"],
        metadata={"tier": "gold", "attempt": 1},
    )
    def answer(question: str) -> str:
        run.spans["root"] = trace.get_current_span()
        with client.start_as_current_span(
            "retrieve", as_type="retrieval", input={"query": question}, output=["doc-1", "doc-2"]
        ) as retrieval:
            run.spans["retrieve"] = retrieval
        with client.start_as_current_generation(
            name="chat",
            model="gpt-4o-mini",
            provider="openai",
            input_messages=INPUT_MESSAGES,
            model_parameters={"temperature": 0.1, "max_tokens": 64},
        ) as generation:
            run.spans["generation"] = generation
            generation.set_attribute("gen_ai.output.messages", json.dumps(OUTPUT_MESSAGES))
            generation.set_attribute("gen_ai.usage.input_tokens", 12)
            generation.set_attribute("gen_ai.usage.output_tokens", 3)
            generation.set_attribute("gen_ai.response.finish_reasons", ["stop"])
        with contextlib.suppress(ValueError):
            failing_tool("Paris")
        return "Paris"

    run.answer = answer(QUESTION)
    metrics = client.get_metrics()
    assert metrics is not None
    metrics.record_tokens(
        input_tokens=12, output_tokens=3, model="gpt-4o-mini", provider="openai", operation="chat"
    )


def _submit_scores(client: Any, run: Run) -> None:
    from brokle.scorers import ExactMatch
    from brokle.scores import ScoreSource

    run.single = client.scores.submit(
        trace_id=run.trace_id,
        span_id=run.span_id("generation"),
        name="accuracy",
        value=0.9,
        reason="matches the reference",
        metadata={"grader": "e2e"},
    )
    run.scored = client.scores.submit(
        trace_id=run.trace_id,
        scorer=ExactMatch(name="answer_match"),
        output=run.answer,
        expected="Paris",
        source=ScoreSource.LLM,
    )
    run.batch = client.scores.batch(
        [
            {"trace_id": run.trace_id, "name": "relevance", "value": 0.75},
            {
                "trace_id": run.trace_id,
                "name": "verdict",
                "value": 0,
                "type": "CATEGORICAL",
                "string_value": "good",
                "source": "human",
                "reason": "reviewed",
            },
            {"trace_id": run.trace_id, "name": "helpful", "value": True, "type": "BOOLEAN"},
            {"trace_id": "not-a-trace-id", "name": "broken", "value": 1.0},
        ]
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    from brokle import Brokle

    tmp = tmp_path_factory.mktemp("brokle-sdk")
    server = start_server(tmp / "data", tmp / "server.log")
    collect = _Collect()
    watched = [logging.getLogger("brokle"), logging.getLogger("opentelemetry")]
    for logger in watched:
        logger.addHandler(collect)
    try:
        with httpx.Client(base_url=server.base_url, timeout=15) as http:
            login = http.post(
                "/api/v1/auth/login",
                json={"email": "admin@example.com", "password": server.first_run["admin_password"]},
            )
            token = login.json()["data"]["token"]
            keys = http.get(
                f"/api/v1/projects/{server.first_run['project_id']}/api-keys",
                headers={"Authorization": f"Bearer {token}"},
            ).json()["data"]
        result = Run(server, server.first_run["project_id"], keys[0]["id"])
        result.started_ms = int(time.time() * 1000)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("OTEL_SERVICE_NAME", SERVICE)  # read by the SDK's Resource.create
            client = Brokle(
                api_key=server.first_run["api_key"],
                base_url=server.base_url,
                environment="staging",
                release="v2.1.0",
                version="exp-a",
                flush_interval=0.5,
            )
        try:
            result.auth_ok = client.auth_check()
            contextvars.copy_context().run(_produce_trace, client, result)
            result.flushed = client.flush(timeout_seconds=15)
            _submit_scores(client, result)
        finally:
            result.shut_down = client.shutdown(timeout_seconds=15)
            atexit.unregister(client._cleanup)  # already shut down; nothing left at exit
    finally:
        for logger in watched:
            logger.removeHandler(collect)
        server.stop()
    result.stopped_ms = int(time.time() * 1000)
    result.problems = [f"{r.name}: {r.getMessage()}" for r in collect.records]
    result.tables = dump_store(server.data_dir, QUERIES)
    return result


# --------------------------------------------------------------------------- tests


def test_sdk_calls_succeeded(run: Run) -> None:
    assert run.auth_ok is True
    assert run.flushed is True
    assert run.shut_down is True
    assert run.problems == []
    assert run.answer == "Paris"
    assert "Traceback" not in run.server.log()


def _span_row(run: Run, key: str, **overrides: object) -> dict[str, object]:
    """The expected spans row for one SDK span, before the per-span overrides."""
    span = run.spans[key]
    assert span.start_time is not None and span.end_time is not None
    parent = span.parent
    status = {StatusCode.UNSET: "unset", StatusCode.OK: "ok", StatusCode.ERROR: "error"}
    row: dict[str, object] = {
        "project_id": run.project_id,
        "environment": "staging",  # brokle.environment, set by the SDK on every span
        "retention_days": PROJECT_RETENTION_DAYS,
        "trace_id": run.trace_id,
        "span_id": run.span_id(key),
        "parent_span_id": format(parent.span_id, "016x") if parent else "",
        "trace_state": "",
        "name": span.name,
        "kind": span.kind.name.lower(),
        "service_name": SERVICE,
        "scope_name": "brokle",
        "scope_version": span.instrumentation_scope.version if span.instrumentation_scope else "",
        "start_time": span.start_time,
        "end_time": span.end_time,
        "duration_ns": span.end_time - span.start_time,
        "status_code": status[span.status.status_code],
        "status_message": span.status.description or "",
        "span_type": "span",
        "level": "DEFAULT",
        "attributes": flat_map(span.attributes),
        "resource_attributes": flat_map(span.resource.attributes),
        "event_times": [e.timestamp for e in span.events],
        "event_names": [e.name for e in span.events],
        "event_attributes": [flat_map(e.attributes) for e in span.events],
        "link_trace_ids": [],
        "link_span_ids": [],
        "provider": "",
        "model": "",
        "operation": "",
        "input_tokens": 0,
        "output_tokens": 0,
        "total_tokens": 0,
        "cached_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "ttft_ms": None,
        "input": "",
        "output": "",
        "user_id": "",
        "session_id": "",
        "tags": [],
        "api_key_id": run.key_id,
        "release": "v2.1.0",  # brokle.release on the span (and the resource)
        "version": "exp-a",  # brokle.version on the resource
    }
    row.update(overrides)
    return row


def _stored(run: Run, key: str) -> dict[str, Any]:
    rows = [r for r in run.tables["spans"] if r["span_id"] == run.span_id(key)]
    assert len(rows) == 1, rows
    row = dict(rows[0])
    assert row.pop("cost_usd") >= 0
    for column in ("input_cost_usd", "output_cost_usd", "price_version"):
        row.pop(column)
    assert run.started_ms - 1000 <= row.pop("ingested_at") <= run.stopped_ms
    return row


def _without(attrs: object, *keys: str) -> dict[str, str]:
    assert isinstance(attrs, dict)
    out = dict(attrs)
    for key in keys:
        del out[key]
    return out


def test_trace_has_exactly_the_sdk_spans(run: Run) -> None:
    assert {r["span_id"] for r in run.tables["spans"]} == {
        run.span_id(k) for k in ("root", "retrieve", "generation", "tool")
    }
    assert {r["trace_id"] for r in run.tables["spans"]} == {run.trace_id}
    assert {r["project_id"] for r in run.tables["spans"]} == {run.project_id}


def test_trace_index_row(run: Run) -> None:
    root = run.spans["root"]
    assert run.tables["trace_index"] == [
        {
            "project_id": run.project_id,
            "trace_id": run.trace_id,
            "start_time": root.start_time,
            "end_time": root.end_time,
            "environments": ["staging"],
            "span_count": 4,
            "error_count": 1,  # the failing tool
            "total_tokens": 15,
        }
    ]


def test_observed_root_span_row(run: Run) -> None:
    expected = _span_row(run, "root")
    expected |= {
        "status_code": "ok",
        "attributes": _without(expected["attributes"], "input.value", "output.value"),
        "input": json.dumps({"question": QUESTION}),
        "output": json.dumps("Paris"),
        "user_id": "user-7",
        "session_id": "sess-9",
        "tags": ["e2e", "sdk"],
    }
    row = _stored(run, "root")
    assert row == expected
    assert row["parent_span_id"] == ""
    # metadata has no column: it stays in the attribute map for filtering
    assert json.loads(row["attributes"]["metadata"]) == {"tier": "gold", "attempt": 1}
    assert row["attributes"]["brokle.environment"] == "staging"


def test_nested_retrieval_span_row(run: Run) -> None:
    expected = _span_row(run, "retrieve")
    expected |= {
        "span_type": "retrieval",
        "attributes": _without(expected["attributes"], "input.value", "output.value"),
        "input": json.dumps({"query": QUESTION}),
        "output": json.dumps(["doc-1", "doc-2"]),
    }
    row = _stored(run, "retrieve")
    assert row == expected
    assert row["parent_span_id"] == run.span_id("root")


def test_generation_row(run: Run) -> None:
    expected = _span_row(run, "generation")
    expected |= {
        "span_type": "generation",
        "attributes": _without(
            expected["attributes"], "gen_ai.input.messages", "gen_ai.output.messages"
        ),
        "provider": "openai",
        "model": "gpt-4o-mini",
        "operation": "chat",
        "input_tokens": 12,
        "output_tokens": 3,
        "total_tokens": 15,
        "input": json.dumps(INPUT_MESSAGES),
        "output": json.dumps(OUTPUT_MESSAGES),
    }
    row = _stored(run, "generation")
    assert row == expected
    assert row["kind"] == "client" and row["name"] == "chat gpt-4o-mini"
    assert row["parent_span_id"] == run.span_id("root")
    assert row["attributes"]["gen_ai.request.temperature"] == "0.1"
    assert row["attributes"]["gen_ai.request.max_tokens"] == "64"


def test_failing_tool_span_row(run: Run) -> None:
    expected = _span_row(run, "tool")
    expected |= {
        "span_type": "tool",
        "status_code": "error",
        "attributes": _without(expected["attributes"], "input.value"),
        "input": json.dumps({"city": "Paris"}),
        # @observe always sends brokle.span.level=DEFAULT, and an explicit level wins over
        # the error status (ingest/spans.py's column table).
        "level": "DEFAULT",
    }
    row = _stored(run, "tool")
    assert row == expected
    assert "no weather for Paris" in row["status_message"]
    assert "exception" in row["event_names"]
    exception = row["event_attributes"][row["event_names"].index("exception")]
    assert exception["exception.type"] == "ValueError"
    assert exception["exception.message"] == "no weather for Paris"


def test_score_replies(run: Run) -> None:
    assert run.single["trace_id"] == run.trace_id
    assert run.single["span_id"] == run.span_id("generation")
    assert run.single["name"] == "accuracy" and run.single["value"] == 0.9
    assert run.single["type"] == "NUMERIC" and run.single["source"] == "SDK"
    assert run.scored["name"] == "answer_match" and run.scored["type"] == "BOOLEAN"
    assert run.batch["created"] == 3 and run.batch["failed"] == 1
    assert [s["index"] for s in run.batch["scores"]] == [0, 1, 2]
    (error,) = run.batch["errors"]
    assert error["index"] == 3 and error["status"] == 400
    assert "trace_id" in error["message"]


def test_score_rows(run: Run) -> None:
    rows = {r["name"]: r for r in run.tables["scores"]}
    assert sorted(rows) == ["accuracy", "answer_match", "helpful", "relevance", "verdict"]
    ids = {
        "accuracy": run.single["id"],
        "answer_match": run.scored["id"],
        **{
            name: entry["id"]
            for name, entry in zip(
                ("relevance", "verdict", "helpful"), run.batch["scores"], strict=True
            )
        },
    }
    common = {
        "project_id": run.project_id,
        # The SDK's REST client sends no environment for scores (only the OTLP exporters
        # send X-Brokle-Environment), so scores land in the project's default environment.
        "environment": "default",
        "retention_days": PROJECT_RETENTION_DAYS,  # the project's one retention setting
        "trace_id": run.trace_id,
        "span_id": "",
        "string_value": "",
        "data_type": "NUMERIC",
        "source": "SDK",
        "comment": "",
    }
    expected = {
        "accuracy": common
        | {"span_id": run.span_id("generation"), "value": 0.9, "comment": "matches the reference"},
        "answer_match": common
        | {"value": 1.0, "string_value": "true", "data_type": "BOOLEAN", "source": "EVAL"},
        "relevance": common | {"value": 0.75},
        "verdict": common
        | {
            "value": 0.0,
            "string_value": "good",
            "data_type": "CATEGORICAL",
            "source": "ANNOTATION",
            "comment": "reviewed",
        },
        "helpful": common | {"value": 1.0, "string_value": "true", "data_type": "BOOLEAN"},
    }
    for name, row in rows.items():
        row = dict(row)
        if name in BATCH_WITHOUT_SOURCE:  # see test_batch_score_source_defaults_to_code
            row["source"] = "SDK"
        assert run.started_ms - 1000 <= row.pop("timestamp") <= run.stopped_ms, name
        assert run.started_ms - 1000 <= row.pop("ingested_at") <= run.stopped_ms, name
        assert row == expected[name] | {"name": name, "score_id": ids[name]}, name


BATCH_WITHOUT_SOURCE = ("relevance", "helpful")


def test_batch_score_source_defaults_to_code(run: Run) -> None:
    """``client.scores.batch`` passes items through; its docstring says a missing ``source``
    means ``"code"``, which the server stores as ``SDK`` (``submit`` sends it explicitly)."""
    rows = {r["name"]: r for r in run.tables["scores"]}
    assert {rows[name]["source"] for name in BATCH_WITHOUT_SOURCE} == {"SDK"}


def test_sdk_metrics_rows(run: Run) -> None:
    """The SDK's GenAI metrics (exported on flush) in Prometheus naming."""
    resource = run.spans["root"].resource.attributes
    labels = {
        "gen_ai_request_model": "gpt-4o-mini",
        "gen_ai_provider_name": "openai",
        "gen_ai_operation_name": "chat",
        "job": SERVICE,
        "instance": str(resource["service.instance.id"]),
        "otel_scope_name": "brokle",
        "otel_scope_version": run.spans["root"].instrumentation_scope.version or "",
    }
    series = {s["metric_name"]: s for s in run.tables["series"] if s["labels"].get("le") is None}
    for name, value in (
        ("gen_ai_client_input_tokens_total", 12.0),
        ("gen_ai_client_output_tokens_total", 3.0),
    ):
        row = series[name]
        assert {k: v for k, v in row.items() if k != "series_id"} == {
            "project_id": run.project_id,
            "environment": "staging",  # the exporters' X-Brokle-Environment header
            "metric_name": name,
            "labels": labels,
            "metric_type": "counter",
            "unit": "{token}",
        }
        values = {
            s["value"]
            for s in run.tables["samples"]
            if s["series_id"] == row["series_id"] and s["metric_name"] == name
        }
        assert values == {value}, name
    count = series["gen_ai_client_token_usage_count"]
    assert count["labels"] == labels and count["metric_type"] == "histogram"
    buckets = {
        s["labels"]["le"]: s
        for s in run.tables["series"]
        if s["metric_name"] == "gen_ai_client_token_usage_bucket"
    }
    assert {"8", "16", "+Inf"} <= set(buckets)
    for le, expected in (("8", 0.0), ("16", 1.0), ("+Inf", 1.0)):
        values = {
            s["value"] for s in run.tables["samples"] if s["series_id"] == buckets[le]["series_id"]
        }
        assert values == {expected}, le
    for sample in run.tables["samples"]:
        assert sample["project_id"] == run.project_id
        assert run.started_ms - 1000 <= sample["timestamp"] <= run.stopped_ms
