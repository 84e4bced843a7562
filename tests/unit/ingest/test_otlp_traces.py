"""OTLP traces → span rows: protobuf from the OTel SDK's own encoder, OTLP/JSON in the spec
form (hex ids), protobuf's JSON mapping (base64 ids), GenAI and brokle SDK attributes."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from brokle.types.attributes import BrokleOtelSpanAttributes as Attrs
from google.protobuf.json_format import MessageToDict
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.trace import SpanKind, Status, StatusCode

from brokle_server.core.types import ProjectScope
from brokle_server.ingest.config import IngestSettings
from brokle_server.ingest.decode import PayloadDecodeError
from brokle_server.ingest.otlp_traces import decode_traces_json, decode_traces_protobuf
from brokle_server.store.schema import SPAN_COLUMNS

from .conftest import NOW, NOW_NS, PROJECT_ID, SpanRecorder

MS = 1_000_000


def as_dicts(rows: list[tuple[object, ...]]) -> list[dict[str, Any]]:
    return [dict(zip(SPAN_COLUMNS, row, strict=True)) for row in rows]


def emit(rec: SpanRecorder, name: str, attrs: dict[str, Any], **kw: Any) -> None:
    start = kw.pop("start", NOW_NS - 2000 * MS)
    end = kw.pop("end", start + 1500 * MS)
    span = rec.tracer.start_span(name, start_time=start, attributes=attrs, **kw)
    span.end(end_time=end)


def to_spec_json(body: bytes, *, hex_ids: bool = True) -> bytes:
    """Protobuf JSON mapping; with hex_ids, rewritten to the OTLP/JSON spec form."""
    doc = MessageToDict(ExportTraceServiceRequest.FromString(body), use_integers_for_enums=True)
    if hex_ids:
        for rs in doc["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in span:
                            span[key] = base64.b64decode(span[key]).hex().upper()
    return orjson.dumps(doc)


def test_sdk_protobuf_round_trip(
    recorder: Callable[..., SpanRecorder], scope: ProjectScope
) -> None:
    rec = recorder({"service.name": "checkout", "service.version": "2.0"})
    parent = rec.tracer.start_span("parent", start_time=NOW_NS - 5000 * MS, kind=SpanKind.SERVER)
    with trace.use_span(parent):
        emit(
            rec,
            "child",
            {
                "http.status_code": 500,
                "ok": False,
                "ratio": 0.25,
                "list": ["a", "b"],
                "ints": [1, 2],
            },
            kind=SpanKind.CLIENT,
        )
    parent.set_status(Status(StatusCode.ERROR, "boom"))
    parent.add_event("retry", {"attempt": 2}, timestamp=NOW_NS - 4000 * MS)
    parent.end(end_time=NOW_NS - 1000 * MS)

    batch = decode_traces_protobuf(rec.body(), scope, NOW, api_key_id="key-1")

    assert batch.rejected.count == 0
    child, root = as_dicts(batch.rows)
    assert root["project_id"] == str(PROJECT_ID)
    assert root["environment"] == "default"
    assert root["retention_days"] == 30
    assert root["trace_id"] == format(parent.get_span_context().trace_id, "032x")
    assert root["span_id"] == format(parent.get_span_context().span_id, "016x")
    assert root["parent_span_id"] == ""
    assert child["parent_span_id"] == root["span_id"]
    assert (root["kind"], child["kind"]) == ("server", "client")
    assert root["start_time"] == NOW_NS - 5000 * MS
    assert root["duration_ns"] == 4000 * MS
    assert (root["status_code"], root["status_message"], root["level"]) == (
        "error",
        "boom",
        "ERROR",
    )
    assert root["event_names"] == ["retry"]
    assert root["event_times"] == [NOW_NS - 4000 * MS]
    assert root["event_attributes"] == [{"attempt": "2"}]
    assert root["service_name"] == "checkout"
    assert (root["scope_name"], root["scope_version"]) == ("test.scope", "1.2.3")
    assert root["resource_attributes"]["service.version"] == "2.0"
    assert root["api_key_id"] == "key-1"
    assert root["ingested_at"] == NOW_NS // MS
    assert child["attributes"] == {
        "http.status_code": "500",
        "ok": "false",
        "ratio": "0.25",
        "list": '["a","b"]',
        "ints": "[1,2]",
    }
    assert child["span_type"] == "span" and child["level"] == "DEFAULT"
    assert child["ttft_ms"] is None


def test_json_spec_form_equals_protobuf(
    recorder: Callable[..., SpanRecorder], scope: ProjectScope
) -> None:
    rec = recorder({"service.name": "svc"})
    parent = rec.tracer.start_span("root", start_time=NOW_NS - 3000 * MS)
    with trace.use_span(parent):
        emit(
            rec,
            "gen",
            {
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 7,
                "blob": b"\x00\x01".decode("latin-1"),
            },
        )
    parent.add_event("e", {"k": [1.5, True]}, timestamp=NOW_NS - 2500 * MS)
    parent.add_link(parent.get_span_context(), {"l": 1})
    parent.end(end_time=NOW_NS)
    body = rec.body()

    from_pb = decode_traces_protobuf(body, scope, NOW).rows
    from_hex_json = decode_traces_json(to_spec_json(body), scope, NOW).rows
    from_b64_json = decode_traces_json(to_spec_json(body, hex_ids=False), scope, NOW).rows

    assert from_hex_json == from_pb
    assert from_b64_json == from_pb
    root = as_dicts(from_pb)[1]
    assert root["link_trace_ids"] == [root["trace_id"]]
    assert root["link_span_ids"] == [root["span_id"]]


def test_json_snake_case_keys_and_enum_names(scope: ProjectScope) -> None:
    doc = {
        "resource_spans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"string_value": "s"}}]
                },
                "scope_spans": [
                    {
                        "scope": {"name": "sc"},
                        "spans": [
                            {
                                "trace_id": "5B8EFFF798038103D269B633813FC60C",
                                "span_id": "EEE19B7EC3C1B174",
                                "name": "op",
                                "kind": "SPAN_KIND_CONSUMER",
                                "start_time_unix_nano": NOW_NS - 10 * MS,
                                "end_time_unix_nano": str(NOW_NS - 5 * MS),
                                "attributes": [
                                    {"key": "n", "value": {"int_value": "9007199254740993"}},
                                    {"key": "d", "value": {"doubleValue": "NaN"}},
                                    {"key": "b", "value": {"bytesValue": "AAE="}},
                                    {
                                        "key": "kv",
                                        "value": {
                                            "kvlistValue": {
                                                "values": [
                                                    {"key": "x", "value": {"boolValue": True}}
                                                ]
                                            }
                                        },
                                    },
                                ],
                                "status": {"code": 1},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    batch = decode_traces_json(orjson.dumps(doc), scope, NOW)
    (span,) = as_dicts(batch.rows)
    assert span["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert span["span_id"] == "eee19b7ec3c1b174"
    assert span["kind"] == "consumer" and span["status_code"] == "ok"
    assert span["duration_ns"] == 5 * MS
    assert span["service_name"] == "s"
    assert span["attributes"] == {
        "n": "9007199254740993",
        "d": "nan",
        "b": "AAE=",
        "kv": '{"x":true}',
    }


def test_genai_semconv_promotion_removes_prompt_text(
    recorder: Callable[..., SpanRecorder], scope: ProjectScope
) -> None:
    rec = recorder()
    messages = json.dumps([{"role": "user", "content": "hello"}])
    emit(
        rec,
        "chat gpt-4o",
        {
            "gen_ai.system": "openai",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.prompt_tokens": 100,
            "gen_ai.usage.completion_tokens": 20,
            "gen_ai.usage.cache_read.input_tokens": 40,
            "gen_ai.usage.cache_creation.input_tokens": 5,
            "gen_ai.usage.reasoning.output_tokens": 8,
            "gen_ai.input.messages": messages,
            "input.value": "kept, not promoted",
            "gen_ai.completion": "hi there",
            "gen_ai.server.time_to_first_token": 0.25,
        },
    )
    (span,) = as_dicts(decode_traces_protobuf(rec.body(), scope, NOW).rows)
    assert (span["provider"], span["model"], span["operation"]) == (
        "openai",
        "gpt-4o-2024-08-06",
        "chat",
    )
    assert (span["input_tokens"], span["output_tokens"], span["total_tokens"]) == (100, 20, 120)
    assert (span["cached_tokens"], span["cache_write_tokens"], span["reasoning_tokens"]) == (
        40,
        5,
        8,
    )
    assert span["ttft_ms"] == 250.0
    assert span["input"] == messages and span["output"] == "hi there"
    assert "gen_ai.input.messages" not in span["attributes"]
    assert "gen_ai.completion" not in span["attributes"]
    assert span["attributes"]["input.value"] == "kept, not promoted"
    assert span["span_type"] == "generation"


def test_brokle_sdk_attributes(recorder: Callable[..., SpanRecorder], scope: ProjectScope) -> None:
    rec = recorder({Attrs.BROKLE_RELEASE: "v9", Attrs.BROKLE_VERSION: "res-version"})
    emit(
        rec,
        "llm",
        {
            Attrs.BROKLE_SPAN_TYPE: "generation",
            Attrs.BROKLE_SPAN_LEVEL: "warning",
            Attrs.BROKLE_ENVIRONMENT: "Production",
            Attrs.BROKLE_VERSION: "exp-A",
            Attrs.GEN_AI_PROVIDER_NAME: "anthropic",
            Attrs.GEN_AI_REQUEST_MODEL: "claude-3-5-sonnet",
            Attrs.GEN_AI_USAGE_INPUT_TOKENS: 11,
            Attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 4,
            Attrs.BROKLE_USAGE_TOTAL_TOKENS: 16,
            Attrs.GEN_AI_USAGE_INPUT_TOKENS_CACHE_READ: 3,
            Attrs.GEN_AI_USAGE_INPUT_TOKENS_CACHE_CREATION: 2,
            Attrs.GEN_AI_USAGE_REASONING_TOKENS: 1,
            Attrs.GEN_AI_RESPONSE_TTFT: 123.5,
            Attrs.GEN_AI_INPUT_MESSAGES: '[{"role":"user","content":"q"}]',
            Attrs.GEN_AI_OUTPUT_MESSAGES: '[{"role":"assistant","content":"a"}]',
            Attrs.USER_ID: "user-7",
            Attrs.SESSION_ID: "sess-3",
            Attrs.BROKLE_TRACE_TAGS: json.dumps(["beta", "eu"]),
            Attrs.BROKLE_SPAN_NAME: "renamed",
            "brokle.cost.input": 0.001,
            "brokle.cost.output": 0.002,
            "brokle.cost.price_version": "2026-11-01",
        },
    )
    (span,) = as_dicts(decode_traces_protobuf(rec.body(), scope, NOW).rows)
    assert span["environment"] == "production"
    assert (span["span_type"], span["level"], span["name"]) == ("generation", "WARNING", "renamed")
    assert (span["provider"], span["model"]) == ("anthropic", "claude-3-5-sonnet")
    assert (span["input_tokens"], span["output_tokens"], span["total_tokens"]) == (11, 4, 16)
    assert (span["cached_tokens"], span["cache_write_tokens"], span["reasoning_tokens"]) == (
        3,
        2,
        1,
    )
    assert span["ttft_ms"] == 123.5
    assert span["cost_usd"] == pytest.approx(0.003)
    assert (span["input_cost_usd"], span["output_cost_usd"]) == (0.001, 0.002)
    assert span["price_version"] == "2026-11-01"
    assert (span["user_id"], span["session_id"], span["tags"]) == (
        "user-7",
        "sess-3",
        ["beta", "eu"],
    )
    assert (span["release"], span["version"]) == ("v9", "exp-A")
    assert span["input"] == '[{"role":"user","content":"q"}]'
    assert span["output"] == '[{"role":"assistant","content":"a"}]'
    assert Attrs.GEN_AI_INPUT_MESSAGES not in span["attributes"]
    assert Attrs.GEN_AI_OUTPUT_MESSAGES not in span["attributes"]


def test_openllmetry_indexed_prompts_and_legacy_events(
    recorder: Callable[..., SpanRecorder], scope: ProjectScope
) -> None:
    rec = recorder()
    emit(
        rec,
        "a",
        {
            "gen_ai.system": "openai",
            "gen_ai.prompt.0.role": "system",
            "gen_ai.prompt.0.content": "be brief",
            "gen_ai.prompt.1.role": "user",
            "gen_ai.prompt.1.content": "hi",
        },
    )
    span = rec.tracer.start_span(
        "b", start_time=NOW_NS - 10 * MS, attributes={"gen_ai.system": "x"}
    )
    span.add_event("gen_ai.content.prompt", {"gen_ai.prompt": "p"}, timestamp=NOW_NS - 9 * MS)
    span.add_event("gen_ai.content.completion", {"gen_ai.completion": "c"}, timestamp=NOW_NS - MS)
    span.end(end_time=NOW_NS)
    a, b = as_dicts(decode_traces_protobuf(rec.body(), scope, NOW).rows)
    assert json.loads(a["input"]) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert not any(k.startswith("gen_ai.prompt.") for k in a["attributes"])
    assert (b["input"], b["output"]) == ("p", "c")
    assert b["event_attributes"] == [{}, {}]


@pytest.mark.parametrize(
    ("bound", "span_env", "resource", "fallback", "expected"),
    [
        ("staging", "prod", {"deployment.environment.name": "qa"}, "dev", "staging"),
        (None, "Prod", {"deployment.environment.name": "qa"}, "dev", "prod"),
        (None, None, {"deployment.environment.name": "QA"}, "dev", "qa"),
        (None, None, {"deployment.environment": "old-style"}, "dev", "old-style"),
        (None, None, {}, "Dev", "dev"),
        (None, None, {}, None, "default"),
        (None, "not valid!", {"deployment.environment": "x" * 41}, "ok_1", "ok_1"),
        (None, "not valid!", {}, None, "default"),
    ],
)
def test_environment_precedence(
    recorder: Callable[..., SpanRecorder],
    bound: str | None,
    span_env: str | None,
    resource: dict[str, str],
    fallback: str | None,
    expected: str,
) -> None:
    rec = recorder(resource)
    emit(rec, "s", {"brokle.environment": span_env} if span_env else {})
    tenant = ProjectScope(PROJECT_ID, PROJECT_ID, bound, 30)
    batch = decode_traces_protobuf(rec.body(), tenant, NOW, fallback_environment=fallback)
    (span,) = as_dicts(batch.rows)
    assert span["environment"] == expected
    if span_env:
        assert span["attributes"]["brokle.environment"] == span_env


def test_time_window_rejects_and_clamps(
    recorder: Callable[..., SpanRecorder], scope: ProjectScope
) -> None:
    rec = recorder()
    day = 86_400 * 1000 * MS
    emit(rec, "old", {}, start=NOW_NS - 31 * day, end=NOW_NS - 31 * day + MS)
    emit(rec, "future", {}, start=NOW_NS + 2 * 3600 * 1000 * MS, end=NOW_NS + 3 * 3600 * 1000 * MS)
    emit(rec, "edge", {}, start=NOW_NS + 3599 * 1000 * MS, end=NOW_NS + 3599 * 1000 * MS)
    emit(rec, "endless", {}, start=NOW_NS - MS, end=2**63 - 1)
    emit(rec, "backwards", {}, start=NOW_NS - MS, end=NOW_NS - 2 * MS)
    batch = decode_traces_protobuf(rec.body(), scope, NOW)
    rows = {r["name"]: r for r in as_dicts(batch.rows)}
    assert set(rows) == {"edge", "endless", "backwards"}
    assert rows["endless"]["end_time"] == NOW_NS + 3600 * 1000 * MS
    assert rows["backwards"]["duration_ns"] == 0
    assert batch.rejected.count == 2
    assert batch.rejected.reasons == {
        "timestamp older than the project's retention period": 1,
        "timestamp more than 3600s in the future": 1,
    }
    assert "rejected 2 spans" in batch.rejected.message("spans")


def test_huge_attribute_span_is_capped(scope: ProjectScope) -> None:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x01" * 16, b"\x02" * 8, "big"
    span.start_time_unix_nano = span.end_time_unix_nano = NOW_NS
    for i in range(10_000):
        kv = span.attributes.add()
        kv.key, kv.value.string_value = f"k{i}", "v"
    long = span.attributes.add()
    long.key, long.value.string_value = "long", "x" * 100_000
    prompt = span.attributes.add()
    prompt.key, prompt.value.string_value = "input.value", "p" * 100_000
    for i in range(1000):
        span.events.add(time_unix_nano=NOW_NS, name=f"e{i}")
    span.dropped_attributes_count = 5
    settings = IngestSettings(
        max_attributes=100, max_attribute_value_chars=1000, max_io_chars=50_000, max_span_events=10
    )

    batch = decode_traces_protobuf(request.SerializeToString(), scope, NOW, settings=settings)
    (row,) = as_dicts(batch.rows)
    assert len(row["attributes"]) == 100 + 2  # kept + the two counters
    assert row["attributes"]["brokle.dropped_attributes_count"] == str(10_002 - 100 + 5)
    assert len(row["event_names"]) == 10
    assert row["attributes"]["brokle.dropped_events_count"] == "990"

    del span.attributes[:10_000]  # now: "long" and "input.value" only
    small = IngestSettings(max_attribute_value_chars=1000, max_io_chars=50_000)
    body = request.SerializeToString()
    (row,) = as_dicts(decode_traces_protobuf(body, scope, NOW, settings=small).rows)
    assert len(row["attributes"]["long"]) == 1000
    assert row["attributes"]["brokle.truncated_attributes_count"] == "1"
    assert len(row["input"]) == 50_000 and "input.value" not in row["attributes"]

    # A prompt key that is not promoted (another one won) is cut like any value; an
    # attribute whose key is too long is dropped and counted.
    winner = span.attributes.add()
    winner.key, winner.value.string_value = "gen_ai.input.messages", "[]"
    odd = span.attributes.add()
    odd.key, odd.value.string_value = "k" * 300, "v"
    body = request.SerializeToString()
    (row,) = as_dicts(decode_traces_protobuf(body, scope, NOW, settings=small).rows)
    assert row["input"] == "[]"
    assert len(row["attributes"]["input.value"]) == 1000
    assert row["attributes"]["brokle.truncated_attributes_count"] == "2"
    assert row["attributes"]["brokle.dropped_attributes_count"] == "6"  # 5 sent + 1 long key
    assert "k" * 300 not in row["attributes"]


def test_invalid_ids_are_rejected_per_span(scope: ProjectScope) -> None:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for trace_id, span_id in [
        (b"\x00" * 16, b"\x01" * 8),
        (b"\x01" * 15, b"\x01" * 8),
        (b"\x01" * 16, b""),
        (b"\x01" * 16, b"\x02" * 8),
    ]:
        span = spans.add(trace_id=trace_id, span_id=span_id, name="s")
        span.start_time_unix_nano = NOW_NS
    batch = decode_traces_protobuf(request.SerializeToString(), scope, NOW)
    assert len(batch.rows) == 1
    assert batch.rejected.count == 3


def test_non_utf8_and_malformed_protobuf_are_clean_decode_errors(scope: ProjectScope) -> None:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.name = "ok"
    raw = request.SerializeToString().replace(b"ok", b"\xff\xfe")
    with pytest.raises(PayloadDecodeError, match="UTF-8"):
        decode_traces_protobuf(raw, scope, NOW)
    with pytest.raises(PayloadDecodeError):
        decode_traces_protobuf(b"\x0a\xff\xff\xff\xff", scope, NOW)
    with pytest.raises(PayloadDecodeError):
        decode_traces_json(b'{"resourceSpans": [{"x": "\xff"}]}', scope, NOW)
    with pytest.raises(PayloadDecodeError):
        decode_traces_json(b"[1, 2]", scope, NOW)
    with pytest.raises(PayloadDecodeError):
        decode_traces_json(b'{"resourceSpans": 5}', scope, NOW)
    assert PayloadDecodeError.code == "invalid_payload"


def test_json_span_with_wrong_types_is_rejected_alone(scope: ProjectScope) -> None:
    good = {
        "traceId": "01" * 16,
        "spanId": "02" * 8,
        "name": "ok",
        "startTimeUnixNano": str(NOW_NS),
    }
    bad = {**good, "startTimeUnixNano": {"no": 1}}
    deep: dict[str, Any] = {"stringValue": "x"}
    for _ in range(60):  # orjson itself refuses to nest deeper than 255
        deep = {"arrayValue": {"values": [deep]}}
    nested = {**good, "attributes": [{"key": "deep", "value": deep}]}
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [good, bad, "nope", nested]}]}]}
    batch = decode_traces_json(orjson.dumps(doc), scope, NOW)
    assert len(batch.rows) == 2
    assert batch.rejected.count == 2
    assert "[nested too deep]" in as_dicts(batch.rows)[1]["attributes"]["deep"]


def test_empty_request_is_success(scope: ProjectScope) -> None:
    assert decode_traces_protobuf(b"", scope, NOW).rows == []
    assert decode_traces_json(b"{}", scope, NOW).rows == []


def test_json_integers_beyond_64_bits_inside_arrays_and_kvlists(scope: ProjectScope) -> None:
    big = "9" * 30  # an OTLP/JSON intValue is decimal text; int() reads it exactly
    values = [{"intValue": big}, {"doubleValue": "NaN"}, {"stringValue": "é"}]
    span = {
        "traceId": "01" * 16,
        "spanId": "02" * 8,
        "startTimeUnixNano": str(NOW_NS),
        "attributes": [
            {"key": "int", "value": {"intValue": big}},
            {"key": "list", "value": {"arrayValue": {"values": values}}},
            {
                "key": "map",
                "value": {"kvlistValue": {"values": [{"key": "n", "value": {"intValue": big}}]}},
            },
        ],
    }
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    batch = decode_traces_json(orjson.dumps(doc), scope, NOW)
    assert batch.rejected.count == 0
    attrs = as_dicts(batch.rows)[0]["attributes"]
    assert attrs["int"] == big
    assert attrs["list"] == f'[{big},null,"é"]'
    assert attrs["map"] == f'{{"n":{big}}}'
