"""jobs and items say what their cost is in, and how many calls had no known price

Revision ID: 0009_results
Revises: 0008
Create Date: 2026-11-29 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_results"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("jobs", "items"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("cost_currency", sa.String(length=8), nullable=True))
            batch_op.add_column(
                sa.Column("unpriced_calls", sa.Integer(), server_default="0", nullable=False)
            )


def downgrade() -> None:
    for table in ("jobs", "items"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("unpriced_calls")
            batch_op.drop_column("cost_currency")
