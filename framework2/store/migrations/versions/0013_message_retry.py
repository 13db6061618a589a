"""Undelivered stakeholder messages are retried on a schedule with back-off, then expire.

Revision ID: 0013_message_retry
Revises: 0012_sales_promo
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_message_retry"
down_revision: str | None = "0012_sales_promo"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL: due now (every message queued before this release, and every new one until its first failure).
    op.add_column("stakeholder_message", sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("stakeholder_message", sa.Column("failed_rounds", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("stakeholder_message", "failed_rounds")
    op.drop_column("stakeholder_message", "next_attempt_at")
