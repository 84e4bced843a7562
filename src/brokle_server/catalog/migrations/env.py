"""Alembic environment: runs on the connection Brokle hands in (see catalog.db)."""

from __future__ import annotations

from alembic import context

from brokle_server.catalog import gateway_models  # noqa: F401  (registers its tables)
from brokle_server.catalog.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("catalog migrations run through `brokle migrate`, which passes a connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
