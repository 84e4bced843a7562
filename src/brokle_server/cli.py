"""The ``brokle`` command: serve, migrate, users, keys."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from brokle_server.catalog import api_keys, users
from brokle_server.catalog.audit import Actor
from brokle_server.catalog.db import Database, head_revision, migration_history
from brokle_server.catalog.models import ApiKey, Project, Scope
from brokle_server.core.clock import utcnow
from brokle_server.core.pagination import PageRequest
from brokle_server.errors import BrokleError
from brokle_server.ops.logging import configure as configure_logging
from brokle_server.pipeline.runtime import TelemetryRuntime
from brokle_server.settings import Settings
from brokle_server.store import migrate as store_migrate
from brokle_server.store.client import Store

app = typer.Typer(help="Brokle: AI gateway and LLM observability platform.", no_args_is_help=True)
migrate_app = typer.Typer(help="Apply or inspect database migrations.", no_args_is_help=True)
users_app = typer.Typer(help="Manage dashboard users.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage project API keys.", no_args_is_help=True)
app.add_typer(migrate_app, name="migrate")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")

console = Console()
err = Console(stderr=True)
CLI_ACTOR = Actor(type="system", id="cli")
T = TypeVar("T")


def _settings() -> Settings:
    return Settings().resolved()


def _run(work: Callable[[Database, Settings], Awaitable[T]]) -> T:
    """Run one catalog task with a migrated database, turning domain errors into exit 1."""
    settings = _settings()
    assert settings.database_url is not None

    async def main() -> T:
        db = Database(settings.database_url or "")
        try:
            await db.migrate()
            return await work(db, settings)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except BrokleError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (BROKLE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (BROKLE_PORT).")] = None,
) -> None:
    """Run the Brokle server (API, ingest, gateway) in this process."""
    import uvicorn

    from brokle_server.app import create_app

    settings = Settings()
    updates = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = settings.model_copy(update=updates)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )


def _with_store(work: Callable[[Store], T]) -> T:
    settings = _settings()
    with Store(settings.clickhouse_url or "", settings.store) as store:
        return work(store)


@migrate_app.command("up")
def migrate_up() -> None:
    """Apply every pending catalog and telemetry-store migration."""

    async def work(db: Database, _: Settings) -> None:
        console.print(f"catalog at revision [bold]{await db.current_revision()}[/bold]")

    _run(work)
    try:
        applied = _with_store(store_migrate.up)
    except BrokleError as exc:
        err.print(f"[red]error:[/red] telemetry store: {exc.message}")
        raise typer.Exit(1) from exc
    names = ", ".join(f"{m.version:04d}_{m.name}" for m in applied) or "nothing new"
    console.print(f"store: applied {names}")


@migrate_app.command("down")
def migrate_down(
    revision: Annotated[str, typer.Argument(help="Target revision, or -1 for one step.")] = "-1",
) -> None:
    """Revert catalog migrations down to REVISION (``base`` removes every table)."""
    settings = _settings()

    async def main() -> str | None:
        db = Database(settings.database_url or "")
        try:
            await db.migrate(revision, down=True)
            return await db.current_revision()
        finally:
            await db.dispose()

    console.print(f"catalog at revision [bold]{asyncio.run(main())}[/bold]")


@migrate_app.command("status")
def migrate_status() -> None:
    """Show the applied and the latest revision."""
    settings = _settings()

    async def main() -> str | None:
        db = Database(settings.database_url or "")
        try:
            return await db.current_revision()
        finally:
            await db.dispose()

    current = asyncio.run(main())
    table = Table("revision", "state")
    history = migration_history()
    applied = history[: history.index(current) + 1] if current in history else []
    for rev in history:
        table.add_row(rev, "applied" if rev in applied else "pending")
    console.print(table)
    state = "up to date" if current == head_revision() else "migrations pending"
    console.print(f"catalog: {current or 'empty'} ({state})")
    try:
        rows = _with_store(store_migrate.status)
    except BrokleError as exc:
        err.print(f"[red]error:[/red] telemetry store: {exc.message}")
        raise typer.Exit(1) from exc
    store_table = Table("store migration", "state", "applied at")
    for row in rows:
        store_table.add_row(
            f"{row.version:04d}_{row.name}",
            row.state,
            row.applied_at.isoformat() if row.applied_at else "-",
        )
    console.print(store_table)
    pending = sum(1 for r in rows if r.state != "applied")
    console.print(f"store: {'up to date' if not pending else f'{pending} not applied'}")


@app.command()
def worker() -> None:
    """Drain the shared Redis ingest queue into the store (run several at scale).

    In embedded mode (no BROKLE_REDIS_URL) the writers run inside `brokle serve`.
    """
    settings = _settings()
    if not settings.redis_url:
        err.print(
            "[red]error:[/red] `brokle worker` drains a shared Redis queue; set "
            "BROKLE_REDIS_URL (without it, `brokle serve` runs the writers itself)"
        )
        raise typer.Exit(2)
    if settings.clickhouse_url and settings.clickhouse_url.startswith("chdb:"):
        err.print(
            "[red]error:[/red] an embedded chDB store belongs to the `brokle serve` process; "
            "point BROKLE_CLICKHOUSE_URL at a ClickHouse server to run separate workers"
        )
        raise typer.Exit(2)
    configure_logging(settings.log_level, json=settings.log_json)
    asyncio.run(_work_until_signalled(settings))


async def _work_until_signalled(settings: Settings) -> None:
    import signal

    runtime = TelemetryRuntime(settings, run_writers=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await runtime.start()
    console.print("worker running; Ctrl-C to drain and stop")
    try:
        await stop.wait()
    finally:
        await runtime.stop()


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="Login email.")],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)
    ] = "",
) -> None:
    """Create a dashboard user."""

    async def work(db: Database, settings: Settings) -> str:
        async with db.session() as session:
            user = await users.create_user(
                session,
                email=email,
                password=password,
                name=name or email,
                min_password_length=settings.auth.min_password_length,
                actor=CLI_ACTOR,
            )
            return str(user.id)

    console.print(f"created user {email} ({_run(work)})")


async def _project(session: AsyncSession, ref: str) -> Project:
    try:
        clause = Project.id == uuid.UUID(ref)
    except ValueError:
        clause = or_(Project.slug == ref, Project.name == ref)
    found = list(await session.scalars(select(Project).where(clause).limit(2)))
    if len(found) != 1:
        what = "No project" if not found else "More than one project"
        raise BrokleError(f"{what} matches '{ref}'; pass the project id")
    return found[0]


@keys_app.command("create")
def keys_create(
    project: Annotated[str, typer.Option(help="Project id or slug.")],
    name: Annotated[str, typer.Option(help="A label for the key.")] = "cli",
    scope: Annotated[
        list[Scope] | None, typer.Option(help="Scope (repeatable); default ingest, query, gateway.")
    ] = None,
    environment: Annotated[str | None, typer.Option(help="Bind to one environment.")] = None,
    expires_in_days: Annotated[int | None, typer.Option(min=1, help="Expire after N days.")] = None,
) -> None:
    """Create a project API key and print it once."""

    async def work(db: Database, _: Settings) -> str:
        now = utcnow()
        async with db.session() as session:
            row, plaintext = await api_keys.create(
                session,
                await _project(session, project),
                name=name,
                scopes=scope,
                environment=environment,
                expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
                created_by=None,
                now=now,
                actor=CLI_ACTOR,
            )
            return f"{plaintext}\n(id {row.id}; scopes {', '.join(row.scopes)}; shown once)"

    console.print(_run(work), highlight=False)


@keys_app.command("list")
def keys_list(project: Annotated[str, typer.Option(help="Project id or slug.")]) -> None:
    """List a project's keys (previews only)."""

    async def work(db: Database, _: Settings) -> Table:
        table = Table("id", "name", "preview", "scopes", "environment", "state", "last used")
        async with db.session() as session:
            proj = await _project(session, project)
            page = await api_keys.list_for_project(session, proj.id, PageRequest(1, 200))
            now = utcnow()
            for key in page.items:
                state = (
                    "revoked"
                    if key.revoked_at
                    else "expired"
                    if key.expires_at and key.expires_at <= now
                    else "active"
                )
                table.add_row(
                    str(key.id),
                    key.name,
                    key.preview,
                    ",".join(key.scopes),
                    key.environment.name if key.environment else "-",
                    state,
                    key.last_used_at.isoformat() if key.last_used_at else "never",
                )
        return table

    console.print(_run(work))


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[uuid.UUID, typer.Argument(help="The key's id.")]) -> None:
    """Revoke a key; requests using it are refused from then on."""

    async def work(db: Database, _: Settings) -> None:
        async with db.session() as session:
            row = await session.get(ApiKey, key_id)
            if row is None:
                raise BrokleError("No API key with this id")
            proj = await session.get(Project, row.project_id)
            assert proj is not None
            await api_keys.revoke(session, proj, key_id, now=utcnow(), actor=CLI_ACTOR)

    _run(work)
    console.print(f"revoked {key_id}")


if __name__ == "__main__":
    app()
