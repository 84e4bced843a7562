"""The ``brokle`` command against a real catalog (SQLite in a temp data dir)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brokle_server.cli import app

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # no stray .env from the working directory
    return {"BROKLE_DATA_DIR": str(tmp_path / "data"), "BROKLE_LOG_LEVEL": "warning"}


def invoke(env: dict[str, str], *args: str, input: str | None = None) -> str:
    result = runner.invoke(app, list(args), env=env, input=input)
    assert result.exit_code == 0, result.output
    return result.output


def test_migrate_status_up_down(env: dict[str, str]) -> None:
    before = invoke(env, "migrate", "status")
    assert "catalog: empty (migrations pending)" in before
    assert "store: 4 not applied" in before
    up = invoke(env, "migrate", "up")
    assert "catalog at revision" in up
    assert "store: applied 0001_spans, 0002_logs, 0003_metrics, 0004_scores_events" in up
    assert "store: applied nothing new" in invoke(env, "migrate", "up")
    after = invoke(env, "migrate", "status")
    assert "(up to date)" in after and "store: up to date" in after
    assert "catalog at revision None" in invoke(env, "migrate", "down", "base")
    assert "migrations pending" in invoke(env, "migrate", "status")


def test_users_and_keys_lifecycle(env: dict[str, str]) -> None:
    out = invoke(
        env,
        "users",
        "create",
        "--email",
        "ops@acme.io",
        "--name",
        "Ops",
        input="Sup3r-secret-pass\nSup3r-secret-pass\n",
    )
    assert "created user ops@acme.io" in out
    dup = runner.invoke(
        app,
        ["users", "create", "--email", "ops@acme.io", "--password", "Sup3r-secret-pass"],
        env=env,
    )
    assert dup.exit_code == 1 and "already exists" in dup.output
    weak = runner.invoke(
        app, ["users", "create", "--email", "x@acme.io", "--password", "short"], env=env
    )
    assert weak.exit_code == 1 and "too weak" in weak.output

    # Create a project through the catalog service the API uses.
    import asyncio

    from brokle_server.catalog import organizations, projects, users
    from brokle_server.catalog.audit import Actor
    from brokle_server.catalog.db import Database

    async def make_project() -> None:
        db = Database(f"sqlite+aiosqlite:///{env['BROKLE_DATA_DIR']}/brokle.db")
        async with db.session() as session:
            user = await users.get_by_email(session, "ops@acme.io")
            assert user is not None
            org = await organizations.create(
                session, name="Acme", slug=None, owner=user, actor=Actor.system()
            )
            await projects.create(
                session,
                organization_id=org.id,
                name="Support Bot",
                slug=None,
                description="",
                retention_days=30,
                actor=Actor.system(),
            )
        await db.dispose()

    asyncio.run(make_project())
    created = invoke(
        env,
        "keys",
        "create",
        "--project",
        "support-bot",
        "--name",
        "ci",
        "--scope",
        "ingest",
        "--environment",
        "default",
        "--expires-in-days",
        "30",
    )
    key = re.search(r"bk_[A-Za-z0-9]{40}", created)
    key_id = re.search(r"id ([0-9a-f-]{36})", created)
    assert key and key_id and "scopes ingest" in created
    listed = invoke(env, "keys", "list", "--project", "support-bot")
    assert "ci" in listed and "active" in listed and key.group(0) not in listed
    assert f"revoked {key_id.group(1)}" in invoke(env, "keys", "revoke", key_id.group(1))
    assert "revoked" in invoke(env, "keys", "list", "--project", "support-bot")
    missing = runner.invoke(app, ["keys", "list", "--project", "nope"], env=env)
    assert missing.exit_code == 1 and "No project matches 'nope'" in missing.output


def test_worker_explains_what_it_needs(env: dict[str, str]) -> None:
    embedded = runner.invoke(app, ["worker"], env=env)
    assert embedded.exit_code == 2 and "set BROKLE_REDIS_URL" in embedded.output
    with_redis = runner.invoke(app, ["worker"], env=env | {"BROKLE_REDIS_URL": "redis://x:1/0"})
    assert with_redis.exit_code == 2 and "ClickHouse server" in with_redis.output
