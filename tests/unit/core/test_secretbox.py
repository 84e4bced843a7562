from __future__ import annotations

import pytest

from brokle_server.core.secretbox import SecretBox, preview
from brokle_server.errors import ConfigurationError


def test_seal_and_open_round_trip_without_leaking() -> None:
    box = SecretBox("server-secret-" + "x" * 30)
    sealed = box.seal("sk-live-abcdef123456")
    assert sealed.startswith("v1:") and "sk-live" not in sealed
    assert box.open(sealed) == "sk-live-abcdef123456"
    assert box.seal("same") != box.seal("same")  # random IV


def test_another_secret_cannot_open() -> None:
    sealed = SecretBox("a" * 40).seal("sk-1")
    with pytest.raises(ConfigurationError, match="BROKLE_SECRET_KEY changed"):
        SecretBox("b" * 40).open(sealed)
    with pytest.raises(ConfigurationError):
        SecretBox("a" * 40).open("plain")


def test_preview() -> None:
    assert preview("sk-proj-1234567890abcd") == "sk-...abcd"
    assert preview("short") == "***"
