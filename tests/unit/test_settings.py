"""Settings: env names, derived paths, the generated secret, production refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from brokle_server.errors import ConfigurationError
from brokle_server.settings import Settings, normalize_database_url


def test_defaults_live_in_the_data_dir(tmp_path: Path) -> None:
    s = Settings(_env_file=None, data_dir=tmp_path / "d").resolved()  # type: ignore[call-arg]
    assert s.host == "127.0.0.1" and s.port == 8080
    assert s.database_url == f"sqlite+aiosqlite:///{tmp_path / 'd' / 'brokle.db'}"
    assert s.clickhouse_url == f"chdb://{tmp_path / 'd' / 'clickhouse'}"
    assert s.redis_url is None


def test_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = Settings(_env_file=None, data_dir=tmp_path).resolved().secret  # type: ignore[call-arg]
    second = Settings(_env_file=None, data_dir=tmp_path).resolved().secret  # type: ignore[call-arg]
    assert first == second and len(first) >= 48
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_environment_variables_and_nesting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKLE_PORT", "9000")
    monkeypatch.setenv("BROKLE_DATA_DIR", str(tmp_path / "other"))
    monkeypatch.setenv("BROKLE_RATE_LIMIT__USER_PER_MINUTE", "7")
    monkeypatch.setenv("BROKLE_HTTP__CORS_ORIGINS", "http://a.test, http://b.test")
    s = Settings(_env_file=None).resolved()  # type: ignore[call-arg]
    assert s.port == 9000 and s.data_dir == tmp_path / "other"
    assert s.rate_limit.user_per_minute == 7
    assert s.http.cors_origins == ["http://a.test", "http://b.test"]


@pytest.mark.parametrize("secret", ["changeme", "secret", "short-but-random"])
def test_production_refuses_weak_secrets(tmp_path: Path, secret: str) -> None:
    s = Settings(_env_file=None, env="production", data_dir=tmp_path, secret_key=secret)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="BROKLE_SECRET_KEY"):
        s.resolved()


def test_production_accepts_a_strong_secret(tmp_path: Path) -> None:
    s = Settings(  # type: ignore[call-arg]
        _env_file=None, env="production", data_dir=tmp_path, secret_key="k" * 20 + "Zq9" * 10
    ).resolved()
    assert s.cookie_secure is True


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:////tmp/x.db", "sqlite+aiosqlite:////tmp/x.db"),
    ],
)
def test_database_urls_get_async_drivers(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected
