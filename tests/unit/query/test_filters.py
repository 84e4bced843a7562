"""Filters compile to SQL over fixed column names with every value bound as a parameter."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from brokle_server.errors import ValidationFailed
from brokle_server.query import fields
from brokle_server.query.filters import Filter, compile_filter, group_conditions, row_conditions
from brokle_server.query.scope import QueryScope, Sql

SCOPE = QueryScope("p")


def compiled(catalog: Any, **filter_: Any) -> tuple[str, bool, dict[str, object]]:
    sql = Sql(SCOPE)
    text, negated = compile_filter(sql, catalog, Filter(**filter_), "filters[0]")
    params = dict(sql.build(sql.select("spans", ["1"], where=[text])).params)
    params.pop("pid")
    return text, negated, params


@pytest.mark.parametrize(
    ("filter_", "text", "negated", "params"),
    [
        ({"field": "model", "value": "gpt-4o"}, "model = {p0:String}", False, ["gpt-4o"]),
        ({"field": "model", "op": "neq", "value": "x"}, "model = {p0:String}", True, ["x"]),
        (
            {"field": "model", "op": "in", "value": ["a", 2]},
            "model IN {p0:Array(String)}",
            False,
            [["a", "2"]],
        ),
        (
            {"field": "model", "op": "contains", "value": "GPT"},
            "positionCaseInsensitiveUTF8(model, {p0:String}) > 0",
            False,
            ["GPT"],
        ),
        ({"field": "model", "op": "exists", "value": False}, "model != ''", True, []),
        (
            {"field": "duration", "op": "gt", "value": 2},
            "duration_ns > {p0:Float64}",
            False,
            [2_000_000.0],
        ),
        (
            {"field": "cost", "op": "in", "value": [1, 2.5]},
            "cost_usd IN {p0:Array(Float64)}",
            False,
            [[1.0, 2.5]],
        ),
        ({"field": "ttft", "op": "exists"}, "isNotNull(ttft_ms)", False, []),
        ({"field": "tags", "value": "vip"}, "has(tags, {p0:String})", False, ["vip"]),
        (
            {"field": "tags", "op": "in", "value": ["a"]},
            "hasAny(tags, {p0:Array(String)})",
            False,
            [["a"]],
        ),
        (
            {"field": "tags", "op": "contains", "value": "v"},
            "arrayExists(x -> positionCaseInsensitiveUTF8(x, {p0:String}) > 0, tags)",
            False,
            ["v"],
        ),
        (
            {"field": "attributes.http.route", "value": "/chat"},
            "attributes[{p0:String}] = {p1:String}",
            False,
            ["http.route", "/chat"],
        ),
        (
            {"field": "resource.host", "op": "exists"},
            "mapContains(resource_attributes, {p0:String})",
            False,
            ["host"],
        ),
        (
            {"field": "attributes.code", "op": "gte", "value": 500},
            "toFloat64OrNull(attributes[{p0:String}]) >= {p1:Float64}",
            False,
            ["code", 500.0],
        ),
        (
            {"field": "attributes.code", "op": "gte", "value": "500"},
            "attributes[{p0:String}] >= {p1:String}",
            False,
            ["code", "500"],
        ),
        (
            {"field": "attributes.flag", "value": True},
            "attributes[{p0:String}] = {p1:String}",
            False,
            ["flag", "true"],
        ),
    ],
)
def test_compile(filter_: dict[str, Any], text: str, negated: bool, params: list[object]) -> None:
    got_text, got_negated, got_params = compiled(fields.SPANS, **filter_)
    assert (got_text, got_negated) == (text, negated)
    assert list(got_params.values()) == params


def test_metric_filters_name_dimensions() -> None:
    text, _, params = compiled(fields.METRICS, field="host", value="a")
    assert text == "labels[{p0:String}] = {p1:String}"
    assert params == {"p0": "host", "p1": "a"}


def test_group_conditions_read_any_span_or_the_aggregate() -> None:
    sql = Sql(SCOPE)
    conditions = group_conditions(
        sql,
        fields.TRACES,
        [
            Filter(field="model", value="a"),
            Filter(field="model", op="neq", value="b"),
            Filter(field="duration", op="gte", value=1),
            Filter(field="status", value="error"),
        ],
    )
    assert conditions == [
        "countIf(model = {p0:String}) > 0",
        "countIf(model = {p1:String}) = 0",
        "g_duration_ns >= {p2:Float64}",
        "g_status = {p3:String}",
    ]
    assert row_conditions(Sql(SCOPE), fields.LOGS, [Filter(field="body", op="neq", value="x")]) == [
        "NOT (body = {p0:String})"
    ]


@pytest.mark.parametrize(
    ("catalog", "filter_", "field", "words"),
    [
        (fields.LOGS, {"field": "model", "value": "x"}, "filters[0].field", "unknown field"),
        (
            fields.SPANS,
            {"field": "duration", "op": "contains", "value": "1"},
            "filters[0].op",
            "text",
        ),
        (fields.SPANS, {"field": "tags", "op": "lt", "value": "1"}, "filters[0].op", "list"),
        (fields.SPANS, {"field": "cost", "value": "cheap"}, "filters[0].value", "not a number"),
    ],
)
def test_compile_errors_name_the_field(
    catalog: Any, filter_: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        compiled(catalog, **filter_)
    assert caught.value.details == [{"field": field, "message": caught.value.details[0]["message"]}]  # type: ignore[index]
    assert words in caught.value.message


@pytest.mark.parametrize(
    "filter_",
    [
        {"field": "model", "op": "in", "value": "x"},
        {"field": "model", "op": "in", "value": []},
        {"field": "model", "op": "exists", "value": "yes"},
        {"field": "model", "op": "eq"},
        {"field": "model", "op": "eq", "value": ["a"]},
        {"field": "model", "value": "a\x00b"},
        {"field": "model; DROP", "value": "a"},
        {"field": "model", "op": "like", "value": "a"},
        {"field": "model", "value": "a", "extra": 1},
        {"field": "cost", "op": "gt", "value": float("inf")},
    ],
)
def test_malformed_filters_are_refused(filter_: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Filter(**filter_)


_PLACEHOLDER = re.compile(r"\{p\d+:[A-Za-z0-9()]+\}")


@given(
    field=st.sampled_from([*sorted(fields.SPANS.fields), "attributes.k", "resource.k"]),
    op=st.sampled_from(["eq", "neq", "in", "contains", "gt", "gte", "lt", "lte", "exists"]),
    value=st.text(min_size=1, max_size=30).filter(lambda v: "\x00" not in v),
)
def test_values_never_reach_the_sql_text(field: str, op: str, value: str) -> None:
    marker = f"«{value}»"
    payload: Any = [marker] if op == "in" else (None if op == "exists" else marker)
    try:
        text, _, params = compiled(fields.SPANS, field=field, op=op, value=payload)
    except ValidationFailed:
        return  # e.g. contains on a number: refused before any SQL exists
    assert marker not in text
    stripped = _PLACEHOLDER.sub("", text)
    assert "«" not in stripped and "'" not in stripped.replace("''", "")
    if op != "exists" and fields.SPANS.resolve(field)[0].kind in ("string", "map", "array"):  # type: ignore[index]
        bound = [x for v in params.values() for x in (v if isinstance(v, list) else [v])]
        assert marker in bound
