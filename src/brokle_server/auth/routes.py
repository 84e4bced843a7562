"""Dashboard authentication: signup, login, logout, me."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response

from brokle_server.auth import tokens
from brokle_server.auth.principals import KeyPrincipal
from brokle_server.auth.ratelimit import Limit
from brokle_server.catalog import organizations, users
from brokle_server.catalog.schemas import LoginIn, SignupIn, organization_out, user_out
from brokle_server.core.envelope import ok
from brokle_server.core.pagination import PageRequest
from brokle_server.deps import (
    AnonymousActorDep,
    PrincipalDep,
    ServicesDep,
    SessionDep,
    UserDep,
    client_ip,
)
from brokle_server.errors import RateLimited, Unauthenticated

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def _set_cookie(response: Response, services: ServicesDep, token: str, max_age: int) -> None:
    response.set_cookie(
        services.settings.auth.cookie_name,
        token,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=services.settings.cookie_secure,
        path="/",
    )


@router.post("/signup", status_code=201, summary="Create an account")
async def signup(
    body: SignupIn, services: ServicesDep, session: SessionDep, actor: AnonymousActorDep
) -> dict[str, Any]:
    user = await users.create_user(
        session,
        email=body.email,
        password=body.password,
        name=body.name,
        min_password_length=services.settings.auth.min_password_length,
        actor=actor,
    )
    return ok(user_out(user))


@router.post("/login", summary="Log in; sets the session cookie and returns the token")
async def login(
    body: LoginIn,
    request: Request,
    response: Response,
    services: ServicesDep,
    session: SessionDep,
) -> dict[str, Any]:
    cfg = services.settings.auth
    throttle_key = f"login:{users.normalize_email(body.email)}:{client_ip(request)}"
    throttle = Limit(rate=cfg.login_attempts / cfg.login_window_seconds, burst=cfg.login_attempts)
    decision = await services.limiter.hit(throttle_key, throttle)
    if not decision.allowed:
        raise RateLimited(
            "Too many failed logins; wait before trying again",
            code="login_throttled",
            retry_after=decision.retry_after,
        )
    user = await users.authenticate(session, body.email, body.password)
    await services.limiter.reset(throttle_key)
    now = services.clock()
    ttl = timedelta(seconds=cfg.session_ttl_seconds)
    row = await users.start_session(
        session,
        user,
        now=now,
        ttl=ttl,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
    )
    token = tokens.issue(
        services.settings.secret,
        user_id=user.id,
        session_id=row.id,
        now=now,
        expires_at=row.expires_at,
    )
    _set_cookie(response, services, token, cfg.session_ttl_seconds)
    return ok(
        {
            "token": token,
            "token_type": "bearer",
            "expires_at": row.expires_at.isoformat().replace("+00:00", "Z"),
            "user": user_out(user),
        }
    )


@router.post("/logout", summary="End the current session")
async def logout(
    principal: UserDep, response: Response, services: ServicesDep, session: SessionDep
) -> dict[str, Any]:
    if principal.session_id is None:
        raise Unauthenticated("No session to end")
    await users.end_session(session, principal.session_id, services.clock())
    response.delete_cookie(services.settings.auth.cookie_name, path="/")
    return ok({"logged_out": True})


@router.get("/me", summary="The logged-in user and their organizations")
async def me(principal: UserDep, session: SessionDep) -> dict[str, Any]:
    page, roles = await organizations.list_for_user(
        session, principal.user.id, PageRequest(page=1, limit=200)
    )
    data = user_out(principal.user)
    data["organizations"] = [organization_out(o, roles[o.id]) for o in page.items]
    return ok(data)


sdk_router = APIRouter(prefix="/v1/auth", tags=["sdk"])


@sdk_router.post("/validate-key", summary="Check an API key (the Brokle SDK's handshake)")
async def validate_key(principal: PrincipalDep) -> dict[str, Any]:
    if not isinstance(principal, KeyPrincipal):
        raise Unauthenticated("Send the project API key as X-API-Key", code="api_key_required")
    return ok(
        {
            "valid": True,
            "key_id": str(principal.key_id),
            "name": principal.name,
            "organization_id": str(principal.organization_id),
            "project_id": str(principal.project_id),
            "project_name": principal.project_name,
            "environment": principal.environment,
            "scopes": sorted(principal.scopes),
            "expires_at": principal.expires_at.isoformat() if principal.expires_at else None,
        }
    )
