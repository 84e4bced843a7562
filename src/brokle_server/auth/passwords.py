"""Password hashing (argon2id via pwdlib) and the password rules."""

from __future__ import annotations

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from brokle_server.errors import ValidationFailed

_hasher = PasswordHash((Argon2Hasher(),))

# Computed once so logins for unknown emails cost the same as for known ones.
_DUMMY_HASH = _hasher.hash("brokle-timing-equaliser")

MAX_PASSWORD_LENGTH = 256


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Check a password; with no hash, still spend the time of a real check."""
    if password_hash is None:
        _hasher.verify(password, _DUMMY_HASH)
        return False
    return _hasher.verify(password, password_hash)


def check_password_rules(password: str, *, min_length: int, email: str = "") -> None:
    problems: list[str] = []
    if len(password) < min_length:
        problems.append(f"must be at least {min_length} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"must be at most {MAX_PASSWORD_LENGTH} characters")
    classes = sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if classes < 2:
        problems.append("must mix at least two of: lowercase, uppercase, digits, symbols")
    local_part = email.split("@")[0].lower()
    if len(local_part) >= 4 and local_part in password.lower():
        problems.append("must not contain your email name")
    if problems:
        raise ValidationFailed(
            "Password is too weak: " + "; ".join(problems),
            code="weak_password",
            details=[{"field": "password", "message": p} for p in problems],
        )
