"""PLOS release records: what went out, what happened, and the evidence.

Revision ID: 0003_releases
Revises: 0002_pricing
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_releases"
down_revision: str | None = "0002_pricing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "release",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("analysis_run.id"), nullable=True),
        sa.Column("flow_run_id", sa.String(36), nullable=True),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("app", sa.String(63), nullable=False),
        sa.Column("image", sa.String(500), nullable=False),
        sa.Column("revision", sa.String(63), nullable=False),
        sa.Column("from_colour", sa.String(8), nullable=True),
        sa.Column("to_colour", sa.String(8), nullable=False),
        sa.Column("previous_image", sa.String(500), nullable=True),
        sa.Column("previous_revision", sa.String(63), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("phase", sa.String(24), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("predicted_success", sa.Float(), nullable=True),
        sa.Column("succeeded", sa.Boolean(), nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
    )
    op.create_index("ix_release_status", "release", ["status"])
    op.create_index("ix_release_app_started", "release", ["app", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_release_app_started", table_name="release")
    op.drop_index("ix_release_status", table_name="release")
    op.drop_table("release")
