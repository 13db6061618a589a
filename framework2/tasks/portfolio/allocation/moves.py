"""What-if moves: the single reassignments that would close the most shortage."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date

import pandas as pd

from framework2.errors import DataError
from framework2.tasks.planning.records import PersonRecord
from framework2.tasks.portfolio.allocation.model import _DIGITS, _TOL, GENERAL, Allocation, _fmt, _skill
from framework2.tasks.portfolio.allocation.solver import (
    _capacity,
    _check_people,
    _check_staffing,
    _clean_demand,
    allocate,
)

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
