"""The system dashboard: one server-rendered page with the seed's list of metrics, read from the store.

``GET /framework-set-2/dashboard`` shows, per section: system health and performance (PSO's health score with
a sparkline, last run, success rate over ``successWindow`` runs, freshness against the system's interval),
active project status (PPOS health and trend, PPMS forecast), the deployment pipeline (PLOS releases), user
experience (PUXT experiments, accessibility, performance), pricing (PPIS recommendations and market position),
resource utilisation (PPOS allocation against capacity) and a paginated list of recent runs, each linking to
its flow run in the Prefect UI. ``/framework-set-2/dashboard/runs?page=N`` and ``/framework-set-2/dashboard/data``
give the same numbers as JSON.

The page stays fast on a store with years of history: every builder aggregates in SQL (GROUP BY,
newest-per-key subqueries, LIMIT) and reads only the columns it shows, never a whole table. The builders are
plain functions of an engine, so tests and ``bench/dashboard_bench.py`` call them without HTTP. Charts are
inline SVG written here (no JavaScript, nothing fetched), every text escaped.
"""

from __future__ import annotations

import html
import math
import statistics
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from framework2.config import Settings, get_settings
from framework2.links import ui_url
from framework2.store.engine import open_store, session_scope
from framework2.store.models import (
    AnalysisRun,
    MarketPosition,
    PmForecast,
    PmPerson,
    PmProject,
    PpAllocation,
    PpHealth,
    PriceRecommendation,
    Release,
    SystemHealth,
    UxA11yScan,
    UxExperiment,
    UxExperimentResult,
    UxPerfResult,
    utcnow,
)
from framework2.store.runs import as_utc
from framework2.systems import SYSTEMS
from framework2.tasks.health import freshness, human_span

DASHBOARD_PATH = "/framework-set-2/dashboard"
PAGE_SIZE = 50  # recent runs per page
MAX_PAGE = 1_000_000  # far past any store's runs; bounds the OFFSET a caller can ask the database for
# The page has no script, form or frame and loads nothing: a policy that allows only its inline styles and
# data: images means injected markup, were escaping ever to fail, could neither run nor phone home.
HTML_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# Newest runs of all systems read in one go; systems with fewer runs among them are read on their own.
RECENT_SCAN = 600
SPARK_POINTS = 48  # health scores per sparkline: two days of PSO's 15-minute cadence
RECENT_RELEASES = 10
OUTCOME_WINDOW_DAYS = 30
MAX_ROWS = 50  # experiments, pages, findings, projects shown; the rest is counted, not loaded
MAX_PEOPLE = 30  # rows of the allocation chart
MAX_WEEKS = 12
# Statuses whose projected effect the pricing summary adds up: the changes that take (or may take) effect, as
# in the PPIS run's own summary (flows/pricing.py MOVING; not imported, to keep flow modules out of the service).
MOVING = ("applied", "approved", "pending_approval", "advisory")
GOOD = {"completed", "promoted", "applied", "approved", "ship", "ok", "fresh", "accepted", "improvement"}
BAD = {"failed", "rolled_back", "aborted", "stop", "slow", "overdue", "rejected", "never ran", "regression", "degraded"}


# --- the page's data --------------------------------------------------------------------------------------------


class RunRow(BaseModel):
    """One analysis run as the dashboard lists it."""

    id: str
    system: str
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    duration_seconds: float | None = None
    flow_run_id: str | None = None
    prefect_url: str | None = None
    error: str | None = None


class SystemStatus(BaseModel):
    """One system's health and performance: PSO's newest score, its recent scores, the last run and freshness."""

    code: str
    title: str
    expected_interval_seconds: float
    health: float | None = None
    health_at: datetime | None = None
    reasons: list[str] = Field(default_factory=list)
    health_series: list[float] = Field(default_factory=list, description="Newest scores, oldest first.")
    last_run: RunRow | None = None
    window: int = Field(description="Runs the success rate looks at (successWindow).")
    finished: int = 0
    succeeded: int = 0
    success_rate: float | None = None
    median_duration_seconds: float | None = None
    last_good_at: datetime | None = None
    freshness: float | None = Field(None, description="1 up to 1.5x the interval, 0 at 3x (as PSO scores it).")
    freshness_label: str = "never ran"


class ProjectStatus(BaseModel):
    """A project's newest PPOS health (with the change since the previous run) and newest PPMS forecast."""

    project: str
    name: str = ""
    health: float | None = None
    previous_health: float | None = None
    trend: str = ""
    top_reason: str = ""
    health_at: datetime | None = None
    p50: date | None = None
    p85: date | None = None
    p95: date | None = None
    target_date: date | None = None
    probability_on_time: float | None = None
    forecast_method: str | None = None
    remaining_tasks: int | None = None
    forecast_reason: str = ""
    forecast_at: datetime | None = None


class ProjectsSection(BaseModel):
    projects: list[ProjectStatus] = Field(default_factory=list)
    more: int = 0
    portfolio: ProjectStatus | None = None
    health_run: RunRow | None = None
    forecast_run: RunRow | None = None


class ReleaseRow(BaseModel):
    app: str
    namespace: str
    revision: str
    image: str
    status: str
    phase: str
    started_at: datetime
    finished_at: datetime | None = None
    predicted_success: float | None = None
    reason: str = ""
    flow_run_id: str | None = None


class ReleasesSection(BaseModel):
    latest_per_app: list[ReleaseRow] = Field(default_factory=list)
    recent: list[ReleaseRow] = Field(default_factory=list)
    window_days: int = OUTCOME_WINDOW_DAYS
    outcomes: dict[str, int] = Field(default_factory=dict, description="Releases per status in the window.")
    total: int = 0


class ExperimentRow(BaseModel):
    experiment: str
    name: str = ""
    decision: str
    reason: str = ""
    users: int = 0
    srm_flagged: bool = False
    decisive: bool = False
    analysed_at: datetime


class A11yRow(BaseModel):
    url: str
    level: str
    status: str
    violations: int
    by_impact: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    scanned_at: datetime


class PerfRow(BaseModel):
    kind: str
    target: str
    metric: str = ""
    release: str | None = None
    baseline: str | None = None
    verdict: str
    value: float | None = None


class ExperienceSection(BaseModel):
    experiments: list[ExperimentRow] = Field(default_factory=list)
    more_experiments: int = 0
    pages: list[A11yRow] = Field(default_factory=list)
    more_pages: int = 0
    findings: list[PerfRow] = Field(default_factory=list)
    more_findings: int = 0
    findings_run: RunRow | None = None


class TopRecommendation(BaseModel):
    sku: str
    current_price: float
    recommended_price: float
    status: str
    profit_delta: float | None = None
    explanation: str = ""


class PricingSection(BaseModel):
    run: RunRow
    total: int = 0
    by_status: dict[str, int] = Field(default_factory=dict)
    profit: float | None = Field(None, description="Per day, if the applied and waiting changes all take effect.")
    profit_low: float | None = None
    profit_high: float | None = None
    revenue: float | None = None
    positions: dict[str, int] = Field(default_factory=dict)
    mean_index: float | None = Field(None, description="Mean of our price / market average x 100 over SKUs.")
    top: list[TopRecommendation] = Field(default_factory=list)


class PersonLoad(BaseModel):
    person: str
    name: str = ""
    weekly_capacity_days: float | None = Field(None, description="None: not a known person.")
    allocated: list[float] = Field(description="Days per week of AllocationSection.weeks.")
    capacity: list[float] = Field(description="Days available per week after time off.")
    projects: list[str] = Field(default_factory=list)

    @property
    def utilisation(self) -> float | None:
        """Allocated share of the capacity over the plan (None without capacity)."""
        cap = sum(self.capacity)
        return sum(self.allocated) / cap if cap > 0 else None


class AllocationSection(BaseModel):
    run: RunRow
    weeks: list[date]
    people: list[PersonLoad]
    more_people: int = 0
    more_weeks: int = 0


class RunsPage(BaseModel):
    page: int
    page_size: int
    total: int
    pages: int
    runs: list[RunRow]


class DashboardData(BaseModel):
    generated_at: datetime
    health_threshold: float
    systems: list[SystemStatus]
    projects: ProjectsSection
    releases: ReleasesSection
    experience: ExperienceSection
    pricing: PricingSection | None
    allocation: AllocationSection | None
    runs: RunsPage


# --- builders (plain functions of the store) ---------------------------------------------------------------------


def flow_run_url(ui_base: str | None, flow_run_id: str | None) -> str | None:
    """The Prefect UI page of a flow run (None without an id or a UI)."""
    if not ui_base or not flow_run_id:
        return None
    return f"{ui_base.rstrip('/')}/runs/flow-run/{flow_run_id}"


_RUN_COLUMNS = (
    AnalysisRun.id,
    AnalysisRun.system,
    AnalysisRun.status,
    AnalysisRun.started_at,
    AnalysisRun.finished_at,
    AnalysisRun.flow_run_id,
    AnalysisRun.error,
)


def _run_row(row: Any, ui_base: str | None = None) -> RunRow:
    started, finished = as_utc(row.started_at), as_utc(row.finished_at)
    assert started is not None
    error = row.error
    if error and len(error) > 300:  # the whole message is in the run's logs; the list shows its start
        error = error[:299] + "…"
    return RunRow(
        id=row.id,
        system=row.system,
        status=row.status,
        started_at=started,
        finished_at=finished,
        duration_seconds=(finished - started).total_seconds() if finished else None,
        flow_run_id=row.flow_run_id,
        prefect_url=flow_run_url(ui_base, row.flow_run_id),
        error=error,
    )


def _run_by_id(session: Any, run_id: str | None, ui_base: str | None) -> RunRow | None:
    if run_id is None:
        return None
    row = session.execute(select(*_RUN_COLUMNS).where(AnalysisRun.id == run_id)).first()
    return _run_row(row, ui_base) if row else None


def _newest_runs(session: Any, *, limit: int) -> list[Any]:
    """The newest ``limit`` runs of all systems (raw rows): one walk down the started-at index."""
    return list(
        session.execute(select(*_RUN_COLUMNS).order_by(AnalysisRun.started_at.desc(), AnalysisRun.id).limit(limit))
    )


def _system_runs(
    session: Any, code: str, batch: Sequence[Any], limit: int, ui_base: str | None, *, completed: bool = False
) -> list[RunRow]:
    """The newest ``limit`` runs of one system (only completed ones if asked), newest first.

    Taken from ``batch`` (the newest runs of all systems) when it holds enough of them; otherwise asked for on
    their own. Without an index on (system, started_at) that query sorts all of the system's runs, which is
    cheap exactly when the batch did not suffice: the system runs rarely.
    """
    mine = [r for r in batch if r.system == code and (not completed or r.status == "completed")][:limit]
    if len(mine) < limit:
        query = select(*_RUN_COLUMNS).where(AnalysisRun.system == code)
        if completed:
            query = query.where(AnalysisRun.status == "completed")
        mine = session.execute(query.order_by(AnalysisRun.started_at.desc(), AnalysisRun.id).limit(limit)).all()
    return [_run_row(r, ui_base) for r in mine]


def system_statuses(
    engine: Engine, settings: Settings, *, now: datetime | None = None, ui_base: str | None = None
) -> list[SystemStatus]:
    """Per registered system: newest health score and reasons, recent scores, last run, success rate over the
    last ``successWindow`` runs (finished ones, as PSO counts them), median duration, and freshness."""
    now = now or utcnow()
    window = settings.coordination.success_window
    out = []
    with session_scope(engine) as session:
        batch = _newest_runs(session, limit=RECENT_SCAN)
        for code, spec in SYSTEMS.items():
            interval = spec.expected_interval(settings)
            status = SystemStatus(
                code=code, title=spec.title, expected_interval_seconds=interval.total_seconds(), window=window
            )
            # Newest by id: rows are appended as they are measured, and the system index walks ids without a sort.
            scores = session.execute(
                select(SystemHealth.id, SystemHealth.measured_at, SystemHealth.score)
                .where(SystemHealth.system == code)
                .order_by(SystemHealth.id.desc())
                .limit(SPARK_POINTS)
            ).all()
            if scores:
                status.health, status.health_at = float(scores[0].score), as_utc(scores[0].measured_at)
                status.health_series = [float(s.score) for s in reversed(scores)]
                components = session.scalar(select(SystemHealth.components).where(SystemHealth.id == scores[0].id))
                status.reasons = [str(r) for r in (components or {}).get("reasons", [])]
            runs = _system_runs(session, code, batch, window, ui_base)
            if runs:
                status.last_run = runs[0]
                finished = [r for r in runs if r.status in ("completed", "failed")]
                status.finished = len(finished)
                status.succeeded = sum(r.status == "completed" for r in finished)
                status.success_rate = status.succeeded / len(finished) if finished else None
                durations = [r.duration_seconds for r in finished if r.duration_seconds is not None]
                status.median_duration_seconds = statistics.median(durations) if durations else None
            good = next((r for r in runs if r.status == "completed"), None)
            if good is None and runs:  # the last good run may be older than the window
                good = next(iter(_system_runs(session, code, batch, 1, ui_base, completed=True)), None)
            if good is not None:
                status.last_good_at = good.finished_at or good.started_at
                status.freshness = freshness(now - status.last_good_at, interval)
                status.freshness_label = (
                    "fresh" if status.freshness >= 1 else "late" if status.freshness > 0 else "overdue"
                )
            elif runs:
                status.freshness, status.freshness_label = 0.0, "no good run"
            out.append(status)
    return out


def _trend(score: float, previous: float | None) -> str:
    """The PPOS artifact's trend arrow (imported on first use: its module pulls in the charting libraries)."""
    from framework2.tasks.portfolio.report import trend_arrow

    return trend_arrow(score, previous)


def project_statuses(engine: Engine, *, ui_base: str | None = None) -> ProjectsSection:
    """Active projects: the newest PPOS health run that did not fail (its projects are the active ones), the change
    since the PPOS run before it, and each project's newest project-level PPMS forecast."""
    section = ProjectsSection()
    with session_scope(engine) as session:
        not_failed = (AnalysisRun.id == PpHealth.run_id) & (AnalysisRun.status != "failed")

        def newest_health_run(before_id: int | None) -> tuple[str, int] | None:
            query = select(PpHealth.run_id, PpHealth.id).join(AnalysisRun, not_failed)
            if before_id is not None:
                query = query.where(PpHealth.id < before_id)
            row = session.execute(query.order_by(PpHealth.id.desc()).limit(1)).first()
            if row is None:
                return None
            first = session.scalar(select(func.min(PpHealth.id)).where(PpHealth.run_id == row.run_id))
            return row.run_id, int(first)

        latest = newest_health_run(None)
        health: dict[str, Any] = {}
        previous: dict[str, float] = {}
        if latest is not None:
            run_id, first_id = latest
            health = {
                r.project: r
                for r in session.execute(
                    select(PpHealth.project, PpHealth.score, PpHealth.top_reason, PpHealth.created_at).where(
                        PpHealth.run_id == run_id
                    )
                )
            }
            section.health_run = _run_by_id(session, run_id, ui_base)
            before = newest_health_run(first_id)
            if before is not None:
                previous = dict(
                    session.execute(select(PpHealth.project, PpHealth.score).where(PpHealth.run_id == before[0])).all()
                )
        forecast_columns = (
            PmForecast.project,
            PmForecast.p50,
            PmForecast.p85,
            PmForecast.p95,
            PmForecast.target_date,
            PmForecast.probability_on_time,
            PmForecast.method,
            PmForecast.remaining_tasks,
            PmForecast.reason,
            PmForecast.created_at,
        )
        project_level = PmForecast.milestone.is_(None)
        newest_forecast_run = session.scalar(
            select(PmForecast.run_id).where(project_level).order_by(PmForecast.id.desc()).limit(1)
        )
        forecasts: dict[str, Any] = {}
        if newest_forecast_run is not None:
            # The newest forecast run holds the newest forecast of every project it forecast: one indexed read.
            section.forecast_run = _run_by_id(session, newest_forecast_run, ui_base)
            forecasts = {
                r.project: r
                for r in session.execute(
                    select(*forecast_columns).where(PmForecast.run_id == newest_forecast_run, project_level)
                )
            }
        keys = (set(health) - {"portfolio"}) | set(forecasts)
        if missing := sorted(keys - set(forecasts)):  # scored projects that run did not forecast: their own newest
            newest = (
                select(func.max(PmForecast.id).label("id"))
                .where(project_level, PmForecast.project.in_(missing))
                .group_by(PmForecast.project)
                .subquery()
            )
            forecasts |= {
                r.project: r
                for r in session.execute(select(*forecast_columns).join(newest, PmForecast.id == newest.c.id))
            }
        names = dict(session.execute(select(PmProject.key, PmProject.name).where(PmProject.key.in_(keys))).all())

    def status(key: str) -> ProjectStatus:
        out = ProjectStatus(project=key, name=names.get(key, ""))
        if (h := health.get(key)) is not None:
            out.health, out.top_reason, out.health_at = float(h.score), h.top_reason, as_utc(h.created_at)
            out.previous_health = previous.get(key)
            out.trend = _trend(out.health, out.previous_health)
        if (f := forecasts.get(key)) is not None:
            out.p50, out.p85, out.p95, out.target_date = f.p50, f.p85, f.p95, f.target_date
            out.probability_on_time, out.forecast_method = f.probability_on_time, f.method
            out.remaining_tasks, out.forecast_reason, out.forecast_at = (
                f.remaining_tasks,
                f.reason,
                as_utc(f.created_at),
            )
        return out

    # Worst health first (as the PPOS artifact orders them); projects with only a forecast after, by odds.
    ordered = sorted(
        (status(k) for k in keys),
        key=lambda p: (
            p.health is None,
            p.health if p.health is not None else 0.0,
            p.probability_on_time if p.probability_on_time is not None else 2.0,
            p.project,
        ),
    )
    section.projects, section.more = ordered[:MAX_ROWS], max(0, len(ordered) - MAX_ROWS)
    if "portfolio" in health:
        section.portfolio = status("portfolio")
    return section


_RELEASE_COLUMNS = (
    Release.app,
    Release.namespace,
    Release.revision,
    Release.image,
    Release.status,
    Release.phase,
    Release.started_at,
    Release.finished_at,
    Release.predicted_success,
    Release.reason,
    Release.flow_run_id,
)


def _release_row(r: Any) -> ReleaseRow:
    data = dict(r._mapping)
    data["started_at"], data["finished_at"] = as_utc(r.started_at), as_utc(r.finished_at)
    return ReleaseRow(**data)


def release_status(engine: Engine, *, now: datetime | None = None) -> ReleasesSection:
    """PLOS: the newest release of each app, the newest releases of all apps, and releases per status over the
    last ``OUTCOME_WINDOW_DAYS`` days."""
    now = now or utcnow()
    section = ReleasesSection()
    with session_scope(engine) as session:
        newest = select(Release.app, func.max(Release.started_at).label("at")).group_by(Release.app).subquery()
        latest = session.execute(
            select(*_RELEASE_COLUMNS)
            .join(newest, (Release.app == newest.c.app) & (Release.started_at == newest.c.at))
            .order_by(Release.app)
        ).all()
        seen: set[str] = set()
        for r in latest:  # two releases of an app started in the same microsecond: show one
            if r.app not in seen:
                seen.add(r.app)
                section.latest_per_app.append(_release_row(r))
        section.recent = [
            _release_row(r)
            for r in session.execute(
                select(*_RELEASE_COLUMNS).order_by(Release.started_at.desc()).limit(RECENT_RELEASES)
            ).all()
        ]
        since = now - timedelta(days=OUTCOME_WINDOW_DAYS)
        section.outcomes = {
            status: int(n)
            for status, n in session.execute(
                select(Release.status, func.count()).where(Release.started_at >= since).group_by(Release.status)
            ).all()
        }
        section.total = sum(section.outcomes.values())
    return section


def experience_status(engine: Engine, *, ui_base: str | None = None) -> ExperienceSection:
    """PUXT: each experiment's newest decision, each page's newest accessibility scan, and the performance
    findings of the newest run that stored any."""
    section = ExperienceSection()
    with session_scope(engine) as session:
        newest = select(func.max(UxExperimentResult.id).label("id")).group_by(UxExperimentResult.experiment).subquery()
        section.more_experiments = max(0, (session.scalar(select(func.count()).select_from(newest)) or 0) - MAX_ROWS)
        rows = session.execute(
            select(
                UxExperimentResult.experiment,
                UxExperiment.name,
                UxExperimentResult.decision,
                UxExperimentResult.reason,
                UxExperimentResult.users,
                UxExperimentResult.srm_flagged,
                UxExperimentResult.decisive,
                UxExperimentResult.created_at,
            )
            .join(newest, UxExperimentResult.id == newest.c.id)
            .outerjoin(UxExperiment, UxExperiment.key == UxExperimentResult.experiment)
            .order_by(UxExperimentResult.created_at.desc(), UxExperimentResult.experiment)
            .limit(MAX_ROWS)
        ).all()
        for r in rows:
            users = r.users or {}
            total = sum(int(v) for v in users.values() if isinstance(v, int | float)) if isinstance(users, dict) else 0
            section.experiments.append(
                ExperimentRow(
                    experiment=r.experiment,
                    name=r.name or "",
                    decision=r.decision,
                    reason=r.reason,
                    users=total,
                    srm_flagged=r.srm_flagged,
                    decisive=r.decisive,
                    analysed_at=as_utc(r.created_at),
                )
            )
        pages = select(func.max(UxA11yScan.id).label("id")).group_by(UxA11yScan.url).subquery()
        section.more_pages = max(0, (session.scalar(select(func.count()).select_from(pages)) or 0) - MAX_ROWS)
        section.pages = [
            A11yRow(
                url=r.url,
                level=r.level,
                status=r.status,
                violations=r.violations,
                by_impact=r.by_impact or {},
                error=r.error,
                scanned_at=as_utc(r.scanned_at),
            )
            for r in session.execute(
                select(
                    UxA11yScan.url,
                    UxA11yScan.level,
                    UxA11yScan.status,
                    UxA11yScan.violations,
                    UxA11yScan.by_impact,
                    UxA11yScan.error,
                    UxA11yScan.scanned_at,
                )
                .join(pages, UxA11yScan.id == pages.c.id)
                # Pages that could not be scanned and those with the most violations first: what needs work.
                .order_by((UxA11yScan.status == "ok").asc(), UxA11yScan.violations.desc(), UxA11yScan.url)
                .limit(MAX_ROWS)
            ).all()
        ]
        last = session.scalar(select(UxPerfResult.run_id).order_by(UxPerfResult.id.desc()).limit(1))
        if last is not None:
            section.findings_run = _run_by_id(session, last, ui_base)
            count = session.scalar(select(func.count()).where(UxPerfResult.run_id == last)) or 0
            section.more_findings = max(0, count - MAX_ROWS)
            section.findings = [
                PerfRow(**dict(r._mapping))
                for r in session.execute(
                    select(
                        UxPerfResult.kind,
                        UxPerfResult.target,
                        UxPerfResult.metric,
                        UxPerfResult.release,
                        UxPerfResult.baseline,
                        UxPerfResult.verdict,
                        UxPerfResult.value,
                    )
                    .where(UxPerfResult.run_id == last)
                    .order_by((UxPerfResult.verdict == "ok").asc(), UxPerfResult.id)
                    .limit(MAX_ROWS)
                ).all()
            ]
    return section


def pricing_status(engine: Engine, *, ui_base: str | None = None, top: int = 5) -> PricingSection | None:
    """PPIS: the newest completed pricing run's recommendations by status, the projected profit of the changes
    that take or may take effect (90 % band, SKUs independent, as the run's summary), and market position."""
    with session_scope(engine) as session:
        # PPIS runs hourly: the newest few hundred runs of all systems nearly always hold its newest completed one.
        batch = _newest_runs(session, limit=200)
        newest = _system_runs(session, "ppis", batch, 1, ui_base, completed=True)
        if not newest:
            return None
        section = PricingSection(run=newest[0])
        row = newest[0]
        spread = PriceRecommendation.profit_delta_high - PriceRecommendation.profit_delta_low
        groups = session.execute(
            select(
                PriceRecommendation.status,
                func.count(),
                func.sum(PriceRecommendation.profit_delta),
                func.sum(PriceRecommendation.revenue_delta),
                # Half-width of the sum's 90 % band = sqrt(sum of (high - low)^2) / 2 for independent SKUs.
                func.sum(spread * spread),
                func.count(PriceRecommendation.profit_delta),
            )
            .where(PriceRecommendation.run_id == row.id)
            .group_by(PriceRecommendation.status)
        ).all()
        section.by_status = {status: int(n) for status, n, *_ in groups}
        section.total = sum(section.by_status.values())
        moving = [g for g in groups if g[0] in MOVING]
        if any(g[5] for g in moving):
            profit = sum(float(g[2] or 0) for g in moving)
            half = math.sqrt(sum(float(g[4] or 0) for g in moving)) / 2
            section.profit, section.profit_low, section.profit_high = profit, profit - half, profit + half
            section.revenue = sum(float(g[3] or 0) for g in moving)
        positions = session.execute(
            select(MarketPosition.position, func.count(), func.sum(MarketPosition.index_vs_avg))
            .where(MarketPosition.run_id == row.id)
            .group_by(MarketPosition.position)
        ).all()
        section.positions = {p: int(n) for p, n, _ in positions}
        indexed = session.scalar(select(func.count(MarketPosition.index_vs_avg)).where(MarketPosition.run_id == row.id))
        if indexed:
            section.mean_index = sum(float(s or 0) for *_, s in positions) / indexed
        section.top = [
            TopRecommendation(**dict(r._mapping))
            for r in session.execute(
                select(
                    PriceRecommendation.sku,
                    PriceRecommendation.current_price,
                    PriceRecommendation.recommended_price,
                    PriceRecommendation.status,
                    PriceRecommendation.profit_delta,
                    PriceRecommendation.explanation,
                )
                .where(PriceRecommendation.run_id == row.id, PriceRecommendation.status.in_(MOVING))
                .order_by(PriceRecommendation.profit_delta.desc().nulls_last(), PriceRecommendation.sku)
                .limit(top)
            ).all()
        ]
    return section


def _week_capacity(weekly: float, week: date, start: date, time_off: Sequence[Any]) -> float:
    """Days a person can work in the week starting Monday ``week``: weekly capacity / 5 per working day on or
    after the plan's start and not on time off (as the allocation itself counts capacity)."""
    spans = []
    for span in time_off or []:
        try:
            spans.append((date.fromisoformat(str(span[0])), date.fromisoformat(str(span[1]))))
        except (TypeError, ValueError, IndexError):
            continue  # a malformed entry was quarantined when it was loaded; it takes no capacity here
    days = [week + timedelta(days=i) for i in range(5)]
    free = [d for d in days if d >= start and not any(a <= d <= b for a, b in spans)]
    return weekly / 5 * len(free)


def allocation_status(engine: Engine, *, ui_base: str | None = None) -> AllocationSection | None:
    """PPOS allocation: days per person and week of the newest allocation run against each person's capacity
    (after time off), the people with most days first."""
    with session_scope(engine) as session:
        run_id = session.scalar(select(PpAllocation.run_id).order_by(PpAllocation.id.desc()).limit(1))
        if run_id is None:
            return None
        run = _run_by_id(session, run_id, ui_base)
        if run is None:
            return None
        cells = session.execute(
            select(PpAllocation.person, PpAllocation.week, func.sum(PpAllocation.days))
            .where(PpAllocation.run_id == run_id)
            .group_by(PpAllocation.person, PpAllocation.week)
        ).all()
        all_weeks = sorted({w for _, w, _ in cells})
        weeks = all_weeks[:MAX_WEEKS]
        totals: dict[str, float] = {}
        for person, _, days in cells:
            totals[person] = totals.get(person, 0.0) + float(days or 0)
        shown = sorted(totals, key=lambda p: (-totals[p], p))[:MAX_PEOPLE]
        projects: dict[str, list[str]] = {}
        for person, project in session.execute(
            select(PpAllocation.person, PpAllocation.project)
            .where(PpAllocation.run_id == run_id, PpAllocation.person.in_(shown))
            .group_by(PpAllocation.person, PpAllocation.project)
            .order_by(PpAllocation.person, func.sum(PpAllocation.days).desc())
        ):
            projects.setdefault(person, []).append(project)
        people = {
            p.handle: p
            for p in session.execute(
                select(PmPerson.handle, PmPerson.name, PmPerson.weekly_capacity_days, PmPerson.time_off).where(
                    PmPerson.handle.in_(shown)
                )
            )
        }
    grid = {(p, w): float(d or 0) for p, w, d in cells}
    start = run.started_at.date()
    loads = []
    for handle in shown:
        known = people.get(handle)
        loads.append(
            PersonLoad(
                person=handle,
                name=known.name if known else "",
                weekly_capacity_days=known.weekly_capacity_days if known else None,
                allocated=[grid.get((handle, w), 0.0) for w in weeks],
                capacity=[
                    _week_capacity(known.weekly_capacity_days, w, start, known.time_off) if known else 0.0
                    for w in weeks
                ],
                projects=projects.get(handle, []),
            )
        )
    return AllocationSection(
        run=run,
        weeks=weeks,
        people=loads,
        more_people=max(0, len(totals) - len(shown)),
        more_weeks=len(all_weeks) - len(weeks),
    )


def recent_runs_page(
    engine: Engine, page: int = 1, *, page_size: int = PAGE_SIZE, ui_base: str | None = None
) -> RunsPage:
    """One page of all systems' runs, newest first (page 1 is the newest)."""
    page = min(max(1, page), MAX_PAGE)
    with session_scope(engine) as session:
        total = session.scalar(select(func.count()).select_from(AnalysisRun)) or 0
        rows = session.execute(
            select(*_RUN_COLUMNS)
            .order_by(AnalysisRun.started_at.desc(), AnalysisRun.id)
            .limit(page_size)
            .offset((page - 1) * page_size)
        ).all()
    return RunsPage(
        page=page,
        page_size=page_size,
        total=total,
        pages=max(1, math.ceil(total / page_size)),
        runs=[_run_row(r, ui_base) for r in rows],
    )


def dashboard_data(
    engine: Engine,
    settings: Settings,
    *,
    page: int = 1,
    now: datetime | None = None,
    ui_base: str | None = None,
) -> DashboardData:
    """Everything the page shows, read from the store."""
    now = now or utcnow()
    return DashboardData(
        generated_at=now,
        health_threshold=settings.alerts.health_score_below,
        systems=system_statuses(engine, settings, now=now, ui_base=ui_base),
        projects=project_statuses(engine, ui_base=ui_base),
        releases=release_status(engine, now=now),
        experience=experience_status(engine, ui_base=ui_base),
        pricing=pricing_status(engine, ui_base=ui_base),
        allocation=allocation_status(engine, ui_base=ui_base),
        runs=recent_runs_page(engine, page, ui_base=ui_base),
    )


# --- charts (inline SVG) ----------------------------------------------------------------------------------------

e = html.escape
INK, MUTED, LINE, ALERT, OVER = "#1b1f24", "#4a5561", "#1f5fa8", "#a4161a", "#a4161a"


def sparkline_svg(scores: Sequence[float], *, label: str, threshold: float | None = None) -> str:
    """A small line of health scores (oldest left), the alert threshold dashed, the newest as a dot."""
    if not scores:
        return ""
    width, height, pad = 140, 32, 3
    low = min(min(scores), threshold if threshold is not None else 100.0) - 2
    low = max(0.0, min(low, 98.0))
    span = 100.0 - low

    def y(v: float) -> float:
        return pad + (height - 2 * pad) * (1 - (min(max(v, low), 100.0) - low) / span)

    step = (width - 2 * pad) / max(1, len(scores) - 1)
    points = " ".join(f"{pad + i * step:.1f},{y(v):.1f}" for i, v in enumerate(scores))
    parts = [
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{e(label)}">'
    ]
    if threshold is not None and low <= threshold <= 100:
        ty = y(threshold)
        parts.append(
            f'<line x1="0" x2="{width}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="{ALERT}" stroke-width="1" '
            'stroke-dasharray="3 3"/>'
        )
    if len(scores) > 1:
        parts.append(f'<polyline points="{points}" fill="none" stroke="{LINE}" stroke-width="1.8"/>')
    last_x = pad + (len(scores) - 1) * step
    parts.append(f'<circle cx="{last_x:.1f}" cy="{y(scores[-1]):.1f}" r="2.6" fill="{LINE}"/>')
    parts.append("</svg>")
    return "".join(parts)


def bars_svg(items: Sequence[tuple[str, float]], *, label: str, unit: str = "") -> str:
    """Horizontal bars with their label and value: a count per category."""
    if not items:
        return ""
    label_w, bar_w, row_h = 150, 220, 22
    top = max(v for _, v in items) or 1.0
    height = row_h * len(items) + 4
    width = label_w + bar_w + 70
    parts = [
        f'<svg class="bars" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{e(label)}">'
    ]
    for i, (name, value) in enumerate(items):
        y = i * row_h + 2
        w = max(1.0, bar_w * value / top) if value > 0 else 0.0
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" fill="{INK}" font-size="12">{e(name)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" fill="{LINE}"/>'
            f'<text x="{label_w + w + 5:.1f}" y="{y + 14}" fill="{INK}" font-size="12">{e(_num(value))}{e(unit)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def allocation_svg(section: AllocationSection) -> str:
    """Days allocated per person (rows) and week (columns) against that week's capacity: each cell's bar is the
    allocated days, the dashed tick the capacity; a bar above its capacity is drawn in red."""
    if not section.people or not section.weeks:
        return ""
    label_w, cell_w, row_h, head_h = 110, 72, 44, 24
    bar_w, scale_h = 36, 34
    top = max([*(d for p in section.people for d in p.allocated), *(c for p in section.people for c in p.capacity)])
    top = top or 1.0
    width = label_w + cell_w * len(section.weeks) + 10
    height = head_h + row_h * len(section.people) + 6
    parts = [
        f'<svg class="alloc" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Days allocated per person and week against capacity; the table below has the numbers">'
    ]
    for k, week in enumerate(section.weeks):
        x = label_w + k * cell_w + cell_w / 2
        parts.append(f'<text x="{x:.1f}" y="15" text-anchor="middle" fill="{MUTED}" font-size="12">{week:%d %b}</text>')
    for i, person in enumerate(section.people):
        y0 = head_h + i * row_h
        base = y0 + row_h - 4
        parts.append(
            f'<text x="{label_w - 8}" y="{base - 8}" text-anchor="end" fill="{INK}" font-size="12">'
            f"{e(person.person)}</text>"
        )
        for k, (days, cap) in enumerate(zip(person.allocated, person.capacity, strict=True)):
            x = label_w + k * cell_w + (cell_w - bar_w) / 2
            h = scale_h * days / top
            colour = OVER if days > cap + 1e-6 else LINE
            parts.append(
                f'<rect x="{x:.1f}" y="{base - scale_h:.1f}" width="{bar_w}" height="{scale_h}" fill="#eef2f6"/>'
            )
            if h > 0:
                parts.append(
                    f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bar_w}" height="{h:.1f}" fill="{colour}">'
                    f"<title>{e(person.person)}, week of {week_label(section.weeks[k])}: {_num(days)} of "
                    f"{_num(cap)} days</title></rect>"
                )
            cy = base - scale_h * cap / top
            parts.append(
                f'<line x1="{x - 3:.1f}" x2="{x + bar_w + 3:.1f}" y1="{cy:.1f}" y2="{cy:.1f}" stroke="{INK}" '
                'stroke-width="1.5" stroke-dasharray="3 2"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


# --- the page ---------------------------------------------------------------------------------------------------

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1f24;
  background: #f5f7fa; }
header.top { background: #14213d; color: #fff; padding: 18px 28px 12px; }
header.top h1 { margin: 0 0 4px; font-size: 22px; }
header.top p { margin: 0 0 8px; color: #e3e8ef; }
header.top a { color: #fff; }
nav.sections ul { list-style: none; margin: 0; padding: 0; display: flex; flex-wrap: wrap; gap: 4px 16px; }
nav.sections a { color: #fff; }
main { padding: 8px 28px 28px; max-width: 1500px; }
section.card { background: #fff; border: 1px solid #d6dce4; border-radius: 6px; padding: 14px 18px;
  margin: 16px 0; }
h2 { font-size: 18px; margin: 0 0 10px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; }
table.compact { width: auto; min-width: 260px; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px; border-bottom: 1px solid #e3e8ef; }
thead th { background: #eef2f6; font-weight: 600; white-space: nowrap; }
tbody th { font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.muted, .age { color: #4a5561; }
.why { max-width: 520px; }
.empty { color: #4a5561; background: #f5f7fa; border: 1px dashed #b8c2cc; padding: 10px 12px; border-radius: 4px; }
code { background: #eef2f6; padding: 1px 4px; border-radius: 3px; }
.badge { display: inline-block; padding: 0 7px; border-radius: 10px; font-size: 12px; font-weight: 600;
  white-space: nowrap; border: 1px solid transparent; }
.good { background: #e3f4e8; color: #0c5a2a; border-color: #9fd3ae; }
.bad { background: #fde8e8; color: #8c1116; border-color: #f0a9ab; }
.neutral { background: #fff3dc; color: #6b4400; border-color: #f0cf8a; }
.score { font-size: 16px; font-weight: 700; }
.kpis { display: flex; flex-wrap: wrap; gap: 10px 28px; margin: 4px 0 10px; padding: 0; list-style: none; }
.kpis li { min-width: 140px; }
.kpis strong { display: block; font-size: 20px; }
a { color: #0b4fa8; }
nav.pager { margin-top: 6px; display: flex; gap: 18px; align-items: center; }
footer { padding: 0 28px 24px; color: #4a5561; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
"""


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    text = f"{value:,.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


def _age(delta: timedelta) -> str:
    return "in the future" if delta < timedelta(0) else human_span(delta)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m {int(seconds % 60)}s"
    return f"{int(seconds // 3600)}h {int(seconds % 3600 // 60)}m"


def _interval(seconds: float) -> str:
    """A schedule as people say it: 15 min, 1 h, 1 day."""
    if seconds >= 86400 and seconds % 86400 == 0:
        days = int(seconds // 86400)
        return f"{days} day" + ("s" if days > 1 else "")
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return _duration(seconds)


def week_label(week: date) -> str:
    return f"{week:%d %b %Y}"


def _when(at: datetime | None, now: datetime) -> str:
    if at is None:
        return '<span class="muted">never</span>'
    at = at.astimezone(UTC)
    return (
        f'<time datetime="{at.isoformat()}">{at:%Y-%m-%d %H:%M}</time> '
        f'<span class="age">({e(_age(now - at))} ago)</span>'
    )


def _badge(text: str) -> str:
    kind = "good" if text in GOOD else "bad" if text in BAD else "neutral"
    return f'<span class="badge {kind}">{e(text.replace("_", " "))}</span>'


def _health_badge(score: float | None, threshold: float) -> str:
    if score is None:
        return '<span class="muted">no score yet</span>'
    kind = "good" if score >= threshold else "neutral" if score >= threshold - 25 else "bad"
    return f'<span class="badge {kind} score">{score:.1f}</span>'


def _link(ui_base: str | None, flow_run_id: str | None, text: str) -> str:
    url = flow_run_url(ui_base, flow_run_id)
    return f'<a href="{e(url)}">{e(text)}</a>' if url else e(text)


def _run_link(ui_base: str | None, run: RunRow | None) -> str:
    if run is None:
        return ""
    url = flow_run_url(ui_base, run.flow_run_id)
    text = f"run {run.id[:8]}"
    return f'<a href="{e(url)}">{e(text)} in the Prefect UI</a>' if url else e(text)


def _empty(text: str) -> str:
    return f'<p class="empty">{text}</p>'


def _table(
    caption: str | None, head: Sequence[str], rows: Sequence[str], *, nums: Sequence[int] = (), compact: bool = False
) -> str:
    """A table with column headers (``nums``: right-aligned numeric columns); ``rows`` are ready ``<tr>``s."""
    ths = "".join(f'<th scope="col"{" class=num" if i in nums else ""}>{e(h)}</th>' for i, h in enumerate(head))
    cap = f"<caption class='muted' style='text-align:left'>{e(caption)}</caption>" if caption else ""
    cls = ' class="compact"' if compact else ""
    return f"<table{cls}>{cap}<thead><tr>{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section class="card" aria-labelledby="{anchor}"><h2 id="{anchor}">{e(title)}</h2>{body}</section>'


def _systems_html(data: DashboardData, ui: str | None) -> str:
    now, threshold = data.generated_at, data.health_threshold
    rows = []
    for s in data.systems:
        spark = (
            sparkline_svg(
                s.health_series,
                label=(
                    f"{s.code.upper()} health over the last {len(s.health_series)} scores: "
                    f"{_num(min(s.health_series))} to {_num(max(s.health_series))}, now {_num(s.health)}"
                    if s.health_series
                    else ""
                ),
                threshold=threshold,
            )
            or '<span class="muted">no scores yet</span>'
        )
        last = s.last_run
        took = ""
        if last is not None:
            took = (
                f"took {_duration(last.duration_seconds)}"
                if last.duration_seconds is not None
                else f"{last.status} for {_age(now - last.started_at)}"
            )
        last_cell = (
            f"{_badge(last.status)} {_when(last.started_at, now)}<br>"
            f'<span class="muted">{e(took)}</span> · '
            f"{_run_link(ui, last)}"
            if last
            else '<span class="muted">never ran</span>'
        )
        rate = (
            f"{_pct(s.success_rate)} <span class='muted'>({s.succeeded} of {s.finished})</span>"
            if s.success_rate is not None
            else '<span class="muted">—</span>'
        )
        interval = _interval(s.expected_interval_seconds)
        fresh = (
            f"{_badge(s.freshness_label)}<br><span class='muted'>last good "
            f"{_age(now - s.last_good_at) + ' ago' if s.last_good_at else 'never'}; expected every {e(interval)}</span>"
        )
        reasons = "; ".join(s.reasons) if s.reasons else ("all good" if s.health is not None else "")
        rows.append(
            f'<tr><th scope="row">{e(s.code.upper())}<br><span class="muted">{e(s.title)}</span></th>'
            f"<td>{_health_badge(s.health, threshold)}</td><td>{spark}</td><td>{last_cell}</td>"
            f'<td class="num">{rate}</td><td class="num">{e(_duration(s.median_duration_seconds))}</td>'
            f'<td>{fresh}</td><td class="why">{e(reasons)}</td></tr>'
        )
    window = data.systems[0].window if data.systems else 0
    body = _table(
        f"Health 0–100 from PSO (alert below {_num(threshold)}); success rate over the last {window} runs.",
        [
            "system",
            "health",
            f"last {SPARK_POINTS} scores",
            "last run",
            "success rate",
            "median run",
            "freshness",
            "why",
        ],
        rows,
        nums=(4, 5),
    )
    if all(s.last_run is None for s in data.systems):
        body = _empty("No runs yet — run <code>framework2 demo</code> or <code>framework2 run</code>.") + body
    return _section("health", "System health and performance", body)


def _projects_html(data: DashboardData, ui: str | None) -> str:
    section, now, threshold = data.projects, data.generated_at, data.health_threshold
    if not section.projects and section.portfolio is None:
        return _section(
            "projects",
            "Active project status",
            _empty(
                "No project health or forecasts yet — run <code>framework2 run ppms</code> and "
                "<code>framework2 run ppos</code>, or <code>framework2 demo</code>."
            ),
        )
    parts = []
    if section.portfolio is not None and section.portfolio.health is not None:
        p = section.portfolio
        parts.append(
            f"<p>Portfolio health {_health_badge(p.health, threshold)} {e(p.trend)} "
            f"<span class='muted'>— {e(p.top_reason)}</span></p>"
        )
    rows = []
    for p in section.projects:
        title = e(p.project) + (f'<br><span class="muted">{e(p.name)}</span>' if p.name and p.name != p.project else "")
        rows.append(
            f'<tr><th scope="row">{title}</th><td>{_health_badge(p.health, threshold)}</td>'
            f"<td>{e(p.trend) or '—'}</td><td class='why'>{e(p.top_reason) or '—'}</td>"
            f"<td class='num'>{p.p50 or '—'}</td><td class='num'>{p.p85 or '—'}</td>"
            f"<td class='num'>{p.target_date or '—'}</td><td class='num'>{_pct(p.probability_on_time)}</td>"
            f"<td class='num'>{'—' if p.remaining_tasks is None else p.remaining_tasks}</td></tr>"
        )
    parts.append(
        _table(
            None,
            ["project", "health", "trend", "top reason", "P50", "P85", "target", "odds of target", "open tasks"],
            rows,
            nums=(4, 5, 6, 7, 8),
        )
    )
    if section.more:
        parts.append(f"<p class='muted'>{section.more} more projects not shown.</p>")
    sources = []
    if section.health_run:
        sources.append(
            f"health from PPOS {_run_link(ui, section.health_run)} ({_when(section.health_run.started_at, now)})"
        )
    if section.forecast_run:
        sources.append(f"forecasts from PPMS {_run_link(ui, section.forecast_run)}")
    if sources:
        parts.append(f"<p class='muted'>{'; '.join(sources)}.</p>")
    return _section("projects", "Active project status", "".join(parts))


def _release_cells(r: ReleaseRow, ui: str | None, now: datetime) -> str:
    return (
        f"<td>{_badge(r.status)}<br><span class='muted'>{e(r.phase.replace('_', ' '))}</span></td>"
        f"<td>{_link(ui, r.flow_run_id, r.revision)}<br><span class='muted'>{e(r.image)}</span></td>"
        f"<td>{_when(r.started_at, now)}</td><td class='num'>{_pct(r.predicted_success)}</td>"
        f"<td class='why'>{e(r.reason) or '—'}</td>"
    )


def _releases_html(data: DashboardData, ui: str | None) -> str:
    section, now = data.releases, data.generated_at
    if not section.latest_per_app:
        return _section(
            "releases",
            "Deployment pipeline status",
            _empty("No releases yet — run <code>framework2 run plos</code> or <code>framework2 demo</code>."),
        )
    head = ["app", "status", "revision", "started", "predicted success", "reason"]
    parts = [
        "<h3>Latest release per app</h3>",
        _table(
            None,
            head,
            [f'<tr><th scope="row">{e(r.app)}</th>{_release_cells(r, ui, now)}</tr>' for r in section.latest_per_app],
            nums=(4,),
        ),
        f"<h3>Outcomes in the last {section.window_days} days</h3>",
    ]
    if section.total:
        ok = sum(n for s, n in section.outcomes.items() if s == "promoted")
        ended = sum(n for s, n in section.outcomes.items() if s in ("promoted", "rolled_back", "failed", "aborted"))
        parts.append(
            f"<p>{section.total} releases; {ok} of {ended} finished ones promoted and kept "
            f"({_pct(ok / ended if ended else None)}).</p>"
        )
        items = sorted(section.outcomes.items(), key=lambda kv: (-kv[1], kv[0]))
        parts.append(
            bars_svg(
                [(s.replace("_", " "), n) for s, n in items],
                label="Releases per outcome: " + ", ".join(f"{s.replace('_', ' ')} {n}" for s, n in items),
            )
        )
    else:
        parts.append(f"<p class='muted'>No release started in the last {section.window_days} days.</p>")
    parts += [
        "<h3>Most recent releases</h3>",
        _table(
            None,
            head,
            [f'<tr><th scope="row">{e(r.app)}</th>{_release_cells(r, ui, now)}</tr>' for r in section.recent],
            nums=(4,),
        ),
    ]
    return _section("releases", "Deployment pipeline status", "".join(parts))


def _experience_html(data: DashboardData, ui: str | None) -> str:
    section, now = data.experience, data.generated_at
    if not (section.experiments or section.pages or section.findings):
        return _section(
            "experience",
            "User experience metrics",
            _empty("No experience results yet — run <code>framework2 run puxt</code> or <code>framework2 demo</code>."),
        )
    parts = ["<h3>Experiments</h3>"]
    if section.experiments:
        rows = [
            f'<tr><th scope="row">{e(x.experiment)}'
            + (f'<br><span class="muted">{e(x.name)}</span>' if x.name and x.name != x.experiment else "")
            + f"</th><td>{_badge(x.decision)}{' ' + _badge('SRM') if x.srm_flagged else ''}</td>"
            f"<td class='num'>{x.users:,}</td><td>{_when(x.analysed_at, now)}</td>"
            f"<td class='why'>{e(x.reason)}</td></tr>"
            for x in section.experiments
        ]
        parts.append(_table(None, ["experiment", "decision", "users", "analysed", "why"], rows, nums=(2,)))
        if section.more_experiments:
            parts.append(f"<p class='muted'>{section.more_experiments} more experiments not shown.</p>")
    else:
        parts.append("<p class='muted'>No experiment analysed yet.</p>")
    parts.append("<h3>Accessibility (axe-core)</h3>")
    if section.pages:
        rows = []
        for p in section.pages:
            impact = ", ".join(f"{k} {v}" for k, v in p.by_impact.items() if v) or "—"
            state = _badge("ok") if p.status == "ok" else _badge("failed") + f"<br>{e(p.error or '')}"
            rows.append(
                f'<tr><th scope="row">{e(p.url)}</th><td>{state}</td><td>{e(p.level)}</td>'
                f"<td class='num'>{p.violations if p.status == 'ok' else '—'}</td><td>{e(impact)}</td>"
                f"<td>{_when(p.scanned_at, now)}</td></tr>"
            )
        parts.append(
            _table(None, ["page", "scan", "WCAG level", "rules violated", "by impact", "scanned"], rows, nums=(3,))
        )
        if section.more_pages:
            parts.append(f"<p class='muted'>{section.more_pages} more pages not shown.</p>")
    else:
        parts.append("<p class='muted'>No page scanned yet.</p>")
    parts.append("<h3>Performance</h3>")
    if section.findings:
        rows = [
            f'<tr><th scope="row">{e(f.target)}</th><td>{e(f.kind)}</td><td>{e(f.metric) or "—"}</td>'
            f"<td>{e(f.release or '—')}{' vs ' + e(f.baseline) if f.baseline else ''}</td>"
            f"<td>{_badge(f.verdict)}</td><td class='num'>{_num(f.value, 2)}</td></tr>"
            for f in section.findings
        ]
        parts.append(_table(None, ["target", "kind", "metric", "release", "verdict", "value"], rows, nums=(5,)))
        if section.more_findings:
            parts.append(f"<p class='muted'>{section.more_findings} more findings not shown.</p>")
        parts.append(f"<p class='muted'>From PUXT {_run_link(ui, section.findings_run)}.</p>")
    else:
        parts.append("<p class='muted'>No performance finding yet.</p>")
    return _section("experience", "User experience metrics", "".join(parts))


def _pricing_html(data: DashboardData, ui: str | None) -> str:
    section, now = data.pricing, data.generated_at
    if section is None:
        return _section(
            "pricing",
            "Pricing optimisation results",
            _empty(
                "No completed pricing run yet — run <code>framework2 run ppis</code> or <code>framework2 demo</code>."
            ),
        )
    changes = sum(n for s, n in section.by_status.items() if s in MOVING)
    kpis = [
        ("recommendations", f"{section.total:,}"),
        ("applied", f"{section.by_status.get('applied', 0):,}"),
        ("awaiting approval", f"{section.by_status.get('pending_approval', 0):,}"),
        ("changes in effect or waiting", f"{changes:,}"),
    ]
    if section.profit is not None:
        kpis.append(("profit if all take effect", f"{section.profit:+,.2f}/day"))
    if section.mean_index is not None:
        kpis.append(("mean price index", _num(section.mean_index)))
    parts = [
        "<ul class='kpis'>" + "".join(f"<li>{e(k)}<strong>{e(v)}</strong></li>" for k, v in kpis) + "</ul>",
        f"<p class='muted'>From PPIS {_run_link(ui, section.run)}, finished "
        f"{_when(section.run.finished_at or section.run.started_at, now)}.",
    ]
    if section.profit is not None:
        parts.append(
            f" 90 % band of the profit effect {section.profit_low:+,.2f} to {section.profit_high:+,.2f}/day; "
            f"revenue {section.revenue or 0:+,.2f}/day."
        )
    parts.append("</p><h3>Recommendations by status</h3>")
    order = sorted(section.by_status.items(), key=lambda kv: (-kv[1], kv[0]))
    parts.append(
        _table(
            None,
            ["status", "SKUs"],
            [f'<tr><th scope="row">{_badge(s)}</th><td class="num">{n:,}</td></tr>' for s, n in order],
            nums=(1,),
            compact=True,
        )
    )
    if section.top:
        parts.append("<h3>Largest expected profit effects</h3>")
        rows = [
            f'<tr><th scope="row">{e(t.sku)}</th>'
            f'<td class="num">{t.current_price:,.2f} → {t.recommended_price:,.2f}</td>'
            f"<td>{_badge(t.status)}</td><td class='num'>{'—' if t.profit_delta is None else f'{t.profit_delta:+,.2f}'}"
            f"</td><td class='why'>{e(t.explanation)}</td></tr>"
            for t in section.top
        ]
        parts.append(_table(None, ["SKU", "price", "status", "profit/day", "why"], rows, nums=(1, 3)))
    parts.append("<h3>Market position</h3>")
    if section.positions:
        items = sorted(section.positions.items(), key=lambda kv: (-kv[1], kv[0]))
        parts.append(
            bars_svg(
                [(p.replace("_", " "), n) for p, n in items],
                label="SKUs per market position: " + ", ".join(f"{p.replace('_', ' ')} {n}" for p, n in items),
            )
        )
    else:
        parts.append("<p class='muted'>No market position in this run.</p>")
    return _section("pricing", "Pricing optimisation results", "".join(parts))


def _allocation_html(data: DashboardData, ui: str | None) -> str:
    section, now = data.allocation, data.generated_at
    if section is None or not section.people:
        return _section(
            "resources",
            "Resource utilisation",
            _empty(
                "No allocation yet — run <code>framework2 run ppos</code> (after PPMS) or <code>framework2 demo</code>."
            ),
        )
    allocated = sum(sum(p.allocated) for p in section.people)
    capacity = sum(sum(p.capacity) for p in section.people)
    parts = [
        f"<p>{_num(allocated)} of {_num(capacity)} available days allocated "
        f"({_pct(allocated / capacity if capacity else None)}) over {len(section.weeks)} weeks from "
        f"{week_label(section.weeks[0])}; PPOS {_run_link(ui, section.run)} "
        f"({_when(section.run.started_at, now)}).</p>",
        allocation_svg(section),
        "<p class='muted'>Bars: days allocated; dashed tick: days available that week (capacity after time off).</p>",
    ]
    rows = []
    for p in section.people:
        cap = "unknown person" if p.weekly_capacity_days is None else f"{_num(p.weekly_capacity_days)}"
        peak = max(p.allocated) if p.allocated else 0.0
        rows.append(
            f'<tr><th scope="row">{e(p.person)}'
            + (f'<br><span class="muted">{e(p.name)}</span>' if p.name else "")
            + f"</th><td class='num'>{e(cap)}</td><td class='num'>{_num(sum(p.allocated))}</td>"
            f"<td class='num'>{_num(sum(p.capacity))}</td><td class='num'>{_pct(p.utilisation)}</td>"
            f"<td class='num'>{_num(peak)}</td><td>{e(', '.join(p.projects))}</td></tr>"
        )
    parts.append(
        _table(
            None,
            ["person", "days/week", "allocated days", "available days", "utilisation", "busiest week", "projects"],
            rows,
            nums=(1, 2, 3, 4, 5),
        )
    )
    more = []
    if section.more_people:
        more.append(f"{section.more_people} more people")
    if section.more_weeks:
        more.append(f"{section.more_weeks} more weeks")
    if more:
        parts.append(f"<p class='muted'>{' and '.join(more)} in the plan not shown.</p>")
    return _section("resources", "Resource utilisation", "".join(parts))


def _runs_html(data: DashboardData, ui: str | None) -> str:
    runs, now = data.runs, data.generated_at
    if not runs.total:
        return _section(
            "runs",
            "Recent runs",
            _empty("No runs yet — run <code>framework2 demo</code> or <code>framework2 run</code>."),
        )
    rows = [
        f'<tr><th scope="row">{_link(ui, r.flow_run_id, r.id[:8])}</th><td>{e(r.system.upper())}</td>'
        f"<td>{_badge(r.status)}</td><td>{_when(r.started_at, now)}</td>"
        f"<td class='num'>{e(_duration(r.duration_seconds))}</td><td class='why'>{e(r.error or '')}</td></tr>"
        for r in runs.runs
    ]
    first = (runs.page - 1) * runs.page_size + 1
    parts = [
        f"<p class='muted'>Runs {first:,}–{first + len(runs.runs) - 1:,} of {runs.total:,}, newest first; "
        "a run's id opens its flow run in the Prefect UI.</p>"
        if runs.runs
        else f"<p class='muted'>Page {runs.page} is past the last page ({runs.pages}).</p>",
        _table(None, ["run", "system", "status", "started", "took", "error"], rows, nums=(4,)),
    ]
    links = []
    if runs.page > 1:
        links.append(f'<a href="{DASHBOARD_PATH}?page={min(runs.page - 1, runs.pages)}#runs">Newer runs</a>')
    links.append(f"<span>Page {runs.page} of {runs.pages}</span>")
    if runs.page < runs.pages:
        links.append(f'<a href="{DASHBOARD_PATH}?page={runs.page + 1}#runs">Older runs</a>')
    parts.append(f'<nav class="pager" aria-label="Recent runs pages">{"".join(links)}</nav>')
    return _section("runs", "Recent runs", "".join(parts))


def render_dashboard(data: DashboardData, ui_base: str | None = None) -> str:
    """The whole page as HTML5 (inline CSS and SVG, no script)."""
    ui = ui_base
    sections = [
        ("health", "System health"),
        ("projects", "Projects"),
        ("releases", "Releases"),
        ("experience", "User experience"),
        ("pricing", "Pricing"),
        ("resources", "Resources"),
        ("runs", "Recent runs"),
    ]
    nav = "".join(f'<li><a href="#{a}">{e(t)}</a></li>' for a, t in sections)
    ui_note = f' Runs open in the Prefect UI at <a href="{e(ui)}">{e(ui)}</a>.' if ui else ""
    body = "".join(
        [
            _systems_html(data, ui),
            _projects_html(data, ui),
            _releases_html(data, ui),
            _experience_html(data, ui),
            _pricing_html(data, ui),
            _allocation_html(data, ui),
            _runs_html(data, ui),
        ]
    )
    generated = data.generated_at.astimezone(UTC)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # An empty icon: otherwise the browser asks the service for /favicon.ico and logs the 404 as an error.
        '<link rel="icon" href="data:,">'
        "<title>Framework Set 2 — system dashboard</title>"
        f"<style>{CSS}</style></head><body>"
        '<header class="top"><h1>Framework Set 2 — system dashboard</h1>'
        f'<p>As of <time datetime="{generated.isoformat()}">{generated:%Y-%m-%d %H:%M} UTC</time>, read from the '
        f"store.{ui_note} Times are UTC.</p>"
        f'<nav class="sections" aria-label="Sections"><ul>{nav}</ul></nav></header>'
        f"<main>{body}</main>"
        "<footer><p>Framework Set 2 · the same numbers as JSON: "
        f'<a href="{DASHBOARD_PATH}/data">{DASHBOARD_PATH}/data</a> and '
        f'<a href="{DASHBOARD_PATH}/runs?page=1">{DASHBOARD_PATH}/runs?page=1</a>.</p></footer>'
        "</body></html>"
    )


# --- HTTP -------------------------------------------------------------------------------------------------------

_store_lock = threading.Lock()
_opened: tuple[Settings, Engine] | None = None


def store_engine() -> Engine:
    """The configured store, opened (and migrated) once per settings object; an app may override this dependency."""
    global _opened
    settings = get_settings()
    with _store_lock:  # two first requests at once must not migrate the store twice
        if _opened is None or _opened[0] is not settings:
            _opened = (settings, open_store(settings))
        return _opened[1]


def prefect_ui_base() -> str:
    """The Prefect UI's URL, as the CLI prints it (PREFECT_UI_URL, else the API URL without ``/api``); a dependency
    an app may override."""
    return ui_url()


router = APIRouter(tags=["dashboard"])


@router.get(DASHBOARD_PATH, response_class=HTMLResponse, summary="The system dashboard page")
def dashboard_page(
    page: int = Query(1, ge=1, le=MAX_PAGE, description="Page of the recent-runs list (50 a page, newest first)."),
    engine: Engine = Depends(store_engine),
    ui: str = Depends(prefect_ui_base),
) -> HTMLResponse:
    data = dashboard_data(engine, get_settings(), page=page, ui_base=ui)
    return HTMLResponse(render_dashboard(data, ui), headers=HTML_HEADERS)


@router.get(f"{DASHBOARD_PATH}/runs", response_model=RunsPage, summary="Recent runs of all systems, paginated")
def dashboard_runs(
    page: int = Query(1, ge=1, le=MAX_PAGE, description="Page number, 1 = newest."),
    engine: Engine = Depends(store_engine),
    ui: str = Depends(prefect_ui_base),
) -> RunsPage:
    return recent_runs_page(engine, page, ui_base=ui)


@router.get(f"{DASHBOARD_PATH}/data", response_model=DashboardData, summary="Everything the dashboard shows, as JSON")
def dashboard_json(
    page: int = Query(1, ge=1, le=MAX_PAGE, description="Page of the recent-runs list."),
    engine: Engine = Depends(store_engine),
    ui: str = Depends(prefect_ui_base),
) -> DashboardData:
    return dashboard_data(engine, get_settings(), page=page, ui_base=ui)
