"""Users and their login sessions."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from brokle_server.auth.passwords import check_password_rules, hash_password, verify_password
from brokle_server.catalog import audit
from brokle_server.catalog.audit import Actor
from brokle_server.catalog.models import Session, User
from brokle_server.errors import Conflict, Unauthenticated


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == normalize_email(email)))


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    name: str,
    min_password_length: int,
    actor: Actor,
) -> User:
    email = normalize_email(email)
    check_password_rules(password, min_length=min_password_length, email=email)
    if await get_by_email(session, email) is not None:
        raise Conflict("An account with this email already exists", code="email_taken")
    user = User(email=email, name=name.strip() or email, password_hash=hash_password(password))
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent signup with the same email
        raise Conflict("An account with this email already exists", code="email_taken") from exc
    audit.record(session, actor, "user.create", "user", user.id, details={"email": email})
    return user


async def authenticate(session: AsyncSession, email: str, password: str) -> User:
    user = await get_by_email(session, email)
    if not verify_password(password, user.password_hash if user else None) or user is None:
        raise Unauthenticated("Email or password is incorrect", code="invalid_credentials")
    if not user.is_active:
        raise Unauthenticated("This account is disabled", code="account_disabled")
    return user


async def start_session(
    session: AsyncSession,
    user: User,
    *,
    now: datetime,
    ttl: timedelta,
    ip: str | None,
    user_agent: str | None,
) -> Session:
    row = Session(
        user_id=user.id,
        created_at=now,
        expires_at=now + ttl,
        ip=ip,
        user_agent=(user_agent or "")[:512] or None,
    )
    user.last_login_at = now
    session.add(row)
    await session.flush()
    return row


async def active_session_user(
    session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID, now: datetime
) -> User:
    row = await session.get(Session, session_id)
    if row is None or row.user_id != user_id or row.revoked_at is not None:
        raise Unauthenticated("Session has ended; log in again", code="session_revoked")
    if row.expires_at <= now:
        raise Unauthenticated("Session expired; log in again", code="session_expired")
    user = await session.get(User, user_id)
    if user is None or not user.is_active:
        raise Unauthenticated("This account is disabled", code="account_disabled")
    return user


async def end_session(session: AsyncSession, session_id: uuid.UUID, now: datetime) -> None:
    row = await session.get(Session, session_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = now
