"""Native event batches: every item type, dedup within a batch, per-item errors."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from brokle_server.core.types import ProjectScope
from brokle_server.errors import InvalidInput
from brokle_server.ingest.config import IngestSettings
from brokle_server.ingest.decode import PayloadDecodeError
from brokle_server.ingest.native import decode_native_batch
from brokle_server.store.schema import EVENT_COLUMNS, SCORE_COLUMNS, SPAN_COLUMNS

from .conftest import NOW, NOW_NS

TRACE = "0af7651916cd43dd8448eb211c80319c"
MS = 1_000_000


def batch_body(*items: dict[str, Any]) -> bytes:
    return orjson.dumps({"batch": list(items)})


def spans(rows: list[tuple[object, ...]]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in (dict(zip(SPAN_COLUMNS, row, strict=True)) for row in rows)}


def test_all_item_types(scope: ProjectScope) -> None:
    body = batch_body(
        {
            "id": "e1",
            "type": "trace",
            "timestamp": "2026-11-22T11:59:00Z",
            "body": {
                "id": TRACE,
                "name": "request",
                "user_id": "u",
                "session_id": "s",
                "tags": ["a", "b"],
                "metadata": {"tier": "pro", "n": 3},
                "input": {"q": "hi"},
                "output": "bye",
                "release": "r1",
                "end_time": "2026-11-22T11:59:02Z",
                "environment": "Prod",
            },
        },
        {
            "id": "e2",
            "type": "generation",
            "body": {
                "id": "b7ad6b7169203331",
                "trace_id": TRACE,
                "name": "llm",
                "parent_span_id": "1111111111111111",
                "start_time": NOW_NS - 1000 * MS,
                "end_time": NOW_NS - 200 * MS,
                "completion_start_time": NOW_NS - 900 * MS,
                "model": "gpt-4o",
                "provider": "openai",
                "model_parameters": {"temperature": 0.1},
                "usage": {"input_tokens": 10, "output_tokens": 5, "cached_tokens": 2},
                "cost": {"input": 0.01, "output": 0.02},
                "price_version": "p1",
                "input": [{"role": "user", "content": "hi"}],
                "output": "hello",
                "level": "ERROR",
                "status_message": "rate limited",
            },
        },
        {
            "id": "e3",
            "type": "span",
            "timestamp": NOW_NS // MS - 500,
            "body": {
                "id": "c7ad6b7169203331",
                "trace_id": TRACE,
                "name": "tool-call",
                "type": "tool",
            },
        },
        {"id": "e4", "type": "score", "body": {"trace_id": TRACE, "name": "q", "value": 0.7}},
        {
            "id": "e5",
            "type": "event",
            "body": {
                "name": "checkout",
                "source": "web",
                "trace_id": TRACE,
                "attributes": {"cart": [1, 2]},
                "body": {"total": 9.5},
            },
        },
    )
    result = decode_native_batch(body, scope, NOW, api_key_id="key-9")
    assert result.errors == []
    assert result.http_status == 200
    assert result.event_ids == ["e1", "e2", "e3", "e4", "e5"]
    assert result.response_data()["successes"] == [
        {"index": i, "id": f"e{i + 1}", "status": 201} for i in range(5)
    ]

    by_name = spans(result.spans)
    root, llm, tool = by_name["request"], by_name["llm"], by_name["tool-call"]
    assert root["trace_id"] == TRACE and len(root["span_id"]) == 16
    assert root["start_time"] == NOW_NS - 60_000 * MS and root["duration_ns"] == 2000 * MS
    assert (root["user_id"], root["session_id"], root["tags"]) == ("u", "s", ["a", "b"])
    assert (root["input"], root["output"]) == ('{"q":"hi"}', "bye")
    assert root["attributes"]["tier"] == "pro" and root["attributes"]["n"] == "3"
    assert (root["environment"], root["release"], root["api_key_id"]) == ("prod", "r1", "key-9")
    assert (llm["span_type"], llm["provider"], llm["model"]) == ("generation", "openai", "gpt-4o")
    assert (llm["input_tokens"], llm["output_tokens"], llm["total_tokens"]) == (10, 5, 15)
    assert llm["cached_tokens"] == 2
    assert llm["cost_usd"] == pytest.approx(0.03) and llm["price_version"] == "p1"
    assert llm["ttft_ms"] == 100.0
    assert llm["attributes"]["gen_ai.request.temperature"] == "0.1"
    assert json.loads(llm["input"]) == [{"role": "user", "content": "hi"}]
    assert (llm["status_code"], llm["level"], llm["status_message"]) == (
        "error",
        "ERROR",
        "rate limited",
    )
    assert llm["parent_span_id"] == "1111111111111111"
    assert tool["span_type"] == "tool" and tool["start_time"] == NOW_NS - 500 * MS

    (score,) = [dict(zip(SCORE_COLUMNS, r, strict=True)) for r in result.scores]
    assert score["trace_id"] == TRACE and score["value"] == 0.7 and score["source"] == "API"
    again = decode_native_batch(body, scope, NOW)
    assert again.scores[0][3] == score["score_id"]  # retries keep the same score id

    (event,) = [dict(zip(EVENT_COLUMNS, r, strict=True)) for r in result.events]
    assert (event["event_id"], event["type"], event["name"], event["source"]) == (
        "e5",
        "business",
        "checkout",
        "web",
    )
    assert event["attributes"] == {"cart": "[1,2]"} and event["body"] == '{"total":9.5}'
    assert event["timestamp"] == NOW_NS // MS


def test_per_item_errors_and_duplicates(scope: ProjectScope) -> None:
    good = {"id": "ok", "type": "event", "body": {"name": "x"}}
    body = batch_body(
        good,
        {"id": "ok", "type": "event", "body": {"name": "again"}},
        {"id": "t1", "type": "unknown", "body": {}},
        {
            "id": "t2",
            "type": "span",
            "body": {"trace_id": TRACE, "name": "no id", "start_time": NOW_NS},
        },
        {
            "id": "t3",
            "type": "span",
            "body": {"id": "c7ad6b7169203331", "trace_id": "bad", "start_time": NOW_NS},
        },
        {"id": "t4", "type": "span", "body": {"id": "c7ad6b7169203331", "trace_id": TRACE}},
        {
            "id": "t5",
            "type": "generation",
            "body": {
                "id": "c7ad6b7169203331",
                "trace_id": TRACE,
                "start_time": NOW_NS,
                "usage": {"input_tokens": -1},
            },
        },
        {"id": "t6", "type": "score", "body": {"trace_id": TRACE, "name": "s"}},
        {"id": "t7", "type": "event", "body": {"name": 5}},
        {"type": "event", "body": {"name": "no envelope id"}},
        {"id": "t9", "type": "trace", "body": {"id": TRACE, "timestamp": "2001-01-01T00:00:00Z"}},
        {
            "id": "t10",
            "type": "span",
            "body": {"id": "c7ad6b7169203331", "trace_id": TRACE, "start_time": "not a time"},
        },
    )
    result = decode_native_batch(body, scope, NOW)
    assert result.http_status == 207
    data = result.response_data()
    assert data["successes"] == [
        {"index": 0, "id": "ok", "status": 201},
        {
            "index": 1,
            "id": "ok",
            "status": 200,
            "message": "duplicate id in this batch; the first was kept",
        },
    ]
    errors = {e["index"]: e for e in data["errors"]}  # type: ignore[union-attr]
    assert sorted(errors) == list(range(2, 12))
    assert "type must be one of" in errors[2]["message"]
    assert errors[3]["message"] == "span id is required"
    assert "trace id" in errors[4]["message"]
    assert "start_time" in errors[5]["message"]
    assert "$.usage.input_tokens" in errors[6]["message"]
    assert "NUMERIC score" in errors[7]["message"]
    assert "$.name" in errors[8]["message"]
    assert errors[9]["id"] == "" and "id" in errors[9]["message"]
    assert "older than" in errors[10]["message"]
    assert "invalid start time" in errors[11]["message"]
    assert all(e["status"] == 400 for e in errors.values())
    assert len(result.events) == 1 and result.spans == []


def test_whole_body_errors(scope: ProjectScope) -> None:
    with pytest.raises(InvalidInput, match="batch"):
        decode_native_batch(b'{"events": []}', scope, NOW)
    with pytest.raises(PayloadDecodeError):
        decode_native_batch(b'{"batch": [', scope, NOW)
    bad_utf8 = decode_native_batch(b'{"batch": [{"id": "\xff"}]}', scope, NOW)
    assert "utf-8" in bad_utf8.errors[0].message
    with pytest.raises(InvalidInput, match="at most 1"):
        decode_native_batch(
            batch_body({}, {}), scope, NOW, settings=IngestSettings(max_batch_items=1)
        )


BIG = "9" * 30  # beyond 64 bits: orjson cannot write it back


def _with_big_ints(*items: dict[str, Any]) -> bytes:
    return batch_body(*items).replace(b'"@BIG@"', BIG.encode())


def test_integers_beyond_64_bits_are_kept_exactly(scope: ProjectScope) -> None:
    span = {"trace_id": TRACE, "start_time": NOW_NS}
    body = _with_big_ints(
        {
            "id": "s1",
            "type": "span",
            "body": {
                **span,
                "id": "c7ad6b7169203331",
                "name": "big-input",
                "input": {"n": "@BIG@", "x": 1.5},
                "output": ["@BIG@"],
                "metadata": {"list": ["@BIG@"], "n": "@BIG@"},
            },
        },
        {
            "id": "s2",
            "type": "generation",
            "body": {
                **span,
                "id": "d7ad6b7169203331",
                "name": "big-gen",
                "model_parameters": {"seed": "@BIG@", "stop": ["@BIG@"]},
                "usage": {"input_tokens": "@BIG@", "output_tokens": 5},
            },
        },
        {
            "id": "e1",
            "type": "event",
            "body": {"name": "e", "body": ["@BIG@"], "attributes": {"k": {"n": "@BIG@"}}},
        },
    )
    result = decode_native_batch(body, scope, NOW)
    assert result.errors == [] and len(result.successes) == 3
    rows = spans(result.spans)
    big = rows["big-input"]
    assert big["input"] == f'{{"n":{BIG},"x":1.5}}' and big["output"] == f"[{BIG}]"
    assert big["attributes"]["list"] == f"[{BIG}]" and big["attributes"]["n"] == BIG
    gen = rows["big-gen"]
    assert gen["attributes"]["gen_ai.request.stop"] == f"[{BIG}]"
    # A token count beyond what the UInt64 column holds is dropped, not a failed insert.
    assert (gen["input_tokens"], gen["output_tokens"]) == (0, 5)
    event = dict(zip(EVENT_COLUMNS, result.events[0], strict=True))
    assert event["body"] == f"[{BIG}]" and event["attributes"] == {"k": f'{{"n":{BIG}}}'}


def test_deeply_nested_values_are_never_an_exception(scope: ProjectScope) -> None:
    def nested(depth: int) -> bytes:
        return b"[" * depth + b"1" + b"]" * depth

    span = {"id": "c7ad6b7169203331", "trace_id": TRACE, "start_time": NOW_NS, "name": "s"}
    body = batch_body(
        {"id": "ok", "type": "span", "body": {**span, "input": "@300@"}},
        {"id": "event", "type": "event", "body": {"name": "e", "body": "@300@"}},
    )
    result = decode_native_batch(body.replace(b'"@300@"', nested(300)), scope, NOW)
    # Deeper than orjson writes (254): the stdlib encoder takes over.
    assert result.errors == []
    assert spans(result.spans)["s"]["input"] == "[" * 300 + "1" + "]" * 300
    with pytest.raises(PayloadDecodeError, match="nested too deeply"):
        decode_native_batch(body.replace(b'"@300@"', nested(5000)), scope, NOW)
    # Around the interpreter's recursion limit msgspec may read a value that the encoder
    # cannot write back: whatever the depth, the answer is a 400 or a per-item error.
    for depth in range(800, 1100, 4):
        deep = body.replace(b'"@300@"', nested(depth))
        try:
            result = decode_native_batch(deep, scope, NOW)
        except PayloadDecodeError:
            continue
        assert {e.message for e in result.errors} <= {
            "body nested too deeply",
            "JSON value nested too deeply",
        }
