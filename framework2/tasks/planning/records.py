"""PPMS's normalised records: what every connector (GitHub, Jira, CSV) produces and the store keeps.

Keys are globally unique strings made by the connector, e.g. ``github:octo/shop#12`` or
``jira:SHOP-12``, so dependencies may cross projects and sources. Times are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TaskStatus = Literal["todo", "in_progress", "done"]


class ProjectRecord(BaseModel):
    """A project (a GitHub repository, a Jira project, a CSV's project column)."""

    key: str = Field(..., min_length=1, description="Unique key, e.g. 'github:octo/shop' or 'jira:SHOP'.")
    name: str = Field(..., min_length=1)
    source: str = Field(..., description="github | jira | csv")
    target_date: date | None = Field(None, description="The date the project is meant to finish by, if any.")


class TaskRecord(BaseModel):
    """One work item with what scheduling, prioritisation and forecasting need."""

    key: str = Field(..., min_length=1, description="Unique key, e.g. 'github:octo/shop#12' or 'jira:SHOP-12'.")
    project: str = Field(..., description="Key of its project.")
    title: str = ""
    status: TaskStatus = "todo"
    type: str = Field("task", description="bug | feature | task | chore | ... (lower case)")
    labels: list[str] = Field(default_factory=list)
    estimate_days: float | None = Field(None, description="Estimated ideal days of work; None when unestimated.")
    assignee: str | None = None
    required_skills: list[str] = Field(default_factory=list)
    created_at: datetime
    started_at: datetime | None = None
    done_at: datetime | None = None
    updated_at: datetime
    milestone: str | None = Field(None, description="Milestone/epic/fix version name, if any.")
    # Prioritisation inputs (WSJF: business value, time criticality, risk reduction / job size; RICE: reach,
    # impact, confidence, effort). None when the source has no value for them.
    business_value: float | None = None
    time_criticality: float | None = None
    risk_reduction: float | None = None
    reach: float | None = None
    impact: float | None = None
    confidence: float | None = None


class DependencyRecord(BaseModel):
    """``task`` cannot start before ``depends_on`` is done (``depends_on`` blocks ``task``)."""

    model_config = ConfigDict(frozen=True)  # hashable: duplicates collapse

    task: str
    depends_on: str


class PersonRecord(BaseModel):
    """Someone who can be assigned work."""

    handle: str = Field(..., min_length=1, description="Login or account id, as tasks name their assignee.")
    name: str = ""
    skills: list[str] = Field(default_factory=list)
    weekly_capacity_days: float = Field(4.0, ge=0, description="Days of project work per week.")
    time_off: list[tuple[date, date]] = Field(default_factory=list, description="Inclusive (first, last) days off.")


class Batch(BaseModel):
    """What one connector run read: records to upsert, and rows it could not read (with why)."""

    projects: list[ProjectRecord] = Field(default_factory=list)
    tasks: list[TaskRecord] = Field(default_factory=list)
    dependencies: list[DependencyRecord] = Field(default_factory=list)
    people: list[PersonRecord] = Field(default_factory=list)
    rejected: list[dict] = Field(default_factory=list, description="{'source', 'reason', 'payload'} per bad row.")
    cursor: datetime | None = Field(None, description="Newest updated-at seen: the next incremental run's 'since'.")
