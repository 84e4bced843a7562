"""Store URLs, settings and migration file loading (no engine needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from brokle_server.errors import ConfigurationError
from brokle_server.store.client import (
    Store,
    StoreError,
    StoreLocation,
    StoreUnavailable,
    redact_url,
)
from brokle_server.store.config import StoreSettings
from brokle_server.store.migrate import MigrationError, load_migrations


def test_chdb_url_names_an_absolute_directory() -> None:
    location = StoreLocation.parse("chdb:///var/lib/brokle/clickhouse")
    assert (location.kind, location.path) == ("chdb", Path("/var/lib/brokle/clickhouse"))


@pytest.mark.parametrize(
    "url", ["chdb://relative/dir", "chdb:relative", "chdb://", "ftp://host", "http://", "nothing"]
)
def test_bad_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        StoreLocation.parse(url)


def test_server_url_is_kept_and_redacted() -> None:
    location = StoreLocation.parse("https://brokle:s3cret@ch.example:8443/?secure=1")
    assert location.kind == "http"
    assert location.path is None
    assert location.redacted == "https://brokle:***@ch.example:8443/?secure=1"
    assert redact_url("http://ch:8123") == "http://ch:8123"


def test_bad_url_error_does_not_leak_the_password() -> None:
    with pytest.raises(ConfigurationError) as info:
        StoreLocation.parse("ftp://user:hunter2@host")
    assert "hunter2" not in str(info.value)


def test_store_construction_does_no_io(tmp_path: Path) -> None:
    store = Store(f"chdb://{tmp_path}/never", StoreSettings(database="x_1"))
    assert not store.is_open
    assert store.embedded
    assert store.database == "x_1"
    assert not (tmp_path / "never").exists()
    with pytest.raises(StoreError, match="not open"):
        store.query("SELECT 1")
    assert store.ping() is False


def test_store_refuses_a_bad_database_name() -> None:
    with pytest.raises(ConfigurationError):
        Store("chdb:///tmp/x", StoreSettings(database="x; DROP"))


def test_load_migrations_orders_files_by_version(tmp_path: Path) -> None:
    (tmp_path / "0002_b.sql").write_text("SELECT 2")
    (tmp_path / "0001_a.sql").write_text("SELECT 1")
    (tmp_path / "README.md").write_text("ignored")
    migrations = load_migrations(tmp_path)
    assert [(m.version, m.name, m.sql) for m in migrations] == [
        (1, "a", "SELECT 1"),
        (2, "b", "SELECT 2"),
    ]
    assert len(migrations[0].checksum) == 64


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["1_a.sql"], "not named"),
        (["0001_A.sql"], "not named"),
        (["0001_a.sql", "0001_b.sql"], "share a version"),
    ],
)
def test_load_migrations_refuses_bad_files(tmp_path: Path, files: list[str], message: str) -> None:
    for name in files:
        (tmp_path / name).write_text("SELECT 1")
    with pytest.raises(MigrationError, match=message):
        load_migrations(tmp_path)


def test_unreachable_server_is_unavailable_and_redacted() -> None:
    store = Store("http://default:hunter2@127.0.0.1:1")  # nothing listens on port 1
    with pytest.raises(StoreUnavailable) as info:
        store.open()
    assert "hunter2" not in str(info.value)
    assert info.value.retry_after > 0
    assert not store.is_open
