"""PCES context evolution tables: requirements as they stand, every version with its diff, and the impact of
each version with the decision about it, and the outbox of stakeholder messages.

Revision ID: 0006_context
Revises: 0005_portfolio
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_context"
down_revision: str | None = "0005_portfolio"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "requirement",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("source_name", sa.String(200), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("project", sa.String(200), nullable=True),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_requirement_project", "requirement", ["project"])
    op.create_table(
        "requirement_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("requirement", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("diff", sa.JSON(), nullable=False),
        sa.Column("commit", sa.String(64), nullable=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("analysis_run.id"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("requirement", "version", name="uq_requirement_version"),
    )
    op.create_index("ix_requirement_version_requirement", "requirement_version", ["requirement"])
    op.create_table(
        "change_impact",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("requirement", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("analysis_run.id"), nullable=True),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("decision_note", sa.String(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("requirement", "version", name="uq_change_impact_version"),
    )
    op.create_index("ix_change_impact_requirement", "change_impact", ["requirement"])
    op.create_table(
        "stakeholder_message",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("recipient", sa.String(200), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(200), nullable=True),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("body", sa.String(), nullable=False),
        sa.Column("change_keys", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_stakeholder_message_status", "stakeholder_message", ["status", "mode"])


def downgrade() -> None:
    op.drop_index("ix_stakeholder_message_status", table_name="stakeholder_message")
    op.drop_table("stakeholder_message")
    op.drop_index("ix_change_impact_requirement", table_name="change_impact")
    op.drop_table("change_impact")
    op.drop_index("ix_requirement_version_requirement", table_name="requirement_version")
    op.drop_table("requirement_version")
    op.drop_index("ix_requirement_project", table_name="requirement")
    op.drop_table("requirement")
