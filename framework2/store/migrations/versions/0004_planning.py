"""PPMS project management tables: projects, tasks, dependencies, people, source cursors, and results
(ranked backlog, assignments, forecasts).

Revision ID: 0004_planning
Revises: 0003_releases
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_planning"
down_revision: str | None = "0003_releases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pm_project",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("target_date", sa.Date(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "pm_task",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("project", sa.String(200), sa.ForeignKey("pm_project.key"), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("estimate_days", sa.Float(), nullable=True),
        sa.Column("assignee", sa.String(200), nullable=True),
        sa.Column("required_skills", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("milestone", sa.String(200), nullable=True),
        sa.Column("business_value", sa.Float(), nullable=True),
        sa.Column("time_criticality", sa.Float(), nullable=True),
        sa.Column("risk_reduction", sa.Float(), nullable=True),
        sa.Column("reach", sa.Float(), nullable=True),
        sa.Column("impact", sa.Float(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
    )
    op.create_index("ix_pm_task_project", "pm_task", ["project"])
    op.create_index("ix_pm_task_status", "pm_task", ["status"])
    op.create_table(
        "pm_dependency",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("depends_on", sa.String(200), nullable=False),
        sa.UniqueConstraint("task", "depends_on", name="uq_pm_dependency"),
    )
    op.create_index("ix_pm_dependency_task", "pm_dependency", ["task"])
    op.create_index("ix_pm_dependency_depends_on", "pm_dependency", ["depends_on"])
    op.create_table(
        "pm_person",
        sa.Column("handle", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("weekly_capacity_days", sa.Float(), nullable=False),
        sa.Column("time_off", sa.JSON(), nullable=False),
    )
    op.create_table(
        "pm_source_cursor",
        sa.Column("source", sa.String(200), primary_key=True),
        sa.Column("cursor", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "pm_backlog_entry",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("analysis_run.id"), nullable=False),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("ready", sa.Boolean(), nullable=False),
        sa.Column("parts", sa.JSON(), nullable=False),
        sa.Column("why", sa.String(), nullable=False),
        sa.UniqueConstraint("run_id", "task", name="uq_pm_backlog_run_task"),
    )
    op.create_index("ix_pm_backlog_entry_run_id", "pm_backlog_entry", ["run_id"])
    op.create_table(
        "pm_assignment",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("analysis_run.id"), nullable=False),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("person", sa.String(200), nullable=True),
        sa.Column("why", sa.String(), nullable=False),
        sa.UniqueConstraint("run_id", "task", name="uq_pm_assignment_run_task"),
    )
    op.create_index("ix_pm_assignment_run_id", "pm_assignment", ["run_id"])
    op.create_table(
        "pm_forecast",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("analysis_run.id"), nullable=False),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("milestone", sa.String(200), nullable=True),
        sa.Column("method", sa.String(24), nullable=False),
        sa.Column("p50", sa.Date(), nullable=True),
        sa.Column("p85", sa.Date(), nullable=True),
        sa.Column("p95", sa.Date(), nullable=True),
        sa.Column("target_date", sa.Date(), nullable=True),
        sa.Column("probability_on_time", sa.Float(), nullable=True),
        sa.Column("remaining_tasks", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_pm_forecast_run_id", "pm_forecast", ["run_id"])
    op.create_index("ix_pm_forecast_project_created", "pm_forecast", ["project", "created_at"])


def downgrade() -> None:
    for table in ("pm_forecast", "pm_assignment", "pm_backlog_entry"):
        op.drop_table(table)
    op.drop_table("pm_source_cursor")
    op.drop_table("pm_person")
    op.drop_index("ix_pm_dependency_depends_on", table_name="pm_dependency")
    op.drop_index("ix_pm_dependency_task", table_name="pm_dependency")
    op.drop_table("pm_dependency")
    op.drop_index("ix_pm_task_status", table_name="pm_task")
    op.drop_index("ix_pm_task_project", table_name="pm_task")
    op.drop_table("pm_task")
    op.drop_table("pm_project")
