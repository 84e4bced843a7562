"""Gateway configuration in the catalog: provider credentials, routes, budgets, limits, prices."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from brokle_server.catalog import audit
from brokle_server.catalog.audit import Actor
from brokle_server.catalog.gateway_models import (
    Budget,
    GatewayLimit,
    GatewayRoute,
    PriceOverride,
    ProviderCredential,
)
from brokle_server.catalog.models import ApiKey, Project
from brokle_server.core.secretbox import SecretBox, preview
from brokle_server.errors import Conflict, NotFound, ValidationFailed


def _record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    kind: str,
    rid: object,
    project: Project,
    details: dict[str, Any] | None = None,
) -> None:
    audit.record(
        session,
        actor,
        action,
        kind,
        rid,
        organization_id=project.organization_id,
        project_id=project.id,
        details=details,
    )


# -- provider credentials --------------------------------------------------------------


async def visible_credentials(session: AsyncSession, project: Project) -> list[ProviderCredential]:
    """The project's own credentials and its organization's shared ones, project first."""
    rows = await session.scalars(
        select(ProviderCredential)
        .where(
            ProviderCredential.organization_id == project.organization_id,
            or_(
                ProviderCredential.project_id == project.id,
                ProviderCredential.project_id.is_(None),
            ),
        )
        .order_by(ProviderCredential.project_id.is_(None), ProviderCredential.name)
    )
    return list(rows)


async def create_credential(
    session: AsyncSession,
    project: Project,
    box: SecretBox,
    *,
    name: str,
    provider: str,
    api_key: str,
    base_url: str | None,
    options: dict[str, str],
    shared: bool,
    created_by: uuid.UUID | None,
    actor: Actor,
) -> ProviderCredential:
    owner = None if shared else project.id
    clash = await session.scalar(
        select(ProviderCredential.id).where(
            ProviderCredential.organization_id == project.organization_id,
            ProviderCredential.name == name,
            ProviderCredential.project_id.is_(None)
            if owner is None
            else ProviderCredential.project_id == owner,
        )
    )
    if clash:
        raise Conflict(f"A provider named '{name}' already exists", code="provider_exists")
    row = ProviderCredential(
        organization_id=project.organization_id,
        project_id=owner,
        name=name,
        provider=provider,
        secret_encrypted=box.seal(api_key) if api_key else "",
        secret_preview=preview(api_key) if api_key else "",
        base_url=base_url,
        options=options,
        created_by=created_by,
    )
    session.add(row)
    await session.flush()
    _record(
        session,
        actor,
        "provider.create",
        "provider_credential",
        row.id,
        project,
        {"name": name, "provider": provider, "shared": shared},
    )
    return row


async def delete_credential(
    session: AsyncSession, project: Project, credential_id: uuid.UUID, *, actor: Actor
) -> None:
    row = await session.get(ProviderCredential, credential_id)
    if (
        row is None
        or row.organization_id != project.organization_id
        or (row.project_id not in (None, project.id))
    ):
        raise NotFound("Provider not found", code="provider_not_found")
    _record(
        session,
        actor,
        "provider.delete",
        "provider_credential",
        row.id,
        project,
        {"name": row.name},
    )
    await session.delete(row)


# -- routes ----------------------------------------------------------------------------


def check_targets(targets: Sequence[dict[str, Any]], providers: set[str]) -> None:
    unknown = sorted({t["provider"] for t in targets} - providers)
    if unknown:
        raise ValidationFailed(
            f"Route targets name unknown providers: {', '.join(unknown)}; create them first",
            details=[{"field": "targets", "message": f"unknown provider '{u}'"} for u in unknown],
        )


async def list_routes(session: AsyncSession, project_id: uuid.UUID) -> list[GatewayRoute]:
    rows = await session.scalars(
        select(GatewayRoute)
        .where(GatewayRoute.project_id == project_id)
        .order_by(GatewayRoute.model)
    )
    return list(rows)


async def upsert_route(
    session: AsyncSession, project: Project, fields: dict[str, Any], *, actor: Actor
) -> GatewayRoute:
    providers = {c.name for c in await visible_credentials(session, project)}
    check_targets(fields["targets"], providers)
    row = await session.scalar(
        select(GatewayRoute).where(
            GatewayRoute.project_id == project.id, GatewayRoute.model == fields["model"]
        )
    )
    if row is None:
        row = GatewayRoute(project_id=project.id, **fields)
        session.add(row)
    else:
        for key, value in fields.items():
            setattr(row, key, value)
    await session.flush()
    _record(
        session,
        actor,
        "route.upsert",
        "gateway_route",
        row.id,
        project,
        {"model": row.model, "strategy": row.strategy},
    )
    return row


async def replace_routes(
    session: AsyncSession, project: Project, routes: list[dict[str, Any]], *, actor: Actor
) -> list[GatewayRoute]:
    """Make the project's routes exactly ``routes`` (a routing file applied as a whole)."""
    models = [r["model"] for r in routes]
    if len(set(models)) != len(models):
        raise ValidationFailed("Each model alias may appear once in a routing file")
    providers = {c.name for c in await visible_credentials(session, project)}
    for route in routes:
        check_targets(route["targets"], providers)
    await session.execute(delete(GatewayRoute).where(GatewayRoute.project_id == project.id))
    rows = [GatewayRoute(project_id=project.id, **r) for r in routes]
    session.add_all(rows)
    await session.flush()
    _record(session, actor, "route.replace_all", "gateway_route", None, project, {"models": models})
    return rows


async def delete_route(
    session: AsyncSession, project: Project, route_id: uuid.UUID, *, actor: Actor
) -> None:
    row = await session.get(GatewayRoute, route_id)
    if row is None or row.project_id != project.id:
        raise NotFound("Route not found", code="route_not_found")
    _record(session, actor, "route.delete", "gateway_route", row.id, project, {"model": row.model})
    await session.delete(row)


# -- budgets and limits ----------------------------------------------------------------


async def _check_key(session: AsyncSession, project: Project, key_id: uuid.UUID | None) -> None:
    if key_id is None:
        return
    key = await session.get(ApiKey, key_id)
    if key is None or key.project_id != project.id:
        raise NotFound("API key not found in this project", code="api_key_not_found")


async def create_budget(
    session: AsyncSession,
    project: Project,
    *,
    api_key_id: uuid.UUID | None,
    period: str,
    limit_usd: float,
    actor: Actor,
) -> Budget:
    await _check_key(session, project, api_key_id)
    row = Budget(project_id=project.id, api_key_id=api_key_id, period=period, limit_usd=limit_usd)
    session.add(row)
    await session.flush()
    _record(
        session,
        actor,
        "budget.create",
        "budget",
        row.id,
        project,
        {"period": period, "limit_usd": limit_usd, "api_key_id": str(api_key_id or "")},
    )
    return row


async def create_limit(
    session: AsyncSession,
    project: Project,
    *,
    api_key_id: uuid.UUID | None,
    rpm: int | None,
    tpm: int | None,
    actor: Actor,
) -> GatewayLimit:
    await _check_key(session, project, api_key_id)
    row = GatewayLimit(project_id=project.id, api_key_id=api_key_id, rpm=rpm, tpm=tpm)
    session.add(row)
    await session.flush()
    _record(
        session,
        actor,
        "rate_limit.create",
        "gateway_limit",
        row.id,
        project,
        {"rpm": rpm, "tpm": tpm, "api_key_id": str(api_key_id or "")},
    )
    return row


async def list_project_rows(
    session: AsyncSession,
    model: type[Budget] | type[GatewayLimit] | type[PriceOverride],
    project_id: uuid.UUID,
) -> list[Any]:
    rows = await session.scalars(
        select(model).where(model.project_id == project_id).order_by(model.created_at)
    )
    return list(rows)


async def delete_project_row(
    session: AsyncSession,
    project: Project,
    model: type[Budget] | type[GatewayLimit] | type[PriceOverride],
    row_id: uuid.UUID,
    *,
    actor: Actor,
) -> None:
    row: Budget | GatewayLimit | PriceOverride | None = await session.get(model, row_id)
    if row is None or row.project_id != project.id:
        raise NotFound("Not found in this project", code="not_found")
    _record(session, actor, f"{model.__tablename__}.delete", model.__tablename__, row.id, project)
    await session.delete(row)


async def upsert_price(
    session: AsyncSession, project: Project, fields: dict[str, Any], *, actor: Actor
) -> PriceOverride:
    row = await session.scalar(
        select(PriceOverride).where(
            PriceOverride.project_id == project.id,
            PriceOverride.provider == fields["provider"],
            PriceOverride.model == fields["model"],
        )
    )
    if row is None:
        row = PriceOverride(project_id=project.id, **fields)
        session.add(row)
    else:
        for key, value in fields.items():
            setattr(row, key, value)
    await session.flush()
    _record(session, actor, "price.upsert", "price_override", row.id, project, dict(fields))
    return row
