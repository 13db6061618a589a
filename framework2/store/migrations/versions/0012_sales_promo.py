"""Sales rows may say whether the day was a promotion.

Revision ID: 0012_sales_promo
Revises: 0011_gain_odds
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_sales_promo"
down_revision: str | None = "0011_gain_odds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: a history without the flag leaves it NULL and the elasticity fit finds temporary price cuts.
    op.add_column("sales_record", sa.Column("promo", sa.Boolean(), nullable=True))


def downgrade() -> None:
    op.drop_column("sales_record", "promo")
