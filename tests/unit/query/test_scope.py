"""The tenant boundary: every statement carries the tenant predicate, or cannot run."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from brokle_server.query.scope import QueryScope, ScopedQuery, Sql, TenantReader

A = QueryScope("project-a")
A_STAGING = QueryScope("project-a", "staging")


def test_select_puts_the_tenant_first() -> None:
    sql = Sql(A)
    text = sql.select("spans", ["count()"], where=[f"name = {sql.bind('x', 'String')}"])
    query = sql.build(text)
    assert text.splitlines() == [
        "SELECT count()",
        "FROM spans",
        "WHERE (project_id = {pid:String}) AND (name = {p0:String})",
    ]
    assert query.params == {"pid": "project-a", "p0": "x"}


def test_bound_environment_is_enforced_per_table_shape() -> None:
    sql = Sql(A_STAGING)
    spans = sql.select("spans", ["1"], alias="s")
    index = sql.select("trace_index", ["1"])
    assert "s.project_id = {pid:String} AND s.environment = {penv:String}" in spans
    assert "project_id = {pid:String} AND has(environments, {penv:String})" in index
    assert sql.build(spans).params == {"pid": "project-a", "penv": "staging"}


def test_clauses_render_in_clickhouse_order() -> None:
    sql = Sql(A)
    text = sql.select(
        "logs",
        ["k", "count() AS n"],
        array_join="mapKeys(attributes) AS k",
        group_by=["k"],
        having=["n > 1"],
        order_by=["n DESC"],
        limit_by=(1, ["k"]),
        limit=10,
        offset=20,
    )
    assert text.splitlines()[1:] == [
        "FROM logs",
        "ARRAY JOIN mapKeys(attributes) AS k",
        "WHERE (project_id = {pid:String})",
        "GROUP BY k",
        "HAVING (n > 1)",
        "ORDER BY n DESC",
        "LIMIT 1 BY k",
        "LIMIT 10",
        "OFFSET 20",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "SELECT * FROM spans",
        "SELECT * FROM spans WHERE project_id = {pid:String} UNION ALL SELECT * FROM logs",
        "SELECT 1 FROM spans WHERE project_id = {pid:String} JOIN logs USING (trace_id)",
    ],
)
def test_statements_written_around_the_builder_are_refused(text: str) -> None:
    sql = Sql(A)
    sql.select("spans", ["1"])  # one scoped reference does not cover the others
    with pytest.raises(AssertionError):
        sql.build(text)


def test_unknown_tables_and_aliases_are_refused() -> None:
    with pytest.raises(ValueError, match="does not read"):
        Sql(A).select("users", ["1"])
    with pytest.raises(ValueError, match="alias"):
        Sql(A).select("spans", ["1"], alias="s; DROP")
    with pytest.raises(ValueError):
        QueryScope("")


def test_delete_is_scoped() -> None:
    sql = Sql(A)
    text = sql.delete("samples", [f"metric_name = {sql.bind('cpu', 'String')}"], "main")
    assert text == (
        "DELETE FROM samples ON CLUSTER `main` WHERE (project_id = {pid:String}) "
        "AND (metric_name = {p0:String})"
    )
    sql.build(text)


class _Store:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, Any]] = []

    async def aquery_dicts(self, sql: str, params: Any, settings: Any) -> list[dict[str, Any]]:
        self.calls.append((sql, params, settings))
        return []


def test_a_reader_runs_only_its_own_tenants_queries() -> None:
    store = _Store()
    reader = TenantReader(store, A)  # type: ignore[arg-type]
    sql = reader.sql()
    own = sql.build(sql.select("spans", ["1"]))
    asyncio.run(reader.rows(own))
    assert store.calls[0][2]["readonly"] == 2
    other = Sql(QueryScope("project-b"))
    foreign = other.build(other.select("spans", ["1"]))
    with pytest.raises(AssertionError):
        asyncio.run(reader.rows(foreign))
    forged = ScopedQuery(A, own.sql, {**own.params, "pid": "project-b"})
    with pytest.raises(AssertionError):
        asyncio.run(reader.rows(forged))
