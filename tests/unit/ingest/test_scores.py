"""/v1/scores and /v1/scores/batch bodies as the brokle SDK sends them (captured from its
real ScoresManager), → score rows."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import orjson
import pytest
from brokle.config import BrokleConfig
from brokle.scorers import ExactMatch
from brokle.scores._managers import ScoresManager

from brokle_server.core.types import ProjectScope
from brokle_server.errors import ValidationFailed
from brokle_server.ingest.decode import PayloadDecodeError
from brokle_server.ingest.scores import decode_score, decode_score_batch
from brokle_server.store.schema import SCORE_COLUMNS

from .conftest import NOW, NOW_NS

TRACE = "ab" * 16


class _FakeHTTP:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def post(self, path: str, json: dict[str, Any] | None = None) -> dict[str, Any]:
        self.calls.append((path, json or {}))
        return {"success": True, "data": {"id": "stub"}}


def sdk_bodies() -> list[tuple[str, bytes]]:
    http = _FakeHTTP()
    manager = ScoresManager(http, BrokleConfig(api_key="bk_" + "k" * 40))  # type: ignore[arg-type]
    manager.submit(trace_id=TRACE, name="quality", value=0.9, reason="good", span_id="cd" * 8)
    manager.submit(trace_id=TRACE, scorer=ExactMatch(), output="a", expected="a")
    manager.batch(
        [
            {"trace_id": TRACE, "name": "relevance", "value": 1},
            {"trace_id": "nope", "name": "x", "value": 1},
        ]
    )
    return [(path, orjson.dumps(payload)) for path, payload in http.calls]


def ids() -> Any:
    counter = itertools.count(1)
    return lambda: uuid.UUID(int=next(counter))


def test_sdk_single_scores(scope: ProjectScope) -> None:
    (p1, quality), (p2, exact), _ = sdk_bodies()
    assert p1 == p2 == "/v1/scores"
    batch = decode_score(quality, scope, NOW, new_id=ids())
    row = dict(zip(SCORE_COLUMNS, batch.rows[0], strict=True))
    assert row == {
        "project_id": row["project_id"],
        "environment": "default",
        "retention_days": 30,
        "score_id": str(uuid.UUID(int=1)),
        "trace_id": TRACE,
        "span_id": "cd" * 8,
        "name": "quality",
        "value": 0.9,
        "string_value": "",
        "data_type": "NUMERIC",
        "source": "SDK",
        "comment": "good",
        "timestamp": NOW_NS // 1_000_000,
        "ingested_at": NOW_NS // 1_000_000,
    }
    reply = batch.single_response()
    assert reply["id"] == str(uuid.UUID(int=1)) and reply["source"] == "SDK"
    assert reply["timestamp"] == "2026-11-22T12:00:00+00:00"

    row = dict(zip(SCORE_COLUMNS, decode_score(exact, scope, NOW).rows[0], strict=True))
    assert (row["data_type"], row["value"], row["string_value"]) == ("BOOLEAN", 1.0, "true")


def test_sdk_batch_with_a_bad_item(scope: ProjectScope) -> None:
    path, body = sdk_bodies()[2]
    assert path == "/v1/scores/batch"
    batch = decode_score_batch(body, scope, NOW, new_id=ids())
    assert len(batch.rows) == 1
    assert batch.batch_response() == {
        "created": 1,
        "failed": 1,
        "scores": [{"id": str(uuid.UUID(int=1)), "index": 0}],
        "errors": [
            {
                "index": 1,
                "id": "",
                "status": 400,
                "message": "invalid score: trace_id must be a 32-character hex trace id",
            }
        ],
    }


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"type": "CATEGORICAL", "string_value": "good", "source": "human"},
            ("CATEGORICAL", 0.0, "good", "ANNOTATION"),
        ),
        ({"value": 0.5, "data_type": "numeric", "source": "llm"}, ("NUMERIC", 0.5, "", "EVAL")),
        ({"value": False, "type": "BOOLEAN"}, ("BOOLEAN", 0.0, "false", "SDK")),
        ({"value": "true", "type": "BOOLEAN", "source": "EVAL"}, ("BOOLEAN", 1.0, "true", "EVAL")),
    ],
)
def test_types_and_sources(
    scope: ProjectScope, payload: dict[str, Any], expected: tuple[object, ...]
) -> None:
    body = orjson.dumps({"trace_id": TRACE, "name": "s", **payload})
    row = dict(zip(SCORE_COLUMNS, decode_score(body, scope, NOW).rows[0], strict=True))
    assert (row["data_type"], row["value"], row["string_value"], row["source"]) == expected


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"name": "s", "value": 1}, "trace_id"),
        ({"trace_id": TRACE, "value": 1}, "name"),
        ({"trace_id": TRACE, "name": "s", "value": "high"}, "finite number"),
        ({"trace_id": TRACE, "name": "s", "value": 1, "type": "STARS"}, "NUMERIC, CATEGORICAL"),
        ({"trace_id": TRACE, "name": "s", "value": 2, "type": "BOOLEAN"}, "true/false"),
        ({"trace_id": TRACE, "name": "s", "type": "CATEGORICAL"}, "string_value"),
        ({"trace_id": TRACE, "name": "s", "value": 1, "source": "robot"}, "source"),
        ({"trace_id": TRACE, "name": "s", "value": 1, "span_id": "xyz"}, "span_id"),
        ({"trace_id": TRACE, "name": "s", "value": 1, "timestamp": "2020-01-01"}, "older"),
        ({"trace_id": TRACE, "name": "", "value": 1}, "name must be"),
    ],
)
def test_invalid_scores(scope: ProjectScope, payload: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        decode_score(orjson.dumps(payload), scope, NOW)


def test_bound_environment_and_client_ids(bound_scope: ProjectScope) -> None:
    body = orjson.dumps(
        {"trace_id": TRACE, "name": "s", "value": 1, "id": "client-1", "environment": "prod"}
    )
    row = dict(zip(SCORE_COLUMNS, decode_score(body, bound_scope, NOW).rows[0], strict=True))
    assert (row["environment"], row["score_id"]) == ("staging", "client-1")


def test_malformed_json(scope: ProjectScope) -> None:
    with pytest.raises(PayloadDecodeError):
        decode_score(b"{", scope, NOW)
    with pytest.raises(PayloadDecodeError):
        decode_score(b'{"trace_id": "\xff"}', scope, NOW)
    with pytest.raises(ValidationFailed):
        decode_score_batch(b'{"scores": 1}', scope, NOW)


HUGE = "9" * 400  # valid JSON; msgspec keeps it as an int, beyond the range of a float


def test_values_beyond_float_range(scope: ProjectScope) -> None:
    numeric = f'{{"trace_id": "{TRACE}", "name": "q", "value": {HUGE}}}'
    with pytest.raises(ValidationFailed, match="finite number"):
        decode_score(numeric.encode(), scope, NOW)
    for value in (f"-{HUGE}", "1e400"):
        with pytest.raises((ValidationFailed, PayloadDecodeError)):
            decode_score(numeric.replace(HUGE, value).encode(), scope, NOW)
    categorical = (
        f'{{"trace_id": "{TRACE}", "name": "c", "value": {HUGE}, "type": "CATEGORICAL", '
        '"string_value": "good"}'
    )
    boolean = f'{{"trace_id": "{TRACE}", "name": "b", "value": {HUGE}, "type": "BOOLEAN"}}'
    ok = f'{{"trace_id": "{TRACE}", "name": "ok", "value": 1}}'
    body = f'{{"scores": [{numeric}, {categorical}, {boolean}, {ok}]}}'.encode()
    batch = decode_score_batch(body, scope, NOW)
    assert [(e.index, e.message) for e in batch.errors] == [
        (0, "invalid score: a NUMERIC score needs a finite number in value"),
        (2, "invalid score: a BOOLEAN score needs value true/false or 1/0"),
    ]
    rows = [dict(zip(SCORE_COLUMNS, r, strict=True)) for r in batch.rows]
    assert [(r["name"], r["value"], r["string_value"]) for r in rows] == [
        ("c", 0.0, "good"),
        ("ok", 1.0, ""),
    ]


def test_metadata_nested_too_deeply(scope: ProjectScope) -> None:
    deep = "[" * 5000 + "]" * 5000
    single = f'{{"trace_id": "{TRACE}", "name": "q", "value": 1, "metadata": {{"d": {deep}}}}}'
    with pytest.raises(PayloadDecodeError, match="nested too deeply"):
        decode_score(single.encode(), scope, NOW)
    with pytest.raises(PayloadDecodeError, match="nested too deeply"):
        decode_score_batch(f'{{"scores": [{single}]}}'.encode(), scope, NOW)
