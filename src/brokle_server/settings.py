"""Brokle's settings: one pydantic-settings root read from ``BROKLE_*`` variables or ``.env``.

Nested groups use a double underscore, e.g. ``BROKLE_AUTH__SESSION_TTL_SECONDS=3600``.
Derived locations (catalog database, embedded store, secret key file) default to paths inside
``BROKLE_DATA_DIR`` and are resolved by :meth:`Settings.resolved`.
"""

from __future__ import annotations

import os
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from brokle_server.errors import ConfigurationError
from brokle_server.gateway.config import GatewaySettings
from brokle_server.ingest.config import IngestSettings
from brokle_server.pipeline.config import PipelineSettings
from brokle_server.store.config import StoreSettings

# Values that appear in examples and tutorials; never acceptable as a production secret.
KNOWN_WEAK_SECRETS = frozenset(
    {"", "secret", "changeme", "change-me", "brokle", "development", "dev", "test", "password"}
)
MIN_SECRET_LENGTH = 32


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class AuthSettings(BaseModel):
    session_ttl_seconds: int = Field(
        7 * 24 * 3600, ge=60, description="Lifetime of a dashboard session token."
    )
    cookie_name: str = Field("brokle_session", description="Name of the session cookie.")
    cookie_secure: bool | None = Field(
        None, description="Mark the session cookie Secure; defaults to true in production."
    )
    login_attempts: int = Field(
        5, ge=1, description="Failed logins allowed per email and address per window."
    )
    login_window_seconds: int = Field(
        900, ge=1, description="Window over which failed logins are counted."
    )
    min_password_length: int = Field(10, ge=8, description="Shortest accepted password.")
    api_key_cache_seconds: float = Field(
        5.0, ge=0, description="How long a verified API key is trusted before it is re-read."
    )


class RateLimitSettings(BaseModel):
    enabled: bool = Field(True, description="Apply per-key and per-user request limits.")
    api_key_per_minute: int = Field(
        6000, ge=1, description="Requests per minute allowed for one API key."
    )
    api_key_burst: int = Field(1000, ge=1, description="Bucket size for one API key.")
    user_per_minute: int = Field(600, ge=1, description="Requests per minute for one user.")
    user_burst: int = Field(120, ge=1, description="Bucket size for one user.")


class HttpSettings(BaseModel):
    max_json_body_bytes: int = Field(
        1 << 20, ge=1024, description="Largest management-API request body accepted."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser."
    )

    @model_validator(mode="before")
    @classmethod
    def _split_origins(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("cors_origins"), str):
            raw = data["cors_origins"]
            data["cors_origins"] = [o.strip() for o in raw.split(",") if o.strip()]
        return data


class Settings(BaseSettings):
    """Every setting Brokle reads. Field names map to ``BROKLE_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="BROKLE_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    env: Environment = Field(Environment.DEVELOPMENT, description="Deployment kind.")
    host: str = Field("127.0.0.1", description="Address the server listens on.")
    port: int = Field(8080, ge=1, le=65535, description="Port the server listens on.")
    data_dir: Path = Field(Path("./.brokle"), description="Directory for embedded state.")
    database_url: str | None = Field(
        None, description="Catalog database; SQLite file in the data dir when unset."
    )
    clickhouse_url: str | None = Field(
        None, description="Telemetry store; embedded chDB in the data dir when unset."
    )
    redis_url: str | None = Field(
        None, description="Redis for queues, limits and pub/sub; in-process when unset."
    )
    secret_key: SecretStr | None = Field(
        None, description="Signs sessions and derives encryption keys; generated when unset."
    )
    auto_migrate: bool = Field(True, description="Apply catalog migrations when serving.")
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    log_json: bool = Field(True, description="Write logs as JSON lines (else human-readable).")

    init_admin_email: str | None = Field(None, description="First-run admin email.")
    init_admin_password: SecretStr | None = Field(None, description="First-run admin password.")
    init_org: str | None = Field(None, description="First-run organization name.")
    init_project: str | None = Field(None, description="First-run project name.")
    init_project_api_key: SecretStr | None = Field(
        None, description="First-run project API key (bk_ + 40 alphanumerics)."
    )

    auth: AuthSettings = Field(default_factory=AuthSettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def cookie_secure(self) -> bool:
        if self.auth.cookie_secure is not None:
            return self.auth.cookie_secure
        return self.is_production

    def resolved(self) -> Settings:
        """Return a copy with data-dir defaults filled in and the secret key loaded or created.

        Creates the data directory. Raises :class:`ConfigurationError` for a weak secret in
        production.
        """
        data_dir = self.data_dir.expanduser().resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        database_url = self.database_url or f"sqlite+aiosqlite:///{data_dir / 'brokle.db'}"
        clickhouse_url = self.clickhouse_url or f"chdb://{data_dir / 'clickhouse'}"
        secret = self.secret_key or SecretStr(_load_or_create_secret(data_dir / "secret_key"))
        value = secret.get_secret_value()
        if self.is_production and (
            value.strip().lower() in KNOWN_WEAK_SECRETS or len(value) < MIN_SECRET_LENGTH
        ):
            raise ConfigurationError(
                "BROKLE_SECRET_KEY is a known default or shorter than "
                f"{MIN_SECRET_LENGTH} characters; set a random value in production"
            )
        return self.model_copy(
            update={
                "data_dir": data_dir,
                "database_url": normalize_database_url(database_url),
                "clickhouse_url": clickhouse_url,
                "secret_key": secret,
            }
        )

    @property
    def secret(self) -> str:
        if self.secret_key is None:
            raise ConfigurationError("settings were not resolved; call Settings.resolved()")
        return self.secret_key.get_secret_value()


def normalize_database_url(url: str) -> str:
    """Choose the async driver for the URL forms users commonly write."""
    for prefix, replacement in (
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgresql+psycopg2://", "postgresql+asyncpg://"),
        ("sqlite:///", "sqlite+aiosqlite:///"),
    ):
        if url.startswith(prefix):
            return replacement + url[len(prefix) :]
    return url


def _load_or_create_secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value
