"""Session tokens: HS256 JWTs naming a session row, so logout can end them."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

import jwt

from brokle_server.errors import Unauthenticated

ALGORITHM = "HS256"
AUDIENCE = "brokle:session"


@dataclass(frozen=True, slots=True)
class SessionClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    expires_at: int


def _signing_key(secret: str) -> bytes:
    # A purpose-bound key, so the raw secret is never used directly for more than one job.
    return hashlib.sha256(b"brokle-session-v1:" + secret.encode()).digest()


def issue(
    secret: str, *, user_id: uuid.UUID, session_id: uuid.UUID, now: datetime, expires_at: datetime
) -> str:
    payload = {
        "sub": str(user_id),
        "sid": str(session_id),
        "aud": AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
    }
    return jwt.encode(payload, _signing_key(secret), algorithm=ALGORITHM)


def decode(secret: str, token: str) -> SessionClaims:
    try:
        payload = jwt.decode(
            token,
            _signing_key(secret),
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            options={"require": ["sub", "sid", "exp", "aud"]},
        )
        return SessionClaims(
            user_id=uuid.UUID(payload["sub"]),
            session_id=uuid.UUID(payload["sid"]),
            expires_at=int(payload["exp"]),
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated("Session expired; log in again", code="session_expired") from exc
    except (jwt.InvalidTokenError, ValueError, KeyError) as exc:
        raise Unauthenticated("Invalid session token", code="invalid_token") from exc
