"""PPOS resource allocation: demand per skill per week from the open backlog, people across projects by a MILP.

Demand (``skill_demand``)
-------------------------
Every open task (status not ``done``) of every project needs ``remaining_days`` working days (the PPMS
duration model's prediction; without one, its ``estimate_days`` when positive, else ``default_days``).
Assumption, stated because it shapes every shortage: **each task is worked by one person full time as
early as its dependencies allow**. A forward pass over the dependency graph (all projects at once, so a
dependency on another project's task counts too) starts a task when the last open task it depends on
finishes, on a working-day axis from ``start``; done or unknown blockers do not hold it. Independent tasks
run in parallel from day 0, so demand is front-loaded: a shortage means the work starts later than it
could, not that it never happens. Each working day a task spans demands one person-day, split evenly over
its required skills (none: ``"general"``, which anyone can do); skills are compared case-insensitively and
reported in lower case. Weeks are ISO weeks named by their Monday: week 0 is the week of ``start`` and holds
only its working days from ``start`` on. Demand past the last week is dropped and counted in
``df.attrs["beyond_horizon_days"]`` (and per project in ``df.attrs["beyond_horizon_by_project"]``);
``df.attrs["assumed_days"]`` lists the tasks without a predicted remaining time.

Why an optimisation (``allocate``)
----------------------------------
Greedy ("highest-priority project first, take whoever has the skill") spends a generalist on work a
specialist could have done and leaves the specialist's scarce skill unstaffed elsewhere; the same trap
``framework2.tasks.planning.assign`` documents for tasks. A linear programme weighs all person-weeks at
once. ``scipy.optimize.milp`` (HiGHS) is already a dependency and is deterministic for the same input; without
a binding project cap the model is a pure LP and solves exactly, with the cap it is a MILP. Nothing links two
weeks, so each week is solved on its own (same optimum, smaller problems): 30 people x 10 projects x 5 skills
x 6 weeks takes about 2.5 s with the default cap and 0.1 s without it.

Model. For person ``j``, cell ``c = (project, skill, week)`` with demand ``d_c`` and priority ``p_c``:

    y[j, c] >= 0          days j gives to c; exists only if j has the skill ("general": anyone), has
                          capacity that week, and (with ``staffing``) may work on the project
    sum_j y[j, c]  <= d_c                                    coverage never exceeds demand
    sum_c y[j, c]  <= cap[j, w]  for the cells of week w     cap = weekly_capacity_days / 5 x
                                                             (working days of the week not on time off)
    sum_{c of project q, week w} y[j, c] <= min(cap[j, w], demand of q that j can do in w) * z[j, q, w]
    sum_q z[j, q, w] <= max_projects_per_person_week         z binary

The z variables exist only for person-weeks that could touch more projects than the cap, so an
unconstrained person-week stays continuous. Linking z to a project's total (not to each cell) gives a
tighter relaxation: in the benchmark above, a cap of 1 ended its 10 s a few % from optimal instead of 25 %.

Objective (maximised), with ``P`` the largest priority:

    sum y[j, c] * (p_c / P + b)  -  b * cap_min / 2 * sum_w u_w,      sum_c y[j, c] / cap[j, w] <= u_w

``b`` is 0.1 % of the smallest positive normalised priority: a covered day of zero-priority work still beats
idle capacity, but never a day of prioritised work. ``u_w`` is the busiest person's utilisation in week
``w``; its penalty is less than the bonus of the day that raises it (``cap_min`` is the smallest positive
person-week capacity), so coverage always comes first and, among plans of equal coverage, load spreads so
nobody is booked to the hilt while a colleague with the same skill idles. The reported ``objective`` is the
plain ``sum priority x covered days``. The MILP stops within ``mip_rel_gap`` (0.01 %) of the best plan or at
``time_limit_s`` (status "time_limit"; the budget is shared by the weeks, unused time passing on), so with a
binding cap the tie-breakers are best effort. A cap of 1 on a large portfolio can hit the limit (a few % gap).
Weeks being independent also means nothing keeps a person on the same project from one week to the next.

Why cap projects per person-week at 2 by default: switching between projects costs time the plan does not
see (Weinberg's rule of thumb in *Quality Software Management*: about 20 % of a person's time lost per extra
concurrent project). Two projects still let someone finish one thing and help on another; a third would cost
about 40 % by the same rule, more than the flexibility gains. Pass ``None``
to lift the cap (then the model is an LP), or 1 to dedicate everyone for the week.

Moves (``what_if_move``, ``best_single_moves``) compare against the **current staffing** (who works on which
project, e.g. ``current_staffing(tasks)`` from the assignees of open tasks). Against a free allocation a move
can only lose, because the optimum already had the freedom to make it; the functions still answer then,
reporting the cost of dedicating someone. For the same reason ``best_single_moves`` only tries people whose
projects ``staffing`` fixes: moving someone the optimiser may already place anywhere can only lose.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from graphlib import TopologicalSorter

import numpy as np
import pandas as pd
from scipy.optimize import LinearConstraint, milp
from scipy.sparse import coo_array

from framework2.errors import DataError
from framework2.tasks.planning.records import DependencyRecord, PersonRecord, TaskRecord
from framework2.tasks.planning.validate import find_cycle

GENERAL = "general"
DEFAULT_DAYS = 3.0
DEMAND_COLUMNS = ["project", "skill", "week", "days", "priority"]
PLAN_COLUMNS = ["person", "project", "week", "days", "skills"]
COVERAGE_COLUMNS = ["project", "skill", "week", "priority", "demand", "covered", "short"]
SHORTAGE_COLUMNS = ["skill", "week", "short_days", "projects"]
PEOPLE_COLUMNS = ["person", "week", "capacity", "allocated", "utilisation", "projects"]
_STATUS = {0: "optimal", 1: "time_limit", 2: "infeasible", 3: "unbounded"}
_TOL = 1e-6  # days: anything smaller is solver noise
_DIGITS = 6


@dataclass
class Allocation:
    """Who works on which project each week, what that covers, what stays short, and everyone's load."""

    plan: pd.DataFrame  # person, project, week, days (> 0), skills (list of the skills covered)
    coverage: pd.DataFrame  # project, skill, week, priority, demand, covered, short
    shortages: pd.DataFrame  # skill, week, short_days, projects (most short first); only short > 0, biggest first
    people: pd.DataFrame  # person, week, capacity, allocated, utilisation, projects (count)
    objective: float  # sum of priority x covered days
    status: str  # optimal | time_limit
    explanation: list[str] = field(default_factory=list)
    optimality_gap: float = 0.0  # proven: the best possible objective is at most this fraction higher


# --------------------------------------------------------------------------------------------------- horizon


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def horizon_weeks(start: date, weeks: int) -> list[date]:
    """The Mondays naming the ``weeks`` weeks of the horizon; the first is the week of ``start``."""
    first = _monday(start)
    return [first + timedelta(weeks=k) for k in range(weeks)]


def _working_days(start: date, weeks: int) -> list[list[date]]:
    """Per week, its working days (Mon-Fri) on or after ``start``."""
    return [
        [d for d in (monday + timedelta(days=i) for i in range(5)) if d >= start]
        for monday in horizon_weeks(start, weeks)
    ]


def _check_weeks(weeks: int) -> None:
    if not isinstance(weeks, int) or weeks < 1:
        raise ValueError(f"weeks must be a whole number >= 1, got {weeks!r}")


def _fmt(value: float) -> str:
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _skill(name: object) -> str:
    text = str(name).strip().casefold()
    return text or GENERAL


def _skills_of(names: Sequence[str]) -> list[str]:
    """Required skills, normalised and de-duplicated in order; none means general work."""
    cleaned = list(dict.fromkeys(_skill(s) for s in names if str(s).strip()))
    return cleaned or [GENERAL]


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


# ------------------------------------------------------------------------------------------------ allocation


def _clean_demand(demand: pd.DataFrame, start: date, weeks: int) -> pd.DataFrame:
    """Demand cells (project, skill, week index) with positive days, checked; DataError says what is wrong."""
    missing = [c for c in ("project", "skill", "week", "days") if c not in demand.columns]
    if missing:
        raise DataError(
            f"demand has no column(s) {', '.join(missing)}; found {list(demand.columns)}",
            "build it with skill_demand(...)",
        )
    empty = pd.DataFrame(columns=["project", "skill", "w", "days", "priority"])
    if demand.empty:
        return empty
    df = pd.DataFrame(
        {
            "project": demand["project"].astype(str).to_numpy(),
            "skill": [_skill(s) for s in demand["skill"]],
            "days": pd.to_numeric(demand["days"], errors="coerce").to_numpy(dtype=float),
            "priority": (
                pd.to_numeric(demand["priority"], errors="coerce").to_numpy(dtype=float)
                if "priority" in demand.columns
                else np.ones(len(demand))
            ),
        }
    )
    bad_days = ~np.isfinite(df["days"]) | (df["days"] < 0)
    if bad_days.any():
        shown = ", ".join(f"{r.project}/{r.skill}={r.days}" for r in df[bad_days].head(5).itertuples())
        raise DataError(f"demand days must be a number >= 0; got {shown}", "pass the days skill_demand(...) returns")
    # A missing priority is the documented default weight, not an error; a negative one is.
    df["priority"] = df["priority"].fillna(1.0)
    bad_priority = ~np.isfinite(df["priority"]) | (df["priority"] < 0)
    if bad_priority.any():
        shown = ", ".join(sorted(set(df.loc[bad_priority, "project"])))
        raise DataError(
            f"demand priority must be a number >= 0; not for {shown}", "use 0 for a project to leave unstaffed"
        )
    parsed = pd.to_datetime(pd.Series(demand["week"].to_numpy()), errors="coerce")
    if parsed.isna().any():
        shown = ", ".join(map(repr, demand["week"][parsed.isna().to_numpy()].head(5)))
        raise DataError(f"demand has week(s) that are not dates: {shown}", "name each week by its Monday's date")
    mondays = horizon_weeks(start, weeks)
    index = {m: k for k, m in enumerate(mondays)}
    week_of = [index.get(_monday(ts.date())) for ts in parsed]
    outside = sorted({_monday(ts.date()) for ts, k in zip(parsed, week_of, strict=True) if k is None})
    if outside:
        raise DataError(
            f"demand has week(s) outside the horizon {mondays[0]} .. {mondays[-1]}: "
            f"{', '.join(map(str, outside[:5]))}" + (" …" if len(outside) > 5 else ""),
            "build demand and allocate with the same start and weeks",
        )
    df["w"] = week_of
    # Several rows for one cell add up; the cell weighs what its most important row says.
    df = df.groupby(["project", "skill", "w"], as_index=False).agg(days=("days", "sum"), priority=("priority", "max"))
    df = df[df["days"] > _TOL].sort_values(["project", "skill", "w"]).reset_index(drop=True)
    return df if not df.empty else empty


def _capacity(staff: Sequence[PersonRecord], start: date, weeks: int) -> np.ndarray:
    """Days each person can work each week: weekly capacity / 5 per working day not on time off."""
    bad = [p.handle for p in staff if not math.isfinite(p.weekly_capacity_days) or p.weekly_capacity_days < 0]
    if bad:
        raise DataError(
            f"weekly capacity must be a number >= 0 days; not for {', '.join(bad)}",
            "set weekly_capacity_days to the days of project work each person has per week (0 for nobody)",
        )
    per_week = _working_days(start, weeks)
    cap = np.zeros((len(staff), weeks))
    for j, person in enumerate(staff):
        for k, work in enumerate(per_week):
            free = [d for d in work if not any(first <= d <= last for first, last in person.time_off)]
            cap[j, k] = person.weekly_capacity_days / 5 * len(free)
    return cap


def _check_people(people: Sequence[PersonRecord]) -> list[PersonRecord]:
    handles = [p.handle for p in people]
    if len(set(handles)) != len(handles):
        dupes = sorted({h for h in handles if handles.count(h) > 1})
        raise DataError(f"person handle(s) appear more than once: {', '.join(dupes)}", "each person needs one record")
    # Canonical order so the same people in any order give the same plan.
    return sorted(people, key=lambda p: p.handle)


def _check_staffing(
    staffing: Mapping[str, str | Collection[str]] | None, staff: Sequence[PersonRecord]
) -> dict[str, set[str]]:
    if not staffing:
        return {}
    known = {p.handle for p in staff}
    unknown = sorted(set(staffing) - known)
    if unknown:
        raise DataError(
            f"staffing names people who are not in the people list: {', '.join(unknown[:5])}",
            "use the people's handles, or add them to the people list",
        )
    return {h: {v} if isinstance(v, str) else {str(p) for p in v} for h, v in staffing.items()}


def allocate(
    demand: pd.DataFrame,
    people: Sequence[PersonRecord],
    *,
    start: date,
    weeks: int = 6,
    max_projects_per_person_week: int | None = 2,
    staffing: Mapping[str, str | Collection[str]] | None = None,
    time_limit_s: float = 10.0,
    mip_rel_gap: float = 1e-4,
) -> Allocation:
    """Allocate people's weekly capacity to the demand of ``skill_demand`` (see the module docstring).

    ``staffing`` (handle -> project or projects) limits those people to those projects, e.g. the current
    staffing from ``current_staffing(tasks)``; people not in it may work anywhere, an empty list benches
    someone. No demand gives empty frames; no people leaves all demand short. Both say so in ``explanation``.
    """
    _check_weeks(weeks)
    if max_projects_per_person_week is not None and max_projects_per_person_week < 1:
        raise ValueError(f"max_projects_per_person_week must be >= 1 or None, got {max_projects_per_person_week}")
    cells = _clean_demand(demand, start, weeks)
    staff = _check_people(people)
    allowed = _check_staffing(staffing, staff)
    cap = _capacity(staff, start, weeks)
    mondays = horizon_weeks(start, weeks)

    n_cells = len(cells)
    c_project = cells["project"].tolist()
    c_skill = cells["skill"].tolist()
    c_week = cells["w"].astype(int).to_numpy()
    c_days = cells["days"].to_numpy(dtype=float)
    c_prio = cells["priority"].to_numpy(dtype=float)
    skills = [{_skill(s) for s in p.skills} for p in staff]

    pairs: list[tuple[int, int]] = []  # (cell, person)
    for c in range(n_cells):
        for j, person in enumerate(staff):
            if cap[j, c_week[c]] <= _TOL:
                continue
            if c_skill[c] != GENERAL and c_skill[c] not in skills[j]:
                continue
            if person.handle in allowed and c_project[c] not in allowed[person.handle]:
                continue
            pairs.append((c, j))

    y, status, gap = _optimise(
        pairs,
        c_week,
        c_days,
        c_prio,
        c_project,
        cap,
        max_projects=max_projects_per_person_week,
        time_limit_s=time_limit_s,
        mip_rel_gap=mip_rel_gap,
    )

    covered = np.zeros(n_cells)
    for (c, _), value in zip(pairs, y, strict=True):
        covered[c] += value
    covered = np.minimum(covered, c_days)
    coverage = pd.DataFrame(
        {
            "project": c_project,
            "skill": c_skill,
            "week": [mondays[k] for k in c_week],
            "priority": c_prio,
            "demand": c_days,
            "covered": np.round(covered, _DIGITS),
            "short": np.round(np.clip(c_days - covered, 0.0, None), _DIGITS),
        },
        columns=COVERAGE_COLUMNS,
    )
    plan = _plan(pairs, y, staff, c_project, c_skill, c_week, mondays)
    load = _people_frame(staff, cap, plan, mondays)
    shortages = _shortages(coverage)
    objective = round(float((coverage["priority"] * coverage["covered"]).sum()), _DIGITS)
    explanation = _explain(
        demand, coverage, shortages, plan, load, staff, skills, allowed, mondays, status, max_projects_per_person_week
    )
    return Allocation(
        plan=plan,
        coverage=coverage,
        shortages=shortages,
        people=load,
        objective=objective,
        status=status,
        explanation=explanation,
        optimality_gap=gap,
    )


def _optimise(
    pairs: list[tuple[int, int]],
    c_week: np.ndarray,
    c_days: np.ndarray,
    c_prio: np.ndarray,
    c_project: list[str],
    cap: np.ndarray,
    *,
    max_projects: int | None,
    time_limit_s: float,
    mip_rel_gap: float,
) -> tuple[np.ndarray, str, float]:
    """Days per (cell, person) pair, the solver status and the worst proven gap (model in the module docstring).

    Nothing in the model links two weeks, so each week is solved on its own: the same optimum, in smaller
    problems. Unused time of one week's budget passes on to the next.
    """
    y = np.zeros(len(pairs))
    if not pairs:
        return y, "optimal", 0.0
    cell = np.array([c for c, _ in pairs])
    person = np.array([j for _, j in pairs])
    week = c_week[cell]
    pw_cap = cap[person, week]
    top = c_prio.max()
    value = c_prio / top if top > 0 else np.zeros_like(c_prio)
    positive = value[value > 0]
    bonus = 1e-3 * (positive.min() if positive.size else 1.0)
    spread = bonus * pw_cap.min() / 2  # the same weights for every week, so a week's plan never depends on others

    deadline = time.monotonic() + time_limit_s
    statuses, gaps = [], []
    weeks = sorted(set(week.tolist()))
    for i, w in enumerate(weeks):
        idx = np.flatnonzero(week == w)
        budget = max((deadline - time.monotonic()) / (len(weeks) - i), 0.05)
        y[idx], status, gap = _solve_week(
            cell[idx],
            person[idx],
            pw_cap[idx],
            c_days,
            value[cell[idx]] + bonus,
            spread,
            [c_project[c] for c in cell[idx]],
            max_projects=max_projects,
            time_limit_s=budget,
            mip_rel_gap=mip_rel_gap,
        )
        statuses.append(status)
        gaps.append(gap)
    status = "optimal" if all(s == "optimal" for s in statuses) else next(s for s in statuses if s != "optimal")
    return y, status, max(gaps)


def _solve_week(
    cell: np.ndarray,
    person: np.ndarray,
    pw_cap: np.ndarray,
    c_days: np.ndarray,
    gain: np.ndarray,
    spread: float,
    project: list[str],
    *,
    max_projects: int | None,
    time_limit_s: float,
    mip_rel_gap: float,
) -> tuple[np.ndarray, str, float]:
    """One week's plan: ``y`` for the given (cell, person) pairs, all in that week."""
    n_y = len(cell)
    ub_y = np.minimum(pw_cap, c_days[cell])
    cells, cell_row = np.unique(cell, return_inverse=True)
    people, person_row = np.unique(person, return_inverse=True)
    person_cap = np.zeros(len(people))
    person_cap[person_row] = pw_cap
    # z only for people who could touch more projects than the cap; the rest stay continuous.
    reach: dict[int, set[str]] = defaultdict(set)
    for r, p in zip(person_row, project, strict=True):
        reach[int(r)].add(p)
    capped = sorted(r for r, ps in reach.items() if max_projects is not None and len(ps) > max_projects)
    capped_set = set(capped)
    z_index: dict[tuple[int, str], int] = {}
    for r, p in zip(person_row, project, strict=True):
        if int(r) in capped_set:
            z_index.setdefault((int(r), p), len(z_index))
    n_z = len(z_index)
    n = n_y + 1 + n_z  # y, u (the busiest person's utilisation), z
    u, z0 = n_y, n_y + 1
    ys = np.arange(n_y)

    constraints = []
    # Coverage never exceeds demand.
    a = coo_array((np.ones(n_y), (cell_row, ys)), shape=(len(cells), n))
    constraints.append(LinearConstraint(a.tocsr(), -np.inf, c_days[cells]))
    # Capacity per person.
    a = coo_array((np.ones(n_y), (person_row, ys)), shape=(len(people), n))
    constraints.append(LinearConstraint(a.tocsr(), -np.inf, person_cap))
    # Everyone's utilisation <= u.
    rows = np.concatenate([person_row, np.arange(len(people))])
    cols = np.concatenate([ys, np.full(len(people), u)])
    vals = np.concatenate([1.0 / pw_cap, -np.ones(len(people))])
    a = coo_array((vals, (rows, cols)), shape=(len(people), n))
    constraints.append(LinearConstraint(a.tocsr(), -np.inf, 0))
    integrality = np.zeros(n)
    if n_z:
        # Per (person, project): all the days given to it <= min(capacity, its demand they can do) x z. One row
        # per z is a tighter relaxation than one row per cell and solves faster (HiGHS, 30 people x 10 projects).
        linked = np.array([k for k in range(n_y) if int(person_row[k]) in capped_set])
        z_of = np.array([z_index[(int(person_row[k]), project[k])] for k in linked])
        demand_of = np.zeros(n_z)
        np.add.at(demand_of, z_of, c_days[cell[linked]])
        cap_of = np.array([person_cap[r] for (r, _p) in z_index])
        rows = np.concatenate([z_of, np.arange(n_z)])
        cols = np.concatenate([linked, z0 + np.arange(n_z)])
        vals = np.concatenate([np.ones(len(linked)), -np.minimum(cap_of, demand_of)])
        a = coo_array((vals, (rows, cols)), shape=(n_z, n))
        constraints.append(LinearConstraint(a.tocsr(), -np.inf, 0))
        # At most max_projects per person.
        row_of = {r: i for i, r in enumerate(capped)}
        rows = np.array([row_of[r] for (r, _p) in z_index])
        a = coo_array((np.ones(n_z), (rows, z0 + np.arange(n_z))), shape=(len(capped), n))
        constraints.append(LinearConstraint(a.tocsr(), -np.inf, float(max_projects)))
        integrality[z0:] = 1

    # milp minimises: negate the gain.
    objective = np.concatenate([-gain, [spread], np.zeros(n_z)])
    upper = np.concatenate([ub_y, [np.inf], np.ones(n_z)])
    options: dict = {"time_limit": float(time_limit_s), "disp": False}
    if n_z:
        options["mip_rel_gap"] = float(mip_rel_gap)
    res = milp(
        objective, integrality=integrality, bounds=(np.zeros(n), upper), constraints=constraints, options=options
    )
    status = _STATUS.get(res.status, "error")
    if res.x is None:
        raise DataError(f"the allocation solver found no plan ({status}: {res.message})", "report this as a bug")
    y = np.clip(res.x[:n_y], 0.0, ub_y)
    y = np.where(y > _TOL, np.round(y, _DIGITS), 0.0)
    gap = getattr(res, "mip_gap", None)
    gap = float(gap) if gap is not None and np.isfinite(gap) else 0.0
    return y, status, max(gap, 0.0)


def _plan(
    pairs: list[tuple[int, int]],
    y: np.ndarray,
    staff: Sequence[PersonRecord],
    c_project: list[str],
    c_skill: list[str],
    c_week: np.ndarray,
    mondays: list[date],
) -> pd.DataFrame:
    days: dict[tuple[str, int, str], float] = defaultdict(float)
    skills: dict[tuple[str, int, str], set[str]] = defaultdict(set)
    for (c, j), value in zip(pairs, y, strict=True):
        if value > 0:
            key = (staff[j].handle, int(c_week[c]), c_project[c])
            days[key] += value
            skills[key].add(c_skill[c])
    rows = [
        {
            "person": handle,
            "project": project,
            "week": mondays[w],
            "days": round(value, _DIGITS),
            "skills": sorted(skills[(handle, w, project)]),
        }
        for (handle, w, project), value in sorted(days.items())
    ]
    return pd.DataFrame(rows, columns=PLAN_COLUMNS)


def _people_frame(
    staff: Sequence[PersonRecord], cap: np.ndarray, plan: pd.DataFrame, mondays: list[date]
) -> pd.DataFrame:
    booked = plan.groupby(["person", "week"])["days"].agg(["sum", "count"]) if not plan.empty else None
    rows = []
    for j, person in enumerate(staff):
        for k, monday in enumerate(mondays):
            allocated, projects = 0.0, 0
            if booked is not None and (person.handle, monday) in booked.index:
                allocated = float(booked.loc[(person.handle, monday), "sum"])
                projects = int(booked.loc[(person.handle, monday), "count"])
            capacity = float(cap[j, k])
            rows.append(
                {
                    "person": person.handle,
                    "week": monday,
                    "capacity": round(capacity, _DIGITS),
                    "allocated": round(allocated, _DIGITS),
                    "utilisation": round(allocated / capacity, 4) if capacity > _TOL else 0.0,
                    "projects": projects,
                }
            )
    return pd.DataFrame(rows, columns=PEOPLE_COLUMNS)


def _shortages(coverage: pd.DataFrame) -> pd.DataFrame:
    short = coverage[coverage["short"] > _TOL]
    rows = []
    for (skill, week), group in short.groupby(["skill", "week"], sort=True):
        by_project = group.groupby("project")["short"].sum()
        ordered = sorted(by_project.items(), key=lambda item: (-item[1], item[0]))
        rows.append(
            {
                "skill": skill,
                "week": week,
                "short_days": round(float(group["short"].sum()), _DIGITS),
                "projects": [p for p, _ in ordered],
            }
        )
    df = pd.DataFrame(rows, columns=SHORTAGE_COLUMNS)
    if df.empty:
        return df
    return df.sort_values(["short_days", "week", "skill"], ascending=[False, True, True]).reset_index(drop=True)


def _explain(
    demand: pd.DataFrame,
    coverage: pd.DataFrame,
    shortages: pd.DataFrame,
    plan: pd.DataFrame,
    load: pd.DataFrame,
    staff: Sequence[PersonRecord],
    skills: list[set[str]],
    allowed: Mapping[str, set[str]],
    mondays: list[date],
    status: str,
    max_projects: int | None,
) -> list[str]:
    """Plain sentences: coverage, the biggest shortages and why, who is spread widest, idle capacity."""
    lines: list[str] = []
    beyond = float(demand.attrs.get("beyond_horizon_days", 0.0) or 0.0)
    horizon = f"{mondays[0]} .. {mondays[-1] + timedelta(days=6)}"
    if coverage.empty:
        lines.append(f"No open demand in the horizon ({horizon}): nothing to allocate.")
    elif not staff:
        lines.append(f"No people to allocate: all {_fmt(coverage['demand'].sum())} days of demand are short.")
    else:
        total, got = float(coverage["demand"].sum()), float(coverage["covered"].sum())
        weight = float((coverage["priority"] * coverage["demand"]).sum())
        won = float((coverage["priority"] * coverage["covered"]).sum())
        share = f", {won / weight:.0%} of the priority-weighted demand" if weight > 0 else ""
        lines.append(f"Covered {_fmt(got)} of {_fmt(total)} days of demand ({got / total:.0%}){share}.")
    if beyond > _TOL:
        lines.append(f"{_fmt(beyond)} days of demand fall after the horizon and are not planned.")
    if status == "time_limit":
        lines.append("The solver hit its time limit: this is the best plan found, not a proven optimum.")
    for row in shortages.head(3).itertuples():
        who = ", ".join(row.projects[:3]) + (" …" if len(row.projects) > 3 else "")
        lines.append(
            f"Short {_fmt(row.short_days)} days of {row.skill} in the week of {row.week} ({who}): "
            f"{_why_short(row.skill, row.week, staff, skills, allowed, load, max_projects) if staff else 'no people'}."
        )
    if len(shortages) > 3:
        lines.append(f"{len(shortages) - 3} more skill-weeks are short.")
    if not plan.empty:
        spread = plan.groupby("person")["project"].agg(lambda s: sorted(set(s)))
        widest = max(len(ps) for ps in spread)
        if widest > 1:
            who = [h for h, ps in spread.items() if len(ps) == widest]
            per_week = int(load[load["person"].isin(who)]["projects"].max())
            names = ", ".join(who[:3]) + (" …" if len(who) > 3 else "")
            lines.append(
                f"Spread widest: {names} on {widest} projects over the horizon "
                f"({', '.join(spread[who[0]])}), at most {per_week} in one week."
            )
    if staff and not coverage.empty:
        idle = float((load["capacity"] - load["allocated"]).clip(lower=0).sum())
        if idle > _TOL:
            lines.append(f"{_fmt(idle)} person-days stay unallocated: no demand those people may take in those weeks.")
    return lines


def _why_short(
    skill: str,
    week: date,
    staff: Sequence[PersonRecord],
    skills: list[set[str]],
    allowed: Mapping[str, set[str]],
    load: pd.DataFrame,
    max_projects: int | None,
) -> str:
    able = [p.handle for j, p in enumerate(staff) if skill == GENERAL or skill in skills[j]]
    if not able:
        return f"nobody has {skill}"
    week_load = load[(load["week"] == week) & load["person"].isin(able)].set_index("person")
    working = [h for h in able if week_load.loc[h, "capacity"] > _TOL]
    names = ", ".join(able[:3]) + (" …" if len(able) > 3 else "")
    if not working:
        return f"everyone with it ({names}) is off that week"
    spare = [h for h in working if week_load.loc[h, "capacity"] - week_load.loc[h, "allocated"] > _TOL]
    if not spare:
        busy = ", ".join(working[:3]) + (" …" if len(working) > 3 else "")
        return f"everyone with it who is working ({busy}) is fully booked that week"
    held = ", ".join(spare[:3])
    if any(h in allowed for h in spare):
        why = "their staffing keeps them on other projects"
    elif max_projects is not None:
        why = f"the cap of {max_projects} projects per person-week keeps them on other projects"
    else:
        why = "the solver stopped before giving it to them"  # an optimal LP never leaves such time idle
    return f"{held} still {'has' if len(spare) == 1 else 'have'} time but {why}"


# ----------------------------------------------------------------------------------------------------- moves


def _gain_tolerance(objective: float, kwargs: Mapping[str, object]) -> float:
    """Below this a change in objective is solver tolerance, not a real gain."""
    gap = float(kwargs.get("mip_rel_gap", 1e-4))  # type: ignore[arg-type]
    return 1e-6 + 2 * gap * abs(objective)


def what_if_move(
    demand: pd.DataFrame,
    people: Sequence[PersonRecord],
    person: str,
    to_project: str,
    *,
    start: date,
    weeks: int = 6,
    staffing: Mapping[str, str | Collection[str]] | None = None,
    baseline: Allocation | None = None,
    **kwargs,
) -> dict:
    """What changes if ``person`` worked only on ``to_project``, against ``staffing`` (or a free allocation).

    Re-solves with that one restriction changed and returns ``objective_before/after``, ``gain`` (in
    priority-weighted days), ``by_project`` (covered days before/after, ``change_days``, ``weighted_change``),
    ``gained_days`` / ``lost_days`` per project, the projects the person worked on before (``from``), and
    ``sentence``. ``baseline`` reuses an allocation already solved with the same inputs; other keyword
    arguments go to ``allocate``.
    """
    handles = {p.handle for p in people}
    if person not in handles:
        raise DataError(f"{person!r} is not in the people list", f"use one of: {', '.join(sorted(handles)[:10])}")
    projects = set(demand["project"].astype(str)) if "project" in demand.columns else set()
    if to_project not in projects:
        raise DataError(
            f"project {to_project!r} has no demand in the horizon",
            f"pick one of: {', '.join(sorted(projects)[:10]) or '(no projects with demand)'}",
        )
    before = baseline or allocate(demand, people, start=start, weeks=weeks, staffing=staffing, **kwargs)
    moved = {**(staffing or {}), person: [to_project]}
    after = allocate(demand, people, start=start, weeks=weeks, staffing=moved, **kwargs)

    def per_project(allocation: Allocation) -> pd.DataFrame:
        cov = allocation.coverage.assign(weighted=allocation.coverage["priority"] * allocation.coverage["covered"])
        return cov.groupby("project")[["covered", "weighted"]].sum()

    b, a = per_project(before), per_project(after)
    by_project: dict[str, dict[str, float]] = {}
    for project in sorted(set(b.index) | set(a.index)):
        cb = float(b["covered"].get(project, 0.0))
        ca = float(a["covered"].get(project, 0.0))
        by_project[project] = {
            "covered_before": round(cb, _DIGITS),
            "covered_after": round(ca, _DIGITS),
            "change_days": round(ca - cb, _DIGITS),
            "weighted_change": round(float(a["weighted"].get(project, 0.0) - b["weighted"].get(project, 0.0)), _DIGITS),
        }
    gained = {p: v["change_days"] for p, v in by_project.items() if v["change_days"] > _TOL}
    lost = {p: -v["change_days"] for p, v in by_project.items() if v["change_days"] < -_TOL}
    gain = round(after.objective - before.objective, _DIGITS)
    was_on = sorted(set(before.plan.loc[before.plan["person"] == person, "project"])) if not before.plan.empty else []
    return {
        "person": person,
        "from": was_on,
        "to_project": to_project,
        "objective_before": before.objective,
        "objective_after": after.objective,
        "gain": gain,
        "by_project": by_project,
        "gained_days": gained,
        "lost_days": lost,
        "status": after.status,
        "sentence": _move_sentence(person, was_on, to_project, before.objective, after.objective, gained, lost, kwargs),
    }


def _move_sentence(
    person: str,
    was_on: list[str],
    to_project: str,
    before: float,
    after: float,
    gained: Mapping[str, float],
    lost: Mapping[str, float],
    kwargs: Mapping[str, object],
) -> str:
    origin = f" (from {', '.join(was_on)})" if was_on else " (from no project)"
    head = f"Moving {person} to {to_project} only{origin}"
    change = after - before
    if abs(change) <= _gain_tolerance(before, kwargs) and not gained and not lost:
        return f"{head} would not change coverage (priority-weighted {_fmt(before)})."
    direction = "raise" if change > 0 else "lower" if change < 0 else "keep"
    parts = [f"{p} +{_fmt(d)} days" for p, d in gained.items()] + [f"{p} -{_fmt(d)} days" for p, d in lost.items()]
    detail = f": {'; '.join(parts)}" if parts else ""
    return (
        f"{head} would {direction} priority-weighted coverage by {_fmt(abs(change))} "
        f"(from {_fmt(before)} to {_fmt(after)}){detail}."
    )


def best_single_moves(
    demand: pd.DataFrame,
    people: Sequence[PersonRecord],
    *,
    start: date,
    weeks: int = 6,
    top: int = 3,
    staffing: Mapping[str, str | Collection[str]] | None = None,
    **kwargs,
) -> list[dict]:
    """The ``top`` single moves (one person to one project) that raise priority-weighted coverage most.

    Tries each person whose projects ``staffing`` fixes and who has capacity in the horizon on each project
    with demand for one of their skills (or general work), except the one project they are already limited to:
    at most people x projects re-solves. People free in ``staffing`` are skipped: limiting someone the
    optimiser may already place anywhere can only lose, so without ``staffing`` the answer is ``[]``.
    Moves that gain nothing beyond solver tolerance are left out; ties go by person, then project.
    """
    if top < 1:
        return []
    cells = _clean_demand(demand, start, weeks)
    if cells.empty or not people:
        return []
    staff = _check_people(people)
    allowed = _check_staffing(staffing, staff)
    cap = _capacity(staff, start, weeks)
    baseline = allocate(demand, people, start=start, weeks=weeks, staffing=staffing, **kwargs)
    tolerance = _gain_tolerance(baseline.objective, kwargs)
    needs = cells.groupby("project")["skill"].agg(set)
    moves = []
    for j, person in enumerate(staff):
        if person.handle not in allowed or cap[j].sum() <= _TOL:
            continue
        have = {_skill(s) for s in person.skills}
        for project, wanted in needs.items():
            if allowed.get(person.handle) == {project}:
                continue
            if GENERAL not in wanted and not (wanted & have):
                continue
            move = what_if_move(
                demand,
                people,
                person.handle,
                str(project),
                start=start,
                weeks=weeks,
                staffing=staffing,
                baseline=baseline,
                **kwargs,
            )
            if move["gain"] > tolerance:
                moves.append(move)
    moves.sort(key=lambda m: (-m["gain"], m["person"], m["to_project"]))
    return moves[:top]
