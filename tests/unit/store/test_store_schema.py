"""The row contract: column tuples agree with the DDL, and series ids are stable."""

from __future__ import annotations

import re

import pytest

from brokle_server.store import schema
from brokle_server.store.ddl import Target
from brokle_server.store.migrate import load_migrations


def _declared_columns() -> dict[str, list[str]]:
    """Column names declared by each CREATE TABLE of the packaged migrations, in order."""
    tables: dict[str, list[str]] = {}
    for migration in load_migrations():
        for statement in migration.statements(Target("brokle")):
            match = re.search(r"CREATE TABLE IF NOT EXISTS brokle\.(\w+)", statement)
            if match is None:
                continue
            start = statement.index("\n(", match.end()) + 2
            body = statement[start : statement.index("\n)", start)]
            tables[match[1]] = [
                line.split()[0]
                for line in body.splitlines()
                if line.strip() and not line.strip().startswith(("INDEX", "--"))
            ]
    return tables


@pytest.mark.parametrize("table", sorted(schema.COLUMNS_BY_TABLE))
def test_every_contract_column_exists_in_the_table(table: str) -> None:
    declared = _declared_columns()[table]
    columns = schema.COLUMNS_BY_TABLE[table]
    assert len(set(columns)) == len(columns)
    assert set(columns) <= set(declared)
    # The contract covers every column: none is silently left to its DDL default.
    assert set(declared) - set(columns) == set()


@pytest.mark.parametrize("columns", list(schema.COLUMNS_BY_TABLE.values()))
def test_tenant_columns_lead_every_row(columns: tuple[str, ...]) -> None:
    assert columns[:3] == ("project_id", "environment", "retention_days")


def test_series_id_is_stable_and_label_order_free() -> None:
    a = schema.series_id("http_requests_total", {"method": "GET", "code": "200"})
    b = schema.series_id("http_requests_total", {"code": "200", "method": "GET"})
    assert a == b
    # Pinned so a change of hash (which would split every series in two) fails loudly.
    assert a == schema.series_id("http_requests_total", dict([("code", "200"), ("method", "GET")]))
    assert schema.series_id("up", {}) == 15945546584666507167
    assert 0 <= a < 2**64


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (("m", {"a": "b"}), ("m", {"a": "c"})),
        (("m", {"a": "b"}), ("n", {"a": "b"})),
        (("m", {"ab": "c"}), ("m", {"a": "bc"})),
        (("m", {"a": "b", "c": "d"}), ("m", {"a": "b"})),
        (("m", {}), ("m", {"": ""})),
    ],
)
def test_series_id_separates_label_sets(
    left: tuple[str, dict[str, str]], right: tuple[str, dict[str, str]]
) -> None:
    assert schema.series_id(*left) != schema.series_id(*right)
