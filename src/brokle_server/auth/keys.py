"""API key material: generation, hashing and format checks (``bk_`` + 40 alphanumerics)."""

from __future__ import annotations

import hashlib
import re
import secrets
import string

PREFIX = "bk_"
BODY_LENGTH = 40
_ALPHABET = string.ascii_letters + string.digits
_KEY_RE = re.compile(r"^bk_[A-Za-z0-9]{40}$")


def generate() -> str:
    return PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(BODY_LENGTH))


def is_well_formed(key: str) -> bool:
    return bool(_KEY_RE.match(key))


def digest(key: str) -> str:
    """SHA-256 hex of the key: keys are random and long, so a fast hash is safe to store."""
    return hashlib.sha256(key.encode()).hexdigest()


def preview(key: str) -> str:
    return f"{key[:7]}...{key[-4:]}"
