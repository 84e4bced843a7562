"""semantic cache embeddings model

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 15:14:00.330402
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("gateway_routes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("semantic_embeddings", sa.String(length=200), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("gateway_routes", schema=None) as batch_op:
        batch_op.drop_column("semantic_embeddings")
