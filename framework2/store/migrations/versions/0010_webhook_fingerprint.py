"""Replay protection that survives restarts: each webhook delivery remembers its signature's fingerprint.

Revision ID: 0010_webhook_fingerprint
Revises: 0009_run_locks
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_webhook_fingerprint"
down_revision: str | None = "0009_run_locks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, so the rows already stored stay as they are (they predate fingerprints and cannot be replayed
    # into a second event by the unique delivery id either way). A unique index, not a constraint: SQLite cannot
    # add constraints to an existing table.
    op.add_column("webhook_delivery", sa.Column("fingerprint", sa.String(64), nullable=True))
    op.create_index(
        "uq_webhook_delivery_source_fingerprint", "webhook_delivery", ["source", "fingerprint"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_webhook_delivery_source_fingerprint", table_name="webhook_delivery")
    op.drop_column("webhook_delivery", "fingerprint")
