"""PPIS pricing tables: catalogue, sales, feed snapshots, offers, positions, recommendations.

Revision ID: 0002_pricing
Revises: 0001_core
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_pricing"
down_revision: str | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "product",
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("min_markup", sa.Float(), nullable=True),
        sa.Column("max_markup", sa.Float(), nullable=True),
        sa.Column("max_change_pct", sa.Float(), nullable=True),
        sa.Column("price_ending", sa.Float(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_product_category", "product", ["category"])

    op.create_table(
        "sales_record",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sku", sa.String(64), sa.ForeignKey("product.sku"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.UniqueConstraint("sku", "day", name="uq_sales_sku_day"),
    )
    op.create_index("ix_sales_record_day", "sales_record", ["day"])
    op.create_index("ix_sales_record_sku", "sales_record", ["sku"])

    op.create_table(
        "feed_snapshot",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("analysis_run.id"), nullable=True),
        sa.Column("feed", sa.String(200), nullable=False),
        sa.Column("competitor", sa.String(200), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("offer_count", sa.Integer(), nullable=False),
        sa.Column("quarantined_count", sa.Integer(), nullable=False),
    )
    op.create_index("ix_feed_snapshot_feed_fetched", "feed_snapshot", ["feed", "fetched_at"])

    op.create_table(
        "competitor_offer",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("snapshot_id", sa.Integer(), sa.ForeignKey("feed_snapshot.id"), nullable=False),
        sa.Column("competitor", sa.String(200), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("in_stock", sa.Boolean(), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_competitor_offer_sku", "competitor_offer", ["sku"])
    op.create_index("ix_competitor_offer_snapshot_id", "competitor_offer", ["snapshot_id"])

    op.create_table(
        "market_position",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("analysis_run.id"), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("our_price", sa.Float(), nullable=False),
        sa.Column("reference_price", sa.Float(), nullable=True),
        sa.Column("min_price", sa.Float(), nullable=True),
        sa.Column("index_vs_avg", sa.Float(), nullable=True),
        sa.Column("index_vs_min", sa.Float(), nullable=True),
        sa.Column("position", sa.String(32), nullable=False),
        sa.Column("n_offers", sa.Integer(), nullable=False),
        sa.UniqueConstraint("run_id", "sku", name="uq_position_run_sku"),
    )
    op.create_index("ix_market_position_run_id", "market_position", ["run_id"])
    op.create_index("ix_market_position_sku", "market_position", ["sku"])

    op.create_table(
        "price_recommendation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("analysis_run.id"), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("current_price", sa.Float(), nullable=False),
        sa.Column("recommended_price", sa.Float(), nullable=False),
        sa.Column("optimal_price", sa.Float(), nullable=True),
        sa.Column("change_pct", sa.Float(), nullable=False),
        sa.Column("binding_guardrail", sa.String(32), nullable=True),
        sa.Column("conflicts", sa.String(), nullable=False),
        sa.Column("elasticity", sa.Float(), nullable=True),
        sa.Column("elasticity_low", sa.Float(), nullable=True),
        sa.Column("elasticity_high", sa.Float(), nullable=True),
        sa.Column("profit_delta", sa.Float(), nullable=True),
        sa.Column("profit_delta_low", sa.Float(), nullable=True),
        sa.Column("profit_delta_high", sa.Float(), nullable=True),
        sa.Column("revenue_delta", sa.Float(), nullable=True),
        sa.Column("revenue_delta_low", sa.Float(), nullable=True),
        sa.Column("revenue_delta_high", sa.Float(), nullable=True),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("explanation", sa.String(), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("decision_note", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("run_id", "sku", name="uq_recommendation_run_sku"),
    )
    op.create_index("ix_price_recommendation_run_id", "price_recommendation", ["run_id"])
    op.create_index("ix_price_recommendation_sku", "price_recommendation", ["sku"])


def downgrade() -> None:
    for table in (
        "price_recommendation",
        "market_position",
        "competitor_offer",
        "feed_snapshot",
        "sales_record",
        "product",
    ):
        op.drop_table(table)
