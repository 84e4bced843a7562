"""Signup, login, sessions and logout through the HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx

from tests.conftest import STRONG_PASSWORD
from tests.integration.api.helpers import data, error, login


async def test_signup_login_me_logout(client: httpx.AsyncClient) -> None:
    user = data(
        await client.post(
            "/api/v1/auth/signup",
            json={"email": "Ada@Example.com", "password": STRONG_PASSWORD, "name": "Ada"},
        ),
        201,
    )
    assert user["email"] == "ada@example.com"
    assert "password" not in str(user) and "hash" not in str(user)

    response = await client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": STRONG_PASSWORD}
    )
    session = data(response)
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "brokle_session=" in cookie

    # The cookie alone authenticates, as does the Bearer token.
    assert data(await client.get("/api/v1/auth/me"))["email"] == "ada@example.com"
    client.cookies.clear()
    bearer = {"Authorization": f"Bearer {session['token']}"}
    assert data(await client.get("/api/v1/auth/me", headers=bearer))["name"] == "Ada"

    assert data(await client.post("/api/v1/auth/logout", headers=bearer))["logged_out"]
    err = error(await client.get("/api/v1/auth/me", headers=bearer), 401)
    assert err["code"] == "session_revoked"


async def test_wrong_password_and_unknown_email_look_the_same(client: httpx.AsyncClient) -> None:
    await login(client, "bob@example.com")
    wrong = error(
        await client.post(
            "/api/v1/auth/login", json={"email": "bob@example.com", "password": "Nope-12345678"}
        ),
        401,
    )
    unknown = error(
        await client.post(
            "/api/v1/auth/login", json={"email": "who@example.com", "password": "Nope-12345678"}
        ),
        401,
    )
    assert wrong == unknown


async def test_failed_logins_are_throttled(client: httpx.AsyncClient) -> None:
    await login(client, "carol@example.com")
    body = {"email": "carol@example.com", "password": "Wrong-password-1"}
    for _ in range(5):
        error(await client.post("/api/v1/auth/login", json=body), 401)
    response = await client.post("/api/v1/auth/login", json=body)
    assert error(response, 429)["code"] == "login_throttled"
    assert int(response.headers["retry-after"]) >= 1
    # The right password is refused too while throttled: no guessing through the lock.
    good = {"email": "carol@example.com", "password": STRONG_PASSWORD}
    error(await client.post("/api/v1/auth/login", json=good), 429)


async def test_signup_rejects_bad_input(client: httpx.AsyncClient) -> None:
    ok_body = {"email": "dan@example.com", "password": STRONG_PASSWORD, "name": "Dan"}
    weak = error(
        await client.post("/api/v1/auth/signup", json=ok_body | {"password": "short"}), 400
    )
    assert weak["code"] == "weak_password"
    assert (
        error(
            await client.post(
                "/api/v1/auth/signup", json=ok_body | {"password": "alllowercaseletters"}
            ),
            400,
        )["code"]
        == "weak_password"
    )
    bad_email = error(await client.post("/api/v1/auth/signup", json=ok_body | {"email": "x"}), 400)
    assert bad_email["code"] == "validation_error" and "email" in bad_email["message"]
    extra = error(await client.post("/api/v1/auth/signup", json=ok_body | {"admin": True}), 400)
    assert "admin" in extra["message"]
    long_name = error(
        await client.post("/api/v1/auth/signup", json=ok_body | {"name": "n" * 500}), 400
    )
    assert "name" in long_name["message"]
    data(await client.post("/api/v1/auth/signup", json=ok_body), 201)
    dup = error(
        await client.post("/api/v1/auth/signup", json=ok_body | {"email": "DAN@example.com"}), 409
    )
    assert dup["code"] == "email_taken"


async def test_malformed_bodies_get_clear_4xx(client: httpx.AsyncClient) -> None:
    raw = await client.post(
        "/api/v1/auth/signup", content=b'{"email": ', headers={"content-type": "application/json"}
    )
    assert error(raw, 400)["code"] == "invalid_json"
    text = await client.post(
        "/api/v1/auth/signup", content=b"email=a", headers={"content-type": "text/plain"}
    )
    assert error(text, 415)["code"] == "unsupported_media_type"
    big = await client.post(
        "/api/v1/auth/signup",
        content=b'{"name": "' + b"x" * (2 << 20) + b'"}',
        headers={"content-type": "application/json"},
    )
    assert error(big, 413)["code"] == "payload_too_large"
    not_object = await client.post("/api/v1/auth/signup", json=[1, 2])
    error(not_object, 400)


async def test_forged_and_expired_tokens(client: httpx.AsyncClient) -> None:
    import jwt

    for token in ("garbage", jwt.encode({"sub": "x"}, "wrong-secret", algorithm="HS256")):
        err = error(
            await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}), 401
        )
        assert err["code"] == "invalid_token"
    unsigned = jwt.encode({"sub": "x", "sid": "y", "aud": "brokle:session"}, None, algorithm="none")
    error(await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {unsigned}"}), 401)
