"""PPMS — project management: sync the sources, rank the backlog, assign ready work, forecast completion.

Pipeline of ``ppms-project-management`` (what PSO runs): read GitHub/Jira/CSV sources incrementally
(bad rows quarantined with their reason) → WSJF/RICE ranking made dependency-aware → assignment of ready
tasks by skill and capacity (a MILP) → Monte Carlo completion forecast per project and milestone, with
``framework2.ppms.forecast.slipped`` when P85 moves past a target date → the calibration backtest (how
often past P85 dates held) when the last one is older than ``backtestRefreshDays``. Each step is also its
own flow (``ppms-sync``, ``ppms-prioritise``, ``ppms-assign``, ``ppms-forecast``, ``ppms-backtest``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from sqlalchemy import select
from sqlalchemy.engine import Engine

from framework2.config import ProjectManagementSettings, get_settings
from framework2.events import emit
from framework2.flows.lifecycle import Finish, SystemRun, run_recorded
from framework2.scale import ScaleOut, resolve_scale
from framework2.store.engine import open_store, session_scope
from framework2.store.models import AnalysisRun, PmAssignment, PmBacklogEntry, PmForecast
from framework2.store.planning import (
    load_dependencies,
    load_people,
    load_projects,
    load_published_forecasts,
    load_tasks,
    source_cursor,
    store_batch,
)
from framework2.store.runs import as_utc, jsonable
from framework2.systems import SystemResult
from framework2.tasks.planning.assign import assign
from framework2.tasks.planning.backtest import backtest, track_record
from framework2.tasks.planning.durations import working_days_between
from framework2.tasks.planning.flow import Dependence, estimate_dependence
from framework2.tasks.planning.forecast import scope_fingerprint
from framework2.tasks.planning.partitions import forecast_projects
from framework2.tasks.planning.prioritise import PrioritySettings, score_backlog
from framework2.tasks.planning.records import Batch
from framework2.tasks.planning.report import burnup_chart, calibration_chart, calibration_markdown, forecast_chart

SYSTEM = "ppms"
MODEL_VERSION = "ppms-1"


def sync_sources(engine: Engine, settings: ProjectManagementSettings, run_id: str | None) -> list[str]:
    """Read every configured source since its cursor and store what it read; one line per source."""
    from framework2.blocks.project_sources import GitHubSource, JiraSource
    from framework2.tasks.planning.connectors import read_csv, read_github, read_jira, read_people_csv

    lines = []

    def keep(source: str, batch: Batch) -> None:
        stored = store_batch(engine, batch, source, run_id)
        lines.append(
            f"{source}: {len(stored.tasks)} tasks, {len(stored.dependencies)} dependencies, "
            f"{len(stored.people)} people, {len(stored.rejected)} quarantined"
        )

    for name in settings.github_sources:
        source = f"github-source/{name}"
        keep(source, read_github(GitHubSource.load(name), source_cursor(engine, source)))
    for name in settings.jira_sources:
        source = f"jira-source/{name}"
        keep(source, read_jira(JiraSource.load(name), source_cursor(engine, source)))
    if settings.tasks_csv:
        keep(f"csv:{settings.tasks_csv}", read_csv(settings.tasks_csv))
    if settings.people_csv:
        keep(f"csv:{settings.people_csv}", read_people_csv(settings.people_csv))
    return lines


def rank_backlog(engine: Engine, settings: ProjectManagementSettings, run_id: str) -> pd.DataFrame:
    """Score and rank the open backlog, store the ranking with each score's parts, publish the table."""
    scored = score_backlog(
        load_tasks(engine), load_dependencies(engine), PrioritySettings(method=settings.priority_method)
    )
    parts = [c for c in scored.columns if c not in ("score", "rank", "ready", "why")]
    with session_scope(engine) as session:
        for key, row in scored.iterrows():
            session.add(
                PmBacklogEntry(
                    run_id=run_id,
                    task=str(key),
                    rank=int(row["rank"]),
                    score=float(row["score"]),
                    ready=bool(row["ready"]),
                    parts=jsonable({c: row[c] for c in parts}),
                    why=str(row["why"]),
                )
            )
    top = scored.sort_values("rank").head(50)
    create_table_artifact(
        key="ppms-backlog",
        table=[
            {
                "rank": int(r["rank"]),
                "task": str(k),
                "score": round(float(r["score"]), 2),
                "ready": bool(r["ready"]),
                "why": str(r["why"]),
            }
            for k, r in top.iterrows()
        ],
        description=f"PPMS backlog ranked by {settings.priority_method.upper()} (dependency-aware), top 50",
    )
    return scored


def assign_ready(engine: Engine, settings: ProjectManagementSettings, run_id: str, scored: pd.DataFrame) -> Any:
    """Assign the ready, unassigned tasks by skill, capacity and priority; store and publish who does what."""
    tasks = {t.key: t for t in load_tasks(engine)}
    ready = scored[
        scored["ready"] & scored.index.map(lambda k: tasks[k].assignee is None and tasks[k].status == "todo")
    ]
    load: dict[str, float] = {}
    now = datetime.now(UTC)
    for task in tasks.values():
        if task.assignee and task.status != "done":
            estimate = float(task.estimate_days or 0)
            if task.status == "in_progress" and task.started_at is not None:
                # Work already under way holds a person for what is left of it, not for all of it again
                # (at least a tenth, as the risk factors count it: an overrun task is not free time).
                estimate = max(estimate - working_days_between(task.started_at, now), 0.1 * estimate)
            load[task.assignee] = load.get(task.assignee, 0.0) + estimate
    result = assign(
        ready,
        load_people(engine),
        horizon_days=settings.assignment_horizon_days,
        start=datetime.now(UTC).date(),
        already_assigned_load=load,
    )
    with session_scope(engine) as session:
        for row in result.assigned.reset_index().itertuples():
            session.add(PmAssignment(run_id=run_id, task=str(row.task), person=str(row.person), why=str(row.why)))
        for row in result.unstaffed.reset_index().itertuples():
            session.add(PmAssignment(run_id=run_id, task=str(row.task), person=None, why=str(row.reason)))
    create_table_artifact(
        key="ppms-assignments",
        table=[{"task": r.task, "person": r.person, "why": r.why} for r in result.assigned.reset_index().itertuples()]
        + [
            {"task": r.task, "person": "—", "why": r.reason}
            for r in result.unstaffed.head(30).reset_index().itertuples()
        ],
        description="PPMS assignment of ready tasks (and what could not be staffed, with why)",
    )
    return result


def newest_forecast(engine: Engine, project: str) -> PmForecast | None:
    """The project's newest published forecast (the whole project, not a milestone), if any."""
    with session_scope(engine) as session:
        return session.scalars(
            select(PmForecast)
            .where(PmForecast.project == project, PmForecast.milestone.is_(None))
            .order_by(PmForecast.created_at.desc())
        ).first()


def _last_fingerprint(engine: Engine, project: str) -> str | None:
    row = newest_forecast(engine, project)
    return (row.details or {}).get("scope_fingerprint") if row else None


def _previous_p85(engine: Engine, project: str) -> Any:
    row = newest_forecast(engine, project)
    return row.p85 if row else None


def forecast_all(
    engine: Engine,
    settings: ProjectManagementSettings,
    run_id: str,
    projects: list[str] | None = None,
    *,
    scale: ScaleOut,
    calibration: dict[str, Any] | None = None,
    only_if_changed: bool = False,
) -> list[dict[str, Any]]:
    """Forecast every project (or the named ones) where ``scale`` says; store, chart and emit
    ``forecast.slipped`` on a slip and ``forecast.updated``. ``only_if_changed``: leave out a project whose
    work is as it was at its newest forecast today (how a burst of requirement changes gets one forecast)."""
    logger = get_run_logger()
    tasks, deps, people = load_tasks(engine), load_dependencies(engine), load_people(engine)
    now = datetime.now(UTC)
    wanted = [p for p in load_projects(engine) if not projects or p.key in projects]
    prints = {p.key: scope_fingerprint(p.key, p.target_date, tasks, deps, now.date()) for p in wanted}
    if only_if_changed:
        unchanged = [p.key for p in wanted if _last_fingerprint(engine, p.key) == prints[p.key]]
        if unchanged:
            logger.info("already forecast on this state of the work, left out: %s", ", ".join(unchanged))
        wanted = [p for p in wanted if p.key not in unchanged]
        if not wanted:
            return []
    calibration = calibration or latest_calibration(engine)
    dependence = calibrated_dependence(engine, calibration)
    computed = forecast_projects(
        wanted,
        tasks,
        deps,
        people,
        scale,
        now=now,
        trials=settings.forecast_trials,
        min_history_items=settings.min_history_items,
        dependence=dependence,
    )
    rows, sections = [], []
    for project, result in zip(wanted, computed, strict=True):
        overall, milestones, finish, risk = result.overall, result.milestones, result.finish, result.risk
        previous = _previous_p85(engine, project.key)
        with session_scope(engine) as session:
            for milestone, f in [(None, overall), *milestones.items()]:
                session.add(
                    PmForecast(
                        run_id=run_id,
                        project=project.key,
                        milestone=milestone,
                        method=f.method,
                        p50=f.p50_date,
                        p85=f.p85_date,
                        p95=f.p95_date,
                        target_date=f.target_date,
                        probability_on_time=f.probability_of_target,
                        remaining_tasks=sum(1 for t in tasks if t.project == project.key and t.status != "done"),
                        reason=f.reason,
                        details=jsonable(
                            {
                                **f.model_dump(mode="json"),
                                "scope_fingerprint": prints[project.key],
                                "risk": risk.model_dump(mode="json") if milestone is None else None,
                            }
                        ),
                    )
                )
        target = project.target_date
        if target and overall.p85_date and overall.p85_date > target and (previous is None or previous <= target):
            emit(
                SYSTEM,
                "forecast.slipped",
                {
                    "project": project.key,
                    "name": project.name,
                    "target": target,
                    "p85": overall.p85_date,
                    "previous_p85": previous,
                    "probability_on_time": overall.probability_of_target,
                },
            )
            logger.warning("%s: P85 %s is past the target %s", project.name, overall.p85_date, target)
        odds = f"{overall.probability_of_target:.0%}" if overall.probability_of_target is not None else "—"
        answer = overall.throughput
        rows.append(
            {
                "project": project.name,
                "method": overall.method,
                "model": overall.model,
                "P50": _shown(overall, 50),
                "P85": _shown(overall, 85),
                "P95": _shown(overall, 95),
                "throughput P85": str(answer.p85_date or "—") if answer else "—",
                "target": str(target or "—"),
                "on time": odds,
                "risk": f"{risk.total:.0f} ({risk.level})",
                "beyond_horizon": bool(overall.beyond_horizon),
            }
        )
        chart = forecast_chart(project.name, overall, finish) if finish is not None else None
        critical = ", ".join(f"{c.task} ({c.index:.0%})" for c in overall.criticality[:5]) or "—"
        lines = [f"## {project.name}", "", f"**Model — {overall.model}.** {overall.model_reason or overall.reason}", ""]
        if overall.horizon_note:
            lines += [f"**Beyond the horizon:** {overall.horizon_note}.", ""]
        if answer is not None and overall.model != "throughput":
            lines += [
                f"**The throughput answer** — when *any* {answer.items} items will be done at the recent rate "
                f"({answer.window}): P50 {answer.p50_date or '—'}, P85 {answer.p85_date or '—'}, P95 "
                f"{answer.p95_date or '—'}. It does not know which items; the dates above are for these ones.",
                "",
            ]
        lines += [overall.reason, ""]
        if overall.target_note:
            lines += [f"**Target:** {overall.target_note}", ""]
        lines += [f"**Most often on the critical path:** {critical}", ""]
        lines += [
            f"**Risk {risk.total:.0f}/100 ({risk.level})**, made of:",
            "",
            "| factor | measured | points | why |",
            "|---|---|---:|---|",
            *(f"| {r.label} | {r.measure} | {r.points:.0f} | {r.explanation} |" for r in risk.top),
            "",
        ]
        lines += [
            f"- milestone {name}: P50 {f.p50_date}, P85 {f.p85_date}, P95 {f.p95_date}"
            for name, f in milestones.items()
        ]
        if chart:
            lines += ["", f"![forecast of {project.name}]({chart})"]
        burnup = burnup_chart(project.name, [t for t in tasks if t.project == project.key], overall, now=now)
        if burnup:
            lines += ["", f"![burn-up of {project.name}]({burnup})"]
        sections.append("\n".join(lines))
    trust = (
        f"**How far to trust these dates — {calibration['verdict']}** (backtest of {calibration['at'][:10]}, see "
        f"the ppms-calibration artifact): {calibration['reason']}."
        if calibration
        else "**How far to trust these dates:** no calibration backtest has run yet (`ppms-backtest`)."
    )
    table = (
        "| project | model | P50 | P85 | P95 | any-N-items P85 | target | on time | risk |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    table += "\n".join(
        f"| {r['project']} | {r['model']} | {r['P50']} | {r['P85']} | {r['P95']} | {r['throughput P85']} | "
        f"{r['target']} | {r['on time']} | {r['risk']} |"
        for r in rows
    )
    create_markdown_artifact(
        key="ppms-forecast",
        markdown="# PPMS forecast\n\n" + table + "\n\n" + trust + "\n\n" + "\n\n".join(sections),
        description="PPMS completion forecasts (P50/P85/P95, odds of the target date)",
    )
    # PPOS re-scores health on it: the scope a requirement change added now shows in the schedule.
    emit(
        SYSTEM,
        "forecast.updated",
        {"projects": [p.key for p in wanted], "p85": {p.key: r["P85"] for p, r in zip(wanted, rows, strict=True)}},
    )
    return rows


def _shown(forecast: Any, quantile: int) -> str:
    when = getattr(forecast, f"p{quantile}_date")
    if when is not None:
        return str(when)
    return "beyond 5 years" if quantile in forecast.beyond_horizon else "—"


def forecast_quality(forecasts: list[dict[str, Any]], calibration: dict[str, Any] | None) -> tuple[float, str]:
    """How far this run's dates can be trusted, 0-1, and why: a date the model cannot give (beyond the
    horizon) halves it; a backtest verdict other than consistent (or too few cases to tell) takes a fifth."""
    quality, why = 1.0, []
    beyond = [f["project"] for f in forecasts if f.get("beyond_horizon")]
    if beyond:
        quality *= 0.5
        why.append(f"no date within 5 years for {', '.join(beyond)}")
    verdict = (calibration or {}).get("verdict")
    if verdict not in (None, "consistent", "too few cases"):
        quality *= 0.8
        why.append(f"the calibration backtest says {verdict}")
    return quality, "; ".join(why)


def calibrated_dependence(engine: Engine, calibration: dict[str, Any] | None = None) -> dict[str, Dependence]:
    """Per project, how its open items move together, as the latest calibration learned it.

    The weekly calibration replays the past once; every forecast of a project (nightly, triggered, and PCES's
    change impact) reuses it, and a project it has not seen estimates its own."""
    known = ((calibration or latest_calibration(engine)) or {}).get("dependence") or {}
    return {key: Dependence(**value) for key, value in known.items() if isinstance(value, dict)}


def latest_calibration(engine: Engine) -> dict[str, Any] | None:
    """The newest stored calibration backtest summary (from ``ppms-backtest`` or a system run), if any."""
    query = (
        select(AnalysisRun.outcome)
        .where(AnalysisRun.system == SYSTEM, AnalysisRun.status == "completed")
        .order_by(AnalysisRun.started_at.desc())
        .execution_options(yield_per=50)  # newest first, streamed: usually the first few rows answer
    )
    with session_scope(engine) as session:
        for outcome in session.scalars(query):
            result = (outcome or {}).get("result")
            if isinstance(result, dict) and result.get("calibration"):
                return result["calibration"]
    return None


def calibrate(engine: Engine, settings: ProjectManagementSettings) -> dict[str, Any]:
    """Replay past moments and score the forecasts published then against what happened; publish the
    ppms-calibration artifact; return the summary that is stored with the run."""
    now = datetime.now(UTC)
    tasks, dependencies = load_tasks(engine), load_dependencies(engine)
    progress = create_progress_artifact(0.0, description="PPMS calibration backtest: past moments replayed")
    cache: dict = {}
    result = backtest(
        tasks,
        dependencies,
        load_people(engine),
        now=now,
        every_days=settings.backtest_every_days,
        trials=min(settings.forecast_trials, 2_000),
        min_history_items=settings.min_history_items,
        on_progress=lambda done, total: update_progress_artifact(progress, 100.0 * done / total),
        dependence_cache=cache,
    )
    # Today's dependence per project, from the moments the backtest just replayed: the nightly forecasts
    # reuse it instead of replaying the past every night.
    dependence = {
        project.key: estimate_dependence(
            project.key, tasks, dependencies, now=now, min_history_items=settings.min_history_items, cache=cache
        ).__dict__
        for project in load_projects(engine)
    }
    record_cases, record = track_record(load_published_forecasts(engine), tasks, now=now)
    markdown = calibration_markdown(result, record, settings.backtest_every_days, calibration_chart(result))
    create_markdown_artifact(
        key="ppms-calibration", markdown=markdown, description="PPMS: how often past P85 dates held"
    )
    return jsonable(
        {
            "at": now,
            "verdict": result.verdict,
            "reason": result.reason,
            "trusted": result.trusted,
            "coverage": [c.model_dump() for c in result.coverage],
            "scores": result.scores.model_dump() if result.scores else None,
            "baseline": result.baseline.model_dump() if result.baseline else None,
            "cases": len(result.cases),
            "dependence": dependence,
            "track_record": [c.model_dump() for c in record],
            "published_cases": len(record_cases),
        }
    )


def _calibration_due(engine: Engine, settings: ProjectManagementSettings) -> bool:
    last = latest_calibration(engine)
    if last is None or settings.backtest_refresh_days == 0:
        return True
    return as_utc(datetime.fromisoformat(last["at"])) < datetime.now(UTC) - timedelta(
        days=settings.backtest_refresh_days
    )


def _run(step: str, parameters: dict[str, Any], body: Any, quality_of: Any = None) -> tuple[str, Any]:
    """One recorded PPMS run of ``step``: its outcome stored with the trust signal health reads (``quality_of``)."""

    def recorded(run: SystemRun) -> Finish:
        outcome = body(run.engine, run.id)
        stored: dict[str, Any] = {"step": step, "result": outcome}
        if quality_of is not None:
            # Health reads the run's own trust signal from the outcome's top level.
            stored["quality"], stored["quality_reason"] = quality_of(run.engine, outcome)
        return Finish(stored, value=outcome)

    end = run_recorded(SYSTEM, recorded, parameters={"step": step, **parameters}, model_version=MODEL_VERSION)
    return end.run_id, end.value


@flow(name="ppms-sync", description="PPMS: read GitHub, Jira and CSV sources incrementally into the store.")
def sync() -> list[str]:
    """Read every configured source since its last cursor; bad rows are quarantined with their reason."""
    settings = get_settings().ppms
    return _run("sync", {}, lambda engine, run_id: sync_sources(engine, settings, run_id))[1]


@flow(name="ppms-prioritise", description="PPMS: rank the open backlog by WSJF or RICE, dependency-aware.")
def prioritise(method: Literal["wsjf", "rice"] | None = None) -> int:
    """Rank the backlog; returns how many open tasks were ranked (the ppms-backlog artifact shows why)."""
    settings = get_settings().ppms
    if method:
        settings = settings.model_copy(update={"priority_method": method})
    return _run(
        "prioritise",
        {"method": settings.priority_method},
        lambda engine, run_id: len(rank_backlog(engine, settings, run_id)),
    )[1]


@flow(name="ppms-assign", description="PPMS: assign ready tasks by skill, capacity and priority (MILP).")
def assign_work(horizon_days: int | None = None) -> dict[str, int]:
    """Assign ready tasks; returns how many were assigned and how many could not be staffed."""
    settings = get_settings().ppms
    if horizon_days:
        settings = settings.model_copy(update={"assignment_horizon_days": horizon_days})

    def body(engine: Engine, run_id: str) -> dict[str, int]:
        result = assign_ready(engine, settings, run_id, rank_backlog(engine, settings, run_id))
        return {"assigned": len(result.assigned), "unstaffed": len(result.unstaffed)}

    return _run("assign", {"horizon_days": settings.assignment_horizon_days}, body)[1]


@flow(name="ppms-forecast", description="PPMS: Monte Carlo completion forecasts per project and milestone.")
def forecast(
    projects: list[str] | None = None, scale: ScaleOut | None = None, only_if_changed: bool = False
) -> list[dict[str, Any]]:
    """Forecast the projects (all by default) in process or on Dask; see the ppms-forecast artifact.
    ``only_if_changed``: skip projects already forecast today on the same work (set by the change trigger)."""
    settings = get_settings()
    where = resolve_scale(scale, settings.scale)
    return _run(
        "forecast",
        {"projects": projects, "scale": where.model_dump(exclude_none=True), "only_if_changed": only_if_changed},
        lambda engine, run_id: forecast_all(
            engine, settings.ppms, run_id, projects, scale=where, only_if_changed=only_if_changed
        ),
        lambda engine, rows: forecast_quality(rows, latest_calibration(engine)),
    )[1]


@flow(name="ppms-backtest", description="PPMS: replay past forecasts to show how often their P85 dates held.")
def calibration_backtest() -> dict[str, Any]:
    """Run the calibration backtest over every project; see the ppms-calibration artifact."""
    settings = get_settings().ppms
    return _run("backtest", {}, lambda engine, run_id: {"calibration": calibrate(engine, settings)})[1]


@flow(name="ppms-project-management", description="PPMS system run: sync, rank, assign, forecast.")
def project_management() -> SystemResult:
    """What PSO runs for PPMS: the whole pipeline, summarised in one line per step."""
    settings = get_settings().ppms
    where = resolve_scale(None, get_settings().scale)

    def body(engine: Engine, run_id: str) -> dict[str, Any]:
        synced = sync_sources(engine, settings, run_id)
        scored = rank_backlog(engine, settings, run_id)
        assigned = assign_ready(engine, settings, run_id, scored)
        # Calibration first, so tonight's forecast artifact can say how far its P85 dates have held.
        calibration = calibrate(engine, settings) if _calibration_due(engine, settings) else None
        forecasts = forecast_all(engine, settings, run_id, scale=where, calibration=calibration)
        return {
            "calibration": calibration,
            "synced": synced,
            "ranked": len(scored),
            "assigned": len(assigned.assigned),
            "unstaffed": len(assigned.unstaffed),
            "forecasts": forecasts,
        }

    run_id, outcome = _run(
        "all", {}, body, lambda engine, out: forecast_quality(out["forecasts"], latest_calibration(engine))
    )
    quality, why = forecast_quality(outcome["forecasts"], outcome["calibration"] or latest_calibration(open_store()))
    odds = "; ".join(f"{f['project']} P85 {f['P85']} ({f['on time']} on time)" for f in outcome["forecasts"])
    summary = (
        f"{outcome['ranked']} open tasks ranked, {outcome['assigned']} assigned, {outcome['unstaffed']} "
        f"not staffable; {odds or 'no projects yet'}"
    )
    if outcome["calibration"]:
        summary += f"; calibration: {outcome['calibration']['verdict']}"
    if why:
        summary += f"; trust lowered: {why}"
    return SystemResult(
        system=SYSTEM, run_id=run_id, summary=summary, quality=quality, metrics={"forecasts": outcome["forecasts"]}
    )
