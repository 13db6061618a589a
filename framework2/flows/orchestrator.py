"""PSO — the master orchestrator: run the systems in dependency order, roll up their health, emit events.

Pipeline: select systems → run each (subflow here, or its deployment on a worker) in dependency order,
independent ones concurrently → score health per system from the store → store it, publish the roll-up,
emit ``framework2.<system>.run.*`` and ``framework2.<system>.health.*`` events.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine

from framework2.config import get_settings
from framework2.events import emit
from framework2.store.engine import open_store, session_scope
from framework2.store.locks import held
from framework2.store.models import utcnow
from framework2.store.runs import (
    add_system_health,
    as_utc,
    finish_run,
    latest_health,
    recent_runs,
    record_failed_run,
    run_for_flow_run,
)
from framework2.systems import SystemResult, SystemSpec
from framework2.tasks.health import HealthScore, RunRecord, score_health
from framework2.tasks.orchestration import SystemOutcome, run_in_dependency_order, select_systems

# One PSO health roll-up at a time (see roll_up_health). A roll-up takes seconds; one whose PSO run died
# holding the lock frees it after this long.
HEALTH_LOCK = "pso-health"
HEALTH_LOCK_TTL = timedelta(minutes=5)

QUEUE_GRACE = timedelta(minutes=10)  # for a worker to pick a deployment run up, on top of its time limit


class OrchestrationReport(BaseModel):
    """What one PSO run did: each system's outcome and health."""

    outcomes: list[SystemOutcome]
    health: dict[str, float] = Field(description="Health score 0–100 per system.")
    portfolio_health: float
    failed: list[str]


def _outcome_from_result(spec: SystemSpec, result: SystemResult, flow_run_id: str | None) -> SystemOutcome:
    return SystemOutcome(
        system=spec.code,
        status=result.status,
        flow_run_id=flow_run_id,
        run_id=result.run_id,
        summary=result.summary,
        quality=result.quality,
        metrics=result.metrics,
    )


async def _error_text(state: Any) -> str:
    try:
        exc = await state.aresult(raise_on_failure=False)
    except Exception as err:  # the result itself may be unreadable
        exc = err
    if isinstance(exc, BaseException):
        return f"{type(exc).__name__}: {exc}"
    return state.message or state.name


async def run_as_subflow(spec: SystemSpec, parameters: dict[str, Any]) -> SystemOutcome:
    """Run the system's flow in this process, as a child of the PSO run."""
    flow_obj = spec.load_flow()
    # The system flows are synchronous; a worker thread keeps them concurrent. to_thread copies the
    # context, so each subflow is linked to this PSO run in the UI.
    state = await asyncio.to_thread(flow_obj, **parameters, return_state=True)
    flow_run_id = str(state.state_details.flow_run_id) if state.state_details.flow_run_id else None
    if state.is_completed():
        return _outcome_from_result(spec, await state.aresult(), flow_run_id)
    return SystemOutcome(system=spec.code, status="failed", flow_run_id=flow_run_id, error=await _error_text(state))


def _unfinished(spec: SystemSpec, state: Any, waited: timedelta) -> str:
    where = f"{spec.code.upper()} did not finish within {waited}: its run is still {state.name if state else 'unknown'}"
    if state is not None and (state.is_scheduled() or state.is_pending()):
        return f"{where}; no worker took it (is a worker running on the deployment's pool?)"
    return f"{where}; its worker may have died (cancel the run in the Prefect UI if so)"


async def run_as_deployment(spec: SystemSpec, parameters: dict[str, Any]) -> SystemOutcome:
    """Start the system's deployment (a worker runs it) and read its outcome back from the store.

    PSO waits as long as the system's run may legitimately take plus ``QUEUE_GRACE`` for a worker to pick it
    up; a run lost with its worker (Prefect leaves it Running) then fails this system instead of PSO.
    """
    waited = spec.run_limit(get_settings(), parameters) + QUEUE_GRACE
    try:
        flow_run = await run_deployment(
            name=spec.deployment, parameters=parameters, timeout=waited.total_seconds(), as_subflow=True
        )
    except ObjectNotFound:
        return SystemOutcome(
            system=spec.code,
            status="failed",
            error=f"deployment {spec.deployment!r} does not exist: run `framework2 init`",
        )
    flow_run_id = str(flow_run.id)
    engine = open_store(migrate=False)
    stored = run_for_flow_run(engine, flow_run_id)
    state = flow_run.state
    if state is None or not state.is_final():
        # Still going past its time limit: leave its run record alone (its lease has run out; a rerun takes over).
        return SystemOutcome(
            system=spec.code,
            status="failed",
            flow_run_id=flow_run_id,
            run_id=stored.id if stored else None,
            error=_unfinished(spec, state, waited),
        )
    if state is not None and state.is_completed() and stored is not None and stored.status == "completed":
        outcome = stored.outcome or {}
        return SystemOutcome(
            system=spec.code,
            status="completed",
            flow_run_id=flow_run_id,
            run_id=stored.id,
            summary=str(outcome.get("summary", "")),
            quality=outcome.get("quality"),
            metrics=outcome.get("metrics", {}),
        )
    message = f"{state.name}: {state.message}" if state is not None else "the run has no final state"
    if stored is not None and stored.status == "running":
        # The process died (crash, killed worker) before the system could record its end.
        finish_run(engine, stored.id, status="failed", error=message)
    return SystemOutcome(
        system=spec.code,
        status="failed",
        flow_run_id=flow_run_id,
        run_id=stored.id if stored else None,
        error=(stored.error if stored and stored.error else message),
    )


def not_due_reason(spec: SystemSpec, settings: Any) -> str | None:
    """Why ``spec`` need not run now, or None if it is due.

    Not due: its last good run is younger than its interval, or a run younger than the system's
    ``max_duration`` is still in progress (a pricing run may wait for a person to approve), so a scheduled
    PSO never starts a second one.
    """
    engine = open_store(settings, migrate=False)
    interval = spec.expected_interval(settings)
    now = utcnow()
    for run in recent_runs(engine, spec.code, limit=5):
        if spec.in_progress(run, settings, now):
            minutes = int((now - run.started_at).total_seconds() // 60)
            return f"not due: a run started {minutes} min ago is still in progress"
        if run.status == "completed" and run.finished_at is not None:
            age = now - run.finished_at
            if age < interval:
                return f"not due: last good run {int(age.total_seconds() // 60)} min ago, runs every {interval}"
            return None
    return None


@task(name="pso-score-health", cache_policy=NO_CACHE)
def score_system(spec_code: str, outcome: SystemOutcome) -> HealthScore:
    """Score one system from its stored runs (stored by ``roll_up_health`` with the others)."""
    from framework2.systems import SYSTEMS

    settings = get_settings()
    engine = open_store(settings, migrate=False)
    if outcome.status == "failed" and (
        outcome.flow_run_id is None or run_for_flow_run(engine, outcome.flow_run_id) is None
    ):
        # The system never got far enough to record itself; record the failure so health sees it.
        record_failed_run(engine, spec_code, outcome.flow_run_id, outcome.error or "failed before start")
    runs = [
        RunRecord(
            r.status,
            r.started_at,
            r.finished_at,
            (r.outcome or {}).get("quality"),
            (r.outcome or {}).get("quality_reason"),
        )
        for r in recent_runs(engine, spec_code, settings.coordination.success_window)
    ]
    score = score_health(
        spec_code,
        runs,
        now=utcnow(),
        expected_interval=SYSTEMS[spec_code].expected_interval(settings),
        weights=settings.coordination.health_weights,
    )
    return score


def roll_up_health(
    engine: Engine,
    settings: Any,
    outcomes: list[SystemOutcome],
    orchestration_run_id: str | None,
    *,
    score: Callable[[str, SystemOutcome], HealthScore] = score_system,
    wait: timedelta = HEALTH_LOCK_TTL + timedelta(seconds=30),
) -> tuple[dict[str, HealthScore], dict[str, str]]:
    """Score every system, store the scores in one transaction, and say which systems crossed the health
    threshold since the stored scores (``health.degraded`` / ``health.recovered``).

    Under the PSO health lock: two overlapping PSO runs (the 15-minute schedule and a webhook, or a slow run and
    the next) roll up one after the other, so the second compares with the first's scores and one crossing is
    announced once. ``wait`` outlasts the lock's expiry, so only a live roll-up can keep another waiting.
    """
    holder = str(uuid.uuid4())  # unique per roll-up (a retried flow run keeps its id)
    label = f"PSO run {orchestration_run_id or holder}"
    with held(engine, HEALTH_LOCK, holder=holder, ttl=HEALTH_LOCK_TTL, label=label, wait=wait) as lease:
        before = latest_health(engine)
        scores = {o.system: score(o.system, o) for o in outcomes}
        with session_scope(engine) as session:
            lease.verify(session)
            for value in scores.values():
                add_system_health(session, value, orchestration_run_id)
    threshold = settings.alerts.health_score_below
    crossed = {}
    for code, value in scores.items():
        was_healthy = code not in before or before[code].score >= threshold
        # Alert on the crossing, not on every run while it stays low (PSO runs every 15 minutes).
        if value.score < threshold and was_healthy:
            crossed[code] = "health.degraded"
        elif value.score >= threshold and not was_healthy:
            crossed[code] = "health.recovered"
    return scores, crossed


def _fmt_time(value: datetime | None) -> str:
    return as_utc(value).strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def rollup_markdown(outcomes: list[SystemOutcome], scores: dict[str, HealthScore], threshold: float) -> str:
    """The PSO roll-up a person reads: one row per system, then what went wrong."""
    lines = [
        "# PSO roll-up",
        "",
        "| System | Run | Health | Success rate | Freshness | Quality | Summary |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for o in outcomes:
        s = scores[o.system]
        flag = " ⚠" if s.score < threshold else ""
        lines.append(
            f"| {o.system.upper()} | {o.status} ({o.seconds:.1f}s) | {s.score:.1f}{flag} | {s.success_rate:.0%} "
            f"| {s.freshness:.0%} | {s.quality:.2f} | {(o.summary or o.error or '').replace('|', '/')} |"
        )
    problems = [(o, scores[o.system]) for o in outcomes if o.status == "failed" or scores[o.system].reasons]
    if problems:
        lines += ["", "## Why scores are below 100", ""]
        for o, s in problems:
            why = "; ".join(([o.error] if o.error else []) + s.reasons)
            lines.append(f"- **{o.system.upper()}**: {why}")
    lines += ["", f"Health threshold: {threshold:g}. Scores below it emit `framework2.<system>.health.degraded`."]
    return "\n".join(lines)


@flow(name="pso-orchestrator", description="Run the Framework Set 2 systems in dependency order and roll up health.")
async def orchestrate(
    systems: list[str] | None = None,
    execution: Literal["subflow", "deployment"] | None = None,
    system_parameters: dict[str, dict[str, Any]] | None = None,
    only_due: bool = False,
) -> OrchestrationReport:
    """Run the selected systems (all by default) and publish their health.

    ``execution``: "subflow" runs each system in this process; "deployment" starts each system's deployment
    so it runs on its own worker. ``system_parameters`` overrides parameters per system code. ``only_due``
    skips systems whose last good run is younger than their interval (the scheduled PSO uses it, so a
    system with its own schedule is not run twice).
    """
    logger = get_run_logger()
    settings = get_settings()
    open_store(settings)  # fail early and clearly if the store is unreachable; migrates a new store
    specs = select_systems(systems)
    mode = execution or settings.coordination.execution
    overrides = system_parameters or {}
    logger.info("PSO running %s as %ss", ", ".join(s.code for s in specs), mode)

    async def run_one(spec: SystemSpec, upstream_failed: list[str]) -> SystemOutcome:
        if only_due and (fresh_for := not_due_reason(spec, settings)):
            return SystemOutcome(system=spec.code, status="skipped", summary=fresh_for)
        parameters = spec.default_parameters(settings) | overrides.get(spec.code, {})
        if upstream_failed:
            logger.warning("%s runs although upstream %s failed", spec.code, ", ".join(upstream_failed))
        runner = run_as_deployment if mode == "deployment" else run_as_subflow
        outcome = await runner(spec, parameters)
        emit(spec.code, f"run.{outcome.status}", outcome.model_dump(exclude={"metrics"}, mode="json"))
        if outcome.status == "failed":
            logger.error("%s failed: %s", spec.code, outcome.error)
        return outcome

    outcomes = await run_in_dependency_order(specs, run_one, max_parallel=settings.coordination.max_parallel_systems)

    run_context = get_run_context()
    orchestration_run_id = str(run_context.flow_run.id) if run_context.flow_run else None
    # In a thread: waiting for another PSO run's roll-up must not block this flow's event loop.
    scores, crossed = await asyncio.to_thread(
        roll_up_health, open_store(settings, migrate=False), settings, outcomes, orchestration_run_id
    )
    threshold = settings.alerts.health_score_below
    for code, score in scores.items():
        emit(code, "health.scored", {"score": score.score, **score.components()})
        if crossed.get(code) == "health.degraded":
            emit(code, "health.degraded", {"score": score.score, "threshold": threshold, **score.components()})
        elif crossed.get(code) == "health.recovered":
            emit(code, "health.recovered", {"score": score.score, "threshold": threshold})

    await create_markdown_artifact(
        key="pso-rollup", markdown=rollup_markdown(outcomes, scores, threshold), description="PSO system roll-up"
    )
    await create_table_artifact(
        key="pso-health",
        table=[
            {
                "system": c.upper(),
                "health": s.score,
                "success_rate": round(s.success_rate, 3),
                "freshness": round(s.freshness, 3),
                "quality": round(s.quality, 3),
                "last_run": _fmt_time(s.last_run_at),
            }
            for c, s in scores.items()
        ],
        description="Health per system",
    )
    failed = [o.system for o in outcomes if o.status == "failed"]
    portfolio = round(sum(s.score for s in scores.values()) / max(len(scores), 1), 2)
    emit("pso", "orchestration.completed", {"failed": failed, "health": {c: s.score for c, s in scores.items()}})
    return OrchestrationReport(
        outcomes=outcomes, health={c: s.score for c, s in scores.items()}, portfolio_health=portfolio, failed=failed
    )
