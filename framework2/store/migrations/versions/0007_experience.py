"""PUXT user experience tables: experiments and their analyses, journey reports, accessibility scans with
their violations, ingested real-user measurements and performance findings.

Revision ID: 0007_experience
Revises: 0006_context
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_experience"
down_revision: str | None = "0006_context"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _run_id(nullable: bool = False) -> sa.Column:
    return sa.Column("run_id", sa.String(36), sa.ForeignKey("analysis_run.id"), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "ux_experiment",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("decision", sa.String(16), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "ux_experiment_result",
        sa.Column("id", sa.Integer(), primary_key=True),
        _run_id(),
        sa.Column("experiment", sa.String(200), nullable=False),
        sa.Column("users", sa.JSON(), nullable=False),
        sa.Column("srm_p_value", sa.Float(), nullable=True),
        sa.Column("srm_flagged", sa.Boolean(), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("decisive", sa.Boolean(), nullable=False),
        sa.Column("guardrails_breached", sa.JSON(), nullable=False),
        sa.Column("analysis", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ux_experiment_result_run_id", "ux_experiment_result", ["run_id"])
    op.create_index("ix_ux_experiment_result_experiment_created", "ux_experiment_result", ["experiment", "created_at"])
    op.create_table(
        "ux_journey_report",
        sa.Column("id", sa.Integer(), primary_key=True),
        _run_id(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("funnel", sa.JSON(), nullable=False),
        sa.Column("paths", sa.JSON(), nullable=False),
        sa.Column("removal", sa.JSON(), nullable=False),
        sa.Column("recommendations", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ux_journey_report_run_id", "ux_journey_report", ["run_id"])
    op.create_index("ix_ux_journey_report_created_at", "ux_journey_report", ["created_at"])
    op.create_table(
        "ux_a11y_scan",
        sa.Column("id", sa.Integer(), primary_key=True),
        _run_id(),
        sa.Column("url", sa.String(1000), nullable=False),
        sa.Column("level", sa.String(4), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("axe_version", sa.String(32), nullable=False),
        sa.Column("violations", sa.Integer(), nullable=False),
        sa.Column("by_impact", sa.JSON(), nullable=False),
        sa.Column("scanned_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ux_a11y_scan_run_id", "ux_a11y_scan", ["run_id"])
    op.create_index("ix_ux_a11y_scan_url_scanned", "ux_a11y_scan", ["url", "scanned_at"])
    op.create_table(
        "ux_a11y_violation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("scan_id", sa.Integer(), sa.ForeignKey("ux_a11y_scan.id"), nullable=False),
        sa.Column("rule_id", sa.String(100), nullable=False),
        sa.Column("impact", sa.String(16), nullable=True),
        sa.Column("nodes", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("help_url", sa.String(), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("wcag", sa.JSON(), nullable=False),
    )
    op.create_index("ix_ux_a11y_violation_scan_id", "ux_a11y_violation", ["scan_id"])
    op.create_table(
        "ux_rum_batch",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        _run_id(nullable=True),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "ux_rum_measurement",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("batch", sa.String(64), sa.ForeignKey("ux_rum_batch.sha256"), nullable=False),
        sa.Column("page", sa.String(500), nullable=False),
        sa.Column("release", sa.String(100), nullable=False),
        sa.Column("metric", sa.String(8), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ux_rum_page_release_metric", "ux_rum_measurement", ["page", "release", "metric"])
    op.create_table(
        "ux_perf_result",
        sa.Column("id", sa.Integer(), primary_key=True),
        _run_id(),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.String(1000), nullable=False),
        sa.Column("metric", sa.String(16), nullable=False),
        sa.Column("release", sa.String(100), nullable=True),
        sa.Column("baseline", sa.String(100), nullable=True),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ux_perf_result_run_id", "ux_perf_result", ["run_id"])
    op.create_index("ix_ux_perf_result_kind_created", "ux_perf_result", ["kind", "created_at"])


def downgrade() -> None:
    for index, table in [
        ("ix_ux_perf_result_kind_created", "ux_perf_result"),
        ("ix_ux_perf_result_run_id", "ux_perf_result"),
        ("ix_ux_rum_page_release_metric", "ux_rum_measurement"),
        ("ix_ux_a11y_violation_scan_id", "ux_a11y_violation"),
        ("ix_ux_a11y_scan_url_scanned", "ux_a11y_scan"),
        ("ix_ux_a11y_scan_run_id", "ux_a11y_scan"),
        ("ix_ux_journey_report_created_at", "ux_journey_report"),
        ("ix_ux_journey_report_run_id", "ux_journey_report"),
        ("ix_ux_experiment_result_experiment_created", "ux_experiment_result"),
        ("ix_ux_experiment_result_run_id", "ux_experiment_result"),
    ]:
        op.drop_index(index, table_name=table)
    for table in [
        "ux_perf_result",
        "ux_rum_measurement",
        "ux_rum_batch",
        "ux_a11y_violation",
        "ux_a11y_scan",
        "ux_journey_report",
        "ux_experiment_result",
        "ux_experiment",
    ]:
        op.drop_table(table)
