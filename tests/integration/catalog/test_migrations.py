"""Every catalog migration runs up and down on SQLite and PostgreSQL, and the models match."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from brokle_server.catalog import gateway_models  # noqa: F401  (registers its tables)
from brokle_server.catalog.db import Database, head_revision, migration_history
from brokle_server.catalog.models import Base

TABLES = {
    "users",
    "sessions",
    "organizations",
    "memberships",
    "invitations",
    "projects",
    "environments",
    "api_keys",
    "audit_log",
    "provider_credentials",
    "gateway_routes",
    "budgets",
    "gateway_limits",
    "price_overrides",
}


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names()) - {"alembic_version"}


def _diff(conn: Connection) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_each_step_up_and_down(database_url: str) -> None:
    db = Database(database_url)
    try:
        history = migration_history()
        for revision in history:
            await db.migrate(revision)
            assert await db.current_revision() == revision
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_tables) == TABLES
            assert await conn.run_sync(_diff) == []  # models and migrations agree
        for previous in reversed(["base", *history[:-1]]):
            await db.migrate(previous, down=True)
            assert await db.current_revision() == (None if previous == "base" else previous)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_tables) == set()
        await db.migrate()
        await db.migrate()  # idempotent at head
        assert await db.current_revision() == head_revision()
    finally:
        await db.dispose()
