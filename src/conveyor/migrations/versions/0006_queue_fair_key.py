"""queue tasks say whose work they are (fair_key), so workers share slots between clients

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 02:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("queue_tasks", sa.Column("fair_key", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("queue_tasks", "fair_key")
