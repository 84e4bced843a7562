"""FastAPI dependencies: the container, a catalog session, the caller and their limits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from brokle_server.auth import tokens
from brokle_server.auth.principals import KeyPrincipal, Principal, UserPrincipal
from brokle_server.auth.ratelimit import Limit
from brokle_server.catalog import users
from brokle_server.catalog.audit import Actor
from brokle_server.catalog.models import Scope
from brokle_server.container import Services
from brokle_server.errors import RateLimited, Unauthenticated


async def get_services(request: Request) -> Services:
    # async: a plain def would be run in the thread pool on every request.
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_session(services: ServicesDep) -> AsyncIterator[AsyncSession]:
    async with services.db.session() as session:
        yield session


# "function" scope: the transaction commits before the response is sent, so a reply of
# success always means the change is stored.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def presented_credentials(request: Request, cookie_name: str) -> tuple[str | None, str | None]:
    """(api_key, session_token) from X-API-Key, Authorization: Bearer, or the cookie."""
    api_key = request.headers.get("x-api-key")
    bearer: str | None = None
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            bearer = value.strip()
    if api_key:
        return api_key.strip(), None
    if bearer is not None:
        return (bearer, None) if bearer.startswith("bk_") else (None, bearer)
    return None, request.cookies.get(cookie_name)


async def _apply_limit(services: Services, key: str, limit: Limit, response: Response) -> None:
    if not services.settings.rate_limit.enabled:
        return
    decision = await services.limiter.hit(key, limit)
    headers = decision.headers()
    if not decision.allowed:
        raise RateLimited(
            "Rate limit exceeded; retry after the time in Retry-After",
            retry_after=decision.retry_after,
            headers=headers,
        )
    response.headers.update(headers)


async def user_from_token(services: Services, token: str) -> UserPrincipal:
    claims = tokens.decode(services.settings.secret, token)
    async with services.db.session() as session:
        user = await users.active_session_user(
            session, claims.session_id, claims.user_id, services.clock()
        )
    return UserPrincipal(user=user, session_id=claims.session_id)


async def authenticate(request: Request, response: Response, services: Services) -> Principal:
    """Authenticate and rate-limit the caller. API keys never touch a catalog session here
    (the key cache answers), which keeps ingest and gateway requests cheap."""
    api_key, token = presented_credentials(request, services.settings.auth.cookie_name)
    limits = services.settings.rate_limit
    principal: Principal
    if api_key is not None:
        principal = await services.keys.verify(api_key)
        limit = Limit.per_minute(limits.api_key_per_minute, limits.api_key_burst)
        await _apply_limit(services, f"key:{principal.key_id}", limit, response)
    elif token is not None:
        principal = await user_from_token(services, token)
        limit = Limit.per_minute(limits.user_per_minute, limits.user_burst)
        await _apply_limit(services, f"user:{principal.user.id}", limit, response)
    else:
        raise Unauthenticated(
            "Authentication required: send a session cookie, 'Authorization: Bearer <token>' "
            "or 'X-API-Key: bk_...'"
        )
    return principal


async def authenticate_key(
    request: Request, response: Response, services: Services, scope: Scope
) -> KeyPrincipal:
    """Admit only a project API key carrying ``scope``."""
    principal = await authenticate(request, response, services)
    if not isinstance(principal, KeyPrincipal):
        raise Unauthenticated("This endpoint needs a project API key", code="api_key_required")
    principal.require(scope)
    return principal


async def get_principal(request: Request, response: Response, services: ServicesDep) -> Principal:
    return await authenticate(request, response, services)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_user(principal: PrincipalDep) -> UserPrincipal:
    if not isinstance(principal, UserPrincipal):
        raise Unauthenticated(
            "This endpoint needs a user session; API keys cannot call it", code="user_required"
        )
    return principal


UserDep = Annotated[UserPrincipal, Depends(get_user)]


def require_key(scope: Scope) -> Callable[..., Coroutine[Any, Any, KeyPrincipal]]:
    """A dependency that admits only an API key carrying ``scope``."""

    async def dependency(
        request: Request, response: Response, services: ServicesDep
    ) -> KeyPrincipal:
        return await authenticate_key(request, response, services, scope)

    return dependency


def _actor(request: Request, principal: Principal | None) -> Actor:
    ip = client_ip(request)
    user_agent = request.headers.get("user-agent")
    request_id = getattr(request.state, "request_id", None)
    if isinstance(principal, UserPrincipal):
        return Actor("user", str(principal.user.id), ip, user_agent, request_id, principal.user.id)
    if isinstance(principal, KeyPrincipal):
        return Actor("api_key", str(principal.key_id), ip, user_agent, request_id)
    return Actor("system", None, ip, user_agent, request_id)


def get_actor(request: Request, principal: PrincipalDep) -> Actor:
    return _actor(request, principal)


def get_anonymous_actor(request: Request) -> Actor:
    return _actor(request, None)


ActorDep = Annotated[Actor, Depends(get_actor)]
AnonymousActorDep = Annotated[Actor, Depends(get_anonymous_actor)]
