"""Who is calling: a dashboard user (session JWT) or a project API key.

API-key verification sits on every ingest and gateway request, so verified keys are cached
for a few seconds (``auth.api_key_cache_seconds``); revocation through this process drops the
cache entry at once, other processes see it within that window.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from brokle_server.auth import keys
from brokle_server.catalog import api_keys
from brokle_server.catalog.db import Database
from brokle_server.catalog.models import Scope, User
from brokle_server.core.clock import Clock
from brokle_server.core.types import ProjectScope
from brokle_server.errors import PermissionDenied, Unauthenticated

LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class KeyPrincipal:
    key_id: uuid.UUID
    name: str
    organization_id: uuid.UUID
    project_id: uuid.UUID
    project_name: str
    environment: str | None
    scopes: frozenset[str]
    retention_days: int
    expires_at: datetime | None

    @property
    def scope(self) -> ProjectScope:
        return ProjectScope(
            organization_id=self.organization_id,
            project_id=self.project_id,
            environment=self.environment,
            retention_days=self.retention_days,
        )

    def require(self, scope: Scope) -> None:
        if scope.value not in self.scopes:
            raise PermissionDenied(
                f"This API key lacks the '{scope.value}' scope",
                code="missing_scope",
                details={"required": scope.value, "granted": sorted(self.scopes)},
            )


@dataclass(frozen=True, slots=True)
class UserPrincipal:
    user: User
    session_id: uuid.UUID | None


Principal = KeyPrincipal | UserPrincipal


@dataclass(slots=True)
class _Cached:
    principal: KeyPrincipal
    revoked: bool
    cached_at: float
    last_used_at: datetime | None


class KeyVerifier:
    """Turns a presented API key into a :class:`KeyPrincipal`, or refuses it."""

    def __init__(self, db: Database, clock: Clock, cache_seconds: float) -> None:
        self._db = db
        self._clock = clock
        self._ttl = cache_seconds
        self._cache: dict[str, _Cached] = {}

    async def verify(self, presented: str) -> KeyPrincipal:
        if not keys.is_well_formed(presented):
            raise Unauthenticated(
                "Malformed API key: expected 'bk_' followed by 40 letters or digits",
                code="invalid_api_key",
            )
        digest = keys.digest(presented)
        entry = self._cache.get(digest)
        if entry is None or time.monotonic() - entry.cached_at > self._ttl:
            entry = await self._load(digest)
        now = self._clock()
        if entry.revoked:
            raise Unauthenticated("This API key has been revoked", code="api_key_revoked")
        expires_at = entry.principal.expires_at
        if expires_at is not None and expires_at <= now:
            raise Unauthenticated("This API key has expired", code="api_key_expired")
        if entry.last_used_at is None or now - entry.last_used_at > LAST_USED_RESOLUTION:
            entry.last_used_at = now
            async with self._db.session() as session:
                await api_keys.touch(session, entry.principal.key_id, now)
        return entry.principal

    def forget(
        self,
        key_id: uuid.UUID | None = None,
        *,
        project_id: uuid.UUID | None = None,
        organization_id: uuid.UUID | None = None,
    ) -> None:
        """Drop cached verifications of a key, or of every key of a project or organization
        (after revocation or deletion), so this process refuses them at once."""
        for digest, entry in list(self._cache.items()):
            p = entry.principal
            if (
                p.key_id == key_id
                or p.project_id == project_id
                or p.organization_id == organization_id
            ):
                del self._cache[digest]

    async def _load(self, digest: str) -> _Cached:
        async with self._db.session() as session:
            found = await api_keys.get_by_digest(session, digest)
            if found is None:
                raise Unauthenticated("Unknown API key", code="invalid_api_key")
            row, project = found
            principal = KeyPrincipal(
                key_id=row.id,
                name=row.name,
                organization_id=project.organization_id,
                project_id=project.id,
                project_name=project.name,
                environment=row.environment.name if row.environment else None,
                scopes=frozenset(row.scopes),
                retention_days=project.retention_days,
                expires_at=row.expires_at,
            )
            entry = _Cached(
                principal, row.revoked_at is not None, time.monotonic(), row.last_used_at
            )
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[digest] = entry
        return entry
