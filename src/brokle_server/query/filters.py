"""Filters: ``{"field", "op", "value"}`` checked against a fixed field catalog per query type,
compiled to SQL with every value (and every attribute key) bound as a parameter.

Operators: ``eq neq in contains gt gte lt lte exists``. A field is a catalog name
(``model``, ``duration``...) or a map entry: ``attributes.<key>`` / ``resource.<key>`` on
spans and logs, the dimension name itself on metrics. On a map entry ``gt``-style operators
compare numerically when the value is a number; ``exists`` tests that the key is present.

:func:`compile_filter` returns the condition in its positive form and whether the filter
negates it (``neq``, ``exists: false``). Row readers use ``NOT (cond)``; the trace, session
and user lists, which filter groups of spans, read a negated filter as "no span matches".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from brokle_server.query.errors import field_error
from brokle_server.query.scope import Sql

Op = Literal["eq", "neq", "in", "contains", "gt", "gte", "lt", "lte", "exists"]
Kind = Literal["string", "number", "array", "map"]
Scalar = str | float | int | bool
FIELD_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_.:/@-]{0,255}$"
MAX_IN_VALUES: Final = 100
MAX_VALUE_CHARS: Final = 4096
_COMPARE: Final = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class Filter(BaseModel):
    """One condition on a field."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"field": "model", "op": "eq", "value": "gpt-4o"},
                {"field": "attributes.http.route", "op": "in", "value": ["/chat", "/embed"]},
                {"field": "duration", "op": "gt", "value": 2000},
            ]
        },
    )

    field: str = Field(pattern=FIELD_PATTERN, description="A field of the query type's catalog.")
    op: Op = Field("eq", description="eq, neq, in, contains, gt, gte, lt, lte or exists.")
    value: Scalar | list[Scalar] | None = Field(
        None,
        description="A scalar; a list for 'in'; true/false (default true) for 'exists'.",
    )

    @model_validator(mode="after")
    def _shape(self) -> Self:
        value = self.value
        if self.op == "in":
            if not isinstance(value, list) or not value:
                raise ValueError("'in' takes a non-empty list of values")
            if len(value) > MAX_IN_VALUES:
                raise ValueError(f"'in' takes at most {MAX_IN_VALUES} values")
        elif self.op == "exists":
            if value is not None and not isinstance(value, bool):
                raise ValueError("'exists' takes true, false or no value")
        elif value is None or isinstance(value, list):
            raise ValueError(f"'{self.op}' takes one value")
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and (len(item) > MAX_VALUE_CHARS or "\x00" in item):
                raise ValueError(f"values are at most {MAX_VALUE_CHARS} characters, without NUL")
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError("numbers must be finite")
        return self


def equality_filters(values: Mapping[str, Scalar]) -> list[Filter]:
    """``{"host": "a"}`` (Luminate's dimension filters) as ``eq`` filters."""
    return [Filter(field=k, op="eq", value=v) for k, v in values.items()]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A filterable field: its SQL expression (column names only), kind, and level.

    ``group`` fields are aggregates of a trace/session/user (``HAVING``); ``row`` fields are
    per span or log row.
    """

    expr: str
    kind: Kind
    level: Literal["row", "group"] = "row"
    scale: float = 1.0  # the request's unit → the column's (ms → ns for durations)


@dataclass(frozen=True, slots=True)
class Catalog:
    """The fields a query type may filter on (an allow-list)."""

    name: str
    fields: Mapping[str, FieldSpec]
    maps: Mapping[str, str] = field(default_factory=dict)  # "attributes." -> column
    bare_map: str | None = None  # metrics: any dimension name is a key of this map

    def resolve(self, name: str) -> tuple[FieldSpec, str | None] | None:
        spec = self.fields.get(name)
        if spec is not None:
            return spec, None
        for prefix, column in self.maps.items():
            if name.startswith(prefix) and len(name) > len(prefix):
                return FieldSpec(column, "map"), name[len(prefix) :]
        if self.bare_map is not None:
            return FieldSpec(self.bare_map, "map"), name
        return None

    def describe(self) -> str:
        names = sorted(self.fields)
        names += [f"{p}<key>" for p in self.maps]
        return ", ".join(names)

    def check(self, filters: Sequence[Filter], path: str = "filters") -> None:
        for i, f in enumerate(filters):
            if self.resolve(f.field) is None:
                raise field_error(
                    f"{path}[{i}].field",
                    f"unknown field '{f.field}' for {self.name}; use one of: {self.describe()}",
                )


def _text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number(value: Scalar, path: str) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    try:
        number = float(value)
    except ValueError:
        raise field_error(path, f"'{value[:40]}' is not a number") from None
    if not math.isfinite(number):
        raise field_error(path, "numbers must be finite")
    return number


def compile_filter(sql: Sql, catalog: Catalog, f: Filter, path: str) -> tuple[str, bool]:
    """The positive SQL condition of ``f`` and whether it is negated; see the module doc."""
    resolved = catalog.resolve(f.field)
    if resolved is None:
        raise field_error(f"{path}.field", f"unknown field '{f.field}' for {catalog.name}")
    spec, key = resolved
    value_path = f"{path}.value"
    expr = spec.expr
    negated = f.op == "neq" or (f.op == "exists" and f.value is False)
    if spec.kind == "map":
        assert key is not None
        key_param = sql.bind(key, "String")
        if f.op == "exists":
            return f"mapContains({expr}, {key_param})", negated
        return _string_or_numeric(sql, f"{expr}[{key_param}]", f, value_path), negated
    if spec.kind == "string":
        if f.op == "exists":
            return f"{expr} != ''", negated
        return _string_condition(sql, expr, f), negated
    if spec.kind == "array":
        return _array_condition(sql, expr, f, path), negated
    return _number_condition(sql, spec, f, value_path), negated


def _string_condition(sql: Sql, expr: str, f: Filter) -> str:
    value = f.value
    if f.op == "in":
        assert isinstance(value, list)
        return f"{expr} IN {sql.bind([_text(v) for v in value], 'Array(String)')}"
    assert value is not None
    assert not isinstance(value, list)
    param = sql.bind(_text(value), "String")
    if f.op in ("eq", "neq"):
        return f"{expr} = {param}"
    if f.op == "contains":
        return f"positionCaseInsensitiveUTF8({expr}, {param}) > 0"
    return f"{expr} {_COMPARE[f.op]} {param}"


def _string_or_numeric(sql: Sql, expr: str, f: Filter, path: str) -> str:
    if f.op in _COMPARE and isinstance(f.value, int | float) and not isinstance(f.value, bool):
        number = sql.bind(_number(f.value, path), "Float64")
        return f"toFloat64OrNull({expr}) {_COMPARE[f.op]} {number}"
    return _string_condition(sql, expr, f)


def _array_condition(sql: Sql, expr: str, f: Filter, path: str) -> str:
    value = f.value
    if f.op == "exists":
        return f"notEmpty({expr})"
    if f.op == "in":
        assert isinstance(value, list)
        return f"hasAny({expr}, {sql.bind([_text(v) for v in value], 'Array(String)')})"
    assert value is not None
    assert not isinstance(value, list)
    if f.op in ("eq", "neq"):
        return f"has({expr}, {sql.bind(_text(value), 'String')})"
    if f.op == "contains":
        param = sql.bind(_text(value), "String")
        return f"arrayExists(x -> positionCaseInsensitiveUTF8(x, {param}) > 0, {expr})"
    raise field_error(
        f"{path}.op", f"'{f.op}' does not apply to a list field; use eq, in, contains"
    )


def _number_condition(sql: Sql, spec: FieldSpec, f: Filter, path: str) -> str:
    expr = spec.expr
    if f.op == "exists":
        return f"isNotNull({expr})"
    if f.op == "contains":
        raise field_error(path.removesuffix(".value") + ".op", "'contains' needs a text field")
    value = f.value
    if f.op == "in":
        assert isinstance(value, list)
        numbers = [_number(v, path) * spec.scale for v in value]
        return f"{expr} IN {sql.bind(numbers, 'Array(Float64)')}"
    assert value is not None
    assert not isinstance(value, list)
    param = sql.bind(_number(value, path) * spec.scale, "Float64")
    if f.op in ("eq", "neq"):
        return f"{expr} = {param}"
    return f"{expr} {_COMPARE[f.op]} {param}"


def row_conditions(
    sql: Sql, catalog: Catalog, filters: Sequence[Filter], path: str = "filters"
) -> list[str]:
    """Conditions for ``WHERE`` on rows (spans, logs, series)."""
    out = []
    for i, f in enumerate(filters):
        cond, negated = compile_filter(sql, catalog, f, f"{path}[{i}]")
        out.append(f"NOT ({cond})" if negated else cond)
    return out


def group_conditions(
    sql: Sql, catalog: Catalog, filters: Sequence[Filter], path: str = "filters"
) -> list[str]:
    """Conditions for ``HAVING`` on groups of spans: a row field holds when some span of the
    group matches (none, when negated); a group field is tested on the group's aggregate."""
    out = []
    for i, f in enumerate(filters):
        resolved = catalog.resolve(f.field)
        cond, negated = compile_filter(sql, catalog, f, f"{path}[{i}]")
        if resolved is not None and resolved[0].level == "group":
            out.append(f"NOT ({cond})" if negated else cond)
        else:
            out.append(f"countIf({cond}) {'= 0' if negated else '> 0'}")
    return out
