"""PPOS project operations tables: the health time series, slip-risk predictions, allocations.

Revision ID: 0005_portfolio
Revises: 0004_planning
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_portfolio"
down_revision: str | None = "0004_planning"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pp_health",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("analysis_run.id"), nullable=False),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("components", sa.JSON(), nullable=False),
        sa.Column("top_reason", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_pp_health_run_id", "pp_health", ["run_id"])
    op.create_index("ix_pp_health_project_created", "pp_health", ["project", "created_at"])
    op.create_table(
        "pp_risk",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("analysis_run.id"), nullable=False),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("basis", sa.String(16), nullable=False),
        sa.Column("drivers", sa.JSON(), nullable=False),
        sa.Column("mitigations", sa.JSON(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("run_id", "project", name="uq_pp_risk_run_project"),
    )
    op.create_index("ix_pp_risk_run_id", "pp_risk", ["run_id"])
    op.create_table(
        "pp_allocation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("analysis_run.id"), nullable=False),
        sa.Column("person", sa.String(200), nullable=False),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("days", sa.Float(), nullable=False),
    )
    op.create_index("ix_pp_allocation_run_id", "pp_allocation", ["run_id"])


def downgrade() -> None:
    for table in ("pp_allocation", "pp_risk", "pp_health"):
        op.drop_table(table)
