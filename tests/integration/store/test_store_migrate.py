"""Migrations on a real embedded chDB: apply, re-apply, status, refusal of edited files."""

from __future__ import annotations

import pytest

from brokle_server.store import Store, StoreError
from brokle_server.store.migrate import Migration, MigrationError, load_migrations, status, up

TABLES = ["events", "logs", "samples", "schema_migrations", "scores", "series", "spans",
          "trace_index", "trace_index_mv"]  # fmt: skip


def _table(name: str, sql_suffix: str = "") -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS ${{db}}.{name} (x UInt8) ENGINE = MergeTree ORDER BY x"
        + sql_suffix
    )


def test_open_creates_the_database(empty_store: Store) -> None:
    rows = empty_store.query(
        "SELECT name FROM system.databases WHERE name = {db:String}", {"db": empty_store.database}
    )
    assert rows == [(empty_store.database,)]


def test_up_applies_everything_once_and_status_reports_it(empty_store: Store) -> None:
    files = load_migrations()
    assert [s.state for s in status(empty_store)] == ["pending"] * len(files)

    assert [m.version for m in up(empty_store)] == [1, 2, 3, 4]
    assert up(empty_store) == []

    report = status(empty_store)
    assert [(s.version, s.name, s.state) for s in report] == [
        (1, "spans", "applied"),
        (2, "logs", "applied"),
        (3, "metrics", "applied"),
        (4, "scores_events", "applied"),
    ]
    assert [s.checksum for s in report] == [m.checksum for m in files]
    assert all(s.applied_at is not None for s in report)
    assert sorted(r[0] for r in empty_store.query("SHOW TABLES")) == TABLES
    assert empty_store.query("SELECT count() FROM schema_migrations") == [(4,)]


def test_an_edited_applied_migration_is_refused(empty_store: Store) -> None:
    original = Migration(1, "a", _table("a"))
    up(empty_store, [original])
    edited = Migration(1, "a", _table("a", " SETTINGS index_granularity = 1024"))
    added = Migration(2, "b", _table("b"))

    with pytest.raises(MigrationError, match="0001_a"):
        up(empty_store, [edited, added])

    assert [s.state for s in status(empty_store, [edited, added])] == ["modified", "pending"]
    assert [r[0] for r in empty_store.query("SHOW TABLES")] == ["a", "schema_migrations"]


def test_migrations_recorded_by_a_newer_release_show_as_unknown(empty_store: Store) -> None:
    first, second = Migration(1, "a", _table("a")), Migration(2, "b", _table("b"))
    up(empty_store, [first, second])
    assert [(s.version, s.state) for s in status(empty_store, [first])] == [
        (1, "applied"),
        (2, "unknown"),
    ]
    assert up(empty_store, [first]) == []


def test_a_failed_migration_is_not_recorded_and_can_be_rerun(empty_store: Store) -> None:
    broken = Migration(1, "a", _table("a") + ";\nCREATE TABLE ${db}.b (x Nonsense) ENGINE = Log;")
    with pytest.raises(StoreError):
        up(empty_store, [broken])
    assert status(empty_store, [broken])[0].state == "pending"

    fixed = Migration(1, "a", _table("a") + ";\n" + _table("b") + ";")
    assert up(empty_store, [fixed]) == [fixed]
    assert [r[0] for r in empty_store.query("SHOW TABLES")] == ["a", "b", "schema_migrations"]
