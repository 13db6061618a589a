"""People across projects, week by week, by a MILP: coverage, shortages and why each one is short."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from datetime import date, timedelta

import numpy as np
import pandas as pd
from scipy.optimize import LinearConstraint, milp
from scipy.sparse import coo_array

from framework2.errors import DataError
from framework2.tasks.planning.records import PersonRecord
from framework2.tasks.portfolio.allocation.model import (
    _DIGITS,
    _STATUS,
    _TOL,
    COVERAGE_COLUMNS,
    GENERAL,
    PEOPLE_COLUMNS,
    PLAN_COLUMNS,
    SHORTAGE_COLUMNS,
    Allocation,
    _check_weeks,
    _fmt,
    _monday,
    _skill,
    _working_days,
    horizon_weeks,
)

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
