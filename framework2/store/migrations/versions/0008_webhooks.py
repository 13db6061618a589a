"""The webhook outbox: accepted webhooks waiting for (or handed to) Prefect as events; indexes for the dashboard's
newest-runs and newest-releases queries.

Revision ID: 0008_webhooks
Revises: 0007_experience
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_webhooks"
down_revision: str | None = "0007_experience"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("delivery_id", sa.String(200), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("system", sa.String(16), nullable=False),
        sa.Column("event", sa.String(100), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("source", "delivery_id", name="uq_webhook_delivery_source_delivery"),
    )
    op.create_index("ix_webhook_delivery_status_received", "webhook_delivery", ["status", "received_at"])
    op.create_index("ix_analysis_run_system_started", "analysis_run", ["system", "started_at"])
    op.create_index("ix_release_started", "release", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_release_started", table_name="release")
    op.drop_index("ix_analysis_run_system_started", table_name="analysis_run")
    op.drop_index("ix_webhook_delivery_status_received", table_name="webhook_delivery")
    op.drop_table("webhook_delivery")
