"""Versioned SQL migrations of the telemetry store (``brokle migrate``).

Migrations are the files ``store/migrations/NNNN_name.sql``, applied in version order. Each
file is rendered for the configured target (single node or cluster, see
:mod:`brokle_server.store.ddl`), split into statements and run one by one. Every statement is
idempotent (``IF NOT EXISTS``), so a migration interrupted half-way is simply run again.

Applied migrations are recorded in ``<database>.schema_migrations`` with the SHA-256 of the
file text. A file changed after it was applied is refused (its tables would no longer match
it): add a new migration instead. The store has no "down": ClickHouse DDL is additive here,
and dropping telemetry tables is a decision for an operator, not a command.

Two processes migrating at once against a server is harmless: the DDL is idempotent and the
record table is a ReplacingMergeTree keyed by version.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Literal

import structlog

from brokle_server.errors import ConfigurationError
from brokle_server.store.client import Store
from brokle_server.store.ddl import Target, render, split_statements

log = structlog.get_logger("brokle.store.migrate")

_FILE_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

_RECORD_TABLE = """
CREATE TABLE IF NOT EXISTS ${db}.schema_migrations ${on_cluster}
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version
"""

State = Literal["applied", "pending", "modified", "unknown"]


class MigrationError(ConfigurationError):
    """The migration files and the store's record of them disagree."""

    code = "migration_error"


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self, target: Target) -> list[str]:
        """The file's statements rendered for ``target``."""
        return split_statements(render(self.sql, target))


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    """A migration as known to the files and to the store.

    ``state`` is ``applied`` (recorded, file unchanged), ``pending`` (not yet applied),
    ``modified`` (recorded with a different checksum than the file now has) or ``unknown``
    (recorded by a newer version of Brokle; no file here).
    """

    version: int
    name: str
    state: State
    checksum: str
    applied_at: datetime | None


def load_migrations(directory: Traversable | None = None) -> list[Migration]:
    """Read the migration files from ``directory`` (the packaged ones by default)."""
    root = (
        directory
        if directory is not None
        else resources.files("brokle_server.store") / "migrations"
    )
    migrations: list[Migration] = []
    seen: dict[int, str] = {}
    for entry in root.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.fullmatch(entry.name)
        if match is None:
            raise MigrationError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        version, name = int(match.group(1)), match.group(2)
        if version in seen:
            raise MigrationError(f"migrations {seen[version]!r} and {entry.name!r} share a version")
        seen[version] = entry.name
        migrations.append(Migration(version, name, entry.read_text(encoding="utf-8")))
    return sorted(migrations, key=lambda m: m.version)


def _ensure_record_table(store: Store) -> None:
    for statement in split_statements(render(_RECORD_TABLE, store.target)):
        store.command(statement)


def _applied(store: Store) -> dict[int, tuple[str, str, datetime]]:
    rows = store.query(
        "SELECT version, argMax(name, applied_at), argMax(checksum, applied_at), "
        "max(applied_at) FROM schema_migrations GROUP BY version ORDER BY version"
    )
    return {int(v): (str(n), str(c), at) for v, n, c, at in rows}


def status(store: Store, migrations: list[Migration] | None = None) -> list[MigrationStatus]:
    """Every migration in the files or in the store's record, in version order."""
    files = {m.version: m for m in (migrations if migrations is not None else load_migrations())}
    _ensure_record_table(store)
    applied = _applied(store)
    result: list[MigrationStatus] = []
    for version in sorted(files.keys() | applied.keys()):
        migration = files.get(version)
        record = applied.get(version)
        if migration is None:
            assert record is not None
            result.append(MigrationStatus(version, record[0], "unknown", record[1], record[2]))
        elif record is None:
            result.append(
                MigrationStatus(version, migration.name, "pending", migration.checksum, None)
            )
        else:
            state: State = "applied" if record[1] == migration.checksum else "modified"
            result.append(MigrationStatus(version, migration.name, state, record[1], record[2]))
    return result


def up(store: Store, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply the pending migrations in order; return those applied (empty when up to date).

    Raises :class:`MigrationError` before changing anything if an applied file was modified.
    """
    files = migrations if migrations is not None else load_migrations()
    states = {s.version: s for s in status(store, files)}
    modified = [s for s in states.values() if s.state == "modified"]
    if modified:
        names = ", ".join(f"{s.version:04d}_{s.name}" for s in modified)
        raise MigrationError(
            f"store migrations changed after they were applied: {names}; "
            "restore the files and add a new migration instead"
        )
    done: list[Migration] = []
    for migration in files:
        if states[migration.version].state != "pending":
            continue
        for statement in migration.statements(store.target):
            store.command(statement)
        store.insert(
            "schema_migrations",
            ("version", "name", "checksum"),
            [(migration.version, migration.name, migration.checksum)],
        )
        log.info("store migration applied", version=migration.version, name=migration.name)
        done.append(migration)
    return done


async def aup(store: Store, migrations: list[Migration] | None = None) -> list[Migration]:
    """:func:`up` in the store's worker threads."""
    return await store.run(up, store, migrations)


async def astatus(store: Store, migrations: list[Migration] | None = None) -> list[MigrationStatus]:
    """:func:`status` in the store's worker threads."""
    return await store.run(status, store, migrations)
