"""PPOS — project operations across the portfolio: which projects are in trouble, why, and what to do.

Pipeline of ``ppos-project-operations`` (what PSO runs, after PPMS): load the portfolio PPMS keeps (tasks,
dependencies, people, forecasts, assignments) with PLOS releases and PCES changes → score health per project
and for the portfolio with named, weighted components, stored as a time series, with
``framework2.ppos.health.degraded``/``.recovered`` on a threshold crossing → trace cross-project
dependencies (problems, blocked chains, the critical chain, risk flowing from upstream projects) → predict
each project's chance of slipping, its drivers and the mitigations they call for → allocate people across
projects for the coming weeks → publish the ``ppos-portfolio`` artifact. ``ppos-project-health`` (every 15
minutes and on events) is the same without the allocation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from sqlalchemy.engine import Engine

from framework2.config import Settings, get_settings
from framework2.events import emit_about_project
from framework2.flows.common import current_flow_run_id
from framework2.store.context import requirement_changes
from framework2.store.engine import open_store, session_scope
from framework2.store.models import PpAllocation
from framework2.store.planning import load_dependencies, load_people, load_projects, load_tasks
from framework2.store.portfolio import (
    health_series,
    latest_forecasts,
    latest_staffing,
    previous_health,
    release_counts,
    save_health,
    save_risk,
    slip_history,
)
from framework2.store.runs import failed_on_error, finish_run, jsonable, start_run
from framework2.systems import SystemResult
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
    changes = requirement_changes(engine, now - timedelta(days=SCOPE_WINDOW_DAYS))
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
                requirement_changes=changes.get(project.key),
                **task_signals(project.key, tasks, deps, now=now),
            )
        )
    return signals


def announce_crossings(
    scores: list[HealthScore], previous: dict[str, float], threshold: float
) -> list[tuple[str, HealthScore]]:
    """Emit ``health.degraded`` when a project (or the portfolio) falls below the threshold and
    ``health.recovered`` when it climbs back — on the crossing only, not on every run below it."""
    crossed = []
    for score in scores:
        before = previous.get(score.project)
        below = score.score < threshold
        if below and (before is None or before >= threshold):
            event = "health.degraded"
        elif not below and before is not None and before < threshold:
            event = "health.recovered"
        else:
            continue
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
        crossed.append((event, score))
    return crossed


@dataclass
class HealthReport:
    """One run's health: per project and for the portfolio, the scores before it, and what was announced."""

    signals: list[ProjectSignals]
    scores: list[HealthScore]
    portfolio: HealthScore
    previous: dict[str, float]
    threshold: float
    crossed: list[tuple[str, HealthScore]]


def assess_health(engine: Engine, settings: Settings, run_id: str, portfolio: Portfolio) -> HealthReport:
    """Score and store every project's and the portfolio's health; announce threshold crossings."""
    signals = gather_signals(engine, settings, portfolio)
    scores = [score_health(s, settings.ppos.health_weights) for s in signals]
    overall = portfolio_health(scores, key=PORTFOLIO)
    previous = previous_health(engine)
    threshold = settings.alerts.health_score_below
    save_health(engine, run_id, [*scores, overall], portfolio.now)
    crossed = announce_crossings([*scores, overall], previous, threshold)
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
    """Each open project's chance of slipping, with the model (or heuristic) behind it."""

    model: SlipModel
    predictions: list[SlipPrediction]


def assess_risk(
    engine: Engine, settings: Settings, run_id: str, portfolio: Portfolio, health: HealthReport, view: DependencyView
) -> RiskReport:
    """Predict and store P(slip > slipDays) for every project with open work; the classifier learns from the
    features stored for projects that have since finished (the heuristic until there are enough)."""
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
    save_risk(engine, run_id, predictions, rows, portfolio.now)
    return RiskReport(model, predictions)


def plan_allocation(
    engine: Engine, settings: Settings, run_id: str, portfolio: Portfolio, priority: dict[str, float]
) -> tuple[dict[str, Any], str]:
    """Allocate people across projects for the coming weeks; store the plan; the summary and its markdown."""
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
    with session_scope(engine) as session:
        for row in result.plan.itertuples():
            session.add(
                PpAllocation(run_id=run_id, person=row.person, project=row.project, week=row.week, days=row.days)
            )
    summary = {
        "status": result.status,
        "covered_days": round(float(result.coverage["covered"].sum()), 1) if not result.coverage.empty else 0.0,
        "short_days": round(float(result.coverage["short"].sum()), 1) if not result.coverage.empty else 0.0,
        "moves": [m["sentence"] for m in moves],
    }
    return summary, allocation_markdown(result, moves, moves_note)


def operate(engine: Engine, settings: Settings, run_id: str, *, allocation: bool) -> dict[str, Any]:
    """The PPOS pipeline (with or without the allocation); publishes the artifact, returns the stored summary."""
    portfolio = load_portfolio(engine, datetime.now(UTC))
    health = assess_health(engine, settings, run_id, portfolio)
    view = trace_dependencies(portfolio, health)
    risk = assess_risk(engine, settings, run_id, portfolio, health, view)
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
    ]
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
    if allocation:
        # Projects likelier to slip get their demand covered first (priority 1 + P(slip), so 1 to 2).
        priority = {p.project: 1.0 + p.probability for p in risk.predictions}
        outcome["allocation"], markdown = plan_allocation(engine, settings, run_id, portfolio, priority)
        sections.append(markdown)
    create_markdown_artifact(
        key="ppos-portfolio",
        markdown="\n\n".join(sections),
        description="PPOS: project health, dependencies, slip risk and allocation",
    )
    return outcome


def _run(settings: Settings, step: str, *, allocation: bool) -> SystemResult:
    engine = open_store()
    run_id = start_run(
        engine, SYSTEM, parameters={"step": step}, flow_run_id=current_flow_run_id(), model_version=MODEL_VERSION
    )
    with failed_on_error(engine, run_id):
        outcome = operate(engine, settings, run_id, allocation=allocation)
    finish_run(engine, run_id, status="completed", outcome=jsonable(outcome))
    below = outcome["below_threshold"]
    summary = f"portfolio health {outcome['portfolio']:.0f} over {len(outcome['projects'])} projects; " + (
        f"{len(below)} below {settings.alerts.health_score_below:g}: {', '.join(below)}" if below else "none below"
    )
    if allocation:
        summary += f"; allocation short {outcome['allocation']['short_days']:g} days"
    get_run_logger().info(summary)
    return SystemResult(system=SYSTEM, run_id=run_id, summary=summary, metrics=outcome)


@flow(name="ppos-project-health", description="PPOS: health of every project and the portfolio, every 15 minutes.")
def project_health() -> SystemResult:
    """Health, dependencies and slip risk of every project; see the ppos-portfolio artifact."""
    return _run(get_settings(), "health", allocation=False)


@flow(name="ppos-project-operations", description="PPOS system run: health, dependencies, slip risk, allocation.")
def project_operations() -> SystemResult:
    """What PSO runs for PPOS: everything ppos-project-health does, plus the resource allocation."""
    return _run(get_settings(), "operations", allocation=True)
