"""Core tables every system shares: analysis runs, quarantine, system health.

Revision ID: 0001_core
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_core"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "analysis_run",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("system", sa.String(16), nullable=False),
        sa.Column("flow_run_id", sa.String(36), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.JSON(), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("quarantined", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
    )
    op.create_index("ix_analysis_run_started_at", "analysis_run", ["started_at"])
    op.create_index("ix_analysis_run_system", "analysis_run", ["system"])

    op.create_table(
        "quarantined_row",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("analysis_run.id"), nullable=True),
        sa.Column("system", sa.String(16), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_quarantined_row_run_id", "quarantined_row", ["run_id"])
    op.create_index("ix_quarantined_row_system", "quarantined_row", ["system"])

    op.create_table(
        "system_health",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("system", sa.String(16), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("success_rate", sa.Float(), nullable=False),
        sa.Column("freshness", sa.Float(), nullable=False),
        sa.Column("quality", sa.Float(), nullable=False),
        sa.Column("last_status", sa.String(16), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("orchestration_run_id", sa.String(36), nullable=True),
        sa.Column("components", sa.JSON(), nullable=False),
    )
    op.create_index("ix_system_health_measured_at", "system_health", ["measured_at"])
    op.create_index("ix_system_health_system", "system_health", ["system"])


def downgrade() -> None:
    op.drop_table("system_health")
    op.drop_table("quarantined_row")
    op.drop_table("analysis_run")
