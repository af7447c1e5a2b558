"""job stages are the recipe's own names: 'translating' is no longer a job status

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 01:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The stage column already says 'translating' for these jobs.
    op.execute("UPDATE jobs SET status = 'processing' WHERE status = 'translating'")
    op.execute(
        "UPDATE items SET stage = 'describing' WHERE stage = 'processing' AND job_id IN "
        "(SELECT id FROM jobs WHERE recipe = 'vehicle-damage')"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE jobs SET status = 'translating' WHERE status = 'processing' "
        "AND stage = 'translating'"
    )
