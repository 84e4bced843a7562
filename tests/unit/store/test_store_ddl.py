"""Rendering of the DDL templates (single node and cluster) and statement splitting."""

from __future__ import annotations

import re

import pytest

from brokle_server.errors import ConfigurationError
from brokle_server.store.ddl import Target, render, split_statements
from brokle_server.store.migrate import load_migrations

TEMPLATE = """-- a table; with a comment
CREATE TABLE IF NOT EXISTS ${db}.t ${on_cluster}
(
    a UInt8,
    v DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(v)
ORDER BY a
SETTINGS ttl_only_drop_parts = 1, ${dedup_window};

CREATE TABLE IF NOT EXISTS ${db}.u ${on_cluster} (a UInt8) ENGINE = MergeTree ORDER BY a;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.u_mv ${on_cluster} TO ${db}.u AS SELECT a FROM ${db}.t;
"""


def test_single_node_rendering_keeps_engines_and_drops_cluster() -> None:
    assert render(TEMPLATE, Target("brokle", dedup_window=500)) == (
        """-- a table; with a comment
CREATE TABLE IF NOT EXISTS brokle.t
(
    a UInt8,
    v DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(v)
ORDER BY a
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 500;

CREATE TABLE IF NOT EXISTS brokle.u (a UInt8) ENGINE = MergeTree ORDER BY a;

CREATE MATERIALIZED VIEW IF NOT EXISTS brokle.u_mv TO brokle.u AS SELECT a FROM brokle.t;
"""
    )


def test_cluster_rendering_replicates_engines_on_cluster() -> None:
    assert render(TEMPLATE, Target("obs", cluster="main", dedup_window=500)) == (
        """-- a table; with a comment
CREATE TABLE IF NOT EXISTS obs.t ON CLUSTER `main`
(
    a UInt8,
    v DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/t', '{replica}', v)
ORDER BY a
SETTINGS ttl_only_drop_parts = 1, replicated_deduplication_window = 500;

CREATE TABLE IF NOT EXISTS obs.u ON CLUSTER `main` (a UInt8) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/u', '{replica}') ORDER BY a;

CREATE MATERIALIZED VIEW IF NOT EXISTS obs.u_mv ON CLUSTER `main` TO obs.u AS SELECT a FROM obs.t;
"""  # noqa: E501
    )


def test_cluster_rendering_leaves_replicated_engines_alone() -> None:
    sql = "CREATE TABLE x (a UInt8) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY a"
    assert render(sql, Target("db", cluster="c")) == sql


def test_every_packaged_migration_renders_for_a_cluster() -> None:
    target = Target("brokle", cluster="prod")
    creates = 0
    for migration in load_migrations():
        for statement in migration.statements(target):
            assert "${" not in statement
            assert "ON CLUSTER `prod`" in statement  # every migration statement is a CREATE
            engine = re.search(r"ENGINE = (\w+)\('([^']*)', '\{replica\}'", statement)
            if "CREATE TABLE" in statement:
                creates += 1
                assert engine is not None, statement
                assert engine.group(1).startswith("Replicated")
                table = re.search(r"CREATE TABLE IF NOT EXISTS brokle\.(\w+)", statement)
                assert table is not None
                assert engine.group(2) == f"/clickhouse/tables/{{shard}}/{{database}}/{table[1]}"
                assert "replicated_deduplication_window = 10000" in statement
                assert "non_replicated" not in statement
            else:
                assert engine is None
    assert creates == 7  # spans, trace_index, logs, series, samples, scores, events


def test_replacing_engine_keeps_its_version_column_on_a_cluster() -> None:
    (spans,) = [m for m in load_migrations() if m.name == "spans"]
    statements = spans.statements(Target("brokle", cluster="c"))
    assert (
        "ENGINE = ReplicatedReplacingMergeTree("
        "'/clickhouse/tables/{shard}/{database}/spans', '{replica}', ingested_at)"
    ) in statements[0]
    assert (
        "ENGINE = ReplicatedAggregatingMergeTree("
        "'/clickhouse/tables/{shard}/{database}/trace_index', '{replica}')"
    ) in statements[1]


def test_unknown_marker_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="unknown DDL template marker"):
        render("SELECT ${nope}", Target("db"))


@pytest.mark.parametrize("name", ["", "1db", "db-x", "db;DROP", "a b", "`x`"])
def test_bad_identifiers_are_refused(name: str) -> None:
    with pytest.raises(ConfigurationError):
        Target(name)
    with pytest.raises(ConfigurationError):
        Target("db", cluster=name)


def test_split_plain_statements() -> None:
    assert split_statements("SELECT 1; SELECT 2;\n\nSELECT 3") == [
        "SELECT 1",
        "SELECT 2",
        "SELECT 3",
    ]


def test_split_ignores_semicolons_in_quotes_and_comments() -> None:
    sql = """
    -- leading comment; not a statement
    SELECT 'a;b', "c;d", `e;f` FROM t; /* block; comment */
    SELECT 'it''s; fine', 'esc\\'; aped' -- trailing; comment
    ;
    /* only a comment; */ ;
    """
    assert split_statements(sql) == [
        "-- leading comment; not a statement\n    SELECT 'a;b', \"c;d\", `e;f` FROM t",
        "/* block; comment */\n    SELECT 'it''s; fine', 'esc\\'; aped' -- trailing; comment",
    ]


def test_split_drops_empty_and_comment_only_pieces() -> None:
    assert split_statements(";;  \n-- nothing here\n;") == []


def test_split_tolerates_unterminated_quote() -> None:
    assert split_statements("SELECT 'abc; def") == ["SELECT 'abc; def"]


def test_packaged_migrations_are_ordered_and_split() -> None:
    migrations = load_migrations()
    assert [(m.version, m.name) for m in migrations] == [
        (1, "spans"),
        (2, "logs"),
        (3, "metrics"),
        (4, "scores_events"),
    ]
    counts = [len(m.statements(Target("brokle"))) for m in migrations]
    assert counts == [3, 1, 2, 2]
