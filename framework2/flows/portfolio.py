"""PPOS — project operations across the portfolio: which projects are in trouble, why, and what to do.

Pipeline of ``ppos-project-operations`` (what PSO runs, after PPMS): take the PPOS lock → load the portfolio
PPMS keeps (tasks, dependencies, people, forecasts, assignments) with PLOS releases and PCES changes → score
health per project and for the portfolio with named, weighted components (a time series) → trace
cross-project dependencies (problems, blocked chains, the critical chain, risk flowing from upstream projects)
→ predict each project's chance of slipping, its drivers and the mitigations they call for → allocate people
across projects for the coming weeks → store health, risk, allocation and the run's "completed" in one
transaction → ``framework2.ppos.health.degraded``/``.recovered`` on a threshold crossing → publish the
``ppos-portfolio`` artifact. ``ppos-project-health`` (every 15 minutes and on events) is the same without the
allocation. Both take the same lock, so overlapping runs never store two health points for one moment or
announce one crossing twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.exceptions import MissingContextError
from sqlalchemy.engine import Engine

from framework2.config import Settings, get_settings
from framework2.events import emit_about_project
from framework2.flows.lifecycle import Exclusive, run_recorded
from framework2.store.context import scope_changes
from framework2.store.engine import open_store, session_scope
from framework2.store.locks import Lease
from framework2.store.models import PpAllocation
from framework2.store.planning import load_dependencies, load_people, load_projects, load_tasks
from framework2.store.portfolio import (
    add_health,
    add_risk,
    health_series,
    latest_forecasts,
    latest_staffing,
    previous_health,
    release_counts,
    slip_history,
)
from framework2.store.runs import finish_in, jsonable
from framework2.systems import SYSTEMS, SystemResult
from framework2.tasks.planning.durations import fit_duration_model, working_days_between
from framework2.tasks.planning.records import DependencyRecord, PersonRecord, ProjectRecord, TaskRecord
from framework2.tasks.portfolio.allocation import allocate, best_single_moves, current_staffing, skill_demand
from framework2.tasks.portfolio.dependencies import (
    blocked_chains,
    critical_chain,
    graph_problems,
    project_graph,
    upstream_risk,
)
from framework2.tasks.portfolio.features import key_person_share, slip_features
from framework2.tasks.portfolio.health import (
    RELEASE_WINDOW_DAYS,
    SCOPE_WINDOW_DAYS,
    HealthScore,
    ProjectSignals,
    portfolio_health,
    score_health,
    task_signals,
)
from framework2.tasks.portfolio.report import (
    allocation_markdown,
    dependency_markdown,
    health_chart,
    portfolio_markdown,
    risk_markdown,
)
from framework2.tasks.portfolio.slip_risk import (
    FEATURES,
    SlipModel,
    SlipPrediction,
    predict_slip,
    slip_frame,
    train_slip_model,
)

SYSTEM = "ppos"
MODEL_VERSION = "ppos-1"
PORTFOLIO = "portfolio"
# Trying every single move re-solves the plan people x projects times; past this many staffed people the
# search would dominate the run, so it is skipped and the artifact says so.
MAX_PEOPLE_FOR_MOVES = 40
MAX_CHARTED = 8
# One PPOS run at a time (health or operations): both write the health series and announce its crossings.
LOCK = "ppos"
# A PPOS run takes seconds to minutes. One that finds another running waits this long before it skips, so the
# hourly operations run is not lost to a health run that started in the same minute.
LOCK_WAIT = timedelta(minutes=2)


@dataclass
class Portfolio:
    """What one PPOS run reads, loaded once: PPMS's records and the predicted remaining work of open tasks."""

    now: datetime
    projects: list[ProjectRecord]
    tasks: list[TaskRecord]
    dependencies: list[DependencyRecord]
    people: list[PersonRecord]
    remaining: dict[str, float]


def remaining_work(tasks: list[TaskRecord], now: datetime) -> dict[str, float]:
    """Predicted remaining working days of every open task: the PPMS duration model's median (trained on
    all finished work, running work counted as censored), less the time an in-progress task has run."""
    done = [t for t in tasks if t.status == "done"]
    running = [t for t in tasks if t.status == "in_progress"]
    open_tasks = [t for t in tasks if t.status != "done"]
    if not open_tasks:
        return {}
    model = fit_duration_model(done, in_progress=running, now=now)
    remaining = {}
    for task, forecast in zip(open_tasks, model.forecast(open_tasks), strict=True):
        spent = working_days_between(task.started_at, now) if task.started_at is not None else 0.0
        remaining[task.key] = max(forecast.p50 - spent, 0.1 * forecast.p50)
    return remaining


def load_portfolio(engine: Engine, now: datetime) -> Portfolio:
    """Read the portfolio once for a run."""
    tasks = load_tasks(engine)
    return Portfolio(
        now=now,
        projects=load_projects(engine),
        tasks=tasks,
        dependencies=load_dependencies(engine),
        people=load_people(engine),
        remaining=remaining_work(tasks, now),
    )


def gather_signals(engine: Engine, settings: Settings, portfolio: Portfolio) -> list[ProjectSignals]:
    """Every project's health signals from what the other systems stored."""
    now, tasks, deps = portfolio.now, portfolio.tasks, portfolio.dependencies
    forecasts, staffing = latest_forecasts(engine), latest_staffing(engine)
    since = now - timedelta(days=RELEASE_WINDOW_DAYS)
    changes = scope_changes(engine, now - timedelta(days=SCOPE_WINDOW_DAYS))
    signals = []
    for project in portfolio.projects:
        forecast = forecasts.get(project.key) or {}
        apps = settings.ppos.project_apps.get(project.key)
        releases, failed = release_counts(engine, apps, since) if apps else (None, None)
        ready, unstaffed = staffing.get(project.key, (None, None))
        signals.append(
            ProjectSignals(
                project=project.key,
                name=project.name,
                target_date=project.target_date,
                forecast_available=forecast.get("p85") is not None,
                probability_on_time=forecast.get("probability_on_time"),
                p85=forecast.get("p85"),
                releases=releases,
                failed_releases=failed,
                ready_tasks=ready,
                unstaffed_ready=unstaffed,
                scope_changes=changes.get(project.key),
                as_of=now.date(),
                **task_signals(project.key, tasks, deps, now=now),
            )
        )
    return signals


def crossings(scores: list[HealthScore], previous: dict[str, float], threshold: float) -> list[tuple[str, HealthScore]]:
    """``health.degraded`` where a project (or the portfolio) falls below the threshold and ``health.recovered``
    where it climbs back — the crossings only, not every run below it."""
    crossed = []
    for score in scores:
        before = previous.get(score.project)
        below = score.score < threshold
        if below and (before is None or before >= threshold):
            crossed.append(("health.degraded", score))
        elif not below and before is not None and before < threshold:
            crossed.append(("health.recovered", score))
    return crossed


def announce(crossed: list[tuple[str, HealthScore]], previous: dict[str, float], threshold: float) -> None:
    """Emit one event per crossing, about the project."""
    for event, score in crossed:
        before = previous.get(score.project)
        emit_about_project(
            SYSTEM,
            event,
            score.project,
            score.name,
            {
                "project": score.project,
                "score": round(score.score, 1),
                "previous": round(before, 1) if before is not None else None,
                "threshold": threshold,
                "top_reason": score.top_reason(),
                "components": {c.name: c.score for c in score.components},
            },
        )


def announce_crossings(
    scores: list[HealthScore], previous: dict[str, float], threshold: float
) -> list[tuple[str, HealthScore]]:
    """Emit the threshold crossings of ``scores`` against ``previous`` (see ``crossings``); returns them."""
    crossed = crossings(scores, previous, threshold)
    announce(crossed, previous, threshold)
    return crossed


@dataclass
class HealthReport:
    """One run's health: per project and for the portfolio, the scores before it, and the crossings to announce
    once the run is stored."""

    signals: list[ProjectSignals]
    scores: list[HealthScore]
    portfolio: HealthScore
    previous: dict[str, float]
    threshold: float
    crossed: list[tuple[str, HealthScore]]


def assess_health(engine: Engine, settings: Settings, portfolio: Portfolio) -> HealthReport:
    """Score every project's and the portfolio's health and find the threshold crossings since the stored scores
    (read under the PPOS lock, so two runs cannot both announce one crossing)."""
    signals = gather_signals(engine, settings, portfolio)
    scores = [score_health(s, settings.ppos.health_weights) for s in signals]
    overall = portfolio_health(scores, key=PORTFOLIO)
    previous = previous_health(engine)
    threshold = settings.alerts.health_score_below
    crossed = crossings([*scores, overall], previous, threshold)
    return HealthReport(signals, scores, overall, previous, threshold, crossed)


@dataclass
class DependencyView:
    """Cross-project dependencies as a lead needs them: what is wrong, what blocks what, the longest chain,
    and the risk each project inherits from the projects it waits on."""

    problems: list[Any]
    chains: list[Any]
    critical: list[str]
    critical_days: float
    upstream: dict[str, Any]


def trace_dependencies(portfolio: Portfolio, health: HealthReport) -> DependencyView:
    """Problems, blocked chains, the critical chain and upstream risk (own risk: 1 - PPMS odds of the target)."""
    tasks, deps = portfolio.tasks, portfolio.dependencies
    critical, days = critical_chain(tasks, deps, portfolio.remaining)
    own = {s.project: 1.0 - s.probability_on_time for s in health.signals if s.probability_on_time is not None}
    return DependencyView(
        problems=graph_problems(tasks, deps),
        chains=blocked_chains(tasks, deps),
        critical=critical,
        critical_days=days,
        upstream=upstream_risk(own, project_graph(tasks, deps)),
    )


@dataclass
class RiskReport:
    """Each open project's chance of slipping, with the model (or heuristic) behind it and the features it saw."""

    model: SlipModel
    predictions: list[SlipPrediction]
    features: dict[str, dict[str, Any]]


def assess_risk(
    engine: Engine, settings: Settings, portfolio: Portfolio, health: HealthReport, view: DependencyView
) -> RiskReport:
    """Predict P(slip > slipDays) for every project with open work; the classifier learns from the features
    stored for projects that have since finished (the heuristic until there are enough)."""
    rows = {
        s.project: slip_features(
            s,
            key_person=key_person_share(s.project, portfolio.tasks, portfolio.remaining),
            upstream=view.upstream[s.project].inherited if s.project in view.upstream else 0.0,
        )
        for s in health.signals
        if s.open_tasks
    }
    model = train_slip_model(slip_history(engine, FEATURES), slip_days=settings.ppos.slip_days)
    predictions = predict_slip(model, slip_frame(rows)) if rows else []
    return RiskReport(model, predictions, rows)


@dataclass
class AllocationPlan:
    """The allocation for the coming weeks: rows to store, the summary for the outcome, the artifact section."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    markdown: str


def plan_allocation(settings: Settings, portfolio: Portfolio, priority: dict[str, float]) -> AllocationPlan:
    """Allocate people across projects for the coming weeks (stored with the rest of the run)."""
    tasks, people = portfolio.tasks, portfolio.people
    weeks = settings.ppos.allocation_weeks
    start = portfolio.now.date()
    demand = skill_demand(tasks, portfolio.dependencies, portfolio.remaining, priority, start=start, weeks=weeks)
    staffing = current_staffing(tasks)
    result = allocate(demand, people, start=start, weeks=weeks, staffing=staffing)
    if len(staffing) <= MAX_PEOPLE_FOR_MOVES:
        moves = best_single_moves(demand, people, start=start, weeks=weeks, staffing=staffing, top=3)
        moves_note = ""
    else:
        moves, moves_note = (
            [],
            f"single moves not searched: {len(staffing)} staffed people (limit {MAX_PEOPLE_FOR_MOVES})",
        )
    rows = [
        {"person": row.person, "project": row.project, "week": row.week, "days": row.days}
        for row in result.plan.itertuples()
    ]
    summary = {
        "status": result.status,
        "covered_days": round(float(result.coverage["covered"].sum()), 1) if not result.coverage.empty else 0.0,
        "short_days": round(float(result.coverage["short"].sum()), 1) if not result.coverage.empty else 0.0,
        "moves": [m["sentence"] for m in moves],
    }
    return AllocationPlan(rows, summary, allocation_markdown(result, moves, moves_note))


def _logger() -> Any:
    """The Prefect run logger inside a flow run; this module's logger outside one (tests, benchmarks)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def operate(
    engine: Engine, settings: Settings, run_id: str, *, allocation: bool, lease: Lease | None = None
) -> dict[str, Any]:
    """The PPOS pipeline (with or without the allocation): compute everything, store it with the run's
    "completed" in one transaction, then announce crossings and publish the artifact; returns the outcome.

    One transaction, so a run leaves all of its health, risk and allocation rows or none (a run that dies half
    way cannot leave a health series without its risk, or a baseline for the next run's crossings). With
    ``lease`` (the PPOS lock) nothing is stored unless the lease is still this run's.
    """
    portfolio = load_portfolio(engine, datetime.now(UTC))
    health = assess_health(engine, settings, portfolio)
    view = trace_dependencies(portfolio, health)
    risk = assess_risk(engine, settings, portfolio, health, view)
    outcome: dict[str, Any] = {
        "portfolio": round(health.portfolio.score, 1),
        "projects": {s.project: round(s.score, 1) for s in health.scores},
        "below_threshold": [s.project for s in health.scores if s.score < health.threshold],
        "events": [f"{event} {score.project}" for event, score in health.crossed],
        "dependency_problems": [p.message for p in view.problems],
        "blocked_chains": len(view.chains),
        "critical_chain": view.critical,
        "slip_model": risk.model.as_record(),
        "slip_risk": {p.project: round(p.probability, 3) for p in risk.predictions},
    }
    plan = None
    if allocation:
        # Projects likelier to slip get their demand covered first (priority 1 + P(slip), so 1 to 2).
        priority = {p.project: 1.0 + p.probability for p in risk.predictions}
        plan = plan_allocation(settings, portfolio, priority)
        outcome["allocation"] = plan.summary
    with session_scope(engine) as session:
        if lease is not None:
            lease.verify(session)  # first: from here to the commit no other PPOS run can take the lock over
        add_health(session, run_id, [*health.scores, health.portfolio], portfolio.now)
        add_risk(session, run_id, risk.predictions, risk.features, portfolio.now)
        for row in plan.rows if plan else []:
            session.add(PpAllocation(run_id=run_id, **row))
        finish_in(session, run_id, status="completed", outcome=jsonable(outcome))
    # The results are committed; what follows informs people, and its failure must not undo them.
    try:
        announce(health.crossed, health.previous, health.threshold)
        _publish(engine, settings, health, view, risk, plan)
    except Exception as exc:
        _logger().warning("results are stored, but publishing events/the artifact failed: %s", exc)
    return outcome


def _publish(
    engine: Engine,
    settings: Settings,
    health: HealthReport,
    view: DependencyView,
    risk: RiskReport,
    plan: AllocationPlan | None,
) -> None:
    """The ppos-portfolio artifact: health (with its chart), slip risk, dependencies and the allocation."""
    # The chart shows the worst projects (and the portfolio): twenty lines are nobody's chart.
    shown = [s.project for s in sorted(health.scores, key=lambda s: s.score)[:MAX_CHARTED]] + [PORTFOLIO]
    chart = health_chart(
        {key: health_series(engine, key) for key in shown},
        {s.project: s.name for s in health.scores} | {PORTFOLIO: "Portfolio"},
        health.threshold,
    )
    sections = [
        portfolio_markdown(health.scores, health.portfolio, health.previous, health.threshold, portfolio_key=PORTFOLIO),
        *([f"![health over time]({chart})"] if chart else []),
        risk_markdown(
            risk.model,
            risk.predictions,
            {s.project: s.name for s in health.scores},
            settings.ppos.prediction_accuracy,
        ),
        dependency_markdown(view.problems, view.chains, view.critical, view.critical_days, view.upstream),
        *([plan.markdown] if plan else []),
    ]
    create_markdown_artifact(
        key="ppos-portfolio",
        markdown="\n\n".join(sections),
        description="PPOS: project health, dependencies, slip risk and allocation",
    )


def run_exclusive(
    engine: Engine, settings: Settings, step: str, *, allocation: bool, wait: timedelta | None = None
) -> SystemResult:
    """One PPOS run: record it, take the PPOS lock, then compute, store and publish (``operate``).

    Health and operations runs share the lock: both write the health series and announce crossings from the
    newest stored scores, so two at once would store two series points for one moment and alert twice. A run
    that finds another one holding it waits up to ``wait`` (default ``LOCK_WAIT``), then records itself as
    skipped, naming the holder.
    """
    logger = _logger()
    end = run_recorded(
        SYSTEM,
        lambda run: operate(engine, settings, run.id, allocation=allocation, lease=run.lease),
        parameters={"step": step},
        engine=engine,
        model_version=MODEL_VERSION,
        exclusive=Exclusive(
            LOCK,
            ttl=SYSTEMS[SYSTEM].run_limit(settings),  # a crashed run blocks the next ones at most this long
            label=f"PPOS {step} run",
            wait=LOCK_WAIT if wait is None else wait,
        ),
        logger=logger,
    )
    if end.status == "skipped":
        return SystemResult(system=SYSTEM, run_id=end.run_id, status="skipped", summary=end.summary)
    run_id, outcome = end.run_id, end.value
    below = outcome["below_threshold"]
    summary = f"portfolio health {outcome['portfolio']:.0f} over {len(outcome['projects'])} projects; " + (
        f"{len(below)} below {settings.alerts.health_score_below:g}: {', '.join(below)}" if below else "none below"
    )
    if allocation:
        summary += f"; allocation short {outcome['allocation']['short_days']:g} days"
    logger.info(summary)
    return SystemResult(system=SYSTEM, run_id=run_id, summary=summary, metrics=outcome)


@flow(name="ppos-project-health", description="PPOS: health of every project and the portfolio, every 15 minutes.")
def project_health() -> SystemResult:
    """Health, dependencies and slip risk of every project; see the ppos-portfolio artifact."""
    return run_exclusive(open_store(), get_settings(), "health", allocation=False)


@flow(name="ppos-project-operations", description="PPOS system run: health, dependencies, slip risk, allocation.")
def project_operations() -> SystemResult:
    """What PSO runs for PPOS: everything ppos-project-health does, plus the resource allocation."""
    return run_exclusive(open_store(), get_settings(), "operations", allocation=True)
