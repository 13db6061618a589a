"""A project's completion forecast: which model, on what data, and the throughput answer beside it.

Which model, in order (``Forecast.model`` says which, ``model_reason`` why):

1. **flow** — when the duration model learned from finished work (the project's, or the organisation's
   for a young project): running tasks finish after their remaining time, backlog tasks wait then run,
   dependencies hold, open items move together as much as they did in the project's past, and the scope is
   never done sooner than its size at the recent rate (``flow.py``). This is the forecast of *these* items.
2. **plan** — too little finished history to learn from, but the open tasks have estimates: the estimates
   with a stated uncertainty band, through the dependency graph with the project's people as parallel
   workers. An uncalibrated plan, said plainly.
3. **throughput** — no estimates and no history of durations: when *any* N items will be done at the
   recent rate (``throughput.py``: the last 12 weeks, a shorter window for a young project, or an average
   project's share of the organisation's rate).
4. otherwise no forecast, with the reason.

The throughput answer for the same number of items is attached to every forecast that has a rate
(``Forecast.throughput``), so a lead sees both answers; the calibration backtest scores both on the same
past cases and says which held up better.

People's time off inside the forecast window (the first pass's P85) stretches waits and durations by the
share of people-days left, and the forecast is run again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date, datetime

import numpy as np

from framework2.tasks.planning.durations import DurationModel, working_days_between
from framework2.tasks.planning.flow import (
    Dependence,
    estimate_dependence,
    fit_durations_at,
    flow_finish,
    keyed_uniforms,
    project_rate,
    remaining_scope,
    simulate_flow,
    stable_seed,
    throughput_days,
)
from framework2.tasks.planning.montecarlo import (
    Forecast,
    ThroughputAnswer,
    build_forecast,
    critical_for,
    criticality_index,
    group_finish,
    simulate_schedule,
    unavailable_forecast,
)
from framework2.tasks.planning.records import DependencyRecord, PersonRecord, TaskRecord
from framework2.tasks.planning.throughput import ThroughputRate
from framework2.tasks.planning.waits import fit_wait_model

__all__ = ["availability", "forecast_project", "forecast_seed", "project_forecast", "remaining_scope", "workers_for"]


def workers_for(project: str, tasks: Sequence[TaskRecord], people: Sequence[PersonRecord]) -> int | None:
    """How many tasks of the project can run at once: the people working on it (None: nobody known)."""
    assignees = {t.assignee for t in tasks if t.project == project and t.assignee}
    known = {p.handle for p in people}
    count = len(assignees | (known if not assignees else set()))
    return count or None


def availability(
    project: str, tasks: Sequence[TaskRecord], people: Sequence[PersonRecord], start: date, working_days: int
) -> tuple[float, str]:
    """Share of the project's people-days available in the next ``working_days`` working days, after time
    off (people without a record count as available), and a sentence naming who is away."""
    if working_days < 1:
        return 1.0, ""
    assignees = {t.assignee for t in tasks if t.project == project and t.assignee}
    team = [p for p in people if p.handle in assignees] if assignees else list(people)
    size = len(assignees) or len(team)
    if not size:
        return 1.0, ""
    days = np.busday_offset(np.datetime64(start, "D"), np.arange(working_days), roll="forward").astype(date)
    away: dict[str, int] = {}
    for person in team:
        off = sum(1 for d in days if any(first <= d <= last for first, last in person.time_off))
        if off:
            away[person.handle] = int(off)
    if not away:
        return 1.0, ""
    share = 1.0 - sum(away.values()) / (size * working_days)
    names = ", ".join(f"{h} {n} d" for h, n in sorted(away.items()))
    return share, (
        f"time off in the next {working_days} working days ({names}) leaves {share:.0%} of the team's days, so "
        f"durations are stretched x{1 / share:.2f}"
    )


def _seed(rng: np.random.Generator | int | None) -> int:
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(0, 2**62))
    return 0 if rng is None else int(rng)


def _throughput_answer(
    rate: ThroughputRate | str, items: int, trials: int, seed: int, now: datetime
) -> tuple[ThroughputAnswer | None, np.ndarray | None, np.ndarray | None]:
    """The N-items answer as dates, and its per-trial calendar and working days (None without a rate)."""
    if isinstance(rate, str) or items == 0:
        return None, None, None
    calendar, working = throughput_days(rate, items, trials, seed, now)
    summary = build_forecast(calendar, method="throughput", start=now.date(), workdays=False)
    answer = ThroughputAnswer(
        items=items,
        p50_date=summary.p50_date,
        p85_date=summary.p85_date,
        p95_date=summary.p95_date,
        source=rate.source,
        window=rate.reason,
    )
    return answer, calendar, working


def _milestones(sample, scope: Sequence[TaskRecord], project: str, today: date, model: str) -> dict[str, Forecast]:
    milestones: dict[str, Forecast] = {}
    for name in sorted({t.milestone for t in scope if t.project == project and t.milestone}):
        members = [t.key for t in scope if t.project == project and t.milestone == name]
        critical = critical_for(sample, members).mean(axis=0)
        index = {k: float(critical[i]) for i, k in enumerate(sample.task_ids) if critical[i] > 0}
        milestones[name] = build_forecast(
            group_finish(sample, members),
            method="dependency-graph",
            start=today,
            criticality=index,
            reason=f"milestone {name}: {len(members)} open tasks",
            model=model,
        )
    return milestones


def forecast_project(
    project: str,
    tasks: Sequence[TaskRecord],
    dependencies: Sequence[DependencyRecord],
    people: Sequence[PersonRecord],
    model: DurationModel,
    *,
    now: datetime,
    target_date: date | None = None,
    trials: int = 10_000,
    rng: np.random.Generator | int | None = 0,
    min_history_items: int = 30,
    dependence: Dependence | float | None = None,
    dependence_cache: dict | None = None,
) -> tuple[Forecast, dict[str, Forecast], np.ndarray | None]:
    """The project's forecast, one per milestone (by the milestone's own tasks), and the per-trial finish
    days behind the project's (None without a forecast), for the chart.

    ``model`` is the duration model (``fit_duration_model`` on what is known at ``now``). ``dependence``: how
    strongly open items move together in the flow model — None estimates it from the project's past
    (``flow.estimate_dependence``, reusing ``dependence_cache`` when given), a number uses it as is.
    """
    seed = _seed(rng)
    today = now.date()
    scope, edges = remaining_scope(project, tasks, dependencies)
    if not scope:
        none = unavailable_forecast("dependency-graph", today, f"{project} has no open tasks", target_date=target_date)
        return none, {}, None
    own = [t.key for t in scope if t.project == project]
    rate = project_rate(project, tasks, now)
    answer, answer_calendar, answer_working = _throughput_answer(rate, len(own), trials, stable_seed(seed, "tp"), now)
    external = len(scope) - len(own)
    waiting = f" plus {external} open tasks in other projects they wait for" if external else ""

    if model.mode == "model":
        if dependence is None:
            dependence = estimate_dependence(
                project, tasks, dependencies, now=now, min_history_items=min_history_items, cache=dependence_cache
            )
        elif not isinstance(dependence, Dependence):
            dependence = Dependence(
                float(dependence), 0, f"items move together with correlation {dependence:g} (given)"
            )
        waits = fit_wait_model([t for t in tasks if t.project == project], now) or fit_wait_model(tasks, now)

        def run(stretch: float):  # type: ignore[no-untyped-def]
            sample = simulate_flow(
                scope,
                edges,
                model,
                waits,
                now=now,
                trials=trials,
                seed=seed,
                dependence=dependence.value,
                stretch=stretch * dependence.pace,
            )
            return sample, *flow_finish(sample, own, answer_working)

        sample, finish, floored = run(1.0)
        horizon_days = int(min(np.ceil(np.quantile(finish, 0.85)), 5 * 261))
        share, away = availability(project, tasks, people, today, horizon_days)
        if share < 1.0:
            sample, finish, floored = run(1.0 / max(share, 0.05))
        todo = sum(1 for t in scope if t.status == "todo")
        running = len(scope) - todo
        wait_text = (
            waits.describe() if waits is not None else "no history of waits: backlog tasks are taken to start now"
        )
        floor_text = (
            f"; the throughput floor ({answer.window}) decided {floored:.0%} of trials"
            if answer is not None
            else f"; no throughput floor ({rate})"
        )
        model_reason = (
            f"flow model: learned from how this team's work flowed — {running} running tasks finish after their "
            f"remaining time given how long they have run, {todo} not started wait then run ({wait_text}); "
            f"{dependence.reason}{floor_text}"
        )
        reason = (
            f"{len(own)} open tasks{waiting}; {trials:,} trials through the dependency graph"
            + (f"; {away}" if away else "")
            + f". Durations: {model.describe()}"
        )
        overall = build_forecast(
            finish,
            method="dependency-graph",
            start=today,
            target_date=target_date,
            criticality=criticality_index(sample, within=own),
            reason=reason,
            model="flow",
            model_reason=model_reason,
            dependence=dependence.value,
            throughput=answer,
        )
        return overall, _milestones(sample, scope, project, today, overall.model), finish

    if any(t.estimate_days is not None for t in scope):
        workers = workers_for(project, tasks, people)
        keys = [t.key for t in scope]
        # A running task's remaining time, given how long it has run: an overrun never reads as "done tomorrow".
        elapsed = np.array(
            [
                working_days_between(t.started_at, now) if t.status == "in_progress" and t.started_at else 0.0
                for t in scope
            ]
        )
        # Keyed by task like the flow model: a task added to the scope leaves the others' draws alone.
        draws = model.sample_remaining(scope, elapsed, trials, uniforms=keyed_uniforms(keys, trials, seed))
        sample = simulate_schedule(keys, np.asfortranarray(draws), edges, workers=workers)
        horizon_days = int(min(np.ceil(np.quantile(group_finish(sample, own), 0.85)), 5 * 261))
        share, away = availability(project, tasks, people, today, horizon_days)
        if share < 1.0:
            draws /= max(share, 0.05)
            sample = simulate_schedule(keys, np.asfortranarray(draws), edges, workers=workers)
        model_reason = (
            "plan: too little finished work to learn from, so the estimates (with the stated band) go through the "
            "dependency graph with "
            + (f"{workers} people working in parallel" if workers else "unlimited parallelism (no people known)")
            + "; nothing has checked these dates against this team yet"
        )
        reason = (
            f"{len(own)} open tasks{waiting}; {trials:,} trials through the dependency graph with "
            + (f"{workers} people in parallel" if workers else "unlimited parallelism (no people known)")
            + (f"; {away}" if away else "")
            + f". Durations: {model.describe()}"
        )
        # These items cannot be done sooner than as many items at the team's recent rate, plan or not.
        finish, _ = flow_finish(sample, own, answer_working)
        overall = build_forecast(
            finish,
            method="dependency-graph",
            start=today,
            target_date=target_date,
            criticality=criticality_index(sample, within=own),
            reason=reason,
            model="plan",
            model_reason=model_reason,
            throughput=answer,
        )
        return overall, _milestones(sample, scope, project, today, overall.model), finish

    if answer_calendar is None:
        why = rate if isinstance(rate, str) else "no open task of the project"
        return (
            unavailable_forecast(
                "throughput",
                today,
                f"no open task has an estimate, there is too little finished work to learn durations from, and {why}; "
                "add estimates or wait for more history",
                target_date=target_date,
            ),
            {},
            None,
        )
    assert answer is not None
    reason = f"{len(own)} open tasks without estimates and too little finished work to learn durations from"
    return (
        build_forecast(
            answer_calendar,
            method="throughput",
            start=today,
            target_date=target_date,
            workdays=False,
            reason=reason,
            model="throughput",
            model_reason=(
                f"throughput: when any {len(own)} items will be done at the recent rate ({answer.window}, "
                f"{answer.source}); it does not know which items, so read it as a lower bound for these ones"
            ),
            throughput=answer,
        ),
        {},
        answer_calendar,
    )


def forecast_seed(project: str) -> int:
    """PPMS's seed for a project's forecast. Fixed, not drawn per run: the same scope on the same day gives the
    same dates (a re-forecast moves only when the work moved), and with draws keyed by task a task added to
    the scope leaves every other task's draws as they were."""
    return stable_seed("ppms-forecast", project)


def project_forecast(
    project: str,
    target_date: date | None,
    tasks: Sequence[TaskRecord],
    dependencies: Sequence[DependencyRecord],
    people: Sequence[PersonRecord],
    *,
    now: datetime,
    trials: int,
    min_history_items: int,
    dependence: Dependence | None = None,
    seed: int | None = None,
    dependence_cache: dict | None = None,
) -> tuple[Forecast, dict[str, Forecast], np.ndarray | None, DurationModel]:
    """The forecast PPMS publishes for ``project`` on this state of the work: its own duration model (the
    project's history, the organisation's for a young project), ``trials`` trials, the seed of
    ``forecast_seed`` unless one is given. Also the milestones, the per-trial finish days and the model."""
    model = fit_durations_at(project, tasks, now, min_history_items=min_history_items)
    overall, milestones, finish = forecast_project(
        project,
        tasks,
        dependencies,
        people,
        model,
        now=now,
        target_date=target_date,
        trials=trials,
        rng=forecast_seed(project) if seed is None else seed,
        min_history_items=min_history_items,
        dependence=dependence,
        dependence_cache=dependence_cache,
    )
    return overall, milestones, finish, model


def scope_fingerprint(
    project: str,
    target_date: date | None,
    tasks: Sequence[TaskRecord],
    dependencies: Sequence[DependencyRecord],
    today: date,
) -> str:
    """A digest of everything a project's forecast depends on today: its open work and what that waits on
    (keys, status, estimates, people, starts, milestones), the dependencies, its target and the date. Equal
    digests mean the forecast would come out the same, so a re-run can be left out."""
    scope, edges = remaining_scope(project, tasks, dependencies)
    done = sum(1 for t in tasks if t.project == project and t.status == "done")
    parts = [project, str(target_date), today.isoformat(), str(done)]
    parts += sorted(
        "|".join(str(v) for v in (t.key, t.status, t.estimate_days, t.assignee, t.started_at, t.milestone, t.project))
        for t in scope
    )
    parts += sorted(f"{a}->{b}" for a, b in edges)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]
