"""All query routers as one, for the app to include."""

from __future__ import annotations

from fastapi import APIRouter

from brokle_server.query import routes_admin, routes_discovery, routes_query, routes_sdk

router = APIRouter()
router.include_router(routes_query.router)
router.include_router(routes_discovery.router)
router.include_router(routes_sdk.router)
router.include_router(routes_admin.router)
