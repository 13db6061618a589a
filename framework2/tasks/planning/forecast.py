"""A project's completion forecast: the duration model's draws run through the dependency graph.

Which method, in order:

1. **dependency-graph** — the remaining tasks (and the not-done tasks in other projects they wait for)
   get duration draws from the duration model (trained on completed tasks; with too little history it
   says so and uses estimates with a stated uncertainty band), and ``simulate_schedule`` runs them
   through the dependencies with the project's people as parallel workers.
2. **throughput** — when no remaining task has an estimate and the duration model has no history
   either, the daily completed-item counts of the last five weeks (zero days kept) are resampled, as
   throughput-based Monte Carlo tools do; it needs 30 completed items over 5 weeks and says so.
3. otherwise no forecast, with the reason.

People's time off inside the forecast window (the first pass's P85) stretches durations by the share of
people-days left, and the forecast is run again; weekly capacity needs no adjustment, because it already
shaped the history the durations were learned from.

A task already in progress has survived the working days since it started, so its remaining time is
drawn from its duration distribution *given* that it lasts longer than that (``remaining_given_spent``).
Subtracting the time spent from an unconditional draw instead makes the tasks that have been running
long — the ones most likely to be long — look nearly done; the calibration backtest showed that as P85
dates that held only about 60 % of the time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import numpy as np

from framework2.tasks.planning.durations import DurationModel, normal_above, working_days_between
from framework2.tasks.planning.montecarlo import (
    Forecast,
    build_forecast,
    critical_for,
    criticality_index,
    daily_throughput,
    group_finish,
    history_sufficient,
    simulate_schedule,
    throughput_forecast,
    unavailable_forecast,
)
from framework2.tasks.planning.records import DependencyRecord, PersonRecord, TaskRecord

MIN_SURVIVING_SHARE = 0.05


def remaining_given_spent(draws: np.ndarray, spent: float, rng: np.random.Generator) -> np.ndarray:
    """Remaining working days of a task that has run ``spent`` days, one per trial, given its duration draws.

    While at least ``MIN_SURVIVING_SHARE`` of the draws exceed ``spent``, trials resample those draws (the
    empirical conditional distribution) minus ``spent``. Past that — a task running longer than nearly
    everything its kind ever took — a log-normal fitted to the draws is conditioned on exceeding ``spent``
    and sampled by inverse CDF, so an overrunning task keeps a heavy tail instead of a made-up small rest.
    """
    if spent <= 0:
        return draws
    surviving = draws[draws > spent]
    if len(surviving) >= MIN_SURVIVING_SHARE * len(draws):
        return rng.choice(surviving, size=len(draws)) - spent
    logs = np.log(np.maximum(draws, 1e-9))
    return np.maximum(np.exp(normal_above(logs, float(np.log(spent)), rng, len(draws))) - spent, 0.0)


def remaining_scope(
    project: str, tasks: Sequence[TaskRecord], dependencies: Sequence[DependencyRecord]
) -> tuple[list[TaskRecord], list[tuple[str, str]]]:
    """Not-done tasks of ``project`` plus the not-done tasks anywhere they (transitively) wait for,
    and the dependency edges among them (edges to done tasks are satisfied and dropped)."""
    by_key = {t.key: t for t in tasks}
    waits: dict[str, list[str]] = {}
    for dep in dependencies:
        waits.setdefault(dep.task, []).append(dep.depends_on)
    open_keys = [t.key for t in tasks if t.project == project and t.status != "done"]
    seen: dict[str, None] = {}
    stack = list(open_keys)
    while stack:
        key = stack.pop()
        if key in seen or key not in by_key or by_key[key].status == "done":
            continue
        seen[key] = None
        stack.extend(waits.get(key, []))
    scope = [by_key[k] for k in seen]
    edges = [(d.task, d.depends_on) for d in dependencies if d.task in seen and d.depends_on in seen]
    return scope, edges


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
) -> tuple[Forecast, dict[str, Forecast], np.ndarray | None]:
    """The project's forecast, one per milestone (by the milestone's own tasks), and the per-trial finish
    days behind the project's (None without a forecast), for the chart."""
    rng = np.random.default_rng(rng)
    today = now.date()
    scope, edges = remaining_scope(project, tasks, dependencies)
    if not scope:
        none = unavailable_forecast("dependency-graph", today, f"{project} has no open tasks", target_date=target_date)
        return none, {}, None
    estimated = any(t.estimate_days is not None for t in scope)
    if estimated or model.mode == "model":
        draws = model.sample(scope, trials, rng)
        for i, task in enumerate(scope):
            if task.status == "in_progress" and task.started_at is not None:
                draws[:, i] = remaining_given_spent(draws[:, i], working_days_between(task.started_at, now), rng)
        workers = workers_for(project, tasks, people)
        keys = [t.key for t in scope]
        sample = simulate_schedule(keys, np.asfortranarray(draws), edges, workers=workers)
        own = [t.key for t in scope if t.project == project]
        # Time off inside the forecast window: one more pass with durations stretched by the share of
        # people-days left. (History durations already include part-time capacity, so only absences
        # ahead need adding.)
        horizon = int(np.ceil(np.quantile(group_finish(sample, own), 0.85)))
        share, away = availability(project, tasks, people, today, horizon)
        if share < 1.0:
            draws /= max(share, 0.05)
            sample = simulate_schedule(keys, np.asfortranarray(draws), edges, workers=workers)
        external = len(scope) - len(own)
        waiting = f" plus {external} open tasks in other projects they wait for" if external else ""
        reason = (
            f"{len(own)} open tasks{waiting}"
            + f"; {trials:,} trials through the dependency graph with "
            + (f"{workers} people in parallel" if workers else "unlimited parallelism (no people known)")
            + (f"; {away}" if away else "")
            + f". Durations: {model.describe()}"
        )
        finish = group_finish(sample, own)
        overall = build_forecast(
            finish,
            method="dependency-graph",
            start=today,
            target_date=target_date,
            criticality=criticality_index(sample, within=own),
            reason=reason,
        )
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
            )
        return overall, milestones, finish

    done_dates = [t.done_at.date() for t in tasks if t.project == project and t.done_at is not None]
    enough, why = history_sufficient(done_dates, today, min_items=min_history_items)
    if not enough:
        return (
            unavailable_forecast(
                "throughput",
                today,
                f"no open task has an estimate and {why}; add estimates or wait for more history",
                target_date=target_date,
            ),
            {},
            None,
        )
    days = throughput_forecast(daily_throughput(done_dates, today), len(scope), trials, rng)
    return (
        build_forecast(
            days,
            method="throughput",
            start=today,
            target_date=target_date,
            workdays=False,
            reason=f"{len(scope)} open tasks without estimates; resampled daily throughput of the last 5 weeks ({why})",
        ),
        {},
        days,
    )
