"""PPMS assignment: ready tasks to people by skill, capacity and priority, solved as one MILP.

Why an optimisation and not a greedy loop ("take the best task, give it to whoever can do it"):
greedy commits early and cannot undo it. It fills a person with one big task when two smaller ones
worth more in total would have fitted, and it gives a generalist work a specialist could have done,
leaving the task only the generalist could do unstaffed. The MILP weighs all choices at once and
finds the plan with the most total priority (``tests/test_planning_assign.py`` shows both cases).
``scipy.optimize.milp`` (HiGHS) is already a dependency and is deterministic for the same input; OR-Tools
CP-SAT or PuLP would add a dependency for no gain at a team's scale (typically well under a few seconds
for 200 ready tasks x 20 people). This is a generalised assignment problem, NP-hard, so a hard instance
stops at ``time_limit_s`` with the best plan found and its proven ``optimality_gap`` (then the result
depends on machine speed).

Model. A binary ``x[t, p]`` exists only where person ``p`` has every skill ``t`` requires
(case-insensitive) and has room for it (``estimate <= free``). Constraints: each task to at most one
person; each person's assigned estimates ``<= free`` days, where

    capacity = weekly_capacity_days / 5 * (working days in the horizon not on time off)
    free     = capacity - already_assigned_load

The horizon is ``horizon_days`` calendar days from ``start``; working days are Monday to Friday. A day
off removes that day's share of the weekly capacity (a 4-days-a-week person loses 0.8 days), so being
off the whole horizon leaves exactly zero. Tasks without a positive estimate count as
``default_estimate_days``.

Objective (maximised), with scores normalised so the best is 1:

    sum over x[t, p] of ( score_t / max score  +  w * (1 + matches_tp / (1 + M)) )  -  w / 2 * u

``w = 0.001 / (number of tasks + 1)``; ``matches_tp`` counts the task's labels that are also among the
person's skills, ``M`` the most labels any task has; ``u`` is the highest
share of free time any person is given (``used_p / free_p <= u``). So priority decides; among plans of
(nearly) equal priority the solver staffs more tasks, prefers people whose skills match the labels, and
then spreads load by keeping the busiest person's utilisation lowest. All bonuses together are below
0.2 % of the best task's score, and a task's staffing bonus always outweighs its spread penalty, so
zero-score ready work is still staffed when someone has room. The solver stops once the plan is proven
within ``mip_rel_gap`` (0.01 %) of the best possible, so on large backlogs the tie-breakers are best effort.

Unstaffed tasks get a reason: nobody has the skills; the skilled people have no free time; it is bigger
than anyone's free time; or the capacity of the people who could do it went to higher-priority work (or
to smaller tasks worth more in total).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
from scipy.optimize import LinearConstraint, milp
from scipy.sparse import coo_array

from framework2.errors import DataError
from framework2.tasks.planning.records import PersonRecord

ASSIGNED_COLUMNS = ["person", "score", "estimate_days", "estimate_defaulted", "why"]
UNSTAFFED_COLUMNS = ["score", "estimate_days", "estimate_defaulted", "reason"]
LOAD_COLUMNS = ["name", "working_days", "days_off", "capacity", "already_assigned", "used", "free", "tasks"]
_STATUS = {0: "optimal", 1: "time_limit", 2: "infeasible", 3: "unbounded"}
_TOL = 1e-9


@dataclass
class Assignment:
    """A staffing plan: who does what and why, what could not be staffed and why, and everyone's load."""

    assigned: pd.DataFrame  # index task: person, score, estimate_days, estimate_defaulted, why
    unstaffed: pd.DataFrame  # index task: score, estimate_days, estimate_defaulted, reason
    load: pd.DataFrame  # index person: capacity, already_assigned, used, free, ...
    solver_status: str  # optimal (within mip_rel_gap) | time_limit (the best plan found in time)
    optimality_gap: float = 0.0  # proven: the best possible total priority is at most this fraction higher

    @property
    def total_score(self) -> float:
        return float(self.assigned["score"].sum())


def _fmt(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _skills(value: object) -> list[str]:
    """A skills/labels cell as a list: lists, arrays, comma-separated text, or nothing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        return [s.strip() for s in value.split(",") if s.strip()]
    if isinstance(value, Iterable):
        return [str(s).strip() for s in value if str(s).strip()]
    return [str(value)]


def _norm(values: Iterable[str]) -> set[str]:
    return {v.casefold() for v in values}


def _list(items: Iterable[str]) -> str:
    return "[" + ", ".join(items) + "]"


def _working_days(start: date, horizon_days: int, time_off: Sequence[tuple[date, date]]) -> tuple[int, int]:
    """Working days (Mon-Fri) in the horizon, and how many of them fall in ``time_off``."""
    days = [start + timedelta(days=i) for i in range(horizon_days)]
    work = [d for d in days if d.weekday() < 5]
    off = sum(1 for d in work if any(first <= d <= last for first, last in time_off))
    return len(work), off


def assign(
    ready: pd.DataFrame,
    people: Sequence[PersonRecord],
    *,
    horizon_days: int = 10,
    start: date,
    already_assigned_load: dict[str, float] | None = None,
    default_estimate_days: float = 3.0,
    time_limit_s: float = 10.0,
    mip_rel_gap: float = 1e-4,
) -> Assignment:
    """Assign ready tasks (rows of ``score_backlog``, indexed by task key) to ``people`` over the horizon.

    ``ready`` needs ``score``; ``estimate_days``, ``required_skills`` and ``labels`` are used when present.
    Rows whose ``ready`` column is False are not assigned and are reported as unstaffed. Pass only work
    that still needs an owner, and count work people already hold in ``already_assigned_load`` (days
    within the horizon, by handle).

    The solver stops when the plan's total priority is proven within ``mip_rel_gap`` of the best possible
    (HiGHS's default, 0.01 %) or after ``time_limit_s`` with the best plan found (``solver_status``
    "time_limit", ``optimality_gap`` says how close it is proven to be).
    """
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be >= 1, got {horizon_days}")
    if "score" not in ready.columns:
        raise DataError(
            f"ready tasks have no 'score' column; found {list(ready.columns)}",
            "pass rows of score_backlog(...) where ready",
        )
    if not ready.index.is_unique:
        dupes = sorted(map(str, ready.index[ready.index.duplicated()].unique()))
        raise DataError(f"task key(s) appear more than once: {', '.join(dupes[:5])}", "each task needs a unique key")
    handles = [p.handle for p in people]
    if len(set(handles)) != len(handles):
        dupes = sorted({h for h in handles if handles.count(h) > 1})
        raise DataError(f"person handle(s) appear more than once: {', '.join(dupes)}", "each person needs one record")
    loaded = already_assigned_load or {}

    # Canonical order (tasks by key, people by handle) so the same input in any order gives the same plan.
    tasks = ready.sort_index()
    staff = sorted(people, key=lambda p: p.handle)
    keys = [str(k) for k in tasks.index]
    score = pd.to_numeric(tasks["score"], errors="coerce").fillna(0.0).clip(lower=0.0).to_numpy(dtype=float)
    raw_est = (
        pd.to_numeric(tasks["estimate_days"], errors="coerce").to_numpy(dtype=float)
        if "estimate_days" in tasks.columns
        else np.full(len(tasks), np.nan)
    )
    defaulted = ~(raw_est > 0)
    est = np.where(defaulted, default_estimate_days, raw_est)
    required = [
        _skills(v) for v in (tasks["required_skills"] if "required_skills" in tasks.columns else [None] * len(tasks))
    ]
    labels = [_skills(v) for v in (tasks["labels"] if "labels" in tasks.columns else [None] * len(tasks))]
    is_ready = tasks["ready"].eq(True).to_numpy() if "ready" in tasks.columns else np.ones(len(tasks), bool)

    load = _load(staff, start, horizon_days, loaded)
    free = load["free"].to_numpy(dtype=float)
    person_skills = [_norm(p.skills) for p in staff]

    # Candidate pairs: the person has every required skill and room for the whole task.
    pairs: list[tuple[int, int, int]] = []  # (task i, person j, label matches)
    for i in range(len(tasks)):
        if not is_ready[i]:
            continue
        need = _norm(required[i])
        for j, have in enumerate(person_skills):
            if need <= have and free[j] > _TOL and est[i] <= free[j] + _TOL:
                pairs.append((i, j, len(_norm(labels[i]) & have)))

    chosen, status, gap = _solve(
        pairs, score, est, free, labels, len(tasks), len(staff), time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap
    )

    owner = {i: j for (i, j, _) in (pairs[k] for k in chosen)}
    used = np.zeros(len(staff))
    for i, j in owner.items():
        used[j] += est[i]
    load["used"] = used
    load["free"] = free - used
    load["tasks"] = [sum(1 for j2 in owner.values() if j2 == j) for j in range(len(staff))]

    candidates_of: dict[int, list[int]] = {}
    for i, j, _ in pairs:
        candidates_of.setdefault(i, []).append(j)
    can_do: dict[int, list[int]] = {}  # person -> tasks they could take, best first
    for i, j, _ in sorted(pairs, key=lambda pr: (-score[pr[0]], keys[pr[0]])):
        can_do.setdefault(j, []).append(i)

    assigned_rows = []
    for i, j in sorted(owner.items(), key=lambda item: (-score[item[0]], keys[item[0]])):
        person = staff[j]
        matches = sorted(s for s in labels[i] if s.casefold() in person_skills[j])
        assigned_rows.append(
            {
                "task": keys[i],
                "person": person.handle,
                "score": score[i],
                "estimate_days": est[i],
                "estimate_defaulted": bool(defaulted[i]),
                "why": _why_assigned(
                    person,
                    position=can_do[j].index(i) + 1,
                    options=len(can_do[j]),
                    only=len(candidates_of[i]) == 1,
                    est=est[i],
                    defaulted=bool(defaulted[i]),
                    free=free[j],
                    matches=matches,
                ),
            }
        )
    unstaffed_rows = []
    for i in sorted(set(range(len(tasks))) - set(owner), key=lambda i: (-score[i], keys[i])):
        reason = _why_unstaffed(
            i,
            ready=bool(is_ready[i]),
            waiting_on=tasks["waiting_on"].iloc[i] if "waiting_on" in tasks.columns else None,
            required=required[i],
            est=est[i],
            defaulted=bool(defaulted[i]),
            staff=staff,
            person_skills=person_skills,
            free=free,
            candidates=candidates_of.get(i, []),
            owner=owner,
            left=free - used,
            score=score,
            keys=keys,
        )
        unstaffed_rows.append(
            {
                "task": keys[i],
                "score": score[i],
                "estimate_days": est[i],
                "estimate_defaulted": bool(defaulted[i]),
                "reason": reason,
            }
        )

    assigned = pd.DataFrame(assigned_rows, columns=["task", *ASSIGNED_COLUMNS]).set_index("task")
    unstaffed = pd.DataFrame(unstaffed_rows, columns=["task", *UNSTAFFED_COLUMNS]).set_index("task")
    return Assignment(
        assigned=assigned, unstaffed=unstaffed, load=load[LOAD_COLUMNS], solver_status=status, optimality_gap=gap
    )


def _load(staff: list[PersonRecord], start: date, horizon_days: int, loaded: dict[str, float]) -> pd.DataFrame:
    """Capacity and free days per person before this plan."""
    rows = []
    for person in staff:
        work, off = _working_days(start, horizon_days, person.time_off)
        capacity = person.weekly_capacity_days / 5 * (work - off)
        already = max(float(loaded.get(person.handle, 0.0)), 0.0)
        rows.append(
            {
                "person": person.handle,
                "name": person.name or person.handle,
                "working_days": work,
                "days_off": off,
                "capacity": capacity,
                "already_assigned": already,
                "free": max(capacity - already, 0.0),
            }
        )
    return pd.DataFrame(
        rows, columns=["person", "name", "working_days", "days_off", "capacity", "already_assigned", "free"]
    ).set_index("person")


def _solve(
    pairs: list[tuple[int, int, int]],
    score: np.ndarray,
    est: np.ndarray,
    free: np.ndarray,
    labels: list[list[str]],
    n_tasks: int,
    n_people: int,
    *,
    time_limit_s: float,
    mip_rel_gap: float,
) -> tuple[list[int], str, float]:
    """Indices of the chosen pairs, the solver status and proven gap (see the module docstring for the model)."""
    if not pairs:
        return [], "optimal", 0.0
    n = len(pairs)
    top = score.max()
    value = score / top if top > 0 else np.zeros_like(score)
    w = 1e-3 / (n_tasks + 1)
    most_labels = max((len(lab) for lab in labels), default=0)
    t_idx = np.array([i for i, _, _ in pairs])
    p_idx = np.array([j for _, j, _ in pairs])
    matches = np.array([m for _, _, m in pairs], dtype=float)
    # Variables: x for each pair, then u (the highest utilisation). milp minimises, so negate the gain.
    c = np.concatenate([-(value[t_idx] + w * (1 + matches / (1 + most_labels))), [w / 2]])
    cols = np.arange(n)
    # One task to at most one person.
    a_task = coo_array((np.ones(n), (t_idx, cols)), shape=(n_tasks, n + 1))
    # Each person's estimates within their free days.
    a_cap = coo_array((est[t_idx], (p_idx, cols)), shape=(n_people, n + 1))
    # Utilisation share used_p / free_p <= u (people without candidates have an empty row).
    util_rows = np.concatenate([p_idx, np.arange(n_people)])
    util_cols = np.concatenate([cols, np.full(n_people, n)])
    safe_free = np.where(free > _TOL, free, 1.0)
    util_vals = np.concatenate([est[t_idx] / safe_free[p_idx], -np.ones(n_people)])
    a_util = coo_array((util_vals, (util_rows, util_cols)), shape=(n_people, n + 1))
    constraints = [
        LinearConstraint(a_task.tocsr(), -np.inf, 1),
        LinearConstraint(a_cap.tocsr(), -np.inf, free + _TOL),
        LinearConstraint(a_util.tocsr(), -np.inf, 0),
    ]
    integrality = np.concatenate([np.ones(n), [0]])
    res = milp(
        c,
        integrality=integrality,
        bounds=(0, 1),
        constraints=constraints,
        options={"time_limit": time_limit_s, "mip_rel_gap": mip_rel_gap, "disp": False},
    )
    status = _STATUS.get(res.status, "error")
    if res.x is None:
        raise DataError(f"the assignment solver found no plan ({status}: {res.message})", "report this as a bug")
    gap = float(res.mip_gap) if res.mip_gap is not None and np.isfinite(res.mip_gap) else 0.0
    return [k for k in range(n) if res.x[k] > 0.5], status, max(gap, 0.0)


def _name(person: PersonRecord) -> str:
    return person.name or person.handle


def _why_assigned(
    person: PersonRecord,
    *,
    position: int,
    options: int,
    only: bool,
    est: float,
    defaulted: bool,
    free: float,
    matches: list[str],
) -> str:
    skills = f" (skills: {', '.join(person.skills)})" if person.skills else ""
    if position == 1:
        what = f"highest-priority ready task that {_name(person)}{skills} can do"
    else:
        what = f"#{position} by priority of the {options} ready tasks {_name(person)}{skills} can do"
    if only:
        what += ", and the only person who can"
    if matches:
        what += f"; its labels {_list(matches)} match their skills"
    size = f"{_fmt(est)} (assumed, unestimated)" if defaulted else _fmt(est)
    return f"{what}; uses {size} of {_name(person)}'s {_fmt(free)} free days"


def _people(handles: list[str]) -> str:
    if len(handles) == 1:
        return f"the only person who could do it ({handles[0]})"
    return f"the {len(handles)} people who could do it ({', '.join(handles)})"


def _why_unstaffed(
    i: int,
    *,
    ready: bool,
    waiting_on: object,
    required: list[str],
    est: float,
    defaulted: bool,
    staff: list[PersonRecord],
    person_skills: list[set[str]],
    free: np.ndarray,
    candidates: list[int],
    owner: dict[int, int],
    left: np.ndarray,
    score: np.ndarray,
    keys: list[str],
) -> str:
    """Why task ``i`` got nobody, checked in the order a lead would ask: ready? skills? time? size? priority?"""
    if not ready:
        waits = _skills(waiting_on)
        return f"not ready: waiting on {', '.join(waits)}" if waits else "not ready"
    need = _norm(required)
    skilled = [j for j, have in enumerate(person_skills) if need <= have]
    if not skilled:
        everyone = set().union(*person_skills) if person_skills else set()
        absent = [s for s in required if s.casefold() not in everyone]
        if not staff:
            return "nobody is available to assign"
        if absent:
            return f"nobody has the skills {_list(absent)}"
        return f"nobody has all of the skills {_list(required)} together"
    with_time = [j for j in skilled if free[j] > _TOL]
    who = ", ".join(staff[j].handle for j in skilled)
    if not with_time:
        return f"the people with the skills ({who}) have no free time in the horizon (time off or already loaded)"
    if not candidates:
        most = max(free[j] for j in with_time)
        tied = [staff[j].handle for j in with_time if free[j] >= most - _TOL]
        names = ", ".join(tied[:3]) + (" …" if len(tied) > 3 else "")
        size = f"{_fmt(est)} days (assumed, unestimated)" if defaulted else f"{_fmt(est)} days"
        anyone = "anyone with the skills" if required else "anyone"
        return f"needs {size}, the most {anyone} has free is {_fmt(most)} ({names})"
    handles = [staff[j].handle for j in candidates]
    taken = sorted((t for t, j in owner.items() if j in candidates), key=lambda t: (-score[t], keys[t]))
    room = [staff[j].handle for j in candidates if left[j] >= est - _TOL]
    if room or not taken:
        # Only a solver stopped by its time limit leaves a task out while someone still has room for it.
        return (
            f"not picked although {', '.join(room)} still has room: the solver stopped within its optimality gap "
            "or time limit"
        )
    if all(score[t] >= score[i] - _TOL for t in taken):
        return f"lower priority than what filled the capacity of {_people(handles)}"
    # The MILP preferred several smaller tasks that together are worth more than this one.
    shown = ", ".join(keys[t] for t in taken[:3]) + (" …" if len(taken) > 3 else "")
    total = sum(score[t] for t in taken)
    return (
        f"needs {_fmt(est)} days; the capacity of {_people(handles)} went to smaller tasks worth more in total "
        f"({shown}: {_fmt(total)} vs its {_fmt(score[i])})"
    )
