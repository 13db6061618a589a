"""Demand per skill per week from the open backlog (see the package docstring for the assumption it rests on)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date
from graphlib import TopologicalSorter

import numpy as np
import pandas as pd

from framework2.errors import DataError
from framework2.tasks.planning.records import DependencyRecord, TaskRecord
from framework2.tasks.planning.validate import find_cycle
from framework2.tasks.portfolio.allocation.model import (
    _DIGITS,
    _TOL,
    DEFAULT_DAYS,
    DEMAND_COLUMNS,
    _check_weeks,
    _skills_of,
    _working_days,
    horizon_weeks,
)

# ---------------------------------------------------------------------------------------------------- demand


def current_staffing(tasks: Sequence[TaskRecord]) -> dict[str, list[str]]:
    """Who works on which projects now: each assignee's projects with open tasks (for ``staffing=``)."""
    staffing: dict[str, set[str]] = defaultdict(set)
    for task in tasks:
        if task.status != "done" and task.assignee:
            staffing[task.assignee].add(task.project)
    return {handle: sorted(projects) for handle, projects in sorted(staffing.items())}


def _check_priority(priority: Mapping[str, float]) -> None:
    bad = []
    for project, value in sorted(priority.items()):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or number < 0:
            bad.append(f"{project}={value!r}")
    if bad:
        raise DataError(
            f"project priority must be a number >= 0; got {', '.join(bad[:5])}",
            "use 0 for a project that should get nobody and leave a project out for the default 1.0",
        )


def skill_demand(
    tasks: Sequence[TaskRecord],
    dependencies: Sequence[DependencyRecord],
    remaining_days: Mapping[str, float],
    priority: Mapping[str, float],
    *,
    start: date,
    weeks: int = 6,
    default_days: float = DEFAULT_DAYS,
) -> pd.DataFrame:
    """Days of work per project, skill and week from the open backlog (see the module docstring).

    Returns columns ``project, skill, week, days, priority`` (``week`` is the Monday as a ``date``; a
    project missing from ``priority`` weighs 1.0), sorted by project, skill and week. Demand past the horizon
    is in ``attrs["beyond_horizon_days"]`` and ``attrs["beyond_horizon_by_project"]``; tasks without a
    predicted remaining time (estimate or ``default_days`` used) are in ``attrs["assumed_days"]``.
    """
    _check_weeks(weeks)
    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys):
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        raise DataError(f"task key(s) appear more than once: {', '.join(dupes[:5])}", "each task needs a unique key")
    _check_priority(priority)
    open_tasks = sorted((t for t in tasks if t.status != "done"), key=lambda t: t.key)
    open_keys = {t.key for t in open_tasks}

    days: dict[str, float] = {}
    assumed: list[str] = []
    bad: list[str] = []
    for task in open_tasks:
        value = remaining_days.get(task.key)
        if value is None:
            est = task.estimate_days
            days[task.key] = float(est) if est is not None and est > 0 else float(default_days)
            assumed.append(task.key)
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or number < 0:
            bad.append(f"{task.key}={value!r}")
        days[task.key] = number
    if bad:
        raise DataError(
            f"remaining days must be a number >= 0; got {', '.join(bad[:5])}" + (" …" if len(bad) > 5 else ""),
            "pass the duration model's predicted remaining working days per open task (0 when it is finished)",
        )

    # Only open blockers hold a task back: done work is done, and a blocker we do not know cannot be placed.
    waiting_on: dict[str, set[str]] = {k: set() for k in open_keys}
    for dep in dependencies:
        if dep.task in open_keys and dep.depends_on in open_keys and dep.task != dep.depends_on:
            waiting_on[dep.task].add(dep.depends_on)
    cycle = find_cycle((task, on) for task in sorted(waiting_on) for on in sorted(waiting_on[task]))
    if cycle is not None:
        raise DataError(
            f"dependency cycle among open tasks: {' → '.join(cycle)}",
            "none of them can ever start; remove one of these dependencies",
        )
    begin: dict[str, float] = {}
    finish: dict[str, float] = {}
    for key in TopologicalSorter({k: sorted(waiting_on[k]) for k in sorted(open_keys)}).static_order():
        begin[key] = max((finish[d] for d in waiting_on[key]), default=0.0)
        finish[key] = begin[key] + days[key]

    # Week k spans working days [bounds[k], bounds[k + 1]) of the axis starting at ``start``.
    bounds = np.concatenate([[0], np.cumsum([len(ds) for ds in _working_days(start, weeks)])]).astype(float)
    mondays = horizon_weeks(start, weeks)
    cells: dict[tuple[str, str, int], float] = defaultdict(float)
    beyond: dict[str, float] = defaultdict(float)
    for task in open_tasks:
        s, f = begin[task.key], finish[task.key]
        if f - s <= 0:
            continue
        skills = _skills_of(task.required_skills)
        for k in range(weeks):
            overlap = min(f, bounds[k + 1]) - max(s, bounds[k])
            if overlap > 0:
                for skill in skills:
                    cells[(task.project, skill, k)] += overlap / len(skills)
        past = f - max(s, bounds[-1])
        if past > 0:
            beyond[task.project] += past

    rows = [
        {
            "project": project,
            "skill": skill,
            "week": mondays[k],
            "days": round(value, _DIGITS),
            "priority": float(priority.get(project, 1.0)),
        }
        for (project, skill, k), value in sorted(cells.items())
        if value > _TOL
    ]
    df = pd.DataFrame(rows, columns=DEMAND_COLUMNS)
    df.attrs["beyond_horizon_days"] = round(float(sum(beyond.values())), _DIGITS)
    df.attrs["beyond_horizon_by_project"] = {p: round(float(v), _DIGITS) for p, v in sorted(beyond.items())}
    df.attrs["assumed_days"] = assumed
    return df
