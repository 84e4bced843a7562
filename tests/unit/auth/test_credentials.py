"""Key material, password rules and session tokens."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from brokle_server.auth import keys, tokens
from brokle_server.auth.passwords import check_password_rules, hash_password, verify_password
from brokle_server.errors import Unauthenticated, ValidationFailed


def test_keys_have_the_sdk_format_and_are_unique() -> None:
    generated = {keys.generate() for _ in range(200)}
    assert len(generated) == 200
    assert all(re.fullmatch(r"bk_[A-Za-z0-9]{40}", k) for k in generated)
    key = generated.pop()
    assert keys.is_well_formed(key)
    assert keys.digest(key) != keys.digest(key[:-1] + ("a" if key[-1] != "a" else "b"))
    assert keys.preview(key) == f"{key[:7]}...{key[-4:]}"
    for bad in ("", "bk_short", "sk_" + "a" * 40, "bk_" + "a" * 39 + "!", " bk_" + "a" * 40):
        assert not keys.is_well_formed(bad)


def test_password_hash_round_trip() -> None:
    hashed = hash_password("Correct-Horse-9")
    assert hashed.startswith("$argon2id$")
    assert verify_password("Correct-Horse-9", hashed)
    assert not verify_password("correct-horse-9", hashed)
    assert not verify_password("anything", None)


@pytest.mark.parametrize(
    "password", ["short1A", "alllowercaseletters", "x" * 300, "ada.lovelace-2024"]
)
def test_weak_passwords_are_refused(password: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        check_password_rules(password, min_length=10, email="ada.lovelace@example.com")
    assert info.value.code == "weak_password"


def test_session_tokens() -> None:
    now = datetime.now(UTC)
    user, session = uuid.uuid4(), uuid.uuid4()
    token = tokens.issue(
        "s" * 40, user_id=user, session_id=session, now=now, expires_at=now + timedelta(hours=1)
    )
    claims = tokens.decode("s" * 40, token)
    assert (claims.user_id, claims.session_id) == (user, session)
    with pytest.raises(Unauthenticated, match="Invalid"):
        tokens.decode("t" * 40, token)
    expired = tokens.issue(
        "s" * 40,
        user_id=user,
        session_id=session,
        now=now - timedelta(hours=2),
        expires_at=now - timedelta(hours=1),
    )
    with pytest.raises(Unauthenticated) as info:
        tokens.decode("s" * 40, expired)
    assert info.value.code == "session_expired"
