"""boxes and their assets (seed 003)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from conveyor.core.models import JSONType, UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "boxes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_boxes_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_boxes")),
    )
    with op.batch_alter_table("boxes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_boxes_client_created", ["client_id", "created_at", "id"], unique=False
        )

    op.create_table(
        "box_assets",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("box_id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("source_type", sa.String(length=16), nullable=False),
        sa.Column("parent_id", sa.String(length=36), nullable=True),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column("config", JSONType, nullable=True),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.Column("file_asset_id", sa.String(length=36), nullable=True),
        sa.Column("settled_status", sa.String(length=16), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("external_task_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["box_id"], ["boxes.id"], name=op.f("fk_box_assets_box_id_boxes"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_box_assets_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["box_assets.id"],
            name=op.f("fk_box_assets_parent_id_box_assets"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_box_assets_job_id_jobs"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["file_asset_id"],
            ["assets.id"],
            name=op.f("fk_box_assets_file_asset_id_assets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_box_assets")),
    )
    with op.batch_alter_table("box_assets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_box_assets_box_created", ["box_id", "created_at", "id"], unique=False
        )
        batch_op.create_index("ix_box_assets_job", ["job_id"], unique=False)
        batch_op.create_index(
            "ix_box_assets_unsettled", ["settled_status", "created_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("box_assets")
    op.drop_table("boxes")
