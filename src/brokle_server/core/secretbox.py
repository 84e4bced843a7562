"""Encryption of stored secrets (provider API keys) with a key derived from BROKLE_SECRET_KEY.

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) under a key derived with HKDF, so the
raw server secret never doubles as an encryption key. Ciphertexts carry a version prefix to
allow a future key rotation.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from brokle_server.errors import ConfigurationError

_VERSION = "v1:"


class SecretBox:
    def __init__(self, secret: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"brokle", info=b"credentials-v1"
        ).derive(secret.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, plaintext: str) -> str:
        return _VERSION + self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        if not sealed.startswith(_VERSION):
            raise ConfigurationError("stored secret has an unknown format")
        try:
            return self._fernet.decrypt(sealed[len(_VERSION) :].encode()).decode()
        except InvalidToken as exc:
            raise ConfigurationError(
                "a stored provider secret cannot be decrypted: BROKLE_SECRET_KEY changed since "
                "it was saved; store the credential again"
            ) from exc


def preview(secret: str) -> str:
    """A recognisable, non-reversible hint of a secret: its first 3 and last 4 characters."""
    if len(secret) <= 10:
        return "***"
    return f"{secret[:3]}...{secret[-4:]}"
