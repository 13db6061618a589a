"""Each price recommendation keeps the odds that its move raises profit.

Revision ID: 0011_gain_odds
Revises: 0010_webhook_fingerprint
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_gain_odds"
down_revision: str | None = "0010_webhook_fingerprint"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: recommendations stored before the odds existed have none, and neither has a missing-data hold.
    op.add_column("price_recommendation", sa.Column("gain_odds", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("price_recommendation", "gain_odds")
