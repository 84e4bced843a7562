"""Gateway configuration API: providers, routes (incl. a routing file), budgets, limits, prices."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import yaml
from fastapi import APIRouter, Request
from pydantic import ValidationError

from brokle_server.auth import access
from brokle_server.auth.principals import UserPrincipal
from brokle_server.auth.rbac import Permission
from brokle_server.catalog import gateway
from brokle_server.catalog.gateway_models import Budget, GatewayLimit, PriceOverride
from brokle_server.catalog.gateway_schemas import (
    BudgetIn,
    LimitIn,
    PriceIn,
    ProviderIn,
    RouteIn,
    RoutingFile,
    budget_out,
    limit_out,
    price_out,
    provider_out,
    route_out,
)
from brokle_server.core.envelope import ok
from brokle_server.deps import ActorDep, PrincipalDep, ServicesDep, SessionDep
from brokle_server.errors import InvalidInput, ValidationFailed

router = APIRouter(prefix="/api/v1/projects/{project_id}", tags=["gateway configuration"])
READ, WRITE = Permission.PROJECT_READ, Permission.KEYS_MANAGE


async def _applied(session: SessionDep, services: ServicesDep, project_id: uuid.UUID) -> None:
    """Commit, then drop this process's cached gateway config so the change applies now."""
    await session.commit()
    services.gateway.configs.invalidate(project_id)


@router.get("/providers", summary="Provider credentials usable by the project (no secrets)")
async def list_providers(
    project_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    project, _ = await access.authorize_project(session, principal, project_id, READ)
    return ok([provider_out(c) for c in await gateway.visible_credentials(session, project)])


@router.post("/providers", status_code=201, summary="Add a provider credential (write-only)")
async def create_provider(
    project_id: uuid.UUID,
    body: ProviderIn,
    principal: PrincipalDep,
    session: SessionDep,
    services: ServicesDep,
    actor: ActorDep,
) -> dict[str, Any]:
    project, _ = await access.authorize_project(session, principal, project_id, WRITE)
    row = await gateway.create_credential(
        session,
        project,
        services.secrets,
        name=body.name,
        provider=body.provider,
        api_key=body.api_key,
        base_url=str(body.base_url) if body.base_url else None,
        options=dict(body.options),
        shared=body.shared,
        created_by=principal.user.id if isinstance(principal, UserPrincipal) else None,
        actor=actor,
    )
    await _applied(session, services, project_id)
    return ok(provider_out(row))


@router.delete("/providers/{provider_id}")
async def delete_provider(
    project_id: uuid.UUID,
    provider_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    actor: ActorDep,
    services: ServicesDep,
) -> dict[str, Any]:
    project, _ = await access.authorize_project(session, principal, project_id, WRITE)
    await gateway.delete_credential(session, project, provider_id, actor=actor)
    await _applied(session, services, project_id)
    return ok({"id": str(provider_id), "deleted": True})


@router.get("/routes", summary="Model aliases and their targets")
async def list_routes(
    project_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    await access.authorize_project(session, principal, project_id, READ)
    return ok([route_out(r) for r in await gateway.list_routes(session, project_id)])


@router.post("/routes", status_code=201, summary="Create or update the route of one alias")
async def upsert_route(
    project_id: uuid.UUID,
    body: RouteIn,
    principal: PrincipalDep,
    session: SessionDep,
    actor: ActorDep,
    services: ServicesDep,
) -> dict[str, Any]:
    project, _ = await access.authorize_project(session, principal, project_id, WRITE)
    result = route_out(await gateway.upsert_route(session, project, body.fields(), actor=actor))
    await _applied(session, services, project_id)
    return ok(result)


@router.put(
    "/routes",
    summary="Apply a routing file (JSON or YAML `routes:` list), replacing every route",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": RoutingFile.model_json_schema()},
                "application/yaml": {"schema": {"type": "string"}},
            }
        }
    },
)
async def replace_routes(
    project_id: uuid.UUID,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    actor: ActorDep,
    services: ServicesDep,
) -> dict[str, Any]:
    project, _ = await access.authorize_project(session, principal, project_id, WRITE)
    document = parse_routing_file(await request.body(), request.headers.get("content-type", ""))
    rows = await gateway.replace_routes(
        session, project, [r.fields() for r in document.routes], actor=actor
    )
    await _applied(session, services, project_id)
    return ok([route_out(r) for r in rows])


@router.delete("/routes/{route_id}")
async def delete_route(
    project_id: uuid.UUID,
    route_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    actor: ActorDep,
    services: ServicesDep,
) -> dict[str, Any]:
    project, _ = await access.authorize_project(session, principal, project_id, WRITE)
    await gateway.delete_route(session, project, route_id, actor=actor)
    await _applied(session, services, project_id)
    return ok({"id": str(route_id), "deleted": True})


@router.post("/budgets", status_code=201, summary="A USD budget for the project or one key")
async def create_budget(
    project_id: uuid.UUID,
    body: BudgetIn,
    principal: PrincipalDep,
    session: SessionDep,
    actor: ActorDep,
    services: ServicesDep,
) -> dict[str, Any]:
    project, _ = await access.authorize_project(session, principal, project_id, WRITE)
    row = await gateway.create_budget(
        session,
        project,
        api_key_id=body.api_key_id,
        period=body.period.value,
        limit_usd=body.limit_usd,
        actor=actor,
    )
    await _applied(session, services, project_id)
    return ok(budget_out(row))


@router.post("/rate-limits", status_code=201, summary="RPM/TPM for the project or one key")
async def create_limit(
    project_id: uuid.UUID,
    body: LimitIn,
    principal: PrincipalDep,
    session: SessionDep,
    actor: ActorDep,
    services: ServicesDep,
) -> dict[str, Any]:
    project, _ = await access.authorize_project(session, principal, project_id, WRITE)
    row = await gateway.create_limit(
        session, project, api_key_id=body.api_key_id, rpm=body.rpm, tpm=body.tpm, actor=actor
    )
    await _applied(session, services, project_id)
    return ok(limit_out(row))


@router.post("/prices", status_code=201, summary="Override a model's price for this project")
async def upsert_price(
    project_id: uuid.UUID,
    body: PriceIn,
    principal: PrincipalDep,
    session: SessionDep,
    actor: ActorDep,
    services: ServicesDep,
) -> dict[str, Any]:
    project, _ = await access.authorize_project(session, principal, project_id, WRITE)
    row = await gateway.upsert_price(session, project, body.model_dump(), actor=actor)
    await _applied(session, services, project_id)
    return ok(price_out(row))


def _register_listing(
    kind: str, model: type[Budget] | type[GatewayLimit] | type[PriceOverride], shape: Any
) -> None:
    """GET and DELETE for a kind of per-project row (budgets, rate limits, prices)."""

    async def list_rows(
        project_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
    ) -> dict[str, Any]:
        await access.authorize_project(session, principal, project_id, READ)
        return ok([shape(r) for r in await gateway.list_project_rows(session, model, project_id)])

    async def delete_row(
        project_id: uuid.UUID,
        row_id: uuid.UUID,
        principal: PrincipalDep,
        session: SessionDep,
        actor: ActorDep,
        services: ServicesDep,
    ) -> dict[str, Any]:
        project, _ = await access.authorize_project(session, principal, project_id, WRITE)
        await gateway.delete_project_row(session, project, model, row_id, actor=actor)
        await _applied(session, services, project_id)
        return ok({"id": str(row_id), "deleted": True})

    router.add_api_route(
        f"/{kind}", list_rows, methods=["GET"], summary=f"List {kind}", name=f"list_{kind}"
    )
    router.add_api_route(
        f"/{kind}/{{row_id}}",
        delete_row,
        methods=["DELETE"],
        summary=f"Delete one of the {kind}",
        name=f"delete_{kind}",
    )


_register_listing("budgets", Budget, budget_out)
_register_listing("rate-limits", GatewayLimit, limit_out)
_register_listing("prices", PriceOverride, price_out)


def parse_routing_file(raw: bytes, content_type: str) -> RoutingFile:
    """A routing document from JSON or YAML, validated as a whole."""
    try:
        data = yaml.safe_load(raw) if "yaml" in content_type else orjson.loads(raw)
    except (yaml.YAMLError, orjson.JSONDecodeError) as exc:
        raise InvalidInput(
            f"Routing file is not valid {'YAML' if 'yaml' in content_type else 'JSON'}: {exc}",
            code="invalid_routing_file",
        ) from exc
    try:
        return RoutingFile.model_validate(data)
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        first = details[0] if details else {"field": "routes", "message": "invalid"}
        raise ValidationFailed(
            f"Invalid field '{first['field']}': {first['message']}", details=details
        ) from exc
