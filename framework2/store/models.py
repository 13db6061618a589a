"""Tables the systems share. Every analysis writes an ``AnalysisRun`` with the identity of its inputs, so
a result can be explained later; rows that fail validation go to ``QuarantinedRow`` with their reason.

Pricing (PPIS) tables come first; later systems add theirs in new migrations.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Timezone-aware now in UTC (the store keeps UTC everywhere)."""
    return datetime.now(UTC)


def _ts(**kwargs: Any) -> Any:
    return Field(sa_type=DateTime(timezone=True), **kwargs)


def _json() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


# --- shared -----------------------------------------------------------------------------------------


class AnalysisRun(SQLModel, table=True):
    """One run of one system: what it read, with which parameters, and what it concluded."""

    __tablename__ = "analysis_run"
    # The dashboard and /metrics read each system's newest runs.
    __table_args__ = (Index("ix_analysis_run_system_started", "system", "started_at"),)

    id: str = Field(primary_key=True, max_length=36)
    system: str = Field(index=True, max_length=16)
    flow_run_id: str | None = Field(default=None, max_length=36)
    started_at: datetime = _ts(default_factory=utcnow, index=True)
    finished_at: datetime | None = _ts(default=None)
    status: str = Field(default="running", max_length=16, description="running | completed | failed | skipped")
    parameters: dict[str, Any] = _json()
    inputs: dict[str, Any] = _json()
    outcome: dict[str, Any] = _json()
    model_version: str = Field(default="", max_length=64)
    quarantined: int = 0
    error: str | None = None


class QuarantinedRow(SQLModel, table=True):
    """An input row that failed validation, kept with its reason instead of being dropped."""

    __tablename__ = "quarantined_row"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str | None = Field(default=None, foreign_key="analysis_run.id", index=True, max_length=36)
    system: str = Field(index=True, max_length=16)
    source: str = Field(max_length=200)
    reason: str
    payload: dict[str, Any] = _json()
    created_at: datetime = _ts(default_factory=utcnow)


class SystemHealth(SQLModel, table=True):
    """A health score for one system at one time, with the parts it is made of."""

    __tablename__ = "system_health"

    id: int | None = Field(default=None, primary_key=True)
    system: str = Field(index=True, max_length=16)
    measured_at: datetime = _ts(default_factory=utcnow, index=True)
    score: float
    success_rate: float
    freshness: float
    quality: float
    last_status: str | None = Field(default=None, max_length=16)
    last_run_at: datetime | None = _ts(default=None)
    orchestration_run_id: str | None = Field(default=None, max_length=36)
    components: dict[str, Any] = _json()


class RunLock(SQLModel, table=True):
    """A lease (``framework2.store.locks``): while its row names a holder and has not expired, only that holder
    does the work the name guards — one pricing run, one PPOS run, one PSO health roll-up at a time — across
    processes and machines. The primary key on the name is what makes taking it atomic."""

    __tablename__ = "run_lock"

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=36, description="The analysis run (or PSO flow run) holding the lease.")
    label: str = Field(default="", max_length=200, description="The holder as a person reads it.")
    acquired_at: datetime = _ts(default_factory=utcnow)
    expires_at: datetime = _ts(description="After this a crashed holder's lease may be taken over.")


# --- PPIS: pricing ------------------------------------------------------------------------------------


class Product(SQLModel, table=True):
    """Our catalogue: cost, current price and per-SKU guardrail overrides (null = policy default)."""

    __tablename__ = "product"

    sku: str = Field(primary_key=True, max_length=64)
    name: str = Field(default="", max_length=200)
    category: str = Field(index=True, max_length=100)
    cost: float
    price: float
    currency: str = Field(default="EUR", max_length=3)
    min_markup: float | None = None
    max_markup: float | None = None
    max_change_pct: float | None = None
    price_ending: float | None = None
    active: bool = True
    updated_at: datetime = _ts(default_factory=utcnow)


class SalesRecord(SQLModel, table=True):
    """Units sold of one SKU on one day at one price."""

    __tablename__ = "sales_record"
    __table_args__ = (UniqueConstraint("sku", "day", name="uq_sales_sku_day"),)

    id: int | None = Field(default=None, primary_key=True)
    sku: str = Field(foreign_key="product.sku", index=True, max_length=64)
    day: date = Field(index=True)
    price: float
    units: int
    promo: bool | None = Field(default=None, description="A promotion day (None: not said; price cuts are found).")


class FeedSnapshot(SQLModel, table=True):
    """One collection attempt of one competitor feed: ok with its offers, or failed with the reason."""

    __tablename__ = "feed_snapshot"
    __table_args__ = (Index("ix_feed_snapshot_feed_fetched", "feed", "fetched_at"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str | None = Field(default=None, foreign_key="analysis_run.id", max_length=36)
    feed: str = Field(max_length=200)
    competitor: str = Field(max_length=200)
    fetched_at: datetime = _ts(default_factory=utcnow)
    status: str = Field(max_length=16, description="ok | failed")
    reason: str | None = None
    offer_count: int = 0
    quarantined_count: int = 0


class CompetitorOffer(SQLModel, table=True):
    """A validated competitor price from one feed snapshot."""

    __tablename__ = "competitor_offer"

    id: int | None = Field(default=None, primary_key=True)
    snapshot_id: int = Field(foreign_key="feed_snapshot.id", index=True)
    competitor: str = Field(max_length=200)
    sku: str = Field(index=True, max_length=64)
    price: float
    in_stock: bool = True
    observed_at: datetime = _ts()


class MarketPosition(SQLModel, table=True):
    """Where one SKU stood against the market in one run (index = ours / competitor x 100)."""

    __tablename__ = "market_position"
    __table_args__ = (UniqueConstraint("run_id", "sku", name="uq_position_run_sku"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="analysis_run.id", index=True, max_length=36)
    sku: str = Field(index=True, max_length=64)
    our_price: float
    reference_price: float | None = None
    min_price: float | None = None
    index_vs_avg: float | None = None
    index_vs_min: float | None = None
    position: str = Field(max_length=32)
    n_offers: int = 0


class PriceRecommendation(SQLModel, table=True):
    """A recommended price with its reasons: the optimum, the binding guardrail and the projected effect."""

    __tablename__ = "price_recommendation"
    __table_args__ = (UniqueConstraint("run_id", "sku", name="uq_recommendation_run_sku"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="analysis_run.id", index=True, max_length=36)
    sku: str = Field(index=True, max_length=64)
    current_price: float
    recommended_price: float
    optimal_price: float | None = None
    change_pct: float
    binding_guardrail: str | None = Field(default=None, max_length=32)
    conflicts: str = ""
    elasticity: float | None = None
    elasticity_low: float | None = None
    elasticity_high: float | None = None
    profit_delta: float | None = None
    profit_delta_low: float | None = None
    profit_delta_high: float | None = None
    revenue_delta: float | None = None
    revenue_delta_low: float | None = None
    revenue_delta_high: float | None = None
    gain_odds: float | None = Field(
        default=None, description="P(the move raises profit) over the elasticity's uncertainty; None without one."
    )
    status: str = Field(
        max_length=24,
        description="applied | unchanged | pending_approval | approved | rejected | advisory | superseded",
    )
    explanation: str = ""
    decided_by: str | None = Field(default=None, max_length=200)
    decision_note: str | None = None
    created_at: datetime = _ts(default_factory=utcnow)


# --- PLOS: launch operations -------------------------------------------------------------------------


class Release(SQLModel, table=True):
    """One blue-green release of one app: what went out, what happened, and the evidence for the decision.

    ``features`` and ``outcome`` are the launch-success model's training data: the facts known before the
    release and whether it was promoted and kept (``succeeded``).
    """

    __tablename__ = "release"
    __table_args__ = (
        Index("ix_release_app_started", "app", "started_at"),
        Index("ix_release_started", "started_at"),  # the dashboard's newest releases of all apps
    )

    id: str = Field(primary_key=True, max_length=36)
    run_id: str | None = Field(default=None, foreign_key="analysis_run.id", max_length=36)
    flow_run_id: str | None = Field(default=None, max_length=36)
    namespace: str = Field(max_length=63)
    app: str = Field(max_length=63)
    image: str = Field(max_length=500)
    revision: str = Field(max_length=63)
    from_colour: str | None = Field(default=None, max_length=8)
    to_colour: str = Field(max_length=8)
    previous_image: str | None = Field(default=None, max_length=500)
    previous_revision: str | None = Field(default=None, max_length=63)
    status: str = Field(
        default="running",
        index=True,
        max_length=16,
        description="planned | running | promoted | rolled_back | failed | aborted | paused",
    )
    phase: str = Field(default="preflight", max_length=24, description="Last step reached.")
    started_at: datetime = _ts(default_factory=utcnow)
    promoted_at: datetime | None = _ts(default=None)
    finished_at: datetime | None = _ts(default=None)
    predicted_success: float | None = None
    succeeded: bool | None = None
    reason: str = ""
    features: dict[str, Any] = _json()
    evidence: dict[str, Any] = _json()


# --- PPMS: project management --------------------------------------------------------------------------


class PmProject(SQLModel, table=True):
    """A project read from a source (GitHub repository, Jira project, CSV)."""

    __tablename__ = "pm_project"

    key: str = Field(primary_key=True, max_length=200)
    name: str = Field(max_length=200)
    source: str = Field(max_length=16)
    target_date: date | None = None
    updated_at: datetime = _ts(default_factory=utcnow)


class PmTask(SQLModel, table=True):
    """A work item with what prioritisation, assignment and forecasting need."""

    __tablename__ = "pm_task"

    key: str = Field(primary_key=True, max_length=200)
    project: str = Field(foreign_key="pm_project.key", index=True, max_length=200)
    title: str = ""
    status: str = Field(max_length=16, index=True, description="todo | in_progress | done")
    type: str = Field(default="task", max_length=32)
    labels: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    estimate_days: float | None = None
    assignee: str | None = Field(default=None, max_length=200)
    required_skills: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts()
    started_at: datetime | None = _ts(default=None)
    done_at: datetime | None = _ts(default=None)
    updated_at: datetime = _ts()
    milestone: str | None = Field(default=None, max_length=200)
    business_value: float | None = None
    time_criticality: float | None = None
    risk_reduction: float | None = None
    reach: float | None = None
    impact: float | None = None
    confidence: float | None = None


class PmDependency(SQLModel, table=True):
    """``task`` cannot start before ``depends_on`` is done; either may be in another project."""

    __tablename__ = "pm_dependency"
    __table_args__ = (UniqueConstraint("task", "depends_on", name="uq_pm_dependency"),)

    id: int | None = Field(default=None, primary_key=True)
    task: str = Field(index=True, max_length=200)
    depends_on: str = Field(index=True, max_length=200)


class PmPerson(SQLModel, table=True):
    """Someone who can be assigned work: skills, weekly capacity and time off."""

    __tablename__ = "pm_person"

    handle: str = Field(primary_key=True, max_length=200)
    name: str = ""
    skills: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    weekly_capacity_days: float = 4.0
    time_off: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class PmSourceCursor(SQLModel, table=True):
    """Where the last incremental read of a source stopped (its newest updated-at)."""

    __tablename__ = "pm_source_cursor"

    source: str = Field(primary_key=True, max_length=200)
    cursor: datetime = _ts()


class PmBacklogEntry(SQLModel, table=True):
    """One task's place in a prioritisation run, with the parts of its score and why."""

    __tablename__ = "pm_backlog_entry"
    __table_args__ = (UniqueConstraint("run_id", "task", name="uq_pm_backlog_run_task"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="analysis_run.id", index=True, max_length=36)
    task: str = Field(max_length=200)
    rank: int
    score: float
    ready: bool
    parts: dict[str, Any] = _json()
    why: str = ""


class PmAssignment(SQLModel, table=True):
    """A task given to a person by an assignment run, or left unstaffed (person None) with the reason."""

    __tablename__ = "pm_assignment"
    __table_args__ = (UniqueConstraint("run_id", "task", name="uq_pm_assignment_run_task"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="analysis_run.id", index=True, max_length=36)
    task: str = Field(max_length=200)
    person: str | None = Field(default=None, max_length=200)
    why: str = ""


class PmForecast(SQLModel, table=True):
    """A completion forecast of a project (or one of its milestones) from one forecast run."""

    __tablename__ = "pm_forecast"
    __table_args__ = (Index("ix_pm_forecast_project_created", "project", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="analysis_run.id", index=True, max_length=36)
    project: str = Field(max_length=200)
    milestone: str | None = Field(default=None, max_length=200)
    method: str = Field(max_length=24)
    p50: date | None = None
    p85: date | None = None
    p95: date | None = None
    target_date: date | None = None
    probability_on_time: float | None = None
    remaining_tasks: int = 0
    reason: str = ""
    details: dict[str, Any] = _json()
    created_at: datetime = _ts(default_factory=utcnow)


# --- project operations (PPOS) ------------------------------------------------------------------------


class PpHealth(SQLModel, table=True):
    """One project's (or the portfolio's, project "portfolio") health at one run: the time series of
    scores with each component's score, weight and the points it took off."""

    __tablename__ = "pp_health"
    __table_args__ = (Index("ix_pp_health_project_created", "project", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="analysis_run.id", index=True, max_length=36)
    project: str = Field(max_length=200)
    score: float
    components: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    top_reason: str = ""
    created_at: datetime = _ts(default_factory=utcnow)


class PpRisk(SQLModel, table=True):
    """A project's slip-risk prediction at one run: probability, drivers and the mitigations they call for."""

    __tablename__ = "pp_risk"
    __table_args__ = (UniqueConstraint("run_id", "project", name="uq_pp_risk_run_project"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="analysis_run.id", index=True, max_length=36)
    project: str = Field(max_length=200)
    probability: float
    basis: str = Field(max_length=16, description="model | heuristic")
    drivers: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    mitigations: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    features: dict[str, Any] = _json()  # what the prediction saw: the classifier's training data once it is due
    reason: str = ""
    created_at: datetime = _ts(default_factory=utcnow)


class PpAllocation(SQLModel, table=True):
    """Days of one person on one project in one week, from an allocation run."""

    __tablename__ = "pp_allocation"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="analysis_run.id", index=True, max_length=36)
    person: str = Field(max_length=200)
    project: str = Field(max_length=200)
    week: date
    days: float


# --- context evolution (PCES) -------------------------------------------------------------------------


class RequirementRow(SQLModel, table=True):
    """A requirement as it stands now (its newest version), keyed by its id."""

    __tablename__ = "requirement"

    id: str = Field(primary_key=True, max_length=200)
    source_name: str = Field(max_length=200, description="The Requirements Source block it was read through.")
    source: str = Field(max_length=500, description="File path relative to the source, or jira:KEY.")
    title: str = ""
    project: str | None = Field(default=None, max_length=200, index=True)
    owner: str | None = Field(default=None, max_length=200)
    status: str = Field(default="draft", max_length=16, description="draft|approved|implemented|retired|removed")
    version: int = 1
    content_hash: str = Field(max_length=64)
    updated_at: datetime = _ts(default_factory=utcnow)


class RequirementVersion(SQLModel, table=True):
    """One version of a requirement: its whole content and the structured diff from the version before."""

    __tablename__ = "requirement_version"
    __table_args__ = (UniqueConstraint("requirement", "version", name="uq_requirement_version"),)

    id: int | None = Field(default=None, primary_key=True)
    requirement: str = Field(max_length=200, index=True)
    version: int
    content_hash: str = Field(max_length=64)
    content: dict[str, Any] = _json()
    diff: dict[str, Any] = _json()
    commit: str | None = Field(default=None, max_length=64, description="Git commit the version was read at.")
    run_id: str | None = Field(default=None, foreign_key="analysis_run.id", max_length=36)
    created_at: datetime = _ts(default_factory=utcnow)


class ChangeImpactRow(SQLModel, table=True):
    """The impact of one requirement version and what was decided about it (by the policy or a person)."""

    __tablename__ = "change_impact"
    __table_args__ = (UniqueConstraint("requirement", "version", name="uq_change_impact_version"),)

    id: int | None = Field(default=None, primary_key=True)
    requirement: str = Field(max_length=200, index=True)
    version: int
    run_id: str | None = Field(default=None, foreign_key="analysis_run.id", max_length=36)
    report: dict[str, Any] = _json()
    action: str = Field(max_length=24, description="auto_accept | notify | require_approval (the policy's)")
    reasons: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = Field(max_length=24, description="accepted | notified | pending_approval | approved | rejected")
    decided_by: str | None = Field(default=None, max_length=200)
    decision_note: str = ""
    decided_at: datetime | None = _ts(default=None)
    created_at: datetime = _ts(default_factory=utcnow)


class StakeholderMessage(SQLModel, table=True):
    """The outbox: a message for one stakeholder, queued until a channel took it (failures stay queued)."""

    __tablename__ = "stakeholder_message"
    __table_args__ = (Index("ix_stakeholder_message_status", "status", "mode"),)

    id: int | None = Field(default=None, primary_key=True)
    recipient: str = Field(max_length=200)
    mode: str = Field(max_length=16, description="immediate | digest")
    channel: str | None = Field(default=None, max_length=200)
    subject: str = ""
    body: str = ""
    change_keys: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = Field(
        default="queued", max_length=16, description="queued | sent | withdrawn (a decision superseded it) | expired"
    )
    attempts: int = 0
    last_error: str | None = None
    created_at: datetime = _ts(default_factory=utcnow)
    sent_at: datetime | None = _ts(default=None)
    next_attempt_at: datetime | None = _ts(default=None)
    failed_rounds: int = 0


# --- user experience (PUXT) ---------------------------------------------------------------------------


class UxExperiment(SQLModel, table=True):
    """An experiment as configured (its validated spec), and where its recommendation stands."""

    __tablename__ = "ux_experiment"

    key: str = Field(primary_key=True, max_length=200)
    name: str = ""
    spec: dict[str, Any] = _json()
    decision: str | None = Field(default=None, max_length=16, description="ship | keep running | stop")
    updated_at: datetime = _ts(default_factory=utcnow)


class UxExperimentResult(SQLModel, table=True):
    """One analysis of one experiment: users per arm, SRM, every comparison, and the recommendation with why."""

    __tablename__ = "ux_experiment_result"
    __table_args__ = (Index("ix_ux_experiment_result_experiment_created", "experiment", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="analysis_run.id", index=True, max_length=36)
    experiment: str = Field(max_length=200)
    users: dict[str, Any] = _json()
    srm_p_value: float | None = None
    srm_flagged: bool = False
    decision: str = Field(max_length=16, description="ship | keep running | stop")
    reason: str = ""
    decisive: bool = False
    guardrails_breached: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    analysis: dict[str, Any] = _json()
    created_at: datetime = _ts(default_factory=utcnow)


class UxJourneyReport(SQLModel, table=True):
    """One journey analysis: the funnel, the common paths, each step's removal effect and the ranked
    recommendations drawn from them."""

    __tablename__ = "ux_journey_report"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="analysis_run.id", index=True, max_length=36)
    name: str = Field(max_length=200)
    funnel: dict[str, Any] = _json()
    paths: dict[str, Any] = _json()
    removal: dict[str, Any] = _json()
    recommendations: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts(default_factory=utcnow, index=True)


class UxA11yScan(SQLModel, table=True):
    """One page scanned by axe-core at one time: whether it loaded, and its violations by impact."""

    __tablename__ = "ux_a11y_scan"
    __table_args__ = (Index("ix_ux_a11y_scan_url_scanned", "url", "scanned_at"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="analysis_run.id", index=True, max_length=36)
    url: str = Field(max_length=1000)
    level: str = Field(max_length=4)
    status: str = Field(max_length=16, description="ok | failed (a failed page has no violation count)")
    error: str | None = None
    http_status: int | None = None
    axe_version: str = Field(default="", max_length=32)
    violations: int = 0
    by_impact: dict[str, Any] = _json()
    scanned_at: datetime = _ts(default_factory=utcnow)


class UxA11yViolation(SQLModel, table=True):
    """One rule violated on one scanned page: how many elements, how bad, and where to read the fix."""

    __tablename__ = "ux_a11y_violation"

    id: int | None = Field(default=None, primary_key=True)
    scan_id: int = Field(foreign_key="ux_a11y_scan.id", index=True)
    rule_id: str = Field(max_length=100)
    impact: str | None = Field(default=None, max_length=16)
    nodes: int = 0
    description: str = ""
    help_url: str = ""
    targets: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    wcag: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class UxRumBatch(SQLModel, table=True):
    """A file of real-user measurements ingested once (by content hash), so a re-run adds nothing twice."""

    __tablename__ = "ux_rum_batch"

    sha256: str = Field(primary_key=True, max_length=64)
    source: str = Field(max_length=500)
    rows: int = 0
    run_id: str | None = Field(default=None, foreign_key="analysis_run.id", max_length=36)
    ingested_at: datetime = _ts(default_factory=utcnow)


class UxRumMeasurement(SQLModel, table=True):
    """One real-user measurement (LCP, INP, CLS, TTFB, FCP) of one page in one release."""

    __tablename__ = "ux_rum_measurement"
    __table_args__ = (Index("ix_ux_rum_page_release_metric", "page", "release", "metric"),)

    id: int | None = Field(default=None, primary_key=True)
    batch: str = Field(foreign_key="ux_rum_batch.sha256", max_length=64)
    page: str = Field(max_length=500)
    release: str = Field(max_length=100)
    metric: str = Field(max_length=8)
    value: float
    measured_at: datetime = _ts()


class UxPerfResult(SQLModel, table=True):
    """A performance finding of one run: a synthetic probe of a URL, or a release-vs-baseline comparison of one
    page and metric, with its verdict."""

    __tablename__ = "ux_perf_result"
    __table_args__ = (Index("ix_ux_perf_result_kind_created", "kind", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="analysis_run.id", index=True, max_length=36)
    kind: str = Field(max_length=16, description="probe | comparison")
    target: str = Field(max_length=1000, description="The URL probed, or the page compared.")
    metric: str = Field(default="", max_length=16)
    release: str | None = Field(default=None, max_length=100)
    baseline: str | None = Field(default=None, max_length=100)
    verdict: str = Field(max_length=32, description="ok | slow | failed (probes); the comparison verdict")
    value: float | None = None
    details: dict[str, Any] = _json()
    created_at: datetime = _ts(default_factory=utcnow)


# --- integration surface ------------------------------------------------------------------------------


class WebhookDelivery(SQLModel, table=True):
    """The webhook outbox: an accepted webhook, stored before it is acknowledged, until the relay has handed it
    to Prefect as exactly one event (its id derived from the delivery id, so a re-send cannot duplicate it)."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("source", "delivery_id", name="uq_webhook_delivery_source_delivery"),
        Index("ix_webhook_delivery_status_received", "status", "received_at"),
        # A signed request re-sent under a new delivery id (the id header is not signed) is the same delivery.
        Index("uq_webhook_delivery_source_fingerprint", "source", "fingerprint", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=32, description="framework-set-2 | github | jira")
    delivery_id: str = Field(max_length=200, description="The sender's delivery id (or a hash of the body).")
    fingerprint: str | None = Field(
        default=None, max_length=64, description="SHA-256 of the request's signature: what a replay repeats."
    )
    event_id: str = Field(max_length=36, description="The Prefect event id this delivery becomes (UUID).")
    system: str = Field(max_length=16)
    event: str = Field(max_length=100, description="Event name without the framework2.<system>. prefix.")
    payload: dict[str, Any] = _json()
    status: str = Field(default="queued", max_length=16, description="queued | delivered | ignored")
    attempts: int = 0
    last_error: str | None = None
    received_at: datetime = _ts(default_factory=utcnow)
    delivered_at: datetime | None = _ts(default=None)
